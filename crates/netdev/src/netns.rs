//! Network namespaces: where a workload lives, and running code inside one.
//!
//! A namespace switch (`setns(2)` with `CLONE_NEWNET`) affects only the calling thread, so
//! every helper here runs the caller's closure on a **dedicated, short-lived OS thread**
//! that enters the namespace first. Tokio worker threads never change namespace. Sockets,
//! TUN and netlink file descriptors opened on that thread stay bound to the namespace after
//! the thread ends, so the closure may return them for use from anywhere.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::thread::{self, JoinHandle};

/// Directory where `ip netns add NAME` mounts named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Longest file name Linux accepts (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A network namespace a workload lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Netns {
    /// The agent's own (host) namespace: strictly, the one the calling thread is in, which
    /// the job's thread inherits without any `setns(2)`.
    Current,
    /// A named namespace, `/run/netns/NAME` (as made by `ip netns add NAME`).
    Named(String),
    /// A namespace file, e.g. a bind mount or `/proc/PID/ns/net`.
    Path(PathBuf),
    /// The namespace of a process, `/proc/PID/ns/net`.
    Pid(u32),
}

/// What went wrong naming, opening or entering a network namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// A `--netns` value that names no namespace.
    #[error(
        "invalid --netns value {value:?}: {reason}; pass a namespace name (as listed by \
         `ip netns list`) or a path such as /proc/PID/ns/net"
    )]
    InvalidName {
        /// The value given.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A `--pid` value that is not a process id.
    #[error("invalid --pid value {value:?}: expected a process id (a positive integer)")]
    InvalidPid {
        /// The value given.
        value: String,
    },

    /// The namespace file does not exist.
    #[error("network namespace {netns} does not exist ({path} not found): {hint}")]
    NotFound {
        /// The namespace, as the user named it.
        netns: String,
        /// The file that was looked for.
        path: PathBuf,
        /// What to do about it.
        hint: &'static str,
    },

    /// The caller may not open or enter the namespace.
    #[error(
        "permission denied for network namespace {netns} ({path}): run segwire-node as root \
         (it needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    )]
    PermissionDenied {
        /// The namespace.
        netns: String,
        /// Its file.
        path: PathBuf,
    },

    /// The file exists but is not a network namespace.
    #[error(
        "{path} is not a network namespace (for {netns}); pass /run/netns/NAME or \
         /proc/PID/ns/net"
    )]
    NotANetns {
        /// The namespace.
        netns: String,
        /// Its file.
        path: PathBuf,
    },

    /// Opening the namespace file failed for another reason.
    #[error("could not open network namespace {netns} ({path}): {source}")]
    Open {
        /// The namespace.
        netns: String,
        /// Its file.
        path: PathBuf,
        /// The error from `open(2)`.
        #[source]
        source: io::Error,
    },

    /// `setns(2)` failed for another reason.
    #[error("could not enter network namespace {netns}: {source}")]
    Enter {
        /// The namespace.
        netns: String,
        /// The error from `setns(2)`.
        #[source]
        source: io::Error,
    },

    /// No thread (or no runtime on it) could be started to run the job.
    #[error("could not start a worker for network namespace {netns}: {source}")]
    Spawn {
        /// The namespace.
        netns: String,
        /// The error from the OS.
        #[source]
        source: io::Error,
    },

    /// The job running inside the namespace panicked.
    #[error("the job running inside network namespace {netns} panicked")]
    Panicked {
        /// The namespace.
        netns: String,
    },
}

impl Netns {
    /// Parses the CLI's `--netns NAME_OR_PATH`: a value containing `/` is a path, anything
    /// else the name of a namespace in `/run/netns`.
    ///
    /// # Errors
    /// [`NetnsError::InvalidName`] for an empty value, `.`, `..`, a NUL byte or a name
    /// longer than 255 bytes.
    pub fn from_netns_arg(value: &str) -> Result<Self, NetnsError> {
        let invalid = |reason| NetnsError::InvalidName {
            value: value.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(invalid("it is empty"));
        }
        if value.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        if value.contains('/') {
            return Ok(Self::Path(PathBuf::from(value)));
        }
        if value == "." || value == ".." {
            return Err(invalid("`.` and `..` are not namespace names"));
        }
        if value.len() > NAME_MAX {
            return Err(invalid("it is longer than 255 bytes"));
        }
        Ok(Self::Named(value.to_owned()))
    }

    /// Parses the CLI's `--pid PID`: the namespace of that process.
    ///
    /// # Errors
    /// [`NetnsError::InvalidPid`] unless `value` is a positive decimal integer.
    pub fn from_pid_arg(value: &str) -> Result<Self, NetnsError> {
        match value.parse::<u32>() {
            Ok(pid) if pid > 0 && !value.starts_with('+') => Ok(Self::Pid(pid)),
            _ => Err(NetnsError::InvalidPid {
                value: value.to_owned(),
            }),
        }
    }

    /// The namespace file, or `None` for [`Netns::Current`].
    #[must_use]
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Self::Current => None,
            Self::Named(name) => Some(PathBuf::from(NETNS_RUN_DIR).join(name)),
            Self::Path(path) => Some(path.clone()),
            Self::Pid(pid) => Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
        }
    }

    /// Whether this is the agent's own (host) namespace.
    #[must_use]
    pub fn is_current(&self) -> bool {
        matches!(self, Self::Current)
    }

    /// Checks that the namespace exists and can be opened, without entering it.
    ///
    /// # Errors
    /// As for [`Netns::run_blocking`] before the thread starts.
    pub fn check(&self) -> Result<(), NetnsError> {
        self.open().map(drop)
    }

    /// Runs `f` on a new OS thread inside this namespace, blocking the calling thread until
    /// it returns. Use from synchronous code only; async code uses [`Netns::run`].
    ///
    /// # Errors
    /// When the namespace cannot be opened or entered, or `f` panics.
    pub fn run_blocking<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let label = self.to_string();
        self.spawn(move |entered| entered.map(|()| f()))?
            .join()
            .map_err(|_| NetnsError::Panicked { netns: label })?
    }

    /// Runs `f` on a new OS thread inside this namespace and awaits its result without
    /// blocking the async runtime.
    ///
    /// # Errors
    /// When the namespace cannot be opened or entered, or `f` panics.
    pub async fn run<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(move |entered| {
            // The receiver is gone only when the caller stopped waiting.
            let _ = tx.send(entered.map(|()| f()));
        })?;
        rx.await.map_err(|_| NetnsError::Panicked {
            netns: self.to_string(),
        })?
    }

    /// Runs the future made by `make` to completion on a new OS thread inside this
    /// namespace, on a current-thread tokio runtime of its own (so sockets it opens, such
    /// as netlink's, are created inside the namespace), and awaits its output.
    ///
    /// Anything registered with that runtime (tasks, `AsyncFd`s) dies with it when the job
    /// ends: return plain file descriptors and register them with the caller's runtime.
    ///
    /// # Errors
    /// When the namespace cannot be opened or entered, the runtime cannot be built, or the
    /// job panics.
    pub async fn run_future<F, Fut, T>(&self, make: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let label = self.to_string();
        self.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| NetnsError::Spawn {
                    netns: label,
                    source,
                })?;
            Ok(runtime.block_on(make()))
        })
        .await?
    }

    /// Opens the namespace file (`None` for the current namespace).
    fn open(&self) -> Result<Option<File>, NetnsError> {
        let Some(path) = self.path() else {
            return Ok(None);
        };
        File::open(&path).map(Some).map_err(|source| {
            let netns = self.to_string();
            match source.kind() {
                io::ErrorKind::NotFound => NetnsError::NotFound {
                    netns,
                    path,
                    hint: self.not_found_hint(),
                },
                io::ErrorKind::PermissionDenied => NetnsError::PermissionDenied { netns, path },
                _ => NetnsError::Open {
                    netns,
                    path,
                    source,
                },
            }
        })
    }

    fn not_found_hint(&self) -> &'static str {
        match self {
            Self::Current => "",
            Self::Named(_) => "check `ip netns list`, or create it with `ip netns add NAME`",
            Self::Path(_) => "check the path; for a process use --pid PID",
            Self::Pid(_) => "no such process; check the container's PID",
        }
    }

    /// Starts a thread that enters the namespace and then calls `job` with the outcome.
    fn spawn<J, R>(&self, job: J) -> Result<JoinHandle<R>, NetnsError>
    where
        J: FnOnce(Result<(), NetnsError>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.open()?;
        let netns = self.to_string();
        let path = self.path();
        thread::Builder::new()
            .name("sw-netns".to_owned())
            .spawn(move || {
                let entered = match (file, path) {
                    (Some(file), Some(path)) => enter(&file, netns, path),
                    _ => Ok(()),
                };
                job(entered)
            })
            .map_err(|source| NetnsError::Spawn {
                netns: self.to_string(),
                source,
            })
    }
}

/// Moves the calling thread into the network namespace `file` refers to.
fn enter(file: &File, netns: String, path: PathBuf) -> Result<(), NetnsError> {
    // SAFETY: `file` is an open descriptor for the whole call; setns(2) only reads it and
    // changes the namespace of this (dedicated) thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    Err(match source.raw_os_error() {
        Some(libc::EINVAL) => NetnsError::NotANetns { netns, path },
        Some(libc::EPERM) => NetnsError::PermissionDenied { netns, path },
        _ => NetnsError::Enter { netns, source },
    })
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("the host namespace"),
            Self::Named(name) => write!(f, "netns {name}"),
            Self::Path(path) => write!(f, "netns {}", path.display()),
            Self::Pid(pid) => write!(f, "the netns of pid {pid}"),
        }
    }
}

#[cfg(test)]
mod tests;
