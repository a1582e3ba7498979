//! Node-reported flow logs (issue 15, item 2): a node cannot log flows for another
//! segment's member of the same name or for another member's address, cannot push
//! records to the top with far-future timestamps, cannot crowd out other nodes' rows, and
//! is held to a body size and a report rate. A scoped key reads only its segments' flows.
//! Real binary, real SQLite file, real HTTPS.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use common::{attach_req, flow_record as record};
use reqwest::{Method, StatusCode};
use segwire_proto::access::Role;
use segwire_proto::api::{FlowRecord, FlowReport};
use support::{key, send, start_with};

async fn report(env: &common::Env, cred: &str, flows: Vec<FlowRecord>) -> StatusCode {
    let body = serde_json::to_string(&FlowReport { flows, dropped: 0 }).unwrap();
    send(
        &env.raw,
        &env.url,
        Method::POST,
        "/v1/node/flows",
        Some(cred),
        Some(&body),
    )
    .await
    .0
}

async fn flows(env: &common::Env, auth: &str, query: &str) -> Vec<FlowRecord> {
    let path = format!("/v1/flows?limit=10000{query}");
    let (s, _, body) = send(&env.raw, &env.url, Method::GET, &path, Some(auth), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_logs_only_its_own_members_within_its_share() {
    let env = start_with(&["--max-flow-rows-per-node", "50"]);
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let tw = env.token(&["web"], 1).await;
    let td = env.token(&["db"], 1).await;
    let (a, node_a) = env.enroll(&tw, "host-a").await;
    let (b, node_b) = env.enroll(&td, "host-b").await;
    let mut req = attach_req("web", "host");
    req.name = Some("app".into());
    let app_a = node_a.attach(&req).await.unwrap();
    req.segment = "db".into();
    let app_b = node_b.attach(&req).await.unwrap();
    let (ip_a, ip_b) = (
        app_a.address.clone().expect("an IPv4 address"),
        app_b.address.clone().expect("an IPv4 address"),
    );

    // b logs one record of its own.
    let own_b = record("db", "app", &ip_b, "100.64.2.77", 5432);
    assert_eq!(
        report(&env, &b.credential, vec![own_b]).await,
        StatusCode::NO_CONTENT
    );

    // a forges: db's "app" (same name, other segment), b's address, and a far future.
    let mut future = record("web", "app", &ip_a, "100.64.1.9", 80);
    future.last_seen = i64::MAX / 2;
    future.first_seen = i64::MAX / 4;
    let forged = vec![
        record("db", "app", &ip_b, "100.64.2.77", 22),
        record("web", "app", &ip_b, "100.64.1.9", 23),
        future,
    ];
    assert_eq!(
        report(&env, &a.credential, forged).await,
        StatusCode::NO_CONTENT
    );
    let all = flows(&env, &env.key, "").await;
    assert_eq!(all.len(), 2, "{all:?}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let from_a: Vec<_> = all.iter().filter(|f| f.node == "host-a").collect();
    assert_eq!(from_a.len(), 1);
    assert_eq!(
        (from_a[0].segment.as_str(), from_a[0].dst_port),
        ("web", 80)
    );
    assert!(from_a[0].last_seen <= now + 1 && from_a[0].first_seen <= from_a[0].last_seen);

    // a floods 1,000 records: it keeps at most 50, b's record stays.
    let many = (0..1000)
        .map(|p| record("web", "app", &ip_a, "100.64.1.9", 1000 + p))
        .collect();
    assert_eq!(
        report(&env, &a.credential, many).await,
        StatusCode::NO_CONTENT
    );
    let all = flows(&env, &env.key, "").await;
    assert_eq!(all.iter().filter(|f| f.node == "host-a").count(), 50);
    assert_eq!(all.iter().filter(|f| f.node == "host-b").count(), 1);

    // A scoped key reads its segment only.
    let db_viewer = key(&env, Role::Viewer, Some(vec!["db"])).await;
    let seen = flows(&env, &db_viewer, "").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].segment, "db");

    // Over 512 KiB: 413, and nothing is stored.
    let big = format!(
        r#"{{"flows":[],"dropped":0,"pad":"{}"}}"#,
        "x".repeat(600 * 1024)
    );
    let (s, _, text) = send(
        &env.raw,
        &env.url,
        Method::POST,
        "/v1/node/flows",
        Some(&a.credential),
        Some(&big),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("too large"), "{text}");

    // Reports are rate-limited per node (a burst of 10, then one a second).
    let mut limited = 0;
    for _ in 0..15 {
        limited +=
            usize::from(report(&env, &a.credential, vec![]).await == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(limited >= 5, "{limited} of 15 limited");
    assert_eq!(
        report(&env, &b.credential, vec![]).await,
        StatusCode::NO_CONTENT
    );
}
