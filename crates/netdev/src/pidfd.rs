//! Waiting for a process to exit without polling: a pidfd (`pidfd_open(2)`, Linux 5.3)
//! becomes readable when the process it refers to exits.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A handle on a running process that can be awaited until it exits.
#[derive(Debug)]
pub struct ProcessWatch {
    fd: AsyncFd<OwnedFd>,
}

impl ProcessWatch {
    /// Opens a pidfd for `pid` and registers it with the current tokio runtime.
    ///
    /// # Errors
    /// `ESRCH` when no such process exists, `ENOSYS` on kernels without pidfds, or the
    /// registration error.
    pub fn open(pid: u32) -> io::Result<Self> {
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = i32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: `raw` is a descriptor the kernel just gave us and nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `OwnedFd` owns the descriptor, and `ProcessWatch` never closes or
        // replaces it while the `AsyncFd` holds it.
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self { fd })
    }

    /// Resolves once the process has exited.
    ///
    /// # Errors
    /// The error of the readiness wait.
    pub async fn exited(&self) -> io::Result<()> {
        let _guard = self.fd.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_when_the_process_exits_and_not_before() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .expect("sleep");
        let watch = ProcessWatch::open(child.id()).expect("pidfd");
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.exited()).await;
        assert!(early.is_err(), "resolved while the process runs");
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.exited())
            .await
            .expect("exit seen")
            .expect("wait");
        let _ = child.wait();
    }

    #[test]
    fn a_missing_process_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let _g = rt.enter();
        assert!(ProcessWatch::open(u32::MAX - 1).is_err());
    }
}
