//! The offload device in a real namespace: the kernel's TCP stack on one side of the TUN
//! interface, this test playing the TCP peer on the other. Proves that TSO super-packets
//! are split into MTU-sized packets with valid checksums (GSO), and that consecutive TCP
//! segments written in one batch reach the kernel in fewer writes (GRO), with every byte
//! in order. The kernel's own interface counters tell how many packets crossed the device.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::tests::{checksum, Ipv4View, LOCAL, PEER, TIMEOUT};
use super::*;
use crate::testutil::{privileged, TestNetns};
use crate::{configure, InterfaceConfig};

const TCP: u8 = 6;
const SERVER_PORT: u16 = 5001;
const CLIENT_PORT: u16 = 40000;
/// The MSS both sides use: the interface MTU (1420) less 40 bytes of headers.
const MSS: usize = 1380;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
/// The test's initial sequence number.
const ISN: u32 = 1_000;

/// One TCP segment as this test sees it.
struct Segment {
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
}

/// The TCP checksum over the IPv4 pseudo-header and `tcp` (header and payload).
fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, tcp: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + tcp.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, TCP]);
    pseudo.extend_from_slice(&u16::try_from(tcp.len()).expect("short").to_be_bytes());
    pseudo.extend_from_slice(tcp);
    checksum(&pseudo)
}

/// An IPv4 TCP packet PEER:CLIENT_PORT -> LOCAL:SERVER_PORT, with an MSS option on a SYN.
fn tcp_packet(seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let options: &[u8] = if flags & SYN != 0 {
        &[2, 4, (MSS >> 8) as u8, MSS as u8]
    } else {
        &[]
    };
    let tcp_len = 20 + options.len() + payload.len();
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    tcp.extend_from_slice(&SERVER_PORT.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(u8::try_from((20 + options.len()) / 4).expect("short") << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&u16::MAX.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(options);
    tcp.extend_from_slice(payload);
    let sum = tcp_checksum(PEER, LOCAL, &tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());

    let total = u16::try_from(20 + tcp_len).expect("short");
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, TCP, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&PEER.octets());
    ip.extend_from_slice(&LOCAL.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

/// Parses a packet the kernel sent to the test's TCP peer, checking both checksums and the
/// length fields; `None` for anything else (e.g. IGMP or a stray packet).
fn parse_to_peer(packet: &[u8]) -> Option<Segment> {
    let view = Ipv4View::parse(packet)?;
    if view.protocol() != TCP || view.dst() != PEER {
        return None;
    }
    let hl = view.header_len();
    assert_eq!(checksum(&packet[..hl]), 0, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    assert_eq!(total, packet.len(), "the IPv4 total length is the packet's");
    let tcp = view.payload();
    assert_eq!(
        tcp_checksum(LOCAL, PEER, tcp),
        0,
        "TCP checksum of a packet from the device"
    );
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    Some(Segment {
        seq: u32::from_be_bytes(tcp[4..8].try_into().expect("4 bytes")),
        ack: u32::from_be_bytes(tcp[8..12].try_into().expect("4 bytes")),
        flags: tcp[13],
        payload: tcp[data_offset..].to_vec(),
    })
}

/// Reads from the device until `done` says the segments gathered so far are enough.
fn gather(tun: &mut TunDevice, mut done: impl FnMut(&[Segment]) -> bool) -> Vec<Segment> {
    let mut got = Vec::new();
    let mut batch = PacketBatch::new(128, 2048);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !done(&got) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        tun.recv_batch(&mut batch, left)
            .expect("the kernel's TCP segments in time");
        for packet in batch.iter() {
            assert!(
                packet.len() <= 1420,
                "a packet larger than the MTU: {} B",
                packet.len()
            );
            got.extend(parse_to_peer(packet));
        }
    }
    got
}

/// The interface's kernel counter `tx_packets` or `rx_packets`, read inside the namespace.
fn counter(ns: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/sw-tso/statistics/{name}"))
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

/// A payload whose every byte says where it is, so that order and gaps show.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

#[tokio::test]
async fn tso_super_packets_are_split_and_tcp_segments_coalesced() {
    if !privileged("tso_super_packets_are_split_and_tcp_segments_coalesced") {
        return;
    }
    let ns = TestNetns::new("tso");
    let netns = Netns::Named(ns.name.clone());
    let mut tun = TunDevice::create(&netns, "sw-tso").await.expect("create");
    assert!(tun.offload(), "this kernel accepts the offload device");
    let config = InterfaceConfig::new("sw-tso", LOCAL, "100.64.7.0/24".parse().expect("cidr"));
    configure(&netns, &config).await.expect("configure");

    // The workload: a TCP server in the namespace that writes `down` to the peer and then
    // reads `up` bytes from it.
    let listener: TcpListener = netns
        .run(|| TcpListener::bind((LOCAL, SERVER_PORT)))
        .await
        .expect("run")
        .expect("listen");
    const SEGMENTS_UP: usize = 32;
    let down = pattern(10 * MSS, 0x5a); // the kernel's initial window: one flight
    let up = pattern(SEGMENTS_UP * MSS, 0xa5);
    let (down_sent, up_len) = (down.clone(), up.len());
    let server = std::thread::spawn(move || {
        let (mut s, _): (TcpStream, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&down_sent).expect("write");
        let mut got = vec![0u8; up_len];
        s.read_exact(&mut got).expect("read what the peer sent");
        got
    });

    // The handshake, played by the test through the device.
    tun.send(&tcp_packet(ISN, 0, SYN, &[])).expect("SYN");
    let syn_ack = gather(&mut tun, |g| g.iter().any(|s| s.flags & SYN != 0));
    let syn_ack = syn_ack
        .iter()
        .find(|s| s.flags & SYN != 0)
        .expect("SYN-ACK");
    assert_eq!(syn_ack.ack, ISN + 1);
    let server_isn = syn_ack.seq;
    let tx_before = counter(&ns.name, "tx_packets");
    tun.send(&tcp_packet(ISN + 1, server_isn + 1, ACK, &[]))
        .expect("ACK");

    // GSO: the server's first flight leaves the kernel as super-packets (fewer device
    // transmits than segments) and arrives here as MTU-sized segments, in order.
    let flight = gather(&mut tun, |g| {
        g.iter().map(|s| s.payload.len()).sum::<usize>() >= down.len()
    });
    let data: Vec<&Segment> = flight.iter().filter(|s| !s.payload.is_empty()).collect();
    let transmits = counter(&ns.name, "tx_packets") - tx_before;
    let mut next = server_isn + 1;
    let mut received = Vec::new();
    for s in &data {
        assert_eq!(s.seq, next, "segments in order, without gaps");
        assert!(s.payload.len() <= MSS);
        next += u32::try_from(s.payload.len()).expect("short");
        received.extend_from_slice(&s.payload);
    }
    assert_eq!(received, down, "every byte the server wrote, in order");
    assert!(
        transmits < data.len() as u64,
        "the kernel handed over super-packets: {transmits} transmits for {} segments",
        data.len()
    );

    // GRO: SEGMENTS_UP consecutive segments in one batch reach the kernel in fewer writes
    // (the device's receive counter counts writes), and the server reads every byte.
    let rx_before = counter(&ns.name, "rx_packets");
    let mut batch = PacketBatch::new(SEGMENTS_UP, 2048);
    for (i, chunk) in up.chunks(MSS).enumerate() {
        let seq = ISN + 1 + u32::try_from(i * MSS).expect("short");
        batch.push(&tcp_packet(seq, next, ACK, chunk));
    }
    assert_eq!(tun.send_batch(&batch).expect("send_batch"), SEGMENTS_UP);
    let read = tokio::task::spawn_blocking(move || server.join().expect("server"))
        .await
        .expect("join");
    let writes = counter(&ns.name, "rx_packets") - rx_before;
    assert_eq!(
        read, up,
        "the server read every byte the peer sent, in order"
    );
    // 32 segments of 1,380 B fit one 64 KiB super-packet: one write (two at most, should
    // the kernel's flow state split them); MTU-sized write buffers gave 16.
    assert!(
        writes <= 2,
        "segments were coalesced: {writes} device writes for {SEGMENTS_UP} segments"
    );
    eprintln!(
        "GSO: {transmits} transmits -> {} segments; GRO: {SEGMENTS_UP} segments -> {writes} writes",
        data.len()
    );
}
