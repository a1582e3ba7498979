//! `segwire member ...`.

use anyhow::Result;
use clap::Subcommand;
use segwire_proto::api::Member;

use super::{families_text, labels_text, Ctx};
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
    /// Lift a member's quarantine before it expires (its peers get it back at once).
    Release {
        /// The member's segment.
        segment: String,
        /// The member's name.
        member: String,
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
            "STATE",
        ],
        &members
            .iter()
            .map(|m| {
                vec![
                    m.segment.clone(),
                    m.name.clone(),
                    families_text(m.address.as_deref(), m.address6.as_deref()),
                    m.node.clone(),
                    m.workload.clone(),
                    labels_text(&m.labels),
                    if m.endpoints.is_empty() {
                        "-".into()
                    } else {
                        m.endpoints.join(",")
                    },
                    state(m),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// `active`, or `quarantined until TIME`.
fn state(m: &Member) -> String {
    match &m.quarantined_until {
        Some(t) => format!("quarantined until {t}"),
        None => "active".into(),
    }
}

/// Runs a member command.
pub async fn run(ctx: &Ctx, cmd: MemberCmd) -> Result<()> {
    match cmd {
        MemberCmd::List { segment } => {
            let m = ctx.client.list_members(segment.as_deref()).await?;
            ctx.print(&m, |m| rows(m))
        }
        MemberCmd::Release { segment, member } => {
            let m = ctx.client.release_member(&segment, &member).await?;
            ctx.print(&m, |m| {
                format!(
                    "released {} of segment {}: its peers have it back\n",
                    m.name, m.segment
                )
            })
        }
    }
}
