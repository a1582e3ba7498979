//! Fan-out benchmark: starts a real coordinator, enrols N simulated agents over HTTPS
//! with real join tokens and node credentials (one connection each), keeps them all
//! long-polling, then makes changes in the first segment (a member joins, a policy
//! change, a key rotation) and prints, per change, how long the new netmap took to reach
//! every agent of that segment, the bytes sent, and the coordinator's CPU and RSS.
//!
//! `cargo build --release -p segwire-coordinator -p segwire-bench-fanout`, then
//! `target/release/fanout --agents 1000 [--segments 100]`. The benchmark raises its
//! open-file limit to the hard limit (the coordinator inherits it): 10,000 agents need
//! more than 20,000 descriptors between the two processes.
//!
//! The agents ask for deltas (`delta=1`) like `segwire-node`; `--full-maps` makes them
//! behave like agents that do not, so both byte counts can be compared.
//!
//! `--postgres` runs the coordinator on a throwaway PostgreSQL (testkit::postgres, Debian's
//! server binaries); `--coordinators N` starts N coordinators on that one database, spreads
//! the agents over them (agent i polls coordinator i mod N), makes the changes through the
//! first and so measures the wake-ups across coordinators too; CPU and RSS are then summed
//! over the coordinators.

mod agent;
mod procstat;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use segwire_client::config::AdminConf;
use segwire_client::Client;
use segwire_proto::api::{CreateSegment, CreateToken};
use segwire_proto::JoinToken;
use tokio::sync::Semaphore;

use crate::agent::{Agent, AgentLog};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "segwire fan-out benchmark")]
struct Args {
    /// Simulated agents (each one node with one member).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Segments the agents are spread over (changes are made in the first one).
    #[arg(long, default_value_t = 1)]
    segments: usize,
    /// The coordinator binary (default: next to this one).
    #[arg(long)]
    coordinator: Option<PathBuf>,
    /// Extra arguments for `segwire-coordinator serve` (e.g. `--db=postgres://…`).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// Enrolments in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Rounds of the three changes.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Longest wait for one change to reach everyone, in seconds.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// After the changes, kill the coordinator with SIGKILL, keep it down this many
    /// seconds, start it again and time a policy change made the moment it answers: the
    /// reconnect storm of every agent included (0: skip).
    #[arg(long, default_value_t = 0)]
    storm_outage: u64,
    /// Agents that start polling at once (the next wave waits for their first maps).
    #[arg(long, default_value_t = 1000)]
    start_wave: usize,
    /// Agents ask for full maps only (as agents before deltas did).
    #[arg(long)]
    full_maps: bool,
    /// Run the coordinators on a throwaway PostgreSQL cluster (testkit::postgres).
    #[arg(long)]
    postgres: bool,
    /// Coordinators on the one database (more than one needs --postgres or a
    /// `--serve-arg=--db=postgres://…`).
    #[arg(long, default_value_t = 1)]
    coordinators: usize,
}

/// A coordinator process this benchmark started; killed on drop.
struct Coordinator {
    child: Child,
    dir: tempfile::TempDir,
    conf: AdminConf,
    /// `serve` arguments beyond `--serve-arg` (`--db` of `--postgres`).
    extra: Vec<String>,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_coordinator(
    args: &Args,
    extra: &[String],
    dir: &std::path::Path,
    listen: &str,
) -> Result<Child> {
    let bin = match &args.coordinator {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of the benchmark binary")?
            .join("segwire-coordinator"),
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("coordinator.log"))?;
    Command::new(&bin)
        .arg("serve")
        .args(["--listen", listen, "--data-dir"])
        .arg(dir.join("data"))
        .args(&args.serve_args)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Starts a coordinator with `extra` arguments; a later one on a shared database (`first`
/// given) gets a copy of the first one's admin.conf, which it rewrites with its own URL.
fn start_coordinator(
    args: &Args,
    extra: Vec<String>,
    first: Option<&Coordinator>,
) -> Result<Coordinator> {
    let dir = tempfile::tempdir()?;
    let conf_path = dir.path().join("data/admin.conf");
    if let Some(first) = first {
        std::fs::create_dir(dir.path().join("data"))?;
        std::fs::copy(first.dir.path().join("data/admin.conf"), &conf_path)?;
    }
    let child = spawn_coordinator(args, &extra, dir.path(), "127.0.0.1:0")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ours = |c: &AdminConf| first.is_none_or(|f| c.url != f.conf.url);
        if let Some(conf) = AdminConf::load(&conf_path).ok().filter(ours) {
            return Ok(Coordinator {
                child,
                dir,
                conf,
                extra,
            });
        }
        if Instant::now() > deadline {
            bail!("the coordinator wrote no admin.conf in 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Coordinator {
    /// Kills it with SIGKILL, waits `outage`, starts it again on the same port and data,
    /// and returns once it accepts connections.
    fn crash_and_restart(&mut self, args: &Args, outage: Duration) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        std::thread::sleep(outage);
        let hostport = self.conf.url.trim_start_matches("https://").to_string();
        self.child = spawn_coordinator(args, &self.extra, self.dir.path(), &hostport)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&hostport).is_err() {
            if Instant::now() > deadline {
                bail!("the restarted coordinator did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

fn cidr(k: usize, segments: usize) -> String {
    if segments == 1 {
        "100.64.0.0/16".into()
    } else {
        format!("100.{}.{}.0/24", 65 + k / 256, k % 256)
    }
}

async fn token(admin: &Client, segment: &str, uses: usize) -> Result<JoinToken> {
    let t = admin
        .create_token(&CreateToken {
            segments: vec![segment.to_string()],
            labels: Default::default(),
            ttl_seconds: Some(6 * 3600),
            uses: Some(u32::try_from(uses)?),
        })
        .await?;
    Ok(t.token.parse()?)
}

/// One measured change.
struct Measured {
    name: &'static str,
    latencies: Vec<Duration>,
    missing: usize,
    bytes: usize,
    cpu: f64,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    raise_fd_limit();
    if args.start_wave == 0 {
        bail!("--start-wave must be at least 1");
    }
    if args.segments == 0 || (args.segments > 1 && args.agents / args.segments > 250) {
        bail!("use --segments 1, or at most 250 agents per segment");
    }
    if args.coordinators == 0 {
        bail!("--coordinators must be at least 1");
    }
    let shared_db = args.postgres || args.serve_args.iter().any(|a| a.starts_with("--db"));
    if args.coordinators > 1 && !shared_db {
        bail!("--coordinators above 1 needs --postgres (or --serve-arg=--db=postgres://…)");
    }
    let pg = match args.postgres {
        true => Some(segwire_testkit::postgres::Cluster::start("fanout").context(
            "--postgres needs PostgreSQL's server binaries (apt-get install postgresql)",
        )?),
        false => None,
    };
    let extra: Vec<String> = pg
        .iter()
        .map(|c| format!("--db={}", c.create_database()))
        .collect();
    let mut coord = start_coordinator(&args, extra.clone(), None)?;
    let mut others = Vec::new();
    for _ in 1..args.coordinators {
        others.push(start_coordinator(&args, extra.clone(), Some(&coord))?);
    }
    let pid = coord.child.id();
    let pids: Vec<u32> = std::iter::once(pid)
        .chain(others.iter().map(|c| c.child.id()))
        .collect();
    let urls: Vec<String> = std::iter::once(coord.conf.url.clone())
        .chain(others.iter().map(|c| c.conf.url.clone()))
        .collect();
    let (url, pin) = (coord.conf.url.clone(), coord.conf.ca_pin);
    let admin = Client::new(&url, pin, Some(coord.conf.api_key.clone()))?;
    let per_seg = args.agents.div_ceil(args.segments);
    let mut tokens = Vec::new();
    for k in 0..args.segments {
        let name = format!("bench-{k}");
        let create = CreateSegment {
            name: name.clone(),
            cidr: cidr(k, args.segments),
            default: None,
        };
        admin.create_segment(&create).await?;
        tokens.push(Arc::new(token(&admin, &name, per_seg + args.rounds).await?));
    }
    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = Vec::new();
    for i in 0..args.agents {
        let seg = i % args.segments;
        let mut tok = (*tokens[seg]).clone();
        tok.url = urls[i % urls.len()].clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            agent::enrol(&tok, &format!("bench-{i}"), &format!("bench-{seg}")).await
        }));
    }
    let mut agents: Vec<Agent> = Vec::new();
    for t in tasks {
        agents.push(t.await??);
    }
    eprintln!(
        "enrolled {} agents in {} segment(s) in {:.1} s",
        args.agents,
        args.segments,
        started.elapsed().as_secs_f64()
    );
    let logs: Vec<Arc<AgentLog>> = (0..args.agents).map(|_| Arc::default()).collect();
    // Agents start polling in waves, each after the previous one has its first map: in
    // one segment of 10,000 every first map is a full one of ~2.5 MB, and all at once
    // they would sit in memory together.
    let mut started_polls = 0;
    for (a, log) in agents.into_iter().zip(&logs) {
        tokio::spawn(a.poll(log.clone(), !args.full_maps));
        started_polls += 1;
        if started_polls % args.start_wave == 0 {
            wait_all(&logs[..started_polls], |l| l.version() > 0, args.timeout).await?;
        }
    }
    wait_all(&logs, |l| l.version() > 0, args.timeout).await?;
    eprintln!(
        "first maps delivered {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    settle(args.agents).await;
    let idle_rss = procstat::rss_mib_all(&pids)?;
    eprintln!("all agents have their first map; coordinator RSS {idle_rss:.0} MiB");
    let affected: Vec<Arc<AgentLog>> = logs.iter().step_by(args.segments).cloned().collect();
    let mut results = Vec::new();
    for round in 0..args.rounds {
        for name in ["member join", "policy change", "key rotation"] {
            let m = measure(name, &affected, &pids, args.timeout, async {
                change(name, &admin, &tokens[0], round).await
            })
            .await?;
            results.push(m);
            settle(args.agents).await;
        }
    }
    let final_rss = procstat::rss_mib_all(&pids)?;
    if args.storm_outage > 0 {
        let outage = Duration::from_secs(args.storm_outage);
        coord.crash_and_restart(&args, outage)?;
        let mut pids = pids.clone();
        pids[0] = coord.child.id();
        let round = args.rounds;
        let m = measure(
            "policy change at a restart after kill -9",
            &affected,
            &pids,
            args.timeout,
            async { change("policy change", &admin, &tokens[0], round).await },
        )
        .await?;
        results.push(m);
    }
    println!(
        "agents={} segments={} coordinators={} postgres={} affected={} deltas={} idle_rss_mib={idle_rss:.0} final_rss_mib={final_rss:.0}",
        args.agents,
        args.segments,
        args.coordinators,
        shared_db,
        affected.len(),
        !args.full_maps,
    );
    println!("| change | p50 s | p99 s | max s | missing | body MB | body bytes per agent | coordinator CPU s |");
    println!("|---|---|---|---|---|---|---|---|");
    for m in &results {
        let mut l = m.latencies.clone();
        l.sort();
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {} | {:.1} | {} | {:.2} |",
            m.name,
            pct(&l, 0.5),
            pct(&l, 0.99),
            pct(&l, 1.0),
            m.missing,
            m.bytes as f64 / 1e6,
            m.bytes / affected.len().max(1),
            m.cpu
        );
    }
    let errors: u64 = logs
        .iter()
        .map(|l| l.errors.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    println!("failed polls: {errors}");
    Ok(())
}

/// Raises this process's open-file limit to its hard limit (one connection per agent,
/// and the coordinator, which inherits it, holds as many).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok && lim.rlim_cur < lim.rlim_max {
        let before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            eprintln!("open-file limit raised from {before} to {}", lim.rlim_max);
        }
    }
}

/// Lets every agent send its next long-poll before the next change.
async fn settle(agents: usize) {
    tokio::time::sleep(Duration::from_millis(1000 + agents as u64 / 5)).await;
}

async fn wait_all(
    logs: &[Arc<AgentLog>],
    done: impl Fn(&AgentLog) -> bool,
    secs: u64,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !logs.iter().all(|l| done(l)) {
        if Instant::now() > deadline {
            bail!("agents did not get their netmap within {secs} s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Makes one change in segment `bench-0`.
async fn change(name: &str, admin: &Client, tok: &JoinToken, round: usize) -> Result<()> {
    match name {
        "member join" => {
            // Not polling: only the existing agents' delivery is measured.
            agent::enrol(tok, &format!("joiner-{round}"), "bench-0").await?;
        }
        "policy change" => {
            let policy = serde_json::json!({"default": "allow", "rules": [
                {"name": format!("bench-{round}"), "from": "*", "to": "*", "ports": ["tcp/1-65535"]}
            ]});
            admin.set_policy("bench-0", &policy).await?;
        }
        _ => {
            admin.rotate_key("bench-0").await?;
        }
    }
    Ok(())
}

async fn measure(
    name: &'static str,
    affected: &[Arc<AgentLog>],
    pids: &[u32],
    timeout: u64,
    make: impl std::future::Future<Output = Result<()>>,
) -> Result<Measured> {
    let before: Vec<(u64, usize)> = affected
        .iter()
        .map(|l| {
            let d = l.lock();
            (d.last().map_or(0, |d| d.version), d.len())
        })
        .collect();
    let cpu0 = procstat::cpu_secs_all(pids)?;
    make.await?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(timeout);
    loop {
        let pending = affected
            .iter()
            .zip(&before)
            .filter(|(l, (v, _))| l.version() == *v)
            .count();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu = procstat::cpu_secs_all(pids)? - cpu0;
    let mut latencies = Vec::new();
    let mut bytes = 0;
    let mut missing = 0;
    for (l, (v, n)) in affected.iter().zip(&before) {
        let d = l.lock();
        bytes += d[*n..].iter().map(|d| d.bytes).sum::<usize>();
        match d[*n..].iter().find(|d| d.version != *v) {
            Some(first) => latencies.push(first.at.saturating_duration_since(t0)),
            None => missing += 1,
        }
    }
    Ok(Measured {
        name,
        latencies,
        missing,
        bytes,
        cpu,
    })
}
