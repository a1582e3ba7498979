//! `admin.conf`: what the CLI needs to talk to a coordinator (URL, CA pin, API key).
//! The coordinator writes it (mode 0600) on first start; `segwire --config FILE` reads it.

use std::path::Path;

use segwire_proto::CaPin;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Contents of `admin.conf`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConf {
    /// Coordinator base URL.
    pub url: String,
    /// Pin of the coordinator's CA.
    pub ca_pin: CaPin,
    /// API key (`swk_...`). Secret.
    pub api_key: String,
}

impl std::fmt::Debug for AdminConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConf")
            .field("url", &self.url)
            .field("ca_pin", &self.ca_pin)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// Why `admin.conf` could not be read.
#[derive(Debug, Error)]
pub enum ConfError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}; pass --config FILE or set SEGWIRE_CONFIG to the admin.conf the coordinator wrote")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a valid admin.conf.
    #[error("{path} is not a valid segwire admin.conf: {detail}")]
    Parse {
        /// File path.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl AdminConf {
    /// Reads and parses an admin.conf file.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|detail| ConfError::Parse {
            path: path.display().to_string(),
            detail,
        })
    }

    /// Parses admin.conf text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    /// Renders the file's text.
    pub fn render(&self) -> String {
        format!(
            "# segwire admin configuration: keep it secret (it holds an admin API key).\n\
             url = {:?}\nca_pin = \"{}\"\napi_key = {:?}\n",
            self.url, self.ca_pin, self.api_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = AdminConf {
            url: "https://127.0.0.1:7443".into(),
            ca_pin: CaPin([9; 32]),
            api_key: "swk_ab.cd".into(),
        };
        let back = AdminConf::parse(&c.render()).expect("parses");
        assert_eq!(back.url, c.url);
        assert_eq!(back.ca_pin, c.ca_pin);
        assert_eq!(back.api_key, c.api_key);
        assert!(!format!("{c:?}").contains("swk_ab.cd"));
    }
}
