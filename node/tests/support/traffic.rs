//! Traffic inside the containers: sockets are opened on a thread inside the namespace
//! (they stay bound to it) and then used from the test's own threads.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use segwire_netdev::Netns;
use sha2::{Digest, Sha256};

fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    Netns::Named(ns.to_owned())
        .run_blocking(f)
        .unwrap_or_else(|e| panic!("cannot enter {ns}: {e}"))
}

/// A UDP echo server in `ns` on `port`, stopped on drop.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start(ns: &str, port: u16) -> Echo {
        let socket = in_ns(ns, move || UdpSocket::bind(("0.0.0.0", port))).expect("bind echo");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends UDP echoes from `ns` to `dst` until one comes back (within `wait`), then
/// measures `count` round trips. `None` when nothing came back in time.
pub fn echo_rtts(ns: &str, dst: SocketAddr, wait: Duration, count: usize) -> Option<Vec<Duration>> {
    let socket = in_ns(ns, || UdpSocket::bind("0.0.0.0:0")).expect("bind client");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 64];
    let mut seq: u32 = 0;
    let mut first = true;
    let mut rtts = Vec::new();
    while rtts.len() < count {
        if Instant::now() > deadline {
            return None;
        }
        seq += 1;
        let sent = Instant::now();
        if socket.send_to(&seq.to_be_bytes(), dst).is_err() {
            thread::sleep(Duration::from_millis(200));
            continue;
        }
        // Read until our sequence number comes back or the read times out.
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            if n == 4 && buf[..4] == seq.to_be_bytes() {
                if first {
                    first = false; // the first one includes the handshake
                } else {
                    rtts.push(sent.elapsed());
                }
                break;
            }
        }
    }
    Some(rtts)
}

/// Fills `buf` with deterministic pseudo-random bytes.
fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Sends `total` bytes over TCP from `from_ns` to a server in `to_ns` listening on
/// `to` (its overlay address), which hashes what it reads and sends the SHA-256 back.
/// Returns the time taken and whether the checksums matched.
pub fn tcp_transfer(from_ns: &str, to_ns: &str, to: SocketAddr, total: usize) -> (Duration, bool) {
    let port = to.port();
    let any = if to.is_ipv6() { "::" } else { "0.0.0.0" };
    let listener = in_ns(to_ns, move || TcpListener::bind((any, port))).expect("listen");
    let server = thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        stream.write_all(&hash.finalize())?;
        Ok(())
    });
    let start = Instant::now();
    let mut stream = in_ns(from_ns, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(20))
    })
    .expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut sent = 0;
    while sent < total {
        let n = buf.len().min(total - sent);
        fill(&mut buf[..n], &mut state);
        hash.update(&buf[..n]);
        stream.write_all(&buf[..n]).expect("send");
        sent += n;
    }
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut digest = [0u8; 32];
    stream.read_exact(&mut digest).expect("digest");
    let elapsed = start.elapsed();
    server.join().expect("server thread").expect("server");
    (elapsed, digest[..] == hash.finalize()[..])
}

/// Sends `count` UDP echoes from `ns` to `dst`, one every `interval`, each waiting up to
/// 500 ms for its answer; returns how many got no answer.
pub fn echo_losses(ns: &str, dst: SocketAddr, count: u32, interval: Duration) -> u32 {
    let socket = in_ns(ns, || UdpSocket::bind("0.0.0.0:0")).expect("bind client");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut answered = std::collections::HashSet::new();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for seq in 0..count {
        let _ = socket.send_to(&seq.to_be_bytes(), dst);
        let next = start + interval * (seq + 1);
        while Instant::now() < next {
            if let Ok((4, _)) = socket.recv_from(&mut buf) {
                answered.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        }
    }
    let tail = Instant::now() + Duration::from_millis(500);
    while Instant::now() < tail {
        if let Ok((4, _)) = socket.recv_from(&mut buf) {
            answered.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
    }
    count - answered.len() as u32
}

/// What [`echo_outage`] saw.
#[derive(Debug, Clone)]
pub struct Outage {
    /// Echoes sent.
    pub sent: u32,
    /// Echoes answered.
    pub answered: u32,
    /// The longest time without an answer arriving (between two answers, from the start
    /// to the first, or from the last to the end). Arrival times, not send times: an echo
    /// the tunnel queued during an outage and delivered after it does not hide the outage.
    pub longest: Duration,
    /// When each answer arrived, in order.
    pub answered_at: Vec<Instant>,
}

/// Sends UDP echoes from `ns` to `dst` every `interval` until `stop` returns true (checked
/// between sends), and measures the longest stretch without an answer.
pub fn echo_outage(
    ns: &str,
    dst: SocketAddr,
    interval: Duration,
    mut stop: impl FnMut() -> bool,
) -> Outage {
    let socket = in_ns(ns, || UdpSocket::bind("0.0.0.0:0")).expect("bind client");
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let start = Instant::now();
    let mut sent_at: Vec<Instant> = Vec::new();
    // Sequence number -> when its (first) answer arrived.
    let mut answered = std::collections::BTreeMap::new();
    let mut buf = [0u8; 64];
    let mut drain = |answered: &mut std::collections::BTreeMap<u32, Instant>, until: Instant| {
        while Instant::now() < until {
            if let Ok((4, _)) = socket.recv_from(&mut buf) {
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                answered.entry(seq).or_insert_with(Instant::now);
            }
        }
    };
    while !stop() {
        let seq = sent_at.len() as u32;
        sent_at.push(Instant::now());
        let _ = socket.send_to(&seq.to_be_bytes(), dst);
        drain(&mut answered, start + interval * (seq + 1));
    }
    let end = Instant::now();
    drain(&mut answered, end + Duration::from_millis(500));
    let mut arrivals: Vec<Instant> = answered
        .iter()
        .filter(|(seq, _)| (**seq as usize) < sent_at.len())
        .map(|(_, at)| *at)
        .collect();
    arrivals.sort();
    let mut longest = Duration::ZERO;
    let mut last = start;
    for at in &arrivals {
        longest = longest.max(at.saturating_duration_since(last));
        last = *at;
    }
    longest = longest.max(end.saturating_duration_since(last));
    Outage {
        sent: sent_at.len() as u32,
        answered: arrivals.len() as u32,
        longest,
        answered_at: arrivals,
    }
}

/// Whether a UDP echo from `ns` to `dst` comes back within `wait` (one probe, resent
/// every 100 ms).
pub fn udp_reachable(ns: &str, dst: SocketAddr, wait: Duration) -> bool {
    let socket = in_ns(ns, || UdpSocket::bind("0.0.0.0:0")).expect("bind probe");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        let _ = socket.send_to(b"probe", dst);
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if &buf[..n] == b"probe" {
                return true;
            }
        }
    }
    false
}

/// Whether a TCP connection from `ns` to `to` opens within `wait`, with a listener on
/// `to`'s port in `server_ns` (bound to the unspecified address of `to`'s family).
pub fn tcp_connects(ns: &str, server_ns: &str, to: SocketAddr, wait: Duration) -> bool {
    let port = to.port();
    let any = if to.is_ipv6() { "::" } else { "0.0.0.0" };
    let _listener = in_ns(server_ns, move || TcpListener::bind((any, port))).expect("listen");
    in_ns(ns, move || TcpStream::connect_timeout(&to, wait).is_ok())
}

/// A TCP connect scan from `ns` of `ports` on `target`, one SYN per port waiting at most
/// `per_port` for an answer, on a thread inside the namespace; returns how many connected.
pub fn tcp_scan(
    ns: &str,
    target: std::net::Ipv4Addr,
    ports: std::ops::RangeInclusive<u16>,
    per_port: Duration,
) -> JoinHandle<usize> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        in_ns(&ns, move || {
            ports
                .filter(|p| {
                    TcpStream::connect_timeout(&SocketAddr::from((target, *p)), per_port).is_ok()
                })
                .count()
        })
    })
}
