//! `segwire audit`: read the audit log.

use anyhow::Result;
use clap::Args;
use segwire_client::access::AuditFilter;
use segwire_proto::access::AuditRecord;

use super::Ctx;
use crate::table;

/// Filters of `segwire audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records newer than this: a duration back from now (1h, 7d) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only this actor, e.g. key:<id> or node:<id>.
    #[arg(long)]
    actor: Option<String>,
    /// Only targets starting with this, e.g. segment:web.
    #[arg(long)]
    target: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

/// `--since` as the API takes it: unix seconds for a duration, else the time as given.
fn since_param(s: &str) -> String {
    match humantime::parse_duration(s) {
        Ok(d) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|n| n.as_secs())
                .unwrap_or(0);
            now.saturating_sub(d.as_secs()).to_string()
        }
        Err(_) => s.to_string(),
    }
}

fn short(v: &Option<serde_json::Value>) -> String {
    let s = v
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into());
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

fn rows(recs: &[AuditRecord]) -> String {
    table::render(
        &["ID", "TIME", "ACTOR", "SOURCE", "ACTION", "TARGET", "AFTER"],
        &recs
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.at.clone(),
                    r.actor.clone(),
                    r.source.clone().unwrap_or_else(|| "-".into()),
                    r.action.clone(),
                    r.target.clone(),
                    short(&r.after),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs `segwire audit`.
pub async fn run(ctx: &Ctx, a: AuditArgs) -> Result<()> {
    let recs = ctx
        .client
        .audit(&AuditFilter {
            since: a.since.as_deref().map(since_param),
            actor: a.actor,
            target: a.target,
            limit: Some(a.limit),
        })
        .await?;
    ctx.print(&recs, |r| rows(r))
}
