//! The network configuration the runtime passes on stdin.

use std::path::PathBuf;

use segwire_proto::api::Labels;
use segwire_proto::names::{validate_label, validate_segment_name};
use serde_json::{Map, Value};

use crate::result::{
    CniError, INCOMPATIBLE_VERSION, INVALID_CONFIG, LATEST_VERSION, SUPPORTED_VERSIONS,
};

/// Where the agent listens unless the config says `agent_socket`.
pub const DEFAULT_SOCKET: &str = "/var/lib/segwire/agent.sock";

/// The keys of the GC valid-attachments list (the second is an older spelling runtimes
/// also send).
const ATTACHMENT_KEYS: [&str; 2] = ["cni.dev/valid-attachments", "cni.dev/attachments"];

/// A network config that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`, one of [`SUPPORTED_VERSIONS`].
    pub cni_version: String,
    /// `segment`.
    pub segment: String,
    /// `labels` of the network.
    pub labels: Labels,
    /// `runtimeConfig.labels` (per container).
    pub runtime_labels: Labels,
    /// `agent_socket`.
    pub agent_socket: PathBuf,
    /// `prevResult`, if the runtime passed one.
    pub prev_result: Option<Value>,
    /// `disableGC`.
    pub disable_gc: bool,
    /// The valid-attachments list as given, if any.
    attachments: Option<Value>,
}

/// What DEL takes from a config that may be partly broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lenient {
    /// `segment`, if present and valid.
    pub segment: Option<String>,
    /// `agent_socket`, or the default.
    pub agent_socket: PathBuf,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(INVALID_CONFIG, msg)
}

fn object(stdin: &[u8]) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("the network config on stdin is not a JSON object")),
        Err(e) => {
            Err(invalid("the network config on stdin is not valid JSON")
                .with_details(e.to_string()))
        }
    }
}

/// The `cniVersion` to print answers with: the config's if supported, else the newest.
pub fn output_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .as_ref()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(LATEST_VERSION)
        .to_owned()
}

fn socket(map: &Map<String, Value>) -> Result<PathBuf, CniError> {
    match map.get("agent_socket") {
        None | Some(Value::Null) => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(Value::String(s)) if !s.is_empty() => Ok(PathBuf::from(s)),
        Some(_) => Err(invalid(
            "agent_socket must be a non-empty string (a socket path)",
        )),
    }
}

fn labels(value: Option<&Value>, what: &str) -> Result<Labels, CniError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Labels::new());
    };
    let Value::Object(map) = value else {
        return Err(invalid(format!("{what} must be an object of strings")));
    };
    let mut labels = Labels::new();
    for (k, v) in map {
        let Value::String(v) = v else {
            return Err(invalid(format!("{what}.{k} must be a string")));
        };
        for part in [k, v] {
            validate_label(part)
                .map_err(|e| invalid(format!("{what}.{k}={v:?} is not a valid label: {e}")))?;
        }
        labels.insert(k.clone(), v.clone());
    }
    Ok(labels)
}

/// Parses and checks the whole config (ADD, CHECK, GC, STATUS).
///
/// # Errors
/// Code 7 for a broken config, code 1 for an unsupported `cniVersion`.
pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let map = object(stdin)?;
    let cni_version = match map.get("cniVersion") {
        Some(Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => v.clone(),
        Some(Value::String(v)) => {
            return Err(CniError::new(
                INCOMPATIBLE_VERSION,
                format!("cniVersion {v:?} is not supported; segwire-cni supports 1.0.0 and 1.1.0"),
            ))
        }
        _ => {
            return Err(invalid(
                "cniVersion is missing; set it to \"1.0.0\" or \"1.1.0\"",
            ))
        }
    };
    let segment = match map.get("segment") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(invalid(
                "segment must be a string (the segwire segment name)",
            ))
        }
        None => {
            return Err(invalid(
                "segment is missing; name the segwire segment to attach to",
            ))
        }
    };
    validate_segment_name(&segment)
        .map_err(|e| invalid(format!("segment {segment:?} is not valid: {e}")))?;
    let runtime_labels = labels(
        map.get("runtimeConfig").and_then(|r| r.get("labels")),
        "runtimeConfig.labels",
    )?;
    Ok(NetConf {
        cni_version,
        segment,
        labels: labels(map.get("labels"), "labels")?,
        runtime_labels,
        agent_socket: socket(&map)?,
        prev_result: map.get("prevResult").filter(|v| !v.is_null()).cloned(),
        disable_gc: map
            .get("disableGC")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        attachments: ATTACHMENT_KEYS.iter().find_map(|k| map.get(*k)).cloned(),
    })
}

/// Takes what DEL needs from any config, broken or not.
pub fn parse_lenient(stdin: &[u8]) -> Lenient {
    let map = object(stdin).unwrap_or_default();
    let segment = map
        .get("segment")
        .and_then(Value::as_str)
        .filter(|s| validate_segment_name(s).is_ok())
        .map(str::to_owned);
    Lenient {
        segment,
        agent_socket: socket(&map).unwrap_or_else(|_| PathBuf::from(DEFAULT_SOCKET)),
    }
}

impl NetConf {
    /// The container ids of the GC valid-attachments list, each once, in order.
    ///
    /// # Errors
    /// Code 7 when the list is missing or malformed (GC without it would detach every
    /// container of the segment).
    pub fn valid_containers(&self) -> Result<Vec<String>, CniError> {
        let Some(Value::Array(list)) = &self.attachments else {
            return Err(invalid(
                "GC needs cni.dev/valid-attachments: a list of {\"containerID\", \"ifname\"} objects",
            ));
        };
        let mut ids: Vec<String> = Vec::with_capacity(list.len());
        for entry in list {
            let Some(id) = entry.get("containerID").and_then(Value::as_str) else {
                return Err(invalid(
                    "every entry of cni.dev/valid-attachments needs a containerID string",
                ));
            };
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests;
