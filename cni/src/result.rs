//! What the plugin prints: the CNI error object, the ADD result and the VERSION answer.

use std::net::IpAddr;

use segwire_control::Attached;
use serde::Serialize;
use serde_json::{json, Value};

use crate::member;

/// The CNI versions this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];
/// The newest supported CNI version, used when the config names none we support.
pub const LATEST_VERSION: &str = "1.1.0";

/// CNI error code 1: incompatible CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// CNI error code 4: invalid necessary environment variables.
pub const INVALID_ENV: u32 = 4;
/// CNI error code 5: I/O failure.
pub const IO_FAILURE: u32 = 5;
/// CNI error code 7: invalid network config.
pub const INVALID_CONFIG: u32 = 7;
/// CNI error code 11: try again later.
pub const TRY_AGAIN_LATER: u32 = 11;
/// CNI error code 50: the plugin is not available (STATUS).
pub const NOT_AVAILABLE: u32 = 50;
/// Plugin-specific code 100: the agent refused the request, or CHECK found a difference.
pub const AGENT_REFUSED: u32 = 100;
/// Plugin-specific code 101: the plugin itself failed (a bug).
pub const INTERNAL: u32 = 101;

/// A CNI error: printed as the CNI error object on stdout, with exit status 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    /// The CNI error code.
    pub code: u32,
    /// One sentence for the user.
    pub msg: String,
    /// More context, if any.
    pub details: Option<String>,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// The same error with details added.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// The CNI error object as one JSON line.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a str>,
        }
        let wire = Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: self.details.as_deref(),
        };
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{LATEST_VERSION}","code":{},"msg":"segwire-cni failed"}}"#,
                self.code
            )
        })
    }
}

/// The VERSION answer.
pub fn version_json() -> String {
    json!({ "cniVersion": LATEST_VERSION, "supportedVersions": SUPPORTED_VERSIONS }).to_string()
}

/// The overlay address as a CIDR (`/32` or `/128` unless the agent gave a prefix).
///
/// # Errors
/// Code 100 when the agent's address is not an IP address.
pub fn address_cidr(address: &str) -> Result<String, CniError> {
    let (ip, prefix) = match address.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (address, None),
    };
    let parsed: IpAddr = ip.parse().map_err(|_| {
        CniError::new(
            AGENT_REFUSED,
            format!(
                "the agent answered with an overlay address {address:?} that is not an IP address"
            ),
        )
    })?;
    let prefix = match (prefix, parsed) {
        (Some(p), _) => p.to_owned(),
        (None, IpAddr::V4(_)) => "32".to_owned(),
        (None, IpAddr::V6(_)) => "128".to_owned(),
    };
    Ok(format!("{parsed}/{prefix}"))
}

/// The IP part of an address that may carry a prefix.
pub fn address_ip(address: &str) -> Option<IpAddr> {
    address.split('/').next().and_then(|ip| ip.parse().ok())
}

/// The ADD result for an attached member.
///
/// # Errors
/// Code 100 when the agent's answer has no usable address.
pub fn add_result(
    cni_version: &str,
    ifname: &str,
    netns: &str,
    attached: &Attached,
) -> Result<String, CniError> {
    let key = if attached.id.is_empty() {
        &attached.public_key
    } else {
        &attached.id
    };
    let mut result = json!({
        "cniVersion": cni_version,
        "interfaces": [{ "name": ifname, "mac": member::mac_for(key), "sandbox": netns }],
        "ips": [],
        "dns": {},
    });
    let addresses = (!attached.address.is_empty())
        .then_some(attached.address.as_str())
        .into_iter()
        .chain(attached.address6.as_deref());
    let mut ips = Vec::new();
    for a in addresses {
        ips.push(json!({ "address": address_cidr(a)?, "interface": 0 }));
    }
    if ips.is_empty() {
        return Err(CniError::new(
            AGENT_REFUSED,
            "the agent answered with no overlay address",
        ));
    }
    result["ips"] = Value::Array(ips);
    let routes: Vec<Value> = (!attached.cidr.is_empty())
        .then_some(attached.cidr.as_str())
        .into_iter()
        .chain(attached.cidr6.as_deref())
        .map(|dst| json!({ "dst": dst }))
        .collect();
    if !routes.is_empty() {
        result["routes"] = Value::Array(routes);
    }
    Ok(result.to_string())
}

/// The addresses listed in a previous result's `ips`.
pub fn prev_result_ips(prev: &Value) -> Vec<IpAddr> {
    prev.get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address").and_then(Value::as_str))
                .filter_map(address_ip)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_the_cni_fields() {
        let e = CniError::new(7, "bad").with_details("more");
        let v: Value = serde_json::from_str(&e.to_json("1.0.0")).expect("json");
        assert_eq!(
            v,
            json!({"cniVersion":"1.0.0","code":7,"msg":"bad","details":"more"})
        );
        let v: Value = serde_json::from_str(&CniError::new(4, "x").to_json("1.1.0")).expect("json");
        assert!(v.get("details").is_none());
    }

    #[test]
    fn addresses_get_a_host_prefix() {
        assert_eq!(address_cidr("10.1.0.5").expect("v4"), "10.1.0.5/32");
        assert_eq!(address_cidr("fd00::5").expect("v6"), "fd00::5/128");
        assert_eq!(address_cidr("10.1.0.5/24").expect("given"), "10.1.0.5/24");
        assert_eq!(address_cidr("").expect_err("empty").code, AGENT_REFUSED);
    }

    #[test]
    fn an_ipv6_only_member_gets_only_its_ipv6_address_and_route() {
        let attached = Attached {
            id: "m-1".into(),
            name: "web1".into(),
            segment: "web".into(),
            workload: "path:/run/netns/x".into(),
            interface: "eth0".into(),
            address: String::new(),
            cidr: String::new(),
            address6: Some("fd00:9::2".into()),
            cidr6: Some("fd00:9::/64".into()),
            listen_port: 40000,
            public_key: "pk".into(),
            up: true,
            container: None,
        };
        let v: Value = serde_json::from_str(
            &add_result("1.0.0", "eth0", "/run/netns/x", &attached).expect("result"),
        )
        .expect("json");
        assert_eq!(
            v["ips"],
            json!([{"address": "fd00:9::2/128", "interface": 0}])
        );
        assert_eq!(v["routes"], json!([{"dst": "fd00:9::/64"}]));
        let mut none = attached;
        none.address6 = None;
        let e = add_result("1.0.0", "eth0", "/run/netns/x", &none).expect_err("no address");
        assert_eq!(e.code, AGENT_REFUSED);
    }

    #[test]
    fn prev_result_addresses_are_read() {
        let prev = json!({"ips":[{"address":"10.1.0.5/32","interface":0}]});
        assert_eq!(
            prev_result_ips(&prev),
            vec![address_ip("10.1.0.5").expect("ip")]
        );
        assert!(prev_result_ips(&json!({})).is_empty());
    }
}
