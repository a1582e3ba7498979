//! Pushes packets A -> B through two routers in memory and prints the rate.
//!
//! `cargo run --release -p segwire-tunnel --example throughput [packets] [size]`
//!
//! One core does both encryption (A) and decryption (B), so the number is
//! roughly half of what one direction gets per core. It also counts heap
//! allocations in the measured loop (should be 0: batches are reused).
//! This example reads the real clock; the library never does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use segwire_tunnel::{
    DatagramBatch, PacketBatch, PeerConfig, PresharedKey, PublicKey, Router, RouterConfig,
    StaticSecret,
};

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

fn router(seed: u8, peer_seed: u8) -> Router {
    let psk = PresharedKey::new([7; 32]);
    let mut r = Router::new(RouterConfig::new(
        StaticSecret::from([seed; 32]),
        psk,
        Ipv4Addr::new(100, 64, 0, seed),
    ));
    let peer = PeerConfig {
        public_key: PublicKey::from_secret(&StaticSecret::from([peer_seed; 32])),
        endpoint: Some(endpoint(peer_seed)),
        allowed_ips: vec![ipnet::Ipv4Net::from(Ipv4Addr::new(100, 64, 0, peer_seed)).into()],
        persistent_keepalive: None,
    };
    r.upsert_peer(Duration::ZERO, &peer).expect("add peer");
    r
}

fn endpoint(seed: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(198, 18, 0, seed), 51820))
}

fn packet(size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[100, 64, 0, 1]);
    p[16..20].copy_from_slice(&[100, 64, 0, 2]);
    p
}

/// Runs the handshake by bouncing datagrams until none are left.
fn connect(a: &mut Router, b: &mut Router, now: Duration) {
    let mut out = DatagramBatch::new(BATCH, 1500);
    let mut back = DatagramBatch::new(BATCH, 1500);
    let mut pk = PacketBatch::new(BATCH, 1500);
    a.encapsulate_batch(now, [packet(100).as_slice()], &mut out);
    for _ in 0..10 {
        if out.is_empty() {
            break;
        }
        let msgs: Vec<Vec<u8>> = out.iter().map(|d| d.bytes.to_vec()).collect();
        out.clear();
        b.decapsulate_batch(
            now,
            msgs.iter().map(|m| (endpoint(1), m.as_slice())),
            &mut pk,
            &mut back,
        );
        let replies: Vec<Vec<u8>> = back.iter().map(|d| d.bytes.to_vec()).collect();
        back.clear();
        a.decapsulate_batch(
            now,
            replies.iter().map(|m| (endpoint(2), m.as_slice())),
            &mut pk,
            &mut out,
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1400);

    let start = Instant::now();
    let mut a = router(1, 2);
    let mut b = router(2, 1);
    connect(&mut a, &mut b, start.elapsed());

    let packets: Vec<Vec<u8>> = (0..BATCH).map(|_| packet(size)).collect();
    let mut out = DatagramBatch::new(BATCH, size);
    let mut back = DatagramBatch::new(BATCH, size);
    let mut pk = PacketBatch::new(BATCH, size);
    // one warm-up round so every buffer has its final size
    a.encapsulate_batch(start.elapsed(), packets.iter().map(Vec::as_slice), &mut out);
    out.clear();

    let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut delivered = 0usize;
    let mut sent = 0usize;
    while sent < total {
        let now = start.elapsed();
        a.encapsulate_batch(now, packets.iter().map(Vec::as_slice), &mut out);
        b.decapsulate_batch(
            now,
            out.iter().map(|d| (endpoint(1), d.bytes)),
            &mut pk,
            &mut back,
        );
        delivered += pk.len();
        sent += BATCH;
        out.clear();
        back.clear();
        pk.clear();
    }
    let elapsed = t0.elapsed();
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;

    let bits = (delivered * size * 8) as f64;
    println!(
        "{delivered} of {sent} packets of {size} bytes in {:.3} s: {:.2} Gbit/s, {:.0} ns/packet (encrypt + decrypt on one core), {allocs} allocations",
        elapsed.as_secs_f64(),
        bits / elapsed.as_secs_f64() / 1e9,
        elapsed.as_nanos() as f64 / delivered.max(1) as f64,
    );
    let drops = b.drops();
    if drops.total() > 0 {
        println!("drops at B: {:?}", drops.nonzero().collect::<Vec<_>>());
    }
}
