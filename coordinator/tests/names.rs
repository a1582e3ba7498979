//! Member names are identities (issue 15, item 1): a second node with a token for the
//! segment cannot take a name the segment's policy relies on, not even while its holder
//! is detached (restarting), and any released name is held back for the address
//! quarantine. Real binary, real SQLite file, real HTTPS.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::time::Duration;

use common::attach_req;
use segwire_client::Client;
use segwire_proto::api::{AttachRequest, Member};
use support::start_with;

fn named(workload: &str, name: &str) -> AttachRequest {
    let mut req = attach_req("db", workload);
    req.name = Some(name.into());
    req
}

async fn attach(node: &Client, workload: &str, name: &str) -> Result<Member, u16> {
    node.attach(&named(workload, name))
        .await
        .map_err(|e| e.status().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn another_node_cannot_take_a_name_the_policy_relies_on() {
    let env = start_with(&["--ip-quarantine", "2s"]);
    env.segment("db", "100.64.2.0/24").await;
    let policy = serde_json::json!({
        "default": "deny",
        "rules": [{ "name": "ssh", "from": { "member": "bastion" }, "to": "*", "ports": ["tcp/22"] }]
    });
    env.admin().set_policy("db", &policy).await.unwrap();
    let token = env.token(&["db"], 2).await;
    let (_, real) = env.enroll(&token, "host-a").await;
    let (_, intruder) = env.enroll(&token, "host-b").await;

    let bastion = attach(&real, "host", "bastion").await.unwrap();
    assert_eq!(attach(&intruder, "host", "bastion").await.unwrap_err(), 409);
    // The real bastion restarts: detached, the name stays its own.
    real.detach(&bastion.id).await.unwrap();
    let e = intruder
        .attach(&named("host", "bastion"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("belongs to another node"), "{e}");
    // Well past the quarantine: the policy still names it, so still refused.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(attach(&intruder, "host", "bastion").await.unwrap_err(), 409);
    // Its holder takes it back.
    let again = attach(&real, "host", "bastion").await.unwrap();
    assert_eq!(again.name, "bastion");

    // A name no policy uses is held for the quarantine only.
    let web = attach(&real, "pid:7", "web-1").await.unwrap();
    real.detach(&web.id).await.unwrap();
    assert_eq!(attach(&intruder, "pid:8", "web-1").await.unwrap_err(), 409);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    attach(&intruder, "pid:8", "web-1").await.unwrap();

    // Revoking the holder frees even a policy's name, after the quarantine.
    env.admin().revoke_node("host-a").await.unwrap();
    assert_eq!(attach(&intruder, "host", "bastion").await.unwrap_err(), 409);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let taken = attach(&intruder, "host", "bastion").await.unwrap();
    assert_eq!(taken.name, "bastion");
}
