//! Read-only rtnetlink queries: links and addresses of a namespace.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType};

use crate::nl::{connect, failed, link_index};
use crate::{NetdevError, Netns};

/// One network interface, as `ip link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The MTU (0 when the kernel did not say).
    pub mtu: u32,
    /// Whether the link is administratively up.
    pub up: bool,
    /// Whether the link is itself a tunnel (a TUN or WireGuard device, IP-in-IP, GRE,
    /// SIT, or any point-to-point link): its addresses live inside another overlay.
    pub tunnel: bool,
}

/// Whether a link of this type and these flags carries another overlay, not the underlay.
fn is_tunnel(kind: LinkLayerType, flags: LinkFlags) -> bool {
    flags.contains(LinkFlags::Pointopoint)
        || matches!(
            kind,
            LinkLayerType::None
                | LinkLayerType::Tunnel
                | LinkLayerType::Tunnel6
                | LinkLayerType::Sit
                | LinkLayerType::Ipgre
                | LinkLayerType::Ip6gre
        )
}

/// One IPv4 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The interface index.
    pub index: u32,
    /// The address with its prefix length.
    pub addr: Ipv4Net,
}

/// Whether an interface `name` exists in `netns`.
///
/// # Errors
/// The namespace errors, or [`NetdevError::Netlink`].
pub async fn link_exists(netns: &Netns, name: &str) -> Result<bool, NetdevError> {
    let name = name.to_owned();
    let label = netns.to_string();
    netns
        .run_future(move || async move {
            let handle = connect(&label)?;
            Ok(link_index(&handle, &name, &label).await?.is_some())
        })
        .await?
}

/// Every interface of `netns`.
///
/// # Errors
/// The namespace errors, or [`NetdevError::Netlink`].
pub async fn list_links(netns: &Netns) -> Result<Vec<LinkInfo>, NetdevError> {
    let label = netns.to_string();
    netns
        .run_future(move || async move {
            let handle = connect(&label)?;
            let messages: Vec<_> = handle
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| failed("list interfaces", &label, e))?;
            Ok(messages
                .into_iter()
                .map(|message| {
                    let mut info = LinkInfo {
                        index: message.header.index,
                        name: String::new(),
                        mtu: 0,
                        up: message.header.flags.contains(LinkFlags::Up),
                        tunnel: is_tunnel(message.header.link_layer_type, message.header.flags),
                    };
                    for attribute in message.attributes {
                        match attribute {
                            LinkAttribute::IfName(name) => info.name = name,
                            LinkAttribute::Mtu(mtu) => info.mtu = mtu,
                            _ => {}
                        }
                    }
                    info
                })
                .collect())
        })
        .await?
}

/// Every IPv4 address configured in `netns`.
///
/// # Errors
/// The namespace errors, or [`NetdevError::Netlink`].
pub async fn list_ipv4_addrs(netns: &Netns) -> Result<Vec<InterfaceAddr>, NetdevError> {
    Ok(list_addrs(netns)
        .await?
        .into_iter()
        .filter_map(|(index, ip, prefix_len)| match ip {
            IpAddr::V4(ip) => Some(InterfaceAddr {
                index,
                addr: Ipv4Net::new(ip, prefix_len).ok()?,
            }),
            IpAddr::V6(_) => None,
        })
        .collect())
}

/// Every address of `netns`, both families: (interface index, address, prefix length).
/// The local address of an IPv4 point-to-point link is `IFA_LOCAL`; IPv6 addresses come
/// in `IFA_ADDRESS` only.
async fn list_addrs(netns: &Netns) -> Result<Vec<(u32, IpAddr, u8)>, NetdevError> {
    let label = netns.to_string();
    netns
        .run_future(move || async move {
            let handle = connect(&label)?;
            let messages: Vec<_> = handle
                .address()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| failed("list addresses", &label, e))?;
            Ok(messages
                .into_iter()
                .filter_map(|message| {
                    let local = message.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    });
                    let address = message.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    });
                    let ip = local.or(address)?;
                    Some((message.header.index, ip, message.header.prefix_len))
                })
                .collect())
        })
        .await?
}

/// The host's addresses worth reporting as underlay endpoints, from the agent's own
/// namespace: its IPv4 addresses first, then its IPv6 ones. Never loopback, link-local
/// (169.254/16, fe80::/10), unspecified, IPv4-mapped or multicast, nor an address of
/// segwire's own overlays, a container or VM bridge, or a tunnel (a TUN or WireGuard
/// device such as another VPN's, GRE, IP-in-IP or any point-to-point link): a peer that
/// picked such an address would send this overlay through the other one.
///
/// A dual-stack host reports both, so peers on an IPv4 underlay and peers on an IPv6-only
/// one each find an endpoint of their own family (an agent picks the first endpoint of a
/// family it has itself).
///
/// # Errors
/// [`NetdevError::Netlink`] when the kernel cannot be asked.
pub async fn host_addrs() -> Result<Vec<IpAddr>, NetdevError> {
    let links = list_links(&Netns::Current).await?;
    let local_only = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .is_some_and(|l| l.tunnel || is_local_only_link(&l.name))
    };
    let mut addrs: Vec<IpAddr> = list_addrs(&Netns::Current)
        .await?
        .into_iter()
        .filter(|(index, ip, _)| !local_only(*index) && is_endpoint_worthy(*ip))
        .map(|(_, ip, _)| ip)
        .collect();
    // IPv4 sorts before IPv6.
    addrs.sort_unstable();
    addrs.dedup();
    Ok(addrs)
}

/// Whether another host could reach `ip`: not loopback, link-local, unspecified,
/// multicast or IPv4-mapped.
fn is_endpoint_worthy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback()
                && !v6.is_unicast_link_local()
                && !v6.is_unspecified()
                && !v6.is_multicast()
                && v6.to_ipv4_mapped().is_none()
        }
    }
}

/// Interfaces whose addresses other hosts cannot reach: segwire's own overlay interfaces
/// and the usual container and VM bridges.
fn is_local_only_link(name: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        crate::INTERFACE_PREFIX,
        "docker",
        "podman",
        "cni",
        "virbr",
        "veth",
        "br-",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod link_filter_tests {
    #[test]
    fn overlay_and_bridge_links_are_not_endpoints() {
        for name in [
            "sw-web", "docker0", "podman0", "cni0", "virbr0", "veth12ab", "br-1234",
        ] {
            assert!(super::is_local_only_link(name), "{name}");
        }
        for name in ["eth0", "ens3", "bond0", "wlan0"] {
            assert!(!super::is_local_only_link(name), "{name}");
        }
    }

    #[test]
    fn only_addresses_other_hosts_reach_are_endpoints() {
        for ip in ["198.18.0.2", "2001:2::2", "fd00:1::5"] {
            assert!(super::is_endpoint_worthy(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "169.254.7.7",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "ff02::1",
            "::ffff:198.18.0.2",
        ] {
            assert!(!super::is_endpoint_worthy(ip.parse().expect("ip")), "{ip}");
        }
    }
}
