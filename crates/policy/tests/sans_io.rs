//! The crate stays sans-IO: no runtime or socket dependencies, no clock reads.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

const ALLOWED_DEPENDENCIES: &[&str] = &[
    // A hasher: seeded once from the OS RNG, no clock, no I/O.
    "ahash",
    "humantime",
    "ipnet",
    "serde",
    "serde_json",
    "thiserror",
    "tracing",
];
const FORBIDDEN_CALLS: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "tokio",
    "thread::spawn",
];

#[test]
fn only_pure_dependencies() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['.', '=', ' ']).next().unwrap();
            assert!(
                ALLOWED_DEPENDENCIES.contains(&name),
                "new dependency {name:?}: keep the crate sans-IO"
            );
        }
    }
}

#[test]
fn library_code_reads_no_clock_and_opens_no_socket() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n != "tests.rs" && n != "testutil.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                // Doc examples play the caller, who owns the clock.
                let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
                for line in code {
                    for call in FORBIDDEN_CALLS {
                        assert!(
                            !line.contains(call),
                            "{} uses {call}: {line}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}
