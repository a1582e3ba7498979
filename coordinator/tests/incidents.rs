//! Detections and automated quarantine against the real binary and database: a node may
//! report only about its own members, a scan quarantines through the netmap (both sides
//! lose the member, which stays attached with its address), the audit log names the
//! automated actor, release and expiry lift it, a restart keeps it, and reports are
//! rate-limited per node.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{attach_req, Env};
use segwire_client::access::AuditFilter;
use segwire_client::Client;
use segwire_proto::access::Event;
use segwire_proto::api::{DetectionKind, DetectionReport, Member};
use segwire_proto::netmap::NetMap;

struct Setup {
    env: Env,
    a: Client,
    b: Client,
    scanner: Member,
    other: Member,
}

async fn setup(quarantine_for: &str) -> Setup {
    let env = Env::start();
    env.segment("web", "100.64.7.0/24").await;
    let policy = serde_json::json!({"default": "allow", "rules": [],
        "quarantine": {"on": ["scan"], "for": quarantine_for}});
    env.admin().set_policy("web", &policy).await.unwrap();
    let (_, a) = env.enroll(&env.token(&["web"], 1).await, "host-a").await;
    let (_, b) = env.enroll(&env.token(&["web"], 1).await, "host-b").await;
    let scanner = a.attach(&attach_req("web", "netns:scanner")).await.unwrap();
    let other = b.attach(&attach_req("web", "netns:other")).await.unwrap();
    Setup {
        env,
        a,
        b,
        scanner,
        other,
    }
}

fn scan(member: &Member) -> DetectionReport {
    DetectionReport {
        segment: "web".into(),
        member: member.name.clone(),
        kind: DetectionKind::Scan,
        direction: None,
        peers: vec!["other".into()],
        source: None,
        count: 16,
        window_ms: 300,
    }
}

async fn events(c: &Client) -> Vec<Event> {
    c.events(0, None).await.unwrap()
}

async fn netmap(c: &Client) -> NetMap {
    c.netmap(0, 0).await.unwrap().unwrap()
}

/// Whether `other`'s map lists `peer`.
async fn sees(c: &Client, peer: &Member) -> bool {
    netmap(c)
        .await
        .members
        .iter()
        .flat_map(|m| &m.peers)
        .any(|p| p.id == peer.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_about_another_nodes_member_is_refused_and_quarantines_nobody() {
    let s = setup("10m").await;
    let err = s.b.report_detection(&scan(&s.scanner)).await.unwrap_err();
    assert!(
        err.to_string().contains("only about its own members"),
        "{err}"
    );
    assert!(events(&s.env.admin())
        .await
        .iter()
        .all(|e| e.kind != "member.scan"));
    assert!(sees(&s.b, &s.scanner).await, "not quarantined");
    let members = s.env.admin().list_members(Some("web")).await.unwrap();
    assert!(members.iter().all(|m| m.quarantined_until.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_quarantines_through_the_netmap_and_release_lifts_it() {
    let s = setup("10m").await;
    assert!(sees(&s.b, &s.scanner).await);
    s.a.report_detection(&scan(&s.scanner)).await.unwrap();

    let all = events(&s.env.admin()).await;
    let detected = all
        .iter()
        .find(|e| e.kind == "member.scan")
        .expect("member.scan");
    assert_eq!(detected.data["reported_by"], "host-a");
    assert_eq!(detected.data["member"], s.scanner.name.as_str());
    assert_eq!(detected.data["segment"], "web");
    assert_eq!(detected.data["count"], 16);
    assert_eq!(detected.data["window_ms"], 300);
    let q = all
        .iter()
        .find(|e| e.kind == "member.quarantined")
        .expect("quarantined");
    assert_eq!(q.data["reason"], "scan");
    assert_eq!(q.data["actor"], "automated:quarantine");

    // Both sides lose it; it stays attached with its address.
    assert!(!sees(&s.b, &s.scanner).await, "the peer no longer has it");
    let own = netmap(&s.a).await;
    let cut = own
        .members
        .iter()
        .find(|m| m.id == s.scanner.id)
        .expect("still attached");
    assert!(cut.peers.is_empty() && cut.quarantined_until.is_some());
    assert_eq!(cut.address, s.scanner.address);
    let listed = s.env.admin().list_members(Some("web")).await.unwrap();
    let row = listed.iter().find(|m| m.id == s.scanner.id).unwrap();
    assert!(row.quarantined_until.is_some());
    assert!(listed
        .iter()
        .find(|m| m.id == s.other.id)
        .unwrap()
        .quarantined_until
        .is_none());
    let audit = s
        .env
        .admin()
        .audit(&AuditFilter {
            actor: Some("automated:quarantine".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "member.quarantine");

    // A second scan while quarantined changes nothing.
    s.a.report_detection(&scan(&s.scanner)).await.unwrap();
    let n = events(&s.env.admin())
        .await
        .iter()
        .filter(|e| e.kind == "member.quarantined")
        .count();
    assert_eq!(n, 1);

    let released = s
        .env
        .admin()
        .release_member("web", &s.scanner.name)
        .await
        .unwrap();
    assert!(released.quarantined_until.is_none());
    assert!(sees(&s.b, &s.scanner).await, "the peer has it back");
    assert!(!netmap(&s.a).await.members[0].peers.is_empty());
    let again = s
        .env
        .admin()
        .release_member("web", &s.scanner.name)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("is not quarantined"), "{again}");
    let rel = events(&s.env.admin()).await;
    let rel = rel
        .iter()
        .find(|e| e.kind == "member.released")
        .expect("released");
    assert!(
        rel.data["actor"].as_str().unwrap().starts_with("key:"),
        "{rel:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantine_survives_a_restart_and_expires_by_itself() {
    let mut s = setup("3s").await;
    s.a.report_detection(&scan(&s.scanner)).await.unwrap();
    assert!(!sees(&s.b, &s.scanner).await);
    s.env.coord.restart();
    let listed = s.env.admin().list_members(Some("web")).await.unwrap();
    let row = listed.iter().find(|m| m.id == s.scanner.id).unwrap();
    assert!(row.quarantined_until.is_some(), "kept across the restart");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sees(&s.b, &s.scanner).await {
        assert!(Instant::now() < deadline, "the quarantine never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The event follows the committed change.
    let rel = loop {
        let all = events(&s.env.admin()).await;
        if let Some(e) = all.into_iter().find(|e| e.kind == "member.released") {
            break e;
        }
        assert!(Instant::now() < deadline, "no member.released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rel.data["actor"], "automated:expiry");
    let audit = s
        .env
        .admin()
        .audit(&AuditFilter {
            actor: Some("automated:expiry".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn detections_without_quarantine_are_alerts_and_reports_are_rate_limited() {
    let s = setup("10m").await;
    let mut burst = scan(&s.scanner);
    burst.kind = DetectionKind::DeniedBurst;
    burst.source = Some("100.64.7.9".into());
    let mut refused = 0;
    for _ in 0..40 {
        if s.a.report_detection(&burst).await.is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "30 reports per 10 s per node");
    let all = events(&s.env.admin()).await;
    assert_eq!(
        all.iter()
            .filter(|e| e.kind == "member.denied_burst")
            .count(),
        30
    );
    assert!(
        all.iter().all(|e| e.kind != "member.quarantined"),
        "a burst never quarantines"
    );
    assert!(sees(&s.b, &s.scanner).await);
    let metrics = s
        .env
        .raw(reqwest::Method::GET, "/metrics", None, None)
        .await
        .1;
    assert!(
        metrics.contains(r#"segwire_detections_total{kind="member.denied_burst"} 30"#),
        "{metrics}"
    );
}
