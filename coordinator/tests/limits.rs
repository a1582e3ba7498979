//! Connection limits (issue 15, item 6), against the real binary over real TLS: half-sent
//! requests and silent connections are closed after the header-read and idle timeouts,
//! real clients are served during such a flood, the global connection cap holds, and a
//! node cannot hold more than its share of netmap long-polls.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use rustls::pki_types::ServerName;
use support::{send, start_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

async fn tcp_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(source, 0)).unwrap();
    sock.connect(to).await.unwrap()
}

/// A TLS connection from `source` with ALPN `alpn`.
async fn tls_from(
    env: &common::Env,
    source: IpAddr,
    alpn: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut cfg = segwire_client::pinning::client_config(env.coord.conf().ca_pin);
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tcp_from(source, addr_of(&env.url)).await;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await
}

/// True when the server closes `s` within `within` (EOF or an error on read).
async fn closed_within<S: AsyncReadExt + Unpin>(s: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_requests_are_cut_and_real_clients_served_during_the_flood() {
    let env = start_with(&["--header-read-timeout", "2s", "--idle-timeout", "10s"]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 1).await;
    let (enrolled, _node) = env.enroll(&token, "host-a").await;
    let flooder = IpAddr::from([127, 0, 0, 2]);

    // 300 TLS connections that send half a request, and 100 that never start TLS.
    let half = join_all((0..300).map(|_| async {
        let mut s = tls_from(&env, flooder, b"http/1.1").await.unwrap();
        s.write_all(b"GET /v1/segments HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        s.flush().await.unwrap();
        s
    }))
    .await;
    let addr = addr_of(&env.url);
    let mut silent = join_all((0..100).map(|_| tcp_from(flooder, addr))).await;
    let flooded = Instant::now();

    // Real clients are served meanwhile, at once.
    let started = Instant::now();
    env.admin().list_segments().await.unwrap();
    let (s, _, body) = send(
        &env.raw,
        &env.url,
        Method::GET,
        "/v1/node/netmap?since=0&wait=0",
        Some(&enrolled.credential),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Every half-sent request and every silent connection is closed by the server after
    // the 2 s header-read (and TLS handshake) timeout.
    let mut open = 0;
    for mut s in half {
        let left = Duration::from_secs(6).saturating_sub(flooded.elapsed());
        open += usize::from(!closed_within(&mut s, left).await);
    }
    for s in &mut silent {
        let left = Duration::from_secs(6).saturating_sub(flooded.elapsed());
        open += usize::from(!closed_within(s, left).await);
    }
    assert_eq!(
        open,
        0,
        "connections still open {:?} after the flood",
        flooded.elapsed()
    );

    // An HTTP/2 connection that sends nothing after TLS is closed after the idle timeout.
    let mut h2 = tls_from(&env, flooder, b"h2").await.unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut h2, Duration::from_secs(16)).await);
    assert!(t.elapsed() >= Duration::from_secs(8), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_cap_holds_and_frees_up() {
    let env = start_with(&["--header-read-timeout", "3s", "--max-connections", "20"]);
    let addr = addr_of(&env.url);
    let flooder = IpAddr::from([127, 0, 0, 2]);
    let held_at = Instant::now();
    let mut held = join_all((0..30).map(|_| tcp_from(flooder, addr))).await;
    assert!(held_at.elapsed() < Duration::from_secs(1));
    let t = Instant::now();
    // At most 20 are kept: the rest are closed on accept.
    let closed_at_once = join_all(
        held.iter_mut()
            .map(|s| closed_within(s, Duration::from_millis(500))),
    )
    .await
    .into_iter()
    .filter(|c| *c)
    .count();
    assert!(
        (10..=11).contains(&closed_at_once),
        "{closed_at_once} of 30 closed at once"
    );
    // Once the held ones time out, new clients are served again.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(t.elapsed())).await;
    let fresh = support::pinned(&env.coord.conf(), None);
    let (s, _, _) = send(&fresh, &env.url, Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(env.coord.log_text().contains("segwire coordinator ready"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_holds_at_most_its_share_of_long_polls() {
    let env = start_with(&["--max-polls-per-node", "2"]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 2).await;
    let (a, _) = env.enroll(&token, "host-a").await;
    let (b, _) = env.enroll(&token, "host-b").await;
    let (s, _, body) = send(
        &env.raw,
        &env.url,
        Method::GET,
        "/v1/node/netmap?since=0&wait=0",
        Some(&a.credential),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    let since = version["version"].as_u64().unwrap();
    let poll = format!("/v1/node/netmap?since={since}&wait=3");
    let polls = join_all((0..6).map(|_| {
        send(
            &env.raw,
            &env.url,
            Method::GET,
            &poll,
            Some(&a.credential),
            None,
        )
    }));
    let other = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(
            &env.raw,
            &env.url,
            Method::GET,
            "/v1/node/netmap?since=0&wait=0",
            Some(&b.credential),
            None,
        )
        .await
    };
    let (results, (other_status, _, _)) = tokio::join!(polls, other);
    let mut statuses: Vec<StatusCode> = results.iter().map(|r| r.0).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::NO_CONTENT,
            StatusCode::NO_CONTENT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    let refused = results
        .iter()
        .find(|r| r.0 == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert!(refused.2.contains("polls open"), "{}", refused.2);
    assert_eq!(other_status, StatusCode::OK, "another node is not affected");
    // The slots are free again.
    let (s, _, _) = send(
        &env.raw,
        &env.url,
        Method::GET,
        &format!("/v1/node/netmap?since={since}&wait=0"),
        Some(&a.credential),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}
