//! `segwire-coordinator`: the segwire control plane.

mod api;
mod bootstrap;
mod cluster;
mod convert;
mod db;
mod events;
mod fanout;
mod files;
mod hub;
mod incidents;
mod ipam;
mod limits;
mod listener;
mod logging;
mod matrix;
mod migrate_db;
mod netmap;
mod ops;
mod pki;
mod policy;
mod presence;
mod ratelimit;
mod rotation;
mod secret;
mod server;
mod store;
mod web;
mod webhook;

use clap::{Parser, Subcommand};

/// segwire coordinator: segments, keys, join tokens and netmaps for node agents.
#[derive(Debug, Parser)]
#[command(name = "segwire-coordinator", version)]
struct Cli {
    /// Log format on stderr (RUST_LOG sets the level).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (REST API over TLS).
    Serve(Box<server::ServeArgs>),
    /// Copy a SQLite database into PostgreSQL (stop the coordinator first).
    MigrateDb(migrate_db::MigrateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => server::serve(*args).await,
            Command::MigrateDb(args) => migrate_db::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
