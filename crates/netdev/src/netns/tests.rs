use super::*;
use crate::testutil::{ip, privileged, TestNetns};

#[test]
fn netns_arg_name_or_path() {
    assert_eq!(
        Netns::from_netns_arg("db1").expect("name"),
        Netns::Named("db1".into())
    );
    assert_eq!(
        Netns::from_netns_arg("/proc/42/ns/net").expect("path"),
        Netns::Path("/proc/42/ns/net".into())
    );
    assert_eq!(
        Netns::from_netns_arg("./ns").expect("relative path"),
        Netns::Path("./ns".into())
    );
}

#[test]
fn netns_arg_errors() {
    let long = "n".repeat(256);
    for bad in ["", ".", "..", "a\0b", long.as_str()] {
        let err = Netns::from_netns_arg(bad).expect_err(bad);
        assert!(matches!(err, NetnsError::InvalidName { .. }), "{err}");
        assert!(err.to_string().contains("ip netns list"), "{err}");
    }
}

#[test]
fn pid_arg() {
    assert_eq!(Netns::from_pid_arg("4242").expect("pid"), Netns::Pid(4242));
    for bad in ["", "0", "-1", "+5", "abc", "12x", "99999999999"] {
        let err = Netns::from_pid_arg(bad).expect_err(bad);
        assert!(matches!(err, NetnsError::InvalidPid { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("process id"), "{err}");
    }
}

#[test]
fn paths() {
    assert_eq!(Netns::Current.path(), None);
    assert_eq!(
        Netns::Named("x".into()).path(),
        Some(PathBuf::from("/run/netns/x"))
    );
    assert_eq!(Netns::Pid(7).path(), Some(PathBuf::from("/proc/7/ns/net")));
}

#[test]
fn missing_namespaces_say_what_to_do() {
    let err = Netns::Named("swt-does-not-exist".into())
        .check()
        .expect_err("missing named netns");
    assert!(matches!(err, NetnsError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("ip netns add"), "{err}");

    let err = Netns::Pid(u32::MAX).check().expect_err("missing pid");
    assert!(matches!(err, NetnsError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("no such process"), "{err}");
}

#[test]
fn a_file_that_is_not_a_namespace_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-netns");
    std::fs::write(&file, b"").expect("write");
    let err = Netns::Path(file)
        .run_blocking(|| ())
        .expect_err("a plain file is no netns");
    // Unprivileged, setns(2) may answer EPERM before it looks at the file.
    assert!(
        matches!(
            err,
            NetnsError::NotANetns { .. } | NetnsError::PermissionDenied { .. }
        ),
        "{err}"
    );
}

#[test]
fn current_runs_on_another_thread() {
    let caller = thread::current().id();
    let other = Netns::Current
        .run_blocking(move || thread::current().id())
        .expect("run");
    assert_ne!(caller, other);
}

#[test]
fn panics_become_errors() {
    let err = Netns::Current
        .run_blocking::<_, ()>(|| panic!("boom"))
        .expect_err("panic");
    assert!(matches!(err, NetnsError::Panicked { .. }), "{err}");
}

/// The inode of the network namespace the calling thread is in.
fn current_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat own netns")
        .ino()
}

#[tokio::test]
async fn run_enters_the_namespace_and_sockets_stay_there() {
    if !privileged("run_enters_the_namespace_and_sockets_stay_there") {
        return;
    }
    let ns = TestNetns::new("run");
    ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
    let netns = Netns::Named(ns.name.clone());

    let host = current_netns_inode();
    let inside = netns.run(current_netns_inode).await.expect("run");
    assert_ne!(host, inside, "the job ran in the host namespace");
    assert_eq!(host, current_netns_inode(), "the caller's thread moved");

    // The same namespace through its /proc path and through a pid.
    let by_path = Netns::Path(PathBuf::from(format!("/run/netns/{}", ns.name)));
    assert_eq!(
        by_path.run_blocking(current_netns_inode).expect("path"),
        inside
    );
    let by_pid = Netns::Pid(std::process::id());
    assert_eq!(by_pid.run_blocking(current_netns_inode).expect("pid"), host);

    // A socket bound inside stays in the namespace after its thread ended: it can bind an
    // address that exists only there (127.0.0.1 of the namespace's own lo) on a port also
    // bound on the host.
    let host_sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("host bind");
    let port = host_sock.local_addr().expect("addr").port();
    let inner = netns
        .run(move || std::net::UdpSocket::bind(("127.0.0.1", port)))
        .await
        .expect("run")
        .expect("bind inside");
    let sender = netns
        .run(|| std::net::UdpSocket::bind("127.0.0.1:0"))
        .await
        .expect("run")
        .expect("bind sender");
    sender
        .send_to(b"hello", ("127.0.0.1", port))
        .expect("send inside");
    let mut buf = [0u8; 16];
    inner
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    let (n, _) = inner.recv_from(&mut buf).expect("recv inside");
    assert_eq!(&buf[..n], b"hello");
}

#[tokio::test]
async fn run_future_drives_async_work_inside() {
    if !privileged("run_future_drives_async_work_inside") {
        return;
    }
    let ns = TestNetns::new("fut");
    let netns = Netns::Named(ns.name.clone());
    let inode = netns
        .run_future(|| async {
            tokio::task::yield_now().await;
            current_netns_inode()
        })
        .await
        .expect("run_future");
    assert_ne!(inode, current_netns_inode());
}
