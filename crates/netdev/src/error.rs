//! The crate's error type for device and netlink operations.

use std::io;

use crate::NetnsError;

/// What went wrong creating, configuring or querying a network device.
///
/// Every message says which interface and namespace it is about and, where there is one,
/// what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetdevError {
    /// The namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),

    /// The interface name is not one Linux accepts.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidInterfaceName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// `/dev/net/tun` could not be opened.
    #[error(
        "cannot open /dev/net/tun: {source}; load the tun module (`modprobe tun`) and run \
         segwire-node as root or with CAP_NET_ADMIN"
    )]
    TunUnavailable {
        /// The error from `open(2)`.
        #[source]
        source: io::Error,
    },

    /// An interface of that name already exists and is not a free TUN device.
    #[error(
        "interface {name} already exists in {netns} and is in use; detach the workload from \
         that segment first, or delete the stale interface (`ip link del {name}` in {netns})"
    )]
    InterfaceInUse {
        /// The interface name.
        name: String,
        /// Where the interface was to be created.
        netns: String,
    },

    /// The caller lacks CAP_NET_ADMIN in the target namespace.
    #[error(
        "permission denied for interface {name} in {netns}: run segwire-node as root or with \
         CAP_NET_ADMIN"
    )]
    PermissionDenied {
        /// The interface name.
        name: String,
        /// The namespace.
        netns: String,
    },

    /// Creating the TUN interface failed for another reason.
    #[error("could not create TUN interface {name} in {netns}: {source}")]
    TunCreate {
        /// The interface name.
        name: String,
        /// The namespace.
        netns: String,
        /// The error from the `TUNSETIFF` ioctl.
        #[source]
        source: io::Error,
    },

    /// The interface to configure does not exist.
    #[error("interface {name} does not exist in {netns}")]
    LinkNotFound {
        /// The interface name.
        name: String,
        /// The namespace searched.
        netns: String,
    },

    /// The overlay address is not inside the segment's CIDR.
    #[error("address {address} is not inside the segment CIDR {segment}")]
    AddressOutsideSegment {
        /// The member's overlay address.
        address: std::net::IpAddr,
        /// The segment's CIDR.
        segment: ipnet::IpNet,
    },

    /// A netlink request failed.
    #[error("could not {op} in {netns}: {source}")]
    Netlink {
        /// What was being done, e.g. "set the MTU of sw-db".
        op: String,
        /// The namespace.
        netns: String,
        /// The kernel's error (an errno where the kernel gave one).
        #[source]
        source: io::Error,
    },
}
