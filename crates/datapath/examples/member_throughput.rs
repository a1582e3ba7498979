//! Pushes packets A -> B through two member cores in memory (router, firewall and flow
//! log, both sides) and prints the rate and the heap allocations per packet.
//!
//! `cargo run --release -p segwire-datapath --example member_throughput [packets] [size] [rules]`
//!
//! `rules` (default 0) adds that many policy rules that never match in front of the one
//! that allows the traffic, with a default of deny. One core does both encryption (A) and
//! decryption (B); the second line splits the time between the two members, which in the
//! real data path run in two agents on two cores.
//! This example reads the real clock; the library never does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use segwire_datapath::{DetectConfig, Member, MemberConfig};
use segwire_policy::{CompiledPolicy, ConntrackConfig, Member as PolicyMember, Policy};
use segwire_tunnel::{PeerConfig, PresharedKey, PublicKey, RouterConfig, StaticSecret};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 64;

fn address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, n)
}

fn endpoint(n: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 18, 0, n), 51820))
}

fn policy_json(rules: usize) -> String {
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
    r.push(r#"{ "name": "bench", "from": "*", "to": "*", "ports": ["udp/5000"] }"#.into());
    format!(r#"{{ "default": "deny", "rules": [{}] }}"#, r.join(","))
}

fn member(me: u8, other: u8, policy: &Policy) -> Member {
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
            batch: BATCH,
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

fn packet(size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&address(1).octets());
    p[16..20].copy_from_slice(&address(2).octets());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    p
}

/// Moves `from`'s datagrams to `to` (as from `src`); returns how many packets `to` let through.
fn carry(from: &mut Member, to: &mut Member, src: SocketAddr, now: Duration) -> usize {
    to.handle_udp(now, from.datagrams().iter().map(|d| (src, d.bytes)));
    from.clear_datagrams();
    let n = to.packets().len();
    to.clear_packets();
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1400);
    let rules: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);

    let policy = Policy::from_json(&policy_json(rules)).expect("policy");
    let start = Instant::now();
    let mut a = member(1, 2, &policy);
    let mut b = member(2, 1, &policy);
    // Handshake and warm-up: every buffer gets its final size, the flow is tracked.
    let packets: Vec<Vec<u8>> = (0..BATCH).map(|_| packet(size)).collect();
    a.handle_tun(start.elapsed(), packets.iter().map(Vec::as_slice));
    for _ in 0..4 {
        let now = start.elapsed();
        carry(&mut a, &mut b, endpoint(1), now);
        carry(&mut b, &mut a, endpoint(2), now);
    }
    a.handle_tun(start.elapsed(), packets.iter().map(Vec::as_slice));
    assert_eq!(
        carry(&mut a, &mut b, endpoint(1), start.elapsed()),
        BATCH,
        "warm-up"
    );

    let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (mut sent, mut delivered) = (0usize, 0usize);
    // Time in each member: A's egress (policy, encryption) and B's ingress (decryption,
    // source check, policy). In the real data path each runs in its own agent, on its own
    // core, so each side's rate is what one member moves per core in that direction.
    let (mut seal, mut open) = (Duration::ZERO, Duration::ZERO);
    while sent < total {
        let now = start.elapsed();
        let t = Instant::now();
        a.handle_tun(now, packets.iter().map(Vec::as_slice));
        let t_sealed = Instant::now();
        delivered += carry(&mut a, &mut b, endpoint(1), now);
        open += t_sealed.elapsed();
        seal += t_sealed - t;
        sent += BATCH;
    }
    let secs = t0.elapsed().as_secs_f64();
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;
    assert_eq!(delivered, sent, "every packet crossed");
    let bits = (delivered * size * 8) as f64;
    println!(
        "member core A->B in memory, {rules} extra rules: {delivered} packets of {size} B in {secs:.3} s = {:.2} Gbit/s both sides on one core, {:.0} packets/s, {:.3} allocations per packet",
        bits / secs / 1e9,
        delivered as f64 / secs,
        allocs as f64 / delivered as f64
    );
    println!(
        "  per member and core: sender (policy + encrypt) {:.2} Gbit/s, receiver (decrypt + source check + policy) {:.2} Gbit/s",
        bits / seal.as_secs_f64() / 1e9,
        bits / open.as_secs_f64() / 1e9,
    );
}
