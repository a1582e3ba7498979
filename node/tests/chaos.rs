//! Chaos, agent side, in network namespaces: an agent killed with SIGKILL in the middle
//! of reconciling restores exactly the members it should and leaks no interface, UDP
//! port or UAPI socket; an agent killed under steady traffic is reached again within 1 s
//! of its interface coming back, with the loss counted. (The coordinator side of the
//! chaos suite is `tests/chaos`.)
//!
//! Needs root (skips with a message otherwise). `SEGWIRE_CHAOS_AGENT_CYCLES` sets the
//! number of kills mid-reconcile (default 25).

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use rand::Rng;
use support::traffic::{echo_outage, echo_rtts, Echo};
use support::{time_until, TwoAgents, World};

/// The segment of the mid-reconcile test (its interfaces and UAPI sockets are `sw-chaos*`,
/// apart from every other test's).
const SEGMENT: &str = "chaos";
const INTERFACE: &str = "sw-chaos";
const CONTAINERS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// Where the agents' UAPI sockets live.
const UAPI_DIR: &str = "/var/run/wireguard";
/// How long a restarted agent may take to settle (reaping a member the coordinator
/// committed but the agent never saved included, with its retries on a loaded machine).
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// The contract: after an agent restart, peers reach its containers within this time.
const REACHED_WITHIN: Duration = Duration::from_secs(1);
const ECHO_PORT: u16 = 7000;

fn cycles() -> u32 {
    std::env::var("SEGWIRE_CHAOS_AGENT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

/// `segwire-node attach|detach` of one container, running while the agent gets killed.
struct Op {
    container: &'static str,
    attach: bool,
    child: Child,
}

fn start_op(world: &World, container: &'static str, attach: bool) -> Op {
    let dir = world.path("state-ha");
    let ns = world.ns(container);
    let verb = if attach { "attach" } else { "detach" };
    let child = Command::new("ip")
        .args(["netns", "exec", &world.ns("ha")])
        .arg(&world.bins.node)
        .arg("--state-dir")
        .arg(&dir)
        .args([verb, "--segment", SEGMENT, "--netns", &ns])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn segwire-node");
    Op {
        container,
        attach,
        child,
    }
}

/// What host A holds after a restart, seen from every side.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    /// Containers the agent lists as attached (and up).
    agent: BTreeSet<String>,
    /// Containers that have the interface.
    interfaces: BTreeSet<String>,
    /// Member ids the coordinator lists for host A in the segment.
    coordinator: BTreeSet<String>,
    /// Member ids the agent lists.
    agent_ids: BTreeSet<String>,
    /// UDP ports the agent process has open.
    ports: BTreeSet<u16>,
    /// The members' listen ports.
    member_ports: BTreeSet<u16>,
    /// `sw-chaos*` UAPI sockets on the machine.
    sockets: BTreeSet<String>,
    /// The UAPI sockets the agents (A and B, whose peer is in the segment too) serve.
    member_sockets: BTreeSet<String>,
    /// Members not up.
    down: Vec<String>,
}

impl Held {
    fn consistent(&self) -> bool {
        self.agent == self.interfaces
            && self.coordinator == self.agent_ids
            && self.ports == self.member_ports
            && self.sockets == self.member_sockets
            && self.down.is_empty()
    }
}

fn udp_ports(world: &World, pid: u32) -> BTreeSet<u16> {
    let out = support::sh(
        "ip",
        &["netns", "exec", &world.ns("ha"), "ss", "-H", "-uanp"],
    );
    let owner = format!("pid={pid},");
    out.lines()
        .filter(|l| l.contains(&owner))
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit(':').next()?.parse().ok())
        .collect()
}

fn uapi_sockets() -> BTreeSet<String> {
    std::fs::read_dir(UAPI_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(INTERFACE) && n.ends_with(".sock"))
                .map(|n| n.trim_end_matches(".sock").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn held(world: &World, conf: &std::path::Path, pid: u32) -> Held {
    let status = world.status("ha");
    let members: Vec<&serde_json::Value> = status["members"]
        .as_array()
        .map(|a| a.iter().filter(|m| m["segment"] == SEGMENT).collect())
        .unwrap_or_default();
    let status_b = world.status("hb");
    let peer_members: Vec<&serde_json::Value> = status_b["members"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let str_of = |m: &serde_json::Value, k: &str| m[k].as_str().unwrap_or_default().to_owned();
    let container_of = |workload: String| -> String {
        let ns = workload.trim_start_matches("netns:").to_owned();
        CONTAINERS
            .iter()
            .find(|c| world.ns(c) == ns)
            .map_or(ns, |c| (*c).to_owned())
    };
    Held {
        agent: members
            .iter()
            .map(|m| container_of(str_of(m, "workload")))
            .collect(),
        interfaces: CONTAINERS
            .iter()
            .filter(|c| world.links(c).contains(&INTERFACE.to_owned()))
            .map(|c| (*c).to_owned())
            .collect(),
        coordinator: world
            .coordinator_members(conf)
            .iter()
            .filter(|m| m["segment"] == SEGMENT && m["node"] == "host-a")
            .map(|m| str_of(m, "id"))
            .collect(),
        agent_ids: members.iter().map(|m| str_of(m, "id")).collect(),
        ports: udp_ports(world, pid),
        member_ports: members
            .iter()
            .filter_map(|m| m["listen_port"].as_u64())
            .filter_map(|p| u16::try_from(p).ok())
            .collect(),
        sockets: uapi_sockets(),
        member_sockets: members
            .iter()
            .chain(peer_members.iter())
            .filter_map(|m| m["wg_socket"].as_str().map(str::to_owned))
            .collect(),
        down: members
            .iter()
            .filter(|m| m["up"] != true)
            .map(|m| str_of(m, "name"))
            .collect(),
    }
}

#[test]
fn an_agent_killed_mid_reconcile_restores_exactly_its_members_and_leaks_nothing() {
    if !support::can_run(
        "an_agent_killed_mid_reconcile_restores_exactly_its_members_and_leaks_nothing",
    ) {
        return;
    }
    let TwoAgents {
        mut world,
        conf,
        agents,
    } = World::two_agents_in('x', SEGMENT, "100.64.30.0/24");
    // A peer on host B, so that every reconcile on host A also builds peers.
    let peer_ns = world.ns("cb");
    let out = world.node("hb", &["attach", "--segment", SEGMENT, "--netns", &peer_ns]);
    assert!(out.status.success(), "{out:?}");
    for c in CONTAINERS {
        world.add_container(c);
    }
    let host_links = world.links("ha");
    let mut agent = agents[0];
    let mut rng = rand::thread_rng();
    let mut attached: BTreeSet<String> = BTreeSet::new();
    let (mut cut_off, mut settle_worst) = (0, Duration::ZERO);
    let cycles = cycles();
    for cycle in 0..cycles {
        let mut ops: Vec<Op> = CONTAINERS
            .iter()
            .filter(|_| rng.gen_bool(0.6))
            .map(|c| start_op(&world, c, !attached.contains(*c)))
            .collect();
        if ops.is_empty() {
            ops.push(start_op(
                &world,
                CONTAINERS[0],
                !attached.contains(CONTAINERS[0]),
            ));
        }
        sleep(Duration::from_millis(rng.gen_range(0..400)));
        let pid = world.procs[agent].pid();
        world.procs[agent].signal("-KILL");
        assert!(world.procs[agent]
            .wait_exit(Duration::from_secs(10))
            .is_some());
        let mut done = Vec::new();
        for mut op in ops {
            let ok = op.child.wait().is_ok_and(|s| s.success());
            cut_off += usize::from(!ok);
            done.push((op.container, op.attach, ok));
        }
        // Nothing of the killed process may linger (its sockets die with it).
        assert!(udp_ports(&world, pid).is_empty(), "cycle {cycle}");
        agent = world.start_agent("ha");
        let pid = world.procs[agent].pid();
        let mut last = None;
        let took = time_until(SETTLE_WITHIN, || {
            let h = held(&world, &conf, pid);
            let ok = h.consistent();
            last = Some(h);
            ok
        });
        let last = last.expect("looked at least once");
        assert!(
            took.is_some(),
            "cycle {cycle}: host A did not settle after a kill mid-reconcile ({done:?}):\n{last:#?}\n{}",
            world.logs()
        );
        settle_worst = settle_worst.max(took.unwrap_or_default());
        for (container, attach, ok) in &done {
            if *ok {
                assert_eq!(
                    last.agent.contains(*container),
                    *attach,
                    "cycle {cycle}: an acknowledged {} of {container} did not hold:\n{last:#?}",
                    if *attach { "attach" } else { "detach" }
                );
            }
        }
        assert_eq!(
            world.links("ha"),
            host_links,
            "cycle {cycle}: host A's links changed"
        );
        for c in CONTAINERS {
            let links = world.links(c);
            let expect: Vec<String> = std::iter::once("lo".to_owned())
                .chain(last.agent.contains(c).then(|| INTERFACE.to_owned()))
                .collect();
            assert_eq!(links, expect, "cycle {cycle}: links of {c}");
        }
        attached = last.agent;
    }
    eprintln!(
        "FIGURE chaos: agent kill -9 mid-reconcile: {cycles} cycles, {cut_off} attach/detach requests cut off by the kill, slowest settle {settle_worst:?}, 0 leaked interfaces, ports or UAPI sockets"
    );
}

#[test]
fn an_agent_killed_under_steady_traffic_is_reached_again_within_a_second() {
    if !support::can_run("an_agent_killed_under_steady_traffic_is_reached_again_within_a_second") {
        return;
    }
    let TwoAgents {
        mut world, agents, ..
    } = World::two_agents('y', "100.64.31.0/24");
    world.attach_netns("ha", "ca");
    let addr_b = world.attach_netns("hb", "cb");
    let _echo = Echo::start(&world.ns("cb"), ECHO_PORT);
    let dst = SocketAddr::from((addr_b, ECHO_PORT));
    echo_rtts(&world.ns("ca"), dst, Duration::from_secs(20), 3)
        .unwrap_or_else(|| panic!("no echo from cB\n{}", world.logs()));
    let mut agent_b = agents[1];
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = std::thread::spawn({
        let (ns, stop) = (world.ns("ca"), stop.clone());
        move || {
            echo_outage(&ns, dst, Duration::from_millis(50), || {
                stop.load(Ordering::Relaxed)
            })
        }
    });
    let mut ups = Vec::new();
    for _ in 0..3 {
        sleep(Duration::from_secs(2));
        world.procs[agent_b].signal("-KILL");
        assert!(world.procs[agent_b]
            .wait_exit(Duration::from_secs(10))
            .is_some());
        agent_b = world.start_agent("hb");
        let up = time_until(Duration::from_secs(10), || {
            world.links("cb").contains(&"sw-web".to_owned())
        });
        assert!(
            up.is_some(),
            "cB's interface did not come back\n{}",
            world.logs()
        );
        ups.push(Instant::now());
    }
    sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let outage = pinger.join().expect("pinger");
    let reached: Vec<Option<Duration>> = ups
        .iter()
        .map(|up| {
            outage
                .answered_at
                .iter()
                .find(|t| *t >= up)
                .map(|t| *t - *up)
        })
        .collect();
    let lost = outage.sent - outage.answered;
    eprintln!(
        "FIGURE chaos: agent kill -9 under traffic (echo every 50 ms, 3 kills): interface back -> first answer {reached:?}; {lost} of {} echoes lost, longest gap {:?}",
        outage.sent, outage.longest
    );
    assert!(
        reached
            .iter()
            .all(|r| r.is_some_and(|r| r <= REACHED_WITHIN)),
        "{reached:?}\n{}",
        world.logs()
    );
}
