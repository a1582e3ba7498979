//! A simulated node agent: enrols with a real join token, attaches one member, then
//! long-polls its netmap over its own HTTPS connection, recording every map it receives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use rand::RngCore;
use segwire_client::backoff::Backoff;
use segwire_client::Client;
use segwire_proto::api::{AttachRequest, EnrollRequest};
use segwire_proto::token::JoinToken;
use segwire_proto::CaPin;

/// Seconds each long-poll asks the coordinator to wait.
const WAIT_SECS: u64 = 55;

/// One netmap an agent received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// When its body was fully read.
    pub at: Instant,
    /// Its version.
    pub version: u64,
    /// Body size.
    pub bytes: usize,
}

/// What the benchmark sees of one agent.
#[derive(Default)]
pub struct AgentLog {
    /// Every map received, in order.
    pub deliveries: Mutex<Vec<Delivery>>,
    /// Failed polls (transport errors and non-2xx answers).
    pub errors: AtomicU64,
}

impl AgentLog {
    /// The version of the last map received (0 before the first).
    pub fn version(&self) -> u64 {
        self.lock().last().map_or(0, |d| d.version)
    }

    /// The deliveries so far.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Delivery>> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An enrolled agent with its node credential.
pub struct Agent {
    http: reqwest::Client,
    url: String,
    credential: String,
}

fn random_key() -> String {
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// Enrols node `name` with `token` and attaches its host to `segment`.
pub async fn enrol(token: &JoinToken, name: &str, segment: &str) -> Result<Agent> {
    let anon = Client::new(&token.url, token.pin, None)?;
    let enrolled = anon
        .enroll(&EnrollRequest {
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            name: name.to_string(),
            public_key: random_key(),
            endpoints: vec!["198.18.0.1".into()],
        })
        .await
        .with_context(|| format!("enrolling {name}"))?;
    let agent = Agent::new(&token.url, token.pin, enrolled.credential)?;
    let node = Client::new(&token.url, token.pin, Some(agent.credential.clone()))?;
    node.attach(&AttachRequest {
        segment: segment.to_string(),
        workload: "host".into(),
        name: None,
        public_key: random_key(),
        listen_port: 51820,
        endpoints: Vec::new(),
        labels: Default::default(),
    })
    .await
    .with_context(|| format!("attaching {name}"))?;
    Ok(agent)
}

impl Agent {
    fn new(url: &str, pin: CaPin, credential: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(segwire_client::pinning::client_config(pin))
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(WAIT_SECS + 30))
            .build()?;
        Ok(Agent {
            http,
            url: url.trim_end_matches('/').to_string(),
            credential,
        })
    }

    /// Long-polls forever, recording each map (or, with `deltas`, each delta: the
    /// simulated agent does not apply them) in `log`.
    pub async fn poll(self, log: Arc<AgentLog>, deltas: bool) {
        let ask = if deltas { "&delta=1" } else { "" };
        let mut since = 0u64;
        // The agent's own reconnect policy, so a coordinator restart shows its real storm.
        let mut backoff = Backoff::default();
        loop {
            let url = format!(
                "{}/v1/node/netmap?since={since}&wait={WAIT_SECS}{ask}",
                self.url
            );
            let res = self
                .http
                .get(&url)
                .bearer_auth(&self.credential)
                .send()
                .await;
            let resp = match res {
                Ok(r) if r.status().as_u16() == 204 => {
                    backoff.reset();
                    continue;
                }
                Ok(r) if r.status().is_success() => r,
                _ => {
                    log.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            backoff.reset();
            let Ok(body) = resp.bytes().await else {
                log.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let at = Instant::now();
            let Some(version) = version_of(&body) else {
                log.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            since = version;
            log.lock().push(Delivery {
                at,
                version,
                bytes: body.len(),
            });
        }
    }
}

/// The netmap's (or delta's) version, read from the start of the body (the coordinator writes it
/// first) without parsing the rest; the whole document is parsed only otherwise.
fn version_of(body: &[u8]) -> Option<u64> {
    if let Some(rest) = body.strip_prefix(b"{\"version\":") {
        let digits: Vec<u8> = rest
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        if let Some(v) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            return Some(v);
        }
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("version")?
        .as_u64()
}
