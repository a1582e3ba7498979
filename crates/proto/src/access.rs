//! Access control and monitoring bodies: API keys with roles, audit records, events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an API key may do. Ordered: every role can do what the roles below it can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only (never secrets).
    Viewer,
    /// Segments, policies, tokens, nodes and peers; not API keys.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name as written in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "{:?} is not a role; use admin, operator or viewer",
                other.chars().take(20).collect::<String>()
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/apikeys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// The key's role.
    pub role: Role,
    /// Segments the key is limited to (operator and viewer only); all segments when absent.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub segments: Option<Vec<String>>,
    /// Lifetime in seconds; the key never expires when absent.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// A note for people (who or what uses the key).
    #[serde(default)]
    pub description: Option<String>,
}

/// The answer to `POST /v1/apikeys` and `POST /v1/apikeys/rotate`: the only time the key is
/// shown. `Debug` leaves out the key.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    /// Key id (the audit actor `key:<id>`).
    pub id: String,
    /// The full key (`swk_<id>.<secret>`), shown once.
    pub key: String,
    /// Its role.
    pub role: Role,
    /// Segments it is limited to; all when absent.
    pub segments: Option<Vec<String>>,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
}

/// An API key as listed; the secret is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyInfo {
    /// Key id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Segments it is limited to; all when absent.
    pub segments: Option<Vec<String>>,
    /// The note given at creation.
    pub description: String,
    /// Creation time.
    pub created_at: String,
    /// Expiry time, if any.
    pub expires_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// One audit record: who changed what, from where, and how it looked before and after.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Sequence number (increasing).
    pub id: u64,
    /// When (RFC 3339).
    pub at: String,
    /// `key:<id>` for an API key, `node:<id>` for a node.
    pub actor: String,
    /// Source IP address of the request.
    pub source: Option<String>,
    /// What was done, e.g. `segment.create`.
    pub action: String,
    /// What it was done to, e.g. `segment:web`.
    pub target: String,
    /// State before (secrets redacted); absent for creations.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// State after (secrets redacted); absent for deletions.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// One event, as listed by `GET /v1/events` and sent to webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Sequence number (increasing); pass the last one seen as `since`.
    pub id: u64,
    /// When (RFC 3339).
    pub at: String,
    /// `node.offline`, `node.online`, `node.revoked`, `token.used`, `token.revoked`,
    /// `apikey.revoked`, `member.scan`, `member.spoof`, `peer.handshake_failed`,
    /// `member.denied_burst`, `member.quarantined`, `member.released`.
    pub kind: String,
    /// What it is about, e.g. `node:<id>`.
    pub subject: String,
    /// Details of the kind.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl std::fmt::Debug for ApiKeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCreated")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("role", &self.role)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_new_api_key() {
        let k = ApiKeyCreated {
            id: "0011".into(),
            key: "swk_0011.key-secret-789".into(),
            role: Role::Viewer,
            segments: None,
            expires_at: None,
        };
        let text = format!("{k:?}");
        assert!(
            !text.contains("key-secret-789") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
