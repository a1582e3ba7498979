//! SQLite implementation of [`Store`]: WAL journal, `synchronous=FULL`, versioned
//! migrations from `coordinator/migrations`. Writers are serialised by one async mutex so
//! that every write transaction sees the latest state (SQLite allows one writer anyway),
//! while readers run in parallel on the pool.
//!
//! The queries are shared with the PostgreSQL store: the entity modules under `store/sql/`
//! are compiled once per backend (`sql_modules!` in `store/mod.rs`, by `#[path]`), against this module's [`Backend`], [`Db`],
//! [`DbRow`] and [`DbConn`] aliases; the few statements SQLite spells differently are in
//! `sqlite/dialect.rs`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::Mutex;

use super::StoreResult;

/// The store the shared entity modules are compiled against.
type Backend = SqliteStore;
/// The sqlx database of this backend.
type Db = sqlx::Sqlite;
/// A row of this backend.
type DbRow = sqlx::sqlite::SqliteRow;
/// A connection of this backend.
type DbConn = sqlx::SqliteConnection;

mod dialect;
sql_modules!();

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    write: Mutex<()>,
    /// The database file (from the path or the URL).
    file: std::path::PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::connect(opts).await
    }

    /// Opens a store from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::connect(opts).await
    }

    /// The pool, for `migrate-db`, which copies whole tables outside the store's API.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file, whether given as a path or in a `sqlite://` URL: it holds key
    /// material (segment PSKs), so the server keeps it and its WAL files private.
    #[must_use]
    pub fn file(&self) -> &Path {
        &self.file
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        let file = opts.get_filename().to_owned();
        // No ping before each acquire: a SQLite connection is a file handle in this
        // process and cannot drop, and the ping is a round trip to the connection's worker
        // thread on every query (a third of the store's CPU in a fan-out).
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            write: Mutex::new(()),
            file,
        })
    }
}

/// What keeps a test store's database alive.
#[cfg(test)]
type TestDb = tempfile::TempDir;

/// A fresh store on a temp-dir file, for the shared store tests.
#[cfg(test)]
async fn test_store(_test: &str) -> Option<(TestDb, SqliteStore)> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SqliteStore::open(&dir.path().join("t.db"))
        .await
        .expect("a store on a temp-dir file");
    Some((dir, store))
}

/// A store on a temp-dir file that first had only the migrations numbered below
/// `below`, then `rows` (SQL), and is then opened (the rest of the migrations apply): a
/// database as an older coordinator left it.
#[cfg(test)]
async fn test_store_migrated(_test: &str, below: i64, rows: &str) -> Option<(TestDb, SqliteStore)> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("t.db");
    let older = super::migrations_below("migrations", below);
    let opts = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("a database file");
    sqlx::migrate::Migrator::new(older.path())
        .await
        .expect("the older migrations")
        .run(&pool)
        .await
        .expect("the older migrations apply");
    sqlx::raw_sql(rows).execute(&pool).await.expect("the rows");
    pool.close().await;
    let store = SqliteStore::open(&file).await.expect("the store migrates");
    Some((dir, store))
}

#[cfg(test)]
#[path = "sql/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sql/tests_ipv6_only.rs"]
mod tests_ipv6_only;
