//! UDP sockets for the underlay, with buffers sized for bursts.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

/// The socket buffer size the agent asks for: 4 MiB each way.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// The receive and send buffer sizes a socket has (as the kernel reports them, which is
/// twice what was asked, for its bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketBuffers {
    /// `SO_RCVBUF`.
    pub recv: usize,
    /// `SO_SNDBUF`.
    pub send: usize,
}

/// Binds a non-blocking UDP socket on `addr` (in the calling thread's namespace: the
/// agent's host namespace, the underlay) and asks for `buffer_bytes` of receive and send
/// buffer. As root (`CAP_NET_ADMIN`) it uses `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, which
/// ignore `net.core.rmem_max`/`wmem_max`; otherwise the kernel caps the size at those.
///
/// # Errors
/// The bind or `setsockopt(2)` error.
pub fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> io::Result<UdpSocket> {
    tune(UdpSocket::bind(addr)?, buffer_bytes)
}

/// Binds a non-blocking UDP socket on every address of both families, `port`: one
/// IPv6 socket with `IPV6_V6ONLY` off, so it speaks to IPv4 peers (as `::ffff:a.b.c.d`,
/// which [`crate::BatchSocket`] hides) and IPv6 peers alike, whatever
/// `net.ipv6.bindv6only` says. On a host without IPv6 (the module absent or disabled) it
/// is an IPv4 socket on `0.0.0.0`. Buffers as in [`bind_udp`].
///
/// # Errors
/// The bind or `setsockopt(2)` error.
pub fn bind_udp_any(port: u16, buffer_bytes: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let dual = || -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(false)?;
        socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
        Ok(socket.into())
    };
    match dual() {
        Ok(socket) => tune(socket, buffer_bytes),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
            ) =>
        {
            tracing::debug!(error = %e, "no IPv6 on this host; binding IPv4 only");
            bind_udp(
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
                buffer_bytes,
            )
        }
        Err(e) => Err(e),
    }
}

/// Makes a bound socket non-blocking and gives it `buffer_bytes` each way.
fn tune(socket: UdpSocket, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let addr = socket.local_addr()?;
    socket.set_nonblocking(true)?;
    set_buffer(&socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer_bytes)?;
    set_buffer(&socket, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, buffer_bytes)?;
    let sizes = socket_buffers(&socket)?;
    tracing::debug!(%addr, recv = sizes.recv, send = sizes.send, "bound UDP socket");
    Ok(socket)
}

/// [`bind_udp`], registered with the current tokio runtime.
///
/// # Errors
/// As [`bind_udp`], or when called outside a tokio runtime.
pub fn bind_udp_tokio(addr: SocketAddr, buffer_bytes: usize) -> io::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::from_std(bind_udp(addr, buffer_bytes)?)
}

/// The buffer sizes `socket` has now.
///
/// # Errors
/// The `getsockopt(2)` error.
pub fn socket_buffers(socket: &impl AsFd) -> io::Result<SocketBuffers> {
    Ok(SocketBuffers {
        recv: get_int(socket, libc::SO_RCVBUF)?,
        send: get_int(socket, libc::SO_SNDBUF)?,
    })
}

/// Sets a buffer size with the privileged option, falling back to the capped one.
fn set_buffer(
    socket: &impl AsFd,
    forced: libc::c_int,
    capped: libc::c_int,
    bytes: usize,
) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    match set_int(socket, forced, value) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => set_int(socket, capped, value),
        Err(e) => Err(e),
    }
}

fn set_int(socket: &impl AsFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, which outlives the call; the
    // descriptor is open (borrowed from `socket`).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            socklen_of::<libc::c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(socket: &impl AsFd, option: libc::c_int) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = socklen_of::<libc::c_int>();
    // SAFETY: the pointers describe `value` and `len`, which outlive the call; the
    // descriptor is open (borrowed from `socket`).
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(value).map_err(|_| io::Error::other("negative socket buffer size"))
}

fn socklen_of<T>() -> libc::socklen_t {
    // The options used here are c_int-sized.
    libc::socklen_t::try_from(mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_with_large_buffers() {
        let socket =
            bind_udp("127.0.0.1:0".parse().expect("addr"), DEFAULT_SOCKET_BUFFER).expect("bind");
        let sizes = socket_buffers(&socket).expect("sizes");
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // The kernel doubles the value asked for.
            assert!(sizes.recv >= DEFAULT_SOCKET_BUFFER, "{sizes:?}");
            assert!(sizes.send >= DEFAULT_SOCKET_BUFFER, "{sizes:?}");
        } else {
            eprintln!("not root: buffers capped by rmem_max/wmem_max: {sizes:?}");
        }
        // Non-blocking: nothing to read is WouldBlock, not a hang.
        let mut buf = [0u8; 8];
        let err = socket.recv_from(&mut buf).expect_err("nothing queued");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[tokio::test]
    async fn tokio_socket_round_trip() {
        let a = bind_udp_tokio("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("bind a");
        let b = bind_udp_tokio("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("bind b");
        a.send_to(b"ping", b.local_addr().expect("addr"))
            .await
            .expect("send");
        let mut buf = [0u8; 8];
        let (n, from) = b.recv_from(&mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, a.local_addr().expect("addr"));
    }
}
