//! The coordinator of a lab and the admin CLI that drives it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use segwire_testkit::{bin, Lab};

use super::wait_until;

/// The admin CLI inside the coordinator's namespace, with its admin.conf.
pub struct Ctl {
    /// The namespace the CLI runs in.
    pub ns: String,
    /// The coordinator's admin.conf.
    pub conf: PathBuf,
}

impl Ctl {
    /// `segwire <args>`; panics with its stderr when it fails; its trimmed stdout.
    pub fn sw(&self, lab: &Lab, args: &[&str]) -> String {
        let out = self.try_sw(lab, args);
        assert!(
            out.status.success(),
            "segwire {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `segwire <args>`, whatever its outcome.
    pub fn try_sw(&self, lab: &Lab, args: &[&str]) -> std::process::Output {
        lab.cmd(&self.ns, bin("segwire").to_str().unwrap())
            .arg("--config")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    /// Waits until the coordinator answers the CLI (admin.conf written, API up), at most
    /// 30 s; panics with the coordinator's log otherwise.
    pub fn wait_ready(&self, lab: &Lab, log: &Path) {
        let ready = wait_until(Duration::from_secs(30), || {
            self.conf.exists() && self.try_sw(lab, &["segment", "list"]).status.success()
        });
        assert!(
            ready.is_some(),
            "coordinator did not start:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Starts `segwire-coordinator serve --listen LISTEN --advertise ADVERTISE` in `ns` with
/// its data in `data` and its log in `log`; the lab stops it.
pub fn start_coordinator(
    lab: &mut Lab,
    ns: &str,
    data: &Path,
    log: &Path,
    listen: &str,
    advertise: &str,
) -> u32 {
    start_coordinator_with(lab, ns, data, log, listen, advertise, &[])
}

/// [`start_coordinator`] with more `serve` options (`--db URL`, say).
pub fn start_coordinator_with(
    lab: &mut Lab,
    ns: &str,
    data: &Path,
    log: &Path,
    listen: &str,
    advertise: &str,
    extra: &[&str],
) -> u32 {
    let mut c = lab.cmd(ns, bin("segwire-coordinator").to_str().unwrap());
    c.args([
        "serve",
        "--listen",
        listen,
        "--advertise",
        advertise,
        "--data-dir",
    ])
    .arg(data)
    .args(extra)
    .env("RUST_LOG", "info");
    lab.spawn(c, log)
}
