//! What can go wrong talking to the coordinator, each as one sentence for the user.

use reqwest::StatusCode;
use segwire_proto::api::ErrorBody;
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
    /// The credential was missing, wrong or revoked.
    #[error("the coordinator refused the credential (401); check the API key in your config, or re-join the node if it was revoked")]
    Unauthorized,
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
            ClientError::Unauthorized => Some(401),
            _ => None,
        }
    }

    /// True when the coordinator could not be reached at all (worth retrying later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    pub(crate) fn from_status(status: StatusCode, body: &[u8]) -> Self {
        if status == StatusCode::UNAUTHORIZED {
            return ClientError::Unauthorized;
        }
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| {
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
