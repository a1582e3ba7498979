//! The node agent's control socket `DIR/agent.sock`: one JSON request line, one JSON
//! answer line.
//!
//! Only root may use it (the socket is 0600 in a 0700 directory). `segwire-node attach`,
//! `detach` and `status` and the CNI plugin `segwire-cni` are clients; `segwire-node run`
//! serves it. This crate holds the wire types and a blocking client, so the plugin stays a
//! small binary without an async runtime.

pub mod status;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use segwire_proto::api::Labels;
use serde::{Deserialize, Serialize};

use crate::status::AgentStatus;

/// How long a client waits for the agent by default (an attach talks to the coordinator).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Which container a member was attached for, and through what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRef {
    /// The container id (the runtime's full id, or CNI's `CNI_CONTAINERID`).
    pub id: String,
    /// The container name, when the runtime gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who attached it: `cni` (the plugin; CNI GC may collect it), `podman` or `docker`
    /// (`attach --container`).
    pub runtime: String,
}

/// The runtime name the CNI plugin records in [`ContainerRef::runtime`].
pub const CNI_RUNTIME: &str = "cni";

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Attach a workload to a segment (idempotent: an attached workload is answered as is).
    Attach {
        /// Segment name.
        segment: String,
        /// Workload in wire form (`host`, `netns:NAME`, `path:P`, `pid:N`).
        workload: String,
        /// Member name (the coordinator picks one if absent).
        #[serde(default)]
        name: Option<String>,
        /// Labels asked for.
        #[serde(default)]
        labels: Labels,
        /// Interface name in the workload (default `sw-<segment>`; CNI passes `CNI_IFNAME`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
        /// The container this workload belongs to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<ContainerRef>,
    },
    /// Detach a workload from a segment.
    Detach {
        /// Segment name.
        segment: String,
        /// Workload in wire form.
        workload: String,
    },
    /// Detach the members of a container (CNI DEL, `detach --container`). Matching nothing
    /// is not an error: the answer lists what was detached.
    DetachContainer {
        /// Container id, an id prefix of 12 or more characters, or the container name.
        container: String,
        /// Only the member in this segment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segment: Option<String>,
        /// Only the member with this interface name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// Verify that a container's member runs with its interface and address (CNI CHECK).
    Check {
        /// Container id.
        container: String,
        /// Segment.
        segment: String,
        /// Interface name in the container.
        interface: String,
    },
    /// Detach the CNI-attached members of `segment` whose container id is not in `valid`
    /// (CNI GC).
    Gc {
        /// Segment.
        segment: String,
        /// Container ids still in use.
        valid: Vec<String>,
    },
    /// Members, peers and counters.
    Status,
}

/// The agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// A workload was attached (or already was), or passed a check.
    Attached(Box<Attached>),
    /// A workload was detached.
    Detached {
        /// Member id.
        id: String,
        /// Interface removed.
        interface: String,
    },
    /// The members detached by `DetachContainer` or `Gc` (maybe none).
    DetachedMembers {
        /// What was detached.
        members: Vec<DetachedMember>,
    },
    /// The agent's status.
    Status(Box<AgentStatus>),
    /// The request failed; one sentence.
    Error {
        /// What went wrong.
        message: String,
        /// Whether the same request may succeed later unchanged (the coordinator could not
        /// be reached, or the member did not come up in time).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retry: bool,
    },
}

/// The answer to an attach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attached {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment.
    pub segment: String,
    /// Workload.
    pub workload: String,
    /// Interface name in the workload.
    pub interface: String,
    /// Overlay IPv4 address; empty on an IPv6-only segment.
    pub address: String,
    /// The segment's IPv4 network (the IPv4 route in the workload); empty until a netmap
    /// lists the member, and on an IPv6-only segment.
    #[serde(default)]
    pub cidr: String,
    /// Overlay IPv6 address, on a segment with an IPv6 prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// The segment's IPv6 prefix (the IPv6 route in the workload), once a netmap lists
    /// the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr6: Option<String>,
    /// UDP listen port in the host namespace.
    pub listen_port: u16,
    /// The member's public key.
    pub public_key: String,
    /// Whether the interface and data path are up now (false: they come up with the next netmap).
    pub up: bool,
    /// The container, if the member belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
}

/// One member a `DetachContainer` or `Gc` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedMember {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment.
    pub segment: String,
    /// Interface removed.
    pub interface: String,
}

/// Why a control request failed on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody answers on the socket.
    #[error("the agent is not running (nothing answers on {path}); is `segwire-node run` running? start it with systemctl start segwire-node or run it in the foreground")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket exists but may not be used.
    #[error("permission denied on {path}: the control socket is for root only; run this command as root")]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// Talking to the agent failed.
    #[error("the agent on {path} did not answer properly: {detail}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Sends one request to the agent listening on `socket` and returns its answer, waiting
/// at most [`CLIENT_TIMEOUT`].
///
/// # Errors
/// [`ControlError`].
pub fn call(socket: &Path, request: &Request) -> Result<Response, ControlError> {
    call_with_timeout(socket, request, CLIENT_TIMEOUT)
}

/// [`call`] with a chosen wait for the answer.
///
/// # Errors
/// [`ControlError`].
pub fn call_with_timeout(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ControlError> {
    let path = socket.to_owned();
    let protocol = |detail: String| ControlError::Protocol {
        path: path.clone(),
        detail,
    };
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => ControlError::PermissionDenied { path: path.clone() },
        _ => ControlError::NotRunning { path: path.clone() },
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| protocol(e.to_string()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .map_err(|e| protocol(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| protocol(e.to_string()))?;
    if answer.is_empty() {
        return Err(protocol("it closed the connection".into()));
    }
    serde_json::from_str(&answer).map_err(|e| protocol(e.to_string()))
}

/// Whether an agent answers on `socket`.
#[must_use]
pub fn is_answering(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r = Request::Attach {
            segment: "web".into(),
            workload: "netns:ca".into(),
            name: None,
            labels: Labels::new(),
            interface: None,
            container: None,
        };
        let text = serde_json::to_string(&r).expect("json");
        assert_eq!(
            text,
            r#"{"op":"attach","segment":"web","workload":"netns:ca","name":null,"labels":{}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).expect("back"), r);
        let status: Request = serde_json::from_str(r#"{"op":"status"}"#).expect("status");
        assert_eq!(status, Request::Status);
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        let del: Request =
            serde_json::from_str(r#"{"op":"detach_container","container":"abc"}"#).expect("del");
        assert_eq!(
            del,
            Request::DetachContainer {
                container: "abc".into(),
                segment: None,
                interface: None
            }
        );
    }

    #[test]
    fn no_agent_is_a_clear_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = call(&tmp.path().join("agent.sock"), &Request::Status).expect_err("no agent");
        assert!(matches!(err, ControlError::NotRunning { .. }));
        assert!(err.to_string().contains("segwire-node run"), "{err}");
    }
}
