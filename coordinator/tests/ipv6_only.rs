//! IPv6-only segments through the CLI and API: `--cidr` with only an IPv6 prefix, members
//! with only an IPv6 address (netmaps, `member list`, wg-quick configs, `policy check`),
//! clear 400s for a segment without a prefix, and `segment update --cidr` adding an IPv4
//! network to every member without touching IPv6.
#![allow(clippy::unwrap_used)]

mod common;

use common::{attach_req, Env, PG_ONLY};
use reqwest::{Method, StatusCode};
use segwire_proto::api::{PolicyCheckResult, Segment};
use segwire_testkit::{cli, cli_ok};

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_only_segments_work_end_to_end_in_the_api() {
    let env = Env::start();
    let conf = env.config();

    let seg: Segment = serde_json::from_str(&cli_ok(
        &conf,
        &[
            "segment",
            "create",
            "six",
            "--cidr",
            "fd00:70::/64",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (seg.cidr, seg.cidr6.as_deref()),
        (None, Some("fd00:70::/64"))
    );
    // The JSON leaves the IPv4 network out rather than writing null.
    let (_, body) = env
        .raw(Method::GET, "/v1/segments/six", Some(&env.key), None)
        .await;
    assert!(!body.contains("\"cidr\":"), "{body}");
    let listed = cli_ok(&conf, &["segment", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("six") && l.contains(" fd00:70::/64 ")),
        "{listed}"
    );
    let shown = cli_ok(&conf, &["segment", "show", "six"]);
    assert!(
        shown.contains("fd00:70::/64") && !shown.contains("100.64"),
        "{shown}"
    );

    // Refused with one sentence: no prefix, overlap within the family.
    for (body, says) in [
        (
            r#"{"name":"bad","cidr":""}"#,
            "give an IPv4 network, an IPv6 prefix or both",
        ),
        (
            r#"{"name":"bad","cidr":" , "}"#,
            "give an IPv4 network, an IPv6 prefix or both",
        ),
        (
            r#"{"name":"bad","cidr":"fd00:70::/80"}"#,
            "overlaps segment",
        ),
    ] {
        let (status, text) = env
            .raw(Method::POST, "/v1/segments", Some(&env.key), Some(body))
            .await;
        let want = if says.contains("overlaps") {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        assert!(
            status == want && text.contains(says),
            "{body}: {status} {text}"
        );
    }

    // Members get only IPv6 addresses; netmaps carry no IPv4 field at all.
    let t = env.token(&["six"], 2).await;
    let (_, n1) = env.enroll(&t, "n1").await;
    let (_, n2) = env.enroll(&t, "n2").await;
    let mut web = attach_req("six", "netns:web");
    web.name = Some("web".into());
    web.labels.insert("app".into(), "web".into());
    let mut db = attach_req("six", "netns:db");
    db.name = Some("db".into());
    db.labels.insert("app".into(), "db".into());
    let w = n1.attach(&web).await.unwrap();
    let d = n2.attach(&db).await.unwrap();
    assert_eq!(
        (w.address.as_deref(), w.address6.as_deref()),
        (None, Some("fd00:70::1"))
    );
    assert_eq!(d.address6.as_deref(), Some("fd00:70::2"));
    let m1 = n1.netmap(0, 0).await.unwrap().unwrap();
    let own = &m1.members[0];
    assert_eq!((own.cidr.as_deref(), own.address.as_deref()), (None, None));
    assert_eq!(own.cidr6.as_deref(), Some("fd00:70::/64"));
    assert_eq!(own.peers[0].address, None);
    assert_eq!(own.peers[0].address6.as_deref(), Some("fd00:70::2"));
    let members = cli_ok(&conf, &["member", "list", "--segment", "six"]);
    assert!(
        members.contains(" fd00:70::1 ") && !members.contains("100.64"),
        "{members}"
    );

    // A stock WireGuard device gets only IPv6 Address and AllowedIPs.
    let config = cli_ok(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "six",
            "--name",
            "laptop",
            "--generate",
        ],
    );
    assert!(config.contains("Address = fd00:70::3/128\n"), "{config}");
    assert!(config.contains("AllowedIPs = fd00:70::1/128\n"), "{config}");
    assert!(!config.contains("/32"), "{config}");

    // Policy checks by name ask about IPv6 (the members have nothing else).
    let file = env.dir.path().join("p.json");
    std::fs::write(&file, PG_ONLY).unwrap();
    cli_ok(
        &conf,
        &["policy", "set", "six", "--file", file.to_str().unwrap()],
    );
    let check = |from: &str, to: &str, port: &str| -> PolicyCheckResult {
        serde_json::from_str(&cli_ok(
            &conf,
            &[
                "policy", "check", "six", "--from", from, "--to", to, "--port", port, "-o", "json",
            ],
        ))
        .unwrap()
    };
    assert!(check("web", "db", "tcp/5432").allowed);
    assert!(check("fd00:70::1", "fd00:70::2", "tcp/5432").allowed);
    assert!(!check("web", "db", "tcp/22").allowed);
    let out = cli(
        &conf,
        &[
            "policy",
            "check",
            "six",
            "--from",
            "web",
            "--to",
            "100.64.9.9",
            "--port",
            "tcp/5432",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("has no IPv4 address"),
        "{err}"
    );

    // `segment update` adds an IPv4 network: every member gets an IPv4 address, IPv6 is
    // kept; the IPv6 prefix cannot change.
    let before = n1.netmap(0, 0).await.unwrap().unwrap();
    for cidrs in ["fd00:71::/64", "100.64.70.0/24,fd00:71::/64"] {
        let out = cli(&conf, &["segment", "update", "six", "--cidr", cidrs]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("keeps its IPv6 prefix"),
            "{err}"
        );
    }
    // Refused as a whole: the IPv4 network given next to the wrong prefix was not added.
    let kept = cli_ok(&conf, &["segment", "show", "six"]);
    assert!(!kept.contains("100.64.70.0/24"), "{kept}");
    let seg: Segment = serde_json::from_str(&cli_ok(
        &conf,
        &[
            "segment",
            "update",
            "six",
            "--cidr",
            "100.64.70.0/24",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (seg.cidr.as_deref(), seg.cidr6.as_deref()),
        (Some("100.64.70.0/24"), Some("fd00:70::/64"))
    );
    let after = n1.netmap(before.version, 5).await.unwrap().unwrap();
    assert!(after.version > before.version);
    let own = &after.members[0];
    assert_eq!(
        (
            own.address.as_deref(),
            own.address6.as_deref(),
            own.cidr.as_deref()
        ),
        (
            Some("100.64.70.1"),
            Some("fd00:70::1"),
            Some("100.64.70.0/24")
        )
    );
    let peers: Vec<_> = own
        .peers
        .iter()
        .map(|p| (p.address.as_deref(), p.address6.as_deref()))
        .collect();
    assert_eq!(peers, [(Some("100.64.70.2"), Some("fd00:70::2"))]);
    let devices = cli_ok(&conf, &["peer", "list"]);
    assert!(devices.contains("100.64.70.3,fd00:70::3"), "{devices}");
    let out = cli(
        &conf,
        &["segment", "update", "six", "--cidr", "100.64.71.0/24"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("keeps its IPv4 network"),
        "{err}"
    );
    // Giving both prefixes as they are changes nothing.
    let same = cli_ok(
        &conf,
        &[
            "segment",
            "update",
            "six",
            "--cidr",
            "100.64.70.0/24,fd00:70::/64",
        ],
    );
    assert!(same.contains("100.64.70.0/24,fd00:70::/64"), "{same}");
}
