//! DEL, CHECK, GC, STATUS and VERSION.

use std::path::PathBuf;

use segwire_control::DetachedMember;
use serde_json::{json, Value};

use super::*;

#[test]
fn del_twice_succeeds_both_times() {
    let member = DetachedMember {
        id: "m-42".into(),
        name: "ctr-3f6940ab5ab4".into(),
        segment: "web".into(),
        interface: "eth0".into(),
    };
    let mut agent = Fake::answering(vec![
        Response::DetachedMembers {
            members: vec![member],
        },
        Response::DetachedMembers { members: vec![] },
    ]);
    for _ in 0..2 {
        assert_silent_success(&run(&env("DEL", &[]), CONF.as_bytes(), &mut agent));
    }
    let want = Request::DetachContainer {
        container: ID.into(),
        segment: Some("web".into()),
        interface: Some("eth0".into()),
    };
    assert_eq!(agent.seen.len(), 2);
    assert!(agent
        .seen
        .iter()
        .all(|(_, r, t)| *r == want && *t == OTHER_TIMEOUT));
}

#[test]
fn del_without_an_agent_succeeds_with_a_note() {
    let out = run(&env("DEL", &[]), CONF.as_bytes(), &mut Fake::default());
    assert_silent_success(&out);
    assert!(out.stderr.contains("when it starts"), "{out:?}");
    assert!(!out.stderr.contains('\n'), "one line: {out:?}");
}

#[test]
fn del_is_lenient_about_config_and_netns() {
    let extra = [("CNI_NETNS", ""), ("CNI_IFNAME", "")];
    let conf = r#"{"cniVersion":"0.1.0","segment":"Not Valid","agent_socket":"/s.sock"}"#;
    let mut agent = Fake::answering(vec![Response::DetachedMembers { members: vec![] }]);
    assert_silent_success(&run(&env("DEL", &extra), conf.as_bytes(), &mut agent));
    assert_eq!(agent.seen[0].0, PathBuf::from("/s.sock"));
    assert_eq!(
        agent.request(),
        &Request::DetachContainer {
            container: ID.into(),
            segment: None,
            interface: None
        }
    );
    let mut agent = Fake::answering(vec![Response::DetachedMembers { members: vec![] }]);
    assert_silent_success(&run(&env("DEL", &[]), b"", &mut agent));
    let out = run(
        &env("DEL", &[("CNI_CONTAINERID", "")]),
        CONF.as_bytes(),
        &mut Fake::default(),
    );
    assert_eq!(error_of(&out).0, 4);
}

#[test]
fn check_passes_and_reports_the_agents_refusal() {
    let mut agent = Fake::answering(vec![attached_answer("10.77.0.0/16")]);
    assert_silent_success(&run(&env("CHECK", &[]), CONF.as_bytes(), &mut agent));
    assert_eq!(
        agent.request(),
        &Request::Check {
            container: ID.into(),
            segment: "web".into(),
            interface: "eth0".into()
        }
    );
    let message = "interface eth0 of member ctr-3f6940ab5ab4 is gone";
    let mut agent = Fake::answering(vec![Response::Error {
        message: message.into(),
        retry: false,
    }]);
    let out = run(&env("CHECK", &[]), CONF.as_bytes(), &mut agent);
    assert_eq!(error_of(&out), (100, message.into()));
}

#[test]
fn check_compares_the_address_with_prev_result() {
    let with_prev = |ip: &str| {
        CONF.replace(
            r#""segment":"web""#,
            &format!(r#""segment":"web","prevResult":{{"cniVersion":"1.0.0","ips":[{{"address":"{ip}/32","interface":0}}]}}"#),
        )
    };
    let mut agent = Fake::answering(vec![attached_answer("")]);
    assert_silent_success(&run(
        &env("CHECK", &[]),
        with_prev("10.77.0.5").as_bytes(),
        &mut agent,
    ));
    let mut agent = Fake::answering(vec![attached_answer("")]);
    let out = run(
        &env("CHECK", &[]),
        with_prev("10.77.0.9").as_bytes(),
        &mut agent,
    );
    let (code, msg) = error_of(&out);
    assert_eq!(code, 100);
    assert!(msg.contains("10.77.0.9"), "{msg}");
}

#[test]
fn gc_sends_the_valid_container_ids() {
    let conf = r#"{"cniVersion":"1.1.0","name":"web","type":"segwire-cni","segment":"web","cni.dev/valid-attachments":[{"containerID":"aaa","ifname":"eth0"},{"containerID":"bbb","ifname":"eth0"}]}"#;
    let mut agent = Fake::answering(vec![Response::DetachedMembers { members: vec![] }]);
    assert_silent_success(&run(&env("GC", &[]), conf.as_bytes(), &mut agent));
    assert_eq!(
        agent.request(),
        &Request::Gc {
            segment: "web".into(),
            valid: vec!["aaa".into(), "bbb".into()]
        }
    );
    let mut agent = Fake::default();
    let out = run(&env("GC", &[]), CONF.as_bytes(), &mut agent);
    assert_eq!(
        error_of(&out).0,
        7,
        "GC without the list must not detach everything"
    );
    assert!(agent.seen.is_empty());
}

#[test]
fn status_reports_revocation_and_absence_as_50() {
    let mut agent = Fake::answering(vec![status(false)]);
    assert_silent_success(&run(&env("STATUS", &[]), CONF.as_bytes(), &mut agent));
    assert_eq!(agent.request(), &Request::Status);
    let mut agent = Fake::answering(vec![status(true)]);
    let (code, msg) = error_of(&run(&env("STATUS", &[]), CONF.as_bytes(), &mut agent));
    assert_eq!(code, 50);
    assert!(msg.contains("revoked"), "{msg}");
    let out = run(&env("STATUS", &[]), CONF.as_bytes(), &mut Fake::default());
    assert_eq!(error_of(&out).0, 50);
}

#[test]
fn version_needs_nothing() {
    let want = json!({"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]});
    for stdin in [&b""[..], br#"{"cniVersion":"1.0.0"}"#, b"junk"] {
        let mut agent = Fake::default();
        let out = run(
            &Env::from_lookup(|k| (k == "CNI_COMMAND").then(|| "VERSION".to_owned())),
            stdin,
            &mut agent,
        );
        assert_eq!(out.exit, 0);
        assert_eq!(
            serde_json::from_str::<Value>(&out.stdout).expect("json"),
            want
        );
        assert!(agent.seen.is_empty());
    }
}
