//! A throwaway PostgreSQL cluster for tests: Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/VERSION/bin`, or `SEGWIRE_PG_BIN`), `initdb` into a temp dir,
//! `pg_ctl start` listening only on a unix socket in that dir (no TCP), run as the
//! `postgres` user when the test runs as root. [`Cluster`]'s drop stops it
//! (`pg_ctl stop -m immediate`) and removes the dir, also when the test panics.
//!
//! A test that needs PostgreSQL calls [`Cluster::start`]: without the binaries it skips
//! visibly, and under `CI` it fails (see [`crate::skip`]).

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running cluster in a temp dir; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    user: Option<(u32, u32)>,
    dir: tempfile::TempDir,
    next_db: AtomicU32,
}

impl Cluster {
    /// Starts a fresh cluster for `test`; `None` (after a visible skip) when this machine
    /// has no PostgreSQL server binaries.
    ///
    /// # Panics
    /// When `CI` is set and the binaries are missing, or when the cluster fails to start
    /// (with initdb's or the server's log).
    #[must_use]
    pub fn start(test: &str) -> Option<Cluster> {
        let Some(bin) = bin_dir() else {
            let reason = "needs PostgreSQL's server binaries (apt-get install postgresql; \
                          or set SEGWIRE_PG_BIN to the dir holding initdb and pg_ctl)";
            assert!(
                std::env::var_os("CI").is_none(),
                "{test} cannot run on this CI machine: it {reason}"
            );
            crate::skip::skip(test, reason);
            return None;
        };
        let user = crate::skip::is_root().then(postgres_user);
        let dir = tempfile::Builder::new()
            .prefix("segwire-pg-")
            .tempdir()
            .expect("a temp dir for the PostgreSQL cluster");
        let data = dir.path().join("data");
        let socket = dir.path().join("sock");
        std::fs::create_dir(&socket).expect("the socket dir");
        if let Some((uid, gid)) = user {
            for p in [dir.path(), socket.as_path()] {
                chown(p, Some(uid), Some(gid)).expect("chown the cluster dir to postgres");
            }
        }
        let cluster = Cluster {
            bin,
            data,
            socket,
            user,
            dir,
            next_db: AtomicU32::new(0),
        };
        let data_arg = cluster.data.display().to_string();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                &data_arg,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        let opts = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=100",
            cluster.socket.display()
        );
        let log = cluster.dir.path().join("server.log").display().to_string();
        let out = cluster.run(
            "pg_ctl",
            &[
                "-D", &data_arg, "-l", &log, "-o", &opts, "-w", "-t", "30", "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(cluster)
    }

    /// The dir holding the server's unix socket.
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        &self.socket
    }

    /// A sqlx URL for database `db` of this cluster, over its unix socket.
    #[must_use]
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}",
            self.socket.display()
        )
    }

    /// Creates a new, empty database and returns its URL.
    ///
    /// # Panics
    /// When `createdb` fails.
    #[must_use]
    pub fn create_database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let host = self.socket.display().to_string();
        let out = self.run("createdb", &["-h", &host, "-U", "postgres", &name]);
        assert!(out.status.success(), "createdb failed: {}", text(&out));
        self.url(&name)
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid).env("HOME", self.dir.path());
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data_arg = self.data.display().to_string();
        let out = self.run(
            "pg_ctl",
            &["-D", &data_arg, "-m", "immediate", "-w", "stop"],
        );
        if !out.status.success() {
            eprintln!("pg_ctl stop failed: {}", text(&out));
        }
    }
}

/// The PostgreSQL server binaries: `SEGWIRE_PG_BIN`, else the newest Debian version dir
/// (15 on Debian 12).
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SEGWIRE_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| d.join("initdb").exists());
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

/// The uid and gid of the `postgres` user (initdb refuses to run as root).
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .expect("a `postgres` user (Debian's postgresql package creates it)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_listens_on_its_socket_only_and_is_gone_after_drop() {
        let Some(c) = Cluster::start("a_cluster_listens_on_its_socket_only_and_is_gone_after_drop")
        else {
            return;
        };
        let url = c.create_database();
        assert!(url.contains("?host=") && url.ends_with("/sock"), "{url}");
        assert!(c.socket_dir().join(".s.PGSQL.5432").exists());
        let conf = std::fs::read_to_string(c.data.join("postmaster.opts")).unwrap_or_default();
        assert!(conf.contains("listen_addresses="), "{conf}");
        let dir = c.dir.path().to_owned();
        drop(c);
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
}
