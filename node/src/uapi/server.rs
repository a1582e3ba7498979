//! The UAPI sockets: one listener task per running member, answering `get=1` from the
//! member's data path status and refusing `set=1`. Sockets are mode 0600 (root only,
//! like wireguard-go's) and are removed when the member stops and when the agent exits.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    encode_device, encode_errno, parse_request, set_errno, socket_name, DeviceInfo, PeerInfo,
    Request, DEFAULT_DIR, DIR_ENV, EINVAL, ENODEV,
};
use crate::member::{MemberCmd, MemberStats};

/// Longest request accepted (a `set=1` with many peers is still far below).
const MAX_REQUEST: usize = 1 << 20;
/// How long a `get=1` waits for the data path.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// The sockets of the running members, by member id.
#[derive(Debug)]
pub struct Sockets {
    dir: Option<PathBuf>,
    open: HashMap<String, Served>,
}

#[derive(Debug)]
struct Served {
    name: String,
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Sockets {
    /// Sockets in `$SEGWIRE_UAPI_DIR` or `/var/run/wireguard`; none when it is `off`.
    #[must_use]
    pub fn from_env() -> Self {
        let dir = match std::env::var(DIR_ENV) {
            Ok(v) if v == "off" => None,
            Ok(v) if !v.is_empty() => Some(PathBuf::from(v)),
            _ => Some(PathBuf::from(DEFAULT_DIR)),
        };
        Sockets {
            dir,
            open: HashMap::new(),
        }
    }

    /// Removes the sockets in the directory that look like members' (`<interface>.<id>`)
    /// and that no process serves any more: what an agent killed with SIGKILL left
    /// behind (a member it was starting or stopping included). A live socket, another
    /// agent's among them, is never touched. Returns the names removed.
    pub fn sweep_dead(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".sock") else {
                continue;
            };
            if !super::looks_like_member_socket(stem) {
                continue;
            }
            let path = entry.path();
            let dead = matches!(
                std::os::unix::net::UnixStream::connect(&path),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
            );
            if dead && std::fs::remove_file(&path).is_ok() {
                tracing::info!(socket = %path.display(), "removed a UAPI socket nobody serves (left by an agent that was killed)");
                removed.push(stem.to_owned());
            }
        }
        removed
    }

    /// Sockets in `dir` (tests use a temporary directory).
    #[cfg(test)]
    #[must_use]
    pub fn in_dir(dir: PathBuf) -> Self {
        Sockets {
            dir: Some(dir),
            open: HashMap::new(),
        }
    }

    /// The socket name (`wg show NAME`) of a member, if it has a socket.
    #[must_use]
    pub fn name_of(&self, member_id: &str) -> Option<&str> {
        self.open.get(member_id).map(|s| s.name.as_str())
    }

    /// Serves the UAPI for a member whose data path takes `commands`. A failure is
    /// logged and leaves the member running without a socket.
    pub fn open(
        &mut self,
        member_id: &str,
        interface: &str,
        listen_port: u16,
        commands: mpsc::Sender<MemberCmd>,
    ) {
        self.close(member_id);
        let Some(dir) = &self.dir else { return };
        let Some(name) = socket_name(interface, member_id, |n| {
            self.open.values().any(|s| s.name == n)
        }) else {
            tracing::warn!(
                member_id,
                interface,
                "no free UAPI socket name; `wg show` will not list this member"
            );
            return;
        };
        let path = dir.join(format!("{name}.sock"));
        match bind(dir, &path) {
            Ok(listener) => {
                tracing::info!(member_id, socket = %path.display(), "serving the WireGuard UAPI (`wg show {name}`)");
                let task = tokio::spawn(serve(listener, listen_port, commands));
                self.open
                    .insert(member_id.to_owned(), Served { name, path, task });
            }
            Err(e) => {
                tracing::warn!(member_id, socket = %path.display(), error = %e, "cannot serve the WireGuard UAPI; `wg show` will not list this member");
            }
        }
    }

    /// Stops serving a member's socket and removes it.
    pub fn close(&mut self, member_id: &str) {
        if let Some(s) = self.open.remove(member_id) {
            tracing::debug!(member_id, socket = %s.path.display(), "UAPI socket closed");
        }
    }

    /// Removes every socket.
    pub fn close_all(&mut self) {
        self.open.clear();
    }
}

/// Binds `path` (mode 0600), replacing a stale socket but never a live one.
fn bind(dir: &Path, path: &Path) -> io::Result<UnixListener> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process serves this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn serve(listener: UnixListener, listen_port: u16, commands: mpsc::Sender<MemberCmd>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let commands = commands.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, listen_port, commands).await {
                        tracing::debug!(error = %e, "UAPI connection ended with an error");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "UAPI accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers requests on one connection until the client closes it.
async fn connection(
    stream: UnixStream,
    listen_port: u16,
    commands: mpsc::Sender<MemberCmd>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some(lines) = read_request(&mut read).await? else {
            return Ok(());
        };
        let answer = match parse_request(&lines) {
            Ok(Request::Get) => match status(&commands).await {
                Some(stats) => encode_device(&device(listen_port, &stats, SystemTime::now())),
                None => encode_errno(ENODEV),
            },
            Ok(Request::Set { keys }) => {
                let errno = set_errno(&keys);
                if errno != 0 {
                    // Key names only: values may be private keys.
                    tracing::warn!(keys = ?keys, "refused a UAPI set: the coordinator owns this interface; change it through segwire");
                }
                encode_errno(errno)
            }
            Err(e) => {
                tracing::debug!(error = %e, "bad UAPI request");
                write.write_all(encode_errno(EINVAL).as_bytes()).await?;
                return Ok(());
            }
        };
        write.write_all(answer.as_bytes()).await?;
    }
}

/// Reads lines up to the empty line; `None` at a clean end of stream.
async fn read_request<R: AsyncBufReadExt + Unpin>(read: &mut R) -> io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut total = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let n = read.read_line(&mut line).await?;
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        total += n;
        if total > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too long",
            ));
        }
        let text = line.trim_end_matches('\n');
        if text.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(text.to_owned());
    }
}

async fn status(commands: &mpsc::Sender<MemberCmd>) -> Option<MemberStats> {
    let (tx, rx) = oneshot::channel();
    commands.send(MemberCmd::Status(tx)).await.ok()?;
    tokio::time::timeout(STATUS_WAIT, rx).await.ok()?.ok()
}

/// The device view of a data path's status at wall-clock time `now`.
#[must_use]
pub fn device(listen_port: u16, stats: &MemberStats, now: SystemTime) -> DeviceInfo {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    DeviceInfo {
        listen_port,
        peers: stats
            .router
            .peers
            .iter()
            .map(|p| PeerInfo {
                public_key: *p.public_key.as_bytes(),
                endpoint: p.endpoint,
                allowed_ips: p.allowed_ips.clone(),
                last_handshake: p
                    .last_handshake_ago
                    .and_then(|ago| since_epoch.checked_sub(ago)),
                rx_bytes: p.traffic.rx_bytes,
                tx_bytes: p.traffic.tx_bytes,
                persistent_keepalive: p.persistent_keepalive,
            })
            .collect(),
    }
}
