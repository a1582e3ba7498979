//! The member name and MAC address the plugin derives for a container.

use segwire_proto::names::MAX_NODE_NAME;

/// How many characters of the container id the fallback name keeps.
const ID_CHARS: usize = 12;

/// Turns any string into a lowercase DNS label of at most 63 characters (maybe empty).
///
/// Lowercases ASCII, maps every other character outside `[a-z0-9-]` to `-`, collapses
/// runs of `-`, trims `-` at both ends and cuts to 63 characters.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let cut: String = out.chars().take(MAX_NODE_NAME).collect();
    cut.trim_end_matches('-').to_owned()
}

/// The member name: the sanitized `K8S_POD_NAME` if it leaves anything, else
/// `ctr-<first 12 characters of the container id>`.
pub fn member_name(pod_name: Option<&str>, container_id: &str) -> String {
    if let Some(name) = pod_name.map(sanitize).filter(|n| !n.is_empty()) {
        return name;
    }
    let short: String = container_id.chars().take(ID_CHARS).collect();
    sanitize(&format!("ctr-{short}"))
}

/// A stable locally administered unicast MAC address for `key` (the member id):
/// `02:` and then five bytes of its 64-bit FNV-1a hash, lowercase.
pub fn mac_for(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let b = hash.to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

#[cfg(test)]
mod tests {
    use segwire_proto::names::validate_member_name;

    use super::*;

    #[test]
    fn sanitizer_makes_dns_labels() {
        let cases = [
            ("web", "web"),
            ("My_Web.App", "my-web-app"),
            ("--a--b--", "a-b"),
            ("a   b", "a-b"),
            ("café-1", "caf-1"),
            ("ÉÉÉ", ""),
            ("", ""),
            ("---", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize(raw), want, "{raw:?}");
        }
        let long = format!("{}-tail", "x".repeat(62));
        let cut = sanitize(&long);
        assert_eq!(cut, "x".repeat(62), "the cut must not leave a trailing '-'");
        assert_eq!(sanitize(&"A".repeat(100)).len(), 63);
        for raw in ["My_Web.App", &long, "a/b\\c:d", "UPPER"] {
            assert_eq!(validate_member_name(&sanitize(raw)), Ok(()), "{raw:?}");
        }
    }

    #[test]
    fn member_name_prefers_the_pod_name() {
        let id = "3F6940AB5AB43BC522569D15B23F8C1B";
        assert_eq!(member_name(Some("Web_1"), id), "web-1");
        assert_eq!(member_name(None, id), "ctr-3f6940ab5ab4");
        assert_eq!(member_name(Some("___"), id), "ctr-3f6940ab5ab4");
        assert_eq!(member_name(Some(""), "abc"), "ctr-abc");
        assert_eq!(validate_member_name(&member_name(None, "a.b_c")), Ok(()));
    }

    #[test]
    fn macs_are_stable_local_unicast() {
        let mac = mac_for("m-123");
        assert_eq!(mac, mac_for("m-123"));
        assert_ne!(mac, mac_for("m-124"));
        assert!(mac.starts_with("02:"), "{mac}");
        let bytes: Vec<&str> = mac.split(':').collect();
        assert_eq!(bytes.len(), 6);
        assert!(bytes.iter().all(|b| b.len() == 2
            && b.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
    }
}
