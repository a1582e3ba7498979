use super::*;

fn conf(extra: &str) -> Vec<u8> {
    format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"segwire-cni"{extra}}}"#).into_bytes()
}

#[test]
fn a_full_config_is_read_and_unknown_keys_ignored() {
    let c = parse(&conf(
        r#","segment":"web","labels":{"app":"web"},"agent_socket":"/run/a.sock","prevResult":{"ips":[]},"runtimeConfig":{"labels":{"tier":"front"},"portMappings":[]},"whatever":1"#,
    ))
    .expect("config");
    assert_eq!(c.cni_version, "1.0.0");
    assert_eq!(c.segment, "web");
    assert_eq!(c.labels["app"], "web");
    assert_eq!(c.runtime_labels["tier"], "front");
    assert_eq!(c.agent_socket, PathBuf::from("/run/a.sock"));
    assert!(c.prev_result.is_some());
    assert!(!c.disable_gc);
    let c = parse(&conf(r#","segment":"web""#)).expect("minimal");
    assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_SOCKET));
    assert!(c.labels.is_empty() && c.runtime_labels.is_empty());
}

#[test]
fn broken_configs_are_code_7() {
    for bad in [
        conf(""),
        conf(r#","segment":"Web""#),
        conf(r#","segment":5"#),
        conf(r#","segment":"web","labels":{"a b":"x"}"#),
        conf(r#","segment":"web","labels":{"a":1}"#),
        conf(r#","segment":"web","labels":["a"]"#),
        conf(r#","segment":"web","runtimeConfig":{"labels":{"a":"x y"}}"#),
        conf(r#","segment":"web","agent_socket":"""#),
        br#"{"name":"n","segment":"web"}"#.to_vec(),
        b"not json".to_vec(),
        b"[1]".to_vec(),
        Vec::new(),
    ] {
        let text = String::from_utf8_lossy(&bad).into_owned();
        assert_eq!(parse(&bad).expect_err(&text).code, INVALID_CONFIG, "{text}");
    }
}

#[test]
fn unknown_versions_are_code_1() {
    let e = parse(br#"{"cniVersion":"0.4.0","segment":"web"}"#).expect_err("old");
    assert_eq!(e.code, INCOMPATIBLE_VERSION);
    assert_eq!(output_version(br#"{"cniVersion":"0.4.0"}"#), LATEST_VERSION);
    assert_eq!(output_version(br#"{"cniVersion":"1.0.0"}"#), "1.0.0");
    assert_eq!(output_version(b""), LATEST_VERSION);
}

#[test]
fn lenient_parse_keeps_what_it_can() {
    let l = parse_lenient(br#"{"segment":"Bad!","agent_socket":"/x.sock"}"#);
    assert_eq!(l.segment, None);
    assert_eq!(l.agent_socket, PathBuf::from("/x.sock"));
    let l = parse_lenient(b"garbage");
    assert_eq!(l.agent_socket, PathBuf::from(DEFAULT_SOCKET));
    assert_eq!(
        parse_lenient(&conf(r#","segment":"web""#))
            .segment
            .as_deref(),
        Some("web")
    );
}

#[test]
fn valid_attachments_become_container_ids() {
    let c = parse(&conf(
        r#","segment":"web","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"a","ifname":"net1"},{"containerID":"b","ifname":"eth0"}]"#,
    ))
    .expect("config");
    assert_eq!(c.valid_containers().expect("ids"), ["a", "b"]);
    let old = parse(&conf(r#","segment":"web","cni.dev/attachments":[]"#)).expect("config");
    assert!(old.valid_containers().expect("empty").is_empty());
    let none = parse(&conf(r#","segment":"web""#)).expect("config");
    assert_eq!(
        none.valid_containers().expect_err("missing").code,
        INVALID_CONFIG
    );
    let bad = parse(&conf(
        r#","segment":"web","cni.dev/valid-attachments":[{"ifname":"x"}]"#,
    ))
    .expect("config");
    assert_eq!(
        bad.valid_containers().expect_err("no id").code,
        INVALID_CONFIG
    );
}
