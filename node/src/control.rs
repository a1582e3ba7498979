//! The control socket `DIR/agent.sock`: one JSON request line, one JSON response line.
//!
//! Only root may use it (the socket is 0600 in a 0700 directory). `attach`, `detach` and
//! `status` are clients; `run` serves it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use segwire_proto::api::Labels;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::status::AgentStatus;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client waits for the agent (an attach talks to the coordinator).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Attach a workload to a segment.
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
    },
    /// Detach a workload from a segment.
    Detach {
        /// Segment name.
        segment: String,
        /// Workload in wire form.
        workload: String,
    },
    /// Members, peers and counters.
    Status,
}

/// The agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// A workload was attached (or already was).
    Attached(Attached),
    /// A workload was detached.
    Detached {
        /// Member id.
        id: String,
        /// Interface removed.
        interface: String,
    },
    /// The agent's status.
    Status(Box<AgentStatus>),
    /// The request failed; one sentence.
    Error {
        /// What went wrong.
        message: String,
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
    /// Overlay address.
    pub address: String,
    /// UDP listen port in the host namespace.
    pub listen_port: u16,
    /// The member's public key.
    pub public_key: String,
    /// Whether the interface and data path are up now (false: they come up with the next netmap).
    pub up: bool,
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

/// Sends one request to the agent listening on `socket` and returns its answer.
///
/// # Errors
/// [`ControlError`].
pub fn call(socket: &Path, request: &Request) -> Result<Response, ControlError> {
    let path = socket.to_owned();
    let protocol = |detail: String| ControlError::Protocol {
        path: path.clone(),
        detail,
    };
    let stream = StdUnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => ControlError::PermissionDenied { path: path.clone() },
        _ => ControlError::NotRunning { path: path.clone() },
    })?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
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
    StdUnixStream::connect(socket).is_ok()
}

/// Binds the control socket: refuses when another agent answers on it, removes a stale
/// one, and makes the new one 0600.
///
/// # Errors
/// An error saying another agent runs, or the bind error.
pub fn bind(socket: &Path) -> anyhow::Result<UnixListener> {
    if socket.exists() {
        if is_answering(socket) {
            anyhow::bail!(
                "another segwire-node agent is already running on {}; stop it first",
                socket.display()
            );
        }
        std::fs::remove_file(socket)
            .map_err(|e| anyhow::anyhow!("cannot remove the stale {}: {e}", socket.display()))?;
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| anyhow::anyhow!("cannot make {} private: {e}", socket.display()))?;
    Ok(listener)
}

/// A request from a client, with where to send the answer.
pub type Incoming = (Request, oneshot::Sender<Response>);

/// Accepts connections forever, forwarding each request to `tx`.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Incoming>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, tx.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, tx: mpsc::Sender<Incoming>) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let mut line = String::new();
    let response = match reader.read_line(&mut line).await {
        Ok(0) => return,
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if tx.send((request, reply)).await.is_err() {
                    error("the agent is shutting down")
                } else {
                    answer
                        .await
                        .unwrap_or_else(|_| error("the agent dropped the request"))
                }
            }
            Err(e) => error(&format!("bad request: {e}")),
        },
        Err(e) => error(&format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    let _ = write.write_all(&out).await;
}

fn error(message: &str) -> Response {
    Response::Error {
        message: message.to_owned(),
    }
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
    }

    #[tokio::test]
    async fn round_trip_over_a_socket_and_refuses_a_second_agent() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("agent.sock");
        let listener = bind(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel::<Incoming>(1);
        tokio::spawn(serve(listener, tx));
        tokio::spawn(async move {
            while let Some((req, reply)) = rx.recv().await {
                let _ = reply.send(error(&format!("got {req:?}")));
            }
        });
        assert!(bind(&path).is_err(), "a second agent must not start");
        let p = path.clone();
        let answer = tokio::task::spawn_blocking(move || call(&p, &Request::Status))
            .await
            .expect("join")
            .expect("call");
        assert!(matches!(answer, Response::Error { message } if message == "got Status"));
    }

    #[test]
    fn no_agent_is_a_clear_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = call(&tmp.path().join("agent.sock"), &Request::Status).expect_err("no agent");
        assert!(err.to_string().contains("segwire-node run"), "{err}");
    }
}
