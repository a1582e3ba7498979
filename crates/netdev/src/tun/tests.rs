//! End-to-end: a TUN interface in a throw-away namespace, configured over rtnetlink,
//! carrying real packets both ways.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::*;
use crate::testutil::{ip, privileged, TestNetns};
use crate::{create_interface, link_exists, list_links, remove_link, InterfaceConfig, NetnsError};

pub(super) const LOCAL: Ipv4Addr = Ipv4Addr::new(100, 64, 7, 1);
pub(super) const PEER: Ipv4Addr = Ipv4Addr::new(100, 64, 7, 2);
const ICMP: u8 = 1;
const UDP: u8 = 17;
const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
const ECHO_ID: u16 = 0x5357;
pub(super) const TIMEOUT: Duration = Duration::from_secs(5);

fn segment() -> ipnet::Ipv4Net {
    "100.64.7.0/24".parse().expect("cidr")
}

/// The RFC 1071 internet checksum.
pub(super) fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(super) struct Ipv4View<'a>(&'a [u8]);

impl Ipv4View<'_> {
    pub(super) fn parse(packet: &[u8]) -> Option<Ipv4View<'_>> {
        (packet.len() >= 20 && packet[0] >> 4 == 4).then_some(Ipv4View(packet))
    }
    pub(super) fn header_len(&self) -> usize {
        usize::from(self.0[0] & 0x0f) * 4
    }
    pub(super) fn protocol(&self) -> u8 {
        self.0[9]
    }
    pub(super) fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.0[12], self.0[13], self.0[14], self.0[15])
    }
    pub(super) fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.0[16], self.0[17], self.0[18], self.0[19])
    }
    pub(super) fn payload(&self) -> &[u8] {
        &self.0[self.header_len()..]
    }
}

/// An IPv4 packet `src -> dst` carrying an ICMP echo message.
fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, kind: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let total = u16::try_from(20 + icmp.len()).expect("small packet");
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, ICMP, 0, 0]); // id, DF, TTL, proto, csum
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let sum = checksum(&packet);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(&icmp);
    packet
}

/// Waits for the next IPv4 packet on `tun` that `want` accepts, skipping others.
fn recv_matching(tun: &mut TunDevice, want: impl Fn(&Ipv4View<'_>) -> bool) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let n = tun
            .recv(&mut buf, left)
            .expect("a matching packet on the TUN device in time");
        if let Some(packet) = Ipv4View::parse(&buf[..n]) {
            if want(&packet) {
                return buf[..n].to_vec();
            }
        }
    }
}

/// A raw ICMP socket (a minimal `ping`), opened inside the calling thread's namespace.
fn raw_icmp_socket() -> OwnedFd {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: the pointer and length describe `timeout`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVTIMEO");
    fd
}

/// Sends an ICMP message (the kernel adds the IP header) to `dst` on a raw socket.
fn raw_send(fd: &OwnedFd, dst: Ipv4Addr, icmp: &[u8]) {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the pointers and lengths describe `icmp` and `addr`.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            icmp.as_ptr().cast(),
            icmp.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(
        n,
        icmp.len() as isize,
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

/// Receives the next packet (with its IP header) on a raw socket; panics on timeout.
fn raw_recv(fd: &OwnedFd) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    // SAFETY: the pointer and length describe `buf`.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert!(n >= 0, "raw recv: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    buf
}

#[tokio::test]
async fn tun_in_netns_end_to_end() {
    if !privileged("tun_in_netns_end_to_end") {
        return;
    }
    let ns = TestNetns::new("a");
    let netns = Netns::Named(ns.name.clone());
    let config = InterfaceConfig::new("sw-test", LOCAL, segment());
    let mut tun = create_interface(&netns, &config)
        .await
        .expect("create interface");
    assert_eq!(tun.name(), "sw-test");

    // What `ip` sees: the /32, MTU 1420, up, exactly one route (the segment's), no IPv6.
    let addrs = ip(&["-n", &ns.name, "-4", "addr", "show", "dev", "sw-test"]);
    assert!(addrs.contains("inet 100.64.7.1/32 "), "{addrs}");
    assert_eq!(addrs.matches("inet ").count(), 1, "{addrs}");
    let link = ip(&["-n", &ns.name, "link", "show", "dev", "sw-test"]);
    assert!(link.contains("mtu 1420 "), "{link}");
    assert!(link.contains("qlen 2000"), "{link}");
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
    let routes = ip(&["-n", &ns.name, "-4", "route", "show"]);
    let lines: Vec<&str> = routes.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the workload must get the segment's route only: {routes}"
    );
    assert!(
        lines[0].starts_with("100.64.7.0/24 dev sw-test ") && lines[0].contains("src 100.64.7.1"),
        "{routes}"
    );
    let v6 = ip(&["-n", &ns.name, "-6", "addr", "show", "dev", "sw-test"]);
    assert!(!v6.contains("inet6"), "no IPv6 link-local expected: {v6}");

    // The same through our own queries.
    let links = list_links(&netns).await.expect("list links");
    let info = links
        .iter()
        .find(|l| l.name == "sw-test")
        .expect("sw-test listed");
    assert_eq!((info.mtu, info.up), (1420, true));

    // ping 100.64.7.2 from inside: the echo request comes out of the TUN device...
    let ping = netns.run(raw_icmp_socket).await.expect("socket in netns");
    let request = icmp_echo(LOCAL, PEER, ECHO_REQUEST, ECHO_ID, 1, b"segwire");
    raw_send(&ping, PEER, &request[20..]);
    let seen = recv_matching(&mut tun, |p| {
        p.protocol() == ICMP && p.dst() == PEER && p.payload().first() == Some(&ECHO_REQUEST)
    });
    let seen = Ipv4View::parse(&seen).expect("ipv4");
    assert_eq!(seen.src(), LOCAL);
    assert_eq!(&seen.payload()[4..6], &ECHO_ID.to_be_bytes()[..]);

    // A lone packet that is not IP is refused, and the device goes on: on the offload
    // device a lone packet is written straight from the caller's buffer.
    assert!(tun.offload(), "this kernel takes the offload device");
    let refused = tun.send(&[0x00, 0x01, 0x02]).expect_err("not an IP packet");
    assert_eq!(refused.raw_os_error(), Some(libc::EINVAL), "{refused}");

    // ...and a crafted echo reply written to it reaches the pinging socket.
    let reply = icmp_echo(PEER, LOCAL, ECHO_REPLY, ECHO_ID, 1, b"segwire");
    assert_eq!(tun.send(&reply).expect("tun send"), reply.len());
    let got = tokio::task::spawn_blocking(move || loop {
        let packet = raw_recv(&ping);
        let view = Ipv4View::parse(&packet).expect("ipv4");
        if view.src() == PEER && view.payload().first() == Some(&ECHO_REPLY) {
            return packet;
        }
    })
    .await
    .expect("join");
    assert_eq!(
        Ipv4View::parse(&got).expect("ipv4").payload().get(8..),
        Some(&b"segwire"[..])
    );

    // Detach: the link goes away, and removing it again is fine.
    assert!(remove_link(&netns, "sw-test").await.expect("remove"));
    assert!(!link_exists(&netns, "sw-test").await.expect("exists"));
    assert!(!remove_link(&netns, "sw-test").await.expect("remove again"));
    let links = ip(&["-n", &ns.name, "link", "show"]);
    assert!(!links.contains("sw-test"), "{links}");
}

#[tokio::test]
async fn batches_serve_many_packets_per_wake_with_offloads() {
    if !privileged("batches_serve_many_packets_per_wake_with_offloads") {
        return;
    }
    let ns = TestNetns::new("bo");
    let netns = Netns::Named(ns.name.clone());
    let tun = TunDevice::create(&netns, "sw-batch").await.expect("create");
    // This kernel (Linux >= 6.2) accepts IFF_VNET_HDR with TSO and USO.
    assert!(tun.offload(), "the offload device should be chosen first");
    batches_serve_many_packets_per_wake(netns, tun).await;
}

#[tokio::test]
async fn batches_serve_many_packets_per_wake_plain() {
    if !privileged("batches_serve_many_packets_per_wake_plain") {
        return;
    }
    let ns = TestNetns::new("bp");
    let netns = Netns::Named(ns.name.clone());
    let tun = TunDevice::create_with(&netns, "sw-batch", false)
        .await
        .expect("create");
    assert!(!tun.offload());
    batches_serve_many_packets_per_wake(netns, tun).await;
}

async fn batches_serve_many_packets_per_wake(netns: Netns, mut tun: TunDevice) {
    const COUNT: usize = 20;
    let config = InterfaceConfig::new("sw-batch", LOCAL, segment());
    crate::configure(&netns, &config).await.expect("configure");

    // A burst of datagrams from a socket inside the namespace queues on the device...
    let socket = netns
        .run(|| UdpSocket::bind((LOCAL, 0)))
        .await
        .expect("run")
        .expect("bind");
    for i in 0..COUNT {
        socket
            .send_to(&[u8::try_from(i).expect("small")], (PEER, 9))
            .expect("send");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // ...and one call, after one wake-up, drains all of it.
    let mut batch = PacketBatch::new(64, 2048);
    let n = tun
        .recv_batch(&mut batch, TIMEOUT)
        .expect("recv_batch in time");
    assert_eq!(n, COUNT, "one recv_batch should drain the whole burst");
    for (i, packet) in batch.iter().enumerate() {
        let view = Ipv4View::parse(packet).expect("ipv4");
        assert_eq!((view.protocol(), view.dst()), (UDP, PEER));
        assert_eq!(
            view.payload().get(8),
            Some(&u8::try_from(i).expect("small"))
        );
    }

    // send_batch: echo requests to the workload; its kernel answers each one.
    // One malformed packet in front is dropped without stopping the rest.
    let mut out = PacketBatch::new(COUNT + 1, 2048);
    out.push(&[0x00, 0x01, 0x02]);
    for seq in 0..COUNT {
        let seq = u16::try_from(seq).expect("small");
        out.push(&icmp_echo(
            PEER,
            LOCAL,
            ECHO_REQUEST,
            ECHO_ID,
            seq,
            b"batch",
        ));
    }
    let sent = tun.send_batch(&out).expect("send_batch");
    assert_eq!(
        sent, COUNT,
        "all valid packets written, the malformed one dropped"
    );

    let mut replies = 0;
    let mut batch = PacketBatch::new(8, 2048);
    while replies < COUNT {
        tun.recv_batch(&mut batch, TIMEOUT)
            .expect("echo replies in time");
        replies += batch
            .iter()
            .filter_map(Ipv4View::parse)
            .filter(|p| p.protocol() == ICMP && p.dst() == PEER)
            .filter(|p| p.payload().first() == Some(&ECHO_REPLY))
            .count();
    }
    assert_eq!(replies, COUNT);
}

#[tokio::test]
async fn a_second_device_with_the_same_name_is_refused() {
    if !privileged("a_second_device_with_the_same_name_is_refused") {
        return;
    }
    let ns = TestNetns::new("c");
    let netns = Netns::Named(ns.name.clone());
    let _first = TunDevice::create(&netns, "sw-dup").await.expect("first");
    let err = TunDevice::create(&netns, "sw-dup")
        .await
        .expect_err("second");
    assert!(matches!(err, NetdevError::InterfaceInUse { .. }), "{err}");
    assert!(err.to_string().contains("ip link del sw-dup"), "{err}");

    // "lo" exists and is no TUN device.
    let err = TunDevice::create(&netns, "lo").await.expect_err("lo");
    assert!(matches!(err, NetdevError::InterfaceInUse { .. }), "{err}");
}

#[tokio::test]
async fn dropping_the_device_deletes_the_interface() {
    if !privileged("dropping_the_device_deletes_the_interface") {
        return;
    }
    let ns = TestNetns::new("d");
    let netns = Netns::Named(ns.name.clone());
    let tun = TunDevice::create(&netns, "sw-gone").await.expect("create");
    assert!(link_exists(&netns, "sw-gone").await.expect("exists"));
    drop(tun);
    assert!(!link_exists(&netns, "sw-gone").await.expect("exists"));
}

#[tokio::test]
async fn creation_errors_say_what_is_wrong() {
    let err = TunDevice::create(&Netns::Current, "bad/name")
        .await
        .expect_err("bad name");
    assert!(
        matches!(err, NetdevError::InvalidInterfaceName { .. }),
        "{err}"
    );

    let err = TunDevice::create(&Netns::Named("swt-no-such-netns".into()), "sw-x")
        .await
        .expect_err("missing netns");
    assert!(
        matches!(err, NetdevError::Netns(NetnsError::NotFound { .. })),
        "{err}"
    );
}
