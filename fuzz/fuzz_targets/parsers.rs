//! Any text as a join token, a netmap and a policy document: each parser answers Ok or a
//! typed error, never a panic; what parses renders and parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segwire_policy::Policy;
use segwire_proto::netmap::NetMap;
use segwire_proto::JoinToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = text.parse::<JoinToken>() {
        let again: JoinToken = token.encode().parse().expect("an encoded token parses");
        assert_eq!(again, token);
    }
    if let Ok(map) = serde_json::from_str::<NetMap>(text) {
        let json = serde_json::to_string(&map).expect("a netmap renders");
        let again: NetMap = serde_json::from_str(&json).expect("a rendered netmap parses");
        assert_eq!(again, map);
    }
    if let Ok(policy) = Policy::from_json(text) {
        let again = Policy::from_json(&policy.to_json()).expect("a rendered policy parses");
        assert_eq!(again.to_json(), policy.to_json());
    }
});
