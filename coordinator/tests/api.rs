//! The real coordinator binary over HTTPS: every endpoint's happy path, state surviving
//! restarts, the CLI, and the long-poll.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{attach_req, Env};
use reqwest::{Method, StatusCode};
use segwire_proto::api::{EndpointReport, Member, Node, Segment, TokenInfo};
use segwire_testkit::{cli, cli_ok};

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_survives_restart() {
    let mut env = Env::start();
    let conf = env.config();

    // Segments through the CLI.
    cli_ok(
        &conf,
        &["segment", "create", "web", "--cidr", "100.64.1.0/24"],
    );
    let out = cli_ok(
        &conf,
        &[
            "segment",
            "create",
            "db",
            "--cidr",
            "100.64.2.0/24",
            "--default",
            "deny",
            "-o",
            "json",
        ],
    );
    let db: Segment = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            db.name.as_str(),
            db.cidr.as_deref().expect("an IPv4 network"),
            db.psk_version
        ),
        ("db", "100.64.2.0/24", 1)
    );
    let table = cli_ok(&conf, &["segment", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("web") && table.contains("100.64.2.0/24"),
        "{table}"
    );

    // A token printed alone on stdout, accepted by enrolment.
    let token_line = cli_ok(
        &conf,
        &[
            "token",
            "create",
            "--segment",
            "web",
            "--segment",
            "db",
            "--uses",
            "2",
            "--label",
            "team=a",
        ],
    );
    assert_eq!(token_line.lines().count(), 1);
    let token: segwire_proto::JoinToken = token_line.trim().parse().unwrap();
    let (enrolled, node) = env.enroll(&token, "host-a").await;
    assert_eq!(enrolled.segments, vec!["db".to_string(), "web".to_string()]);
    assert_eq!(enrolled.labels.get("team").map(String::as_str), Some("a"));
    let (_, node_b) = env.enroll(&token, "host-b").await;

    // Members get addresses; the netmap shows peers and the segment key.
    let m1: Member = node.attach(&attach_req("web", "netns:c1")).await.unwrap();
    let m2: Member = node_b.attach(&attach_req("web", "netns:c2")).await.unwrap();
    assert_eq!(m1.address.as_deref(), Some("100.64.1.1"));
    assert_eq!(m2.address.as_deref(), Some("100.64.1.2"));
    assert_eq!(m1.labels.get("team").map(String::as_str), Some("a"));
    node.report_endpoints(&EndpointReport {
        endpoints: vec!["198.18.0.9".into()],
    })
    .await
    .unwrap();
    let map = node_b.netmap(0, 0).await.unwrap().unwrap();
    assert_eq!(map.members.len(), 1);
    let mm = &map.members[0];
    assert_eq!(
        (
            mm.segment.as_str(),
            mm.address.as_deref().expect("an IPv4 address"),
            mm.psk_version
        ),
        ("web", "100.64.1.2", 1)
    );
    assert_eq!(mm.peers.len(), 1);
    assert_eq!(mm.peers[0].address.as_deref(), Some("100.64.1.1"));
    assert!(
        mm.peers[0]
            .endpoints
            .contains(&"198.18.0.9:51820".to_string()),
        "{:?}",
        mm.peers[0].endpoints
    );

    // Listing through the CLI.
    let members: Vec<Member> = serde_json::from_str(&cli_ok(
        &conf,
        &["member", "list", "--segment", "web", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(members.len(), 2);
    let nodes: Vec<Node> =
        serde_json::from_str(&cli_ok(&conf, &["node", "list", "-o", "json"])).unwrap();
    assert_eq!(nodes.len(), 2);
    let shown = cli_ok(&conf, &["node", "show", "host-a"]);
    assert!(shown.contains("host-a"), "{shown}");

    // Key rotation bumps the version and reaches the netmap: the next key first, beside
    // the current one (host-a has not acknowledged it, so the rotation stays there).
    let before = map.version;
    cli_ok(&conf, &["segment", "rotate-key", "web"]);
    let map2 = node_b.netmap(before, 5).await.unwrap().unwrap();
    assert!(map2.version > before);
    assert_eq!(map2.members[0].psk_version, 2);
    assert_eq!(map2.members[0].psk, mm.psk);
    let next = map2.members[0].psk_next.clone().expect("the next key");
    assert_ne!(next, mm.psk);

    // Restart: everything is still there, and old credentials still work.
    env.coord.restart();
    let segs: Vec<Segment> =
        serde_json::from_str(&cli_ok(&conf, &["segment", "list", "-o", "json"])).unwrap();
    assert_eq!(
        segs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["db", "web"]
    );
    assert_eq!(segs[1].psk_version, 2);
    assert_eq!(segs[1].members, 2);
    let map3 = node_b.netmap(0, 0).await.unwrap().unwrap();
    assert_eq!(map3.members[0].psk, map2.members[0].psk);
    assert_eq!(map3.members[0].psk_next, Some(next));
    assert_eq!(map3.members[0].peers.len(), 1);
    let tokens: Vec<TokenInfo> =
        serde_json::from_str(&cli_ok(&conf, &["token", "list", "-o", "json"])).unwrap();
    assert_eq!(tokens[0].state, "used");

    // Deleting a segment with members is refused unless forced.
    let out = cli(&conf, &["segment", "delete", "web"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("still has 2 member"), "{err}");

    // Detach releases; revoke removes the node from peers' netmaps.
    node.detach(&m1.id).await.unwrap();
    let map4 = node_b.netmap(0, 0).await.unwrap().unwrap();
    assert!(map4.members[0].peers.is_empty());
    node.attach(&attach_req("web", "netns:c3")).await.unwrap();
    cli_ok(&conf, &["node", "revoke", "host-a"]);
    let map5 = node_b.netmap(0, 0).await.unwrap().unwrap();
    assert!(map5.members[0].peers.is_empty());
    assert_eq!(node.netmap(0, 0).await.unwrap_err().status(), Some(401));

    cli_ok(&conf, &["segment", "delete", "web", "--force"]);
    let out = cli(&conf, &["segment", "show", "web"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no segment named"));

    // Token revoke.
    let t2 = env.token(&["db"], 1).await;
    cli_ok(&conf, &["token", "revoke", &t2.id]);
    let anon = segwire_client::Client::new(&t2.url, t2.pin, None).unwrap();
    let err = anon
        .enroll(&common::enroll_req(&t2, "host-c"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn released_addresses_are_quarantined() {
    let env = Env::start();
    env.segment("tiny", "100.64.9.0/30").await;
    let t = env.token(&["tiny"], 1).await;
    let (_, node) = env.enroll(&t, "n1").await;
    let a = node.attach(&attach_req("tiny", "netns:a")).await.unwrap();
    let b = node.attach(&attach_req("tiny", "netns:b")).await.unwrap();
    assert_eq!(
        (
            a.address.as_deref().expect("an IPv4 address"),
            b.address.as_deref().expect("an IPv4 address")
        ),
        ("100.64.9.1", "100.64.9.2")
    );
    let full = node
        .attach(&attach_req("tiny", "netns:c"))
        .await
        .unwrap_err();
    assert_eq!(full.status(), Some(409));
    node.detach(&a.id).await.unwrap();
    // The freed address is held back, so the segment is still full.
    let again = node
        .attach(&attach_req("tiny", "netns:c"))
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(409));
    assert!(again.to_string().contains("released recently"), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn long_poll_waits_and_wakes_only_affected_nodes() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let tw = env.token(&["web"], 2).await;
    let td = env.token(&["db"], 1).await;
    let (_, a) = env.enroll(&tw, "a").await;
    let (_, b) = env.enroll(&tw, "b").await;
    let (_, d) = env.enroll(&td, "d").await;
    a.attach(&attach_req("web", "host")).await.unwrap();
    d.attach(&attach_req("db", "host")).await.unwrap();
    let va = a.netmap(0, 0).await.unwrap().unwrap().version;
    let vd = d.netmap(0, 0).await.unwrap().unwrap().version;

    // Nothing newer: 204 after the wait.
    let t0 = Instant::now();
    assert!(a.netmap(va, 1).await.unwrap().is_none());
    assert!(t0.elapsed() >= Duration::from_millis(900));

    // A change in web wakes a (quickly) but not d.
    let a2 = a.clone();
    let wa = tokio::spawn(async move {
        let t = Instant::now();
        (a2.netmap(va, 20).await, t.elapsed())
    });
    let d2 = d.clone();
    let wd = tokio::spawn(async move { d2.netmap(vd, 2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.attach(&attach_req("web", "host")).await.unwrap();
    let (got, took) = wa.await.unwrap();
    let got = got.unwrap().unwrap();
    assert!(got.version > va);
    assert_eq!(got.members[0].peers.len(), 1);
    assert!(took < Duration::from_secs(5), "woke after {took:?}");
    assert!(
        wd.await.unwrap().unwrap().is_none(),
        "db node must not see a change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_and_healthz() {
    let env = Env::start();
    let (s, body) = env.raw(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.trim(), "ok");
    let (s, body) = env.raw(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    for p in [
        "/v1/segments",
        "/v1/tokens",
        "/v1/enroll",
        "/v1/node/netmap",
        "/v1/node/members",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_errors_are_one_sentence() {
    let env = Env::start();
    // Wrong pin.
    let mut conf = env.coord.conf();
    conf.ca_pin = segwire_proto::CaPin([7; 32]);
    let bad = env.dir.path().join("bad.conf");
    std::fs::write(&bad, conf.render()).unwrap();
    let out = cli(&bad, &["segment", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the CA pin"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Nothing listening.
    let mut conf = env.coord.conf();
    conf.url = format!("https://127.0.0.1:{}", segwire_testkit::free_port());
    std::fs::write(&bad, conf.render()).unwrap();
    let out = cli(&bad, &["segment", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot reach the coordinator"),
        "{err}"
    );
    // Missing config.
    let out = cli(&env.dir.path().join("nope.conf"), &["segment", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot read"),
        "{err}"
    );
    // A server error message reaches the user as is.
    let out = cli(
        &env.config(),
        &["segment", "create", "x", "--cidr", "100.64.0.1/24"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("host bits"), "{err}");
    assert!(!err.contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_conf_is_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::start();
    let mode = std::fs::metadata(env.config())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let before = env.coord.conf();
    assert!(before.url.starts_with("https://127.0.0.1:"));
    env.coord.restart();
    let after = env.coord.conf();
    assert_eq!(before.api_key, after.api_key);
    assert_eq!(before.ca_pin, after.ca_pin);
    let key_mode = std::fs::metadata(env.coord.data_dir.join("ca.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
}

#[test]
fn a_database_named_by_url_is_private_too() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("elsewhere.db");
    let url = format!("sqlite://{}", db.display());
    let coord = segwire_testkit::Coordinator::start(
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &["--db", &url],
    );
    let _ = coord.conf();
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}
