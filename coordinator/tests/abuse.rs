//! Bad input, bad credentials, races and secrets: the coordinator refuses with a clear
//! 4xx, changes nothing, never answers 5xx, and never shows a secret.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{attach_req, enroll_req, Env};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use segwire_client::Client;

async fn segment_names(env: &Env) -> Vec<String> {
    env.admin()
        .list_segments()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_segment_input_changes_nothing() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let key = env.key.clone();
    let long = "a".repeat(5000);
    let bodies: Vec<String> = vec![
        "{".into(),
        "not json".into(),
        "[]".into(),
        r#"{"name":"x"}"#.into(),
        r#"{"name":"x","cidr":"100.64.3.0/24","extra":1}"#.into(),
        r#"{"name":"x","cidr":"100.64.3.0/33"}"#.into(),
        r#"{"name":"x","cidr":"100.64.3.1/24"}"#.into(),
        r#"{"name":"x","cidr":"0.0.0.0/0"}"#.into(),
        r#"{"name":"x","cidr":"100.64.1.128/25"}"#.into(),
        r#"{"name":"x","cidr":"100.64.0.0/16"}"#.into(),
        r#"{"name":"web","cidr":"100.64.7.0/24"}"#.into(),
        r#"{"name":"a/b","cidr":"100.64.3.0/24"}"#.into(),
        r#"{"name":"..","cidr":"100.64.3.0/24"}"#.into(),
        r#"{"name":"a b","cidr":"100.64.3.0/24"}"#.into(),
        "{\"name\":\"a\\u0000b\",\"cidr\":\"100.64.3.0/24\"}".into(),
        format!(r#"{{"name":"{long}","cidr":"100.64.3.0/24"}}"#),
        r#"{"name":"x","cidr":"100.64.3.0/24","default":"maybe"}"#.into(),
        r#"{"name":7,"cidr":"100.64.3.0/24"}"#.into(),
    ];
    for body in &bodies {
        let (status, text) = env
            .raw(Method::POST, "/v1/segments", Some(&key), Some(body))
            .await;
        assert!(status.is_client_error(), "{body:.60} -> {status}");
        let err: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{body:.60}: body {text:?}"));
        let msg = err["error"].as_str().unwrap();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg}");
    }
    assert_eq!(segment_names(&env).await, ["web"]);
    // Conflicts are 409.
    let (s, _) = env
        .raw(
            Method::POST,
            "/v1/segments",
            Some(&key),
            Some(r#"{"name":"web","cidr":"100.64.7.0/24"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = env
        .raw(
            Method::POST,
            "/v1/segments",
            Some(&key),
            Some(r#"{"name":"x","cidr":"100.64.1.128/25"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Bad query strings are JSON errors too; a wrong method is 405 for anyone.
    let (s, body) = env
        .raw(
            Method::DELETE,
            "/v1/segments/web?force=yes",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(err["error"].is_string(), "{body}");
    let (s, _) = env.raw(Method::POST, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // Odd paths.
    for path in [
        "/v1/segments/..",
        "/v1/segments/a%2Fb",
        "/v1/segments/%00",
        "/v1/nope",
    ] {
        let (s, _) = env.raw(Method::GET, path, Some(&key), None).await;
        assert!(s.is_client_error(), "{path} -> {s}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_credentials_get_empty_401() {
    let env = Env::start();
    let wrong_secret = format!("{}x", env.key);
    let cases: [Option<&str>; 5] = [
        None,
        Some("nonsense"),
        Some(&wrong_secret),
        Some("swk_0000000000000000.abc"),
        Some("swn_0000000000000000.abc"),
    ];
    for auth in cases {
        for (method, path) in [
            (Method::GET, "/v1/segments"),
            (Method::POST, "/v1/tokens"),
            (Method::GET, "/v1/node/netmap"),
        ] {
            let (s, body) = env.raw(method.clone(), path, auth, Some("{}")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?} {path}");
            assert!(body.is_empty(), "401 must have no body: {body:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_with_a_reason() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let admin = env.admin();
    let good = env.token(&["web"], 1).await;
    let anon = Client::new(&good.url, good.pin, None).unwrap();

    let mut unknown = good.clone();
    unknown.id = "ffffffffffffffff".into();
    let mut wrong = good.clone();
    wrong.secret = "AAAA".into();
    for (t, want) in [(&unknown, "not valid"), (&wrong, "not valid")] {
        let e = anon.enroll(&enroll_req(t, "n1")).await.unwrap_err();
        assert_eq!(e.status(), Some(403), "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }
    // Expired.
    let short = admin
        .create_token(&segwire_proto::api::CreateToken {
            segments: vec!["web".into()],
            labels: Default::default(),
            ttl_seconds: Some(1),
            uses: Some(1),
        })
        .await
        .unwrap();
    let short: segwire_proto::JoinToken = short.token.parse().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = anon.enroll(&enroll_req(&short, "n1")).await.unwrap_err();
    assert!(
        e.status() == Some(403) && e.to_string().contains("expired"),
        "{e}"
    );
    // Used up.
    anon.enroll(&enroll_req(&good, "n1")).await.unwrap();
    let e = anon.enroll(&enroll_req(&good, "n2")).await.unwrap_err();
    assert!(
        e.status() == Some(403) && e.to_string().contains("used up"),
        "{e}"
    );
    // Bad enrolment bodies.
    let t = env.token(&["web"], 5).await;
    for (name, key) in [
        ("Bad Name", common::random_key()),
        ("ok", "short".to_string()),
        (&"n".repeat(5000), common::random_key()),
    ] {
        let mut req = enroll_req(&t, "x");
        req.name = name.to_string();
        req.public_key = key;
        let e = anon.enroll(&req).await.unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");
    }
    // Token creation input.
    for body in [
        r#"{"segments":[]}"#,
        r#"{"segments":["nope"]}"#,
        r#"{"segments":["web"],"ttl_seconds":0}"#,
        r#"{"segments":["web"],"uses":0}"#,
        r#"{"segments":["web"],"labels":{"a b":"c"}}"#,
    ] {
        let (s, _) = env
            .raw(Method::POST, "/v1/tokens", Some(&env.key), Some(body))
            .await;
        assert!(s.is_client_error(), "{body} -> {s}");
    }
    // Only one node exists, no 5xx anywhere above.
    assert_eq!(admin.list_nodes().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_reads_only_its_own_netmap_and_segments() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let tw = env.token(&["web"], 2).await;
    let (a, ca) = env.enroll(&tw, "a").await;
    let (b, _cb) = env.enroll(&tw, "b").await;
    let (s, _) = env
        .raw(
            Method::GET,
            &format!("/v1/nodes/{}/netmap", b.node_id),
            Some(&a.credential),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env
        .raw(
            Method::GET,
            &format!("/v1/nodes/{}/netmap", a.node_id),
            Some(&a.credential),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // A node credential is not an API key: authenticated, but not admitted (403, no body).
    let (s, body) = env
        .raw(Method::GET, "/v1/segments", Some(&a.credential), None)
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::FORBIDDEN, ""));
    // A segment the token did not grant.
    let e = ca.attach(&attach_req("db", "host")).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    // Another node's member cannot be detached.
    let m = _cb.attach(&attach_req("web", "host")).await.unwrap();
    let e = ca.detach(&m.id).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_enrolments_with_a_single_use_token() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let t = env.token(&["web"], 1).await;
    let anon = Client::new(&t.url, t.pin, None).unwrap();
    let results = join_all((0..50).map(|i| {
        let anon = anon.clone();
        let req = enroll_req(&t, &format!("n{i}"));
        async move { anon.enroll(&req).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.status(), Some(403), "{r}");
    }
    assert_eq!(env.admin().list_nodes().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn thousand_concurrent_allocations_get_distinct_addresses() {
    let env = Env::start();
    env.segment("big", "100.64.4.0/22").await;
    let t = env.token(&["big"], 1).await;
    let (_, node) = env.enroll(&t, "n").await;
    let results = join_all((0..1000).map(|i| {
        let node = node.clone();
        async move { node.attach(&attach_req("big", &format!("pid:{i}"))).await }
    }))
    .await;
    let mut seen = HashSet::new();
    for r in results {
        let m = r.unwrap();
        let ip: std::net::Ipv4Addr = m
            .address
            .as_deref()
            .expect("an IPv4 address")
            .parse()
            .unwrap();
        assert!(
            ip != "100.64.4.0".parse::<std::net::Ipv4Addr>().unwrap()
                && ip != "100.64.7.255".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert!(seen.insert(ip), "duplicate {ip}");
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(
        env.admin().list_members(Some("big")).await.unwrap().len(),
        1000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_responses_or_logs() {
    // At trace, so that no debug or trace event leaks what info would not show.
    let env = Env::start_logged("trace");
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let tw = env.token(&["web"], 1).await;
    let td = env.token(&["db"], 1).await;
    let (a, ca) = env.enroll(&tw, "a").await;
    let (d, cd) = env.enroll(&td, "d").await;
    ca.attach(&attach_req("web", "host")).await.unwrap();
    cd.attach(&attach_req("db", "host")).await.unwrap();
    let psk_db = cd.netmap(0, 0).await.unwrap().unwrap().members[0]
        .psk
        .clone();
    let psk_web = ca.netmap(0, 0).await.unwrap().unwrap().members[0]
        .psk
        .clone();
    let admin_secret = env.key.split('.').nth(1).unwrap().to_string();
    let secrets = [
        tw.secret.clone(),
        td.secret.clone(),
        psk_db.clone(),
        psk_web.clone(),
        admin_secret,
        a.credential.split('.').nth(1).unwrap().to_string(),
        d.credential.split('.').nth(1).unwrap().to_string(),
    ];

    // Admin listings show no secrets.
    let key = env.key.clone();
    let mut seen = String::new();
    for path in [
        "/v1/segments",
        "/v1/segments/web",
        "/v1/tokens",
        "/v1/nodes",
        "/v1/nodes/a",
        "/v1/members",
    ] {
        let (status, body) = env.raw(Method::GET, path, Some(&key), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        seen.push_str(&body);
    }
    // Node a's netmap has its own PSK only.
    let (status, map_a) = env
        .raw(
            Method::GET,
            "/v1/node/netmap?wait=0",
            Some(&a.credential),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{map_a}");
    assert!(map_a.contains(&psk_web));
    assert!(
        !map_a.contains(&psk_db),
        "a node must not see another segment's key"
    );
    // Errors do not echo secrets either.
    let mut bad = tw.clone();
    bad.secret = format!("{}zz", tw.secret);
    let anon = Client::new(&tw.url, tw.pin, None).unwrap();
    let e = anon.enroll(&enroll_req(&bad, "z")).await.unwrap_err();
    seen.push_str(&e.to_string());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = env.coord.log_text();
    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "a response leaked a secret");
        assert!(!log.contains(s.as_str()), "the log leaked a secret");
    }
    assert!(log.contains("node enrolled"), "log is captured");
    assert!(log.contains("TRACE"), "the log runs at trace");
}
