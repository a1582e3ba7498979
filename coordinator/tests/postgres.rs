//! The coordinator on PostgreSQL, end to end: `migrate-db` copies a populated SQLite
//! coordinator into a real PostgreSQL cluster (testkit::postgres), the coordinator starts
//! on it with everything there and takes new writes; `--db` mistakes are one sentence.
//! Real binary, real SQLite file, real PostgreSQL, real HTTPS.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{attach_req, enroll_req};
use segwire_client::access::AuditFilter;
use segwire_client::Client;
use segwire_proto::api::{CreateSegment, CreateToken, FlowReport};
use segwire_proto::JoinToken;
use segwire_testkit::postgres::Cluster;
use segwire_testkit::{bin, Coordinator};

fn migrate(from: &str, to: &str, force: bool) -> Output {
    let mut cmd = Command::new(bin("segwire-coordinator"));
    cmd.args(["migrate-db", "--from", from, "--to", to]);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn token(admin: &Client, uses: u32) -> JoinToken {
    admin
        .create_token(&CreateToken {
            segments: vec!["web".into()],
            labels: Default::default(),
            ttl_seconds: Some(600),
            uses: Some(uses),
        })
        .await
        .unwrap()
        .token
        .parse()
        .unwrap()
}

fn flow(member: &str, src: &str, port: u16) -> FlowReport {
    FlowReport {
        flows: vec![common::flow_record(
            "web",
            member,
            src,
            "100.64.1.200",
            port,
        )],
        dropped: 0,
    }
}

async fn flow_rows(admin: &Client) -> usize {
    admin
        .list_flows(None, false, None, 100)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_db_copies_a_live_sqlite_coordinator_and_new_writes_work_on_postgres() {
    let Some(pg) = Cluster::start("migrate_db_copies_a_live_sqlite_coordinator") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut coord = Coordinator::start(&data, "127.0.0.1:0", &[]);
    let admin = coord.admin_client();
    admin
        .create_segment(&CreateSegment {
            name: "web".into(),
            cidr: "100.64.1.0/24".into(),
            default: None,
        })
        .await
        .unwrap();
    let t = token(&admin, 2).await;
    let anon = Client::new(&t.url, t.pin, None).unwrap();
    let mut addresses = Vec::new();
    let mut first = None;
    for name in ["host-a", "host-b"] {
        let e = anon.enroll(&enroll_req(&t, name)).await.unwrap();
        let node = Client::new(&t.url, t.pin, Some(e.credential.clone())).unwrap();
        let m = node.attach(&attach_req("web", "app")).await.unwrap();
        addresses.push(m.address.clone().expect("an IPv4 address"));
        first.get_or_insert((node, e.credential, m));
    }
    let (node_a, cred_a, member_a) = first.unwrap();
    node_a
        .report_flows(&flow(
            &member_a.name,
            member_a.address.as_deref().expect("an IPv4 address"),
            22,
        ))
        .await
        .unwrap();
    let audit_before = admin.audit(&AuditFilter::default()).await.unwrap();
    assert!(!audit_before.is_empty());
    coord.stop();

    let db = data.join("segwire.db").display().to_string();
    let url = pg.create_database();
    let out = migrate(&format!("sqlite://{db}"), &url, false);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for line in [
        "segments",
        "nodes",
        "members",
        "tokens",
        "audit_log",
        "flows",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(line)),
            "no count for {line}:\n{stdout}"
        );
    }
    let members_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("members "))
        .unwrap();
    assert!(members_line.contains(" 2 rows"), "{members_line}");
    assert!(stdout.contains("row counts match"), "{stdout}");

    // A second run finds the target full and refuses, in one sentence; --force replaces.
    let out = migrate(&db, &url, false);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("already holds rows") && errors[0].contains("--force"),
        "{stderr}"
    );
    let out = migrate(&db, &url, true);
    assert!(out.status.success(), "{:?}", text(&out));

    // The coordinator on PostgreSQL, same data dir (CA, admin.conf): everything is there.
    let coord = Coordinator::start(&data, "127.0.0.1:0", &["--db", &url]);
    assert!(!coord.log_text().contains("error"), "{}", coord.log_text());
    let admin = coord.admin_client();
    let segments = admin.list_segments().await.unwrap();
    assert_eq!(segments.len(), 1);
    let nodes = admin.list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    let members = admin.list_members(Some("web")).await.unwrap();
    let mut got: Vec<String> = members
        .iter()
        .map(|m| m.address.clone().expect("an IPv4 address"))
        .collect();
    got.sort();
    addresses.sort();
    assert_eq!(got, addresses);
    let audit_after = admin.audit(&AuditFilter::default()).await.unwrap();
    assert!(audit_after.len() >= audit_before.len());
    assert_eq!(flow_rows(&admin).await, 1);

    // New writes: the old node credential still works, a new node attaches with a fresh
    // address, and a new flow row gets a fresh id.
    let conf = coord.conf();
    let node_a = Client::new(&conf.url, conf.ca_pin, Some(cred_a)).unwrap();
    node_a
        .report_flows(&flow(
            &member_a.name,
            member_a.address.as_deref().expect("an IPv4 address"),
            23,
        ))
        .await
        .unwrap();
    assert_eq!(flow_rows(&admin).await, 2);
    let t2 = token(&admin, 1).await;
    let anon = Client::new(&t2.url, t2.pin, None).unwrap();
    let e = anon.enroll(&enroll_req(&t2, "host-c")).await.unwrap();
    let node_c = Client::new(&t2.url, t2.pin, Some(e.credential)).unwrap();
    let m = node_c.attach(&attach_req("web", "app")).await.unwrap();
    assert!(
        !addresses.contains(m.address.as_ref().expect("an IPv4 address")),
        "{:?} reused",
        m.address
    );
    assert_eq!(admin.list_members(Some("web")).await.unwrap().len(), 3);
    let audit_new = admin.audit(&AuditFilter::default()).await.unwrap();
    assert!(audit_new.len() > audit_after.len());
}

#[test]
fn a_bad_or_unreachable_postgres_url_is_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    for (url, says) in [
        (
            "postgres://seg:hunter2@127.0.0.1:notaport/x",
            "not a valid PostgreSQL URL",
        ),
        (
            "postgres://seg:hunter2@127.0.0.1:1/x",
            "cannot reach the PostgreSQL server",
        ),
    ] {
        let out = Command::new(bin("segwire-coordinator"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--db", url])
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert!(!out.status.success());
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains(says) && !stderr.contains("hunter2"),
            "{stderr}"
        );
    }
}

/// A free loopback port (bound and released: the coordinator binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_through_one_coordinator_wakes_long_polls_on_another_within_a_second() {
    let Some(pg) = Cluster::start("a_change_through_one_coordinator_wakes_long_polls") else {
        return;
    };
    let url = pg.create_database();
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = Coordinator::start(&data_a, "127.0.0.1:0", &["--db", &url]);
    // The second coordinator shares the CA and the admin key: copies of the first's files.
    std::fs::create_dir(&data_b).unwrap();
    for f in ["ca.key", "ca.crt", "admin.conf"] {
        std::fs::copy(data_a.join(f), data_b.join(f)).unwrap();
    }
    let b = Coordinator::start(
        &data_b,
        &format!("127.0.0.1:{}", free_port()),
        &["--db", &url],
    );
    let (conf_a, conf_b) = (a.conf(), b.conf());
    assert_eq!(conf_a.ca_pin, conf_b.ca_pin);
    assert_eq!(
        conf_a.api_key, conf_b.api_key,
        "a second admin key was made"
    );
    let admin = a.admin_client();
    admin
        .create_segment(&CreateSegment {
            name: "web".into(),
            cidr: "100.64.1.0/24".into(),
            default: None,
        })
        .await
        .unwrap();
    assert_eq!(b.admin_client().list_segments().await.unwrap().len(), 1);
    let t = token(&admin, 2).await;
    let anon = Client::new(&t.url, t.pin, None).unwrap();
    let e1 = anon.enroll(&enroll_req(&t, "host-a")).await.unwrap();
    let n1_on_a = Client::new(&conf_a.url, t.pin, Some(e1.credential.clone())).unwrap();
    n1_on_a.attach(&attach_req("web", "app")).await.unwrap();

    // host-a long-polls the other coordinator.
    let n1_on_b = Client::new(&conf_b.url, t.pin, Some(e1.credential)).unwrap();
    let v = n1_on_b.netmap(0, 0).await.unwrap().unwrap().version;
    let poll = tokio::spawn(async move { n1_on_b.netmap(v, 25).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !poll.is_finished(),
        "the long-poll returned with nothing changed"
    );

    // host-b joins through the first coordinator.
    let e2 = anon.enroll(&enroll_req(&t, "host-b")).await.unwrap();
    let n2 = Client::new(&conf_a.url, t.pin, Some(e2.credential)).unwrap();
    n2.attach(&attach_req("web", "app")).await.unwrap();
    let changed = std::time::Instant::now();
    let map = tokio::time::timeout(std::time::Duration::from_secs(5), poll)
        .await
        .expect("the long-poll on the other coordinator was not woken within 5 s")
        .unwrap()
        .unwrap()
        .expect("a new netmap");
    let took = changed.elapsed();
    assert!(map.version > v);
    assert!(
        took < std::time::Duration::from_secs(1),
        "woken {took:?} after the change"
    );
}
