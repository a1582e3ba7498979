//! `serve`: opens the store, loads the PKI, binds TLS and serves until SIGTERM/SIGINT.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use clap::Args;
use hyper_util::rt::TokioTimer;

use crate::api::{self, AppState};
use crate::hub::Hub;
use crate::listener::LimitAcceptor;
use crate::store::postgres::notify;
use crate::{bootstrap, files, pki};

/// Options of `segwire-coordinator serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:7443", env = "SEGWIRE_LISTEN")]
    pub listen: SocketAddr,
    /// Directory for the database, CA and admin.conf (created on first start).
    #[arg(
        long,
        default_value = "/var/lib/segwire-coordinator",
        env = "SEGWIRE_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Database URL (sqlite://PATH, postgres://USER:PASS@HOST/DB or postgres:///DB?host=/SOCKET/DIR); default: SQLite in the data directory.
    #[arg(long, env = "SEGWIRE_DB")]
    pub db: Option<String>,
    /// Host name or IP nodes use to reach this coordinator (repeatable; the first goes into
    /// tokens first, every one is announced to agents as a coordinator URL). An IPv6 literal may be bracketed (`[2001:db8::1]`) or not; URLs bracket it.
    #[arg(long, value_parser = advertise_name)]
    pub advertise: Vec<String>,
    /// How long a released overlay address is held back before reuse (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub ip_quarantine: Duration,
    /// How long flow-log records shipped by agents are kept (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub flow_retention: Duration,
    /// How long each phase of a segment key rotation waits at most for every live node
    /// to apply it before moving on (e.g. 60s); see docs/psk-rotation.md.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub key_rotation_grace: Duration,
    /// Monitoring, webhooks and rate limits.
    #[command(flatten)]
    pub ops: crate::ops::OpsArgs,
    /// Connection timeouts and caps, per-node limits.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
}

/// An `--advertise` value without the brackets an IPv6 literal may come in, so the
/// certificate gets an IP SAN for it and the URL brackets it once.
fn advertise_name(s: &str) -> Result<String, String> {
    match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => match inner.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => Ok(v6.to_string()),
            Err(_) => Err(format!(
                "{s:?} has brackets but no IPv6 address inside; give a host name, an IPv4 or an IPv6 address"
            )),
        },
        None if s.is_empty() => Err("an empty --advertise name; give a host name or an IP address".into()),
        None => Ok(s.to_string()),
    }
}

/// `h` as the host part of a URL: an IPv6 literal in brackets.
fn host_for_url(h: &str) -> String {
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => h.to_string(),
    }
}

/// Runs the coordinator until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let limits = Arc::new(crate::limits::Limits::new(
        &args.limits,
        Duration::from_secs(api::node_api::MAX_WAIT_SECS),
    )?);
    files::ensure_private_dir(&args.data_dir)?;
    let opened = crate::db::open(args.db.as_deref(), &args.data_dir).await?;
    let store = opened.store;
    let flows = opened.flows;
    let shared = opened.postgres.as_ref().map(|pg| {
        crate::cluster::SharedPresence::new(opened.cluster.clone(), pg.instance().to_string())
    });
    let ops = crate::ops::start(&args.ops, opened.access.clone(), shared)?;

    let listener = TcpListener::bind(args.listen).with_context(|| {
        format!(
            "cannot listen on {}; is another process using it?",
            args.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;

    let mut names: Vec<String> = args.advertise.clone();
    if !local.ip().is_unspecified() {
        names.push(local.ip().to_string());
    }
    names.extend(["localhost".into(), "127.0.0.1".into(), "::1".into()]);
    let ca = crate::cluster::shared_ca(&args.data_dir, opened.cluster.as_ref()).await?;
    let pki = pki::issue(&ca.ca, &names)?;
    // On SQLite there is never another coordinator: a data directory restored without
    // admin.conf gets a new admin key there, as before the CA moved into the database.
    let joined = ca.joined && opened.postgres.is_some();

    let url_host = match (args.advertise.first(), local.ip().is_unspecified()) {
        (Some(a), _) => host_for_url(a),
        (None, false) => host_for_url(&local.ip().to_string()),
        (None, true) => {
            tracing::warn!("listening on all addresses without --advertise: tokens will point at 127.0.0.1; pass --advertise HOST so other machines can join");
            "127.0.0.1".into()
        }
    };
    let url = format!("https://{url_host}:{}", local.port());
    bootstrap::admin_conf(&args.data_dir, store.as_ref(), &url, pki.pin, joined).await?;
    let mut own = vec![url.clone()];
    for a in &args.advertise {
        let u = format!("https://{}:{}", host_for_url(a), local.port());
        if !own.contains(&u) {
            own.push(u);
        }
    }
    let instance = opened
        .postgres
        .as_ref()
        .map_or_else(crate::secret::new_id, |pg| pg.instance().to_string());
    let cluster = crate::cluster::Registry::register(opened.cluster.clone(), instance, own).await?;
    tokio::spawn(cluster.clone().heartbeat_loop());

    let mut tls = rustls::ServerConfig::builder_with_provider(segwire_client::pinning::provider())
        .with_safe_default_protocol_versions()
        .context("TLS setup failed")?
        .with_no_client_auth()
        .with_single_cert(pki.chain, pki.key)
        .context("TLS setup failed")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let state = AppState {
        store: store.clone(),
        hub: Arc::new(Hub::default()),
        url: url.clone(),
        pin: pki.pin,
        quarantine_secs: args.ip_quarantine.as_secs() as i64,
        ops,
        flows,
        flow_retention_secs: args.flow_retention.as_secs() as i64,
        incidents: Arc::default(),
        limits,
        cluster: cluster.clone(),
    };
    tokio::spawn(crate::incidents::expire_loop(state.clone()));
    tokio::spawn(crate::rotation::drive_loop(
        state.clone(),
        args.key_rotation_grace,
    ));
    if let Some(pg) = opened.postgres {
        let hub = state.hub.clone();
        tokio::spawn(notify::listen(
            pg.pool().clone(),
            pg.instance().to_string(),
            move |heard| match heard {
                notify::Heard::Nodes(ids) => hub.wake(&ids),
                notify::Heard::Everyone => hub.wake_all(),
            },
        ));
    }
    let app = api::router(state);
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    tracing::info!(%url, listen = %local, pin = %pki.pin, admin_conf = %args.data_dir.join("admin.conf").display(), "segwire coordinator ready");
    let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls)))
        .handshake_timeout(args.limits.header_read_timeout)
        .acceptor(LimitAcceptor::new(
            args.limits.max_connections,
            args.limits.idle_timeout,
        ));
    let mut server = axum_server::from_tcp(listener).acceptor(acceptor);
    // hyper enforces the header-read timeout only with a timer.
    server
        .http_builder()
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.limits.header_read_timeout);
    server.http_builder().http2().timer(TokioTimer::new());
    server
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .context("the HTTPS server failed")?;
    cluster.deregister().await;
    tracing::info!("shutting down");
    Ok(())
}

async fn shutdown_on_signal(handle: axum_server::Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("signal received, finishing open requests");
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
}

#[cfg(test)]
mod tests {
    use super::{advertise_name, host_for_url};

    #[test]
    fn an_ipv6_advertise_name_loses_its_brackets_and_the_url_puts_them_back() {
        assert_eq!(advertise_name("[2001:2::1]").as_deref(), Ok("2001:2::1"));
        assert_eq!(advertise_name("2001:2::1").as_deref(), Ok("2001:2::1"));
        assert_eq!(
            advertise_name("coord.example").as_deref(),
            Ok("coord.example")
        );
        assert!(advertise_name("[coord.example]").is_err());
        assert!(advertise_name("").is_err());
        assert_eq!(host_for_url("2001:2::1"), "[2001:2::1]");
        assert_eq!(host_for_url("198.18.0.1"), "198.18.0.1");
        assert_eq!(host_for_url("coord.example"), "coord.example");
    }
}
