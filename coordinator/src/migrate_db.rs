//! `migrate-db`: copies a coordinator's SQLite database into PostgreSQL, for users who
//! outgrow one machine.
//!
//! Both stores are opened as `serve` opens them (so both schemas are at the latest
//! migration). Every table of the PostgreSQL schema is copied, parents before the tables
//! whose foreign keys name them, inside one PostgreSQL transaction read from one SQLite
//! snapshot; the target must hold no data unless `--force` (then its rows are replaced,
//! the audit log's append-only trigger set aside for that transaction only). Row counts
//! are checked per table and printed, and identity sequences are moved past the copied
//! ids, so new writes work after.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, SqliteConnection};

use crate::store::postgres::{self, PgStore};
use crate::store::sqlite::SqliteStore;

/// Rows per multi-row INSERT (well under PostgreSQL's 65,535 bind parameters).
const BATCH_ROWS: usize = 500;

/// Options of `segwire-coordinator migrate-db`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite database to copy: `sqlite://PATH` or a path (e.g. DATA_DIR/segwire.db).
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL database to fill: `postgres://USER:PASS@HOST/DB` or
    /// `postgres:///DB?host=/SOCKET/DIR`.
    #[arg(long)]
    pub to: String,
    /// Replace what the target already holds (by default a non-empty target is refused).
    #[arg(long)]
    pub force: bool,
}

/// The type a PostgreSQL column is copied as (the schema has only these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColType {
    Int,
    Text,
}

/// One table of the target schema.
#[derive(Debug)]
struct Table {
    name: String,
    columns: Vec<(String, ColType)>,
}

/// Runs `migrate-db` and prints the rows copied per table.
pub async fn run(args: MigrateArgs) -> Result<()> {
    let path = sqlite_path(&args.from);
    if !path.exists() {
        bail!(
            "--from {}: no such SQLite database; name the coordinator's DATA_DIR/segwire.db",
            path.display()
        );
    }
    if !postgres::is_url(&args.to) {
        bail!("--to must be a postgres:// or postgresql:// URL");
    }
    let source = SqliteStore::open(&path)
        .await
        .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
    let target = crate::db::open_postgres(&args.to).await?;
    let shown = postgres::redact_url(&args.to);
    let counts = copy(&source, &target, args.force).await?;
    let width = counts.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    println!("copied {} into {shown}:", path.display());
    for (table, n) in &counts {
        println!("  {table:<width$}  {n:>8} rows");
    }
    println!("row counts match; start the coordinator with --db {shown}");
    Ok(())
}

/// The file a `--from` value names.
fn sqlite_path(from: &str) -> PathBuf {
    let rest = from
        .strip_prefix("sqlite://")
        .or_else(|| from.strip_prefix("sqlite:"))
        .unwrap_or(from);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// Copies every table in one target transaction; returns `(table, rows)` in copy order.
async fn copy(source: &SqliteStore, target: &PgStore, force: bool) -> Result<Vec<(String, u64)>> {
    let mut src = source.pool().begin().await?;
    let mut dst = target.pool().begin().await?;
    let tables = target_tables(&mut dst).await?;
    let held = held_rows(&mut dst, &tables).await?;
    if !held.is_empty() && !force {
        let what: Vec<String> = held.iter().map(|(t, n)| format!("{n} in {t}")).collect();
        bail!(
            "the target database already holds rows ({}); pass --force to replace them, or name an empty database",
            what.join(", ")
        );
    }
    // Replacing an audit log needs its append-only trigger set aside (for this
    // transaction only: ALTER TABLE is transactional).
    let replace_audit = held.iter().any(|(t, _)| t == "audit_log");
    if replace_audit {
        sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
            .execute(&mut *dst)
            .await
            .context("cannot set the audit log's trigger aside to replace it (the --to user must own the tables)")?;
    }
    for t in tables.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", t.name))
            .execute(&mut *dst)
            .await?;
    }
    let mut counts = Vec::new();
    for t in &tables {
        let copied = copy_table(&mut src, &mut dst, t).await?;
        let expected: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.name))
            .fetch_one(&mut *src)
            .await?;
        let landed: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.name))
            .fetch_one(&mut *dst)
            .await?;
        if expected != landed || copied != landed as u64 {
            bail!(
                "table {}: {expected} rows in SQLite but {landed} in PostgreSQL; nothing was written",
                t.name
            );
        }
        counts.push((t.name.clone(), copied));
    }
    reset_sequences(&mut dst, &tables).await?;
    if replace_audit {
        sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER USER")
            .execute(&mut *dst)
            .await?;
    }
    dst.commit().await?;
    src.rollback().await?;
    Ok(counts)
}

/// The tables of the target schema with their columns, parents first.
async fn target_tables(dst: &mut PgConnection) -> Result<Vec<Table>> {
    let rows = sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS ty \
         FROM information_schema.columns c JOIN information_schema.tables t \
         ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         AND c.table_name <> '_sqlx_migrations' ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&mut *dst)
    .await?;
    let mut tables: BTreeMap<String, Vec<(String, ColType)>> = BTreeMap::new();
    for r in rows {
        let (table, column, ty): (String, String, String) =
            (r.try_get("t")?, r.try_get("c")?, r.try_get("ty")?);
        let ty = match ty.as_str() {
            "bigint" | "integer" | "smallint" => ColType::Int,
            "text" => ColType::Text,
            other => bail!("column {table}.{column} has type {other}, which migrate-db cannot copy; this is a bug in segwire"),
        };
        tables.entry(table).or_default().push((column, ty));
    }
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint \
         WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *dst)
    .await?;
    let order = parents_first(tables.keys().cloned().collect(), &edges)?;
    Ok(order
        .into_iter()
        .filter_map(|name| tables.remove(&name).map(|columns| Table { name, columns }))
        .collect())
}

/// Orders `tables` so that every `(child, parent)` edge has the parent first; ties by name.
fn parents_first(tables: BTreeSet<String>, edges: &[(String, String)]) -> Result<Vec<String>> {
    let mut left = tables;
    let mut order = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|t| {
                !edges
                    .iter()
                    .any(|(child, parent)| child == *t && parent != *t && left.contains(parent))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            bail!("the foreign keys of tables {left:?} form a cycle; this is a bug in segwire");
        }
        for t in ready {
            left.remove(&t);
            order.push(t);
        }
    }
    Ok(order)
}

/// Tables holding rows the coordinator did not seed itself: the counter at 0 and the
/// synthetic `external` node are what a fresh schema starts with.
async fn held_rows(dst: &mut PgConnection, tables: &[Table]) -> Result<Vec<(String, i64)>> {
    let mut held = Vec::new();
    for t in tables {
        let seeded = match t.name.as_str() {
            "counters" => " WHERE NOT (name = 'version' AND value = 0)",
            "nodes" => " WHERE id <> 'external'",
            _ => "",
        };
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}{seeded}", t.name))
            .fetch_one(&mut *dst)
            .await?;
        if n > 0 {
            held.push((t.name.clone(), n));
        }
    }
    Ok(held)
}

/// Copies one table's rows in batches; returns how many.
async fn copy_table(src: &mut SqliteConnection, dst: &mut PgConnection, t: &Table) -> Result<u64> {
    let cols: Vec<&str> = t.columns.iter().map(|(c, _)| c.as_str()).collect();
    let list = cols.join(", ");
    let rows = sqlx::query(&format!("SELECT {list} FROM {}", t.name))
        .fetch_all(&mut *src)
        .await
        .with_context(|| {
            format!(
                "cannot read table {} from SQLite; is it a segwire coordinator database?",
                t.name
            )
        })?;
    for chunk in rows.chunks(BATCH_ROWS) {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("INSERT INTO {} ({list}) ", t.name));
        let mut failed = None;
        q.push_values(chunk, |mut b, row| {
            for (i, (_, ty)) in t.columns.iter().enumerate() {
                match ty {
                    ColType::Int => match row.try_get::<Option<i64>, _>(i) {
                        Ok(v) => b.push_bind(v),
                        Err(e) => {
                            failed.get_or_insert(e);
                            b.push_bind(None::<i64>)
                        }
                    },
                    ColType::Text => match row.try_get::<Option<String>, _>(i) {
                        Ok(v) => b.push_bind(v),
                        Err(e) => {
                            failed.get_or_insert(e);
                            b.push_bind(None::<String>)
                        }
                    },
                };
            }
        });
        if let Some(e) = failed {
            bail!("table {}: a value does not fit its column: {e}", t.name);
        }
        q.build()
            .execute(&mut *dst)
            .await
            .with_context(|| format!("cannot write table {} to PostgreSQL", t.name))?;
    }
    Ok(rows.len() as u64)
}

/// Moves every identity/serial sequence past the highest copied id.
async fn reset_sequences(dst: &mut PgConnection, tables: &[Table]) -> Result<()> {
    for t in tables {
        for (col, ty) in &t.columns {
            if *ty != ColType::Int {
                continue;
            }
            let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(&t.name)
                .bind(col)
                .fetch_one(&mut *dst)
                .await?;
            if let Some(seq) = seq {
                sqlx::query(&format!(
                    "SELECT setval($1, COALESCE((SELECT MAX({col}) FROM {}), 0) + 1, false)",
                    t.name
                ))
                .bind(&seq)
                .execute(&mut *dst)
                .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_before_the_tables_that_name_them() {
        let tables: BTreeSet<String> = ["members", "nodes", "segments", "flows"]
            .map(String::from)
            .into();
        let edges = [
            ("members".to_string(), "nodes".to_string()),
            ("members".to_string(), "segments".to_string()),
        ];
        let order = parents_first(tables.clone(), &edges).expect("order");
        let at = |t: &str| order.iter().position(|o| o == t).expect("present");
        assert!(at("nodes") < at("members") && at("segments") < at("members"));
        assert_eq!(order.len(), 4);
        let cycle = [
            ("nodes".to_string(), "segments".to_string()),
            ("segments".to_string(), "nodes".to_string()),
        ];
        assert!(parents_first(tables, &cycle).is_err());
    }

    #[test]
    fn from_takes_a_url_or_a_path() {
        assert_eq!(
            sqlite_path("sqlite:///d/segwire.db"),
            PathBuf::from("/d/segwire.db")
        );
        assert_eq!(
            sqlite_path("sqlite:/d/x.db?mode=ro"),
            PathBuf::from("/d/x.db")
        );
        assert_eq!(sqlite_path("/d/segwire.db"), PathBuf::from("/d/segwire.db"));
    }
}
