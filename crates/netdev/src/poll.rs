//! Blocking readiness for a data-path thread: one level-triggered `epoll(7)` instance over
//! a few descriptors ([`Poller`]), an `eventfd(2)` other threads ring to wake it
//! ([`Waker`]), and [`wait_fd`] for waiting on one descriptor (a full socket buffer).
//!
//! Level-triggered on purpose: a descriptor stays ready while data is queued, so a reader
//! may stop after a short read (fewer datagrams than buffers) and still be woken for the
//! rest, instead of reading again only to see `EAGAIN`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// Events one [`Poller::wait`] reports at most.
const MAX_EVENTS: usize = 8;

/// A level-triggered `epoll(7)` instance: descriptors added with a token, waited on with a
/// timeout. (Not `mio`: its registrations are always edge-triggered, which would make
/// every reader drain to `EAGAIN`.)
#[derive(Debug)]
pub struct Poller {
    epoll: Epoll,
    events: [EpollEvent; MAX_EVENTS],
}

impl Poller {
    /// Creates the epoll instance.
    ///
    /// # Errors
    /// The `epoll_create1(2)` error.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            events: [EpollEvent::empty(); MAX_EVENTS],
        })
    }

    /// Watches `fd` for input (level-triggered); [`Poller::wait`] reports it as `token`.
    /// The descriptor must stay open while it is watched (closing it removes it).
    ///
    /// # Errors
    /// The `epoll_ctl(2)` error.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        Ok(self
            .epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))?)
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
        let timeout = timeout.map_or(PollTimeout::NONE, timeout_ms);
        let n = match self.epoll.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(self.events[..n].iter().map(EpollEvent::data))
    }
}

/// `timeout` in whole milliseconds, rounded up, for `epoll_wait(2)` and `poll(2)` (in
/// 64-bit arithmetic: this runs on every wake-up of a data path).
fn timeout_ms(timeout: Duration) -> PollTimeout {
    let ms = timeout
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(timeout.subsec_nanos().div_ceil(1_000_000)));
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Wakes a thread waiting in a [`Poller`] that watches it: an `eventfd(2)` counter,
/// readable from [`Waker::wake`] until [`Waker::reset`].
#[derive(Debug)]
pub struct Waker {
    fd: EventFd,
}

impl Waker {
    /// Creates the eventfd.
    ///
    /// # Errors
    /// The `eventfd(2)` error.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            fd: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
        })
    }

    /// Makes the eventfd readable (wakes the poller). Never blocks.
    pub fn wake(&self) {
        // A full counter (EAGAIN) is already awake.
        let _ = self.fd.write(1);
    }

    /// Clears the wake-ups so far (call before looking at what they announced).
    pub fn reset(&self) {
        // EAGAIN: nothing to clear.
        let _ = self.fd.read();
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
        Readiness::Readable => PollFlags::POLLIN,
        Readiness::Writable => PollFlags::POLLOUT,
    };
    match nix::poll::poll(&mut [PollFd::new(fd, events)], timeout_ms(timeout)) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
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
    fn timeouts_round_up_to_whole_milliseconds_and_saturate() {
        let ms = |d: Duration| timeout_ms(d).as_millis();
        assert_eq!(ms(Duration::ZERO), Some(0));
        assert_eq!(ms(Duration::from_nanos(1)), Some(1), "never woken early");
        assert_eq!(ms(Duration::from_micros(1_500)), Some(2));
        assert_eq!(ms(Duration::from_millis(250)), Some(250));
        assert_eq!(ms(Duration::new(3, 1)), Some(3_001));
        assert_eq!(ms(Duration::MAX), Some(i32::MAX as u32));
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
