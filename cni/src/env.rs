//! The `CNI_*` environment variables and the `CNI_ARGS` pairs.

use segwire_proto::api::Labels;
use segwire_proto::names::validate_label;

use crate::result::{CniError, INVALID_ENV};

/// The `CNI_ARGS` key prefix of a per-container label.
pub const LABEL_PREFIX: &str = "SEGWIRE_LABEL_";
/// The `CNI_ARGS` key holding the container (pod) name.
pub const POD_NAME: &str = "K8S_POD_NAME";

/// The CNI variables the runtime set; empty values count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Option<String>,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS` (maybe empty).
    pub args: String,
}

impl Env {
    /// Reads the variables through `get` (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Env {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS").unwrap_or_default(),
        }
    }

    /// `CNI_CONTAINERID`, which must be set.
    ///
    /// # Errors
    /// Code 4 when it is missing.
    pub fn container_id(&self) -> Result<&str, CniError> {
        required("CNI_CONTAINERID", self.container_id.as_deref())
    }

    /// `CNI_CONTAINERID`, which must be set and use the spec's alphabet
    /// (an alphanumeric, then alphanumerics, `_`, `.` or `-`).
    ///
    /// # Errors
    /// Code 4 when it is missing or malformed.
    pub fn checked_container_id(&self) -> Result<&str, CniError> {
        let id = self.container_id()?;
        let mut bytes = id.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            Ok(id)
        } else {
            Err(CniError::new(
                INVALID_ENV,
                format!("CNI_CONTAINERID {id:?} must be letters, digits, '_', '.' or '-', starting with a letter or digit"),
            ))
        }
    }

    /// `CNI_IFNAME`, which must be set and a valid Linux interface name.
    ///
    /// # Errors
    /// Code 4 when it is missing or not a usable interface name.
    pub fn ifname(&self) -> Result<&str, CniError> {
        let name = required("CNI_IFNAME", self.ifname.as_deref())?;
        let bad_char = name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if name.len() > 15 || name == "." || name == ".." || bad_char {
            return Err(CniError::new(
                INVALID_ENV,
                format!("CNI_IFNAME {name:?} is not a valid interface name (at most 15 bytes, no '/', ':' or spaces)"),
            ));
        }
        Ok(name)
    }

    /// `CNI_NETNS`, which must be set and an absolute path.
    ///
    /// # Errors
    /// Code 4 when it is missing or relative.
    pub fn netns(&self) -> Result<&str, CniError> {
        let netns = required("CNI_NETNS", self.netns.as_deref())?;
        if !netns.starts_with('/') {
            return Err(CniError::new(
                INVALID_ENV,
                format!("CNI_NETNS {netns:?} must be an absolute path to a network namespace"),
            ));
        }
        Ok(netns)
    }

    /// The parsed `CNI_ARGS`.
    pub fn cni_args(&self) -> CniArgs {
        CniArgs::parse(&self.args)
    }
}

fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, CniError> {
    value.ok_or_else(|| {
        CniError::new(
            INVALID_ENV,
            format!("{name} is not set; the container runtime must set it for this command"),
        )
    })
}

/// `CNI_ARGS`: `K=V` pairs separated by `;`. Pairs without `=` are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Splits `K=V;K2=V2`.
    pub fn parse(text: &str) -> CniArgs {
        let pairs = text
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        CniArgs { pairs }
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `K8S_POD_NAME`, if set and not empty.
    pub fn pod_name(&self) -> Option<&str> {
        self.get(POD_NAME).filter(|v| !v.is_empty())
    }

    /// The labels given as `SEGWIRE_LABEL_<key>=<value>` (later pairs win).
    ///
    /// # Errors
    /// Code 4 when a key or value is not a valid label.
    pub fn labels(&self) -> Result<Labels, CniError> {
        let mut labels = Labels::new();
        for (k, v) in &self.pairs {
            let Some(key) = k.strip_prefix(LABEL_PREFIX) else {
                continue;
            };
            for part in [key, v.as_str()] {
                validate_label(part).map_err(|e| {
                    CniError::new(
                        INVALID_ENV,
                        format!("CNI_ARGS {k}={v} is not a valid label: {e}"),
                    )
                })?;
            }
            labels.insert(key.to_owned(), v.clone());
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn variables_are_read_and_empty_is_unset() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert_eq!(e.command.as_deref(), Some("ADD"));
        assert_eq!(e.netns, None);
        assert_eq!(e.netns().expect_err("unset").code, INVALID_ENV);
        assert!(e
            .container_id()
            .expect_err("unset")
            .msg
            .contains("CNI_CONTAINERID"));
        assert_eq!(e.ifname().expect("ifname"), "eth0");
    }

    #[test]
    fn values_are_checked() {
        let e = env(&[
            ("CNI_CONTAINERID", "-bad"),
            ("CNI_NETNS", "run/netns/x"),
            ("CNI_IFNAME", "a/b"),
        ]);
        assert_eq!(e.checked_container_id().expect_err("id").code, INVALID_ENV);
        assert_eq!(e.container_id().expect("lenient"), "-bad");
        assert_eq!(e.netns().expect_err("relative").code, INVALID_ENV);
        assert_eq!(e.ifname().expect_err("slash").code, INVALID_ENV);
        let e = env(&[
            ("CNI_CONTAINERID", "abc_1.2-x"),
            ("CNI_IFNAME", "eth0123456789012"),
        ]);
        assert_eq!(e.checked_container_id().expect("id"), "abc_1.2-x");
        assert!(e.ifname().is_err(), "16 bytes is too long");
    }

    #[test]
    fn cni_args_pairs_and_labels() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-1;junk;SEGWIRE_LABEL_app=web;SEGWIRE_LABEL_tier=a;SEGWIRE_LABEL_tier=b",
        );
        assert_eq!(a.pod_name(), Some("web-1"));
        assert_eq!(a.get("IgnoreUnknown"), Some("1"));
        assert_eq!(a.get("junk"), None);
        let labels = a.labels().expect("labels");
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["app"], "web");
        assert_eq!(labels["tier"], "b");
        assert!(CniArgs::parse("").labels().expect("none").is_empty());
        assert_eq!(CniArgs::parse("K8S_POD_NAME=").pod_name(), None);
        let bad = CniArgs::parse("SEGWIRE_LABEL_app=a b")
            .labels()
            .expect_err("bad");
        assert_eq!(bad.code, INVALID_ENV);
        assert!(CniArgs::parse("SEGWIRE_LABEL_=x").labels().is_err());
    }
}
