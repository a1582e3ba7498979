//! Read-only rtnetlink queries: links and IPv4 addresses of a namespace.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};

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
                    let ip = message.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    })?;
                    let addr = Ipv4Net::new(ip, message.header.prefix_len).ok()?;
                    Some(InterfaceAddr {
                        index: message.header.index,
                        addr,
                    })
                })
                .collect())
        })
        .await?
}

/// The host's IPv4 addresses worth reporting as underlay endpoints: every address of the
/// agent's own namespace except loopback (127/8), link-local (169.254/16) and unspecified.
///
/// # Errors
/// [`NetdevError::Netlink`] when the kernel cannot be asked.
pub async fn host_ipv4_addrs() -> Result<Vec<Ipv4Addr>, NetdevError> {
    let links = list_links(&Netns::Current).await?;
    let local_only = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .is_some_and(|l| is_local_only_link(&l.name))
    };
    let mut addrs: Vec<Ipv4Addr> = list_ipv4_addrs(&Netns::Current)
        .await?
        .into_iter()
        .filter(|a| !local_only(a.index))
        .map(|a| a.addr.addr())
        .filter(|ip| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    Ok(addrs)
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
}
