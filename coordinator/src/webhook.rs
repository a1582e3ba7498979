//! Webhook delivery: every event is POSTed as JSON to each configured URL, signed with
//! HMAC-SHA256 over the exact body (`X-Segwire-Signature: sha256=<hex>`), retried with
//! exponential backoff. Each URL has its own queue and worker, so a slow or failing
//! receiver delays neither the API nor the other receivers; a full queue drops the event
//! (counted and logged) rather than block.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use segwire_proto::access::Event;
use sha2::Sha256;
use tokio::sync::mpsc;

/// Events waiting per URL before new ones are dropped.
const QUEUE: usize = 1024;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Receiver URLs.
    pub urls: Vec<String>,
    /// HMAC key (the contents of `--webhook-secret-file`).
    pub secret: Vec<u8>,
    /// Wait before the first retry; doubled after each failure.
    pub backoff: Duration,
    /// Attempts per event and URL, the first included.
    pub attempts: u32,
}

/// Hands events to the per-URL workers.
#[derive(Debug, Clone, Default)]
pub struct Dispatcher {
    queues: Vec<(String, mpsc::Sender<Arc<Event>>)>,
}

/// The signature header value of `body`: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(segwire_client::pinning::provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    match tls {
        Ok(tls) => builder.use_preconfigured_tls(tls).build(),
        Err(_) => builder.build(),
    }
}

impl Dispatcher {
    /// Starts one worker per URL; with no URLs, a dispatcher that drops everything.
    pub fn start(cfg: WebhookConfig) -> anyhow::Result<Self> {
        if cfg.urls.is_empty() {
            return Ok(Dispatcher::default());
        }
        let http = http_client()?;
        let secret: Arc<[u8]> = cfg.secret.clone().into();
        let mut queues = Vec::new();
        for url in &cfg.urls {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(worker(
                url.clone(),
                rx,
                http.clone(),
                secret.clone(),
                cfg.clone(),
            ));
            queues.push((url.clone(), tx));
        }
        Ok(Dispatcher { queues })
    }

    /// Queues `event` for every URL without waiting.
    pub fn send(&self, event: Arc<Event>) {
        for (url, q) in &self.queues {
            if q.try_send(event.clone()).is_err() {
                metrics::counter!("segwire_webhook_dropped_total").increment(1);
                tracing::warn!(%url, event_id = event.id, "webhook queue full; event dropped");
            }
        }
    }
}

async fn worker(
    url: String,
    mut rx: mpsc::Receiver<Arc<Event>>,
    http: reqwest::Client,
    secret: Arc<[u8]>,
    cfg: WebhookConfig,
) {
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(event.as_ref()) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let signature = sign(&secret, &body);
        let mut wait = cfg.backoff;
        for attempt in 1..=cfg.attempts.max(1) {
            let result = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-segwire-event", &event.kind)
                .header("x-segwire-delivery", event.id.to_string())
                .header("x-segwire-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            let failure = match result {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("answered {}", r.status())),
                Err(e) => Some(format!("request failed: {e}")),
            };
            let Some(reason) = failure else {
                metrics::counter!("segwire_webhook_deliveries_total", "result" => "ok")
                    .increment(1);
                tracing::debug!(%url, event_id = event.id, attempt, "webhook delivered");
                break;
            };
            metrics::counter!("segwire_webhook_deliveries_total", "result" => "failed")
                .increment(1);
            if attempt == cfg.attempts.max(1) {
                tracing::error!(%url, event_id = event.id, kind = %event.kind, attempt, %reason, "webhook delivery failed; giving up on this event");
                break;
            }
            tracing::warn!(%url, event_id = event.id, attempt, %reason, retry_in = ?wait, "webhook delivery failed; will retry");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
