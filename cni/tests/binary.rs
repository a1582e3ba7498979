//! Runs the built `segwire-cni` against a fake agent on a Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};

use segwire_control::{Attached, Request, Response};
use serde_json::{json, Value};

/// Serves one connection: reads one request line, answers `answer`, returns the request.
fn fake_agent(socket: &Path, answer: Response) -> JoinHandle<Request> {
    let listener = UnixListener::bind(socket).expect("bind");
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).expect("read");
        let mut reply = serde_json::to_vec(&answer).expect("answer");
        reply.push(b'\n');
        (&stream).write_all(&reply).expect("write");
        serde_json::from_str(&line).expect("a request line")
    })
}

fn run_plugin(command: &str, socket: &Path) -> Output {
    let conf = json!({
        "cniVersion": "1.0.0", "name": "web", "type": "segwire-cni",
        "segment": "web", "agent_socket": socket,
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_segwire-cni"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "0123456789abcdef0123")
        .env("CNI_NETNS", "/run/netns/cni-test")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web1")
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn segwire-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.to_string().as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?} / stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn add_prints_the_result_of_the_agents_attach() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("agent.sock");
    let agent = fake_agent(
        &socket,
        Response::Attached(Box::new(Attached {
            id: "m-1".into(),
            name: "web1".into(),
            segment: "web".into(),
            workload: "path:/run/netns/cni-test".into(),
            interface: "eth0".into(),
            address: "10.9.0.2".into(),
            cidr: "10.9.0.0/24".into(),
            address6: None,
            cidr6: None,
            listen_port: 40000,
            public_key: "pk".into(),
            up: true,
            container: None,
        })),
    );
    let out = run_plugin("ADD", &socket);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = stdout_json(&out);
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(v["interfaces"][0]["name"], "eth0");
    assert_eq!(v["interfaces"][0]["sandbox"], "/run/netns/cni-test");
    assert!(v["interfaces"][0]["mac"]
        .as_str()
        .is_some_and(|m| m.starts_with("02:") && m.len() == 17));
    assert_eq!(
        v["ips"],
        json!([{"address": "10.9.0.2/32", "interface": 0}])
    );
    assert_eq!(v["routes"], json!([{"dst": "10.9.0.0/24"}]));
    match agent.join().expect("agent thread") {
        Request::Attach {
            segment,
            workload,
            name,
            container,
            ..
        } => {
            assert_eq!(segment, "web");
            assert_eq!(workload, "path:/run/netns/cni-test");
            assert_eq!(name.as_deref(), Some("web1"));
            assert_eq!(
                container.map(|c| c.id).as_deref(),
                Some("0123456789abcdef0123")
            );
        }
        other => panic!("not an attach: {other:?}"),
    }
}

#[test]
fn without_an_agent_add_fails_and_del_succeeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket = tmp.path().join("agent.sock");
    let out = run_plugin("ADD", &socket);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = stdout_json(&out);
    assert_eq!(v["code"], 11);
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(
        v["msg"].as_str().is_some_and(|m| m.contains("not running")),
        "{v}"
    );
    let out = run_plugin("DEL", &socket);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(!out.stderr.is_empty(), "a note on stderr");
}
