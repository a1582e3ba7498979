//! `segwire member ...`.

use anyhow::Result;
use clap::Subcommand;
use segwire_proto::api::Member;

use super::{labels_text, Ctx};
use crate::table;

/// Member commands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// List members, optionally of one segment.
    List {
        /// Only this segment.
        #[arg(long)]
        segment: Option<String>,
    },
}

fn rows(members: &[Member]) -> String {
    table::render(
        &[
            "SEGMENT",
            "NAME",
            "ADDRESS",
            "NODE",
            "WORKLOAD",
            "LABELS",
            "ENDPOINTS",
        ],
        &members
            .iter()
            .map(|m| {
                vec![
                    m.segment.clone(),
                    m.name.clone(),
                    m.address.clone(),
                    m.node.clone(),
                    m.workload.clone(),
                    labels_text(&m.labels),
                    if m.endpoints.is_empty() {
                        "-".into()
                    } else {
                        m.endpoints.join(",")
                    },
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs a member command.
pub async fn run(ctx: &Ctx, cmd: MemberCmd) -> Result<()> {
    match cmd {
        MemberCmd::List { segment } => {
            let m = ctx.client.list_members(segment.as_deref()).await?;
            ctx.print(&m, |m| rows(m))
        }
    }
}
