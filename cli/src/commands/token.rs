//! `segwire token ...`.

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use segwire_proto::api::{CreateToken, TokenInfo};

use super::{labels_text, parse_label, Ctx};
use crate::{table, Output};

/// Join token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a join token; prints the token alone on stdout.
    Create {
        /// Segment the node may attach to (repeatable).
        #[arg(long = "segment", required = true)]
        segments: Vec<String>,
        /// Label stamped on the node's members, key=value (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many nodes may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    /// List join tokens (never their secrets).
    List,
    /// Revoke a join token so it can no longer enrol nodes.
    Revoke {
        /// Token id.
        id: String,
    },
}

fn rows(tokens: &[TokenInfo]) -> String {
    table::render(
        &["ID", "STATE", "SEGMENTS", "LABELS", "USES-LEFT", "EXPIRES"],
        &tokens
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.state.clone(),
                    t.segments.join(","),
                    labels_text(&t.labels),
                    format!("{}/{}", t.uses_left, t.uses),
                    t.expires_at.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs a token command.
pub async fn run(ctx: &Ctx, cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create {
            segments,
            labels,
            ttl,
            uses,
        } => {
            let created = ctx
                .client
                .create_token(&CreateToken {
                    segments,
                    labels: labels.into_iter().collect(),
                    ttl_seconds: Some(ttl.as_secs().max(1)),
                    uses: Some(uses),
                })
                .await?;
            match ctx.output {
                Output::Json => ctx.print(&created, |_| String::new()),
                Output::Table => {
                    println!("{}", created.token);
                    Ok(())
                }
            }
        }
        TokenCmd::List => {
            let t = ctx.client.list_tokens().await?;
            ctx.print(&t, |t| rows(t))
        }
        TokenCmd::Revoke { id } => {
            ctx.client.revoke_token(&id).await?;
            ctx.done(
                &format!("token {id} revoked"),
                serde_json::json!({"ok": true, "revoked": id}),
            )
        }
    }
}
