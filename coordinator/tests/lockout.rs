//! Wrong credentials do not lock out right ones (issue 15, item 5): after a flood of
//! wrong API keys, node credentials and join tokens from 127.0.0.1, the admin key, a
//! node and a valid join token from the same address are still served, while the
//! wrong ones keep getting 429. Real binary, real SQLite file, real HTTPS.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use common::enroll_req;
use reqwest::{Method, StatusCode};
use support::{send, start_with};

const NETMAP: &str = "/v1/node/netmap?since=0&wait=0";

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_do_not_lock_out_valid_ones_from_the_same_address() {
    // Five failures at once, then one a minute: every wrong attempt past the fifth is 429.
    let env = start_with(&[
        "--auth-failure-burst",
        "5",
        "--auth-failure-interval",
        "60s",
    ]);
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 5).await;
    let (enrolled, _node) = env.enroll(&token, "host-a").await;

    // 60 wrong API keys and 10 wrong node credentials, all from 127.0.0.1.
    let mut statuses = Vec::new();
    for i in 0..70 {
        let (auth, path) = if i < 60 {
            (format!("swk_00112233445566{:02x}.guess", i), "/v1/segments")
        } else {
            (format!("swn_{}.guess", enrolled.node_id), NETMAP)
        };
        let (s, _, _) = send(&env.raw, &env.url, Method::GET, path, Some(&auth), None).await;
        statuses.push(s);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 65, "{statuses:?}");

    // The valid admin key and the node's credential, same address: served, every time.
    for _ in 0..3 {
        let (s, _, body) = send(
            &env.raw,
            &env.url,
            Method::GET,
            "/v1/segments",
            Some(&env.key),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let (s, _, body) = send(
            &env.raw,
            &env.url,
            Method::GET,
            NETMAP,
            Some(&enrolled.credential),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    // A wrong key is still refused: valid callers do not reset the failures' limit.
    let (s, headers, _) = send(
        &env.raw,
        &env.url,
        Method::GET,
        "/v1/segments",
        Some("swk_0011223344556677.guess"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));

    // Join tokens likewise: 60 wrong ones, then a valid one enrols from the same address.
    let mut bad = token.clone();
    bad.secret = "wrong-secret".into();
    let bad_body = serde_json::to_string(&enroll_req(&bad, "intruder")).unwrap();
    let mut limited = 0;
    for _ in 0..60 {
        let (s, _, _) = send(
            &env.raw,
            &env.url,
            Method::POST,
            "/v1/enroll",
            None,
            Some(&bad_body),
        )
        .await;
        assert!(
            s == StatusCode::FORBIDDEN || s == StatusCode::TOO_MANY_REQUESTS,
            "{s}"
        );
        limited += usize::from(s == StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(limited, 55);
    let good_body = serde_json::to_string(&enroll_req(&token, "host-b")).unwrap();
    let (s, _, text) = send(
        &env.raw,
        &env.url,
        Method::POST,
        "/v1/enroll",
        None,
        Some(&good_body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{text}");
    assert!(env.coord.log_text().contains("throttling a source address"));
}
