//! `segwire-cni`: a CNI plugin (spec 1.0.0 and 1.1.0) that attaches containers to a
//! segwire segment through the node agent's control socket.
//!
//! Each verb is one request to `segwire-node run` (see `segwire-control`): ADD attaches
//! the container's network namespace (`CNI_NETNS`) as a member with interface
//! `CNI_IFNAME`, DEL detaches the container's members, CHECK asks the agent whether the
//! member still runs as attached, GC detaches CNI members of the segment whose container
//! is not in `cni.dev/valid-attachments`, STATUS reports whether the agent is usable and
//! VERSION needs no agent.
//!
//! # Network config
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "web", "type": "segwire-cni",
//!  "segment": "web", "labels": {"tier": "front"},
//!  "agent_socket": "/var/lib/segwire/agent.sock"}
//! ```
//!
//! `segment` is required; `labels` and `agent_socket` (default
//! `/var/lib/segwire/agent.sock`) are optional; other keys are ignored.
//!
//! # Member name and labels
//!
//! The member is named after `K8S_POD_NAME` in `CNI_ARGS` (podman and nerdctl set it to
//! the container name), else `ctr-<first 12 characters of CNI_CONTAINERID>`, turned into a
//! lowercase DNS label. Labels are merged from, lowest precedence first: the network
//! config's `labels`, `runtimeConfig.labels` (passed by runtimes when the config declares
//! `"capabilities": {"labels": true}`), and `SEGWIRE_LABEL_<key>=<value>` pairs in
//! `CNI_ARGS`. Per-container labels therefore win over the network's on conflict.
//!
//! # Leniency of DEL
//!
//! DEL needs only `CNI_CONTAINERID`: a missing `CNI_NETNS`, a broken config (an invalid
//! segment detaches the container from every segment) or an agent that is not running
//! still exit 0, the last with a note on stderr, because the agent detaches members whose
//! namespace is gone when it starts. Every other verb checks the whole config.
//!
//! # Exit codes
//!
//! Success exits 0. Failure prints a CNI error object on stdout and exits 1; its `code`:
//!
//! | code | meaning |
//! |------|---------|
//! | 1    | the config's `cniVersion` is not 1.0.0 or 1.1.0 |
//! | 4    | a `CNI_*` variable is missing or invalid (also a bad `SEGWIRE_LABEL_*` in `CNI_ARGS`), or an unknown `CNI_COMMAND` |
//! | 5    | permission denied on the agent socket (run as root), or stdin unreadable |
//! | 7    | the network config is not JSON, lacks a valid `segment`, or has bad labels |
//! | 11   | try again later: the agent is not running or did not answer properly, or it could not reach the coordinator |
//! | 50   | STATUS: the agent is not running, or the node was revoked |
//! | 100  | the agent refused the request (its message is `msg`), or CHECK found a difference |
//! | 101  | segwire-cni itself failed (a bug) |

mod env;
mod ops;

use segwire_cni::{config, member, result};

use std::io::{self, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use crate::env::Env;
use crate::ops::Outcome;
use crate::result::{CniError, INTERNAL, IO_FAILURE};

fn main() -> ExitCode {
    let env = Env::from_lookup(|k| std::env::var(k).ok());
    let mut stdin = Vec::new();
    let read = io::stdin().read_to_end(&mut stdin);
    let version = config::output_version(&stdin);
    let hook_version = version.clone();
    panic::set_hook(Box::new(move |info| {
        let e = CniError::new(INTERNAL, "segwire-cni failed unexpectedly; this is a bug")
            .with_details(info.to_string());
        let _ = writeln!(io::stdout(), "{}", e.to_json(&hook_version));
    }));
    let outcome = match read {
        Err(e) if env.command.as_deref() != Some("VERSION") => Outcome {
            stdout: CniError::new(
                IO_FAILURE,
                "segwire-cni could not read the network config on stdin",
            )
            .with_details(e.to_string())
            .to_json(&version),
            stderr: String::new(),
            exit: 1,
        },
        _ => match panic::catch_unwind(AssertUnwindSafe(|| {
            ops::run(&env, &stdin, &mut ops::SocketAgent)
        })) {
            Ok(outcome) => outcome,
            Err(_) => return ExitCode::FAILURE,
        },
    };
    if !outcome.stdout.is_empty() {
        let _ = writeln!(io::stdout(), "{}", outcome.stdout);
    }
    if !outcome.stderr.is_empty() {
        let _ = writeln!(io::stderr(), "{}", outcome.stderr);
    }
    if outcome.exit == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
