//! What can go wrong talking to the coordinator, each as one sentence for the user.

use reqwest::StatusCode;
use segwire_proto::api::{ErrorBody, NODE_REVOKED};
use thiserror::Error;

use crate::pinning::PIN_MISMATCH;

/// An error talking to the coordinator.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The HTTP client could not be built.
    #[error("could not set up the HTTPS client: {0}")]
    Setup(String),
    /// The server's certificate chain does not contain the pinned CA.
    #[error("the coordinator at {url} presented a certificate that does not match the CA pin; check the URL and pin in your config or token (someone may be intercepting the connection)")]
    PinMismatch {
        /// The coordinator URL.
        url: String,
    },
    /// The TLS handshake failed for another reason (e.g. the host name is not in the certificate).
    #[error("TLS with the coordinator at {url} failed: {detail}; if you reach it under a new name, restart it with --advertise NAME")]
    Tls {
        /// The coordinator URL.
        url: String,
        /// The innermost cause.
        detail: String,
    },
    /// The coordinator could not be reached.
    #[error(
        "cannot reach the coordinator at {url}: {detail}; is it running and is the address right?"
    )]
    Unreachable {
        /// The coordinator URL.
        url: String,
        /// The innermost cause.
        detail: String,
    },
    /// The credential was missing, wrong or revoked (a bare 401).
    #[error("the coordinator refused the credential (401); check the API key in your config, or re-join the node if it was revoked")]
    Unauthorized,
    /// The coordinator said explicitly that this node was revoked (401 with the
    /// `node_revoked` code).
    #[error("the coordinator says this node was revoked; re-join it with `segwire-node join --force TOKEN`")]
    Revoked,
    /// The coordinator answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The coordinator's one-line explanation.
        message: String,
    },
    /// The answer could not be decoded.
    #[error("the coordinator's answer could not be read: {0}")]
    Decode(String),
}

impl ClientError {
    /// HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Unauthorized | ClientError::Revoked => Some(401),
            _ => None,
        }
    }

    /// True when the coordinator could not be reached at all (worth retrying later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    pub(crate) fn from_status(status: StatusCode, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<ErrorBody>(body);
        if status == StatusCode::UNAUTHORIZED {
            return match parsed {
                Ok(b) if b.code.as_deref() == Some(NODE_REVOKED) => ClientError::Revoked,
                _ => ClientError::Unauthorized,
            };
        }
        let message = parsed.map(|b| b.error).unwrap_or_else(|_| {
            format!(
                "the coordinator answered {status}{}",
                if body.is_empty() {
                    ""
                } else {
                    " with an unexpected body"
                }
            )
        });
        ClientError::Api {
            status: status.as_u16(),
            message,
        }
    }

    pub(crate) fn from_transport(url: &str, err: reqwest::Error) -> Self {
        let chain = error_chain(&err);
        let url = url.to_string();
        if chain.iter().any(|m| m.contains(PIN_MISMATCH)) {
            return ClientError::PinMismatch { url };
        }
        let detail = chain.last().cloned().unwrap_or_default();
        if chain
            .iter()
            .any(|m| m.contains("certificate") || m.contains("tls") || m.contains("TLS"))
        {
            return ClientError::Tls { url, detail };
        }
        if err.is_decode() {
            return ClientError::Decode(detail);
        }
        ClientError::Unreachable { url, detail }
    }
}

/// Messages of an error and all its sources, looking inside `io::Error` wrappers too.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        out.push(e.to_string());
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                out.push(inner.to_string());
                cur = inner.source();
                continue;
            }
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_401_with_the_revoked_code_is_a_revocation() {
        let revoked = br#"{"error":"this node was revoked","code":"node_revoked"}"#;
        assert!(matches!(
            ClientError::from_status(StatusCode::UNAUTHORIZED, revoked),
            ClientError::Revoked
        ));
        for body in [
            &b""[..],
            b"<html>401 Authorization Required</html>",
            br#"{"error":"node_revoked"}"#,
            br#"{"error":"x","code":"other"}"#,
        ] {
            assert!(matches!(
                ClientError::from_status(StatusCode::UNAUTHORIZED, body),
                ClientError::Unauthorized
            ));
        }
        // The code means nothing on another status (e.g. a proxy's 403).
        assert!(matches!(
            ClientError::from_status(StatusCode::FORBIDDEN, revoked),
            ClientError::Api { status: 403, .. }
        ));
    }
}
