//! PostgreSQL implementation of [`Store`](super::Store), for several coordinators on one
//! database: versioned migrations from `coordinator/migrations_pg` (the twins of the
//! SQLite ones), and one writer at a time across every coordinator (a transaction-scoped
//! advisory lock, see `postgres/dialect.rs`) besides this process's own mutex, so a write
//! transaction always sees the latest state, as on SQLite.
//!
//! The queries are the SQLite store's: the entity modules under `store/sql/` are compiled
//! once per backend (`sql_modules!` in `store/mod.rs`, by `#[path]`) against this module's [`Backend`], [`Db`], [`DbRow`] and
//! [`DbConn`] aliases.

// Loading `store/sql/*` once per backend is the point: one source of every query.
#![allow(clippy::duplicate_mod)]

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::Mutex;

use super::{StoreError, StoreResult};

/// The store the shared entity modules are compiled against.
type Backend = PgStore;
/// The sqlx database of this backend.
type Db = sqlx::Postgres;
/// A row of this backend.
type DbRow = sqlx::postgres::PgRow;
/// A connection of this backend.
type DbConn = sqlx::PgConnection;

mod dialect;
pub mod notify;
sql_modules!();

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    write: Mutex<()>,
    /// This coordinator's id in change notifications (see [`notify`]).
    instance: String,
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
#[must_use]
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to the database at `url` (sqlx URL forms: `postgres://user:pass@host/db`,
    /// or a unix socket dir as `?host=/path`) and applies pending migrations.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        // Notices ("relation … already exists, skipping") are not the operator's business.
        let opts = PgConnectOptions::from_str(url)?.options([("client_min_messages", "warning")]);
        // One connection first: the pool would retry a refused connection until its
        // acquire timeout and then report only that it timed out.
        opts.connect().await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations_pg").run(&pool).await?;
        Ok(PgStore {
            pool,
            write: Mutex::new(()),
            instance: crate::secret::new_id(),
        })
    }

    /// This coordinator's id in change notifications.
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The pool, for `migrate-db`, which copies whole tables outside the store's API.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `url` with its password replaced, for messages and logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:<redacted>@{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// One sentence for a failure to open the store at `url`: a bad URL, an unreachable
/// server, refused credentials or a failed migration.
#[must_use]
pub fn open_error(url: &str, e: &StoreError) -> String {
    let shown = redact_url(url);
    match e {
        StoreError::Db(sqlx::Error::Configuration(c)) => format!(
            "--db {shown} is not a valid PostgreSQL URL ({c}); use postgres://USER:PASSWORD@HOST/DB or postgres:///DB?host=/SOCKET/DIR"
        ),
        StoreError::Db(sqlx::Error::Io(io)) => format!(
            "cannot reach the PostgreSQL server of --db {shown} ({io}); check that it runs and that the host and port are right"
        ),
        StoreError::Db(sqlx::Error::PoolTimedOut) => format!(
            "the PostgreSQL server of --db {shown} did not answer within 10 s; check that it runs and that the host and port are right"
        ),
        StoreError::Db(sqlx::Error::Database(d)) => format!(
            "the PostgreSQL server of --db {shown} refused: {}; check the user, password and database in the URL",
            d.message()
        ),
        other => format!("cannot open the PostgreSQL database {shown}: {other}"),
    }
}

/// What keeps a test store's database alive.
#[cfg(test)]
type TestDb = segwire_testkit::postgres::Cluster;

/// A fresh store in a new cluster, for the shared store tests (`None`: skipped).
#[cfg(test)]
async fn test_store(test: &str) -> Option<(TestDb, PgStore)> {
    let cluster = segwire_testkit::postgres::Cluster::start(test)?;
    let store = PgStore::open_url(&cluster.create_database())
        .await
        .expect("a store on the test cluster");
    Some((cluster, store))
}

/// A store on a fresh database of the test cluster that first had only the migrations
/// numbered below `below`, then `rows` (SQL), and is then opened (the rest of the
/// migrations apply): a database as an older coordinator left it.
#[cfg(test)]
async fn test_store_migrated(test: &str, below: i64, rows: &str) -> Option<(TestDb, PgStore)> {
    let cluster = segwire_testkit::postgres::Cluster::start(test)?;
    let url = cluster.create_database();
    let older = super::migrations_below("migrations_pg", below);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("the test database");
    sqlx::migrate::Migrator::new(older.path())
        .await
        .expect("the older migrations")
        .run(&pool)
        .await
        .expect("the older migrations apply");
    sqlx::raw_sql(rows).execute(&pool).await.expect("the rows");
    pool.close().await;
    let store = PgStore::open_url(&url).await.expect("the store migrates");
    Some((cluster, store))
}

#[cfg(test)]
#[path = "sql/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sql/tests_ipv6_only.rs"]
mod tests_ipv6_only;

#[cfg(test)]
mod url_tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn truncate_cannot_empty_the_audit_log_and_nul_text_is_a_bad_request() {
        let Some((_db, s)) =
            test_store("truncate_cannot_empty_the_audit_log_and_nul_text_is_a_bad_request").await
        else {
            return;
        };
        let err = sqlx::query("TRUNCATE audit_log")
            .execute(&s.pool)
            .await
            .expect_err("TRUNCATE must be refused");
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(matches!(
            s.get_segment("we\0b").await,
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            redact_url("postgres://seg:hunter2@db.example/segwire"),
            "postgres://seg:<redacted>@db.example/segwire"
        );
        assert_eq!(
            redact_url("postgres:///segwire?host=/run/postgresql"),
            "postgres:///segwire?host=/run/postgresql"
        );
        let e = StoreError::Db(sqlx::Error::Configuration("bad port".into()));
        let msg = open_error("postgres://seg:hunter2@db:x/segwire", &e);
        assert!(
            !msg.contains("hunter2") && msg.contains("not a valid"),
            "{msg}"
        );
    }
}
