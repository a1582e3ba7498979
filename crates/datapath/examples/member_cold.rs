//! What one echo costs the member core when its caches are cold, as on an idle link: each
//! of the four passes of a request and its reply (A seals, B opens, B seals the reply, A
//! opens it) runs once after the CPU caches were flushed by walking a large buffer, and
//! the same again warm. Beside it, bare `boringtun::noise::Tunn` doing the same four
//! passes: the WireGuard floor every userspace implementation pays (boringtun-cli adds
//! its peer lookups to it).
//!
//! `cargo run --release -p segwire-datapath --example member_cold [echoes] [size] [evict MiB]`
//!
//! It prints the median and 75th percentile in nanoseconds of each pass. This example
//! reads the real clock; the library never does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use segwire_datapath::Member;

mod common;
use common::{carry, connect, endpoint, member, packet, policy};

/// The four passes of one echo.
const PASSES: [&str; 4] = ["A seals", "B opens", "B seals", "A opens"];

/// Walks `buf` one cache line at a time, pushing what the pass touched out of L1 and L2.
fn evict(buf: &mut [u8]) {
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(buf);
}

/// Median and 75th percentile of `samples`, in ns.
fn quantiles(samples: &mut [u64]) -> (u64, u64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.75))
}

/// Times `pass` once per echo, each time after `cold` ran (nothing when warm).
fn time(samples: &mut [Vec<u64>; 4], pass: usize, cold: &mut dyn FnMut(), f: impl FnOnce()) {
    cold();
    let t = Instant::now();
    f();
    samples[pass].push(t.elapsed().as_nanos() as u64);
}

/// One echo through two member cores.
fn member_echo(
    (a, b): (&mut Member, &mut Member),
    (req, rep): (&[u8], &[u8]),
    now: Duration,
    samples: &mut [Vec<u64>; 4],
    cold: &mut dyn FnMut(),
) {
    time(samples, 0, cold, || a.handle_tun(now, [req]));
    time(samples, 1, cold, || {
        assert_eq!(carry(a, b, endpoint(1), now), 1, "the request crossed");
    });
    time(samples, 2, cold, || b.handle_tun(now, [rep]));
    time(samples, 3, cold, || {
        assert_eq!(carry(b, a, endpoint(2), now), 1, "the reply crossed");
    });
}

/// Two bare boringtun tunnels with a session, and their buffers.
struct Bare {
    a: Tunn,
    b: Tunn,
    wire: Vec<u8>,
    inner: Vec<u8>,
}

impl Bare {
    fn new() -> Self {
        let secret = |n: u8| x25519_dalek::StaticSecret::from([n; 32]);
        let public = |n: u8| x25519_dalek::PublicKey::from(&secret(n));
        let mut bare = Self {
            a: Tunn::new(secret(1), public(2), Some([7; 32]), None, 1, None),
            b: Tunn::new(secret(2), public(1), Some([7; 32]), None, 2, None),
            wire: vec![0; 2048],
            inner: vec![0; 2048],
        };
        let mut out = vec![0; 2048];
        let TunnResult::WriteToNetwork(init) = bare.a.format_handshake_initiation(&mut out, false)
        else {
            panic!("no initiation")
        };
        let init = init.to_vec();
        let TunnResult::WriteToNetwork(resp) = bare.b.decapsulate(None, &init, &mut out) else {
            panic!("no response")
        };
        let resp = resp.to_vec();
        while let TunnResult::WriteToNetwork(_) = bare.a.decapsulate(None, &resp, &mut out) {}
        bare
    }

    /// Seals `packet` on one side (A when `a_to_b`) into the wire buffer; returns its length.
    fn seal(&mut self, packet: &[u8], a_to_b: bool) -> usize {
        let from = if a_to_b { &mut self.a } else { &mut self.b };
        match from.encapsulate(packet, &mut self.wire) {
            TunnResult::WriteToNetwork(d) => d.len(),
            _ => panic!("not sealed"),
        }
    }

    /// Opens the wire buffer's first `n` bytes on the other side; panics unless a packet
    /// of `len` bytes comes out.
    fn open(&mut self, n: usize, len: usize, a_to_b: bool) {
        let to = if a_to_b { &mut self.b } else { &mut self.a };
        match to.decapsulate(None, &self.wire[..n], &mut self.inner) {
            TunnResult::WriteToTunnelV4(p, _) => assert_eq!(p.len(), len, "opened"),
            _ => panic!("not opened"),
        }
    }

    /// One echo through the two tunnels.
    fn echo(
        &mut self,
        (req, rep): (&[u8], &[u8]),
        samples: &mut [Vec<u64>; 4],
        cold: &mut dyn FnMut(),
    ) {
        for (pass, packet, a_to_b) in [(0, req, true), (2, rep, false)] {
            let mut n = 0;
            time(samples, pass, cold, || n = self.seal(packet, a_to_b));
            time(samples, pass + 1, cold, || {
                self.open(n, packet.len(), a_to_b)
            });
        }
    }
}

fn print(label: &str, samples: &mut [Vec<u64>; 4]) {
    let mut line = format!("{label:<26}");
    let mut total = (0, 0);
    for (name, s) in PASSES.iter().zip(samples.iter_mut()) {
        let (p50, p75) = quantiles(s);
        total = (total.0 + p50, total.1 + p75);
        line += &format!("  {name} {p50:>5} ({p75:>5})");
    }
    println!("{line}  echo {} ({}) ns", total.0, total.1);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let echoes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(84);
    let evict_mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);

    let mut buf = vec![0u8; evict_mib << 20];
    let (req, rep) = (packet(size, 1, 2, false), packet(size, 2, 1, true));
    let policy = policy(0);
    let (mut a, mut b) = (member(1, 2, &policy, 64), member(2, 1, &policy, 64));
    let start = Instant::now();
    connect(&mut a, &mut b, &req, start.elapsed());
    let mut bare = Bare::new();
    let n = bare.seal(&req, true);
    bare.open(n, req.len(), true);

    println!(
        "{echoes} echoes of {size} B; cold = after walking {evict_mib} MiB; median (p75) ns per pass"
    );
    for cold in [true, false] {
        let mut flush = || {
            if cold {
                evict(&mut buf)
            }
        };
        let mut core: [Vec<u64>; 4] = Default::default();
        let mut floor: [Vec<u64>; 4] = Default::default();
        for _ in 0..echoes {
            let now = start.elapsed();
            member_echo((&mut a, &mut b), (&req, &rep), now, &mut core, &mut flush);
            bare.echo((&req, &rep), &mut floor, &mut flush);
        }
        let state = if cold { "cold" } else { "warm" };
        print(&format!("member core, {state}"), &mut core);
        print(&format!("bare noise::Tunn, {state}"), &mut floor);
    }
}
