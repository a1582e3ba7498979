//! `segwire-node join TOKEN`: make the node identity, enrol over pinned TLS, save state.

use std::net::IpAddr;

use anyhow::{bail, Context};
use segwire_client::{Client, ClientError};
use segwire_proto::api::EnrollRequest;
use segwire_proto::names::{validate_node_name, MAX_NODE_NAME};
use segwire_proto::JoinToken;
use serde::Serialize;

use crate::keys::PrivateKey;
use crate::state::{NodeState, StateDir, STATE_FORMAT};

/// What `join` was asked to do.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The join token string.
    pub token: String,
    /// Node name (default: the host name).
    pub name: Option<String>,
    /// Underlay address to report instead of the host's addresses.
    pub endpoint: Option<IpAddr>,
    /// Replace an existing enrolment.
    pub force: bool,
}

/// What `join` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Joined {
    /// Node id.
    pub node_id: String,
    /// Node name.
    pub name: String,
    /// Coordinator URL.
    pub coordinator: String,
    /// Segments the node may attach to.
    pub segments: Vec<String>,
    /// Where the state was saved.
    pub state_dir: String,
}

/// Enrols the node and saves its state.
///
/// # Errors
/// One sentence: a bad token, an existing enrolment, a refused or failed enrolment, or
/// a state directory that cannot be written.
pub async fn join(dir: &StateDir, opts: JoinOptions) -> anyhow::Result<Joined> {
    if dir.is_joined() && !opts.force {
        bail!(
            "this node has already joined ({} exists); pass --force to replace the enrolment",
            dir.state_file().display()
        );
    }
    let token: JoinToken = opts.token.parse()?;
    let name = match opts.name {
        Some(n) => n,
        None => sanitize_name(&hostname()),
    };
    validate_node_name(&name).context("pick another name with --name")?;
    let endpoints: Vec<IpAddr> = match opts.endpoint {
        Some(ip) => vec![ip],
        None => segwire_netdev::host_addrs().await.unwrap_or_default(),
    };
    dir.ensure()?;
    let identity = PrivateKey::generate();
    let urls = token.urls();
    let client = Client::with_urls(&urls, token.pin, None, std::time::Duration::from_secs(10))?;
    let request = EnrollRequest {
        token_id: token.id.clone(),
        token_secret: token.secret.clone(),
        name: name.clone(),
        public_key: identity.public_key().to_base64(),
        endpoints: endpoints.iter().map(ToString::to_string).collect(),
    };
    // A coordinator that does not answer: the token's next one (the client moved to it).
    let mut tries = urls.len();
    let enrolled = loop {
        tries -= 1;
        match client.enroll(&request).await {
            Err(e) if e.is_unreachable() && tries > 0 => {
                tracing::info!(error = %e, next = %client.url(), "trying the token's next coordinator");
            }
            other => break other.map_err(explain)?,
        }
    };
    let state = NodeState {
        format: STATE_FORMAT,
        node_id: enrolled.node_id.clone(),
        name: enrolled.name.clone(),
        coordinator_url: token.url.clone(),
        coordinator_urls: if urls.len() > 1 { urls } else { Vec::new() },
        ca_pin: token.pin,
        credential: enrolled.credential,
        identity_key: identity,
        endpoint: opts.endpoint,
        segments: enrolled.segments.clone(),
        labels: enrolled.labels,
        members: Vec::new(),
    };
    dir.save_state(&state)?;
    // A netmap of an earlier enrolment must not be served for this one.
    let _ = std::fs::remove_file(dir.netmap_file());
    tracing::info!(node = %state.name, node_id = %state.node_id, "node enrolled");
    Ok(Joined {
        node_id: enrolled.node_id,
        name: enrolled.name,
        coordinator: token.url,
        segments: enrolled.segments,
        state_dir: dir.path().display().to_string(),
    })
}

fn explain(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api { status: 403, .. } | ClientError::Api { status: 401, .. } => {
            anyhow::anyhow!("the coordinator refused the join token ({e}); create a new one with `segwire token create`")
        }
        other => other.into(),
    }
}

/// The kernel's host name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A host name made into a DNS label: lowercase, `[a-z0-9-]`, no leading or trailing
/// `-`, at most 63 characters; `node` when nothing is left.
#[must_use]
pub fn sanitize_name(raw: &str) -> String {
    let first_label = raw.split('.').next().unwrap_or("");
    let mut out = String::new();
    for c in first_label.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(MAX_NODE_NAME);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "node".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_become_dns_labels() {
        assert_eq!(sanitize_name("Web-01.example.com"), "web-01");
        assert_eq!(sanitize_name("my_host  name"), "my-host-name");
        assert_eq!(sanitize_name("--x--"), "x");
        assert_eq!(sanitize_name(""), "node");
        assert_eq!(sanitize_name("ÉCOLE"), "cole");
        assert_eq!(sanitize_name(&"a".repeat(100)).len(), 63);
        for raw in ["Web-01.example.com", "__", "a b c", &"x-".repeat(50)] {
            assert!(validate_node_name(&sanitize_name(raw)).is_ok(), "{raw}");
        }
    }

    #[tokio::test]
    async fn refuses_to_overwrite_and_rejects_bad_tokens() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir::new(tmp.path());
        let opts = JoinOptions {
            token: "nope".into(),
            name: Some("a".into()),
            endpoint: None,
            force: false,
        };
        let err = join(&dir, opts.clone()).await.expect_err("bad token");
        assert!(err.to_string().contains("swt1_"), "{err}");
        std::fs::write(dir.state_file(), "{}").expect("write");
        let err = join(&dir, opts).await.expect_err("exists");
        assert!(err.to_string().contains("--force"), "{err}");
    }
}
