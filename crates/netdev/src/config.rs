//! Configuring a workload's segment interface with rtnetlink, inside its namespace.
//!
//! Every function runs its netlink work on a dedicated thread inside the target namespace
//! (see [`Netns::run_future`]): the netlink socket is created there, so it talks to that
//! namespace's kernel tables. Callers just `.await` them from any tokio task.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::nl::{connect, failed, is_no_such_device, link_index};
use crate::{NetdevError, Netns, TunDevice};

/// The default MTU of a segment interface: 1500 minus WireGuard's worst-case overhead
/// over IPv6 (40 IPv6 + 8 UDP + 32 WireGuard).
pub const DEFAULT_MTU: u32 = 1420;

/// The default transmit queue of a segment interface. The kernel's 500 for TUN devices
/// overflows under a single TCP stream (measured: ~10k retransmits per 10 s iperf3 run
/// at 500, none at 2,000), because the agent drains the queue in batches.
pub const DEFAULT_TX_QUEUE_LEN: u32 = 2000;

/// How one segment interface is set up in a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The interface name (see [`crate::interface_name`]).
    pub name: String,
    /// The MTU.
    pub mtu: u32,
    /// Transmit queue length (packets the kernel holds for the agent to read).
    pub tx_queue_len: u32,
    /// The member's IPv4 overlay address (configured as a /32) and the segment's IPv4
    /// network (the IPv4 route, `CIDR dev NAME src ADDRESS`); `None` on an IPv6-only
    /// segment, whose interface then has no IPv4 address and no IPv4 route at all.
    pub ipv4: Option<(Ipv4Addr, Ipv4Net)>,
    /// On a dual-stack or IPv6-only segment, the member's IPv6 address (configured as a
    /// /128 without duplicate address detection) and the segment's IPv6 prefix (the IPv6
    /// route, `PREFIX dev NAME src ADDRESS6`).
    pub ipv6: Option<(Ipv6Addr, Ipv6Net)>,
}

impl InterfaceConfig {
    /// A configuration with an address and route per family given (IPv4, IPv6 or both),
    /// the [`DEFAULT_MTU`] and the [`DEFAULT_TX_QUEUE_LEN`].
    #[must_use]
    pub fn with_families(
        name: impl Into<String>,
        ipv4: Option<(Ipv4Addr, Ipv4Net)>,
        ipv6: Option<(Ipv6Addr, Ipv6Net)>,
    ) -> Self {
        Self {
            name: name.into(),
            mtu: DEFAULT_MTU,
            tx_queue_len: DEFAULT_TX_QUEUE_LEN,
            ipv4,
            ipv6,
        }
    }

    /// An IPv4 configuration (see [`InterfaceConfig::with_families`]).
    #[must_use]
    pub fn new(name: impl Into<String>, address: Ipv4Addr, segment: Ipv4Net) -> Self {
        Self::with_families(name, Some((address, segment)), None)
    }

    /// An IPv6-only configuration: no IPv4 address, no IPv4 route (see
    /// [`InterfaceConfig::with_families`]).
    #[must_use]
    pub fn ipv6_only(name: impl Into<String>, address6: Ipv6Addr, segment6: Ipv6Net) -> Self {
        Self::with_families(name, None, Some((address6, segment6)))
    }

    /// The same configuration with the member's IPv6 address and the segment's prefix.
    #[must_use]
    pub fn with_ipv6(mut self, address6: Ipv6Addr, segment6: Ipv6Net) -> Self {
        self.ipv6 = Some((address6, segment6));
        self
    }
}

/// Creates the TUN interface of `config` inside `netns` and configures it
/// ([`TunDevice::create`] then [`configure`]). On a configuration error the new device is
/// dropped, which deletes the interface again.
///
/// # Errors
/// Those of [`TunDevice::create`] and [`configure`].
pub async fn create_interface(
    netns: &Netns,
    config: &InterfaceConfig,
) -> Result<TunDevice, NetdevError> {
    let device = TunDevice::create(netns, &config.name).await?;
    configure(netns, config).await?;
    Ok(device)
}

/// Configures the existing interface `config.name` inside `netns`, idempotently:
/// no IPv6 link-local address, the MTU, the overlay addresses as a /32 and a /128
/// (whichever the member has; other addresses on it are removed), link up, and one route
/// per segment prefix through the interface with the overlay address as source. The workload gets no other route.
///
/// # Errors
/// [`NetdevError::AddressOutsideSegment`], [`NetdevError::LinkNotFound`], the namespace
/// errors, or [`NetdevError::Netlink`] naming the step that failed.
pub async fn configure(netns: &Netns, config: &InterfaceConfig) -> Result<(), NetdevError> {
    if let Some((a, net)) = config.ipv4 {
        if !net.contains(&a) {
            return Err(NetdevError::AddressOutsideSegment {
                address: a.into(),
                segment: net.into(),
            });
        }
    }
    if let Some((a6, net6)) = config.ipv6 {
        if !net6.contains(&a6) {
            return Err(NetdevError::AddressOutsideSegment {
                address: a6.into(),
                segment: net6.into(),
            });
        }
    }
    let job = config.clone();
    let label = netns.to_string();
    netns
        .run_future(move || async move { configure_here(&job, &label).await })
        .await??;
    tracing::debug!(
        interface = %config.name,
        %netns,
        ipv4 = ?config.ipv4,
        ipv6 = ?config.ipv6,
        mtu = config.mtu,
        "configured interface"
    );
    Ok(())
}

/// Deletes the interface `name` in `netns`. Returns whether there was one: deleting a
/// missing interface is not an error.
///
/// # Errors
/// The namespace errors, or [`NetdevError::Netlink`].
pub async fn remove_link(netns: &Netns, name: &str) -> Result<bool, NetdevError> {
    let name = name.to_owned();
    let label = netns.to_string();
    netns
        .run_future(move || async move {
            let handle = connect(&label)?;
            let Some(index) = link_index(&handle, &name, &label).await? else {
                return Ok(false);
            };
            match handle.link().del(index).execute().await {
                Ok(()) => Ok(true),
                Err(e) if is_no_such_device(&e) => Ok(false),
                Err(e) => Err(failed(format!("delete interface {name}"), &label, e)),
            }
        })
        .await?
}

async fn configure_here(config: &InterfaceConfig, netns: &str) -> Result<(), NetdevError> {
    let name = config.name.as_str();
    let handle = connect(netns)?;
    let index =
        link_index(&handle, name, netns)
            .await?
            .ok_or_else(|| NetdevError::LinkNotFound {
                name: name.to_owned(),
                netns: netns.to_owned(),
            })?;

    // No IPv6 link-local address, hence no fe80::/64 route and no router solicitations
    // into the tunnel. Best effort: a kernel without IPv6 refuses it, and that is fine.
    let no_ipv6 = LinkUnspec::new_with_index(index)
        .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )]))
        .build();
    if let Err(e) = handle.link().set(no_ipv6).execute().await {
        tracing::debug!(interface = name, error = %e, "could not disable IPv6 address generation");
    }

    let mtu = LinkUnspec::new_with_index(index)
        .mtu(config.mtu)
        .append_extra_attribute(LinkAttribute::TxQueueLen(config.tx_queue_len))
        .build();
    handle
        .link()
        .set(mtu)
        .execute()
        .await
        .map_err(|e| failed(format!("set the MTU of {name} to {}", config.mtu), netns, e))?;

    set_only_address(&handle, index, config, netns).await?;

    let up = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .set(up)
        .execute()
        .await
        .map_err(|e| failed(format!("set {name} up"), netns, e))?;

    if let Some((a, segment)) = config.ipv4 {
        let segment = segment.trunc();
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(segment.network(), segment.prefix_len())
            .output_interface(index)
            .pref_source(a)
            .scope(RouteScope::Link)
            .build();
        replace_route(&handle, route, format!("{segment} dev {name}"), netns).await?;
    }
    if let Some((a6, net6)) = config.ipv6 {
        let net6 = net6.trunc();
        let route = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(net6.network(), net6.prefix_len())
            .output_interface(index)
            .pref_source(a6)
            .build();
        replace_route(&handle, route, format!("{net6} dev {name}"), netns).await?;
    }
    Ok(())
}

/// Adds `route` (IPv4 or IPv6), replacing one to the same destination; `what` names it
/// in the error.
async fn replace_route(
    handle: &Handle,
    route: rtnetlink::packet_route::route::RouteMessage,
    what: String,
    netns: &str,
) -> Result<(), NetdevError> {
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(|e| failed(format!("add the route {what}"), netns, e))
}

/// Makes the IPv4 address (if any) as a /32 the only IPv4 address of link `index`, and
/// the IPv6 address (if any) its only IPv6 one, added with `nodad` (the link is point-to-point, with no
/// neighbour discovery) and `noprefixroute` (the segment route is the only IPv6 route).
async fn set_only_address(
    handle: &Handle,
    index: u32,
    config: &InterfaceConfig,
    netns: &str,
) -> Result<(), NetdevError> {
    let name = config.name.as_str();
    let wanted = config.ipv4.map(|(a, _)| IpAddr::V4(a));
    let wanted6 = config.ipv6.map(|(a6, _)| IpAddr::V6(a6));
    let existing: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| failed(format!("list the addresses of {name}"), netns, e))?;
    for message in existing {
        let is_v4 = message.header.family == AddressFamily::Inet;
        let is_v6 = message.header.family == AddressFamily::Inet6;
        let has = |want: IpAddr, len: u8| {
            message.header.prefix_len == len
                && message.attributes.iter().any(|a| {
                    matches!(a, AddressAttribute::Local(ip) | AddressAttribute::Address(ip) if *ip == want)
                })
        };
        let is_wanted = wanted.is_some_and(|w| has(w, 32)) || wanted6.is_some_and(|w| has(w, 128));
        if (is_v4 || is_v6) && !is_wanted {
            handle
                .address()
                .del(message)
                .execute()
                .await
                .map_err(|e| failed(format!("remove a stale address of {name}"), netns, e))?;
        }
    }
    if let Some(a) = wanted {
        handle
            .address()
            .add(index, a, 32)
            .replace()
            .execute()
            .await
            .map_err(|e| failed(format!("add {a}/32 to {name}"), netns, e))?;
    }
    if let Some(a6) = wanted6 {
        let mut add = handle.address().add(index, a6, 128).replace();
        add.message_mut().attributes.push(AddressAttribute::Flags(
            AddressFlags::Nodad | AddressFlags::Noprefixroute,
        ));
        add.execute().await.map_err(|e| {
            failed(
                format!("add {a6}/128 to {name} (is IPv6 disabled in the workload's namespace?)"),
                netns,
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
