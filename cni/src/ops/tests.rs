use std::collections::VecDeque;
use std::path::PathBuf;

use segwire_control::status::AgentStatus;
use segwire_control::Attached;
use serde_json::{json, Value};

use super::*;

const ID: &str = "3f6940ab5ab43bc522569d15b23f8c1b";
const NETNS: &str = "/run/netns/cni-1234";
const CONF: &str = r#"{"cniVersion":"1.0.0","name":"web","type":"segwire-cni","segment":"web","agent_socket":"/tmp/t/agent.sock"}"#;

/// A fake agent: answers from a queue (then "not running") and records the requests.
#[derive(Default)]
struct Fake {
    answers: VecDeque<Result<Response, ControlError>>,
    seen: Vec<(PathBuf, Request, Duration)>,
}

impl Fake {
    fn answering(answers: Vec<Response>) -> Fake {
        Fake {
            answers: answers.into_iter().map(Ok).collect(),
            seen: Vec::new(),
        }
    }

    fn request(&self) -> &Request {
        &self.seen.first().expect("a request was sent").1
    }
}

impl Agent for Fake {
    fn call(
        &mut self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ControlError> {
        self.seen
            .push((socket.to_owned(), request.clone(), timeout));
        self.answers.pop_front().unwrap_or_else(|| {
            Err(ControlError::NotRunning {
                path: socket.to_owned(),
            })
        })
    }
}

fn env(command: &str, extra: &[(&str, &str)]) -> Env {
    let mut vars = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", ID),
        ("CNI_NETNS", NETNS),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];
    vars.extend_from_slice(extra);
    Env::from_lookup(|k| {
        vars.iter()
            .rev()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })
}

fn attached(cidr: &str) -> Attached {
    Attached {
        id: "m-42".into(),
        name: "ctr-3f6940ab5ab4".into(),
        segment: "web".into(),
        workload: format!("path:{NETNS}"),
        interface: "eth0".into(),
        address: "10.77.0.5".into(),
        cidr: cidr.into(),
        address6: None,
        cidr6: None,
        listen_port: 51820,
        public_key: "pk".into(),
        up: true,
        container: None,
    }
}

fn attached_answer(cidr: &str) -> Response {
    Response::Attached(Box::new(attached(cidr)))
}

fn status(revoked: bool) -> Response {
    Response::Status(Box::new(AgentStatus {
        node: "n1".into(),
        node_id: "id1".into(),
        coordinator: "https://c".into(),
        coordinator_reachable: true,
        coordinator_error: None,
        revoked,
        netmap_version: 3,
        members: Vec::new(),
    }))
}

fn error_of(out: &Outcome) -> (u64, String) {
    assert_eq!(out.exit, 1, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("error JSON");
    assert!(v["cniVersion"].is_string(), "{v}");
    (
        v["code"].as_u64().expect("code"),
        v["msg"].as_str().expect("msg").to_owned(),
    )
}

fn assert_silent_success(out: &Outcome) {
    assert_eq!(out.exit, 0, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
}

#[test]
fn add_without_an_agent_is_try_again_later() {
    let out = run(&env("ADD", &[]), CONF.as_bytes(), &mut Fake::default());
    let (code, msg) = error_of(&out);
    assert_eq!(code, 11);
    assert!(msg.contains("segwire-node run"), "{msg}");
}

#[test]
fn broken_configs_are_code_7() {
    for conf in [
        r#"{"cniVersion":"1.0.0","name":"web","type":"segwire-cni"}"#,
        r#"{"cniVersion":"1.0.0","name":"web","type":"segwire-cni","segment":"Web_1"}"#,
        r#"{"cniVersion":"1.0.0","segment":"web","labels":{"a":"b c"}}"#,
        "this is not json",
    ] {
        let mut agent = Fake::default();
        let out = run(&env("ADD", &[]), conf.as_bytes(), &mut agent);
        assert_eq!(error_of(&out).0, 7, "{conf}");
        assert!(agent.seen.is_empty(), "no request for {conf}");
    }
}

#[test]
fn unknown_version_is_code_1() {
    let conf = r#"{"cniVersion":"0.4.0","name":"web","type":"segwire-cni","segment":"web"}"#;
    let out = run(&env("ADD", &[]), conf.as_bytes(), &mut Fake::default());
    assert_eq!(error_of(&out).0, 1);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["cniVersion"], "1.1.0");
}

#[test]
fn add_result_has_interface_address_and_route() {
    let mut agent = Fake::answering(vec![attached_answer("10.77.0.0/16")]);
    let out = run(&env("ADD", &[]), CONF.as_bytes(), &mut agent);
    assert_eq!(out.exit, 0, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("result JSON");
    assert_eq!(
        v,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": member::mac_for("m-42"), "sandbox": NETNS}],
            "ips": [{"address": "10.77.0.5/32", "interface": 0}],
            "routes": [{"dst": "10.77.0.0/16"}],
            "dns": {},
        })
    );
    let (socket, request, timeout) = &agent.seen[0];
    assert_eq!(socket, &PathBuf::from("/tmp/t/agent.sock"));
    assert_eq!(*timeout, ADD_TIMEOUT);
    assert_eq!(
        request,
        &Request::Attach {
            segment: "web".into(),
            workload: format!("path:{NETNS}"),
            name: Some("ctr-3f6940ab5ab4".into()),
            labels: Labels::new(),
            interface: Some("eth0".into()),
            container: Some(ContainerRef {
                id: ID.into(),
                name: None,
                runtime: "cni".into()
            }),
        }
    );
}

#[test]
fn add_keeps_1_1_0_and_a_member_not_up_yet_is_try_again_later() {
    let conf = CONF.replace("1.0.0", "1.1.0");
    let mut agent = Fake::answering(vec![attached_answer("100.64.1.0/24")]);
    let out = run(&env("ADD", &[]), conf.as_bytes(), &mut agent);
    let v: Value = serde_json::from_str(&out.stdout).expect("result JSON");
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(v["ips"][0]["interface"], 0);
    let mut agent = Fake::answering(vec![attached_answer("")]);
    let out = run(&env("ADD", &[]), conf.as_bytes(), &mut agent);
    assert_ne!(out.exit, 0);
    let v: Value = serde_json::from_str(&out.stdout).expect("error JSON");
    assert_eq!(v["code"], 11, "{v}");
    assert!(
        v["msg"].as_str().unwrap_or_default().contains("not up yet"),
        "{v}"
    );
}

#[test]
fn add_checks_the_environment() {
    for extra in [
        [("CNI_NETNS", "")],
        [("CNI_NETNS", "netns/relative")],
        [("CNI_IFNAME", "")],
        [("CNI_CONTAINERID", "")],
    ] {
        let out = run(&env("ADD", &extra), CONF.as_bytes(), &mut Fake::default());
        assert_eq!(error_of(&out).0, 4, "{extra:?}");
    }
    let out = run(&env("FROB", &[]), CONF.as_bytes(), &mut Fake::default());
    assert_eq!(error_of(&out).0, 4);
    let out = run(&env("", &[]), CONF.as_bytes(), &mut Fake::default());
    assert_eq!(error_of(&out).0, 4);
}

#[test]
fn add_refusals_and_denials_map_to_codes() {
    let mut agent = Fake::answering(vec![Response::Error {
        message: "segment web does not exist".into(),
        retry: false,
    }]);
    let out = run(&env("ADD", &[]), CONF.as_bytes(), &mut agent);
    assert_eq!(error_of(&out), (100, "segment web does not exist".into()));
    // The agent could not reach the coordinator: the runtime may try again.
    let mut agent = Fake::answering(vec![Response::Error {
        message: "cannot reach the coordinator".into(),
        retry: true,
    }]);
    let out = run(&env("ADD", &[]), CONF.as_bytes(), &mut agent);
    assert_eq!(error_of(&out), (11, "cannot reach the coordinator".into()));
    let mut agent = Fake::default();
    agent
        .answers
        .push_back(Err(ControlError::PermissionDenied { path: "/x".into() }));
    let (code, msg) = error_of(&run(&env("ADD", &[]), CONF.as_bytes(), &mut agent));
    assert_eq!(code, 5);
    assert!(msg.contains("root"), "{msg}");
}

#[test]
fn member_name_comes_from_the_pod_name_else_the_id() {
    let args = [(
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=My_Web.1",
    )];
    let mut agent = Fake::answering(vec![attached_answer("")]);
    run(&env("ADD", &args), CONF.as_bytes(), &mut agent);
    let Request::Attach {
        name, container, ..
    } = agent.request()
    else {
        panic!("not an attach: {:?}", agent.request());
    };
    assert_eq!(name.as_deref(), Some("my-web-1"));
    assert_eq!(
        container.as_ref().and_then(|c| c.name.as_deref()),
        Some("My_Web.1")
    );
    let mut agent = Fake::answering(vec![attached_answer("")]);
    run(
        &env("ADD", &[("CNI_ARGS", "K8S_POD_NAME=___")]),
        CONF.as_bytes(),
        &mut agent,
    );
    let Request::Attach { name, .. } = agent.request() else {
        panic!("not an attach");
    };
    assert_eq!(name.as_deref(), Some("ctr-3f6940ab5ab4"));
}

#[test]
fn per_container_labels_win_over_network_labels() {
    let conf = r#"{"cniVersion":"1.0.0","segment":"web","labels":{"tier":"net","env":"prod","app":"net"},"runtimeConfig":{"labels":{"tier":"runtime","app":"runtime"}}}"#;
    let args = [("CNI_ARGS", "SEGWIRE_LABEL_app=args;K8S_POD_NAME=web")];
    let mut agent = Fake::answering(vec![attached_answer("100.64.1.0/24")]);
    let out = run(&env("ADD", &args), conf.as_bytes(), &mut agent);
    assert_eq!(out.exit, 0, "{out:?}");
    let Request::Attach { labels, .. } = agent.request() else {
        panic!("not an attach");
    };
    let want: Labels = [("app", "args"), ("env", "prod"), ("tier", "runtime")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(labels, &want);
    let bad = [("CNI_ARGS", "SEGWIRE_LABEL_app=a b")];
    let out = run(&env("ADD", &bad), conf.as_bytes(), &mut Fake::default());
    assert_eq!(error_of(&out).0, 4);
}

mod other_verbs;
