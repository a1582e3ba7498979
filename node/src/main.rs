//! `segwire-node`: the segwire node agent (`join`, `run`, `attach`, `detach`, `status`).

mod agent;
mod cli;
mod cni_install;
mod commands;
mod container;
mod control;
mod detections;
mod flows;
mod join;
mod keys;
mod member;
mod policy;
mod reconcile;
mod state;
mod status;
mod sync;
mod telemetry;
mod uapi;
mod workload;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.command, Command::Run { .. }));
    let runtime = if let Command::Run { worker_threads, .. } = &cli.command {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(*worker_threads))
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `info` for the agent and `warn` for one-shot commands unless RUST_LOG says otherwise.
fn init_logging(format: LogFormat, agent: bool) {
    let default = if agent { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
