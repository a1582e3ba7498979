//! Any text as a UAPI request (the lines `wg` sends before the empty line), and as an
//! interface name and member id for a socket name: the parser answers a request or a
//! typed error, never a panic; a `set=1` is refused exactly when it changes something;
//! a socket name always fits `wg`'s limit and has the shape the agent's sweep looks for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segwire_uapi::{
    looks_like_member_socket, parse_request, set_errno, socket_name, Request, EPERM, MAX_NAME,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    match parse_request(&lines) {
        Ok(Request::Get) => assert_eq!(lines, ["get=1"]),
        Ok(Request::Set { keys }) => {
            assert_eq!(keys.len(), lines.len() - 1);
            let want = if keys.is_empty() { 0 } else { EPERM };
            assert_eq!(set_errno(&keys), want);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Some((iface, id)) = text.split_once('\0') {
        if let Some(name) = socket_name(iface, id, |_| false) {
            assert!(name.len() <= MAX_NAME, "{name:?}");
            let hex_id = id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            if hex_id && name.split('.').next().is_some_and(|i| !i.is_empty()) {
                assert!(looks_like_member_socket(&name), "{name:?}");
            }
        }
    }
});
