//! Opening the database `--db` names: SQLite in the data directory by default, a
//! `sqlite://` URL, or a `postgres://` / `postgresql://` URL.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use crate::store::access::AccessStore;
use crate::store::cluster::ClusterStore;
use crate::store::flows::FlowStore;
use crate::store::postgres::{self, PgStore};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// One opened store, by the traits the server uses.
pub struct Opened {
    /// The main store.
    pub store: Arc<dyn Store>,
    /// Flow logs.
    pub flows: Arc<dyn FlowStore>,
    /// API keys, audit and events.
    pub access: Arc<dyn AccessStore>,
    /// The shared CA and the registry of coordinators.
    pub cluster: Arc<dyn ClusterStore>,
    /// The PostgreSQL store, whose change notifications the server listens to.
    pub postgres: Option<Arc<PgStore>>,
}

impl Opened {
    fn of<S: Store + FlowStore + AccessStore + ClusterStore>(s: Arc<S>) -> Self {
        Opened {
            store: s.clone(),
            flows: s.clone(),
            cluster: s.clone(),
            access: s,
            postgres: None,
        }
    }
}

/// Opens the store `db` names (`None`: SQLite in `data_dir`) and applies its migrations.
pub async fn open(db: Option<&str>, data_dir: &Path) -> Result<Opened> {
    match db {
        None => {
            let s = SqliteStore::open(&data_dir.join("segwire.db"))
                .await
                .context("cannot open the SQLite database in the data directory")?;
            restrict_db_files(s.file());
            Ok(Opened::of(Arc::new(s)))
        }
        Some(url) if url.starts_with("sqlite:") => {
            let s = SqliteStore::open_url(url)
                .await
                .with_context(|| format!("cannot open the database {url}"))?;
            restrict_db_files(s.file());
            Ok(Opened::of(Arc::new(s)))
        }
        Some(url) if postgres::is_url(url) => {
            let s = Arc::new(open_postgres(url).await?);
            Ok(Opened {
                postgres: Some(s.clone()),
                ..Opened::of(s)
            })
        }
        Some(other) => bail!(
            "--db {:?}: use a sqlite:// or postgres:// URL, or omit --db",
            postgres::redact_url(other)
        ),
    }
}

/// Connects to PostgreSQL at `url`; a failure is one sentence saying what to check.
pub async fn open_postgres(url: &str) -> Result<PgStore> {
    PgStore::open_url(url)
        .await
        .map_err(|e| anyhow!(postgres::open_error(url, &e)))
}

/// The database holds key material (segment PSKs): keep its files private, wherever
/// `--db` put them.
fn restrict_db_files(db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let name = db.as_os_str().to_owned();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = name.clone();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if p.exists() {
            if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %p.display(), error = %e, "cannot make the database file private");
            }
        }
    }
}
