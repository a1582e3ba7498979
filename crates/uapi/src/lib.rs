//! The WireGuard cross-platform userspace API (UAPI, <https://www.wireguard.com/xplatform/>)
//! on one Unix socket per member, so `wg show` lists segwire's interfaces.
//!
//! This crate is the protocol, as pure functions: [`parse_request`] reads one request,
//! [`encode_device`] writes the answer to `get=1`, [`socket_name`] names a member's
//! socket. The agent's `uapi::server` moves the bytes.
//!
//! What is shown and what is not:
//! - `get=1` answers `listen_port` and, per peer, `public_key`, `preshared_key` (all
//!   zeros), `protocol_version`, `endpoint`, `last_handshake_time_sec/nsec`, `tx_bytes`,
//!   `rx_bytes`, `persistent_keepalive_interval` and `allowed_ip`. The member's
//!   `private_key` is never sent (so `wg show` prints no public key for the interface;
//!   `segwire-node status` does), and the segment's preshared key is never revealed.
//! - `set=1` is refused with `errno=1` (EPERM): the coordinator owns these interfaces.
//!   A `set=1` that changes nothing (no keys) is accepted as a no-op.
//!
//! Keys are lowercase hex in this protocol (not base64 as in `wg` configuration files).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use thiserror::Error;

/// Where `wg` looks for userspace interfaces (`<name>.sock`).
pub const DEFAULT_DIR: &str = "/var/run/wireguard";
/// Environment variable that moves the socket directory (`off` disables the sockets).
pub const DIR_ENV: &str = "SEGWIRE_UAPI_DIR";
/// Longest socket name `wg` accepts as an interface name (Linux's IFNAMSIZ - 1).
pub const MAX_NAME: usize = 15;
/// Member-id characters a socket name starts with; more are used on a collision.
const ID_CHARS: usize = 4;
/// `errno` for a refused `set=1`.
pub const EPERM: i32 = 1;
/// `errno` when the member's data path is not running.
pub const ENODEV: i32 = 19;
/// `errno` for a request that is neither `get=1` nor `set=1`.
pub const EINVAL: i32 = 22;

/// A UAPI request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get=1`: report the device.
    Get,
    /// `set=1` with the names of the keys it sets (values are dropped unread: they may be
    /// private keys).
    Set {
        /// Keys in order, e.g. `["private_key", "public_key", "allowed_ip"]`.
        keys: Vec<String>,
    },
}

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UapiError {
    /// The first line is neither `get=1` nor `set=1`.
    #[error("unknown operation {0:?}; expected get=1 or set=1")]
    UnknownOperation(String),
    /// A line has no `=`.
    #[error("line {0} is not key=value")]
    NotKeyValue(usize),
    /// `get=1` must be followed by an empty line only.
    #[error("get=1 takes no arguments")]
    GetWithArguments,
    /// The request has no lines.
    #[error("empty request")]
    Empty,
}

/// Parses one request: its lines without the terminating empty line.
///
/// # Errors
/// [`UapiError`] for anything but a well-formed `get=1` or `set=1`.
pub fn parse_request<S: AsRef<str>>(lines: &[S]) -> Result<Request, UapiError> {
    let (first, rest) = lines.split_first().ok_or(UapiError::Empty)?;
    match first.as_ref() {
        "get=1" if rest.is_empty() => Ok(Request::Get),
        "get=1" => Err(UapiError::GetWithArguments),
        "set=1" => {
            let keys = rest
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    line.as_ref()
                        .split_once('=')
                        .map(|(k, _)| k.to_owned())
                        .ok_or(UapiError::NotKeyValue(i + 2))
                })
                .collect::<Result<_, _>>()?;
            Ok(Request::Set { keys })
        }
        other => Err(UapiError::UnknownOperation(
            other.chars().take(32).collect(),
        )),
    }
}

/// One peer as `get=1` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Static public key.
    pub public_key: [u8; 32],
    /// Current endpoint.
    pub endpoint: Option<SocketAddr>,
    /// Allowed IPs.
    pub allowed_ips: Vec<IpNet>,
    /// Last completed handshake, as time since the Unix epoch.
    pub last_handshake: Option<Duration>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Persistent keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
}

/// The device as `get=1` reports it (never with a private or preshared key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// UDP port the member listens on.
    pub listen_port: u16,
    /// Its peers.
    pub peers: Vec<PeerInfo>,
}

/// The answer to `get=1`: the device, then `errno=0` and the empty line.
#[must_use]
pub fn encode_device(dev: &DeviceInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "listen_port={}", dev.listen_port);
    for p in &dev.peers {
        let _ = writeln!(out, "public_key={}", hex::encode(p.public_key));
        // Zeros: the segment's key is never revealed, and zeros make `wg` show none.
        let _ = writeln!(out, "preshared_key={}", "0".repeat(64));
        out.push_str("protocol_version=1\n");
        if let Some(ep) = p.endpoint {
            let _ = writeln!(out, "endpoint={ep}");
        }
        let hs = p.last_handshake.unwrap_or_default();
        let _ = writeln!(out, "last_handshake_time_sec={}", hs.as_secs());
        let _ = writeln!(out, "last_handshake_time_nsec={}", hs.subsec_nanos());
        let _ = writeln!(out, "tx_bytes={}", p.tx_bytes);
        let _ = writeln!(out, "rx_bytes={}", p.rx_bytes);
        let _ = writeln!(
            out,
            "persistent_keepalive_interval={}",
            p.persistent_keepalive.unwrap_or(0)
        );
        for ip in &p.allowed_ips {
            let _ = writeln!(out, "allowed_ip={ip}");
        }
    }
    out.push_str(&encode_errno(0));
    out
}

/// `errno=N` and the empty line that ends every answer.
#[must_use]
pub fn encode_errno(errno: i32) -> String {
    format!("errno={errno}\n\n")
}

/// The errno for a `set=1` with these keys: a no-op (no keys) is allowed, any change is
/// refused (the coordinator owns the interface).
#[must_use]
pub fn set_errno(keys: &[String]) -> i32 {
    if keys.is_empty() {
        0
    } else {
        EPERM
    }
}

/// Whether a socket name (without `.sock`) has the shape [`socket_name`] gives: an
/// interface name, a dot and at least [`ID_CHARS`] lowercase hex id characters.
#[must_use]
pub fn looks_like_member_socket(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.rsplit_once('.').is_some_and(|(iface, id)| {
            !iface.is_empty()
                && id.len() >= ID_CHARS
                && id
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

/// The socket name (without `.sock`) of a member: its interface name cut to fit, a dot
/// and the first characters of its member id, at most [`MAX_NAME`] characters, e.g.
/// `sw-web.3f2a`. Two containers' `sw-web` on one host differ by member id; when the
/// short form is `taken`, more id characters are used. `None` when every form is taken.
#[must_use]
pub fn socket_name(
    interface: &str,
    member_id: &str,
    taken: impl Fn(&str) -> bool,
) -> Option<String> {
    let id: String = member_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let iface: String = interface
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    (ID_CHARS..=id.len().min(MAX_NAME - 2)).find_map(|n| {
        let head: String = iface.chars().take(MAX_NAME - 1 - n).collect();
        let name = format!("{head}.{}", &id[..n]);
        (!taken(&name)).then_some(name)
    })
}
