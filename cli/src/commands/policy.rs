//! `segwire policy ...`: set, show, validate (offline), check.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use segwire_policy::Policy;
use segwire_proto::api::PolicyCheck;

use super::Ctx;
use crate::Output;

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Replace a segment's policy with the file's (validated first; a bad file changes nothing).
    Set {
        /// Segment name.
        segment: String,
        /// Policy file (JSON).
        #[arg(long)]
        file: PathBuf,
    },
    /// Show the policy in force for a segment.
    Show {
        /// Segment name.
        segment: String,
    },
    /// Check a policy file without contacting the coordinator.
    Validate {
        /// Policy file (JSON).
        #[arg(long)]
        file: PathBuf,
    },
    /// Would a connection between two members be allowed, and by which rule?
    Check {
        /// Segment name.
        segment: String,
        /// Member opening the connection: its name or an overlay address (IPv6 asks
        /// about IPv6).
        #[arg(long)]
        from: String,
        /// Member receiving it (name or address), or any address.
        #[arg(long)]
        to: String,
        /// tcp/PORT, udp/PORT or icmp.
        #[arg(long)]
        port: String,
    },
}

/// Reads and validates a policy file; the error names the rule and field at fault.
pub fn load(path: &Path) -> Result<Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Policy::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Runs `policy validate` (no coordinator needed).
pub fn validate(output: Output, file: &Path) -> Result<()> {
    let p = load(file)?;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"ok": true, "rules": p.rules.len()})
        ),
        Output::Table => println!(
            "{}: valid ({} rule{})",
            file.display(),
            p.rules.len(),
            if p.rules.len() == 1 { "" } else { "s" }
        ),
    }
    Ok(())
}

/// Runs a policy command.
pub async fn run(ctx: &Ctx, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Set { segment, file } => {
            let p = load(&file)?;
            let doc = ctx
                .client
                .set_policy(&segment, &serde_json::to_value(&p)?)
                .await?;
            ctx.print(&doc, |d| {
                format!(
                    "segment {} now enforces policy version {} ({} rule{})\n",
                    d.segment,
                    d.version,
                    p.rules.len(),
                    if p.rules.len() == 1 { "" } else { "s" }
                )
            })
        }
        PolicyCmd::Show { segment } => {
            let doc = ctx.client.get_policy(&segment).await?;
            match ctx.output {
                Output::Json => ctx.print(&doc, |_| String::new()),
                Output::Table => {
                    println!("# segment {} policy version {}", doc.segment, doc.version);
                    println!("{}", serde_json::to_string_pretty(&doc.policy)?);
                    Ok(())
                }
            }
        }
        PolicyCmd::Validate { file } => validate(ctx.output, &file),
        PolicyCmd::Check {
            segment,
            from,
            to,
            port,
        } => {
            let r = ctx
                .client
                .check_policy(&segment, &PolicyCheck { from, to, port })
                .await?;
            ctx.print(&r, |r| format!("{}\n", r.reason))
        }
    }
}
