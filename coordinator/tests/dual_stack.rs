//! Dual-stack segments through the CLI and API: `--cidr` with an IPv6 prefix, IPAM v6
//! (lowest free, quarantine on release, no overlap), `segment update --cidr` giving every
//! member an IPv6 address without touching IPv4, netmaps and `policy check` for IPv6.
#![allow(clippy::unwrap_used)]

mod common;

use common::{attach_req, Env, PG_ONLY};
use segwire_proto::api::{PolicyCheckResult, Segment};
use segwire_testkit::{cli, cli_ok};

#[tokio::test(flavor = "multi_thread")]
async fn dual_stack_segments_allocate_and_route_ipv6() {
    let env = Env::start();
    let conf = env.config();

    // Both prefixes, as two flags and in the comma form.
    let seg: Segment = serde_json::from_str(&cli_ok(
        &conf,
        &[
            "segment",
            "create",
            "app",
            "--cidr",
            "100.64.7.0/24",
            "--cidr",
            "fd00:7::/64",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (
            seg.cidr.as_deref().expect("an IPv4 network"),
            seg.cidr6.as_deref()
        ),
        ("100.64.7.0/24", Some("fd00:7::/64"))
    );
    cli_ok(
        &conf,
        &[
            "segment",
            "create",
            "other",
            "--cidr",
            "100.64.8.0/24,fd00:8::/64",
        ],
    );
    let listed = cli_ok(&conf, &["segment", "list"]);
    assert!(listed.contains("100.64.7.0/24,fd00:7::/64"), "{listed}");
    // Refused: overlapping IPv6, out-of-range prefixes, two IPv6 prefixes.
    for (cidrs, says) in [
        ("100.64.9.0/24,fd00:7::/80", "overlaps segment \"app\""),
        ("100.64.9.0/24,fd00:9::/40", "between /48 and /124"),
        ("100.64.9.0/24,fd00:9::/126", "between /48 and /124"),
        ("fd00:9::/64,fd00:a::/64", "at most one IPv6"),
    ] {
        let out = cli(&conf, &["segment", "create", "bad", "--cidr", cidrs]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{cidrs}: {err}"
        );
    }

    // Members get the lowest free address of each prefix.
    let t = env.token(&["app", "other"], 3).await;
    let (_, n1) = env.enroll(&t, "n1").await;
    let (_, n2) = env.enroll(&t, "n2").await;
    let mut web = attach_req("app", "netns:web");
    web.name = Some("web".into());
    web.labels.insert("app".into(), "web".into());
    let mut db = attach_req("app", "netns:db");
    db.name = Some("db".into());
    db.labels.insert("app".into(), "db".into());
    let w = n1.attach(&web).await.unwrap();
    let d = n2.attach(&db).await.unwrap();
    let m1 = n1.netmap(0, 0).await.unwrap().unwrap();
    let own = &m1.members[0];
    assert_eq!(own.address.as_deref(), Some("100.64.7.1"));
    assert_eq!(own.address6.as_deref(), Some("fd00:7::1"));
    assert_eq!(own.cidr6.as_deref(), Some("fd00:7::/64"));
    assert_eq!(own.peers[0].address6.as_deref(), Some("fd00:7::2"));

    // A released IPv6 address is held back like an IPv4 one.
    n2.detach(&d.id).await.unwrap();
    let again = n2.attach(&db).await.unwrap();
    let m2 = n2.netmap(0, 0).await.unwrap().unwrap();
    let db_map = m2.members.iter().find(|m| m.id == again.id).unwrap();
    assert_eq!(
        (
            db_map.address.as_deref().expect("an IPv4 address"),
            db_map.address6.as_deref()
        ),
        ("100.64.7.3", Some("fd00:7::3"))
    );
    let _ = w;

    // Policy checks answer for IPv6.
    let file = env.dir.path().join("p.json");
    std::fs::write(&file, PG_ONLY).unwrap();
    cli_ok(
        &conf,
        &["policy", "set", "app", "--file", file.to_str().unwrap()],
    );
    let check = |from: &str, to: &str, port: &str| -> PolicyCheckResult {
        serde_json::from_str(&cli_ok(
            &conf,
            &[
                "policy", "check", "app", "--from", from, "--to", to, "--port", port, "-o", "json",
            ],
        ))
        .unwrap()
    };
    assert!(check("fd00:7::1", "db", "tcp/5432").allowed);
    assert!(check("web", "fd00:7::3", "tcp/5432").allowed);
    assert!(!check("fd00:7::1", "db", "tcp/22").allowed);
    assert!(!check("fd00:7::1", "fd00:8::1", "tcp/5432").allowed);
    assert!(!check("fd00:7::1", "db", "icmp").allowed);
    assert!(check("web", "db", "tcp/5432").allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_update_adds_ipv6_to_every_member_and_keeps_ipv4() {
    let env = Env::start();
    let conf = env.config();
    env.segment("app", "100.64.6.0/24").await;
    env.segment("near", "100.64.16.0/24").await;
    let near = cli_ok(
        &conf,
        &["segment", "update", "near", "--cidr", "fd00:6::/48"],
    );
    assert!(near.contains("100.64.16.0/24,fd00:6::/48"), "{near}");
    let t = env.token(&["app"], 2).await;
    let (_, n1) = env.enroll(&t, "n1").await;
    n1.attach(&attach_req("app", "netns:a")).await.unwrap();
    n1.attach(&attach_req("app", "netns:b")).await.unwrap();
    let before = n1.netmap(0, 0).await.unwrap().unwrap();
    assert!(before.members.iter().all(|m| m.address6.is_none()));
    let v4: Vec<String> = before
        .members
        .iter()
        .map(|m| m.address.clone().expect("an IPv4 address"))
        .collect();

    // Overlapping another segment's prefix: refused, nothing changes.
    let out = cli(
        &conf,
        &["segment", "update", "app", "--cidr", "fd00:6:0:1::/64"],
    );
    assert!(!out.status.success(), "{out:?}");
    // A new IPv4 network is not what update does.
    let out = cli(
        &conf,
        &[
            "segment",
            "update",
            "app",
            "--cidr",
            "100.64.99.0/24,fd00:60::/64",
        ],
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("keeps its IPv4")
    );

    let seg: Segment = serde_json::from_str(&cli_ok(
        &conf,
        &[
            "segment",
            "update",
            "app",
            "--cidr",
            "100.64.6.0/24",
            "--cidr",
            "fd00:60::/64",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(seg.cidr6.as_deref(), Some("fd00:60::/64"));
    let after = n1.netmap(before.version, 5).await.unwrap().unwrap();
    assert!(after.version > before.version);
    let mut got: Vec<(String, Option<String>)> = after
        .members
        .iter()
        .map(|m| {
            (
                m.address.clone().expect("an IPv4 address"),
                m.address6.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (v4[0].clone().min(v4[1].clone()), Some("fd00:60::1".into())),
            (v4[0].clone().max(v4[1].clone()), Some("fd00:60::2".into())),
        ]
    );
    // A second IPv6 prefix is refused.
    let out = cli(
        &conf,
        &["segment", "update", "app", "--cidr", "fd00:61::/64"],
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("keeps its IPv6 prefix")
    );
    let members = cli_ok(&conf, &["member", "list", "--segment", "app", "-o", "json"]);
    assert!(members.contains("fd00:60::1"), "{members}");
}
