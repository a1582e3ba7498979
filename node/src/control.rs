//! Serving the control socket `DIR/agent.sock` (the protocol is `segwire-control`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

pub use segwire_control::{
    call, is_answering, Attached, ContainerRef, DetachedMember, Request, Response, CNI_RUNTIME,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

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
        retry: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(answer, Response::Error { message, .. } if message == "got Status"));
    }
}
