//! Every route × every kind of caller against the real binary: the status code, no body
//! on denials, exactly one audit record per successful change (none per refused one),
//! and no secret in the audit log.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use common::{attach_req, enroll_req, Env};
use reqwest::{Method, StatusCode};
use segwire_proto::access::Role;
use segwire_proto::api::CreateToken;
use segwire_proto::JoinToken;
use support::{audit_len, key, send};

/// Callers, in the order of the expectation arrays.
const CALLERS: [&str; 6] = [
    "anonymous",
    "node",
    "viewer",
    "operator",
    "admin",
    "operator(db)",
];

#[derive(Debug, Clone, Copy)]
enum Case {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    SegCreate,
    SegList,
    SegShow,
    SegDelete,
    PolicyShow,
    PolicySet,
    PolicyCheck,
    Flows,
    NodeFlows,
    NodeDetections,
    PeerAdd,
    PeerList,
    PeerConfig,
    PeerRemove,
    SegRotate,
    TokenCreate,
    TokenList,
    TokenRevoke,
    NodeList,
    NodeShow,
    NodeRevoke,
    NetmapOf,
    Members,
    KeyCreate,
    KeyList,
    KeyRevoke,
    KeyRotate,
    Audit,
    Events,
    Enroll,
    NodeNetmap,
    NodeAttach,
    NodeDetach,
    NodeEndpoints,
}

use Case::*;

const A: u16 = 401;
const D: u16 = 403;

/// (case, expected status per caller, is a change).
const TABLE: &[(Case, [u16; 6], bool)] = &[
    (Healthz, [200; 6], false),
    (Readyz, [200; 6], false),
    (Metrics, [200; 6], false),
    (OpenApi, [200; 6], false),
    (SegCreate, [A, D, D, 201, 201, D], true),
    (SegList, [A, D, 200, 200, 200, 200], false),
    (SegShow, [A, D, 200, 200, 200, D], false),
    (SegDelete, [A, D, D, 204, 204, D], true),
    (SegRotate, [A, D, D, 200, 200, D], true),
    (PolicyShow, [A, D, 200, 200, 200, D], false),
    (PolicySet, [A, D, D, 200, 200, D], true),
    (PolicyCheck, [A, D, 200, 200, 200, D], false),
    (Flows, [A, D, 200, 200, 200, 200], false),
    (NodeFlows, [A, 204, D, D, D, D], false),
    (NodeDetections, [A, 204, D, D, D, D], false),
    (PeerAdd, [A, D, D, 201, 201, D], true),
    (PeerList, [A, D, 200, 200, 200, 200], false),
    (PeerConfig, [A, D, D, 200, 200, D], true),
    (PeerRemove, [A, D, D, 204, 204, D], true),
    (TokenCreate, [A, D, D, 201, 201, D], true),
    (TokenList, [A, D, 200, 200, 200, 200], false),
    (TokenRevoke, [A, D, D, 204, 204, D], true),
    (NodeList, [A, D, 200, 200, 200, 200], false),
    (NodeShow, [A, D, 200, 200, 200, D], false),
    (NodeRevoke, [A, D, D, 204, 204, D], true),
    (NetmapOf, [A, 200, D, D, 200, D], false),
    (Members, [A, D, 200, 200, 200, 200], false),
    (KeyCreate, [A, D, D, D, 201, D], true),
    (KeyList, [A, D, D, D, 200, D], false),
    (KeyRevoke, [A, D, D, D, 204, D], true),
    (KeyRotate, [A, D, 201, 201, 201, 201], true),
    (Audit, [A, D, 200, 200, 200, D], false),
    (Events, [A, D, 200, 200, 200, D], false),
    (Enroll, [201; 6], true),
    (NodeNetmap, [A, 200, D, D, D, D], false),
    (NodeAttach, [A, 201, D, D, D, D], true),
    (NodeDetach, [A, 204, D, D, D, D], true),
    (NodeEndpoints, [A, 204, D, D, D, D], true),
];

struct World {
    env: Env,
    creds: [Option<String>; 6],
    node_client: segwire_client::Client,
    n: u32,
    secrets: Vec<String>,
}

fn secret_part(credential: &str) -> String {
    credential.rsplit('.').next().unwrap().to_string()
}

fn peer_body(name: &str) -> String {
    format!(
        r#"{{"segment":"web","name":"{name}","public_key":"{}"}}"#,
        common::random_key()
    )
}

impl World {
    /// Registers an external peer with the admin key (outside the audited call under test).
    async fn add_peer(&self, name: &str) {
        let (s, body) = self
            .env
            .raw(
                Method::POST,
                "/v1/peers",
                Some(&self.env.key),
                Some(&peer_body(name)),
            )
            .await;
        assert_eq!(s.as_u16(), 201, "{body}");
    }

    async fn token(&mut self, segment: &str) -> JoinToken {
        let t: JoinToken = self
            .env
            .admin()
            .create_token(&CreateToken {
                segments: vec![segment.into()],
                labels: Default::default(),
                ttl_seconds: Some(600),
                uses: Some(1),
            })
            .await
            .unwrap()
            .token
            .parse()
            .unwrap();
        self.secrets.push(t.secret.clone());
        t
    }

    fn fresh(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    /// The request for `case` made by caller `who`, creating whatever it needs first.
    async fn prepare(
        &mut self,
        case: Case,
        who: usize,
    ) -> (Method, String, Option<String>, Option<String>) {
        let cred = self.creds[who].clone();
        let n = self.fresh();
        let (m, path, body) = match case {
            Healthz => (Method::GET, "/healthz".into(), None),
            Readyz => (Method::GET, "/readyz".into(), None),
            Metrics => (Method::GET, "/metrics".into(), None),
            OpenApi => (Method::GET, "/v1/openapi.json".into(), None),
            SegCreate => (
                Method::POST,
                "/v1/segments".into(),
                Some(format!(r#"{{"name":"s{n}","cidr":"100.65.{n}.0/24"}}"#)),
            ),
            SegList => (Method::GET, "/v1/segments".into(), None),
            SegShow => (Method::GET, "/v1/segments/web".into(), None),
            SegDelete => {
                self.env
                    .segment(&format!("d{n}"), &format!("100.66.{n}.0/24"))
                    .await;
                (Method::DELETE, format!("/v1/segments/d{n}"), None)
            }
            SegRotate => (Method::POST, "/v1/segments/web/rotate-key".into(), None),
            PolicyShow => (Method::GET, "/v1/segments/web/policy".into(), None),
            Flows => (Method::GET, "/v1/flows".into(), None),
            PeerAdd => (
                Method::POST,
                "/v1/peers".into(),
                Some(peer_body(&format!("ext-{n}"))),
            ),
            PeerList => (Method::GET, "/v1/peers".into(), None),
            PeerConfig => {
                self.add_peer(&format!("cfg-{n}")).await;
                (Method::GET, format!("/v1/peers/cfg-{n}/config"), None)
            }
            PeerRemove => {
                self.add_peer(&format!("rm-{n}")).await;
                (Method::DELETE, format!("/v1/peers/rm-{n}"), None)
            }
            NodeFlows => (
                Method::POST,
                "/v1/node/flows".into(),
                Some(r#"{"flows":[]}"#.into()),
            ),
            PolicySet => (
                Method::PUT,
                "/v1/segments/web/policy".into(),
                Some(r#"{"default":"allow","rules":[]}"#.into()),
            ),
            PolicyCheck => (
                Method::POST,
                "/v1/segments/web/policy/check".into(),
                Some(r#"{"from":"host-a","to":"host-a","port":"tcp/22"}"#.into()),
            ),
            TokenCreate => (
                Method::POST,
                "/v1/tokens".into(),
                Some(r#"{"segments":["web"]}"#.into()),
            ),
            TokenList => (Method::GET, "/v1/tokens".into(), None),
            TokenRevoke => {
                let t = self.token("web").await;
                (Method::DELETE, format!("/v1/tokens/{}", t.id), None)
            }
            NodeList => (Method::GET, "/v1/nodes".into(), None),
            NodeShow => (Method::GET, "/v1/nodes/host-a".into(), None),
            NodeRevoke => {
                let t = self.token("web").await;
                let (r, _) = self.env.enroll(&t, &format!("victim-{n}")).await;
                self.secrets.push(secret_part(&r.credential));
                (Method::DELETE, format!("/v1/nodes/victim-{n}"), None)
            }
            NetmapOf => (Method::GET, "/v1/nodes/host-a/netmap".into(), None),
            Members => (Method::GET, "/v1/members".into(), None),
            KeyCreate => (
                Method::POST,
                "/v1/apikeys".into(),
                Some(r#"{"role":"viewer"}"#.into()),
            ),
            KeyList => (Method::GET, "/v1/apikeys".into(), None),
            KeyRevoke => {
                let k = key(&self.env, Role::Viewer, None).await;
                self.secrets.push(secret_part(&k));
                let id = k
                    .trim_start_matches("swk_")
                    .split('.')
                    .next()
                    .unwrap()
                    .to_string();
                (Method::DELETE, format!("/v1/apikeys/{id}"), None)
            }
            KeyRotate => (Method::POST, "/v1/apikeys/rotate".into(), None),
            Audit => (Method::GET, "/v1/audit".into(), None),
            Events => (Method::GET, "/v1/events".into(), None),
            Enroll => {
                let t = self.token("web").await;
                let req = enroll_req(&t, &format!("new-{n}"));
                (
                    Method::POST,
                    "/v1/enroll".into(),
                    Some(serde_json::to_string(&req).unwrap()),
                )
            }
            NodeNetmap => (Method::GET, "/v1/node/netmap?since=0&wait=0".into(), None),
            NodeAttach => {
                let req = attach_req("web", &format!("netns:c{n}"));
                (
                    Method::POST,
                    "/v1/node/members".into(),
                    Some(serde_json::to_string(&req).unwrap()),
                )
            }
            NodeDetach => {
                let m = self
                    .node_client
                    .attach(&attach_req("web", &format!("netns:x{n}")))
                    .await
                    .unwrap();
                (Method::DELETE, format!("/v1/node/members/{}", m.id), None)
            }
            NodeDetections => {
                let m = self
                    .node_client
                    .attach(&attach_req("web", &format!("netns:d{n}")))
                    .await
                    .unwrap();
                let body = format!(
                    r#"{{"segment":"web","member":"{}","kind":"denied_burst","count":200,"window_ms":900}}"#,
                    m.name
                );
                (Method::POST, "/v1/node/detections".into(), Some(body))
            }
            NodeEndpoints => (
                Method::POST,
                "/v1/node/endpoints".into(),
                Some(format!(r#"{{"endpoints":["198.18.0.{}"]}}"#, n % 250 + 1)),
            ),
        };
        // Rotation replaces the caller's own key: give each call a fresh key of the caller's role.
        let cred = match (case, who) {
            (KeyRotate, 2) => Some(key(&self.env, Role::Viewer, None).await),
            (KeyRotate, 3) => Some(key(&self.env, Role::Operator, None).await),
            (KeyRotate, 4) => Some(key(&self.env, Role::Admin, None).await),
            (KeyRotate, 5) => Some(key(&self.env, Role::Operator, Some(vec!["db"])).await),
            _ => cred,
        };
        (m, path, body, cred)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_for_every_caller() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let t = env.token(&["web"], 1).await;
    let (enrolled, node_client) = env.enroll(&t, "host-a").await;
    node_client
        .attach(&attach_req("web", "host"))
        .await
        .unwrap();
    let viewer = key(&env, Role::Viewer, None).await;
    let operator = key(&env, Role::Operator, None).await;
    let scoped = key(&env, Role::Operator, Some(vec!["db"])).await;
    let admin = env.key.clone();
    let mut world = World {
        creds: [
            None,
            Some(enrolled.credential.clone()),
            Some(viewer.clone()),
            Some(operator.clone()),
            Some(admin.clone()),
            Some(scoped.clone()),
        ],
        secrets: [
            &t.secret,
            &enrolled.credential,
            &viewer,
            &operator,
            &admin,
            &scoped,
        ]
        .iter()
        .map(|s| secret_part(s))
        .collect(),
        node_client,
        n: 0,
        env,
    };
    let mut failures = Vec::new();
    for (case, expected, changes) in TABLE {
        for (who, want) in expected.iter().enumerate() {
            let (method, path, body, cred) = world.prepare(*case, who).await;
            let before = audit_len(&world.env).await;
            let (status, _, text) = send(
                &world.env.raw,
                &world.env.url,
                method.clone(),
                &path,
                cred.as_deref(),
                body.as_deref(),
            )
            .await;
            let after = audit_len(&world.env).await;
            if status.as_u16() != *want {
                failures.push(format!(
                    "{case:?} as {}: {method} {path} -> {status} (want {want}) {text:.120}",
                    CALLERS[who]
                ));
                continue;
            }
            let denied = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            if denied && !text.is_empty() {
                failures.push(format!(
                    "{case:?} as {}: denial has a body: {text:.120}",
                    CALLERS[who]
                ));
            }
            let audited = after - before;
            let want_audit = usize::from(*changes && status.is_success());
            if audited != want_audit {
                failures.push(format!(
                    "{case:?} as {}: {audited} audit records (want {want_audit})",
                    CALLERS[who]
                ));
            }
            // Keep secrets shown once, to check the audit log never holds them.
            if status.is_success() {
                for field in ["key", "credential", "token"] {
                    if let Some(s) = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v[field].as_str().map(String::from))
                    {
                        world.secrets.push(secret_part(&s));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // No secret (token, key, node credential, segment key) ever reaches the audit log.
    let map = world
        .env
        .admin()
        .call_json::<(), segwire_proto::netmap::NetMap>(
            Method::GET,
            "/v1/nodes/host-a/netmap",
            None,
        )
        .await
        .unwrap();
    world
        .secrets
        .extend(map.members.iter().map(|m| m.psk.clone()));
    let f = segwire_client::access::AuditFilter {
        limit: Some(10_000),
        ..Default::default()
    };
    let records = world.env.admin().audit(&f).await.unwrap();
    let dump = serde_json::to_string(&records).unwrap();
    for s in &world.secrets {
        assert!(!dump.contains(s.as_str()), "a secret is in the audit log");
    }
    // Records say who, what, to what and from where.
    let create = records
        .iter()
        .find(|r| r.action == "segment.create" && r.target.starts_with("segment:s"))
        .unwrap();
    assert!(create.actor.starts_with("key:"), "{create:?}");
    assert_eq!(create.source.as_deref(), Some("127.0.0.1"));
    let cidr = create.after.as_ref().unwrap()["cidr"].as_str().unwrap();
    assert!(
        create.before.is_none() && cidr.starts_with("100.65."),
        "{create:?}"
    );
    let enroll = records.iter().find(|r| r.action == "node.enroll").unwrap();
    assert!(enroll.actor.starts_with("node:"), "{enroll:?}");
    // The audit filters work.
    let only = world
        .env
        .admin()
        .audit(&segwire_client::access::AuditFilter {
            target: Some("segment:web".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!only.is_empty() && only.iter().all(|r| r.target == "segment:web"));
}

const DENY: &str = r#"{"default":"deny","rules":[]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn scoped_keys_see_only_their_segments_and_the_cli_manages_keys() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let conf = env.config();
    let out = segwire_testkit::cli_ok(
        &conf,
        &[
            "apikey",
            "create",
            "--role",
            "viewer",
            "--segment",
            "db",
            "--ttl",
            "30d",
        ],
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    let scoped = out.trim().to_string();
    let (s, _, body) = send(
        &env.raw,
        &env.url,
        Method::GET,
        "/v1/segments",
        Some(&scoped),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let segs: Vec<segwire_proto::api::Segment> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        segs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["db"]
    );
    // A key scoped to `db` works on `db` (reads, and changes for an operator) and on
    // nothing else.
    let operator = key(&env, Role::Operator, Some(vec!["db"])).await;
    let calls: [(&str, Method, &str, Option<&str>, StatusCode); 10] = [
        (
            &scoped,
            Method::GET,
            "/v1/segments/db",
            None,
            StatusCode::OK,
        ),
        (
            &scoped,
            Method::GET,
            "/v1/segments/db/policy",
            None,
            StatusCode::OK,
        ),
        (
            &scoped,
            Method::GET,
            "/v1/segments/web",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &scoped,
            Method::GET,
            "/v1/segments/web/policy",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &scoped,
            Method::PUT,
            "/v1/segments/db/policy",
            Some(DENY),
            StatusCode::FORBIDDEN,
        ),
        (
            &operator,
            Method::GET,
            "/v1/segments/db",
            None,
            StatusCode::OK,
        ),
        (
            &operator,
            Method::PUT,
            "/v1/segments/db/policy",
            Some(DENY),
            StatusCode::OK,
        ),
        (
            &operator,
            Method::POST,
            "/v1/segments/db/rotate-key",
            None,
            StatusCode::OK,
        ),
        (
            &operator,
            Method::PUT,
            "/v1/segments/web/policy",
            Some(DENY),
            StatusCode::FORBIDDEN,
        ),
        (
            &operator,
            Method::POST,
            "/v1/segments/web/rotate-key",
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    for (cred, method, path, body, want) in calls {
        let (s, _, text) = send(&env.raw, &env.url, method.clone(), path, Some(cred), body).await;
        assert_eq!(s, want, "{method} {path}: {text}");
    }
    let db: segwire_proto::api::Segment = serde_json::from_str(
        &send(
            &env.raw,
            &env.url,
            Method::GET,
            "/v1/segments/db",
            Some(&scoped),
            None,
        )
        .await
        .2,
    )
    .unwrap();
    assert_eq!(db.name, "db");
    let policy = env.admin().get_policy("db").await.unwrap();
    assert_eq!(policy.version, 1, "the scoped operator set the policy");
    assert_eq!(policy.policy["default"], "deny");
    let list = segwire_testkit::cli_ok(&conf, &["apikey", "list"]);
    assert!(
        list.contains("viewer") && list.contains("db") && list.contains("bootstrap admin key"),
        "{list}"
    );
    // An admin key cannot be scoped; the last admin key cannot be revoked.
    let out = segwire_testkit::cli(
        &conf,
        &["apikey", "create", "--role", "admin", "--segment", "db"],
    );
    assert!(!out.status.success());
    let admin_id = env
        .key
        .trim_start_matches("swk_")
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let out = segwire_testkit::cli(&conf, &["apikey", "revoke", &admin_id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("last live admin key"));
    // Rotating the bootstrap key: the config gets the new key, the old one stops working.
    segwire_testkit::cli_ok(&conf, &["apikey", "rotate", "--update-config"]);
    let (s, _, _) = send(
        &env.raw,
        &env.url,
        Method::GET,
        "/v1/segments",
        Some(&env.key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    segwire_testkit::cli_ok(&conf, &["segment", "list"]);
    let audit = segwire_testkit::cli_ok(&conf, &["audit", "--since", "1h", "--target", "apikey:"]);
    assert!(
        audit.contains("apikey.rotate") && audit.contains("apikey.create"),
        "{audit}"
    );
}
