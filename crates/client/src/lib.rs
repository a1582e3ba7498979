//! Typed HTTPS client for the segwire coordinator.
//!
//! The coordinator's certificate is trusted only through the CA pin (from `admin.conf` or
//! a join token): [`pinning`] finds the CA in the presented chain by its pin and then
//! verifies the chain and host name with webpki against that CA alone. Nothing secret is
//! sent before that check passes, because the check is part of the TLS handshake.

pub mod access;
pub mod backoff;
pub mod config;
pub mod error;
pub mod peers;
pub mod pinning;
mod requests;

pub use error::ClientError;
pub use requests::NetmapUpdate;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use segwire_proto::CaPin;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A connection to one coordinator with one credential (an API key, a node credential, or none).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl Client {
    /// Builds a client for `url` that trusts only the CA with `pin`, sending `auth` as a bearer token.
    pub fn new(url: &str, pin: CaPin, auth: Option<String>) -> Result<Self, ClientError> {
        Self::with_connect_timeout(url, pin, auth, Duration::from_secs(10))
    }

    /// Like [`Client::new`], giving up on a TCP connection after `connect` (an agent uses
    /// a short one, so a retry finds a coordinator that came back soon).
    pub fn with_connect_timeout(
        url: &str,
        pin: CaPin,
        auth: Option<String>,
        connect: Duration,
    ) -> Result<Self, ClientError> {
        let tls = pinning::client_config(pin);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(connect)
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Client {
            http,
            base: url.trim_end_matches('/').to_string(),
            auth,
        })
    }

    /// The coordinator base URL this client talks to.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends one request and decodes a JSON answer; `None` for 204 No Content.
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        match self.fetch(method, path, body).await? {
            None => Ok(None),
            Some((_, bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Decode(e.to_string())),
        }
    }

    /// Sends one request; a successful answer's content type and body, `None` for 204.
    async fn fetch<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<(String, Vec<u8>)>, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(auth) = &self.auth {
            req = req.bearer_auth(auth);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::from_transport(&self.base, e))?;
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let kind = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::from_transport(&self.base, e))?;
        if !status.is_success() {
            return Err(ClientError::from_status(status, &bytes));
        }
        Ok(Some((kind, bytes.into())))
    }

    /// Like [`Client::call`] but a 204 is an error: for routes that always answer with a body.
    pub async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call(method, path, body)
            .await?
            .ok_or_else(|| ClientError::Decode("the coordinator sent no body".into()))
    }
}
