//! Store tests of IPv6-only segments and of migration 0012 (a segment's IPv4 network and a
//! member's IPv4 address become optional), compiled once per backend like `tests.rs`.
#![allow(clippy::unwrap_used)]

use ipnet::{IpNet, Ipv6Net};
use segwire_proto::api::DefaultAction;

use super::test_store_migrated;
use super::tests::{node, store, token, NOW};
use crate::store::{NewMember, NewSegment, Store, StoreError};

fn six(name: &str, net6: &str) -> NewSegment {
    NewSegment {
        name: name.into(),
        net: None,
        net6: Some(net6.parse::<Ipv6Net>().unwrap()),
        default: DefaultAction::Allow,
        psk: "p".into(),
    }
}

fn member(w: &str) -> NewMember {
    NewMember {
        node_id: "a".into(),
        segment: "web".into(),
        workload: w.into(),
        name: None,
        public_key: format!("key-{w}"),
        listen_port: 51820,
        endpoints: vec![],
        labels: Default::default(),
        quarantine_secs: 600,
        max_members_per_node: 100,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[tokio::test]
async fn ipv6_only_segments_allocate_quarantine_and_gain_an_ipv4_network() {
    let Some((_d, s)) =
        store("ipv6_only_segments_allocate_quarantine_and_gain_an_ipv4_network").await
    else {
        return;
    };
    let seg = s
        .create_segment(six("web", "fd00:1::/124"), NOW)
        .await
        .unwrap();
    assert_eq!(
        (seg.net, seg.net6.map(|n| n.to_string())),
        (None, Some("fd00:1::/124".into()))
    );
    // Overlap is judged per family; no prefix at all is refused.
    let e = s
        .create_segment(six("near", "fd00:1::/120"), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("overlaps segment \"web\"")),
        "{e}"
    );
    let mut four = six("four", "fd00:2::/64");
    (four.net, four.net6) = (Some("100.64.1.0/24".parse().unwrap()), None);
    s.create_segment(four, NOW).await.unwrap();
    let mut none = six("none", "fd00:3::/64");
    none.net6 = None;
    let e = s.create_segment(none, NOW).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");

    s.create_token(token("t1", "secret", 1)).await.unwrap();
    s.enroll(node("a", "secret"), NOW).await.unwrap();
    let (x, _) = s.attach(member("x"), NOW).await.unwrap();
    let (y, _) = s.attach(member("y"), NOW).await.unwrap();
    assert_eq!(
        (x.address, x.address6.map(|a| a.to_string())),
        (None, Some("fd00:1::1".into()))
    );
    assert_eq!(
        y.address6.map(|a| a.to_string()).as_deref(),
        Some("fd00:1::2")
    );
    // A released IPv6 address is held back; the next member gets the next one.
    s.detach("a", &x.id, NOW).await.unwrap();
    let (z, _) = s.attach(member("z"), NOW + 1).await.unwrap();
    assert_eq!(
        z.address6.map(|a| a.to_string()).as_deref(),
        Some("fd00:1::3")
    );

    // Adding an IPv4 network: refused when it overlaps, then every member gets an IPv4
    // address (lowest free, in address order) and keeps its IPv6 one.
    let e = s
        .add_prefix("web", net("100.64.1.0/25"), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("overlaps segment \"four\"")),
        "{e}"
    );
    let (row, touched) = s
        .add_prefix("web", net("100.64.9.0/24"), NOW)
        .await
        .unwrap();
    assert_eq!(
        row.net.map(|n| n.to_string()).as_deref(),
        Some("100.64.9.0/24")
    );
    assert_eq!(touched, vec!["a".to_string()]);
    let got: Vec<(String, String)> = s
        .list_members(Some("web"))
        .await
        .unwrap()
        .iter()
        .map(|m| {
            (
                m.address.unwrap().to_string(),
                m.address6.unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("100.64.9.1".to_string(), "fd00:1::2".to_string()),
            ("100.64.9.2".to_string(), "fd00:1::3".to_string())
        ]
    );
    for again in ["100.64.10.0/24", "fd00:4::/64"] {
        let e = s.add_prefix("web", net(again), NOW).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.contains("already has")),
            "{e}"
        );
    }
    // New members now get both.
    let (w, _) = s.attach(member("w"), NOW + 2).await.unwrap();
    assert_eq!(
        w.address.map(|a| a.to_string()).as_deref(),
        Some("100.64.9.3")
    );
    assert_eq!(
        w.address6.map(|a| a.to_string()).as_deref(),
        Some("fd00:1::4")
    );
}

/// A dual-stack segment with a policy and a quarantined member, an IPv4 one with a
/// released address, as a coordinator before migration 0012 wrote them.
const ROWS_BEFORE_0012: &str = "
INSERT INTO nodes (id, name, public_key, cred_hash, token_id, segments, labels, endpoints,
    observed, created_at, last_seen, version)
VALUES ('n1', 'host-a', 'nk', 'h', 't1', '[\"web\",\"db\"]', '{}', '[\"198.18.0.1\"]',
    NULL, 1, 2, 7);
INSERT INTO segments (id, name, net, prefix, default_action, psk, psk_version, version,
    created_at, policy, policy_version, net6)
VALUES ('s1', 'web', 1681916160, 24, 'deny', 'psk-web', 3, 5, 1,
    '{\"default\":\"deny\",\"rules\":[]}', 2, 'fd00:1::/64');
INSERT INTO segments (id, name, net, prefix, default_action, psk, psk_version, version,
    created_at)
VALUES ('s2', 'db', 1681916416, 24, 'allow', 'psk-db', 1, 6, 1);
INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key,
    listen_port, endpoints, labels, created_at, quarantined_until, quarantine_reason, address6)
VALUES ('m1', 'n1', 's1', 'web-1', 'netns:web', 1681916165, 'k1', 51820, '[]',
    '{\"app\":\"web\"}', 3, 9999999999, 'incident', 'fd00:1::5');
INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key,
    listen_port, endpoints, labels, created_at)
VALUES ('m2', 'n1', 's2', 'db-1', 'netns:db', 1681916423, 'k2', 51821, '[]', '{}', 4);
INSERT INTO released_addresses (segment_id, address, released_at) VALUES ('s1', 1681916164, 5);
";

#[tokio::test]
async fn migration_0012_keeps_every_row_and_constraint() {
    let test = "migration_0012_keeps_every_row_and_constraint";
    let Some((_d, s)) = test_store_migrated(test, 12, ROWS_BEFORE_0012).await else {
        return;
    };
    let segs = s.list_segments().await.unwrap();
    let shown: Vec<_> = segs
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.net.map(|n| n.to_string()),
                r.net6.map(|n| n.to_string()),
                r.psk.as_str(),
                r.psk_version,
                r.policy_version,
                r.members,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("db", Some("100.64.2.0/24".into()), None, "psk-db", 1, 0, 1),
            (
                "web",
                Some("100.64.1.0/24".into()),
                Some("fd00:1::/64".into()),
                "psk-web",
                3,
                2,
                1
            ),
        ]
    );
    assert_eq!(segs[1].default, DefaultAction::Deny);
    let members = s.list_members(None).await.unwrap();
    let shown: Vec<_> = members
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.address.map(|a| a.to_string()),
                m.address6.map(|a| a.to_string()),
                m.node_name.as_str(),
                m.listen_port,
                m.labels.get("app").cloned(),
                m.quarantined_until,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                "db-1",
                Some("100.64.2.7".into()),
                None,
                "host-a",
                51821,
                None,
                None
            ),
            (
                "web-1",
                Some("100.64.1.5".into()),
                Some("fd00:1::5".into()),
                "host-a",
                51820,
                Some("web".into()),
                Some(9_999_999_999)
            ),
        ]
    );

    // The constraints came through the rebuild: foreign keys, uniqueness, and a member
    // holds at least one address.
    let refused = |sql: &'static str| {
        let pool = &s.pool;
        async move {
            assert!(
                sqlx::raw_sql(sql).execute(pool).await.is_err(),
                "accepted: {sql}"
            );
        }
    };
    refused("INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key, listen_port, endpoints, labels, created_at) VALUES ('m3', 'n1', 'gone', 'x', 'host', 1, 'k3', 1, '[]', '{}', 1)").await;
    refused("INSERT INTO members (id, node_id, segment_id, name, workload, address, public_key, listen_port, endpoints, labels, created_at) VALUES ('m3', 'n1', 's2', 'x', 'host', 1681916423, 'k3', 1, '[]', '{}', 1)").await;
    refused("INSERT INTO members (id, node_id, segment_id, name, workload, public_key, listen_port, endpoints, labels, created_at) VALUES ('m3', 'n1', 's2', 'x', 'host', 'k3', 1, '[]', '{}', 1)").await;
    refused("INSERT INTO segments (id, name, default_action, psk, psk_version, version, created_at) VALUES ('s3', 'none', 'allow', 'p', 1, 1, 1)").await;

    // The migrated database takes IPv6-only segments, and the old rows still work.
    s.create_segment(six("six", "fd00:6::/64"), NOW)
        .await
        .unwrap();
    s.detach("n1", "m2", NOW).await.unwrap();
    assert_eq!(s.get_segment("db").await.unwrap().members, 0);
}
