//! The optional `"quarantine"` block of a policy file: which detections cut the offending
//! member off from every peer of the segment, and for how long.
//!
//! ```json
//! "quarantine": { "on": ["scan", "spoof"], "for": "10m" }
//! ```
//!
//! Only detections whose offender is the reporting node's own member can trigger it: a
//! scan (the member probed its peers) and a spoof the member *sent*. A handshake failure
//! names an underlay address, and a denied burst or a spoof *received* names a member
//! of another node, so those are alerts only.

use std::fmt;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{FieldRef, PolicyError, Problem};

/// Shortest quarantine accepted.
pub const MIN_QUARANTINE: Duration = Duration::from_secs(1);
/// Longest quarantine accepted (a week).
pub const MAX_QUARANTINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A detection that may quarantine its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    /// `scan`: many denied attempts to distinct peer ports.
    Scan,
    /// `spoof`: packets sent with a source address not the member's.
    Spoof,
}

/// The `"quarantine"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// Detections that trigger it (at least one, no repeats).
    pub on: Vec<Trigger>,
    /// How long the member stays cut off (`"for"`).
    pub duration: Duration,
}

impl Trigger {
    /// The name used in policy files and events (`scan`, `spoof`).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scan => "scan",
            Trigger::Spoof => "spoof",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Quarantine {
    /// Whether a detection of this kind quarantines its member.
    pub fn triggers(&self, t: Trigger) -> bool {
        self.on.contains(&t)
    }
}

impl Serialize for Quarantine {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Quarantine", 2)?;
        let on: Vec<&str> = self.on.iter().map(|t| t.as_str()).collect();
        st.serialize_field("on", &on)?;
        st.serialize_field(
            "for",
            &humantime::format_duration(self.duration).to_string(),
        )?;
        st.end()
    }
}

fn err(path: &str, value: Option<String>, problem: Problem) -> PolicyError {
    PolicyError::Policy {
        field: match value {
            Some(v) => FieldRef::with_value(path, v),
            None => FieldRef::new(path),
        },
        problem,
    }
}

/// Validates the `"quarantine"` value of a policy document.
pub(crate) fn from_value(value: &Value) -> Result<Quarantine, PolicyError> {
    let obj = value.as_object().ok_or_else(|| {
        err(
            "quarantine",
            None,
            Problem::WrongType {
                expected: "an object",
            },
        )
    })?;
    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "on" | "for")) {
        return Err(err(
            &format!("quarantine.{key}"),
            None,
            Problem::UnknownField {
                expected: "on, for",
            },
        ));
    }
    let items = match obj.get("on") {
        None => return Err(err("quarantine.on", None, Problem::Missing)),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(err("quarantine.on", None, Problem::NoTriggers))
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(err(
                "quarantine.on",
                None,
                Problem::WrongType {
                    expected: "an array",
                },
            ))
        }
    };
    let mut on = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("quarantine.on[{i}]");
        let t = match item.as_str() {
            Some("scan") => Trigger::Scan,
            Some("spoof") => Trigger::Spoof,
            Some(other) => return Err(err(&path, Some(other.into()), Problem::BadTrigger)),
            None => return Err(err(&path, None, Problem::BadTrigger)),
        };
        if !on.contains(&t) {
            on.push(t);
        }
    }
    let duration = match obj.get("for") {
        None => return Err(err("quarantine.for", None, Problem::Missing)),
        Some(Value::String(s)) => match humantime::parse_duration(s) {
            Ok(d) if (MIN_QUARANTINE..=MAX_QUARANTINE).contains(&d) => d,
            _ => return Err(err("quarantine.for", Some(s.clone()), Problem::BadDuration)),
        },
        Some(_) => return Err(err("quarantine.for", None, Problem::BadDuration)),
    };
    Ok(Quarantine { on, duration })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    fn parse(block: &str) -> Result<Policy, PolicyError> {
        Policy::from_json(&format!(
            r#"{{ "default": "deny", "rules": [], "quarantine": {block} }}"#
        ))
    }

    #[test]
    fn the_documented_block_parses_and_round_trips() {
        let p = parse(r#"{ "on": ["scan", "spoof"], "for": "10m" }"#).expect("parse");
        let q = p.quarantine.clone().expect("quarantine");
        assert_eq!(q.on, vec![Trigger::Scan, Trigger::Spoof]);
        assert_eq!(q.duration, Duration::from_secs(600));
        assert!(q.triggers(Trigger::Scan));
        assert_eq!(Policy::from_json(&p.to_json()).expect("again"), p);
        assert!(p.to_json().contains("\"for\": \"10m\""), "{}", p.to_json());
    }

    #[test]
    fn a_policy_without_the_block_has_none() {
        let p = Policy::from_json(r#"{ "default": "allow" }"#).expect("parse");
        assert_eq!(p.quarantine, None);
        assert!(!p.to_json().contains("quarantine"));
    }

    #[test]
    fn bad_blocks_say_what_is_wrong() {
        for (block, want) in [
            (r#"{ "on": ["scan"] }"#, "quarantine.for: is required"),
            (r#"{ "for": "1m" }"#, "quarantine.on: is required"),
            (r#"{ "on": [], "for": "1m" }"#, "quarantine.on: must name"),
            (
                r#"{ "on": ["handshake_failed"], "for": "1m" }"#,
                r#"quarantine.on[0] "handshake_failed": must be "scan" or "spoof""#,
            ),
            (
                r#"{ "on": ["scan"], "for": "forever" }"#,
                r#"quarantine.for "forever""#,
            ),
            (r#"{ "on": ["scan"], "for": "30d" }"#, "quarantine.for"),
            (
                r#"{ "on": ["scan"], "for": "1m", "x": 1 }"#,
                "quarantine.x: unknown field",
            ),
            ("[]", "quarantine: must be an object"),
        ] {
            let e = parse(block).expect_err(block).to_string();
            assert!(e.contains(want), "{block}: {e}");
        }
    }
}
