//! Any bytes as an IPv4 packet: the parser and both firewall directions must not panic,
//! and a packet the parser refuses is never allowed.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use segwire_policy::{CompiledPolicy, ConntrackConfig, Firewall, Member, Packet, Policy};

const POLICY: &str = r#"{"default":"deny","rules":[
  {"name":"web","from":{"labels":{"role":"client"}},"to":{"labels":{"role":"web"}},"ports":["tcp/80","tcp/8000-8100"]},
  {"name":"dns","from":"*","to":"*","ports":["udp/53"]},
  {"name":"ping","from":"*","to":"*","ports":["icmp"]}]}"#;

fn member(name: &str, ip: [u8; 4], role: &str) -> Member {
    Member {
        name: name.into(),
        ip: Some(ip.into()),
        // Dual-stack, so the fuzzer reaches the IPv6 path too.
        ip6: Some(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(ip[3]))),
        labels: BTreeMap::from([("role".to_owned(), role.to_owned())]),
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = Packet::parse(data);
    let policy = Policy::from_json(POLICY).expect("the seed policy is valid");
    let local = member("web", [100, 64, 0, 1], "web");
    let peers = [member("client", [100, 64, 0, 2], "client")];
    let compiled = CompiledPolicy::compile(&policy, &local, &peers);
    let mut fw = Firewall::new(compiled, ConntrackConfig::default());
    let now = Instant::now();
    let ingress = fw.ingress(data, now);
    let egress = fw.egress(data, now + Duration::from_millis(1));
    if parsed.is_err() {
        assert!(!ingress.is_allowed() && !egress.is_allowed());
    }
    fw.expire(now + Duration::from_secs(3600));
});
