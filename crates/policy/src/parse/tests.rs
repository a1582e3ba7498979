#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use crate::error::Problem;
use crate::model::{Action, Policy, PortRange, PortSpec, Rule, Selector};
use crate::testutil::{arb_port_spec, arb_selector};

const EXAMPLE: &str = r#"{
  "default": "deny",
  "rules": [
    { "name": "web-to-db", "from": { "labels": { "app": "web" } },
      "to": { "labels": { "app": "db" } }, "ports": ["tcp/5432"] },
    { "name": "ping", "from": "*", "to": "*", "ports": ["icmp"] }
  ]
}"#;

#[test]
fn parses_the_design_example() {
    let p = Policy::from_json(EXAMPLE).unwrap();
    assert_eq!(p.default, Action::Deny);
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[0].name, "web-to-db");
    assert_eq!(
        p.rules[0].ports,
        vec![PortSpec::Tcp(PortRange::single(5432).unwrap())]
    );
    assert_eq!(p.rules[1].from, Selector::Any);
    assert_eq!(p.rules[1].ports, vec![PortSpec::Icmp]);
}

#[test]
fn accepts_every_selector_and_port_form() {
    let text = r#"{ "default": "allow", "rules": [
        { "name": "a", "from": { "cidr": "10.0.0.0/8" }, "to": { "member": "db-1" },
          "ports": ["tcp/1", "tcp/1000-2000", "udp/53", "udp/60000-65535", "icmp", "any"] } ] }"#;
    let p = Policy::from_json(text).unwrap();
    let r = &p.rules[0];
    assert_eq!(r.from, Selector::Cidr("10.0.0.0/8".parse().unwrap()));
    assert_eq!(r.to, Selector::Member("db-1".into()));
    let shown: Vec<String> = r.ports.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "tcp/1",
            "tcp/1000-2000",
            "udp/53",
            "udp/60000-65535",
            "icmp",
            "any"
        ]
    );
}

#[test]
fn rules_may_be_absent() {
    let p = Policy::from_json(r#"{ "default": "deny" }"#).unwrap();
    assert!(p.rules.is_empty());
}

/// A one-rule policy with `field` replaced by `value` (raw JSON).
fn with_rule(field: &str, value: &str) -> String {
    let mut fields = vec![
        ("name", r#""web-to-db""#.to_owned()),
        ("from", r#"{ "labels": { "app": "web" } }"#.to_owned()),
        ("to", r#"{ "labels": { "app": "db" } }"#.to_owned()),
        ("ports", r#"["tcp/5432"]"#.to_owned()),
    ];
    fields.retain(|(k, _)| *k != field);
    if !value.is_empty() {
        fields.push((field, value.to_owned()));
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!(
        r#"{{ "default": "deny", "rules": [
            {{ "name": "ok", "from": "*", "to": "*", "ports": ["any"] }},
            {{ {} }} ] }}"#,
        body.join(", ")
    )
}

#[test]
fn each_validation_failure_has_a_clear_message() {
    let cases: &[(String, &str)] = &[
        (
            r#"{ "default": "maybe" }"#.into(),
            r#"policy: default "maybe": must be "allow" or "deny""#,
        ),
        (r#"{ "rules": [] }"#.into(), "policy: default: is required"),
        (
            r#"{ "default": "deny", "rulez": [] }"#.into(),
            "policy: rulez: unknown field (expected one of: default, rules, quarantine)",
        ),
        (
            r#"{ "default": "deny", "rules": {} }"#.into(),
            "policy: rules: must be an array",
        ),
        (r#"[]"#.into(), "policy: document: must be an object"),
        (
            r#"{ "default": "deny", "rules": [ 7 ] }"#.into(),
            "rule 0: rule: must be an object",
        ),
        (
            with_rule("ports", r#"["tcp/99999"]"#),
            r#"rule 1 ("web-to-db"): ports[0] "tcp/99999": port must be 1-65535"#,
        ),
        (
            with_rule("ports", r#"["tcp/0"]"#),
            r#"rule 1 ("web-to-db"): ports[0] "tcp/0": port must be 1-65535"#,
        ),
        (
            with_rule("ports", r#"["tcp/0-10"]"#),
            r#"rule 1 ("web-to-db"): ports[0] "tcp/0-10": port must be 1-65535"#,
        ),
        (
            with_rule("ports", r#"["udp/100-10"]"#),
            r#"rule 1 ("web-to-db"): ports[0] "udp/100-10": range start 100 is greater than its end 10"#,
        ),
        (
            with_rule("ports", r#"["icmp", "sctp/80"]"#),
            r#"rule 1 ("web-to-db"): ports[1] "sctp/80": must look like tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or any"#,
        ),
        (
            with_rule("ports", r#"["tcp/+80"]"#),
            r#"rule 1 ("web-to-db"): ports[0] "tcp/+80": must look like tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or any"#,
        ),
        (
            with_rule("ports", r#"["TCP/80"]"#),
            r#"rule 1 ("web-to-db"): ports[0] "TCP/80": must look like tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or any"#,
        ),
        (
            with_rule("ports", r#"[5432]"#),
            r#"rule 1 ("web-to-db"): ports[0]: must be a string like "tcp/443""#,
        ),
        (
            with_rule("ports", r#"[]"#),
            r#"rule 1 ("web-to-db"): ports: must list at least one entry (use "any" for all traffic)"#,
        ),
        (
            with_rule("ports", r#""tcp/80""#),
            r#"rule 1 ("web-to-db"): ports: must be an array"#,
        ),
        (
            with_rule("ports", ""),
            r#"rule 1 ("web-to-db"): ports: is required"#,
        ),
        (with_rule("name", ""), "rule 1: name: is required"),
        (
            with_rule("name", r#""""#),
            "rule 1: name: must not be empty",
        ),
        (
            with_rule("name", r#""  ""#),
            "rule 1: name: must not be empty",
        ),
        (with_rule("name", "3"), "rule 1: name: must be a string"),
        (
            with_rule("name", r#""ok""#),
            r#"rule 1 ("ok"): name: name is already used by rule 0"#,
        ),
        (
            with_rule("prots", r#"["any"]"#),
            r#"rule 1 ("web-to-db"): prots: unknown field (expected one of: name, from, to, ports)"#,
        ),
        (
            with_rule("from", ""),
            r#"rule 1 ("web-to-db"): from: is required"#,
        ),
        (
            with_rule("from", r#""all""#),
            r#"rule 1 ("web-to-db"): from: must be "*" or an object with exactly one of "labels", "cidr" or "member""#,
        ),
        (
            with_rule("from", r#"{ "label": { "a": "b" } }"#),
            r#"rule 1 ("web-to-db"): from: must be "*" or an object with exactly one of "labels", "cidr" or "member""#,
        ),
        (
            with_rule("from", r#"{ "member": "a", "cidr": "10.0.0.0/8" }"#),
            r#"rule 1 ("web-to-db"): from: must be "*" or an object with exactly one of "labels", "cidr" or "member""#,
        ),
        (
            with_rule("to", r#"{ "labels": {} }"#),
            r#"rule 1 ("web-to-db"): to.labels: must name at least one label"#,
        ),
        (
            with_rule("to", r#"{ "labels": { "app": 1 } }"#),
            r#"rule 1 ("web-to-db"): to.labels.app: must be a string"#,
        ),
        (
            with_rule("to", r#"{ "labels": { "": "x" } }"#),
            r#"rule 1 ("web-to-db"): to.labels key "": must not be empty"#,
        ),
        (
            with_rule("to", r#"{ "labels": ["app"] }"#),
            r#"rule 1 ("web-to-db"): to.labels: must be an object"#,
        ),
        (
            with_rule("to", r#"{ "cidr": "10.1.2.3/16" }"#),
            r#"rule 1 ("web-to-db"): to.cidr "10.1.2.3/16": host bits are set (did you mean 10.1.0.0/16?)"#,
        ),
        (
            with_rule("to", r#"{ "cidr": "10.1.2.0/33" }"#),
            r#"rule 1 ("web-to-db"): to.cidr "10.1.2.0/33": must be an IPv4 or IPv6 network like 10.0.0.0/8 or fd00::/64"#,
        ),
        (
            with_rule("to", r#"{ "cidr": "10.1.2.0" }"#),
            r#"rule 1 ("web-to-db"): to.cidr "10.1.2.0": must be an IPv4 or IPv6 network like 10.0.0.0/8 or fd00::/64"#,
        ),
        (
            with_rule("to", r#"{ "cidr": "fd00::1/8" }"#),
            r#"rule 1 ("web-to-db"): to.cidr "fd00::1/8": host bits are set (did you mean fd00::/8?)"#,
        ),
        (
            with_rule("to", r#"{ "cidr": "fd00::/129" }"#),
            r#"rule 1 ("web-to-db"): to.cidr "fd00::/129": must be an IPv4 or IPv6 network like 10.0.0.0/8 or fd00::/64"#,
        ),
        (
            with_rule("to", r#"{ "cidr": 10 }"#),
            r#"rule 1 ("web-to-db"): to.cidr: must be a string"#,
        ),
        (
            with_rule("to", r#"{ "member": "" }"#),
            r#"rule 1 ("web-to-db"): to.member: must not be empty"#,
        ),
        (
            with_rule("to", r#"{ "member": 5 }"#),
            r#"rule 1 ("web-to-db"): to.member: must be a string"#,
        ),
    ];
    for (text, want) in cases {
        let err = Policy::from_json(text).expect_err(text);
        assert_eq!(err.to_string(), *want, "input: {text}");
    }
}

#[test]
fn json_syntax_errors_are_reported_as_such() {
    let err = Policy::from_json("{ \"default\": ").unwrap_err();
    assert!(
        err.to_string().starts_with("policy is not valid JSON: "),
        "{err}"
    );
    assert!(err.problem().is_none());
}

#[test]
fn errors_are_typed() {
    let err = Policy::from_json(&with_rule("ports", r#"["tcp/9-1"]"#)).unwrap_err();
    assert_eq!(
        err.problem(),
        Some(&Problem::ReversedRange { start: 9, end: 1 })
    );
}

#[test]
fn serializes_back_to_the_same_shape() {
    let p = Policy::from_json(EXAMPLE).unwrap();
    let back: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    let original: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    assert_eq!(back, original);
}

#[test]
fn serde_deserialize_validates_too() {
    let p: Policy = serde_json::from_str(EXAMPLE).unwrap();
    assert_eq!(p, Policy::from_json(EXAMPLE).unwrap());
    let err = serde_json::from_str::<Policy>(&with_rule("ports", r#"["tcp/99999"]"#)).unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"ports[0] "tcp/99999": port must be 1-65535"#),
        "{err}"
    );
}

#[test]
fn validate_checks_hand_built_policies() {
    let rule = |name: &str| Rule {
        name: name.into(),
        from: Selector::Any,
        to: Selector::Cidr("10.1.2.3/16".parse().unwrap()),
        ports: vec![PortSpec::Any],
    };
    let p = Policy {
        quarantine: None,
        default: Action::Deny,
        rules: vec![rule("a")],
    };
    assert!(matches!(
        p.validate().unwrap_err().problem(),
        Some(Problem::HostBitsSet { .. })
    ));
}

proptest! {
    #[test]
    fn round_trips_through_json(
        allow in any::<bool>(),
        rules in prop::collection::vec(
            (arb_selector(), arb_selector(), prop::collection::vec(arb_port_spec(u16::MAX), 1..4)), 0..6),
    ) {
        let policy = Policy {
            quarantine: None,
            default: if allow { Action::Allow } else { Action::Deny },
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (from, to, ports))| Rule { name: format!("r{i}"), from, to, ports })
                .collect(),
        };
        let back = Policy::from_json(&policy.to_json()).unwrap();
        prop_assert_eq!(back, policy);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Policy::from_json(&text);
    }

    #[test]
    fn arbitrary_port_specs_never_panic(text in "(tcp|udp|icmp|any|x)?/?[0-9-]{0,12}") {
        let _ = super::parse_port_spec(&text);
    }
}
