//! End-to-end resilience in network namespaces: a failing coordinator database takes no
//! member down and traffic keeps flowing, while a real revocation still cuts a node off
//! within 2 s; a restarted agent's containers are reachable again within 1 s; agents poll
//! again within 3 s of a coordinator's return.
//!
//! Needs root (skips with a message otherwise).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::traffic::{echo_outage, echo_rtts, Echo};
use support::{time_until, TwoAgents, World};

/// The contract: a revoked node loses its members within this time.
const REVOKED_WITHIN: Duration = Duration::from_secs(2);
/// The contract: after an agent restart, peers reach its containers within this time.
const REACHED_WITHIN: Duration = Duration::from_secs(1);
/// The contract: after a coordinator comes back, every agent polls again within this time.
const RECONNECT_WITHIN: Duration = Duration::from_secs(3);
/// How long the coordinator's database is locked.
const LOCKED_FOR: Duration = Duration::from_secs(42);
/// UDP echo port in the containers.
const ECHO_PORT: u16 = 7000;

struct Setup {
    world: World,
    conf: PathBuf,
    agent_a: usize,
    agent_b: usize,
    addr_b: Ipv4Addr,
}

fn setup(letter: char) -> Option<Setup> {
    setup_with(letter, &[])
}

/// [`setup`] with extra `serve` arguments for the coordinator.
fn setup_with(letter: char, coordinator_args: &[&str]) -> Option<Setup> {
    if !support::can_run("resilience") {
        return None;
    }
    let TwoAgents {
        world,
        conf,
        agents,
    } = World::two_agents_with(letter, "web", "100.64.1.0/24", coordinator_args);
    world.attach_netns("ha", "ca");
    let addr_b = world.attach_netns("hb", "cb");
    Some(Setup {
        world,
        conf,
        agent_a: agents[0],
        agent_b: agents[1],
        addr_b,
    })
}

/// UDP echoes from cA to `dst` every `every` until the flag is set; the thread returns
/// what it saw.
fn start_pinger(
    s: &Setup,
    dst: SocketAddr,
    every: Duration,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<support::traffic::Outage>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = std::thread::spawn({
        let (ns, stop) = (s.world.ns("ca"), stop.clone());
        move || echo_outage(&ns, dst, every, || stop.load(Ordering::Relaxed))
    });
    (stop, pinger)
}

fn reachable(world: &World, host: &str) -> bool {
    world.status(host)["coordinator_reachable"] == true
}

/// Waits until echoes from cA reach cB.
fn echo_works(s: &Setup) {
    let dst = SocketAddr::from((s.addr_b, ECHO_PORT));
    echo_rtts(&s.world.ns("ca"), dst, Duration::from_secs(20), 3)
        .unwrap_or_else(|| panic!("no echo from cB\n{}", s.world.logs()));
}

#[test]
fn a_failing_database_tears_nothing_down_but_a_revocation_does() {
    let Some(s) = setup('f') else { return };
    let _echo = Echo::start(&s.world.ns("cb"), ECHO_PORT);
    echo_works(&s);
    let db = s.world.path("coordinator").join("segwire.db");
    let lock = segwire_testkit::DbLock::hold(&db).expect("lock the database");
    // Every coordinator request now waits out the busy timeout (10 s) and fails (503).
    // Long-polls in flight end within 30 s, so each agent sees failures within 40 s.
    // Traffic must not notice.
    let locked = Instant::now();
    let dst = SocketAddr::from((s.addr_b, ECHO_PORT));
    let outage = echo_outage(&s.world.ns("ca"), dst, Duration::from_millis(100), || {
        locked.elapsed() > LOCKED_FOR
    });
    for host in ["ha", "hb"] {
        assert_eq!(s.world.member_count(host), 1, "{host}\n{}", s.world.logs());
    }
    drop(lock);
    for p in &s.world.procs[1..] {
        assert!(
            p.log_text().contains("netmap poll failed"),
            "{}",
            p.log_text()
        );
    }
    eprintln!(
        "database locked for {LOCKED_FOR:?}: {} of {} echoes answered, longest gap {:?}",
        outage.answered, outage.sent, outage.longest
    );
    assert!(
        outage.longest < Duration::from_millis(500),
        "{outage:?}\n{}",
        s.world.logs()
    );
    let coord_log = s.world.procs[0].log_text();
    assert!(
        coord_log.contains("store failure while authenticating"),
        "{coord_log}"
    );

    // Back to normal: both agents poll again; a real revocation now cuts host B off.
    let back = time_until(Duration::from_secs(20), || {
        reachable(&s.world, "ha") && reachable(&s.world, "hb")
    });
    assert!(
        back.is_some(),
        "agents did not reconnect\n{}",
        s.world.logs()
    );
    s.world.cli(&s.conf, &["node", "revoke", "host-b"]);
    let took = time_until(Duration::from_secs(10), || s.world.links("cb") == ["lo"]);
    eprintln!("revocation acknowledged -> cB's interface gone after {took:?}");
    assert!(
        took.is_some_and(|t| t <= REVOKED_WITHIN),
        "{took:?}\n{}",
        s.world.logs()
    );
    assert_eq!(s.world.status("hb")["revoked"], true);
}

#[test]
fn after_an_agent_restart_a_container_that_only_answers_is_reached_within_a_second() {
    let Some(mut s) = setup('r') else { return };
    let _echo = Echo::start(&s.world.ns("cb"), ECHO_PORT);
    echo_works(&s);
    let dst = SocketAddr::from((s.addr_b, ECHO_PORT));
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        // cA pings every 50 ms; cB only answers. Host B's agent restarts meanwhile.
        let (stop, pinger) = start_pinger(&s, dst, Duration::from_millis(50));
        sleep(Duration::from_millis(500));
        let agent = &mut s.world.procs[s.agent_b];
        agent.signal("-TERM");
        assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
        s.agent_b = s.world.start_agent("hb");
        let up = time_until(Duration::from_secs(10), || {
            s.world.links("cb").contains(&"sw-web".to_owned())
        });
        assert!(
            up.is_some(),
            "cB's interface did not come back\n{}",
            s.world.logs()
        );
        let up_at = Instant::now();
        sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        let outage = pinger.join().expect("pinger");
        let first = outage.answered_at.iter().find(|t| **t >= up_at).copied();
        let reached = first.map(|t| t - up_at);
        eprintln!(
            "round {round}: interface back -> first answer after {reached:?}; longest gap {:?} (restart included), {} of {} answered",
            outage.longest, outage.answered, outage.sent
        );
        let reached =
            reached.unwrap_or_else(|| panic!("cB never answered again\n{}", s.world.logs()));
        worst = worst.max(reached);
    }
    assert!(
        worst <= REACHED_WITHIN,
        "worst {worst:?}\n{}",
        s.world.logs()
    );
}

#[test]
fn after_a_coordinator_outage_every_agent_polls_again_within_three_seconds() {
    let Some(mut s) = setup('o') else { return };
    let _echo = Echo::start(&s.world.ns("cb"), ECHO_PORT);
    echo_works(&s);
    let coordinator = &mut s.world.procs[0];
    coordinator.signal("-TERM");
    assert!(coordinator.wait_exit(Duration::from_secs(10)).is_some());
    // Long enough for an uncapped backoff to grow well past the target.
    let gone = time_until(Duration::from_secs(10), || {
        !reachable(&s.world, "ha") && !reachable(&s.world, "hb")
    });
    assert!(
        gone.is_some(),
        "agents did not notice the coordinator stopped"
    );
    sleep(Duration::from_secs(12));
    echo_works(&s);
    s.world.start_coordinator();
    let back = Instant::now();
    let mut took = Vec::new();
    for host in ["ha", "hb"] {
        let t = time_until(Duration::from_secs(20), || reachable(&s.world, host));
        took.push(t.map(|_| back.elapsed()));
    }
    eprintln!("coordinator answering again -> agents polling after {took:?}");
    assert!(
        took.iter()
            .all(|t| t.is_some_and(|t| t <= RECONNECT_WITHIN)),
        "{took:?}\n{}",
        s.world.logs()
    );
}

/// Host B and the coordinator cannot reach each other (or can again): blackhole routes
/// both ways, so a long-poll in flight gets no answer either.
fn cut_off_coordinator(world: &World, cut: bool) {
    let verb = if cut { "add" } else { "del" };
    for (ns, to) in [("hb", support::CTL_IP), ("ctl", support::HOST_B_IP)] {
        let dst = format!("{to}/32");
        support::sh(
            "ip",
            &["-n", &world.ns(ns), "route", verb, "blackhole", &dst],
        );
    }
}

fn psk_version(world: &World, host: &str) -> u64 {
    world.status(host)["members"][0]["psk_version"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_key_rotation_with_a_late_node_restarted_from_the_old_key_stops_no_traffic() {
    let Some(mut s) = setup('k') else { return };
    let _echo = Echo::start(&s.world.ns("cb"), ECHO_PORT);
    echo_works(&s);
    let old = psk_version(&s.world, "hb");
    // cA pings every 100 ms; cB only answers. Host B cannot reach the coordinator when
    // the key rotates, restarts from saved state (the old key) and learns the new key
    // 30 s late.
    let dst = SocketAddr::from((s.addr_b, ECHO_PORT));
    let (stop, pinger) = start_pinger(&s, dst, Duration::from_millis(100));
    cut_off_coordinator(&s.world, true);
    s.world.cli(&s.conf, &["segment", "rotate-key", "web"]);
    let learned = time_until(Duration::from_secs(5), || psk_version(&s.world, "ha") > old);
    assert!(learned.is_some(), "host A did not get the new key");
    sleep(Duration::from_secs(10));
    let agent = &mut s.world.procs[s.agent_b];
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
    s.agent_b = s.world.start_agent("hb");
    assert_eq!(
        psk_version(&s.world, "hb"),
        old,
        "host B restarted with the old key"
    );
    sleep(Duration::from_secs(20));
    cut_off_coordinator(&s.world, false);
    let caught_up = time_until(Duration::from_secs(10), || {
        psk_version(&s.world, "hb") > old
    });
    assert!(
        caught_up.is_some(),
        "host B did not get the new key\n{}",
        s.world.logs()
    );
    sleep(Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    let outage = pinger.join().expect("pinger");
    eprintln!(
        "rotation, B late by 30 s and restarted with the old key: longest gap {:?} (agent restart included), {} of {} answered",
        outage.longest, outage.answered, outage.sent
    );
    assert!(
        outage.longest <= Duration::from_secs(1),
        "{outage:?}\n{}",
        s.world.logs()
    );
}

/// The phase of segment `web`'s key rotation, as the coordinator shows it.
fn rotation_phase(s: &Setup) -> Option<String> {
    let out = s.world.cli(&s.conf, &["segment", "list", "-o", "json"]);
    let segs: serde_json::Value = serde_json::from_str(&out).expect("segment list");
    segs[0]["rotation"].as_str().map(str::to_owned)
}

#[test]
fn a_node_restarted_after_the_switch_reaches_a_node_that_never_learnt_the_next_key() {
    // A 20 s grace: host B, cut off, holds each phase for that long (it stays "online"
    // for the 30 s presence window), which leaves host A time to restart in `switched`.
    let Some(mut s) = setup_with('q', &["--key-rotation-grace", "20s"]) else {
        return;
    };
    let _echo = Echo::start(&s.world.ns("cb"), ECHO_PORT);
    echo_works(&s);
    let dst = SocketAddr::from((s.addr_b, ECHO_PORT));
    let (stop, pinger) = start_pinger(&s, dst, Duration::from_millis(100));
    cut_off_coordinator(&s.world, true);
    s.world.cli(&s.conf, &["segment", "rotate-key", "web"]);
    assert_eq!(rotation_phase(&s).as_deref(), Some("accepting"));
    let switched = time_until(Duration::from_secs(40), || {
        rotation_phase(&s).as_deref() == Some("switched")
    });
    assert!(
        switched.is_some(),
        "no switch after the grace period\n{}",
        s.world.logs()
    );
    // Host A applies the switch, then restarts from the saved netmap (both keys in it);
    // host B still has only the old key.
    sleep(Duration::from_secs(2));
    let agent = &mut s.world.procs[s.agent_a];
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
    s.agent_a = s.world.start_agent("ha");
    sleep(Duration::from_secs(4));
    cut_off_coordinator(&s.world, false);
    let retired = time_until(Duration::from_secs(30), || rotation_phase(&s).is_none());
    assert!(
        retired.is_some(),
        "the old key did not retire\n{}",
        s.world.logs()
    );
    sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let outage = pinger.join().expect("pinger");
    eprintln!(
        "FIGURE rotation: host A restarted in the switched phase, host B never had the next key: longest gap {:?}, {} of {} answered",
        outage.longest, outage.answered, outage.sent
    );
    assert!(
        outage.longest <= Duration::from_secs(1),
        "{outage:?}\n{}",
        s.world.logs()
    );
}
