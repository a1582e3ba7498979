//! `segwire apikey ...`: API keys with roles.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use segwire_client::config::AdminConf;
use segwire_proto::access::{ApiKeyInfo, CreateApiKey, Role};

use super::Ctx;
use crate::{table, Output};

/// API key commands.
#[derive(Debug, Subcommand)]
pub enum ApikeyCmd {
    /// Create an API key; prints the key alone on stdout (it is never shown again).
    Create {
        /// admin (everything), operator (segments, policies, tokens, nodes; not keys) or viewer (read only).
        #[arg(long)]
        role: Role,
        /// Limit the key to this segment (repeatable; operator and viewer only).
        #[arg(long = "segment")]
        segments: Vec<String>,
        /// Lifetime, e.g. 12h or 30d; the key never expires without it.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Who or what uses the key.
        #[arg(long)]
        description: Option<String>,
    },
    /// List API keys (never their secrets).
    List,
    /// Revoke an API key.
    Revoke {
        /// Key id.
        id: String,
    },
    /// Replace the key in use with a new one of the same role (the old one stops working);
    /// prints the new key, or writes it into the config file with --update-config.
    Rotate {
        /// Write the new key into the --config file instead of printing it.
        #[arg(long)]
        update_config: bool,
    },
}

fn rows(keys: &[ApiKeyInfo]) -> String {
    table::render(
        &["ID", "ROLE", "STATE", "SEGMENTS", "EXPIRES", "DESCRIPTION"],
        &keys
            .iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    k.role.to_string(),
                    k.state.clone(),
                    k.segments
                        .as_ref()
                        .map(|s| s.join(","))
                        .unwrap_or_else(|| "*".into()),
                    k.expires_at.clone().unwrap_or_else(|| "never".into()),
                    k.description.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

fn write_config(path: &Path, key: String) -> Result<()> {
    let mut conf = AdminConf::load(path)?;
    conf.api_key = key;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(conf.render().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Runs an API key command.
pub async fn run(ctx: &Ctx, cmd: ApikeyCmd) -> Result<()> {
    match cmd {
        ApikeyCmd::Create {
            role,
            segments,
            ttl,
            description,
        } => {
            let created = ctx
                .client
                .create_api_key(&CreateApiKey {
                    role,
                    segments: (!segments.is_empty()).then_some(segments),
                    ttl_seconds: ttl.map(|t| t.as_secs().max(1)),
                    description,
                })
                .await?;
            match ctx.output {
                Output::Json => ctx.print(&created, |_| String::new()),
                Output::Table => {
                    println!("{}", created.key);
                    Ok(())
                }
            }
        }
        ApikeyCmd::List => {
            let keys = ctx.client.list_api_keys().await?;
            ctx.print(&keys, |k| rows(k))
        }
        ApikeyCmd::Revoke { id } => {
            ctx.client.revoke_api_key(&id).await?;
            ctx.done(
                &format!("API key {id} revoked"),
                serde_json::json!({"ok": true, "revoked": id}),
            )
        }
        ApikeyCmd::Rotate { update_config } => {
            let created = ctx.client.rotate_api_key().await?;
            if update_config {
                write_config(&ctx.config, created.key.clone()).with_context(|| {
                    format!("the old key is revoked; the new one is {} — put it into your config by hand", created.key)
                })?;
                return ctx.done(
                    &format!(
                        "API key rotated: {} now holds key {}",
                        ctx.config.display(),
                        created.id
                    ),
                    serde_json::json!({"ok": true, "id": created.id, "config": ctx.config}),
                );
            }
            match ctx.output {
                Output::Json => ctx.print(&created, |_| String::new()),
                Output::Table => {
                    println!("{}", created.key);
                    Ok(())
                }
            }
        }
    }
}
