//! Make-before-break key rotation against the real coordinator over HTTPS: the phases
//! (`accepting` → `switched` → retired) move on exactly when every live node has applied
//! the previous one, or after `--key-rotation-grace`; each move is audited; a rotation
//! started during another supersedes it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{attach_req, Env};
use reqwest::Method;
use segwire_client::Client;
use segwire_proto::api::RotationPhase;
use segwire_proto::netmap::NetMap;

/// Two nodes with one member each in segment `web`, both having polled once.
async fn two_nodes(env: &Env) -> (Client, Client, NetMap) {
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 2).await;
    let (_, a) = env.enroll(&token, "host-a").await;
    let (_, b) = env.enroll(&token, "host-b").await;
    a.attach(&attach_req("web", "netns:c1")).await.unwrap();
    b.attach(&attach_req("web", "netns:c2")).await.unwrap();
    let map = a.netmap(0, 0).await.unwrap().unwrap();
    let map_b = b.netmap(0, 0).await.unwrap().unwrap();
    assert_eq!(map.version, map_b.version);
    (a, b, map)
}

/// Both nodes long-poll from `since` at once (each acknowledges `since` by asking).
async fn both_poll(a: &Client, b: &Client, since: u64) -> (NetMap, NetMap) {
    let (ma, mb) = tokio::join!(a.netmap(since, 10), b.netmap(since, 10));
    (
        ma.unwrap().expect("a new map"),
        mb.unwrap().expect("a new map"),
    )
}

async fn phase(env: &Env) -> Option<RotationPhase> {
    env.admin().get_segment("web").await.unwrap().rotation
}

#[tokio::test(flavor = "multi_thread")]
async fn phases_move_on_once_every_live_node_has_applied_them() {
    let env = Env::start_with("info", &["--key-rotation-grace", "10m"]);
    let (a, b, map) = two_nodes(&env).await;
    let old = map.members[0].psk.clone();

    let seg = env.admin().rotate_key("web").await.unwrap();
    assert_eq!(seg.rotation, Some(RotationPhase::Accepting));
    // Accepting: the current key still initiates, the next one is published.
    let (acc, acc_b) = both_poll(&a, &b, map.version).await;
    let m = &acc.members[0];
    assert_eq!(m.psk, old);
    let new = m.psk_next.clone().expect("the next key");
    assert_ne!(new, old);
    assert_eq!(m.psk_previous, None);
    assert_eq!(acc_b.members[0].psk_next.as_ref(), Some(&new));

    // Both ask from the accepting version: that is their acknowledgement, and the
    // coordinator switches within its one-second tick.
    let t = Instant::now();
    let (sw, sw_b) = both_poll(&a, &b, acc.version).await;
    let switched_after = t.elapsed();
    let m = &sw.members[0];
    assert_eq!(
        (m.psk.as_str(), m.psk_previous.as_deref()),
        (new.as_str(), Some(old.as_str()))
    );
    assert_eq!(m.psk_next, None);
    assert_eq!(sw_b.members[0].psk, new);
    assert_eq!(phase(&env).await, Some(RotationPhase::Switched));

    let t = Instant::now();
    let (done, _) = both_poll(&a, &b, sw.version).await;
    let retired_after = t.elapsed();
    let m = &done.members[0];
    assert_eq!(
        (
            m.psk.as_str(),
            m.psk_previous.as_deref(),
            m.psk_next.as_deref()
        ),
        (new.as_str(), None, None)
    );
    assert_eq!(phase(&env).await, None);
    assert!(
        switched_after < Duration::from_secs(3) && retired_after < Duration::from_secs(3),
        "{switched_after:?} {retired_after:?}"
    );
    eprintln!("FIGURE rotation: acknowledged -> switched {switched_after:?}, -> retired {retired_after:?}");

    // Each automatic move is in the audit log, by the coordinator.
    let (_, audit) = env
        .raw(Method::GET, "/v1/audit?limit=50", Some(&env.key), None)
        .await;
    for action in [
        "segment.rotate_key",
        "segment.key_switched",
        "segment.key_retired",
    ] {
        assert!(audit.contains(action), "{action} missing from {audit}");
    }
    assert!(audit.contains("coordinator:key-rotation"), "{audit}");
    assert!(
        !audit.contains(&new) && !audit.contains(&old),
        "a key leaked into the audit log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_never_acknowledges_holds_a_phase_only_for_the_grace_period() {
    let env = Env::start_with("info", &["--key-rotation-grace", "3s"]);
    let (a, _b, map) = two_nodes(&env).await;
    env.admin().rotate_key("web").await.unwrap();
    let acc = a.netmap(map.version, 10).await.unwrap().unwrap();
    // Only A acknowledges; B stays online (it polled moments ago) but behind.
    let t = Instant::now();
    let sw = a.netmap(acc.version, 10).await.unwrap().unwrap();
    let waited = t.elapsed();
    assert!(sw.members[0].psk_previous.is_some(), "switched");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(6),
        "switched after {waited:?} with a 3 s grace"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_during_another_supersedes_it() {
    let env = Env::start_with("info", &["--key-rotation-grace", "10m"]);
    let (a, b, map) = two_nodes(&env).await;
    env.admin().rotate_key("web").await.unwrap();
    let (acc, _) = both_poll(&a, &b, map.version).await;
    let first_next = acc.members[0].psk_next.clone().unwrap();
    // A second rotation while the first is still accepting: a new next key, same current.
    let seg = env.admin().rotate_key("web").await.unwrap();
    assert_eq!(
        (seg.rotation, seg.psk_version),
        (Some(RotationPhase::Accepting), 3)
    );
    let acc2 = a.netmap(acc.version, 10).await.unwrap().unwrap();
    let m = &acc2.members[0];
    assert_eq!(m.psk, map.members[0].psk);
    assert!(m.psk_next.is_some() && m.psk_next.as_ref() != Some(&first_next));
    // Into switched, then a third rotation: the previous key retires at once.
    let (acc2, _) = both_poll(&a, &b, acc.version).await;
    let (sw, _) = both_poll(&a, &b, acc2.version).await;
    assert!(sw.members[0].psk_previous.is_some());
    env.admin().rotate_key("web").await.unwrap();
    let acc3 = a.netmap(sw.version, 10).await.unwrap().unwrap();
    let m = &acc3.members[0];
    assert_eq!(m.psk, sw.members[0].psk);
    assert_eq!(m.psk_previous, None);
    assert!(m.psk_next.is_some());
}
