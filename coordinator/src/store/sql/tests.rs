//! Store tests, compiled once per backend: a temp-dir SQLite file, and a PostgreSQL
//! cluster the test starts itself (`testkit::postgres`; skipped visibly when it cannot).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use segwire_proto::api::DefaultAction;

use super::{test_store, Backend, TestDb};
use crate::secret;
use segwire_proto::access::Role;

use crate::store::access::{AccessStore, AuditQuery, KeyRow};
use crate::store::audit;
use crate::store::{NewMember, NewNode, NewSegment, Store, StoreError, TokenRow};

pub(super) const NOW: i64 = 1_800_000_000;

/// A fresh, empty store of this backend, or `None` when the test is skipped.
pub(super) async fn store(test: &str) -> Option<(TestDb, Backend)> {
    test_store(test).await
}

pub(super) fn token(id: &str, secret_text: &str, uses: i64) -> TokenRow {
    TokenRow {
        id: id.into(),
        secret_hash: secret::hash_secret(secret_text),
        segments: vec!["web".into()],
        labels: Default::default(),
        uses,
        uses_left: uses,
        created_at: NOW,
        expires_at: NOW + 600,
        revoked_at: None,
    }
}

pub(super) fn node(id: &str, token_secret: &str) -> NewNode {
    NewNode {
        token_id: "t1".into(),
        token_secret: token_secret.into(),
        id: id.into(),
        name: format!("n-{id}"),
        public_key: "k".into(),
        cred_hash: "h".into(),
        endpoints: vec![],
        observed: None,
    }
}

#[tokio::test]
async fn a_refused_write_releases_the_database_at_once() {
    let Some((_d, s)) = store("a_refused_write_releases_the_database_at_once").await else {
        return;
    };
    s.create_segment(
        NewSegment {
            name: "web".into(),
            net: Some("100.64.1.0/24".parse::<Ipv4Net>().unwrap()),
            net6: None,
            default: DefaultAction::Allow,
            psk: "p".into(),
        },
        NOW,
    )
    .await
    .unwrap();
    s.create_token(token("t1", "secret", 1)).await.unwrap();
    s.enroll(node("a", "secret"), NOW).await.unwrap();
    // Used up: the UPDATE that found no row took SQLite's write lock; it must be released.
    let e = s.enroll(node("b", "secret"), NOW).await.unwrap_err();
    assert!(matches!(e, StoreError::TokenRejected(_)), "{e}");
    let t = Instant::now();
    s.create_token(token("t2", "other", 1)).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the next write waited {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn versions_grow_and_addresses_are_quarantined() {
    let Some((_d, s)) = store("versions_grow_and_addresses_are_quarantined").await else {
        return;
    };
    s.create_segment(
        NewSegment {
            name: "web".into(),
            net: Some("100.64.1.0/30".parse::<Ipv4Net>().unwrap()),
            net6: None,
            default: DefaultAction::Allow,
            psk: "p".into(),
        },
        NOW,
    )
    .await
    .unwrap();
    s.create_token(token("t1", "secret", 1)).await.unwrap();
    s.enroll(node("a", "secret"), NOW).await.unwrap();
    let attach = |w: &str| NewMember {
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
    };
    let v0 = s.node_versions("a").await.unwrap().version();
    let (m1, touched) = s.attach(attach("x"), NOW).await.unwrap();
    assert_eq!(touched, vec!["a".to_string()]);
    let after = s.node_versions("a").await.unwrap();
    let v1 = after.version();
    assert!(v1 > v0);
    assert!(after.live);
    assert_eq!(after.segments.len(), 1, "{after:?}");
    assert!(
        after.node > 0,
        "the node's own version is read too: {after:?}"
    );
    assert_eq!(
        m1.address.expect("an IPv4 address").to_string(),
        "100.64.1.1"
    );
    s.detach("a", &m1.id, NOW).await.unwrap();
    assert!(s.node_versions("a").await.unwrap().version() > v1);
    // .1 is quarantined: the next member gets .2, and then the /30 is full.
    let (m2, _) = s.attach(attach("y"), NOW + 1).await.unwrap();
    assert_eq!(
        m2.address.expect("an IPv4 address").to_string(),
        "100.64.1.2"
    );
    assert!(matches!(
        s.attach(attach("z"), NOW + 2).await,
        Err(StoreError::Conflict(_))
    ));
    // After the quarantine the address comes back.
    let (m3, _) = s.attach(attach("z"), NOW + 601).await.unwrap();
    assert_eq!(
        m3.address.expect("an IPv4 address").to_string(),
        "100.64.1.1"
    );
    // A revoked node's versions say so: its long-poll ends with "revoked".
    s.revoke_node("a", NOW + 602).await.unwrap();
    assert!(!s.node_versions("a").await.unwrap().live);
    assert!(!s.node_versions("nobody").await.unwrap().live);
}

#[tokio::test]
async fn a_segment_is_prepared_once_per_version_and_again_after_a_change() {
    let Some((_d, s)) =
        store("a_segment_is_prepared_once_per_version_and_again_after_a_change").await
    else {
        return;
    };
    let seg = s
        .create_segment(
            NewSegment {
                name: "web".into(),
                net: Some("100.64.1.0/24".parse::<Ipv4Net>().unwrap()),
                net6: None,
                default: DefaultAction::Allow,
                psk: "p".into(),
            },
            NOW,
        )
        .await
        .unwrap();
    s.create_token(token("t1", "secret", 1)).await.unwrap();
    s.enroll(node("a", "secret"), NOW).await.unwrap();
    let member = |w: &str| NewMember {
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
    };
    s.attach(member("x"), NOW).await.unwrap();
    let cache = crate::fanout::NetmapCache::default();
    let v1 = s.node_versions("a").await.unwrap();
    assert_eq!(v1.segments.len(), 1);
    assert_eq!(v1.segments[0].0, seg.id);
    let first = cache.segment(&s, &seg.id, v1.segments[0].1).await.unwrap();
    let again = cache.segment(&s, &seg.id, v1.segments[0].1).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "one read per version"
    );
    assert_eq!(first.members_of("a").len(), 1);
    s.attach(member("y"), NOW).await.unwrap();
    let v2 = s.node_versions("a").await.unwrap();
    assert!(v2.version() > v1.version());
    let next = cache.segment(&s, &seg.id, v2.segments[0].1).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &next));
    assert_eq!(next.members_of("a").len(), 2);
    let node = s.get_node("a").await.unwrap();
    let crate::fanout::Answer::Full(body) = cache.answer(&s, &node, &v2, None, &[]).await.unwrap()
    else {
        panic!("a full map was asked for");
    };
    let map: segwire_proto::netmap::NetMap = serde_json::from_str(&body).unwrap();
    assert_eq!(map.version as i64, v2.version());
    assert_eq!(map.members.len(), 2);
    assert_eq!(
        map.members[0].peers.len(),
        1,
        "a member is not its own peer"
    );
}

#[tokio::test]
async fn audit_log_is_append_only_and_keys_round_trip() {
    let Some((_d, s)) = store("audit_log_is_append_only_and_keys_round_trip").await else {
        return;
    };
    let ctx = audit::AuditCtx::new("key:a".into(), Some("127.0.0.1".into()));
    let key = KeyRow {
        id: "k1".into(),
        secret_hash: "h".into(),
        role: Role::Viewer,
        segments: Some(vec!["web".into()]),
        description: "d".into(),
        created_at: 1,
        expires_at: Some(10),
        revoked_at: None,
    };
    audit::scope(ctx.clone(), s.create_key(key))
        .await
        .expect("create");
    assert_eq!(ctx.appended(), 1);
    let k = s.key("k1").await.expect("key").expect("some");
    assert_eq!(
        (k.role, k.segments.as_deref()),
        (Role::Viewer, Some(&["web".to_string()][..]))
    );
    assert!(k.is_live(5) && !k.is_live(10));
    let rows = s
        .audit(AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].after.as_deref().unwrap_or("").contains("\"h\""));
    for sql in ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"] {
        assert!(sqlx::query(sql).execute(&s.pool).await.is_err(), "{sql}");
    }
    // The last admin key cannot be revoked.
    s.create_api_key("adm", "h", "admin", "bootstrap", 1)
        .await
        .expect("admin");
    assert!(matches!(
        s.revoke_key("adm", 2).await,
        Err(StoreError::Conflict(_))
    ));
    // The refused revocation rolled back at once: every connection can write again (on
    // PostgreSQL a transaction left open would hold the writer lock).
    let t = Instant::now();
    for i in 0..20 {
        s.create_token(token(&format!("t{i}"), "s", 1))
            .await
            .unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the writes waited {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn presence_moves_with_the_node_and_offline_is_reported_once() {
    use crate::store::cluster::ClusterStore;
    let Some((_d, s)) = store("presence_moves_with_the_node_and_offline_is_reported_once").await
    else {
        return;
    };
    s.create_token(token("t1", "secret", 1)).await.unwrap();
    s.enroll(node("a", "secret"), NOW).await.unwrap();
    assert_eq!(s.get_node("a").await.unwrap().polled_by, None);
    assert!(
        !s.claim_node("a", "coord-a").await.unwrap(),
        "a first poll is no return"
    );
    assert_eq!(
        s.get_node("a").await.unwrap().polled_by.as_deref(),
        Some("coord-a")
    );
    // The node moved to B: A may no longer report it offline; B may, once.
    assert!(!s.claim_node("a", "coord-b").await.unwrap());
    assert!(!s.mark_offline("a", "coord-a", NOW).await.unwrap());
    assert!(s.mark_offline("a", "coord-b", NOW).await.unwrap());
    assert!(
        !s.mark_offline("a", "coord-b", NOW + 1).await.unwrap(),
        "once"
    );
    // Back through A: A reports it back.
    assert!(s.claim_node("a", "coord-a").await.unwrap());
    assert!(!s.claim_node("a", "coord-a").await.unwrap());
}
