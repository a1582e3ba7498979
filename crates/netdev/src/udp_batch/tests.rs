use std::time::Duration;

use super::*;
use crate::bind_udp;
use tokio::net::UdpSocket;

const TIMEOUT: Duration = Duration::from_secs(5);

fn loopback() -> std::net::UdpSocket {
    bind_udp("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("bind")
}

/// Reads datagrams from a plain socket (no GRO: what a stock peer sees) until `n` arrived.
async fn read_plain(socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < n {
        let (len, _) = tokio::time::timeout(TIMEOUT, socket.recv_from(&mut buf))
            .await
            .expect("datagrams in time")
            .expect("recv");
        got.push(buf[..len].to_vec());
    }
    got
}

#[tokio::test]
async fn a_batch_goes_out_in_runs_and_arrives_one_datagram_each() {
    let sender = BatchSocket::from_std(loopback()).expect("batch socket");
    let receiver = UdpSocket::from_std(loopback()).expect("plain socket");
    let dst = receiver.local_addr().expect("addr");
    let mut batch = DatagramBatch::new(64, 1400);
    for i in 0..40u8 {
        batch.push(&[i; 1200], dst);
    }
    batch.push(&[99; 148], dst); // a handshake-sized one ends the run
    let report = sender.send_batch(&batch);
    assert_eq!((report.sent, report.failed), (41, 0));
    let offload = sender.offload();
    if offload.gso_segments > 1 {
        assert!(report.calls < 41, "GSO sends runs: {report:?}");
    } else {
        eprintln!("no UDP GSO on this kernel: one datagram per call");
        assert_eq!(report.calls, 41);
    }
    let got = read_plain(&receiver, 41).await;
    for (i, d) in got.iter().take(40).enumerate() {
        assert_eq!(d.len(), 1200, "one datagram per segment");
        assert_eq!(d[0], i as u8, "in order");
    }
    assert_eq!(got[40], vec![99; 148]);
}

#[tokio::test]
async fn datagrams_come_in_with_their_source_even_when_coalesced() {
    let mut receiver = BatchSocket::from_std(loopback()).expect("batch socket");
    let dst = receiver.local_addr().expect("addr");
    let sender = BatchSocket::from_std(loopback()).expect("sender");
    let src = sender.local_addr().expect("addr");
    let mut batch = DatagramBatch::new(64, 1400);
    for i in 0..50u8 {
        batch.push(&[i; 1000], dst);
    }
    assert_eq!(sender.send_batch(&batch).sent, 50);
    let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    while got.len() < 50 {
        assert!(
            receiver.wait_readable(TIMEOUT).expect("poll"),
            "readable in time"
        );
        match receiver.try_recv_batch() {
            Ok(b) => got.extend(b.datagrams().map(|(a, d)| (a, d.to_vec()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(got.len(), 50);
    for (i, (from, d)) in got.iter().enumerate() {
        assert_eq!(*from, src);
        assert_eq!((d.len(), d[0]), (1000, i as u8));
    }
}
