//! `segwire segment ...`.

use anyhow::Result;
use clap::Subcommand;
use segwire_proto::api::{CreateSegment, DefaultAction, Segment, UpdateSegment};

use super::{families_text, Ctx};
use crate::table;

/// Segment commands.
#[derive(Debug, Subcommand)]
pub enum SegmentCmd {
    /// Create a segment with its own overlay network.
    Create {
        /// Segment name (lowercase letters, digits, '-'; at most 32).
        name: String,
        /// Overlay IPv4 network, /8 to /30, e.g. 100.64.1.0/24, or IPv6 prefix, /48 to
        /// /124, e.g. fd00:1::/64 (an IPv6-only segment); give --cidr again (or after a
        /// comma) with the other family for a dual-stack segment.
        #[arg(long, required = true)]
        cidr: Vec<String>,
        /// What happens to traffic no policy rule matches.
        #[arg(long, value_parser = parse_default)]
        default: Option<DefaultAction>,
    },
    /// List segments.
    List,
    /// Show one segment.
    Show {
        /// Segment name.
        name: String,
    },
    /// Delete a segment (refused while it has members unless --force).
    Delete {
        /// Segment name.
        name: String,
        /// Delete even if members are attached (they are detached).
        #[arg(long)]
        force: bool,
    },
    /// Add the prefix of the family a segment lacks (IPv6 to an IPv4 segment, IPv4 to an
    /// IPv6-only one): every member gets an address from it; existing traffic is
    /// untouched.
    Update {
        /// Segment name.
        name: String,
        /// The prefix to add: an IPv6 prefix, /48 to /124, or an IPv4 network, /8 to /30
        /// (the segment's existing prefix may be given too).
        #[arg(long, required = true)]
        cidr: Vec<String>,
    },
    /// Give the segment a new preshared key; members move over without losing traffic.
    RotateKey {
        /// Segment name.
        name: String,
    },
}

fn parse_default(s: &str) -> Result<DefaultAction, String> {
    match s {
        "allow" => Ok(DefaultAction::Allow),
        "deny" => Ok(DefaultAction::Deny),
        _ => Err("use allow or deny".into()),
    }
}

fn default_text(d: DefaultAction) -> &'static str {
    match d {
        DefaultAction::Allow => "allow",
        DefaultAction::Deny => "deny",
    }
}

fn rows(segs: &[Segment]) -> String {
    table::render(
        &[
            "NAME",
            "CIDR",
            "DEFAULT",
            "MEMBERS",
            "KEY-VERSION",
            "CREATED",
        ],
        &segs
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    families_text(s.cidr.as_deref(), s.cidr6.as_deref()),
                    default_text(s.default).into(),
                    s.members.to_string(),
                    match s.rotation {
                        Some(phase) => format!("{} ({})", s.psk_version, phase.as_str()),
                        None => s.psk_version.to_string(),
                    },
                    s.created_at.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs a segment command.
pub async fn run(ctx: &Ctx, cmd: SegmentCmd) -> Result<()> {
    match cmd {
        SegmentCmd::Create {
            name,
            cidr,
            default,
        } => {
            let s = ctx
                .client
                .create_segment(&CreateSegment {
                    name,
                    cidr: cidr.join(","),
                    default,
                })
                .await?;
            ctx.print(&s, |s| rows(std::slice::from_ref(s)))
        }
        SegmentCmd::Update { name, cidr } => {
            let s = ctx
                .client
                .update_segment(
                    &name,
                    &UpdateSegment {
                        cidr: cidr.join(","),
                    },
                )
                .await?;
            ctx.print(&s, |s| rows(std::slice::from_ref(s)))
        }
        SegmentCmd::List => {
            let segs = ctx.client.list_segments().await?;
            ctx.print(&segs, |s| rows(s))
        }
        SegmentCmd::Show { name } => {
            let s = ctx.client.get_segment(&name).await?;
            ctx.print(&s, |s| rows(std::slice::from_ref(s)))
        }
        SegmentCmd::Delete { name, force } => {
            ctx.client.delete_segment(&name, force).await?;
            ctx.done(
                &format!("segment {name} deleted"),
                serde_json::json!({"ok": true, "deleted": name}),
            )
        }
        SegmentCmd::RotateKey { name } => {
            let s = ctx.client.rotate_key(&name).await?;
            let sentence = format!(
                "segment {} is rotating to key version {}: members accept the new key now, \
                 start using it once every live node has it, and drop the old one after that \
                 (`segwire segment list` shows the phase)",
                s.name, s.psk_version
            );
            match ctx.output {
                crate::Output::Json => ctx.print(&s, |_| String::new()),
                crate::Output::Table => ctx.done(&sentence, serde_json::Value::Null),
            }
        }
    }
}
