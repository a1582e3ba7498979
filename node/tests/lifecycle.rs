//! End-to-end lifecycle tests in network namespaces: a member whose workload goes away is
//! detached by the agent (interface, data path, coordinator, peers), also across agent
//! restarts and coordinator outages; a live one is adopted again after a restart.
//!
//! Needs root (skips with a message otherwise).

mod support;

use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use support::{time_until, TwoAgents, World};

/// What the contract promises: a workload that goes away is detached within this time.
const DETACH_WITHIN: Duration = Duration::from_secs(3);

fn setup(letter: char) -> Option<TwoAgents> {
    if !support::can_run("lifecycle") {
        return None;
    }
    let s = World::two_agents(letter, "100.64.1.0/24");
    attach(&s.world, "ha", "ca");
    attach(&s.world, "hb", "cb");
    Some(s)
}

fn attach(world: &World, host: &str, container: &str) {
    world.attach_netns(host, container);
}

/// Member names the coordinator lists.
fn coordinator_members(s: &TwoAgents) -> Vec<String> {
    s.world
        .coordinator_members(&s.conf)
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Peer names of every member on `host`.
fn peers(world: &World, host: &str) -> Vec<String> {
    world.status(host)["members"]
        .as_array()
        .expect("members")
        .iter()
        .flat_map(|m| m["peers"].as_array().cloned().unwrap_or_default())
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn delete_netns(world: &World, short: &str) {
    let out = Command::new("ip")
        .args(["netns", "del", &world.ns(short)])
        .output()
        .expect("ip netns del");
    assert!(out.status.success(), "ip netns del: {out:?}");
}

#[test]
fn a_deleted_namespace_is_detached_everywhere_within_three_seconds() {
    let Some(s) = setup('l') else { return };
    let (a, b) = ("host-a-", "host-b-");
    assert_eq!(
        coordinator_members(&s).len(),
        2,
        "{:?}",
        coordinator_members(&s)
    );
    assert!(
        time_until(Duration::from_secs(10), || peers(&s.world, "ha")
            .iter()
            .any(|p| p.starts_with(b)))
        .is_some(),
        "host A never had host B's member as a peer"
    );
    delete_netns(&s.world, "cb");
    let gone = time_until(Duration::from_secs(10), || {
        s.world.member_count("hb") == 0
            && !coordinator_members(&s).iter().any(|m| m.starts_with(b))
            && !peers(&s.world, "ha").iter().any(|p| p.starts_with(b))
    });
    let took = gone.unwrap_or_else(|| {
        panic!(
            "the member of the deleted namespace is still there: coordinator {:?}, host A peers {:?}\n{}",
            coordinator_members(&s),
            peers(&s.world, "ha"),
            s.world.logs()
        )
    });
    eprintln!("namespace deleted -> member gone on agent, coordinator and peer: {took:?}");
    assert!(took <= DETACH_WITHIN, "took {took:?}");
    // The other member is untouched, and the agent said why it detached.
    assert!(coordinator_members(&s).iter().any(|m| m.starts_with(a)));
    let log = s.world.procs[s.agents[1]].log_text();
    assert!(log.contains("workload gone"), "{log}");
    // Nothing retries: no start attempts for the gone member afterwards.
    sleep(Duration::from_secs(6));
    let log = s.world.procs[s.agents[1]].log_text();
    assert!(!log.contains("could not start"), "{log}");
}

#[test]
fn after_a_restart_live_members_are_adopted_and_gone_ones_detached() {
    let Some(mut s) = setup('m') else { return };
    let member_a = s.world.status("ha")["members"][0]["id"].clone();
    for i in s.agents {
        s.world.procs[i].signal("-TERM");
        assert!(s.world.procs[i]
            .wait_exit(Duration::from_secs(10))
            .is_some());
    }
    delete_netns(&s.world, "cb");
    s.world.start_agent("ha");
    s.world.start_agent("hb");
    let took = time_until(Duration::from_secs(10), || {
        !coordinator_members(&s)
            .iter()
            .any(|m| m.starts_with("host-b-"))
    })
    .unwrap_or_else(|| panic!("gone member not detached:\n{}", s.world.logs()));
    eprintln!("agent restart -> gone member detached after {took:?}");
    assert!(took <= DETACH_WITHIN, "took {took:?}");
    assert_eq!(s.world.member_count("hb"), 0);
    // Host A's container lived on: same member, interface back, up.
    let up = time_until(Duration::from_secs(10), || {
        let st = s.world.status("ha");
        st["members"][0]["id"] == member_a && st["members"][0]["up"] == true
    });
    assert!(up.is_some(), "host A's member was not adopted again");
    let links = support::sh("ip", &["-n", &s.world.ns("ca"), "-o", "link", "show"]);
    assert!(links.contains("sw-web"), "{links}");
}

#[test]
fn a_detach_while_the_coordinator_is_stopped_reaches_it_when_it_is_back() {
    let Some(s) = setup('n') else { return };
    let coordinator = &s.world.procs[0];
    coordinator.signal("-STOP");
    delete_netns(&s.world, "cb");
    let local = time_until(Duration::from_secs(10), || s.world.member_count("hb") == 0);
    assert!(
        local.is_some_and(|t| t <= DETACH_WITHIN),
        "not detached locally while the coordinator is stopped: {local:?}"
    );
    coordinator.signal("-CONT");
    let took = time_until(Duration::from_secs(40), || {
        !coordinator_members(&s)
            .iter()
            .any(|m| m.starts_with("host-b-"))
    });
    assert!(
        took.is_some(),
        "the coordinator still lists the member:\n{}",
        s.world.logs()
    );
    eprintln!(
        "coordinator resumed -> member released after {:?}",
        took.unwrap_or_default()
    );
}
