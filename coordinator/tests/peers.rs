//! External members (stock WireGuard devices) through the API and the CLI: add with a
//! generated or given key, the printed wg-quick configuration, list, config again,
//! policy pruning, netmaps, scoping, auditing, remove.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{attach_req, random_key, Env};
use reqwest::{Method, StatusCode};
use segwire_proto::access::Role;
use segwire_proto::peer::ExternalPeer;
use segwire_testkit::{cli, cli_ok};

/// `key = value` lines of one section kind, in order.
fn values<'a>(config: &'a str, key: &str) -> Vec<&'a str> {
    config
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

/// `wg pubkey` of a private key, when wireguard-tools is installed.
fn wg_pubkey(private: &str) -> Option<String> {
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()?
        .write_all(format!("{private}\n").as_bytes())
        .ok()?;
    let out = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn peers_through_the_cli_and_api() {
    let env = Env::start();
    let conf = env.config();
    env.segment("web", "100.64.1.0/24").await;
    env.segment("db", "100.64.2.0/24").await;
    let token = env.token(&["web", "db"], 1).await;
    let (_node, node_client) = env.enroll(&token, "host-a").await;
    let mut req = attach_req("web", "netns:c1");
    req.labels.insert("app".into(), "web".into());
    let web = node_client.attach(&req).await.unwrap();

    // Add with a generated key: a complete configuration on stdout.
    let config = cli_ok(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "web",
            "--name",
            "laptop",
            "--generate",
            "--endpoint",
            "198.18.0.9:51900",
            "--label",
            "role=laptop",
        ],
    );
    assert!(config.contains("[Interface]\n"), "{config}");
    let address = values(&config, "Address")[0].to_owned();
    assert!(
        address.starts_with("100.64.1.") && address.ends_with("/32"),
        "{config}"
    );
    let private = values(&config, "PrivateKey")[0].to_owned();
    assert_eq!(private.len(), 44, "{config}");
    assert_eq!(values(&config, "ListenPort"), ["51900"]);
    assert_eq!(values(&config, "PublicKey"), [web.public_key.as_str()]);
    assert_eq!(values(&config, "Endpoint"), ["198.18.0.2:51820"]);
    assert_eq!(
        values(&config, "AllowedIPs"),
        [format!(
            "{}/32",
            web.address.as_deref().expect("an IPv4 address")
        )]
    );
    assert_eq!(values(&config, "PersistentKeepalive"), ["25"]);
    let psk = values(&config, "PresharedKey")[0].to_owned();
    assert_eq!(psk.len(), 44);

    // Listed, with the public key of the generated private key.
    let listed: Vec<ExternalPeer> =
        serde_json::from_str(&cli_ok(&conf, &["-o", "json", "peer", "list"])).unwrap();
    assert_eq!(listed.len(), 1);
    let laptop = &listed[0];
    assert_eq!(
        (laptop.name.as_str(), laptop.segment.as_str()),
        ("laptop", "web")
    );
    assert_eq!(
        format!("{}/32", laptop.address.as_deref().expect("an IPv4 address")),
        address
    );
    assert_eq!(laptop.endpoint.as_deref(), Some("198.18.0.9:51900"));
    assert_eq!(
        laptop.labels.get("role").map(String::as_str),
        Some("laptop")
    );
    if let Some(public) = wg_pubkey(&private) {
        assert_eq!(public, laptop.public_key);
    }

    // With a given key; names and keys are unique per segment; bad input is refused.
    let key = random_key();
    let other = cli_ok(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "web",
            "--name",
            "phone",
            "--public-key",
            &key,
        ],
    );
    assert_eq!(values(&other, "PrivateKey"), ["<your private key>"]);
    assert!(values(&other, "ListenPort").is_empty());
    // The phone may reach the web member and the laptop (no endpoint for it).
    assert_eq!(values(&other, "PublicKey").len(), 2, "{other}");
    for (args, want) in [
        (
            vec!["--name", "phone", "--public-key", &key],
            "already has a member",
        ),
        (vec!["--name", "phone2", "--public-key", &key], "public key"),
        (vec!["--name", "bad", "--public-key", "nope"], "base64"),
        (
            vec!["--name", "bad", "--generate", "--endpoint", "host:1"],
            "not IP:port",
        ),
        (vec!["--name", "Bad_Name", "--generate"], "member"),
    ] {
        let mut all = vec!["peer", "add", "--segment", "web"];
        all.extend(args.iter().copied());
        let out = cli(&conf, &all);
        assert!(!out.status.success(), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{all:?}: {err}");
    }
    let out = cli(&conf, &["peer", "add", "--segment", "web", "--name", "x"]);
    assert!(!out.status.success(), "a key or --generate is required");

    // Agents see external peers like any other, with `node: ""`.
    let map = node_client.netmap(0, 1).await.unwrap().unwrap();
    let peers = &map.members[0].peers;
    let lp = peers.iter().find(|p| p.name == "laptop").unwrap();
    assert_eq!(lp.node, "");
    assert_eq!(lp.endpoints, ["198.18.0.9:51900"]);
    assert!(peers
        .iter()
        .any(|p| p.name == "phone" && p.endpoints.is_empty()));
    // ...and they are members, but never nodes.
    let members = env.admin().list_members(Some("web")).await.unwrap();
    assert_eq!(members.len(), 3);
    let nodes = env.admin().list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");

    // The configuration again: same peers, a placeholder for the key.
    let again = cli_ok(&conf, &["peer", "config", "laptop"]);
    assert_eq!(values(&again, "PrivateKey"), ["<your private key>"]);
    assert_eq!(values(&again, "Address"), [address.as_str()]);
    assert_eq!(values(&again, "PresharedKey")[0], psk);
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&conf, &["-o", "json", "peer", "config", "laptop"])).unwrap();
    assert!(json["config"].as_str().unwrap().contains("[Peer]"));

    // The same name in another segment needs --segment.
    cli_ok(
        &conf,
        &[
            "peer",
            "add",
            "--segment",
            "db",
            "--name",
            "laptop",
            "--generate",
        ],
    );
    let out = cli(&conf, &["peer", "config", "laptop"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--segment"), "{err}");
    cli_ok(&conf, &["peer", "config", "laptop", "--segment", "db"]);

    // Viewers may list but never read a configuration (it holds the PSK); a key scoped
    // to another segment learns nothing.
    let viewer = support::key(&env, Role::Viewer, None).await;
    let db_operator = support::key(&env, Role::Operator, Some(vec!["db"])).await;
    let (status, _) = env.raw(Method::GET, "/v1/peers", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    let path = "/v1/peers/laptop/config?segment=web";
    let (status, body) = env.raw(Method::GET, path, Some(&viewer), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, ""));
    let (status, body) = env.raw(Method::GET, path, Some(&db_operator), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, ""));
    let (status, body) = env
        .raw(
            Method::GET,
            "/v1/peers/phone/config",
            Some(&db_operator),
            None,
        )
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, ""));
    let (status, body) = env
        .raw(Method::GET, "/v1/peers", Some(&db_operator), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("phone"), "{body}");

    // A policy that denies the laptop's label prunes it from the netmap and its config.
    let policy = env.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":"deny","rules":[{"name":"web","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"web"}},"ports":["any"]}]}"#,
    )
    .unwrap();
    cli_ok(
        &conf,
        &["policy", "set", "web", "--file", policy.to_str().unwrap()],
    );
    let pruned = cli_ok(&conf, &["peer", "config", "laptop", "--segment", "web"]);
    assert!(!pruned.contains("[Peer]"), "{pruned}");
    let map = node_client.netmap(0, 1).await.unwrap().unwrap();
    assert!(map.members[0].peers.iter().all(|p| p.name != "laptop"));

    // Audited (add and config reads), never with the PSK or a private key.
    let records = env
        .admin()
        .audit(&segwire_client::access::AuditFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains(&"peer.add"), "{actions:?}");
    assert!(actions.contains(&"peer.config"), "{actions:?}");
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains(&psk) && !text.contains(&private));

    // Remove: gone from the list and the segment; the address is free again later.
    let out = cli_ok(&conf, &["peer", "remove", "laptop", "--segment", "web"]);
    assert!(out.contains("removed"), "{out}");
    let listed: Vec<ExternalPeer> = serde_json::from_str(&cli_ok(
        &conf,
        &["-o", "json", "peer", "list", "--segment", "web"],
    ))
    .unwrap();
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["phone"]
    );
    let out = cli(&conf, &["peer", "remove", "laptop", "--segment", "web"]);
    assert!(!out.status.success());
    let records = env
        .admin()
        .audit(&segwire_client::access::AuditFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(records.iter().any(|r| r.action == "peer.remove"));
}
