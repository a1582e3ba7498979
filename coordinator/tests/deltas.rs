//! Netmap deltas from the real coordinator over HTTPS on SQLite: after each kind of
//! change a node that holds its map and asks with `delta=1` gets a delta, which applied
//! to its map equals the full map; an agent that does not ask keeps getting full maps;
//! a version the coordinator does not know, or `full=1`, gets a full map.
#![allow(clippy::unwrap_used)]

mod common;

use common::{attach_req, Env};
use reqwest::{Method, StatusCode};
use segwire_client::{Client, NetmapUpdate};
use segwire_proto::netmap::NetMap;

/// Asks `node` for the change after `held` as a delta and checks it against its full map.
async fn next(node: &Client, held: &NetMap) -> NetMap {
    let update = node.netmap_update(held.version, 10, false).await.unwrap();
    let Some(NetmapUpdate::Delta(delta)) = update else {
        panic!("expected a delta, got {update:?}");
    };
    assert_eq!(delta.base, held.version);
    let applied = delta.apply(held).unwrap();
    let full = node.netmap(0, 0).await.unwrap().unwrap();
    assert_eq!(applied, full, "the delta applied equals the full map");
    applied
}

#[tokio::test(flavor = "multi_thread")]
async fn each_change_reaches_a_node_as_a_delta_equal_to_its_full_map() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 3).await;
    let (_, a) = env.enroll(&token, "a").await;
    let (_, b) = env.enroll(&token, "b").await;
    let (_, c) = env.enroll(&token, "c").await;
    let mut req = attach_req("web", "host");
    req.labels.insert("app".into(), "web".into());
    a.attach(&req).await.unwrap();
    let mut req = attach_req("web", "host");
    req.labels.insert("app".into(), "db".into());
    let b_member = b.attach(&req).await.unwrap();

    // The first map is whole.
    let Some(NetmapUpdate::Full(first)) = a.netmap_update(0, 0, false).await.unwrap() else {
        panic!("a node with no map gets a full one");
    };
    let mut held = *first;

    // A member joins.
    c.attach(&attach_req("web", "host")).await.unwrap();
    held = next(&a, &held).await;
    assert_eq!(held.members[0].peers.len(), 2);

    // A deny policy that lets a reach b only.
    let policy = serde_json::json!({"default": "deny", "rules": [{"name": "w2d",
        "from": {"labels": {"app": "web"}}, "to": {"labels": {"app": "db"}}, "ports": ["tcp/5432"]}]});
    env.admin().set_policy("web", &policy).await.unwrap();
    held = next(&a, &held).await;
    assert_eq!(held.members[0].peers.len(), 1);

    // A key rotation publishes the next key first (a field the delta carries like any
    // other).
    assert!(held.members[0].psk_next.is_none());
    env.admin().rotate_key("web").await.unwrap();
    held = next(&a, &held).await;
    assert!(held.members[0].psk_next.is_some());

    // A member leaves.
    b.detach(&b_member.id).await.unwrap();
    held = next(&a, &held).await;
    assert!(held.members[0].peers.is_empty());

    // An agent that does not ask for deltas gets whole maps.
    let old_style = a.netmap(held.version - 1, 0).await.unwrap().unwrap();
    assert_eq!(old_style, held);

    // A version the coordinator never sent, and `full=1`, get whole maps.
    for (since, full) in [(1, false), (held.version - 1, true)] {
        let update = a.netmap_update(since, 0, full).await.unwrap();
        assert!(
            matches!(&update, Some(NetmapUpdate::Full(m)) if **m == held),
            "since {since} full {full}: {update:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_and_full_take_only_zero_or_one() {
    let env = Env::start();
    env.segment("web", "100.64.1.0/24").await;
    let token = env.token(&["web"], 1).await;
    let (resp, _) = env.enroll(&token, "a").await;
    for q in ["delta=2", "full=7", "delta=yes"] {
        let (status, body) = env
            .raw(
                Method::GET,
                &format!("/v1/node/netmap?since=0&wait=0&{q}"),
                Some(&resp.credential),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
    }
}
