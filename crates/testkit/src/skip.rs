//! Skipping a test that cannot run here, visibly, and never in CI.
//!
//! A test that needs root or a tool calls [`require`]. Outside CI a missing need prints
//! `SKIPPED <test>: <reason>` and appends the same line to the file named by
//! `SEGWIRE_SKIP_LOG` (tests/run.sh sets it and lists the skips with a count at the end).
//! When `CI` is set, a missing need fails the test with that sentence instead: CI
//! installs everything, so a skip there would only hide a broken setup.

use std::io::Write;
use std::process::Command;

/// Something a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Running as root (namespaces, TUN devices, podman).
    Root,
    /// A program on PATH.
    Program(&'static str),
}

/// Whether the test can run; see the module docs for what happens when it cannot.
///
/// # Panics
/// When `CI` is set and a need is missing.
pub fn require(test: &str, needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| missing(*n)).collect();
    if missing.is_empty() {
        return true;
    }
    let reason = missing.join(", ");
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run on this CI machine: {reason}; CI runs every test (`.ci/run` as root installs what they need)"
    );
    skip(test, &reason);
    false
}

/// Records that `test` was skipped for `reason` (stderr and `SEGWIRE_SKIP_LOG`).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("SEGWIRE_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn missing(need: Need) -> Option<String> {
    match need {
        Need::Root => (!is_root()).then(|| "needs root".to_owned()),
        Need::Program(p) => (!on_path(p)).then(|| format!("needs `{p}` on PATH")),
    }
}

/// Whether the effective user is root (read from /proc: no libc needed).
#[must_use]
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_named_and_a_present_one_is_not() {
        assert_eq!(
            missing(Need::Program("segwire-no-such-tool")),
            Some("needs `segwire-no-such-tool` on PATH".into())
        );
        assert_eq!(missing(Need::Program("sh")), None);
    }
}
