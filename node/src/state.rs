//! The node's files in the state directory (mode 0700):
//!
//! - `state.json` (0600): the enrolment (node id, name, coordinator URL, CA pin,
//!   credential), the node identity key and the local members with their private keys;
//! - `netmap.json` (0600): the last netmap applied, so the agent serves it again after a
//!   restart while the coordinator is unreachable;
//! - `agent.sock` (0600): the control socket of the running agent.
//!
//! Files are written atomically (a temporary file in the same directory, fsync, rename).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use segwire_proto::api::Labels;
use segwire_proto::netmap::NetMap;
use segwire_proto::CaPin;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::control::ContainerRef;
use crate::keys::PrivateKey;
use crate::workload::{NetnsId, Workload};

/// The enrolment and members file.
pub const STATE_FILE: &str = "state.json";
/// The last applied netmap.
pub const NETMAP_FILE: &str = "netmap.json";
/// The control socket.
pub const SOCKET_FILE: &str = "agent.sock";
/// Version of the `state.json` layout.
pub const STATE_FORMAT: u32 = 1;

/// What can go wrong with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No `state.json`: the node never joined.
    #[error("this node has not joined a coordinator ({path} does not exist); run `segwire-node join TOKEN` first")]
    NotJoined {
        /// The missing file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file is not what the agent wrote.
    #[error("{path} is damaged ({detail}); restore it from a backup or re-join with `segwire-node join --force TOKEN`")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file or the directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Everything the node keeps about itself (`state.json`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// Layout version ([`STATE_FORMAT`]).
    pub format: u32,
    /// Node id given by the coordinator.
    pub node_id: String,
    /// Node name.
    pub name: String,
    /// Coordinator base URL (the one the join token named first).
    pub coordinator_url: String,
    /// Every coordinator sharing the database, as the token and then the last netmap
    /// listed them: the agent moves to the next when its coordinator stops answering.
    /// Empty in the state of an older agent: then `coordinator_url` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coordinator_urls: Vec<String>,
    /// Pin of the coordinator's CA: the only way the node trusts it.
    pub ca_pin: CaPin,
    /// Bearer credential for the node API. Secret.
    pub credential: String,
    /// The node identity key (its public half was sent at enrolment). Secret.
    pub identity_key: PrivateKey,
    /// The underlay address given with `join --endpoint`, reported instead of the host's.
    #[serde(default)]
    pub endpoint: Option<IpAddr>,
    /// Segments the token granted.
    #[serde(default)]
    pub segments: Vec<String>,
    /// Labels the token stamps on members.
    #[serde(default)]
    pub labels: Labels,
    /// The members attached on this node.
    #[serde(default)]
    pub members: Vec<LocalMember>,
}

/// One member attached on this node, with its private key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalMember {
    /// Member id given by the coordinator.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment name.
    pub segment: String,
    /// Where its interface lives.
    pub workload: Workload,
    /// IPv4 overlay address given by the coordinator; `None` on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// IPv6 overlay address given by the coordinator, on a segment with an IPv6 prefix
    /// (a prefix added later shows in the netmap, not here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// UDP port of its WireGuard socket in the host namespace.
    pub listen_port: u16,
    /// Its WireGuard static key. Secret; only the public key goes to the coordinator.
    pub private_key: PrivateKey,
    /// Labels asked for at attach time.
    #[serde(default)]
    pub labels: Labels,
    /// Whether a netmap has listed it: once listed, a netmap without it means the
    /// coordinator removed it.
    #[serde(default)]
    pub confirmed: bool,
    /// Interface name in the workload when not the default `sw-<segment>` (CNI's
    /// `CNI_IFNAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The container the member was attached for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
    /// Identity of the workload's network namespace when it was attached: a namespace of
    /// that name or process with another identity is another workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<NetnsId>,
}

impl LocalMember {
    /// The interface name in the workload.
    #[must_use]
    pub fn interface(&self) -> String {
        self.interface
            .clone()
            .unwrap_or_else(|| segwire_netdev::interface_name(&self.segment))
    }
}

impl NodeState {
    /// The coordinator URLs to try, in order: the saved list, or the one URL of an
    /// older state file.
    #[must_use]
    pub fn coordinators(&self) -> Vec<String> {
        if self.coordinator_urls.is_empty() {
            vec![self.coordinator_url.clone()]
        } else {
            self.coordinator_urls.clone()
        }
    }
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .field("coordinator_url", &self.coordinator_url)
            .field("coordinator_urls", &self.coordinator_urls)
            .field("ca_pin", &self.ca_pin)
            .field("credential", &"<redacted>")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LocalMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMember")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("segment", &self.segment)
            .field("workload", &self.workload)
            .field("address", &self.address)
            .field("address6", &self.address6)
            .field("listen_port", &self.listen_port)
            .finish_non_exhaustive()
    }
}

impl NodeState {
    /// The member of `segment` for `workload`, if attached.
    #[must_use]
    pub fn member(&self, segment: &str, workload: &Workload) -> Option<&LocalMember> {
        self.members
            .iter()
            .find(|m| m.segment == segment && &m.workload == workload)
    }
}

/// The state directory and its files.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The directory `dir` (not touched yet).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `DIR/state.json`.
    #[must_use]
    pub fn state_file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// `DIR/netmap.json`.
    #[must_use]
    pub fn netmap_file(&self) -> PathBuf {
        self.dir.join(NETMAP_FILE)
    }

    /// `DIR/agent.sock`.
    #[must_use]
    pub fn socket_file(&self) -> PathBuf {
        self.dir.join(SOCKET_FILE)
    }

    /// Creates the directory if needed and makes it 0700.
    ///
    /// # Errors
    /// [`StateError::Write`].
    pub fn ensure(&self) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            path: self.dir.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(write)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(write)
    }

    /// Whether `state.json` exists.
    #[must_use]
    pub fn is_joined(&self) -> bool {
        self.state_file().exists()
    }

    /// Reads `state.json`.
    ///
    /// # Errors
    /// [`StateError::NotJoined`], [`StateError::Read`], [`StateError::Parse`].
    pub fn load_state(&self) -> Result<NodeState, StateError> {
        let path = self.state_file();
        match read_json::<NodeState>(&path)? {
            None => Err(StateError::NotJoined { path }),
            Some(state) if state.format != STATE_FORMAT => Err(StateError::Parse {
                path,
                detail: format!("unknown format {}", state.format),
            }),
            Some(state) => Ok(state),
        }
    }

    /// Writes `state.json` atomically, mode 0600.
    ///
    /// # Errors
    /// [`StateError::Write`].
    pub fn save_state(&self, state: &NodeState) -> Result<(), StateError> {
        self.ensure()?;
        write_json(&self.state_file(), state)
    }

    /// Reads `netmap.json`; `None` when there is none yet.
    ///
    /// # Errors
    /// [`StateError::Read`], [`StateError::Parse`].
    pub fn load_netmap(&self) -> Result<Option<NetMap>, StateError> {
        read_json(&self.netmap_file())
    }

    /// Writes `netmap.json` atomically, mode 0600.
    ///
    /// # Errors
    /// [`StateError::Write`].
    pub fn save_netmap(&self, netmap: &NetMap) -> Result<(), StateError> {
        self.ensure()?;
        write_json(&self.netmap_file(), netmap)
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Parse {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

/// Writes `value` as JSON to `path` through a 0600 temporary file and a rename.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let write = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| write(io::Error::other(e)))?;
    text.push(b'\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write)?;
    file.write_all(&text).map_err(write)?;
    file.sync_all().map_err(write)?;
    drop(file);
    fs::rename(&tmp, path).map_err(write)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeState {
        NodeState {
            format: STATE_FORMAT,
            node_id: "n1".into(),
            name: "host-a".into(),
            coordinator_url: "https://198.18.0.1:7443".into(),
            coordinator_urls: Vec::new(),
            ca_pin: CaPin([1; 32]),
            credential: "swn_secret".into(),
            identity_key: PrivateKey::generate(),
            endpoint: None,
            segments: vec!["web".into()],
            labels: Labels::new(),
            members: vec![LocalMember {
                id: "m1".into(),
                name: "host-a-ca".into(),
                segment: "web".into(),
                workload: Workload::Netns("ca".into()),
                address: Some(Ipv4Addr::new(100, 64, 1, 2)),
                address6: None,
                listen_port: 51820,
                private_key: PrivateKey::generate(),
                labels: Labels::new(),
                confirmed: true,
                interface: None,
                container: None,
                netns_id: None,
            }],
        }
    }

    #[test]
    fn state_round_trips_with_0600_and_0700() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::new(tmp.path().join("state"));
        assert!(matches!(
            dir.load_state(),
            Err(StateError::NotJoined { .. })
        ));
        let state = sample();
        dir.save_state(&state).expect("save");
        assert_eq!(dir.load_state().expect("load"), state);
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.state_file()), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
        assert!(!format!("{state:?}").contains("swn_secret"));
        assert!(dir.load_netmap().expect("no netmap").is_none());
    }

    #[test]
    fn damaged_state_is_a_clear_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::new(tmp.path());
        fs::write(dir.state_file(), b"{not json").expect("write");
        let err = dir.load_state().expect_err("damaged");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
