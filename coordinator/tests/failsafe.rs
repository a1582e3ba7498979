//! Fail safe: a database failure while authenticating is a 503 that counts toward no
//! throttle, and a revoked node is told so explicitly (401 with the `node_revoked` code),
//! unlike a wrong credential (a bare 401). Real binary, real SQLite file, locked from here.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use segwire_client::ClientError;
use support::{send, start_with};

const NETMAP: &str = "/v1/node/netmap?since=0&wait=0";

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_database_is_503_and_not_a_guess() {
    // Two failures an address may make, then one a minute: any miscount shows.
    let env = start_with(&[
        "--auth-failure-burst",
        "2",
        "--auth-failure-interval",
        "60s",
    ]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 1).await;
    let (enrolled, node) = env.enroll(&token, "host-a").await;
    let cred = enrolled.credential.clone();

    let lock = env.coord.lock_db();
    let started = Instant::now();
    let requests = (0..6).map(|i| {
        let auth = if i % 2 == 0 {
            cred.clone()
        } else {
            env.key.clone()
        };
        let path = if i % 2 == 0 { NETMAP } else { "/v1/segments" };
        let (raw, url) = (env.raw.clone(), env.url.clone());
        async move { send(&raw, &url, Method::GET, path, Some(&auth), None).await }
    });
    for (status, headers, body) in join_all(requests).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(headers["retry-after"], "1");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            err["error"].as_str().unwrap().contains("database"),
            "{body}"
        );
        assert!(err.get("code").is_none(), "{body}");
    }
    // The client sees an API error, not a revocation.
    let err = node.netmap(0, 0).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 503, .. }),
        "{err:?}"
    );
    drop(lock);
    eprintln!("locked for {:?}", started.elapsed());

    // Seven failures from this address, none counted: both credentials still work.
    let map = node.netmap(0, 0).await.unwrap();
    assert!(map.is_some());
    env.admin().list_segments().await.unwrap();
    let log = env.coord.log_text();
    assert!(log.contains("store failure while authenticating"), "{log}");
    assert!(!log.contains("throttling a source address"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_revoked_node_is_told_it_was_revoked() {
    let env = start_with(&[]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 2).await;
    let (a, node_a) = env.enroll(&token, "host-a").await;
    let (_, node_b) = env.enroll(&token, "host-b").await;

    // A wrong secret for a live node: a bare 401.
    let (id, _) = a.credential.split_once('.').unwrap();
    let wrong = format!("{id}.wrong-secret");
    let (s, _, body) = send(&env.raw, &env.url, Method::GET, NETMAP, Some(&wrong), None).await;
    assert_eq!((s, body.as_str()), (StatusCode::UNAUTHORIZED, ""));

    // A revocation wakes the node's long-poll with the explicit answer at once.
    let version = node_b.netmap(0, 0).await.unwrap().unwrap().version;
    let poll = tokio::spawn(async move { node_b.netmap(version, 30).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked_at = Instant::now();
    env.admin().revoke_node("host-b").await.unwrap();
    let err = poll.await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Revoked), "{err:?}");
    assert!(revoked_at.elapsed() < Duration::from_secs(2));

    // Afterwards the right credential hears `node_revoked`; a wrong one for the same id
    // still a bare 401, so the answer reveals nothing to a guesser.
    env.admin().revoke_node("host-a").await.unwrap();
    let (s, _, body) = send(
        &env.raw,
        &env.url,
        Method::GET,
        NETMAP,
        Some(&a.credential),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "node_revoked", "{body}");
    let (s, _, body) = send(&env.raw, &env.url, Method::GET, NETMAP, Some(&wrong), None).await;
    assert_eq!((s, body.as_str()), (StatusCode::UNAUTHORIZED, ""));
    let err = node_a.netmap(0, 0).await.unwrap_err();
    assert!(matches!(err, ClientError::Revoked), "{err:?}");
}
