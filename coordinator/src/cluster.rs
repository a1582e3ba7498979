//! Several coordinators on one database: the CA they share and the registry of the live
//! ones, whose URLs join tokens and netmaps carry.
//!
//! The CA lives in the database (`cluster_ca`). The first start on an empty database
//! uploads the data directory's CA if it has one (an upgraded single coordinator keeps its
//! pin) or makes one; racing first starts end with one CA (insert if absent, then read
//! back). A later coordinator takes the CA from the database and writes `ca.crt` (not the
//! key) into its data directory for operators; a data directory holding another CA is
//! refused.
//!
//! Each coordinator heartbeats its row in `coordinators` every [`HEARTBEAT`]; one seen
//! within [`LIVE_FOR`] is live. A clean shutdown deletes the row.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::convert::now;
use crate::pki::{self, Ca, LocalCa};
use crate::store::cluster::{CaRow, ClusterStore};

/// How often a coordinator renews its row in the registry.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// How recent a heartbeat must be for its coordinator to count as live.
pub const LIVE_FOR: Duration = Duration::from_secs(15);

/// The CA this coordinator serves with, and whether it took it from the database as a
/// later coordinator (its data directory never held the CA's key): such a coordinator
/// makes no admin key of its own.
pub struct SharedCa {
    /// The CA.
    pub ca: Ca,
    /// True when another coordinator stored the CA and this one only took it.
    pub joined: bool,
}

/// Finds the cluster CA for the coordinator with data directory `dir` (see the module
/// documentation); one sentence saying what to do when the directory and the database disagree.
pub async fn shared_ca(dir: &Path, store: &dyn ClusterStore) -> Result<SharedCa> {
    let local = pki::read_local(dir)?;
    let stored = store
        .get_ca()
        .await
        .context("cannot read the CA from the database")?;
    let stored = match stored {
        Some(row) => row,
        None => {
            let (mine, in_dir) = match &local {
                LocalCa::Both(k, c) => (Ca::from_pem(k, c, "ca.crt in the data directory")?, true),
                LocalCa::CertOnly(_) => bail!(
                    "the data directory {} holds ca.crt without ca.key and the database holds no CA; restore ca.key from backup, or move ca.crt away to make a new CA",
                    dir.display()
                ),
                LocalCa::Nothing => (Ca::new()?, false),
            };
            let row = CaRow {
                key_pem: mine.key_pem(),
                cert_pem: mine.cert_pem().to_string(),
            };
            let won = store
                .put_ca_if_absent(&row, now())
                .await
                .context("cannot store the CA in the database")?;
            if won.cert_pem == row.cert_pem {
                if in_dir {
                    tracing::info!("stored the data directory's CA in the database");
                } else {
                    pki::write_local(dir, &mine, true)?;
                    tracing::info!(path = %dir.join("ca.crt").display(), "created a new CA");
                }
                return Ok(SharedCa {
                    ca: mine,
                    joined: false,
                });
            }
            // Another coordinator stored its CA first.
            won
        }
    };
    let ca = Ca::from_pem(&stored.key_pem, &stored.cert_pem, "the CA in the database")?;
    let joined = match &local {
        LocalCa::Both(_, c) | LocalCa::CertOnly(c) => {
            let pin = pki::pin_of_pem(c).context("ca.crt in the data directory is damaged")?;
            if pin != ca.pin {
                bail!(
                    "the data directory {} holds a CA (pin {pin}) other than the one in the database (pin {}); move ca.key and ca.crt out of it to serve with the database's CA, or point --db at the database that CA belongs to",
                    dir.display(),
                    ca.pin
                );
            }
            matches!(local, LocalCa::CertOnly(_))
        }
        LocalCa::Nothing => {
            pki::write_local(dir, &ca, false)?;
            tracing::info!(pin = %ca.pin, path = %dir.join("ca.crt").display(), "took the CA from the database; another coordinator shares it");
            true
        }
    };
    Ok(SharedCa { ca, joined })
}

/// Presence shared through the database when several coordinators may serve one node
/// (PostgreSQL): the coordinator a node polls takes it over (`nodes.polled_by`), and only
/// the one holding it reports it offline, once; whichever it polls next reports it back.
#[derive(Clone)]
pub struct SharedPresence {
    store: Arc<dyn ClusterStore>,
    instance: String,
}

impl SharedPresence {
    /// Presence kept in `store` for the coordinator `instance`.
    pub fn new(store: Arc<dyn ClusterStore>, instance: String) -> Self {
        SharedPresence { store, instance }
    }

    /// Whether this coordinator must take over a node that starts a poll here: it is held
    /// by another (or none), or this coordinator saw it go offline (`back`).
    pub fn must_claim(&self, polled_by: Option<&str>, back: bool) -> bool {
        back || polled_by != Some(self.instance.as_str())
    }

    /// Takes the node over; true when it was reported offline (it is back). A database
    /// failure is logged and counts as `back_here`, what this coordinator saw itself.
    pub async fn claim(&self, node_id: &str, back_here: bool) -> bool {
        match self.store.claim_node(node_id, &self.instance).await {
            Ok(was_offline) => was_offline,
            Err(e) => {
                tracing::warn!(error = %e, node_id, "cannot record which coordinator polls this node");
                back_here
            }
        }
    }

    /// Whether this coordinator reports the quiet node offline: it still holds the node
    /// (no other coordinator took it over) and nobody reported it yet. A database failure
    /// is logged and reports it (a duplicate event rather than a missing one).
    pub async fn report_offline(&self, node_id: &str) -> bool {
        match self
            .store
            .mark_offline(node_id, &self.instance, now())
            .await
        {
            Ok(mine) => mine,
            Err(e) => {
                tracing::warn!(error = %e, node_id, "cannot record a node offline in the database");
                true
            }
        }
    }
}

/// This coordinator's entry in the registry and its view of the live coordinators.
pub struct Registry {
    store: Arc<dyn ClusterStore>,
    id: String,
    own: Vec<String>,
    started_at: i64,
    /// Every live coordinator's URLs, this one's first.
    live: RwLock<Vec<String>>,
}

impl Registry {
    /// Registers the coordinator `id` with its URLs `own` (the first is the one its tokens
    /// name) and reads the live coordinators.
    pub async fn register(
        store: Arc<dyn ClusterStore>,
        id: String,
        own: Vec<String>,
    ) -> Result<Arc<Registry>> {
        let reg = Arc::new(Registry {
            store,
            id,
            live: RwLock::new(own.clone()),
            own,
            started_at: now(),
        });
        reg.beat()
            .await
            .context("cannot register this coordinator in the database")?;
        Ok(reg)
    }

    /// Every live coordinator's URLs, this coordinator's first, each once.
    pub fn urls(&self) -> Vec<String> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Renews the heartbeat and refreshes the list of live coordinators.
    async fn beat(&self) -> crate::store::StoreResult<()> {
        let t = now();
        self.store
            .heartbeat(&self.id, &self.own, self.started_at, t)
            .await?;
        let rows = self
            .store
            .live_coordinators(t - LIVE_FOR.as_secs() as i64)
            .await?;
        let mut urls = self.own.clone();
        for u in rows.into_iter().flat_map(|r| r.urls) {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        if *live != urls {
            tracing::info!(coordinators = ?urls, "live coordinators changed");
            *live = urls;
        }
        Ok(())
    }

    /// Heartbeats forever (a failure is logged and retried at the next beat).
    pub async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "cannot renew this coordinator's heartbeat");
            }
        }
    }

    /// Removes this coordinator (and long-dead ones) from the registry, at a clean shutdown.
    pub async fn deregister(&self) {
        let stale = now() - 10 * LIVE_FOR.as_secs() as i64;
        if let Err(e) = self.store.deregister(&self.id, stale).await {
            tracing::warn!(error = %e, "cannot remove this coordinator from the registry");
        }
    }
}

#[cfg(test)]
mod tests;
