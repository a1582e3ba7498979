//! `segwire flows`: what the agents' firewalls allowed and denied.

use anyhow::{bail, Result};
use clap::Args;
use segwire_proto::api::FlowRecord;

use super::Ctx;
use crate::table;

/// Filters of `segwire flows`.
#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Only this segment.
    #[arg(long)]
    segment: Option<String>,
    /// Only denied packets.
    #[arg(long)]
    denied: bool,
    /// Only records seen within this long (e.g. 10m, 1h, 7d).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<std::time::Duration>,
    /// At most this many records (newest first).
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn ago(t: i64, now: i64) -> String {
    let s = (now - t).max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

fn rows(flows: &[FlowRecord]) -> String {
    let now = unix_now();
    table::render(
        &[
            "LAST-SEEN",
            "SEGMENT",
            "MEMBER",
            "DIR",
            "VERDICT",
            "FLOW",
            "PEER",
            "RULE",
            "COUNT",
        ],
        &flows
            .iter()
            .map(|f| {
                let port = if f.protocol == "tcp" || f.protocol == "udp" {
                    format!(":{}", f.dst_port)
                } else {
                    String::new()
                };
                vec![
                    ago(f.last_seen, now),
                    f.segment.clone(),
                    format!("{}@{}", f.member, f.node),
                    f.direction.clone(),
                    f.verdict.clone(),
                    format!("{} {} -> {}{port}", f.protocol, f.src, f.dst),
                    f.peer.clone().unwrap_or_else(|| "-".into()),
                    f.rule.clone().unwrap_or_else(|| "(default)".into()),
                    f.count.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs `segwire flows`.
pub async fn run(ctx: &Ctx, a: FlowsArgs) -> Result<()> {
    if a.limit == 0 || a.limit > 10_000 {
        bail!("--limit must be between 1 and 10000");
    }
    let since = a.since.map(|d| unix_now() - d.as_secs() as i64);
    let flows = ctx
        .client
        .list_flows(a.segment.as_deref(), a.denied, since, a.limit)
        .await?;
    ctx.print(&flows, |f| rows(f))
}
