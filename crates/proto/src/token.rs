//! The join token: one string a node needs to enrol.
//!
//! Format: `swt1_` followed by base64url (no padding) of a compact JSON object
//! `{"u": coordinator URL, "p": CA pin, "i": token id, "s": secret, "c": [more URLs]}`.
//! The secret is at least 128 bits of randomness; the coordinator stores only its hash.
//! `c` (optional, absent in tokens of a single coordinator and in older tokens) lists
//! the other live coordinators sharing the database, tried after `u`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pin::CaPin;

/// Prefix that marks a segwire join token, version 1.
pub const TOKEN_PREFIX: &str = "swt1_";

/// Why a string is not a join token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenParseError {
    /// The string does not start with `swt1_`.
    #[error("this is not a segwire join token (it should start with \"swt1_\"); copy the whole line `segwire token create` printed")]
    Prefix,
    /// The body is not valid base64url or JSON, or a field is missing.
    #[error("the join token is damaged (it may have been cut when copied); create a new one with `segwire token create`")]
    Damaged,
}

/// Everything a node needs to find, trust and enrol with a coordinator.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// Coordinator base URL, e.g. `https://198.18.0.1:7443`.
    #[serde(rename = "u")]
    pub url: String,
    /// Pin of the coordinator's CA.
    #[serde(rename = "p")]
    pub pin: CaPin,
    /// Token id (public, used to look the token up).
    #[serde(rename = "i")]
    pub id: String,
    /// Token secret (private; never logged).
    #[serde(rename = "s")]
    pub secret: String,
    /// The other coordinators sharing the database (base URLs), tried after `url`.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub more_urls: Vec<String>,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("url", &self.url)
            .field("pin", &self.pin)
            .field("id", &self.id)
            .field("more_urls", &self.more_urls)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl JoinToken {
    /// Every coordinator URL the token names: `url` first, then the others, each once.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        let mut out = vec![self.url.clone()];
        for u in &self.more_urls {
            if !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }

    /// Encodes the token as the one-line string users copy.
    pub fn encode(&self) -> String {
        // Serialising a struct of strings cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }
}

impl FromStr for JoinToken {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenParseError::Prefix)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenParseError::Damaged)?;
        let token: JoinToken =
            serde_json::from_slice(&json).map_err(|_| TokenParseError::Damaged)?;
        if token.id.is_empty() || token.secret.is_empty() || token.url.is_empty() {
            return Err(TokenParseError::Damaged);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JoinToken {
        JoinToken {
            url: "https://198.18.0.1:7443".into(),
            pin: CaPin([3; 32]),
            id: "abc123".into(),
            secret: "s3cr3t".into(),
            more_urls: Vec::new(),
        }
    }

    #[test]
    fn older_tokens_parse_and_more_urls_round_trip() {
        // A token of a coordinator without the `c` field.
        let old = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(
                r#"{"u":"https://198.18.0.1:7443","p":"sha256:0303030303030303030303030303030303030303030303030303030303030303","i":"abc123","s":"s3cr3t"}"#
            )
        );
        let t: JoinToken = old.parse().expect("an older token parses");
        assert_eq!(t.urls(), vec!["https://198.18.0.1:7443".to_string()]);
        let mut ha = sample();
        ha.more_urls = vec!["https://198.18.0.2:7443".into(), ha.url.clone()];
        let back: JoinToken = ha.encode().parse().expect("parses");
        assert_eq!(
            back.urls(),
            vec![
                "https://198.18.0.1:7443".to_string(),
                "https://198.18.0.2:7443".into()
            ]
        );
    }

    #[test]
    fn round_trip() {
        let t = sample();
        let s = t.encode();
        assert!(s.starts_with(TOKEN_PREFIX));
        assert_eq!(s.parse::<JoinToken>(), Ok(t));
    }

    #[test]
    fn errors() {
        assert_eq!("nope".parse::<JoinToken>(), Err(TokenParseError::Prefix));
        let s = sample().encode();
        assert_eq!(
            s[..s.len() - 5].parse::<JoinToken>(),
            Err(TokenParseError::Damaged)
        );
        assert_eq!(
            "swt1_!!!".parse::<JoinToken>(),
            Err(TokenParseError::Damaged)
        );
    }

    #[test]
    fn debug_hides_secret() {
        assert!(!format!("{:?}", sample()).contains("s3cr3t"));
    }
}
