//! Cryptokey routing table: IPv4 networks → peer slot, longest prefix wins.
//!
//! One hash map per prefix length in use, searched from the longest: a
//! segment whose peers own a /32 each costs one hash lookup per packet.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Allowed IPs of all peers of one router.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// `(prefix length, network bits → slot)`, longest prefix first, none empty.
    tables: Vec<(u8, HashMap<u32, usize>)>,
}

fn key(addr: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(addr);
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p))),
    }
}

impl RouteTable {
    /// Routes `net` to `slot`, taking it over from any other slot (like `wg`).
    pub(crate) fn insert(&mut self, net: Ipv4Net, slot: usize) {
        let prefix = net.prefix_len();
        let k = key(net.addr(), prefix);
        let pos = match self.tables.iter().position(|(p, _)| *p <= prefix) {
            Some(i) if self.tables[i].0 == prefix => i,
            Some(i) => {
                self.tables.insert(i, (prefix, HashMap::new()));
                i
            }
            None => {
                self.tables.push((prefix, HashMap::new()));
                self.tables.len() - 1
            }
        };
        self.tables[pos].1.insert(k, slot);
    }

    /// Removes `net` if it is (still) routed to `slot`.
    pub(crate) fn remove(&mut self, net: Ipv4Net, slot: usize) {
        let prefix = net.prefix_len();
        let k = key(net.addr(), prefix);
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

    /// The slot owning `addr` by longest prefix match.
    pub(crate) fn lookup(&self, addr: Ipv4Addr) -> Option<usize> {
        self.tables
            .iter()
            .find_map(|(p, t)| t.get(&key(addr, *p)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("network")
    }

    fn ip(s: &str) -> Ipv4Addr {
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
    }
}
