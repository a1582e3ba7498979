//! Test support shared by the integration and end-to-end tests.
//!
//! Tests drive the real binaries (`segwire-coordinator`, `segwire`, `segwire-node`) that
//! `cargo build --workspace --bins` put next to the test executable's `deps/` folder.

pub mod coordinator;
pub mod dblock;
pub mod netlab;
pub mod podman;
pub mod postgres;
pub mod skip;

use std::path::PathBuf;
use std::process::{Command, Output};

pub use coordinator::Coordinator;
pub use dblock::DbLock;
pub use netlab::Lab;

/// Path of a workspace binary built into the same target directory as the running test.
///
/// Panics with a hint when it is missing: run `cargo build --workspace --bins` first
/// (the README's test command does).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (tests/run.sh does)",
        path.display()
    );
    path
}

/// Runs the `segwire` CLI with `args` and returns its output.
pub fn cli(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(bin("segwire"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SEGWIRE_CONFIG")
        .output()
        .expect("run segwire")
}

/// Runs the CLI and returns stdout, panicking with stderr when it fails.
pub fn cli_ok(config: &std::path::Path, args: &[&str]) -> String {
    let out = cli(config, args);
    assert!(
        out.status.success(),
        "segwire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
