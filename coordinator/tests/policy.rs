//! Policies through the API and CLI: validation, versions, checks, and netmap pruning.
#![allow(clippy::unwrap_used)]

mod common;

use common::{attach_req, Env};
use segwire_proto::api::{PolicyCheckResult, PolicyDoc};
use segwire_testkit::{cli, cli_ok};

const WEB_DB: &str = r#"{
  "default": "deny",
  "rules": [
    { "name": "web-to-db", "from": { "labels": { "app": "web" } },
      "to": { "labels": { "app": "db" } }, "ports": ["tcp/5432"] }
  ]
}"#;

#[tokio::test(flavor = "multi_thread")]
async fn policy_set_show_check_and_prune() {
    let env = Env::start();
    let conf = env.config();
    env.segment("app", "100.64.5.0/24").await;
    let t = env.token(&["app"], 3).await;
    let (_, n1) = env.enroll(&t, "n1").await;
    let (_, n2) = env.enroll(&t, "n2").await;
    let (_, n3) = env.enroll(&t, "n3").await;
    let mut web = attach_req("app", "netns:web");
    web.name = Some("web".into());
    web.labels.insert("app".into(), "web".into());
    let mut db = attach_req("app", "netns:db");
    db.name = Some("db".into());
    db.labels.insert("app".into(), "db".into());
    let mut other = attach_req("app", "netns:other");
    other.name = Some("other".into());
    n1.attach(&web).await.unwrap();
    n2.attach(&db).await.unwrap();
    n3.attach(&other).await.unwrap();

    // Default allow: everyone sees everyone.
    let m = n3.netmap(0, 0).await.unwrap().unwrap();
    assert_eq!(m.members[0].peers.len(), 2);
    let shown: PolicyDoc =
        serde_json::from_str(&cli_ok(&conf, &["policy", "show", "app", "-o", "json"])).unwrap();
    assert_eq!(shown.version, 0);

    // Offline validation, then set.
    let file = env.dir.path().join("p.json");
    std::fs::write(&file, WEB_DB).unwrap();
    let out = cli_ok(
        &conf,
        &["policy", "validate", "--file", file.to_str().unwrap()],
    );
    assert!(out.contains("valid (1 rule)"), "{out}");
    let v = m.version;
    cli_ok(
        &conf,
        &["policy", "set", "app", "--file", file.to_str().unwrap()],
    );
    let shown: PolicyDoc =
        serde_json::from_str(&cli_ok(&conf, &["policy", "show", "app", "-o", "json"])).unwrap();
    assert_eq!(shown.version, 1);
    assert_eq!(shown.policy["rules"][0]["name"], "web-to-db");

    // Pruned netmaps: web and db see each other, other sees nobody.
    let m3 = n3.netmap(v, 5).await.unwrap().unwrap();
    assert!(m3.members[0].peers.is_empty(), "{:?}", m3.members[0].peers);
    assert_eq!(m3.members[0].policy_version, 1);
    let m1 = n1.netmap(0, 0).await.unwrap().unwrap();
    let names: Vec<_> = m1.members[0]
        .peers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["db"]);
    assert_eq!(m1.members[0].policy["default"], "deny");

    // Checks.
    let check = |from: &str, to: &str, port: &str| -> PolicyCheckResult {
        serde_json::from_str(&cli_ok(
            &conf,
            &[
                "policy", "check", "app", "--from", from, "--to", to, "--port", port, "-o", "json",
            ],
        ))
        .unwrap()
    };
    let r = check("web", "db", "tcp/5432");
    assert!(r.allowed);
    assert_eq!(r.rule.as_deref(), Some("web-to-db"));
    assert!(!check("web", "db", "tcp/22").allowed);
    assert!(!check("db", "web", "tcp/5432").allowed);
    let text = cli_ok(
        &conf,
        &[
            "policy", "check", "app", "--from", "web", "--to", "db", "--port", "tcp/5432",
        ],
    );
    assert_eq!(text.trim(), "allowed by rule \"web-to-db\"");

    // An invalid policy is refused, names the rule, and the old one stays.
    std::fs::write(
        &file,
        r#"{"default":"deny","rules":[{"name":"bad","from":"*","to":"*","ports":["tcp/99999"]}]}"#,
    )
    .unwrap();
    let out = cli(
        &conf,
        &["policy", "validate", "--file", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"bad\""));
    let (status, body) = env
        .raw(reqwest::Method::PUT, "/v1/segments/app/policy", Some(&env.key), Some(r#"{"default":"deny","rules":[{"name":"bad","from":"*","to":"*","ports":["tcp/99999"]}]}"#))
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(body.contains("bad") && body.contains("65535"), "{body}");
    let shown: PolicyDoc =
        serde_json::from_str(&cli_ok(&conf, &["policy", "show", "app", "-o", "json"])).unwrap();
    assert_eq!(shown.version, 1);
    for junk in [
        "",
        "{",
        "[]",
        "{\"default\":\"allow\",\"rules\":[],\"x\":1}",
    ] {
        let (s, _) = env
            .raw(
                reqwest::Method::PUT,
                "/v1/segments/app/policy",
                Some(&env.key),
                Some(junk),
            )
            .await;
        assert_eq!(s, reqwest::StatusCode::BAD_REQUEST, "{junk:?}");
    }
}
