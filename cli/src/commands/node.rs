//! `segwire node ...`.

use anyhow::Result;
use clap::Subcommand;
use segwire_proto::api::Node;

use super::{labels_text, Ctx};
use crate::table;

/// Node commands.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List enrolled nodes.
    List,
    /// Show one node (by name or id).
    Show {
        /// Node name or id.
        node: String,
    },
    /// Revoke a node: its credential stops working and peers drop its members.
    Revoke {
        /// Node name or id.
        node: String,
    },
}

fn rows(nodes: &[Node]) -> String {
    table::render(
        &[
            "NAME",
            "ID",
            "MEMBERS",
            "SEGMENTS",
            "LABELS",
            "ENDPOINTS",
            "LAST-SEEN",
        ],
        &nodes
            .iter()
            .map(|n| {
                let mut eps = n.endpoints.clone();
                if let Some(o) = &n.observed_address {
                    if !eps.contains(o) {
                        eps.push(format!("{o} (observed)"));
                    }
                }
                vec![
                    n.name.clone(),
                    n.id.clone(),
                    n.members.to_string(),
                    n.segments.join(","),
                    labels_text(&n.labels),
                    if eps.is_empty() {
                        "-".into()
                    } else {
                        eps.join(",")
                    },
                    n.last_seen.clone().unwrap_or_else(|| "never".into()),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs a node command.
pub async fn run(ctx: &Ctx, cmd: NodeCmd) -> Result<()> {
    match cmd {
        NodeCmd::List => {
            let n = ctx.client.list_nodes().await?;
            ctx.print(&n, |n| rows(n))
        }
        NodeCmd::Show { node } => {
            let n = ctx.client.get_node(&node).await?;
            ctx.print(&n, |n| rows(std::slice::from_ref(n)))
        }
        NodeCmd::Revoke { node } => {
            ctx.client.revoke_node(&node).await?;
            ctx.done(
                &format!("node {node} revoked; its members leave every peer's netmap"),
                serde_json::json!({"ok": true, "revoked": node}),
            )
        }
    }
}
