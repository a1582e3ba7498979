//! What the data-path examples share: two members that know each other, the policies
//! they run and the packets they move.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use segwire_datapath::{DetectConfig, Member, MemberConfig};
use segwire_policy::{CompiledPolicy, ConntrackConfig, Member as PolicyMember, Policy};
use segwire_tunnel::{PeerConfig, PresharedKey, PublicKey, RouterConfig, StaticSecret};

/// Member `n`'s overlay address.
pub fn address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, n)
}

/// Member `n`'s underlay endpoint.
pub fn endpoint(n: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 18, 0, n), 51820))
}

/// A default-deny policy with `rules` rules that never match in front of the one that
/// allows the benchmark's traffic (UDP to port 5000, and ICMP).
pub fn policy(rules: usize) -> Policy {
    let mut r: Vec<String> = (0..rules)
        .map(|i| {
            format!(
                r#"{{ "name": "r{i}", "from": {{ "cidr": "10.{}.{}.0/24" }}, "to": "*", "ports": ["tcp/{}"] }}"#,
                (i >> 8) & 0xff,
                i & 0xff,
                1 + i % 60000
            )
        })
        .collect();
    r.push(r#"{ "name": "bench", "from": "*", "to": "*", "ports": ["udp/5000", "icmp"] }"#.into());
    let json = format!(r#"{{ "default": "deny", "rules": [{}] }}"#, r.join(","));
    Policy::from_json(&json).expect("the benchmark's policy parses")
}

/// Member `me`, with `other` as its one peer, on `policy`, reading batches of `batch`.
pub fn member(me: u8, other: u8, policy: &Policy, batch: usize) -> Member {
    let pm = |n: u8| PolicyMember {
        name: format!("m{n}"),
        ip: Some(address(n)),
        ip6: None,
        labels: BTreeMap::new(),
    };
    let members = vec![pm(1), pm(2)];
    let mut m = Member::new(
        Duration::ZERO,
        MemberConfig {
            router: RouterConfig::new(
                StaticSecret::from([me; 32]),
                PresharedKey::new([7; 32]),
                address(me),
            ),
            policy: CompiledPolicy::compile(policy, &pm(me), &members),
            conntrack: ConntrackConfig::default(),
            detect: DetectConfig::default(),
            unix_epoch: 0,
            batch,
            max_packet: 1500,
        },
    );
    let peer = PeerConfig {
        public_key: PublicKey::from_secret(&StaticSecret::from([other; 32])),
        endpoint: Some(endpoint(other)),
        allowed_ips: vec![std::net::IpAddr::from(address(other)).into()],
        persistent_keepalive: None,
    };
    m.upsert_peer(Duration::ZERO, &peer).expect("add peer");
    m
}

/// An IPv4 UDP packet of `size` bytes from member `from` to member `to`, port 4000 to
/// 5000 (or back, when `reply`).
pub fn packet(size: usize, from: u8, to: u8, reply: bool) -> Vec<u8> {
    let (sport, dport) = if reply {
        (5000u16, 4000u16)
    } else {
        (4000, 5000)
    };
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&address(from).octets());
    p[16..20].copy_from_slice(&address(to).octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    p
}

/// Moves `from`'s datagrams to `to` (as from `src`); returns how many packets `to` let
/// through (and forgets them).
pub fn carry(from: &mut Member, to: &mut Member, src: SocketAddr, now: Duration) -> usize {
    to.handle_udp(now, from.datagrams().iter().map(|d| (src, d.bytes)));
    from.clear_datagrams();
    let n = to.packets().len();
    to.clear_packets();
    n
}

/// Runs the handshake between `a` and `b` (a initiates with `first`) until a packet
/// crosses; panics when it does not within a few exchanges.
pub fn connect(a: &mut Member, b: &mut Member, first: &[u8], now: Duration) {
    a.handle_tun(now, [first]);
    for _ in 0..4 {
        carry(a, b, endpoint(1), now);
        carry(b, a, endpoint(2), now);
    }
    a.handle_tun(now, [first]);
    assert_eq!(carry(a, b, endpoint(1), now), 1, "the handshake completed");
}
