//! Overlay address allocation: a pure function over the segment's network and the
//! addresses that are taken or quarantined. The store calls it inside its write
//! transaction, so two allocations never see the same free address.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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
}
