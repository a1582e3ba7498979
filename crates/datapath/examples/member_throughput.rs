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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{carry, connect, endpoint, member, packet, policy};

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

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1400);
    let rules: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);

    let policy = policy(rules);
    let start = Instant::now();
    let mut a = member(1, 2, &policy, BATCH);
    let mut b = member(2, 1, &policy, BATCH);
    // Handshake and warm-up: every buffer gets its final size, the flow is tracked.
    let packets: Vec<Vec<u8>> = (0..BATCH).map(|_| packet(size, 1, 2, false)).collect();
    connect(&mut a, &mut b, &packets[0], start.elapsed());
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
