//! The crate stays sans-IO: no async runtime, no sockets, no clock.

use std::fs;
use std::path::Path;

#[test]
fn no_runtime_socket_or_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "UdpSocket",
        "TcpStream",
        "tokio",
        "std::thread::spawn",
    ];
    let mut files = 0;
    for entry in fs::read_dir(root.join("src")).expect("read src") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            files += 1;
            let text = fs::read_to_string(&path).expect("read source");
            for word in forbidden {
                assert!(!text.contains(word), "{} uses {word}", path.display());
            }
        }
    }
    assert!(files > 0);
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    for word in ["tokio", "mio", "socket2", "netdev", "quinn-udp"] {
        assert!(!manifest.contains(word), "Cargo.toml mentions {word}");
    }
}

#[test]
fn member_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<segwire_datapath::Member>();
}
