//! Connection limits under the TLS layer: a global cap on open connections and an idle
//! timeout on each (no byte read or written for that long closes it). With the TLS
//! handshake timeout and hyper's header-read timeout (set in [`crate::server`]), a
//! client that opens connections and sends nothing, or half a request, holds a slot for
//! a bounded time only, and never more than `max_connections` slots in all.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Accepts a TCP connection only while fewer than the cap are open, and wraps it in an
/// [`IdleStream`].
#[derive(Clone, Debug)]
pub struct LimitAcceptor {
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl LimitAcceptor {
    /// At most `max_connections` open at once, each closed after `idle` without traffic.
    pub fn new(max_connections: usize, idle: Duration) -> Self {
        LimitAcceptor {
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            idle,
        }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = IdleStream<TcpStream>;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let permit = self.slots.clone().try_acquire_owned();
        let idle = self.idle;
        Box::pin(async move {
            let Ok(permit) = permit else {
                metrics::counter!("segwire_connections_refused_total").increment(1);
                tracing::debug!(peer = ?stream.peer_addr().ok(), "connection cap reached; closing a new connection");
                return Err(io::Error::other("connection cap reached"));
            };
            let _ = stream.set_nodelay(true);
            Ok((IdleStream::new(stream, permit, idle), service))
        })
    }
}

/// A stream that fails with `TimedOut` once no byte moved either way for `idle`, and
/// frees its connection slot when dropped.
pub struct IdleStream<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<T> IdleStream<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        IdleStream {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _slot: slot,
        }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// After polling the inner stream: progress pushes the idle deadline back; `Pending`
    /// becomes `TimedOut` once the deadline has passed.
    fn after<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.active();
            return polled;
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.after(cx, polled)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        this.after(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_idle_stream_times_out_and_an_active_one_does_not() {
        let slots = Arc::new(Semaphore::new(1));
        let (a, mut b) = tokio::io::duplex(64);
        let permit = slots.clone().try_acquire_owned().expect("slot");
        let mut s = IdleStream::new(a, permit, Duration::from_millis(200));
        assert_eq!(slots.available_permits(), 0);
        let mut buf = [0u8; 4];
        // Traffic every 120 ms keeps it open well past 200 ms.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(120)).await;
            b.write_all(b"ping").await.expect("write");
            s.read_exact(&mut buf).await.expect("read while active");
        }
        let e = s.read(&mut buf).await.expect_err("idle");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(s);
        assert_eq!(slots.available_permits(), 1, "the slot is freed");
    }
}
