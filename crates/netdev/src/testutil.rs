//! Helpers for the privileged tests: throw-away network namespaces.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether privileged tests can run (root, iproute2); skipped visibly otherwise, and a
/// failure under CI (`segwire_testkit::skip::require`).
pub fn privileged(test: &str) -> bool {
    use segwire_testkit::skip::{require, Need};
    require(test, &[Need::Root, Need::Program("ip")])
}

/// A network namespace made for one test, deleted on drop (even when the test fails).
pub struct TestNetns {
    /// Its name in /run/netns.
    pub name: String,
}

impl TestNetns {
    /// Creates `swt-<pid>-<rand>-<tag>`.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let salt = (nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37)) & 0xffff;
        let name = format!("swt-{}-{salt:04x}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        Self { name }
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `ip ARGS`, panicking on failure, and returns its stdout.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
