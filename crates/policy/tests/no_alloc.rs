//! The per-packet path never allocates: a counting global allocator watches a busy firewall.
//! Only the test's own thread is counted: the test harness's threads allocate when they
//! like (more so on a loaded machine), and that says nothing about the packet path.
#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use segwire_policy::{CompiledPolicy, ConntrackConfig, Firewall, Member, Policy};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether allocations on this thread are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// An IPv4 or IPv6 packet (by the addresses' family); protocol 1 means ICMP(v6) echo.
fn packet(src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, protocol, 0, 0];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let next = if protocol == 1 { 58 } else { protocol };
            let mut p = vec![0x60, 0, 0, 0, 0, 20, next, 64];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p
        }
        _ => unreachable!("mixed families"),
    };
    let mut l4 = [0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if protocol == 1 {
        l4[0] = if src.is_ipv6() { 128 } else { 8 }; // echo request, id = dport
        l4[1] = 0;
        l4[4..6].copy_from_slice(&dport.to_be_bytes());
    }
    l4[13] = flags;
    p.extend_from_slice(&l4);
    p
}

#[test]
fn judging_packets_does_not_allocate() {
    let policy = Policy::from_json(
        r#"{ "default": "deny", "rules": [
        { "name": "web", "from": "*", "to": { "labels": { "app": "web" } }, "ports": ["tcp/80", "udp/1000-2000", "icmp"] },
        { "name": "out", "from": { "labels": { "app": "web" } }, "to": { "cidr": "10.0.0.0/8" }, "ports": ["any"] },
        { "name": "out6", "from": { "labels": { "app": "web" } }, "to": { "cidr": "fd00::/16" }, "ports": ["any"] } ] }"#,
    )
    .unwrap();
    let me = Member {
        name: "web-1".into(),
        ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ip6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        labels: BTreeMap::from([("app".into(), "web".into())]),
    };
    let compiled = CompiledPolicy::compile(&policy, &me, std::slice::from_ref(&me));
    let mut fw = Firewall::new(
        compiled,
        ConntrackConfig {
            max_entries: 64,
            ..Default::default()
        },
    );
    let mut packets = Vec::new();
    for i in 0..1000u16 {
        let (local, remote) = if i % 2 == 0 {
            let remote = Ipv4Addr::new(10, 1, (i / 200) as u8, (i % 200) as u8);
            (IpAddr::from(me.ip.unwrap()), IpAddr::from(remote))
        } else {
            let remote = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, i);
            (IpAddr::from(me.ip6.unwrap()), IpAddr::from(remote))
        };
        packets.push((true, packet(local, remote, 6, 40000 + i, 443, 0x02)));
        packets.push((false, packet(remote, local, 6, 443, 40000 + i, 0x12)));
        packets.push((false, packet(remote, local, 6, 5000 + i, 80, 0x02)));
        packets.push((false, packet(remote, local, 6, 5000 + i, 22, 0x02)));
        packets.push((false, packet(remote, local, 17, 7, 1500, 0)));
        packets.push((true, packet(local, remote, 1, 0, i, 0)));
        packets.push((false, packet(remote, local, 47, 0, 0, 0)));
        packets.push((true, vec![0x45, 0, 0]));
    }
    let start = Duration::ZERO;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTED.with(|c| c.set(true));
    let mut allowed = 0;
    for round in 0..20u64 {
        let now = start + Duration::from_secs(round * 7);
        for (egress, p) in &packets {
            let v = if *egress {
                fw.egress(p, now)
            } else {
                fw.ingress(p, now)
            };
            allowed += usize::from(v.is_allowed());
        }
        let _ = fw.expire(now);
    }
    COUNTED.with(|c| c.set(false));
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations on the packet path");
    let c = fw.counters();
    assert!(
        allowed > 0 && c.denied > 0 && c.conntrack_evictions > 0,
        "{c:?}"
    );
}
