//! Blocking readiness for a data-path thread: one level-triggered `epoll(7)` instance over
//! a few descriptors ([`Poller`]), an `eventfd(2)` other threads ring to wake it
//! ([`Waker`]), and [`wait_fd`] for waiting on one descriptor (a full socket buffer).
//!
//! Level-triggered on purpose: a descriptor stays ready while data is queued, so a reader
//! may stop after a short read (fewer datagrams than buffers) and still be woken for the
//! rest, instead of reading again only to see `EAGAIN`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Events one [`Poller::wait`] reports at most.
const MAX_EVENTS: usize = 8;

/// A level-triggered `epoll(7)` instance: descriptors added with a token, waited on with a
/// timeout.
#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    /// Creates the epoll instance.
    ///
    /// # Errors
    /// The `epoll_create1(2)` error.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
        })
    }

    /// Watches `fd` for input (level-triggered); [`Poller::wait`] reports it as `token`.
    /// The descriptor must stay open while it is watched (closing it removes it).
    ///
    /// # Errors
    /// The `epoll_ctl(2)` error.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` is a valid `epoll_event` for the duration of the call.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut event,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a watched descriptor is readable or `timeout` has passed (`None`: no
    /// limit; rounded up to whole milliseconds, so a deadline is never woken early) and
    /// returns the tokens of the ready ones: none on timeout or a signal.
    ///
    /// # Errors
    /// The `epoll_wait(2)` error other than `EINTR`.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
    ) -> io::Result<impl Iterator<Item = u64> + '_> {
        let ms = timeout.map_or(-1, timeout_ms);
        // SAFETY: the buffer holds `events.len()` entries, which bounds what the kernel writes.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                i32::try_from(self.events.len()).unwrap_or(i32::MAX),
                ms,
            )
        };
        let n = if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| e.u64))
    }
}

/// `timeout` in whole milliseconds, rounded up, for `epoll_wait(2)` and `poll(2)`.
fn timeout_ms(timeout: Duration) -> i32 {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// Wakes a thread waiting in a [`Poller`] that watches it: an `eventfd(2)` counter,
/// readable from [`Waker::wake`] until [`Waker::reset`].
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Creates the eventfd.
    ///
    /// # Errors
    /// The `eventfd(2)` error.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes the eventfd readable (wakes the poller). Never blocks.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`. A full counter (EAGAIN) is already awake.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Clears the wake-ups so far (call before looking at what they announced).
    pub fn reset(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`. EAGAIN: nothing to clear.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::from_mut(&mut count).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What [`wait_fd`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Data to read.
    Readable,
    /// Room to write.
    Writable,
}

/// Blocks until `fd` is ready as asked or `timeout` has passed; true when ready.
///
/// # Errors
/// The `poll(2)` error other than `EINTR` (which counts as not ready yet).
pub fn wait_fd(fd: BorrowedFd<'_>, readiness: Readiness, timeout: Duration) -> io::Result<bool> {
    let events = match readiness {
        Readiness::Readable => libc::POLLIN,
        Readiness::Writable => libc::POLLOUT,
    };
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid `pollfd` for the duration of the call.
    let n = unsafe { libc::poll(&mut pollfd, 1, timeout_ms(timeout)) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::time::Instant;

    #[test]
    fn reports_ready_descriptors_by_token_and_stays_ready_until_read() {
        let mut poller = Poller::new().expect("poller");
        let (a, b) = UnixDatagram::pair().expect("pair");
        poller.add(b.as_fd(), 7).expect("add");
        let waker = Waker::new().expect("waker");
        poller.add(waker.as_fd(), 9).expect("add waker");

        let started = Instant::now();
        let ready: Vec<u64> = poller
            .wait(Some(Duration::from_millis(20)))
            .expect("wait")
            .collect();
        assert!(ready.is_empty(), "nothing ready: {ready:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(20),
            "no early wake-up"
        );

        a.send(b"x").expect("send");
        for _ in 0..2 {
            // Level-triggered: still ready while the datagram is queued.
            let ready: Vec<u64> = poller.wait(None).expect("wait").collect();
            assert_eq!(ready, vec![7]);
        }
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(&mut buf).expect("recv"), 1);

        waker.wake();
        waker.wake();
        let ready: Vec<u64> = poller.wait(None).expect("wait").collect();
        assert_eq!(ready, vec![9]);
        waker.reset();
        let ready: Vec<u64> = poller.wait(Some(Duration::ZERO)).expect("wait").collect();
        assert!(ready.is_empty(), "reset clears the wake-ups: {ready:?}");
    }

    #[test]
    fn wait_fd_times_out_and_sees_readiness() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let short = Duration::from_millis(5);
        assert!(!wait_fd(b.as_fd(), Readiness::Readable, short).expect("poll"));
        assert!(wait_fd(a.as_fd(), Readiness::Writable, short).expect("poll"));
        a.send(b"x").expect("send");
        assert!(wait_fd(b.as_fd(), Readiness::Readable, short).expect("poll"));
    }
}
