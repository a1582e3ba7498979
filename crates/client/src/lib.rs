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

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use segwire_proto::CaPin;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Silence on a coordinator connection after which TCP keepalive probes start.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
/// Time between unanswered keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Unanswered keepalive probes after which the connection is dropped.
const KEEPALIVE_RETRIES: u32 = 2;
/// How long sent data or probes may stay unacknowledged before the connection is dropped
/// (`TCP_USER_TIMEOUT`): a coordinator that vanished is left within this.
pub const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a coordinator with one credential (an API key, a node credential, or none).
///
/// A client may know several coordinators sharing one database ([`Client::with_urls`]):
/// it talks to one at a time, and when that one does not answer (no connection, a TLS
/// failure, a connection cut mid-answer) it moves to the next for the following request.
/// Clones share the list and the current choice.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    bases: Arc<RwLock<Bases>>,
    auth: Option<String>,
}

/// The coordinators a client knows and the one it talks to.
#[derive(Debug)]
struct Bases {
    urls: Vec<String>,
    current: usize,
}

/// `urls` without trailing slashes, each once, in order.
fn clean(urls: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(urls.len());
    for u in urls {
        let u = u.trim_end_matches('/').to_string();
        if !u.is_empty() && !out.contains(&u) {
            out.push(u);
        }
    }
    out
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
        Self::with_urls(&[url.to_string()], pin, auth, connect)
    }

    /// A client for the coordinators at `urls` (tried in order, starting with the first),
    /// all trusted only through `pin`, giving up on a TCP connection after `connect`.
    pub fn with_urls(
        urls: &[String],
        pin: CaPin,
        auth: Option<String>,
        connect: Duration,
    ) -> Result<Self, ClientError> {
        let urls = clean(urls);
        if urls.is_empty() {
            return Err(ClientError::Setup("no coordinator URL".into()));
        }
        let tls = pinning::client_config(pin);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(connect)
            .timeout(Duration::from_secs(90))
            // A coordinator whose host vanishes (no reset, no FIN) leaves a long-poll
            // hanging for its whole wait; TCP keepalive probes from 2 s of silence, 1 s
            // apart, and a user timeout bound how long unanswered probes or unacknowledged
            // data may last, so the connection fails, and the client moves on, within 5 s.
            .tcp_keepalive(KEEPALIVE_IDLE)
            .tcp_keepalive_interval(KEEPALIVE_INTERVAL)
            .tcp_keepalive_retries(KEEPALIVE_RETRIES)
            .tcp_user_timeout(DEAD_PEER_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Client {
            http,
            bases: Arc::new(RwLock::new(Bases { urls, current: 0 })),
            auth,
        })
    }

    /// The coordinator base URL this client talks to now.
    pub fn url(&self) -> String {
        let b = self.bases.read().unwrap_or_else(|p| p.into_inner());
        b.urls[b.current].clone()
    }

    /// Every coordinator URL the client knows, in order.
    pub fn urls(&self) -> Vec<String> {
        self.bases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .urls
            .clone()
    }

    /// Replaces the coordinators the client knows by `urls` (as a netmap lists them),
    /// staying with the current one: when `urls` leaves it out it is kept, first. Returns
    /// the new list when it changed.
    pub fn set_urls(&self, urls: &[String]) -> Option<Vec<String>> {
        let mut b = self.bases.write().unwrap_or_else(|p| p.into_inner());
        let current = b.urls[b.current].clone();
        let mut new = clean(urls);
        if new.is_empty() {
            return None;
        }
        if !new.contains(&current) {
            new.insert(0, current.clone());
        }
        if new == b.urls {
            return None;
        }
        b.current = new.iter().position(|u| *u == current).unwrap_or(0);
        b.urls = new.clone();
        Some(new)
    }

    /// After `failed` did not answer: moves to the next coordinator, unless another
    /// request moved already or there is no other.
    fn fail_over(&self, failed: &str, error: &ClientError) {
        let mut b = self.bases.write().unwrap_or_else(|p| p.into_inner());
        if b.urls.len() < 2 || b.urls[b.current] != failed {
            return;
        }
        b.current = (b.current + 1) % b.urls.len();
        tracing::info!(from = %failed, to = %b.urls[b.current], %error, "the coordinator does not answer; switching to the next one");
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
        self.fetch_within(method, path, body, None).await
    }

    /// [`Client::fetch`] giving up after `timeout` (`None`: the client's 90 s) with an
    /// unreachable error. A transport failure moves the client to the next coordinator.
    async fn fetch_within<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Option<(String, Vec<u8>)>, ClientError> {
        let base = self.url();
        let res = self.send(&base, method, path, body, timeout).await;
        if let Err(
            e @ (ClientError::Unreachable { .. }
            | ClientError::Tls { .. }
            | ClientError::PinMismatch { .. }),
        ) = &res
        {
            self.fail_over(&base, e);
        }
        res
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Option<(String, Vec<u8>)>, ClientError> {
        let url = format!("{base}{path}");
        let mut req = self.http.request(method, &url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(auth) = &self.auth {
            req = req.bearer_auth(auth);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::from_transport(base, e))?;
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
            .map_err(|e| ClientError::from_transport(base, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn client(urls: &[&str]) -> Client {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        Client::with_urls(&urls, CaPin([7; 32]), None, Duration::from_secs(1)).expect("client")
    }

    #[tokio::test]
    async fn a_coordinator_that_refuses_connections_makes_the_client_move_to_the_next() {
        // Nothing listens on port 1.
        let c = client(&[
            "https://127.0.0.1:1/",
            "https://127.0.0.2:1",
            "https://127.0.0.1:1",
        ]);
        assert_eq!(c.urls(), ["https://127.0.0.1:1", "https://127.0.0.2:1"]);
        let shared = c.clone();
        let Err(err) = c.netmap_update(0, 0, false).await else {
            panic!("nothing answers");
        };
        assert!(err.is_unreachable(), "{err}");
        assert_eq!(shared.url(), "https://127.0.0.2:1", "clones move together");
        let _ = c.netmap_update(0, 0, false).await;
        assert_eq!(c.url(), "https://127.0.0.1:1", "round and round");
    }

    #[test]
    fn a_new_list_keeps_the_current_coordinator() {
        let c = client(&["https://a:1", "https://b:1"]);
        assert_eq!(
            c.set_urls(&["https://a:1".into(), "https://b:1".into()]),
            None
        );
        let new = c.set_urls(&["https://b:1".into(), "https://c:1".into()]);
        assert_eq!(
            new.as_deref(),
            Some(
                &[
                    "https://a:1".to_string(),
                    "https://b:1".into(),
                    "https://c:1".into()
                ][..]
            )
        );
        assert_eq!(c.url(), "https://a:1");
        assert_eq!(c.set_urls(&[]), None);
    }
}
