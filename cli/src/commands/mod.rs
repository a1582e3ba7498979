//! Subcommands, one module per noun.

mod apikey;
mod audit;
mod events;
mod flows;
mod member;
mod node;
mod peer;
mod policy;
mod segment;
mod token;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use segwire_client::config::AdminConf;
use segwire_client::Client;
use serde::Serialize;

use crate::{Cli, Output};

/// Where admin.conf is looked for when neither --config nor SEGWIRE_CONFIG is given.
const DEFAULT_CONFIGS: &[&str] = &[
    "/var/lib/segwire-coordinator/admin.conf",
    "/etc/segwire/admin.conf",
];

/// Top-level nouns.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Segments: create, list, show, delete, rotate-key.
    #[command(subcommand)]
    Segment(segment::SegmentCmd),
    /// Join tokens: create, list, revoke.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Enrolled nodes: list, show, revoke.
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Members (workloads attached to segments): list.
    #[command(subcommand)]
    Member(member::MemberCmd),
    /// Stock WireGuard devices as members: add, config, list, remove.
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// Segment policies: set, show, validate, check.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// API keys with roles: create, list, revoke, rotate.
    #[command(subcommand)]
    Apikey(apikey::ApikeyCmd),
    /// The audit log: who changed what, when, from where.
    Audit(audit::AuditArgs),
    /// Events: nodes going offline and back, token use, revocations.
    Events(events::EventsArgs),
    /// Flow logs: connections the policies allowed and packets they denied.
    Flows(flows::FlowsArgs),
}

/// What a command needs: a client and the output format.
pub struct Ctx {
    /// Client with the admin key.
    pub client: Client,
    /// Output format.
    pub output: Output,
    /// The admin config file in use.
    pub config: PathBuf,
}

impl Ctx {
    /// Prints `value` as JSON, or the table `people` renders.
    pub fn print<T: Serialize>(&self, value: &T, people: impl FnOnce(&T) -> String) -> Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
            Output::Table => print!("{}", people(value)),
        }
        Ok(())
    }

    /// Prints a confirmation: a sentence for people, `{"ok": true, ...}` for scripts.
    pub fn done(&self, sentence: &str, json: serde_json::Value) -> Result<()> {
        match self.output {
            Output::Json => println!("{json}"),
            Output::Table => println!("{sentence}"),
        }
        Ok(())
    }
}

fn config_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.config {
        return Ok(p.clone());
    }
    DEFAULT_CONFIGS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("no admin config: pass --config FILE or set SEGWIRE_CONFIG to the admin.conf the coordinator wrote in its data directory")
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    if let Command::Policy(policy::PolicyCmd::Validate { file }) = &cli.command {
        return policy::validate(cli.output, file);
    }
    let config = config_path(&cli)?;
    let conf = AdminConf::load(&config)?;
    let client = Client::new(&conf.url, conf.ca_pin, Some(conf.api_key))?;
    let ctx = Ctx {
        client,
        output: cli.output,
        config,
    };
    match cli.command {
        Command::Segment(c) => segment::run(&ctx, c).await,
        Command::Token(c) => token::run(&ctx, c).await,
        Command::Node(c) => node::run(&ctx, c).await,
        Command::Member(c) => member::run(&ctx, c).await,
        Command::Peer(c) => peer::run(&ctx, c).await,
        Command::Policy(c) => policy::run(&ctx, c).await,
        Command::Apikey(c) => apikey::run(&ctx, c).await,
        Command::Audit(a) => audit::run(&ctx, a).await,
        Command::Events(a) => events::run(&ctx, a).await,
        Command::Flows(a) => flows::run(&ctx, a).await,
    }
}

/// Parses `k=v` for `--label`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: a label is written key=value"))?;
    segwire_proto::names::validate_label(k).map_err(|e| e.to_string())?;
    segwire_proto::names::validate_label(v).map_err(|e| e.to_string())?;
    Ok((k.to_string(), v.to_string()))
}

/// The IPv4 and IPv6 values there are (addresses or prefixes), comma-separated: an
/// IPv4-only, dual-stack or IPv6-only segment prints what it has.
pub fn families_text(v4: Option<&str>, v6: Option<&str>) -> String {
    v4.into_iter().chain(v6).collect::<Vec<_>>().join(",")
}

/// Labels as `k=v,k2=v2` for tables.
pub fn labels_text(l: &segwire_proto::api::Labels) -> String {
    if l.is_empty() {
        return "-".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
