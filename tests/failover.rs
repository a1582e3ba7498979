//! Two coordinators on one PostgreSQL, three agents joined through the first: kill -9 the
//! first and the agents move to the second, keep their traffic, and take a change made
//! through the second during the failover. Real processes in network namespaces, real
//! TLS, a real PostgreSQL 15 (testkit::postgres), real WireGuard.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use segwire_client::config::AdminConf;
use segwire_proto::JoinToken;
use segwire_testkit::netlab::privileged;
use segwire_testkit::postgres::Cluster;
use segwire_testkit::Lab;
use support::ctl::{start_coordinator_with, Ctl};
use support::{figure, ping, wait_until, Agent};

const A: &str = "198.18.0.1";
const B: &str = "198.18.0.2";
const PORT: u16 = 7443;

fn url(host: &str) -> String {
    format!("https://{host}:{PORT}")
}

/// The policy version each agent applied to its member, by host.
/// Whether every agent polls coordinator `host` within 10 s.
fn all_polling(lab: &Lab, agents: &[Agent], host: &str) -> bool {
    wait_until(Duration::from_secs(10), || {
        agents
            .iter()
            .all(|a| a.status(lab)["coordinator"] == url(host))
    })
    .is_some()
}

/// The agents' logs, for a failure message.
fn logs(agents: &[Agent]) -> String {
    agents
        .iter()
        .map(|a| std::fs::read_to_string(&a.log).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

fn policy_versions(lab: &Lab, agents: &[&Agent]) -> Vec<u64> {
    agents
        .iter()
        .map(|a| {
            a.status(lab)["members"][0]["policy_version"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn agents_fail_over_to_the_second_coordinator() {
    if !privileged("agents_fail_over_to_the_second_coordinator") {
        return;
    }
    let Some(pg) = Cluster::start("agents_fail_over_to_the_second_coordinator") else {
        return;
    };
    let db = pg.create_database();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lab = Lab::new("f");
    let ns_a = lab.host("ca", A);
    let ns_b = lab.host("cb", B);
    let hosts: Vec<String> = (1..=3)
        .map(|i| lab.host(&format!("h{i}"), &format!("198.18.0.1{i}")))
        .collect();
    let boxes: Vec<String> = (1..=3).map(|i| lab.container(&format!("c{i}"))).collect();

    // Coordinator A sets the database up; B joins it with a copy of A's admin.conf.
    let (data_a, data_b) = (d.join("coord-a"), d.join("coord-b"));
    let (log_a, log_b) = (d.join("coord-a.log"), d.join("coord-b.log"));
    let listen_a = format!("{A}:{PORT}");
    let listen_b = format!("{B}:{PORT}");
    let pid_a = start_coordinator_with(
        &mut lab,
        &ns_a,
        &data_a,
        &log_a,
        &listen_a,
        A,
        &["--db", &db],
    );
    let ctl_a = Ctl {
        ns: ns_a.clone(),
        conf: data_a.join("admin.conf"),
    };
    ctl_a.wait_ready(&lab, &log_a);
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::copy(data_a.join("admin.conf"), data_b.join("admin.conf")).unwrap();
    let _pid_b = start_coordinator_with(
        &mut lab,
        &ns_b,
        &data_b,
        &log_b,
        &listen_b,
        B,
        &["--db", &db],
    );
    let ctl_b = Ctl {
        ns: ns_b.clone(),
        conf: data_b.join("admin.conf"),
    };
    let rewritten = wait_until(Duration::from_secs(30), || {
        AdminConf::load(&ctl_b.conf).is_ok_and(|c| c.url == url(B))
    });
    assert!(
        rewritten.is_some(),
        "B did not take A's admin.conf:\n{}",
        std::fs::read_to_string(&log_b).unwrap_or_default()
    );
    ctl_b.wait_ready(&lab, &log_b);
    let (conf_a, conf_b) = (
        AdminConf::load(&ctl_a.conf).unwrap(),
        AdminConf::load(&ctl_b.conf).unwrap(),
    );
    assert_eq!(conf_a.ca_pin, conf_b.ca_pin, "one CA, one pin");
    assert_eq!(
        conf_a.api_key, conf_b.api_key,
        "B made no admin key of its own"
    );
    assert!(data_b.join("ca.crt").exists() && !data_b.join("ca.key").exists());

    ctl_a.sw(
        &lab,
        &["segment", "create", "web", "--cidr", "100.64.1.0/24"],
    );
    // A token from A names both coordinators, A first (once A has seen B's heartbeat).
    let mut token = String::new();
    let both = wait_until(Duration::from_secs(10), || {
        token = ctl_a.sw(
            &lab,
            &["token", "create", "--segment", "web", "--uses", "3"],
        );
        token.parse::<JoinToken>().unwrap().urls() == [url(A), url(B)]
    });
    assert!(
        both.is_some(),
        "the token does not name both coordinators: {token}"
    );

    let mut agents: Vec<Agent> = hosts.iter().map(|h| Agent::new(h, d)).collect();
    let mut addrs = Vec::new();
    for (i, a) in agents.iter_mut().enumerate() {
        a.join(&lab, &token, &format!("h{}", i + 1));
        a.start(&mut lab);
        addrs.push(a.attach(&lab, "web", &boxes[i], &format!("app=c{}", i + 1)));
    }
    for (from, to) in [(0, 1), (1, 2), (2, 0)] {
        assert!(
            wait_until(Duration::from_secs(15), || ping(
                &lab,
                &boxes[from],
                &addrs[to],
                "1"
            ))
            .is_some(),
            "c{} cannot reach c{} before the failover",
            from + 1,
            to + 1
        );
    }
    for a in &agents {
        assert_eq!(a.status(&lab)["coordinator"], url(A), "{} polls A", a.host);
    }
    let before = policy_versions(&lab, &agents.iter().collect::<Vec<_>>());

    // A write A acknowledged, then A dies without a word.
    ctl_a.sw(
        &lab,
        &["segment", "create", "acked", "--cidr", "100.64.9.0/24"],
    );
    lab.kill(pid_a);
    let killed = Instant::now();

    // A change through B while the agents are still moving: c1 may ping c2, nothing else.
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default": "deny", "rules": [{"name": "c1-to-c2", "from": {"labels": {"app": "c1"}}, "to": {"labels": {"app": "c2"}}, "ports": ["icmp"]}]}"#,
    )
    .unwrap();
    ctl_b.sw(
        &lab,
        &["policy", "set", "web", "--file", policy.to_str().unwrap()],
    );
    let shown = ctl_b.sw(&lab, &["segment", "show", "acked"]);
    assert!(
        shown.contains("100.64.9.0/24"),
        "the write A acknowledged is lost: {shown}"
    );

    assert!(
        all_polling(&lab, &agents, B),
        "the agents are not on B 10 s after A died:\n{}",
        logs(&agents)
    );
    for a in &agents {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        assert!(
            log.contains("switching to the next one"),
            "{} did not log its switch:\n{log}",
            a.host
        );
    }
    figure(
        "failover: every agent polling coordinator B after kill -9 of A (s)",
        format!("{:.2}", killed.elapsed().as_secs_f64()),
    );
    let refs: Vec<&Agent> = agents.iter().collect();
    let applied = wait_until(Duration::from_secs(10), || {
        policy_versions(&lab, &refs)
            .iter()
            .zip(&before)
            .all(|(now, was)| now > was)
    });
    assert!(
        applied.is_some(),
        "the change made through B did not reach every agent"
    );
    figure(
        "failover: policy set through B during the failover applied on every agent (s after the kill)",
        format!("{:.2}", killed.elapsed().as_secs_f64()),
    );
    assert!(ping(&lab, &boxes[0], &addrs[1], "2"), "c1 -> c2 is allowed");
    assert!(
        !ping(&lab, &boxes[0], &addrs[2], "1"),
        "c1 -> c3 is denied now"
    );
    assert!(
        !ping(&lab, &boxes[2], &addrs[0], "1"),
        "c3 -> c1 is denied now"
    );

    // A comes back (same data dir: same CA, its own admin key kept); then B's host
    // vanishes without closing anything (its link goes down): the agents' long-polls to
    // B see no reset; TCP keepalive and the user timeout end them within about 5 s, and
    // the agents move to A.
    let _pid_a = start_coordinator_with(
        &mut lab,
        &ns_a,
        &data_a,
        &log_a,
        &listen_a,
        A,
        &["--db", &db],
    );
    ctl_a.wait_ready(&lab, &log_a);
    for link in lab.links(&ns_b) {
        segwire_testkit::netlab::sh(
            std::process::Command::new("ip").args(["-n", &ns_b, "link", "set", &link, "down"]),
        );
    }
    let vanished = Instant::now();
    assert!(
        all_polling(&lab, &agents, A),
        "the agents did not leave B's vanished host for A:\n{}",
        logs(&agents)
    );
    figure(
        "failover: every agent polling A after B's host vanished (link down, no reset) (s)",
        format!("{:.2}", vanished.elapsed().as_secs_f64()),
    );
    assert!(
        ping(&lab, &boxes[0], &addrs[1], "2"),
        "c1 -> c2 still flows"
    );
    for a in agents.iter_mut() {
        a.stop(&mut lab);
    }
}
