//! Shared setup for the coordinator's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use base64::Engine;
use reqwest::{Method, StatusCode};
use segwire_client::Client;
use segwire_proto::api::{
    AttachRequest, CreateSegment, CreateToken, EnrollRequest, EnrollResponse,
};
use segwire_proto::JoinToken;
use segwire_testkit::Coordinator;
use tempfile::TempDir;

/// A coordinator in a temp dir plus a raw HTTPS client.
pub struct Env {
    pub dir: TempDir,
    pub coord: Coordinator,
    pub raw: reqwest::Client,
    pub url: String,
    pub key: String,
}

impl Env {
    pub fn start() -> Env {
        Env::start_logged("info")
    }

    /// A coordinator logging at `filter` (a `RUST_LOG` value).
    pub fn start_logged(filter: &str) -> Env {
        Env::start_with(filter, &[])
    }

    /// A coordinator logging at `filter`, with extra `serve` arguments.
    pub fn start_with(filter: &str, extra: &[&str]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let listen = "127.0.0.1:0".to_string();
        let coord = Coordinator::start_logged(&dir.path().join("data"), &listen, extra, filter);
        let conf = coord.conf();
        let raw = reqwest::Client::builder()
            .use_preconfigured_tls(segwire_client::pinning::client_config(conf.ca_pin))
            .build()
            .unwrap();
        Env {
            dir,
            raw,
            url: conf.url.clone(),
            key: conf.api_key.clone(),
            coord,
        }
    }

    pub fn admin(&self) -> Client {
        self.coord.admin_client()
    }

    pub fn config(&self) -> std::path::PathBuf {
        self.coord.admin_conf()
    }

    /// A raw request with an optional bearer and body; returns status and body text.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self.raw.request(method, format!("{}{}", self.url, path));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }

    pub async fn segment(&self, name: &str, cidr: &str) {
        self.admin()
            .create_segment(&CreateSegment {
                name: name.into(),
                cidr: cidr.into(),
                default: None,
            })
            .await
            .unwrap();
    }

    pub async fn token(&self, segments: &[&str], uses: u32) -> JoinToken {
        let t = self
            .admin()
            .create_token(&CreateToken {
                segments: segments.iter().map(|s| s.to_string()).collect(),
                labels: Default::default(),
                ttl_seconds: Some(600),
                uses: Some(uses),
            })
            .await
            .unwrap();
        t.token.parse().unwrap()
    }

    /// Enrols a node with a token; returns the enrolment and a node client.
    pub async fn enroll(&self, token: &JoinToken, name: &str) -> (EnrollResponse, Client) {
        let anon = Client::new(&token.url, token.pin, None).unwrap();
        let resp = anon.enroll(&enroll_req(token, name)).await.unwrap();
        let client = Client::new(&token.url, token.pin, Some(resp.credential.clone())).unwrap();
        (resp, client)
    }
}

pub fn random_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

pub fn enroll_req(token: &JoinToken, name: &str) -> EnrollRequest {
    EnrollRequest {
        token_id: token.id.clone(),
        token_secret: token.secret.clone(),
        name: name.into(),
        public_key: random_key(),
        endpoints: vec!["198.18.0.2".into()],
    }
}

pub fn attach_req(segment: &str, workload: &str) -> AttachRequest {
    AttachRequest {
        segment: segment.into(),
        workload: workload.into(),
        name: None,
        public_key: random_key(),
        listen_port: 51820,
        endpoints: vec![],
        labels: Default::default(),
    }
}
