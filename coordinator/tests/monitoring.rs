//! Metrics, events with signed webhooks, and failure rate limits, against the real binary.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use common::{enroll_req, Env};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use segwire_proto::access::Event;
use support::{pinned, send, start_with};

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn metrics(env: &Env) -> prometheus_parse::Scrape {
    let (s, _, text) = send(&env.raw, &env.url, Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    scrape(&text)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_with_traffic() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let route = [
        ("route", "/v1/segments"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let before = metrics(&env).await;
    for _ in 0..5 {
        env.admin().list_segments().await.unwrap();
    }
    send(
        &env.raw,
        &env.url,
        Method::GET,
        "/v1/segments",
        Some("swk_nope.wrong"),
        None,
    )
    .await;
    let t = env.token(&["web"], 1).await;
    let (_, node) = env.enroll(&t, "host-a").await;
    node.attach(&common::attach_req("web", "host"))
        .await
        .unwrap();
    node.netmap(0, 0).await.unwrap().unwrap();
    let (s, _, _) = send(&env.raw, &env.url, Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = metrics(&env).await;
    assert_eq!(
        value(&after, "segwire_http_requests_total", &route)
            - value(&before, "segwire_http_requests_total", &route),
        5.0
    );
    assert_eq!(
        value(
            &after,
            "segwire_auth_failures_total",
            &[("reason", "wrong")]
        ),
        1.0
    );
    assert!(value(&after, "segwire_netmaps_pushed_total", &[]) >= 1.0);
    assert_eq!(value(&after, "segwire_connected_nodes", &[]), 1.0);
    assert!(value(&after, "segwire_audit_records_total", &[]) >= 3.0);
    assert!(after
        .samples
        .iter()
        .any(|x| x.metric.starts_with("segwire_store_seconds")));
    assert!(after
        .samples
        .iter()
        .any(|x| x.metric.starts_with("segwire_netmap_push_seconds")));
}

/// What the webhook receiver saw: (signature header, delivery id, body, status answered).
type Seen = Arc<Mutex<Vec<(String, String, Bytes, u16, Instant)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let seen = s2.clone();
            async move {
                let ev: Event = serde_json::from_slice(&body).unwrap();
                let mut seen = seen.lock().unwrap();
                let first_offline = ev.kind == "node.offline"
                    && !seen.iter().any(|(_, id, ..)| *id == ev.id.to_string());
                let status = if first_offline { 500 } else { 200 };
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                seen.push((
                    h("x-segwire-signature"),
                    h("x-segwire-delivery"),
                    body,
                    status,
                    Instant::now(),
                ));
                AxStatus::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_node_offline_webhook_with_retry() {
    let (hook, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    let secret = "0123456789abcdef-test-secret";
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let sf = secret_file.to_str().unwrap();
    let env = start_with(&[
        "--webhook",
        &hook,
        "--webhook-secret-file",
        sf,
        "--node-offline-after",
        "2s",
        "--webhook-backoff",
        "200ms",
    ]);
    env.segment("web", "100.64.1.0/24").await;
    let t = env.token(&["web"], 1).await;
    let (_, node) = env.enroll(&t, "host-a").await;
    // The node polls once, then goes quiet (as if its agent was killed).
    node.netmap(0, 0).await.unwrap();
    let quiet_since = Instant::now();
    let deadline = quiet_since + Duration::from_secs(15);
    let offline: Vec<_> = loop {
        let got: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, body, ..)| {
                serde_json::from_slice::<Event>(body).unwrap().kind == "node.offline"
            })
            .cloned()
            .collect();
        if got.len() >= 2 || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        offline.len(),
        2,
        "a 500 then a retry; log:\n{}",
        env.coord.log_text()
    );
    let (sig, id, body, status, at) = &offline[0];
    assert_eq!(*status, 500);
    assert!(
        at.duration_since(quiet_since) < Duration::from_secs(2 + 2),
        "offline event after {:?}",
        at.duration_since(quiet_since)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    assert_eq!(
        *sig,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    let (sig2, id2, body2, status2, _) = &offline[1];
    assert_eq!((sig2, id2, body2, *status2), (sig, id, body, 200));
    let ev: Event = serde_json::from_slice(body).unwrap();
    assert_eq!(ev.data["name"], "host-a");
    // The token use was delivered too, and events list and follow.
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|(_, _, b, ..)| serde_json::from_slice::<Event>(b).unwrap().kind == "token.used"));
    let events = env.admin().events(0, None).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "node.offline"));
    let last = events.last().unwrap().id;
    let follow = tokio::spawn({
        let admin = env.admin();
        async move { admin.events(last, Some(10)).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.netmap(0, 0).await.unwrap();
    let next = follow.await.unwrap();
    assert_eq!(next.first().map(|e| e.kind.as_str()), Some("node.online"));
    let cli = segwire_testkit::cli_ok(&env.config(), &["events"]);
    assert!(
        cli.contains("node.offline") && cli.contains("node.online"),
        "{cli}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_are_throttled_per_address() {
    // A burst of 20 failures per address, then one an hour: within this test no token comes
    // back, so the counts are exact however slowly the machine runs the requests.
    let env = start_with(&["--auth-failure-interval", "1h"]);
    env.segment("web", "100.64.1.0/24").await;
    let good = env.token(&["web"], 1).await;
    let mut bad = good.clone();
    bad.secret = "wrong-secret".into();
    let body = serde_json::to_string(&enroll_req(&bad, "intruder")).unwrap();
    let (mut refused, mut throttled) = (0, 0);
    for _ in 0..30 {
        let (s, headers, _) = send(
            &env.raw,
            &env.url,
            Method::POST,
            "/v1/enroll",
            None,
            Some(&body),
        )
        .await;
        match s {
            StatusCode::FORBIDDEN => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                throttled += 1;
                let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                // The next token is due an hour after the burst ran out.
                assert!((3500..=3600).contains(&secs), "retry-after {secs}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (refused, throttled),
        (20, 10),
        "{refused} refused, {throttled} throttled"
    );
    assert!(env.coord.log_text().contains("throttling a source address"));
    // The right token from another address still works.
    let other = pinned(&env.coord.conf(), Some(IpAddr::from([127, 0, 0, 2])));
    let body = serde_json::to_string(&enroll_req(&good, "host-a")).unwrap();
    let (s, _, text) = send(
        &other,
        &env.url,
        Method::POST,
        "/v1/enroll",
        None,
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{text}");

    // Wrong API keys likewise; the admin key from another address is unaffected.
    let third = pinned(&env.coord.conf(), Some(IpAddr::from([127, 0, 0, 3])));
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let (s, _, text) = send(
            &third,
            &env.url,
            Method::GET,
            "/v1/segments",
            Some("swk_0011223344556677.guess"),
            None,
        )
        .await;
        if s == StatusCode::UNAUTHORIZED {
            assert!(text.is_empty());
        }
        statuses.push(s);
    }
    let count = |want: StatusCode| statuses.iter().filter(|s| **s == want).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (20, 10),
        "{statuses:?}"
    );
    env.admin().list_segments().await.unwrap();
}
