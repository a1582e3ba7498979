//! Overlay address allocation: a pure function over the segment's network and the
//! addresses that are taken or quarantined. The store calls it inside its write
//! transaction, so two allocations never see the same free address.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Picks the lowest usable address of `net` that is neither `taken` nor `quarantined`.
/// The network and broadcast addresses are never handed out.
pub fn allocate(
    net: Ipv4Net,
    taken: &HashSet<u32>,
    quarantined: &HashSet<u32>,
) -> Option<Ipv4Addr> {
    let first = u32::from(net.network()).checked_add(1)?;
    let last = u32::from(net.broadcast()).checked_sub(1)?;
    (first..=last)
        .find(|a| !taken.contains(a) && !quarantined.contains(a))
        .map(Ipv4Addr::from)
}

/// Picks the lowest usable address of the IPv6 prefix `net` that is neither `taken` nor
/// `quarantined`. The subnet-router anycast address (the prefix itself, RFC 4291) is never
/// handed out. Runs in at most `taken + quarantined + 1` steps however large the prefix.
pub fn allocate6(
    net: Ipv6Net,
    taken: &HashSet<Ipv6Addr>,
    quarantined: &HashSet<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    let first = u128::from(net.network()).checked_add(1)?;
    let last = u128::from(net.broadcast());
    (first..=last)
        .map(Ipv6Addr::from)
        .find(|a| !taken.contains(a) && !quarantined.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("valid net")
    }

    #[test]
    fn skips_network_broadcast_taken_and_quarantined() {
        let n = net("100.64.0.0/30");
        let none = HashSet::new();
        assert_eq!(
            allocate(n, &none, &none),
            Some(Ipv4Addr::new(100, 64, 0, 1))
        );
        let taken: HashSet<u32> = [u32::from(Ipv4Addr::new(100, 64, 0, 1))].into();
        assert_eq!(
            allocate(n, &taken, &none),
            Some(Ipv4Addr::new(100, 64, 0, 2))
        );
        let q: HashSet<u32> = [u32::from(Ipv4Addr::new(100, 64, 0, 2))].into();
        assert_eq!(allocate(n, &taken, &q), None);
    }

    #[test]
    fn ipv6_lowest_free_skips_anycast_taken_and_quarantined() {
        let n: Ipv6Net = "fd00:1::/126".parse().expect("valid net");
        let a = |s: &str| -> Ipv6Addr { s.parse().expect("valid address") };
        let none = HashSet::new();
        assert_eq!(allocate6(n, &none, &none), Some(a("fd00:1::1")));
        let taken: HashSet<Ipv6Addr> = [a("fd00:1::1"), a("fd00:1::3")].into();
        assert_eq!(allocate6(n, &taken, &none), Some(a("fd00:1::2")));
        let q: HashSet<Ipv6Addr> = [a("fd00:1::2")].into();
        assert_eq!(allocate6(n, &taken, &q), None);
        // A /48 answers at once.
        let big: Ipv6Net = "fd00:2::/48".parse().expect("valid net");
        assert_eq!(allocate6(big, &none, &none), Some(a("fd00:2::1")));
    }
}
