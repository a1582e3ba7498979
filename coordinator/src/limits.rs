//! Resource limits of `serve`: connection timeouts and caps (enforced by
//! [`crate::listener`] and hyper), and caps on what one node may hold open or store.
//! Every limit is a flag with a default that a normal deployment never reaches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;

use crate::ratelimit::{Buckets, Throttled};

/// Connection and per-node limits of `segwire-coordinator serve`.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// A client has this long to finish the TLS handshake, and then each request's
    /// headers; slower connections are closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed (at least
    /// 10s; netmap long-polls are cut to 5s less, so they never trip it).
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Most TLS connections open at once; more are closed on accept (each node agent
    /// keeps one; keep it under the process's open-file limit).
    #[arg(long, default_value_t = 16384)]
    pub max_connections: usize,
    /// Most netmap long-polls one node may have open at once (an agent uses one);
    /// more are answered 429.
    #[arg(long, default_value_t = 4)]
    pub max_polls_per_node: u32,
    /// Most flow-log records kept per node (its oldest go first; 200,000 in all).
    #[arg(long, default_value_t = 20_000)]
    pub max_flow_rows_per_node: i64,
    /// Most members (attached workloads) one node may have in all segments.
    #[arg(long, default_value_t = 2048)]
    pub max_members_per_node: i64,
}

/// Limits in force, shared by the handlers.
#[derive(Debug)]
pub struct Limits {
    /// Longest a netmap long-poll waits.
    pub max_wait: Duration,
    /// Most open long-polls per node.
    pub max_polls_per_node: u32,
    /// Most flow records kept per node.
    pub max_flow_rows_per_node: i64,
    /// Most members per node.
    pub max_members_per_node: i64,
    polls: Arc<Mutex<HashMap<String, u32>>>,
    flow_reports: Mutex<Buckets<String>>,
}

impl Limits {
    /// Checks the flags and derives the limits; `long_poll_max` is the API's own bound.
    pub fn new(args: &LimitArgs, long_poll_max: Duration) -> Result<Limits> {
        if args.idle_timeout < Duration::from_secs(10) {
            bail!("--idle-timeout must be at least 10s (netmap long-polls need it)");
        }
        if args.header_read_timeout.is_zero() || args.max_connections == 0 {
            bail!("--header-read-timeout and --max-connections must be above zero");
        }
        if args.max_polls_per_node == 0 {
            bail!("--max-polls-per-node must be at least 1");
        }
        Ok(Limits {
            max_wait: long_poll_max.min(args.idle_timeout - Duration::from_secs(5)),
            max_polls_per_node: args.max_polls_per_node,
            max_flow_rows_per_node: args.max_flow_rows_per_node.max(1),
            max_members_per_node: args.max_members_per_node.max(1),
            polls: Arc::default(),
            flow_reports: Mutex::new(Buckets::new(
                crate::api::flows::REPORT_BURST,
                crate::api::flows::REPORT_INTERVAL,
                crate::ratelimit::MAX_TRACKED,
            )),
        })
    }

    /// Takes one flow report of `node_id` from its budget; `Err` when it reports too often.
    pub fn flow_report(&self, node_id: &str, now: Instant) -> Result<(), Throttled> {
        self.flow_reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(node_id.to_string(), now)
    }

    /// Opens a long-poll slot for `node_id`; `None` when it already holds the maximum.
    pub fn poll_slot(&self, node_id: &str) -> Option<PollSlot> {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        let open = polls.entry(node_id.to_string()).or_insert(0);
        if *open >= self.max_polls_per_node {
            return None;
        }
        *open += 1;
        Some(PollSlot {
            polls: self.polls.clone(),
            node_id: node_id.to_string(),
        })
    }
}

/// One open long-poll of a node; frees its slot when dropped.
#[derive(Debug)]
pub struct PollSlot {
    polls: Arc<Mutex<HashMap<String, u32>>>,
    node_id: String,
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = polls.get_mut(&self.node_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                polls.remove(&self.node_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> LimitArgs {
        LimitArgs {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 10,
            max_polls_per_node: 2,
            max_flow_rows_per_node: 100,
            max_members_per_node: 10,
        }
    }

    #[test]
    fn poll_slots_are_capped_per_node_and_freed() {
        let l = Limits::new(&args(), Duration::from_secs(60)).expect("limits");
        let a = l.poll_slot("n1").expect("first");
        let _b = l.poll_slot("n1").expect("second");
        assert!(l.poll_slot("n1").is_none());
        assert!(l.poll_slot("n2").is_some(), "another node is not affected");
        drop(a);
        assert!(l.poll_slot("n1").is_some());
    }

    #[test]
    fn long_polls_stay_under_the_idle_timeout() {
        let mut a = args();
        a.idle_timeout = Duration::from_secs(12);
        let l = Limits::new(&a, Duration::from_secs(60)).expect("limits");
        assert_eq!(l.max_wait, Duration::from_secs(7));
        a.idle_timeout = Duration::from_secs(5);
        assert!(Limits::new(&a, Duration::from_secs(60)).is_err());
    }
}
