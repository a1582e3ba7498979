//! Segment scopes (issue 15, item 8): a segment-scoped key does not learn other segments'
//! names through node views or peer lookups, and deleting a segment ends every
//! grant and scope given for it, so re-creating one with the same name restores nothing.
//! Real binary, real SQLite file, real HTTPS.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use common::{attach_req, enroll_req, random_key};
use reqwest::{Method, StatusCode};
use segwire_proto::access::Role;
use support::{key, send, start_with};

async fn get(env: &common::Env, auth: &str, path: &str) -> (StatusCode, String) {
    let (s, _, body) = send(&env.raw, &env.url, Method::GET, path, Some(auth), None).await;
    (s, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_key_sees_only_its_segments_names() {
    let env = start_with(&[]);
    env.segment("web", "100.64.1.0/24").await;
    env.segment("secret-db", "100.64.2.0/24").await;
    let t = env.token(&["web", "secret-db"], 1).await;
    let (n, _) = env.enroll(&t, "host-a").await;
    for seg in ["web", "secret-db"] {
        let body = serde_json::json!({"segment": seg, "name": "gw", "public_key": random_key()});
        let (s, _, text) = send(
            &env.raw,
            &env.url,
            Method::POST,
            "/v1/peers",
            Some(&env.key),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{text}");
    }
    let viewer = key(&env, Role::Viewer, Some(vec!["web"])).await;
    let operator = key(&env, Role::Operator, Some(vec!["web"])).await;

    let (s, body) = get(&env, &viewer, "/v1/nodes").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!body.contains("secret-db"), "{body}");
    let (s, body) = get(&env, &viewer, &format!("/v1/nodes/{}", n.node_id)).await;
    assert_eq!(s, StatusCode::OK);
    let node: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(node["segments"], serde_json::json!(["web"]));
    // A peer name used in both segments: the scoped key finds its own, and no conflict
    // names the other segment.
    let (s, body) = get(&env, &operator, "/v1/peers/gw/config").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(!body.contains("secret-db"), "{body}");
    let (s, body) = get(&env, &env.key, "/v1/peers/gw/config").await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn re_creating_a_deleted_segment_restores_no_access() {
    let env = start_with(&[]);
    env.segment("db", "100.64.2.0/24").await;
    let token = env.token(&["db"], 2).await;
    let (_, old_node) = env.enroll(&token, "host-a").await;
    let scoped = key(&env, Role::Operator, Some(vec!["db"])).await;
    assert_eq!(
        get(&env, &scoped, "/v1/segments/db").await.0,
        StatusCode::OK
    );

    let (s, _, _) = send(
        &env.raw,
        &env.url,
        Method::DELETE,
        "/v1/segments/db?force=true",
        Some(&env.key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    env.segment("db", "100.64.2.0/24").await;

    // The old key, the old node and the old token grant nothing in the new "db".
    assert_eq!(
        get(&env, &scoped, "/v1/segments/db").await.0,
        StatusCode::FORBIDDEN
    );
    let e = old_node
        .attach(&attach_req("db", "host"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let anon = segwire_client::Client::new(&token.url, token.pin, None).unwrap();
    let grant = anon.enroll(&enroll_req(&token, "host-b")).await;
    if let Ok(r) = grant {
        assert!(r.segments.is_empty(), "{:?}", r.segments);
        let node = segwire_client::Client::new(&token.url, token.pin, Some(r.credential)).unwrap();
        assert_eq!(
            node.attach(&attach_req("db", "host"))
                .await
                .unwrap_err()
                .status(),
            Some(403)
        );
    }
    assert!(env
        .admin()
        .list_members(Some("db"))
        .await
        .unwrap()
        .is_empty());
}
