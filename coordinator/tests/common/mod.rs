//! Shared setup for the coordinator's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use base64::Engine;
use reqwest::{Method, StatusCode};
use segwire_client::Client;
use segwire_proto::api::{
    AttachRequest, CreateSegment, CreateToken, EnrollRequest, EnrollResponse, FlowRecord,
};
use segwire_proto::JoinToken;
use segwire_testkit::Coordinator;
use tempfile::TempDir;

/// A coordinator in a temp dir plus a raw HTTPS client. With `SEGWIRE_TEST_DB=postgres`
/// its store is a PostgreSQL cluster of its own (`testkit::postgres`) instead of SQLite in
/// the data dir: tests/run.sh runs the API suites both ways.
pub struct Env {
    pub dir: TempDir,
    pub coord: Coordinator,
    pub raw: reqwest::Client,
    pub url: String,
    pub key: String,
    /// The PostgreSQL cluster, when the store is on one (dropped after the coordinator).
    pub pg: Option<segwire_testkit::postgres::Cluster>,
}

/// Whether this run puts the coordinator's store on PostgreSQL (`SEGWIRE_TEST_DB`).
pub fn on_postgres() -> bool {
    std::env::var("SEGWIRE_TEST_DB").is_ok_and(|v| v == "postgres")
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
        let pg = on_postgres()
            .then(|| segwire_testkit::postgres::Cluster::start("coordinator API on PostgreSQL"))
            .flatten();
        let url = pg.as_ref().map(|c| c.create_database());
        let mut args: Vec<&str> = extra.to_vec();
        if let Some(url) = url.as_deref() {
            args.extend(["--db", url]);
        }
        let coord = Coordinator::start_logged(&dir.path().join("data"), &listen, &args, filter);
        if pg.is_some() {
            assert!(
                !coord.data_dir.join("segwire.db").exists(),
                "SEGWIRE_TEST_DB=postgres, yet the coordinator made a SQLite file"
            );
        }
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
            pg,
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

/// A denied egress flow record of one connection.
pub fn flow_record(segment: &str, member: &str, src: &str, dst: &str, port: u16) -> FlowRecord {
    FlowRecord {
        segment: segment.into(),
        member: member.into(),
        node: String::new(),
        peer: None,
        direction: "egress".into(),
        verdict: "denied".into(),
        protocol: "tcp".into(),
        src: src.into(),
        dst: dst.into(),
        dst_port: port,
        rule: None,
        count: 1,
        first_seen: 1,
        last_seen: 1,
    }
}

/// A policy that lets members labelled `app=web` reach `app=db` on tcp/5432 and nothing else.
pub const PG_ONLY: &str = r#"{ "default": "deny", "rules": [
    { "name": "pg", "from": { "labels": { "app": "web" } },
      "to": { "labels": { "app": "db" } }, "ports": ["tcp/5432"] } ] }"#;
