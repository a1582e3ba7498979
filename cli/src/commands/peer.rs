//! `segwire peer ...`: stock WireGuard devices as segment members.
//!
//! `peer add` prints the device's wg-quick configuration on stdout. With `--generate` the
//! key pair is made here (X25519 from the OS's CSPRNG) and only the public key is sent;
//! the private key appears once, in that output, and nowhere else.

use anyhow::{Context, Result};
use clap::{ArgGroup, Subcommand};
use segwire_proto::api::Labels;
use segwire_proto::keys::encode_key;
use segwire_proto::peer::{AddPeer, ExternalPeer, PeerConfig, PRIVATE_KEY_PLACEHOLDER};
use serde_json::json;
use x25519_dalek::{PublicKey, StaticSecret};

use super::{families_text, labels_text, parse_label, Ctx};
use crate::{table, Output};

/// Peer commands.
#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Add a stock WireGuard device to a segment and print its wg-quick configuration.
    #[command(group(ArgGroup::new("key").required(true).args(["public_key", "generate"])))]
    Add {
        /// Segment to join.
        #[arg(long)]
        segment: String,
        /// Member name, unique in the segment.
        #[arg(long)]
        name: String,
        /// The device's public key (`wg pubkey` output).
        #[arg(long)]
        public_key: Option<String>,
        /// Make the key pair here; the private key is printed in the configuration only.
        #[arg(long)]
        generate: bool,
        /// `IP:port` where the device listens (omit for a device behind NAT: the agents
        /// reach it once it has connected).
        #[arg(long)]
        endpoint: Option<String>,
        /// Label `key=value` policies select it by (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Print a device's configuration again (with a placeholder for its private key).
    Config {
        /// Peer name.
        name: String,
        /// Its segment (needed when the name is used in several).
        #[arg(long)]
        segment: Option<String>,
    },
    /// List external peers.
    List {
        /// Only this segment.
        #[arg(long)]
        segment: Option<String>,
    },
    /// Remove an external peer from its segment.
    Remove {
        /// Peer name.
        name: String,
        /// Its segment (needed when the name is used in several).
        #[arg(long)]
        segment: Option<String>,
    },
}

/// A fresh key pair: (private, public), both base64.
fn generate_keys() -> (String, String) {
    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = PublicKey::from(&secret);
    (
        encode_key(&secret.to_bytes()),
        encode_key(public.as_bytes()),
    )
}

fn rows(peers: &[ExternalPeer]) -> String {
    table::render(
        &[
            "SEGMENT",
            "NAME",
            "ADDRESS",
            "ENDPOINT",
            "LABELS",
            "PUBLIC KEY",
        ],
        &peers
            .iter()
            .map(|p| {
                vec![
                    p.segment.clone(),
                    p.name.clone(),
                    families_text(p.address.as_deref(), p.address6.as_deref()),
                    p.endpoint.clone().unwrap_or_else(|| "-".into()),
                    labels_text(&p.labels),
                    p.public_key.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// Prints the configuration: the wg-quick text for people, an object for scripts.
fn print_config(ctx: &Ctx, config: &PeerConfig, private_key: &str) {
    let text = config.wg_quick(private_key);
    match ctx.output {
        Output::Table => print!("{text}"),
        Output::Json => println!(
            "{}",
            json!({
                "peer": config.peer,
                "psk_version": config.psk_version,
                "peers": config.peers.len(),
                "config": text,
            })
        ),
    }
}

/// Runs a peer command.
pub async fn run(ctx: &Ctx, cmd: PeerCmd) -> Result<()> {
    match cmd {
        PeerCmd::Add {
            segment,
            name,
            public_key,
            generate,
            endpoint,
            labels,
        } => {
            let (private_key, public_key) = match public_key {
                Some(k) if !generate => (PRIVATE_KEY_PLACEHOLDER.to_owned(), k),
                _ => generate_keys(),
            };
            let req = AddPeer {
                segment,
                name,
                public_key,
                endpoint,
                labels: labels.into_iter().collect::<Labels>(),
            };
            let config = ctx
                .client
                .add_peer(&req)
                .await
                .context("cannot add the peer")?;
            if ctx.output == Output::Table {
                eprintln!(
                    "# peer {} added to {} as {}; save the configuration below (it holds the segment's preshared key{})",
                    config.peer.name,
                    config.peer.segment,
                    families_text(config.peer.address.as_deref(), config.peer.address6.as_deref()),
                    if generate { " and the only copy of the private key" } else { "" }
                );
            }
            print_config(ctx, &config, &private_key);
            Ok(())
        }
        PeerCmd::Config { name, segment } => {
            let config = ctx.client.peer_config(&name, segment.as_deref()).await?;
            print_config(ctx, &config, PRIVATE_KEY_PLACEHOLDER);
            Ok(())
        }
        PeerCmd::List { segment } => {
            let peers = ctx.client.list_peers(segment.as_deref()).await?;
            ctx.print(&peers, |p| rows(p))
        }
        PeerCmd::Remove { name, segment } => {
            ctx.client.remove_peer(&name, segment.as_deref()).await?;
            ctx.done(
                &format!("peer {name} removed"),
                json!({"ok": true, "removed": name}),
            )
        }
    }
}
