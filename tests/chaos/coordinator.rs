//! Chaos, coordinator side: the coordinator is killed with SIGKILL in the middle of writes
//! (segments, policy sets, token creation, token uses, attaches), over and over. After
//! each restart every acknowledged write is there, an interrupted write is either wholly
//! there (with its audit record, written in the same transaction) or wholly absent, and
//! SQLite's `PRAGMA integrity_check` says ok.
//!
//! Runs on loopback and needs no root. `SEGWIRE_CHAOS_CYCLES` sets the number of kill
//! cycles (default 200).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use segwire_client::access::AuditFilter;
use segwire_client::{Client, ClientError};
use segwire_proto::api::{AttachRequest, CreateSegment, CreateToken, EnrollRequest};
use segwire_proto::JoinToken;
use segwire_testkit::Coordinator;

use crate::support::figure;

/// How a write ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 2xx answer: the write must survive the crash.
    Acked,
    /// A definite refusal (4xx): the write must not be there.
    Refused,
    /// No answer (the coordinator died under it): either wholly there or wholly absent.
    InFlight,
}

fn outcome<T>(r: &Result<T, ClientError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Acked,
        Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => Outcome::Refused,
        Err(_) => Outcome::InFlight,
    }
}

/// Every write the clients made in one cycle, with its outcome.
#[derive(Debug, Default)]
struct Ledger {
    /// Segment name → outcome of its creation.
    segments: Vec<(String, Outcome)>,
    /// Policy serial (the rule is named `r<serial>`) → outcome of the set.
    policies: Vec<(u32, Outcome)>,
    /// Token serial → (token, outcome of its creation).
    tokens: Vec<(u32, Option<JoinToken>, Outcome)>,
    /// Token serial → outcome of enrolling node `n<serial>` with it.
    enrolls: Vec<(u32, Outcome)>,
    /// Workload (`pid:<serial>`) → (member id, outcome of the attach).
    members: Vec<(String, Option<String>, Outcome)>,
}

impl Ledger {
    fn writes(&self) -> usize {
        self.segments.len()
            + self.policies.len()
            + self.tokens.len()
            + self.enrolls.len()
            + self.members.len()
    }

    fn in_flight(&self) -> usize {
        let f = |o: &Outcome| *o == Outcome::InFlight;
        self.segments.iter().filter(|s| f(&s.1)).count()
            + self.policies.iter().filter(|s| f(&s.1)).count()
            + self.tokens.iter().filter(|s| f(&s.2)).count()
            + self.enrolls.iter().filter(|s| f(&s.1)).count()
            + self.members.iter().filter(|s| f(&s.2)).count()
    }
}

/// Serial numbers shared by all cycles, so names never repeat.
#[derive(Default)]
struct Serials {
    segment: AtomicU32,
    policy: AtomicU32,
    token: AtomicU32,
    member: AtomicU32,
}

const BASE: &str = "base";

fn random_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

fn policy(serial: u32) -> serde_json::Value {
    serde_json::json!({
        "default": "deny",
        "rules": [{"name": format!("r{serial}"), "from": "*", "to": "*", "ports": [format!("tcp/{}", 1 + serial % 60000)]}],
    })
}

/// A /24 of its own for segment `serial`, below the base segment's /16.
fn segment_cidr(serial: u32) -> String {
    format!("100.{}.{}.0/24", 64 + serial / 256, serial % 256)
}

/// Clients of one cycle: they write until the coordinator stops answering.
struct Writers {
    admin: Client,
    node: Client,
    anon: Client,
    serials: Arc<Serials>,
}

impl Writers {
    async fn segments(&self) -> Vec<(String, Outcome)> {
        let mut out = Vec::new();
        loop {
            let n = self.serials.segment.fetch_add(1, Ordering::Relaxed);
            let name = format!("s{n}");
            let r = self
                .admin
                .create_segment(&CreateSegment {
                    name: name.clone(),
                    cidr: segment_cidr(n),
                    default: None,
                })
                .await;
            let o = outcome(&r);
            out.push((name, o));
            if o == Outcome::InFlight {
                return out;
            }
        }
    }

    async fn policies(&self) -> Vec<(u32, Outcome)> {
        let mut out = Vec::new();
        loop {
            let n = self.serials.policy.fetch_add(1, Ordering::Relaxed);
            let o = outcome(&self.admin.set_policy(BASE, &policy(n)).await);
            out.push((n, o));
            if o == Outcome::InFlight {
                return out;
            }
        }
    }

    async fn tokens(&self) -> (Vec<(u32, Option<JoinToken>, Outcome)>, Vec<(u32, Outcome)>) {
        let (mut tokens, mut enrolls) = (Vec::new(), Vec::new());
        loop {
            let n = self.serials.token.fetch_add(1, Ordering::Relaxed);
            let r = self
                .admin
                .create_token(&CreateToken {
                    segments: vec![BASE.into()],
                    labels: Default::default(),
                    ttl_seconds: Some(3600),
                    uses: Some(1),
                })
                .await;
            let o = outcome(&r);
            let token: Option<JoinToken> = r.ok().map(|t| t.token.parse().expect("token"));
            tokens.push((n, token.clone(), o));
            let Some(token) = token else {
                return (tokens, enrolls);
            };
            let r = self
                .anon
                .enroll(&EnrollRequest {
                    token_id: token.id.clone(),
                    token_secret: token.secret.clone(),
                    name: format!("n{n}"),
                    public_key: random_key(),
                    endpoints: vec!["198.18.0.2".into()],
                })
                .await;
            let o = outcome(&r);
            enrolls.push((n, o));
            if o == Outcome::InFlight {
                return (tokens, enrolls);
            }
        }
    }

    async fn members(&self) -> Vec<(String, Option<String>, Outcome)> {
        let mut out = Vec::new();
        loop {
            let n = self.serials.member.fetch_add(1, Ordering::Relaxed);
            let workload = format!("pid:{}", 1000 + n);
            let r = self
                .node
                .attach(&AttachRequest {
                    segment: BASE.into(),
                    workload: workload.clone(),
                    name: None,
                    public_key: random_key(),
                    listen_port: 51820,
                    endpoints: vec![],
                    labels: Default::default(),
                })
                .await;
            let o = outcome(&r);
            out.push((workload, r.ok().map(|m| m.id), o));
            if o == Outcome::InFlight {
                return out;
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks one cycle's writes against what the restarted coordinator holds.
/// What verification carries from one cycle to the next.
#[derive(Default)]
struct Seen {
    /// The highest audit record id checked so far.
    audit: u64,
    /// Every token id known so far.
    tokens: BTreeSet<String>,
}

async fn verify(admin: &Client, ledger: &Ledger, since: u64, seen: &mut Seen, cycle: u32) -> Tally {
    let after = &mut seen.audit;
    let mut audit = admin
        .audit(&AuditFilter {
            since: Some(since.to_string()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .expect("audit");
    // Only this cycle's records: `since` has whole seconds, ids are exact.
    audit.retain(|r| r.id > *after);
    *after = audit.iter().map(|r| r.id).max().unwrap_or(*after);
    let mut audited: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &audit {
        *audited
            .entry((r.action.clone(), r.target.clone()))
            .or_default() += 1;
    }
    let audited_once = |action: &str, target: String| -> usize {
        let n = audited
            .get(&(action.to_owned(), target.clone()))
            .copied()
            .unwrap_or(0);
        assert!(
            n <= 1,
            "cycle {cycle}: {n} audit records for {action} {target}"
        );
        n
    };
    let mut tally = Tally::default();

    let segments: BTreeSet<String> = admin
        .list_segments()
        .await
        .expect("segments")
        .into_iter()
        .map(|s| s.name)
        .collect();
    for (name, o) in &ledger.segments {
        let n = audited_once("segment.create", format!("segment:{name}"));
        tally.check(
            cycle,
            &format!("segment {name}"),
            *o,
            segments.contains(name),
            n,
        );
    }

    let doc = admin.get_policy(BASE).await.expect("policy");
    let current = doc.policy.to_string();
    let last_acked = ledger
        .policies
        .iter()
        .filter(|p| p.1 == Outcome::Acked)
        .map(|p| p.0)
        .max();
    let in_force = ledger
        .policies
        .iter()
        .find(|(n, _)| current.contains(&format!("\"r{n}\"")))
        .copied();
    match (last_acked, in_force) {
        (Some(acked), Some((n, o))) => {
            assert!(
                n == acked || (n > acked && o == Outcome::InFlight),
                "cycle {cycle}: policy r{n} ({o:?}) is in force but r{acked} was acknowledged last"
            );
        }
        (Some(acked), None) => {
            panic!("cycle {cycle}: acknowledged policy r{acked} was lost: {current}")
        }
        (None, Some((_, o))) => assert_eq!(o, Outcome::InFlight, "cycle {cycle}"),
        (None, None) => {}
    }
    if ledger
        .policies
        .last()
        .is_some_and(|p| p.1 == Outcome::InFlight)
    {
        if in_force.is_some_and(|p| p.1 == Outcome::InFlight) {
            tally.committed += 1;
        } else {
            tally.rolled_back += 1;
        }
    }
    let sets = audit.iter().filter(|r| r.action == "policy.set").count();
    let landed = ledger
        .policies
        .iter()
        .filter(|p| p.1 == Outcome::Acked)
        .count()
        + usize::from(in_force.is_some_and(|p| p.1 == Outcome::InFlight));
    assert_eq!(
        sets, landed,
        "cycle {cycle}: policy sets and their audit records differ"
    );

    let tokens: BTreeMap<String, u32> = admin
        .list_tokens()
        .await
        .expect("tokens")
        .into_iter()
        .map(|t| (t.id, t.uses_left))
        .collect();
    let nodes: BTreeSet<String> = admin
        .list_nodes()
        .await
        .expect("nodes")
        .into_iter()
        .map(|n| n.name)
        .collect();
    for (n, token, o) in &ledger.tokens {
        if let Some(t) = token {
            let present = tokens.contains_key(&t.id);
            let records = audited_once("token.create", format!("token:{}", t.id));
            tally.check(cycle, &format!("token {n}"), *o, present, records);
            let used = tokens.get(&t.id) == Some(&0);
            assert_eq!(
                used,
                nodes.contains(&format!("n{n}")),
                "cycle {cycle}: token {n}'s use and node n{n} disagree (a half-written enrolment)"
            );
        }
    }
    // A token creation cut off by the kill has no id to look for: it is the one unknown
    // token, if it landed, and then it has its audit record.
    for (_, token, _) in &ledger.tokens {
        if let Some(t) = token {
            seen.tokens.insert(t.id.clone());
        }
    }
    let unknown: Vec<&String> = tokens
        .keys()
        .filter(|id| !seen.tokens.contains(*id))
        .collect();
    if ledger
        .tokens
        .last()
        .is_some_and(|t| t.2 == Outcome::InFlight)
    {
        assert!(
            unknown.len() <= 1,
            "cycle {cycle}: unknown tokens {unknown:?}"
        );
        for id in &unknown {
            assert_eq!(
                audited_once("token.create", format!("token:{id}")),
                1,
                "cycle {cycle}: token {id} has no audit record"
            );
            tally.committed += 1;
        }
        if unknown.is_empty() {
            tally.rolled_back += 1;
        }
    } else {
        assert!(
            unknown.is_empty(),
            "cycle {cycle}: tokens nobody created: {unknown:?}"
        );
    }
    seen.tokens.extend(unknown.into_iter().cloned());
    for (n, o) in &ledger.enrolls {
        let name = format!("n{n}");
        let records = audited_once("node.enroll", format!("node:{name}"));
        tally.check(
            cycle,
            &format!("node {name}"),
            *o,
            nodes.contains(&name),
            records,
        );
    }

    let members = admin.list_members(Some(BASE)).await.expect("members");
    let mut addresses = BTreeSet::new();
    for m in &members {
        assert!(
            addresses.insert(m.address.clone()),
            "cycle {cycle}: address {:?} given twice",
            m.address
        );
    }
    let by_workload: BTreeMap<&str, &str> = members
        .iter()
        .map(|m| (m.workload.as_str(), m.id.as_str()))
        .collect();
    for (workload, id, o) in &ledger.members {
        let present = by_workload.get(workload.as_str()).copied();
        if let (Some(id), Some(found)) = (id, present) {
            assert_eq!(id, found, "cycle {cycle}: member of {workload} changed id");
        }
        let records = present.map_or(0, |id| {
            audited_once("member.attach", format!("member:{id}"))
        });
        tally.check(
            cycle,
            &format!("member {workload}"),
            *o,
            present.is_some(),
            records,
        );
    }
    tally
}

/// What became of the writes the kills cut off.
#[derive(Debug, Default)]
struct Tally {
    committed: usize,
    rolled_back: usize,
}

impl Tally {
    /// Checks one write: present iff it has its audit record, and as its outcome allows.
    fn check(&mut self, cycle: u32, what: &str, o: Outcome, present: bool, audit_records: usize) {
        assert_eq!(
            usize::from(present),
            audit_records,
            "cycle {cycle}: {what} is {} but has {audit_records} audit records (a half-write)",
            if present { "present" } else { "absent" }
        );
        match o {
            Outcome::Acked => assert!(present, "cycle {cycle}: acknowledged {what} was lost"),
            Outcome::Refused => assert!(!present, "cycle {cycle}: refused {what} is present"),
            Outcome::InFlight if present => self.committed += 1,
            Outcome::InFlight => self.rolled_back += 1,
        }
    }
}

async fn integrity_check(db: &std::path::Path) -> String {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .expect("open the database read-only");
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("integrity_check");
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("; ")
}

fn cycles() -> u32 {
    std::env::var("SEGWIRE_CHAOS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_mid_write_loses_no_acknowledged_write_and_leaves_no_half_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut coord = tokio::task::block_in_place(|| Coordinator::start(&data, "127.0.0.1:0", &[]));
    let admin = coord.admin_client();
    admin
        .create_segment(&CreateSegment {
            name: BASE.into(),
            cidr: "100.100.0.0/16".into(),
            default: None,
        })
        .await
        .expect("base segment");
    let token: JoinToken = admin
        .create_token(&CreateToken {
            segments: vec![BASE.into()],
            labels: Default::default(),
            ttl_seconds: Some(3600),
            uses: Some(1),
        })
        .await
        .expect("token")
        .token
        .parse()
        .expect("token");
    let anon = Client::new(&token.url, token.pin, None).expect("client");
    let enrolled = anon
        .enroll(&EnrollRequest {
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            name: "attacher".into(),
            public_key: random_key(),
            endpoints: vec!["198.18.0.2".into()],
        })
        .await
        .expect("enroll");
    let node = Client::new(&token.url, token.pin, Some(enrolled.credential)).expect("client");

    let serials = Arc::new(Serials::default());
    let audit_start = admin
        .audit(&AuditFilter::default())
        .await
        .expect("audit")
        .iter()
        .map(|r| r.id)
        .max()
        .unwrap_or(0);
    let mut seen = Seen {
        audit: audit_start,
        tokens: BTreeSet::new(),
    };
    seen.tokens.insert(token.id.clone());
    let (mut writes, mut in_flight, mut total) = (0, 0, Tally::default());
    let cycles = cycles();
    let started = std::time::Instant::now();
    for cycle in 0..cycles {
        let since = unix_now().saturating_sub(1);
        let writers = Arc::new(Writers {
            admin: admin.clone(),
            node: node.clone(),
            anon: anon.clone(),
            serials: serials.clone(),
        });
        let w = writers.clone();
        let segments = tokio::spawn(async move { w.segments().await });
        let w = writers.clone();
        let policies = tokio::spawn(async move { w.policies().await });
        let w = writers.clone();
        let tokens = tokio::spawn(async move { w.tokens().await });
        let w = writers.clone();
        let members = tokio::spawn(async move { w.members().await });
        let delay = rand::thread_rng().gen_range(5..120);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        tokio::task::block_in_place(|| coord.crash());
        let (tokens, enrolls) = tokens.await.expect("token writer");
        let ledger = Ledger {
            segments: segments.await.expect("segment writer"),
            policies: policies.await.expect("policy writer"),
            tokens,
            enrolls,
            members: members.await.expect("member writer"),
        };
        tokio::task::block_in_place(|| coord.start_again());
        let tally = verify(&admin, &ledger, since, &mut seen, cycle).await;
        writes += ledger.writes();
        in_flight += ledger.in_flight();
        total.committed += tally.committed;
        total.rolled_back += tally.rolled_back;
        let check = integrity_check(&data.join("segwire.db")).await;
        assert_eq!(check, "ok", "cycle {cycle}: integrity_check");
    }
    figure(
        "chaos: coordinator kill -9 cycles",
        format!(
            "{cycles} cycles in {:.0?}: {writes} writes, {in_flight} cut off by the kill ({} committed, {} rolled back), 0 acknowledged writes lost, integrity_check ok after each",
            started.elapsed(),
            total.committed,
            total.rolled_back
        ),
    );
    assert!(
        in_flight >= cycles as usize / 2,
        "only {in_flight} writes were in flight at {cycles} kills: the kills missed the writes"
    );
}
