//! Workloads: what a member is attached for (the host, or a container's network namespace).
//!
//! The wire form (`host`, `netns:NAME`, `path:/run/netns/x`, `pid:1234`) is what the
//! coordinator stores and what `state.json` keeps.

use std::fmt;
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
