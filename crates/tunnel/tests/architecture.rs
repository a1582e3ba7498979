//! The crate stays sans-IO: no async runtime, no sockets, no clock.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_runtime_socket_or_clock_in_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(!files.is_empty());
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "UdpSocket",
        "TcpStream",
        "tokio",
        "std::thread::spawn",
    ];
    for file in files {
        let text = fs::read_to_string(&file).expect("read source");
        for word in forbidden {
            assert!(!text.contains(word), "{} uses {word}", file.display());
        }
    }
}

#[test]
fn no_runtime_dependency_and_no_frozen_clock() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("read Cargo.toml");
    let deps: String = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for word in ["tokio", "mio", "socket2", "mock-instant", "mock_instant"] {
        assert!(!deps.contains(word), "Cargo.toml mentions {word}");
    }
}

#[test]
fn router_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<segwire_tunnel::Router>();
    assert_send::<segwire_tunnel::DatagramBatch>();
    assert_send::<segwire_tunnel::PacketBatch>();
}
