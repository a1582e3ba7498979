//! Policy file errors: each one names the rule (index and name) and the field at fault.

use std::fmt;

use ipnet::IpNet;

/// Why a policy file was rejected.
///
/// Rule indices count from 0, like the positions inside `ports[…]`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not JSON at all.
    #[error("policy is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A top-level field (`default`, `rules`) is wrong.
    #[error("policy: {field}: {problem}")]
    Policy {
        /// Where the problem is, e.g. `default "maybe"`.
        field: FieldRef,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A field inside one rule is wrong.
    #[error("rule {index}{}: {field}: {problem}", RuleName(name.as_deref()))]
    Rule {
        /// Position of the rule in `rules`, from 0.
        index: usize,
        /// The rule's name, when it has a readable one.
        name: Option<String>,
        /// Where the problem is, e.g. `ports[0] "tcp/99999"`.
        field: FieldRef,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// A field path plus, where it helps, the offending value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    /// Path of the field, e.g. `from.cidr` or `ports[2]`.
    pub path: String,
    /// The offending text, e.g. `tcp/99999`.
    pub value: Option<String>,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required field is absent.
    #[error("is required")]
    Missing,
    /// A field the format does not know.
    #[error("unknown field (expected one of: {expected})")]
    UnknownField {
        /// The fields allowed at this place.
        expected: &'static str,
    },
    /// A field of the wrong JSON type.
    #[error("must be {expected}")]
    WrongType {
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },
    /// An empty (or blank) name.
    #[error("must not be empty")]
    Empty,
    /// A rule name used twice.
    #[error("name is already used by rule {first}")]
    DuplicateName {
        /// Index of the rule that used it first.
        first: usize,
    },
    /// `default` is not `allow` or `deny`.
    #[error("must be \"allow\" or \"deny\"")]
    BadDefault,
    /// A selector of an unknown shape.
    #[error("must be \"*\" or an object with exactly one of \"labels\", \"cidr\" or \"member\"")]
    BadSelector,
    /// `labels` is an empty map.
    #[error("must name at least one label")]
    EmptyLabels,
    /// Not an IPv4 or IPv6 network in CIDR notation.
    #[error("must be an IPv4 or IPv6 network like 10.0.0.0/8 or fd00::/64")]
    BadCidr,
    /// A CIDR with host bits set, such as `10.1.2.3/16`.
    #[error("host bits are set (did you mean {network}?)")]
    HostBitsSet {
        /// The network with the host bits cleared.
        network: IpNet,
    },
    /// `ports` is an empty list.
    #[error("must list at least one entry (use \"any\" for all traffic)")]
    NoPorts,
    /// A port entry that is not one of the known forms.
    #[error("must look like tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or any")]
    BadPortSyntax,
    /// A port number outside 1-65535.
    #[error("port must be 1-65535")]
    PortOutOfRange,
    /// `quarantine.on` is an empty list.
    #[error("must name at least one detection (\"scan\", \"spoof\")")]
    NoTriggers,
    /// A `quarantine.on` entry that cannot quarantine.
    #[error("must be \"scan\" or \"spoof\" (the detections that name the offending member)")]
    BadTrigger,
    /// `quarantine.for` is not a duration in range.
    #[error("must be a duration from 1s to 7d, like \"10m\"")]
    BadDuration,
    /// A range whose start is above its end.
    #[error("range start {start} is greater than its end {end}")]
    ReversedRange {
        /// The range start as written.
        start: u16,
        /// The range end as written.
        end: u16,
    },
}

impl FieldRef {
    pub(crate) fn new(path: impl Into<String>) -> FieldRef {
        FieldRef {
            path: path.into(),
            value: None,
        }
    }

    pub(crate) fn with_value(path: impl Into<String>, value: impl Into<String>) -> FieldRef {
        FieldRef {
            path: path.into(),
            value: Some(value.into()),
        }
    }
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(value) = &self.value {
            write!(f, " {value:?}")?;
        }
        Ok(())
    }
}

struct RuleName<'a>(Option<&'a str>);

impl fmt::Display for RuleName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " ({name:?})"),
            None => Ok(()),
        }
    }
}

impl PolicyError {
    /// The problem, when the error is about a field (not about JSON syntax).
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            PolicyError::Json(_) => None,
            PolicyError::Policy { problem, .. } | PolicyError::Rule { problem, .. } => {
                Some(problem)
            }
        }
    }
}
