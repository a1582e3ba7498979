//! Typed methods for the access-control and monitoring routes.

use reqwest::Method;
use segwire_proto::access::{ApiKeyCreated, ApiKeyInfo, AuditRecord, CreateApiKey, Event};

use crate::requests::enc;
use crate::{Client, ClientError};

const NO_BODY: Option<&()> = None;

/// Filters of [`Client::audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// RFC 3339 time or unix seconds.
    pub since: Option<String>,
    /// Exact actor, e.g. `key:<id>`.
    pub actor: Option<String>,
    /// Target prefix, e.g. `segment:web`.
    pub target: Option<String>,
    /// At most this many (newest).
    pub limit: Option<u32>,
}

impl Client {
    /// `POST /v1/apikeys`.
    pub async fn create_api_key(&self, req: &CreateApiKey) -> Result<ApiKeyCreated, ClientError> {
        self.call_json(Method::POST, "/v1/apikeys", Some(req)).await
    }

    /// `GET /v1/apikeys`.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, ClientError> {
        self.call_json(Method::GET, "/v1/apikeys", NO_BODY).await
    }

    /// `DELETE /v1/apikeys/{id}`.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apikeys/{}", enc(id));
        self.call::<(), serde_json::Value>(Method::DELETE, &path, NO_BODY)
            .await
            .map(|_| ())
    }

    /// `POST /v1/apikeys/rotate`: replaces the key this client uses (which stops working).
    pub async fn rotate_api_key(&self) -> Result<ApiKeyCreated, ClientError> {
        self.call_json(Method::POST, "/v1/apikeys/rotate", NO_BODY)
            .await
    }

    /// `GET /v1/audit`.
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, ClientError> {
        let mut q = Vec::new();
        if let Some(s) = &f.since {
            q.push(format!("since={}", enc(s)));
        }
        if let Some(a) = &f.actor {
            q.push(format!("actor={}", enc(a)));
        }
        if let Some(t) = &f.target {
            q.push(format!("target={}", enc(t)));
        }
        if let Some(l) = f.limit {
            q.push(format!("limit={l}"));
        }
        let path = if q.is_empty() {
            "/v1/audit".to_string()
        } else {
            format!("/v1/audit?{}", q.join("&"))
        };
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `GET /v1/events?since=ID[&follow=true&wait=S]`: with `wait_secs`, waits that long for new events.
    pub async fn events(
        &self,
        since: u64,
        wait_secs: Option<u64>,
    ) -> Result<Vec<Event>, ClientError> {
        let path = match wait_secs {
            Some(w) => format!("/v1/events?since={since}&follow=true&wait={w}"),
            None => format!("/v1/events?since={since}"),
        };
        self.call_json(Method::GET, &path, NO_BODY).await
    }
}
