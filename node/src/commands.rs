//! Runs each subcommand and prints its result.

use anyhow::{bail, Context};
use segwire_netdev::Netns;
use segwire_proto::api::Labels;
use segwire_proto::names::validate_label;
use serde::Serialize;

use crate::cli::{AttachArgs, Cli, Command, DetachArgs, Output, WorkloadArgs};
use crate::control::{self, Request, Response};
use crate::join::{join, JoinOptions};
use crate::state::StateDir;
use crate::workload::Workload;

/// Runs the command line's subcommand.
///
/// # Errors
/// One sentence saying what failed.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = StateDir::new(&cli.state_dir);
    match cli.command {
        Command::Join(args) => {
            let joined = join(
                &dir,
                JoinOptions {
                    token: args.token,
                    name: args.name,
                    endpoint: args.endpoint,
                    force: args.force,
                },
            )
            .await?;
            print(cli.output, &joined, || {
                format!(
                    "joined {} as {} (node {}); segments: {}\nstart the agent: segwire-node run",
                    joined.coordinator,
                    joined.name,
                    joined.node_id,
                    joined.segments.join(", ")
                )
            })
        }
        Command::Run { metrics_listen, .. } => crate::agent::run(dir, metrics_listen).await,
        Command::Attach(args) => attach(&dir, cli.output, args),
        Command::Detach(args) => detach(&dir, cli.output, args),
        Command::Status => {
            let status = match call(&dir, &Request::Status)? {
                Response::Status(s) => s,
                other => bail!("unexpected answer from the agent: {other:?}"),
            };
            print(cli.output, &status, || crate::status::render(&status))
        }
    }
}

fn print<T: Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Table => print!("{}", ensure_newline(text())),
    }
    Ok(())
}

fn ensure_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Sends a request; an error answer becomes an error.
fn call(dir: &StateDir, request: &Request) -> anyhow::Result<Response> {
    match control::call(&dir.socket_file(), request)? {
        Response::Error { message } => bail!("{message}"),
        other => Ok(other),
    }
}

fn workload(args: &WorkloadArgs) -> anyhow::Result<Workload> {
    let netns = if args.host {
        Netns::Current
    } else if let Some(n) = &args.netns {
        Netns::from_netns_arg(n)?
    } else if let Some(p) = &args.pid {
        Netns::from_pid_arg(p)?
    } else {
        bail!("say which workload: --host, --netns NAME_OR_PATH or --pid PID");
    };
    Ok(Workload::from_netns(&netns))
}

fn labels(raw: &[String]) -> anyhow::Result<Labels> {
    let mut out = Labels::new();
    for l in raw {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("label {l:?} must look like key=value"))?;
        validate_label(k).and_then(|()| validate_label(v))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn attach(dir: &StateDir, output: Output, args: AttachArgs) -> anyhow::Result<()> {
    let request = Request::Attach {
        segment: args.segment,
        workload: workload(&args.workload)?.to_string(),
        name: args.name,
        labels: labels(&args.labels)?,
    };
    let attached = match call(dir, &request)? {
        Response::Attached(a) => a,
        other => bail!("unexpected answer from the agent: {other:?}"),
    };
    print(output, &attached, || {
        format!(
            "{} {}/32 in {} (segment {}, member {}){}",
            attached.interface,
            attached.address,
            attached.workload,
            attached.segment,
            attached.name,
            if attached.up {
                ""
            } else {
                "; the interface comes up with the next netmap"
            }
        )
    })
}

fn detach(dir: &StateDir, output: Output, args: DetachArgs) -> anyhow::Result<()> {
    let workload = workload(&args.workload)?;
    let request = Request::Detach {
        segment: args.segment.clone(),
        workload: workload.to_string(),
    };
    match call(dir, &request)? {
        Response::Detached { id, interface } => {
            #[derive(Serialize)]
            struct Detached<'a> {
                id: &'a str,
                interface: &'a str,
                segment: &'a str,
                workload: String,
            }
            let shown = Detached {
                id: &id,
                interface: &interface,
                segment: &args.segment,
                workload: workload.to_string(),
            };
            print(output, &shown, || {
                format!(
                    "detached {workload} from {} ({interface} removed)",
                    args.segment
                )
            })
        }
        other => bail!("unexpected answer from the agent: {other:?}"),
    }
}
