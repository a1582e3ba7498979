use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use segwire_tunnel::{DropCounts, PeerStatus, PublicKey, RouterStatus, TrafficCounters};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::server::{device, Sockets};
use super::*;
use crate::member::{MemberCmd, MemberStats};

#[test]
fn parses_get_and_set() {
    assert_eq!(parse_request(&["get=1"]), Ok(Request::Get));
    assert_eq!(
        parse_request(&[
            "set=1",
            "private_key=abcd",
            "listen_port=1",
            "public_key=00"
        ]),
        Ok(Request::Set {
            keys: vec![
                "private_key".into(),
                "listen_port".into(),
                "public_key".into()
            ]
        })
    );
    assert_eq!(parse_request(&["set=1"]), Ok(Request::Set { keys: vec![] }));
}

#[test]
fn refuses_malformed_requests() {
    let none: [&str; 0] = [];
    assert_eq!(parse_request(&none), Err(UapiError::Empty));
    assert_eq!(
        parse_request(&["get=1", "x=1"]),
        Err(UapiError::GetWithArguments)
    );
    assert_eq!(
        parse_request(&["set=1", "nonsense"]),
        Err(UapiError::NotKeyValue(2))
    );
    assert!(matches!(
        parse_request(&["delete=1"]),
        Err(UapiError::UnknownOperation(_))
    ));
}

#[test]
fn sets_that_change_anything_are_refused() {
    assert_eq!(set_errno(&[]), 0);
    assert_eq!(set_errno(&["listen_port".to_owned()]), EPERM);
}

fn peer() -> PeerInfo {
    PeerInfo {
        public_key: [0xab; 32],
        endpoint: Some("198.18.0.3:51900".parse().expect("addr")),
        allowed_ips: vec!["100.64.1.9/32".parse().expect("net")],
        last_handshake: Some(Duration::new(1_700_000_000, 42)),
        rx_bytes: 10,
        tx_bytes: 20,
        persistent_keepalive: None,
    }
}

#[test]
fn encodes_a_device_in_the_order_of_the_spec() {
    let text = encode_device(&DeviceInfo {
        listen_port: 51820,
        peers: vec![peer()],
    });
    let expected = format!(
        "listen_port=51820\n\
         public_key={}\n\
         preshared_key={}\n\
         protocol_version=1\n\
         endpoint=198.18.0.3:51900\n\
         last_handshake_time_sec=1700000000\n\
         last_handshake_time_nsec=42\n\
         tx_bytes=20\n\
         rx_bytes=10\n\
         persistent_keepalive_interval=0\n\
         allowed_ip=100.64.1.9/32\n\
         errno=0\n\n",
        "ab".repeat(32),
        "0".repeat(64)
    );
    assert_eq!(text, expected);
    assert!(!text.contains("private_key"));
}

#[test]
fn a_peer_without_endpoint_or_handshake_reports_zeros() {
    let mut p = peer();
    p.endpoint = None;
    p.last_handshake = None;
    let text = encode_device(&DeviceInfo {
        listen_port: 1,
        peers: vec![p],
    });
    assert!(!text.contains("endpoint="));
    assert!(text.contains("last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"));
}

#[test]
fn socket_names_fit_and_differ_per_member() {
    let a = socket_name("sw-web", "3f2a9c0011223344", |_| false).expect("name");
    assert_eq!(a, "sw-web.3f2a");
    let b = socket_name("sw-web", "77aa9c0011223344", |_| false).expect("name");
    assert_ne!(a, b);
    let long = socket_name("sw-paymentsvc-1", "3f2a9c0011223344", |_| false).expect("name");
    assert_eq!(long, "sw-payment.3f2a");
    assert!(long.len() <= MAX_NAME);
    // A collision on the short form uses more of the id.
    let c = socket_name("sw-web", "3f2a9c0011223344", |n| n == "sw-web.3f2a").expect("name");
    assert_eq!(c, "sw-web.3f2a9");
    assert!(socket_name("sw-web", "3f2a", |_| true).is_none());
}

fn stats(ago: Option<Duration>) -> MemberStats {
    MemberStats {
        router: RouterStatus {
            public_key: PublicKey([1; 32]),
            address: "100.64.1.2".parse().expect("ip"),
            traffic: TrafficCounters::default(),
            drops: DropCounts::default(),
            peers: vec![PeerStatus {
                public_key: PublicKey([2; 32]),
                endpoint: Some(SocketAddr::from(([198, 18, 0, 3], 51900))),
                allowed_ips: vec!["100.64.1.9/32".parse().expect("net")],
                persistent_keepalive: None,
                last_handshake_ago: ago,
                handshakes: 1,
                traffic: TrafficCounters {
                    rx_packets: 1,
                    rx_bytes: 84,
                    tx_packets: 1,
                    tx_bytes: 84,
                },
                drops: DropCounts::default(),
            }],
        },
        tun_write_errors: 0,
        udp_send_errors: 0,
        firewall: Default::default(),
        flows: Vec::new(),
        flows_dropped: 0,
        rules: Vec::new(),
        io: Default::default(),
    }
}

#[test]
fn handshake_age_becomes_wall_clock_time() {
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let d = device(51820, &stats(Some(Duration::from_secs(3))), now);
    assert_eq!(d.peers[0].last_handshake, Some(Duration::from_secs(997)));
    assert_eq!(d.peers[0].public_key, [2; 32]);
    assert_eq!(device(1, &stats(None), now).peers[0].last_handshake, None);
}

/// Sends `request` on the socket and reads the answer up to its empty line.
async fn ask(path: &std::path::Path, request: &str) -> String {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    write.write_all(request.as_bytes()).await.expect("write");
    let mut read = BufReader::new(read);
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.expect("read") == 0 {
            break;
        }
        out.push_str(&line);
        if line == "\n" {
            break;
        }
    }
    out
}

#[tokio::test]
async fn socket_answers_get_refuses_set_and_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, mut rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if let MemberCmd::Status(reply) = cmd {
                let _ = reply.send(stats(Some(Duration::from_secs(1))));
            }
        }
    });
    let mut sockets = Sockets::in_dir(dir.path().to_owned());
    sockets.open("3f2a9c0011223344", "sw-web", 51820, tx);
    assert_eq!(sockets.name_of("3f2a9c0011223344"), Some("sw-web.3f2a"));
    let path = dir.path().join("sw-web.3f2a.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let got = ask(&path, "get=1\n\n").await;
    assert!(got.starts_with("listen_port=51820\n"), "{got}");
    assert!(
        got.contains(&format!("public_key={}\n", "02".repeat(32))),
        "{got}"
    );
    assert!(got.contains("rx_bytes=84\n"), "{got}");
    assert!(got.ends_with("errno=0\n\n"), "{got}");
    let secs: u64 = got
        .lines()
        .find_map(|l| l.strip_prefix("last_handshake_time_sec="))
        .and_then(|v| v.parse().ok())
        .expect("handshake time");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(now - secs <= 3, "{secs} vs {now}");

    assert_eq!(
        ask(&path, "set=1\nprivate_key=0000\n\n").await,
        "errno=1\n\n"
    );
    assert_eq!(ask(&path, "hello=1\n\n").await, "errno=22\n\n");

    sockets.close("3f2a9c0011223344");
    assert!(!path.exists());
}

#[tokio::test]
async fn dead_member_sockets_are_swept_and_live_or_foreign_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A socket whose process died: bound, then the listener dropped (the file stays).
    let dead = dir.path().join("sw-db.7a36.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    // A live member socket (another agent's) and a dead socket of another program.
    let live = dir.path().join("sw-web.3f2a.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&live).expect("bind");
    let foreign = dir.path().join("wg0.sock");
    drop(std::os::unix::net::UnixListener::bind(&foreign).expect("bind"));

    let sockets = Sockets::in_dir(dir.path().to_owned());
    assert_eq!(sockets.sweep_dead(), vec!["sw-db.7a36".to_owned()]);
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(foreign.exists());
}

#[test]
fn member_socket_names_are_recognised() {
    assert!(looks_like_member_socket("sw-web.3f2a"));
    assert!(looks_like_member_socket("eth0.3f2a9c00"));
    assert!(!looks_like_member_socket("wg0"));
    assert!(!looks_like_member_socket("sw-web.3f2"));
    assert!(!looks_like_member_socket("sw-web.xyzw"));
    assert!(!looks_like_member_socket(".3f2a"));
}
