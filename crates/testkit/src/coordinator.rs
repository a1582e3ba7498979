//! A real `segwire-coordinator serve` process on a temp data dir, killed on drop.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segwire_client::config::AdminConf;
use segwire_client::Client;

use crate::bin;

/// A running coordinator. Its stderr (the log) is written to `data_dir/../coordinator.log`.
pub struct Coordinator {
    child: Option<Child>,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Log file of all runs.
    pub log: PathBuf,
    extra: Vec<String>,
    log_filter: String,
}

impl Coordinator {
    /// Starts a coordinator on `listen` with data in `data_dir` and waits until it answers.
    /// A `listen` port of 0 lets the coordinator choose (no race with other tests).
    pub fn start(data_dir: &Path, listen: &str, extra: &[&str]) -> Coordinator {
        Coordinator::start_logged(data_dir, listen, extra, "info")
    }

    /// Like [`Coordinator::start`], logging at `filter` (a `RUST_LOG` value such as `trace`).
    pub fn start_logged(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        filter: &str,
    ) -> Coordinator {
        let mut c = Coordinator {
            child: None,
            data_dir: data_dir.to_path_buf(),
            listen: listen.to_string(),
            log: data_dir.with_extension("log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log_filter: filter.to_owned(),
        };
        c.spawn();
        c
    }

    /// Command line used to start it (for running it in a network namespace).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("segwire-coordinator"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra);
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let child = self
            .command()
            .env("RUST_LOG", &self.log_filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start segwire-coordinator");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "coordinator exited early ({status}); log:\n{}",
                        self.log_text()
                    );
                }
            }
            if let Ok(conf) = AdminConf::load(&self.admin_conf()) {
                // With port 0 the coordinator picks a free port and writes it into
                // admin.conf; restarts then reuse that port.
                let any_port = self.port() == "0";
                if (any_port || conf.url.ends_with(&format!(":{}", self.port())))
                    && tokio_free_probe(&conf)
                {
                    if any_port {
                        if let Some(port) = conf.url.rsplit(':').next() {
                            let host = self.listen.rsplit_once(':').map_or("127.0.0.1", |h| h.0);
                            self.listen = format!("{host}:{port}");
                        }
                    }
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "coordinator not ready in 30 s; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn port(&self) -> String {
        self.listen
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Makes the database fail until the guard is dropped ([`crate::DbLock`]).
    pub fn lock_db(&self) -> crate::DbLock {
        crate::DbLock::hold(&self.data_dir.join("segwire.db"))
            .unwrap_or_else(|e| panic!("cannot lock the coordinator's database: {e}"))
    }

    /// Path of admin.conf.
    pub fn admin_conf(&self) -> PathBuf {
        self.data_dir.join("admin.conf")
    }

    /// The parsed admin.conf.
    pub fn conf(&self) -> AdminConf {
        AdminConf::load(&self.admin_conf()).expect("admin.conf")
    }

    /// A client with the admin key.
    pub fn admin_client(&self) -> Client {
        let c = self.conf();
        Client::new(&c.url, c.ca_pin, Some(c.api_key)).expect("client")
    }

    /// Everything the coordinator logged so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Stops it with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts it again on the same data dir and address.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills it with SIGKILL (no shutdown at all, as in a crash or an OOM kill) and waits
    /// until it is gone; [`Coordinator::start_again`] brings it back.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data dir and address after [`Coordinator::crash`] or
    /// [`Coordinator::stop`], and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the coordinator is still running");
        self.spawn();
    }
}

/// True when a TCP connection to the URL's address succeeds.
fn tokio_free_probe(conf: &AdminConf) -> bool {
    let hostport = conf.url.trim_start_matches("https://");
    std::net::TcpStream::connect(hostport).is_ok()
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
