//! Workloads: what a member is attached for (the host, or a container's network namespace).
//!
//! The wire form (`host`, `netns:NAME`, `path:/run/netns/x`, `pid:1234`) is what the
//! coordinator stores and what `state.json` keeps.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::str::FromStr;

use segwire_netdev::Netns;
use serde::{Deserialize, Serialize};

/// Where a member's interface lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Workload {
    /// The agent's own (host) namespace.
    Host,
    /// A named namespace in `/run/netns`.
    Netns(String),
    /// A namespace file such as a bind mount.
    Path(PathBuf),
    /// The namespace of a process.
    Pid(u32),
}

/// A workload string that is not `host`, `netns:NAME`, `path:PATH` or `pid:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workload {0:?} is not host, netns:NAME, path:PATH or pid:N")]
pub struct WorkloadParseError(String);

impl Workload {
    /// The network namespace the member's interface goes into.
    #[must_use]
    pub fn netns(&self) -> Netns {
        match self {
            Workload::Host => Netns::Current,
            Workload::Netns(name) => Netns::Named(name.clone()),
            Workload::Path(path) => Netns::Path(path.clone()),
            Workload::Pid(pid) => Netns::Pid(*pid),
        }
    }

    /// The workload of a namespace given on the command line.
    #[must_use]
    pub fn from_netns(netns: &Netns) -> Self {
        match netns {
            Netns::Current => Workload::Host,
            Netns::Named(name) => Workload::Netns(name.clone()),
            Netns::Path(path) => Workload::Path(path.clone()),
            Netns::Pid(pid) => Workload::Pid(*pid),
        }
    }
}

/// Identity of a network namespace: the device and inode of its nsfs file. A namespace
/// file that names another inode is another namespace (a container restarted, a
/// namespace deleted and made again under the same name, a process id reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsId {
    /// Device of the nsfs file.
    pub dev: u64,
    /// Inode of the nsfs file.
    pub ino: u64,
}

/// Whether an attached workload is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It is there (or it cannot be told now: only a clear answer detaches).
    Alive,
    /// It went away; one sentence why.
    Gone(String),
}

impl Workload {
    /// The identity of the workload's namespace now: `None` for the host.
    ///
    /// # Errors
    /// The error of `stat(2)` on the namespace file (`NotFound` once it is gone).
    pub fn netns_id(&self) -> io::Result<Option<NetnsId>> {
        let Some(path) = self.netns().path() else {
            return Ok(None);
        };
        let meta = std::fs::metadata(path)?;
        Ok(Some(NetnsId {
            dev: meta.dev(),
            ino: meta.ino(),
        }))
    }

    /// Whether the workload attached with namespace identity `recorded` still exists.
    #[must_use]
    pub fn liveness(&self, recorded: Option<NetnsId>) -> Liveness {
        if *self == Workload::Host {
            return Liveness::Alive;
        }
        judge(self, recorded, self.netns_id())
    }
}

/// The liveness verdict from the identity recorded at attach and what `stat(2)` says now.
fn judge(
    workload: &Workload,
    recorded: Option<NetnsId>,
    now: io::Result<Option<NetnsId>>,
) -> Liveness {
    match now {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Liveness::Gone(match workload {
            Workload::Pid(pid) => format!("process {pid} exited"),
            _ => format!("its network namespace ({workload}) was deleted"),
        }),
        Err(_) | Ok(None) => Liveness::Alive,
        Ok(Some(id)) => match recorded {
            Some(r) if r != id => Liveness::Gone(format!(
                "{workload} is now another network namespace (the old one is gone)"
            )),
            _ => Liveness::Alive,
        },
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Host => f.write_str("host"),
            Workload::Netns(name) => write!(f, "netns:{name}"),
            Workload::Path(path) => write!(f, "path:{}", path.display()),
            Workload::Pid(pid) => write!(f, "pid:{pid}"),
        }
    }
}

impl FromStr for Workload {
    type Err = WorkloadParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WorkloadParseError(s.chars().take(80).collect());
        if s == "host" {
            return Ok(Workload::Host);
        }
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        if value.is_empty() || value.contains('\0') {
            return Err(bad());
        }
        match kind {
            "netns" if !value.contains('/') => Ok(Workload::Netns(value.to_owned())),
            "path" if value.starts_with('/') => Ok(Workload::Path(PathBuf::from(value))),
            "pid" => match value.parse::<u32>() {
                Ok(pid) if pid > 0 => Ok(Workload::Pid(pid)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for Workload {
    type Error = WorkloadParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Workload> for String {
    fn from(w: Workload) -> Self {
        w.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_the_namespace_file() {
        let w = Workload::Netns("ca".into());
        let a = NetnsId { dev: 4, ino: 100 };
        let b = NetnsId { dev: 4, ino: 101 };
        let missing = || Err(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(judge(&w, Some(a), Ok(Some(a))), Liveness::Alive);
        assert_eq!(judge(&w, None, Ok(Some(b))), Liveness::Alive);
        assert!(
            matches!(judge(&w, Some(a), Ok(Some(b))), Liveness::Gone(m) if m.contains("another"))
        );
        assert!(
            matches!(judge(&w, Some(a), missing()), Liveness::Gone(m) if m.contains("deleted"))
        );
        let p = Workload::Pid(77);
        assert!(
            matches!(judge(&p, None, missing()), Liveness::Gone(m) if m.contains("process 77 exited"))
        );
        // A failure that says nothing about the namespace never detaches.
        let denied = Err(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(judge(&w, Some(a), denied), Liveness::Alive);
        assert_eq!(Workload::Host.liveness(None), Liveness::Alive);
    }

    #[test]
    fn a_missing_namespace_file_is_gone_and_a_live_one_is_alive() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("ns");
        std::fs::write(&file, b"").expect("write");
        let w = Workload::Path(file.clone());
        let id = w.netns_id().expect("stat");
        assert_eq!(w.liveness(id), Liveness::Alive);
        std::fs::remove_file(&file).expect("rm");
        assert!(matches!(w.liveness(id), Liveness::Gone(_)));
        let me = Workload::Pid(std::process::id());
        assert_eq!(
            me.liveness(me.netns_id().expect("own netns")),
            Liveness::Alive
        );
    }

    #[test]
    fn wire_form_round_trips() {
        for s in ["host", "netns:ca", "path:/run/netns/x", "pid:42"] {
            let w: Workload = s.parse().expect(s);
            assert_eq!(w.to_string(), s);
            assert_eq!(Workload::from_netns(&w.netns()), w);
        }
        for bad in [
            "",
            "netns:",
            "pid:0",
            "pid:x",
            "path:rel",
            "netns:a/b",
            "foo:bar",
        ] {
            assert!(bad.parse::<Workload>().is_err(), "{bad:?}");
        }
    }
}
