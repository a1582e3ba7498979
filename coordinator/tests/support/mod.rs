//! Setup for the access-control and monitoring tests: a coordinator with extra flags,
//! HTTPS clients bound to a chosen source address, keys of each role.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::IpAddr;

use reqwest::{Method, StatusCode};
use segwire_proto::access::{CreateApiKey, Role};

use super::common::Env;

/// A coordinator started with `extra` flags (on PostgreSQL with `SEGWIRE_TEST_DB=postgres`).
pub fn start_with(extra: &[&str]) -> Env {
    Env::start_with("info", extra)
}

/// A raw HTTPS client trusting the coordinator's CA, optionally bound to a source address.
pub fn pinned(conf: &segwire_client::config::AdminConf, source: Option<IpAddr>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(segwire_client::pinning::client_config(conf.ca_pin));
    if let Some(ip) = source {
        b = b.local_address(ip);
    }
    b.build().unwrap()
}

/// Sends one request; returns status, headers and body.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = client.request(method, format!("{url}{path}"));
    if let Some(a) = auth {
        req = req.bearer_auth(a);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

/// A new API key with `role`, optionally scoped.
pub async fn key(env: &Env, role: Role, segments: Option<Vec<&str>>) -> String {
    env.admin()
        .create_api_key(&CreateApiKey {
            role,
            segments: segments.map(|s| s.into_iter().map(String::from).collect()),
            ttl_seconds: None,
            description: Some(format!("test {role}")),
        })
        .await
        .unwrap()
        .key
}

/// Number of audit records so far.
pub async fn audit_len(env: &Env) -> usize {
    let f = segwire_client::access::AuditFilter {
        limit: Some(10_000),
        ..Default::default()
    };
    env.admin().audit(&f).await.unwrap().len()
}
