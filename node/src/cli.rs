//! The command line: global flags and subcommands.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::container::Runtime;

/// Output format of `join`, `attach`, `detach` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// segwire node agent: joins a coordinator and builds the encrypted overlays of the
/// workloads attached on this machine.
#[derive(Debug, Parser)]
#[command(name = "segwire-node", version)]
pub struct Cli {
    /// State directory (enrolment, keys, last netmap, control socket).
    #[arg(
        long,
        global = true,
        env = "SEGWIRE_STATE_DIR",
        default_value = "/var/lib/segwire"
    )]
    pub state_dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Log format (logs go to stderr; RUST_LOG sets the level).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol this node with a join token (private keys are made here and never leave it).
    Join(JoinArgs),
    /// Run the agent in the foreground.
    Run {
        /// Serve Prometheus `/metrics`, `/healthz` and `/readyz` on this address (e.g.
        /// 127.0.0.1:9586); off by default.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Threads that move packets. One is fastest for a few members on a small host
        /// (no cross-thread wake-ups: measured 1.13 vs 0.79 Gbit/s on 2 cores); raise it
        /// for many busy members on a large host.
        #[arg(long, env = "SEGWIRE_WORKER_THREADS", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=256))]
        worker_threads: u16,
        /// The CPU that light data paths (under a fifth of a CPU each) share, so that
        /// their packets find them and their data where they were: halves the idle round
        /// trip on a 2-core host. A data path that gets busy, or waits behind other work
        /// there, is freed at once. `auto`: the first CPU the agent may use; `off`: leave
        /// placement to the kernel.
        #[arg(long, env = "SEGWIRE_IDLE_CPU", default_value_t = crate::member::IdleCpu::Auto,
              value_name = "CPU|auto|off")]
        idle_cpu: crate::member::IdleCpu,
    },
    /// Attach a workload to a segment through the running agent.
    Attach(AttachArgs),
    /// Detach a workload from a segment through the running agent.
    Detach(DetachArgs),
    /// Show members, peers, endpoints, handshakes, bytes and drops.
    Status,
    /// Install or remove the CNI network of a segment (podman, nerdctl, Nomad).
    #[command(subcommand)]
    Cni(CniCommand),
}

/// `cni install|uninstall`.
#[derive(Debug, Subcommand)]
pub enum CniCommand {
    /// Write a network config list for a segment pointing at this agent's socket and
    /// install the `segwire` plugin, so `podman run --network NAME` attaches containers.
    Install(CniInstallArgs),
    /// Remove a segwire network config list (and the plugin when no segwire network is left).
    Uninstall(CniUninstallArgs),
}

/// `cni install`.
#[derive(Debug, Args)]
pub struct CniInstallArgs {
    /// Segment the network attaches containers to.
    #[arg(long)]
    pub segment: String,
    /// A label `key=value` for every container of this network (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Network name (default `segwire-<segment>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Directory of CNI network configs.
    #[arg(long, default_value = crate::cni_install::DEFAULT_CONF_DIR)]
    pub conf_dir: PathBuf,
    /// Directory of CNI plugins.
    #[arg(long, default_value = crate::cni_install::DEFAULT_BIN_DIR)]
    pub bin_dir: PathBuf,
    /// The segwire-cni binary to install (default: the one next to segwire-node).
    #[arg(long, value_name = "PATH")]
    pub plugin: Option<PathBuf>,
}

/// `cni uninstall`.
#[derive(Debug, Args)]
pub struct CniUninstallArgs {
    /// Segment whose default network (`segwire-<segment>`) is removed.
    #[arg(long, required_unless_present = "name", conflicts_with = "name")]
    pub segment: Option<String>,
    /// Network name.
    #[arg(long)]
    pub name: Option<String>,
    /// Directory of CNI network configs.
    #[arg(long, default_value = crate::cni_install::DEFAULT_CONF_DIR)]
    pub conf_dir: PathBuf,
    /// Directory of CNI plugins.
    #[arg(long, default_value = crate::cni_install::DEFAULT_BIN_DIR)]
    pub bin_dir: PathBuf,
}

/// `join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The join token (`swt1_...`) from `segwire token create`, or `-` to read it from
    /// stdin. Prefer `--token-file` or `-`: a command-line argument is visible to every
    /// local user in /proc and stays in shell history.
    #[arg(required_unless_present = "token_file", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the join token from this file (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Node name (default: the host name as a DNS label).
    #[arg(long)]
    pub name: Option<String>,
    /// Underlay IP to report instead of the host's addresses (e.g. behind NAT).
    #[arg(long)]
    pub endpoint: Option<IpAddr>,
    /// Replace an existing enrolment.
    #[arg(long)]
    pub force: bool,
}

/// Which workload: exactly one of `--host`, `--netns`, `--pid`, `--container`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct WorkloadArgs {
    /// The host itself.
    #[arg(long)]
    pub host: bool,
    /// A network namespace: a name from `ip netns list`, or a path.
    #[arg(long, value_name = "NAME_OR_PATH")]
    pub netns: Option<String>,
    /// The network namespace of a process.
    #[arg(long)]
    pub pid: Option<String>,
    /// A running container, by name or id, found through its runtime (`--runtime`).
    #[arg(long, value_name = "NAME_OR_ID")]
    pub container: Option<String>,
}

/// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Segment to attach to.
    #[arg(long)]
    pub segment: String,
    /// The workload.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// A label `key=value` (repeatable); the token's labels win.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Member name (default: the container's name with `--container`, else chosen by the
    /// coordinator).
    #[arg(long)]
    pub name: Option<String>,
    /// Container runtime for `--container` (default: podman when installed, else docker).
    #[arg(long, value_enum, requires = "container")]
    pub runtime: Option<Runtime>,
}

/// `detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Segment to detach from.
    #[arg(long)]
    pub segment: String,
    /// The workload.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Container runtime for `--container` (default: podman when installed, else docker).
    #[arg(long, value_enum, requires = "container")]
    pub runtime: Option<Runtime>,
}
