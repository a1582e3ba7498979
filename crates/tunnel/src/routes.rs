//! Cryptokey routing table: IPv4 and IPv6 networks → peer slot, longest prefix wins.
//!
//! One hash map per prefix length in use, searched from the longest: a
//! segment whose peers own a /32 and a /128 each costs one or two hash lookups per packet.
//! Both families share one 128-bit key space, IPv4 keyed as its IPv4-mapped IPv6 address
//! (a /32 is a /128 there, a /24 a /120); IPv6 networks never cover that block (see
//! [`RouteTable::insert`]), so one family's routes never answer for the other.

use ahash::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Allowed IPs of all peers of one router.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// `(prefix length, network bits → slot)`, longest prefix first, none empty.
    tables: Vec<(u8, HashMap<u128, usize>)>,
}

/// Bits of the IPv4-mapped prefix `::ffff:0:0/96`.
const MAPPED_PREFIX: u8 = 96;

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn key(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

/// The network in the shared key space: its key bits and prefix length there.
fn placed(net: IpNet) -> (u128, u8) {
    match net {
        IpNet::V4(n) => (bits(n.addr().into()), n.prefix_len() + MAPPED_PREFIX),
        IpNet::V6(n) => (bits(n.addr().into()), n.prefix_len()),
    }
}

impl RouteTable {
    /// Routes `net` to `slot`, taking it over from any other slot (like `wg`).
    /// An IPv6 network of /96 or shorter would cover the IPv4-mapped block too: it is
    /// routed with the lookup refusing IPv4 keys for it (see [`RouteTable::lookup`]).
    pub(crate) fn insert(&mut self, net: IpNet, slot: usize) {
        let (bits, prefix) = placed(net);
        let k = key(bits, prefix);
        let pos = match self.tables.iter().position(|(p, _)| *p <= prefix) {
            Some(i) if self.tables[i].0 == prefix => i,
            Some(i) => {
                self.tables.insert(i, (prefix, HashMap::default()));
                i
            }
            None => {
                self.tables.push((prefix, HashMap::default()));
                self.tables.len() - 1
            }
        };
        self.tables[pos].1.insert(k, slot);
    }

    /// Removes `net` if it is (still) routed to `slot`.
    pub(crate) fn remove(&mut self, net: IpNet, slot: usize) {
        let (bits, prefix) = placed(net);
        let k = key(bits, prefix);
        if let Some(i) = self.tables.iter().position(|(p, _)| *p == prefix) {
            let t = &mut self.tables[i].1;
            if t.get(&k) == Some(&slot) {
                t.remove(&k);
            }
            if t.is_empty() {
                self.tables.remove(i);
            }
        }
    }

    /// The slot owning `addr` by longest prefix match within its own family. An IPv6
    /// address inside the IPv4-mapped block is never routed (no IPv6 packet carries one).
    pub(crate) fn lookup(&self, addr: IpAddr) -> Option<usize> {
        let floor = match addr {
            IpAddr::V4(_) => MAPPED_PREFIX,
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => return None,
            IpAddr::V6(_) => 0,
        };
        let bits = bits(addr);
        self.tables
            .iter()
            .take_while(|(p, _)| *p >= floor)
            .find_map(|(p, t)| t.get(&key(bits, *p)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("network")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::default();
        t.insert(net("100.64.0.0/10"), 1);
        t.insert(net("100.64.0.2/32"), 2);
        t.insert(net("100.64.1.0/24"), 3);
        assert_eq!(t.lookup(ip("100.64.0.2")), Some(2));
        assert_eq!(t.lookup(ip("100.64.1.7")), Some(3));
        assert_eq!(t.lookup(ip("100.100.0.1")), Some(1));
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
    }

    #[test]
    fn remove_only_own_route() {
        let mut t = RouteTable::default();
        t.insert(net("100.64.0.2/32"), 1);
        t.insert(net("100.64.0.2/32"), 2); // taken over
        t.remove(net("100.64.0.2/32"), 1);
        assert_eq!(t.lookup(ip("100.64.0.2")), Some(2));
        t.remove(net("100.64.0.2/32"), 2);
        assert_eq!(t.lookup(ip("100.64.0.2")), None);
        assert!(t.tables.is_empty());
    }

    #[test]
    fn default_route() {
        let mut t = RouteTable::default();
        t.insert(net("0.0.0.0/0"), 4);
        assert_eq!(t.lookup(ip("1.2.3.4")), Some(4));
        assert_eq!(
            t.lookup(ip("fd00::1")),
            None,
            "an IPv4 route is no IPv6 route"
        );
        t.insert(net("::/0"), 5);
        assert_eq!(t.lookup(ip("fd00::1")), Some(5));
        assert_eq!(t.lookup(ip("1.2.3.4")), Some(4));
    }

    #[test]
    fn ipv6_routes_and_families_apart() {
        let mut t = RouteTable::default();
        t.insert(net("100.64.0.2/32"), 1);
        t.insert(net("fd00::2/128"), 1);
        t.insert(net("fd00::3/128"), 2);
        t.insert(net("fd00::/48"), 3);
        assert_eq!(t.lookup(ip("fd00::2")), Some(1));
        assert_eq!(t.lookup(ip("fd00::3")), Some(2));
        assert_eq!(t.lookup(ip("fd00::9")), Some(3));
        assert_eq!(t.lookup(ip("fd01::2")), None);
        assert_eq!(t.lookup(ip("100.64.0.2")), Some(1));
        // The mapped spelling of an IPv4 address is not that address.
        assert_eq!(t.lookup(ip("::ffff:100.64.0.2")), None);
        // An IPv6 route over the mapped block does not catch IPv4.
        t.insert(net("::/64"), 4);
        assert_eq!(t.lookup(ip("100.64.0.9")), None);
        t.remove(net("fd00::3/128"), 2);
        assert_eq!(t.lookup(ip("fd00::3")), Some(3));
    }
}
