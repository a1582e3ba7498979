//! The `segwire-cni` binary against a real agent in network namespaces, verb by verb, as
//! a runtime calls it: ADD (twice: idempotent), CHECK (and after the interface is
//! removed), GC, DEL (twice), STATUS; and the ADD latency.
//!
//! Needs root (skips with a message otherwise).

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::World;

const ID: &str = "4be7c0a1d2e3f40516273849a0b1c2d3e4f5061728394a5b6c7d8e9f00112233";

struct Setup {
    world: World,
    conf: std::path::PathBuf,
    netconf: String,
}

fn setup(letter: char) -> Option<Setup> {
    if !support::can_run("cni") {
        return None;
    }
    let mut world = World::build(letter);
    let conf = world.start_coordinator();
    world.cli(
        &conf,
        &["segment", "create", "web", "--cidr", "100.64.1.0/24"],
    );
    let token = world
        .cli(&conf, &["token", "create", "--segment", "web"])
        .trim()
        .to_owned();
    // The token from a file: it never appears on a command line.
    let token_file = world.path("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    let tf = token_file.to_str().expect("utf-8").to_owned();
    let out = world.node("ha", &["join", "--token-file", &tf, "--name", "host-a"]);
    assert!(out.status.success(), "join: {out:?}");
    world.start_agent("ha");
    let socket = world.path("state-ha").join("agent.sock");
    let netconf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "web", "type": "segwire", "segment": "web",
        "labels": {"app": "web"}, "agent_socket": socket,
    })
    .to_string();
    Some(Setup {
        world,
        conf,
        netconf,
    })
}

/// Runs the plugin with `command` for container `ID` in namespace `ca`.
fn cni(s: &Setup, command: &str, stdin: &str) -> Output {
    let plugin = s.world.bins.node.with_file_name("segwire-cni");
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", ID)
        .env("CNI_NETNS", format!("/run/netns/{}", s.world.ns("ca")))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .env(
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAME=web-1;SEGWIRE_LABEL_tier=front",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("segwire-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn members(s: &Setup) -> Vec<serde_json::Value> {
    s.world.coordinator_members(&s.conf)
}

#[test]
fn every_verb_against_a_real_agent() {
    let Some(s) = setup('c') else { return };
    let start = Instant::now();
    let add = cni(&s, "ADD", &s.netconf);
    let took = start.elapsed();
    assert!(add.status.success(), "ADD: {add:?}\n{}", s.world.logs());
    eprintln!("CNI ADD against the agent (attach, coordinator, netmap, interface up): {took:?}");
    let result = json(&add);
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(
        result["interfaces"][0]["sandbox"],
        format!("/run/netns/{}", s.world.ns("ca"))
    );
    assert!(result["interfaces"][0]["mac"]
        .as_str()
        .is_some_and(|m| m.len() == 17));
    assert_eq!(result["routes"][0]["dst"], "100.64.1.0/24");
    let address = result["ips"][0]["address"]
        .as_str()
        .expect("address")
        .to_owned();
    let listed = members(&s);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "web-1");
    assert_eq!(
        format!("{}/32", listed[0]["address"].as_str().unwrap_or_default()),
        address
    );
    assert_eq!(listed[0]["labels"]["app"], "web");
    assert_eq!(listed[0]["labels"]["tier"], "front");
    let links = support::sh(
        "ip",
        &["-n", &s.world.ns("ca"), "-o", "addr", "show", "eth0"],
    );
    assert!(links.contains(address.as_str()), "{links}");

    // ADD again for the same container: the same member, nothing new.
    let again = cni(&s, "ADD", &s.netconf);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(json(&again)["ips"], result["ips"]);
    assert_eq!(members(&s).len(), 1);

    // CHECK passes with the ADD result, fails once the interface is gone.
    let mut with_prev: serde_json::Value = serde_json::from_str(&s.netconf).expect("conf");
    with_prev["prevResult"] = result.clone();
    let check = cni(&s, "CHECK", &with_prev.to_string());
    assert!(check.status.success(), "CHECK: {check:?}");
    support::sh("ip", &["-n", &s.world.ns("ca"), "link", "del", "eth0"]);
    let check = cni(&s, "CHECK", &with_prev.to_string());
    assert!(!check.status.success());
    let err = json(&check);
    assert!(err["code"].as_u64().is_some(), "{err}");
    assert!(
        err["msg"].as_str().unwrap_or_default().contains("eth0"),
        "{err}"
    );

    // GC keeps a valid container, collects an unknown one.
    let mut gc: serde_json::Value = serde_json::from_str(&s.netconf).expect("conf");
    gc["cniVersion"] = "1.1.0".into();
    gc["cni.dev/valid-attachments"] = serde_json::json!([{"containerID": ID, "ifname": "eth0"}]);
    let out = cni(&s, "GC", &gc.to_string());
    assert!(out.status.success(), "GC: {out:?}");
    assert_eq!(members(&s).len(), 1);
    gc["cni.dev/valid-attachments"] = serde_json::json!([]);
    let out = cni(&s, "GC", &gc.to_string());
    assert!(out.status.success(), "GC: {out:?}");
    assert!(members(&s).is_empty(), "GC left {:?}", members(&s));

    // DEL twice succeeds.
    cni(&s, "ADD", &s.netconf);
    for _ in 0..2 {
        let del = cni(&s, "DEL", &s.netconf);
        assert!(del.status.success(), "DEL: {del:?}");
        assert!(del.stdout.is_empty());
    }
    assert!(members(&s).is_empty());

    // STATUS: the agent is ready.
    let mut status: serde_json::Value = serde_json::from_str(&s.netconf).expect("conf");
    status["cniVersion"] = "1.1.0".into();
    let out = cni(&s, "STATUS", &status.to_string());
    assert!(out.status.success(), "STATUS: {out:?}");
    // Nothing of the container is left in its namespace.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let links = support::sh("ip", &["-n", &s.world.ns("ca"), "-o", "link", "show"]);
        if !links.contains("eth0") {
            break;
        }
        assert!(Instant::now() < deadline, "eth0 still there: {links}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
