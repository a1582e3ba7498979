//! Operational state of access control and monitoring, shared by the API: the access
//! store, the event bus, node presence, failure limiters and the metrics recorder; and
//! the `serve` flags that configure them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::events::{self, Events};
use crate::presence::Presence;
use crate::ratelimit::FailureLimiter;
use crate::store::access::AccessStore;
use crate::webhook::{Dispatcher, WebhookConfig};

/// Monitoring and limit options of `segwire-coordinator serve`.
#[derive(Debug, Args)]
pub struct OpsArgs {
    /// A node is reported offline after this long without a netmap poll (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub node_offline_after: Duration,
    /// POST every event to this URL (repeatable); needs --webhook-secret-file.
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
    /// File holding the HMAC-SHA256 key that signs webhook bodies.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Wait before the first webhook retry; doubled after each failure (at most 60s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub webhook_backoff: Duration,
    /// Delivery attempts per event and webhook, the first included.
    #[arg(long, default_value_t = 8)]
    pub webhook_attempts: u32,
    /// Failed authentications (or rejected join tokens) one address may make at once.
    #[arg(long, default_value_t = 20)]
    pub auth_failure_burst: u32,
    /// After the burst, one more failure is allowed per this interval (e.g. 3s).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub auth_failure_interval: Duration,
}

/// Shared operational state.
pub struct Ops {
    /// Keys, audit log, events.
    pub access: Arc<dyn AccessStore>,
    /// The event bus.
    pub events: Arc<Events>,
    /// Which nodes are polling.
    pub presence: Arc<Presence>,
    /// Failed authentications per source address.
    pub auth_failures: Mutex<FailureLimiter>,
    /// Rejected join tokens per source address.
    pub enroll_failures: Mutex<FailureLimiter>,
    /// Renders `/metrics`; `None` when another recorder was installed first.
    pub prometheus: Option<PrometheusHandle>,
    /// Presence shared with the other coordinators of a PostgreSQL database.
    pub shared: Option<crate::cluster::SharedPresence>,
}

fn webhook_config(args: &OpsArgs) -> Result<WebhookConfig> {
    for url in &args.webhooks {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--webhook {url:?}: use an http:// or https:// URL");
        }
    }
    let secret = match (&args.webhook_secret_file, args.webhooks.is_empty()) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --webhook-secret-file {}", path.display()))?;
            let secret = text.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
            if secret.len() < 16 {
                bail!(
                    "{}: the webhook secret must have at least 16 characters",
                    path.display()
                );
            }
            secret
        }
        (None, false) => {
            bail!("--webhook needs --webhook-secret-file: webhook bodies are always signed")
        }
        (None, true) => Vec::new(),
    };
    Ok(WebhookConfig {
        urls: args.webhooks.clone(),
        secret,
        backoff: args.webhook_backoff,
        attempts: args.webhook_attempts,
    })
}

/// Builds the state, installs the metrics recorder and starts webhooks and the presence monitor.
/// With `shared`, node presence is shared with the other coordinators of the database.
pub fn start(
    args: &OpsArgs,
    access: Arc<dyn AccessStore>,
    shared: Option<crate::cluster::SharedPresence>,
) -> Result<Arc<Ops>> {
    let webhooks = Dispatcher::start(webhook_config(args)?)?;
    let prometheus = match PrometheusBuilder::new().install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            None
        }
    };
    let events = Arc::new(Events::new(access.clone(), webhooks));
    let presence = Arc::new(Presence::default());
    tokio::spawn(events::monitor(
        presence.clone(),
        events.clone(),
        args.node_offline_after,
        shared.clone(),
    ));
    if !args.webhooks.is_empty() {
        tracing::info!(webhooks = args.webhooks.len(), "webhook delivery on");
    }
    let limiter = || {
        Mutex::new(FailureLimiter::new(
            args.auth_failure_burst,
            args.auth_failure_interval,
        ))
    };
    Ok(Arc::new(Ops {
        access,
        events,
        presence,
        auth_failures: limiter(),
        enroll_failures: limiter(),
        prometheus,
        shared,
    }))
}
