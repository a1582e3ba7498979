//! Naming rules for segments, nodes, members and labels.
//!
//! Names end up in interface names, URLs, log lines and policy files, so they are kept to
//! a small, safe alphabet: this module is the single definition of that alphabet.

use thiserror::Error;

/// Longest segment name the coordinator accepts.
pub const MAX_SEGMENT_NAME: usize = 32;
/// Longest node or member name the coordinator accepts.
pub const MAX_NODE_NAME: usize = 63;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name was refused; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name was empty.
    #[error("{kind} name must not be empty")]
    Empty {
        /// What was being named ("segment", "node", ...).
        kind: &'static str,
    },
    /// The name was longer than allowed.
    #[error("{kind} name is {len} characters long; the limit is {max}")]
    TooLong {
        /// What was being named.
        kind: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name has the form of an id (16 hex digits), so it could stand for another node.
    #[error("node name {shown:?} looks like a node id (16 hex digits); commands take a name or an id, so choose a name with a letter g-z or a '-'")]
    LooksLikeId {
        /// The name, shortened for display.
        shown: String,
    },
    /// The name used a character outside the allowed set.
    #[error("{kind} name {shown:?} may only use lowercase letters a-z, digits 0-9 and '-', and must start and end with a letter or digit")]
    BadCharacters {
        /// What was being named.
        kind: &'static str,
        /// The name, shortened for display.
        shown: String,
    },
}

fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(40).collect();
    if name.chars().count() > 40 {
        s.push('…');
    }
    s
}

fn check_dns_label(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = name.chars().count();
    if len > max {
        return Err(NameError::TooLong { kind, len, max });
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = !name.starts_with('-') && !name.ends_with('-');
    if ok_chars && ok_ends {
        Ok(())
    } else {
        Err(NameError::BadCharacters {
            kind,
            shown: shown(name),
        })
    }
}

/// Checks a segment name: a lowercase DNS label of at most [`MAX_SEGMENT_NAME`] characters.
pub fn validate_segment_name(name: &str) -> Result<(), NameError> {
    check_dns_label("segment", name, MAX_SEGMENT_NAME)
}

/// Checks a node name: a lowercase DNS label of at most [`MAX_NODE_NAME`] characters that
/// does not look like a node id (16 hex digits), because commands take a name or an id
/// and such a name could stand for another node.
pub fn validate_node_name(name: &str) -> Result<(), NameError> {
    check_dns_label("node", name, MAX_NODE_NAME)?;
    if looks_like_id(name) {
        return Err(NameError::LooksLikeId { shown: shown(name) });
    }
    Ok(())
}

/// Whether `s` has the form of a coordinator id: 16 lowercase hex digits.
#[must_use]
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a member name: a lowercase DNS label of at most [`MAX_NODE_NAME`] characters.
pub fn validate_member_name(name: &str) -> Result<(), NameError> {
    check_dns_label("member", name, MAX_NODE_NAME)
}

/// Checks one label key or value: 1-63 characters of `[A-Za-z0-9._-]`.
pub fn validate_label(part: &str) -> Result<(), NameError> {
    let kind = "label";
    if part.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = part.chars().count();
    if len > MAX_LABEL_LEN {
        return Err(NameError::TooLong {
            kind,
            len,
            max: MAX_LABEL_LEN,
        });
    }
    if part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(NameError::BadCharacters {
            kind,
            shown: shown(part),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_that_look_like_ids_are_refused() {
        let err = validate_node_name("5a7a64e99b7a4d52").expect_err("an id");
        assert!(matches!(err, NameError::LooksLikeId { .. }), "{err}");
        assert!(
            validate_node_name("5a7a64e99b7a4d5").is_ok(),
            "15 digits is a name"
        );
        assert!(validate_node_name("host-5a7a64e99b7a").is_ok());
        assert!(validate_node_name("5a7a64e99b7a4d5g").is_ok());
    }

    #[test]
    fn segment_names() {
        for good in ["web", "db", "a", "payments-eu-1", &"x".repeat(32)] {
            assert_eq!(validate_segment_name(good), Ok(()), "{good}");
        }
        let long = "x".repeat(5000);
        for bad in [
            "", "Web", "a/b", "..", "a b", "a\0b", "-a", "a-", "é", &long, "a_b",
        ] {
            assert!(validate_segment_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_parts() {
        assert!(validate_label("app").is_ok());
        assert!(validate_label("team.x_y-Z9").is_ok());
        assert!(validate_label("a=b").is_err());
        assert!(validate_label("").is_err());
    }
}
