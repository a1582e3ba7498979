//! Node-driven writes (issue 15, item 3): unchanged endpoint reports, repeated attaches
//! and polls from flip-flopping source addresses write and audit nothing (or little), and
//! endpoints, labels and members per node are capped with clear 4xx errors. Real binary,
//! real SQLite file, real HTTPS.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::net::IpAddr;

use common::attach_req;
use reqwest::{Method, StatusCode};
use support::{audit_len, pinned, send, start_with};

async fn version(env: &common::Env, client: &reqwest::Client, cred: &str) -> u64 {
    let (s, _, body) = send(
        client,
        &env.url,
        Method::GET,
        "/v1/node/netmap?since=0&wait=0",
        Some(cred),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_real_changes_are_written_and_audited() {
    let env = start_with(&[]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 1).await;
    let (a, node) = env.enroll(&token, "host-a").await;
    let req = attach_req("web", "host");
    node.attach(&req).await.unwrap();
    let v0 = version(&env, &env.raw, &a.credential).await;
    let audit0 = audit_len(&env).await;

    // 50 identical endpoint reports and 20 identical attaches: no version, no audit.
    let body = r#"{"endpoints":["198.18.0.2"]}"#;
    for _ in 0..50 {
        let (s, _, _) = send(
            &env.raw,
            &env.url,
            Method::POST,
            "/v1/node/endpoints",
            Some(&a.credential),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    for _ in 0..20 {
        node.attach(&req).await.unwrap();
    }
    assert_eq!(version(&env, &env.raw, &a.credential).await, v0);
    // One real change: one version, one audit record.
    let changed = r#"{"endpoints":["198.18.0.3"]}"#;
    let (s, _, _) = send(
        &env.raw,
        &env.url,
        Method::POST,
        "/v1/node/endpoints",
        Some(&a.credential),
        Some(changed),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let v1 = version(&env, &env.raw, &a.credential).await;
    assert!(v1 > v0);
    assert_eq!(audit_len(&env).await, audit0 + 1);

    // Polls from two source addresses in turn: at most one move per 10 s, not 20.
    let other = pinned(&env.coord.conf(), Some(IpAddr::from([127, 0, 0, 2])));
    for i in 0..20 {
        let c = if i % 2 == 0 { &other } else { &env.raw };
        version(&env, c, &a.credential).await;
    }
    let v2 = version(&env, &env.raw, &a.credential).await;
    assert!(v2 <= v1 + 1, "{v1} -> {v2}");
    assert!(audit_len(&env).await <= audit0 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_labels_and_members_per_node_are_capped() {
    let env = start_with(&["--max-members-per-node", "3"]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 1).await;
    let (_, node) = env.enroll(&token, "host-a").await;

    let mut labels = attach_req("web", "pid:1");
    labels.labels = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
    let e = node.attach(&labels).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("at most 32 labels"), "{e}");

    let mut eps = attach_req("web", "pid:1");
    eps.endpoints = (0..17).map(|i| format!("198.18.0.{i}:51820")).collect();
    let e = node.attach(&eps).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("at most 16 endpoints"), "{e}");

    for i in 0..3 {
        node.attach(&attach_req("web", &format!("pid:{i}")))
            .await
            .unwrap();
    }
    let e = node.attach(&attach_req("web", "pid:9")).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("--max-members-per-node"), "{e}");
    assert_eq!(
        env.admin().list_members(Some("web")).await.unwrap().len(),
        3
    );
}
