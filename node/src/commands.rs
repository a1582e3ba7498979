//! Runs each subcommand and prints its result.

use anyhow::{bail, Context};
use segwire_netdev::Netns;
use segwire_proto::api::Labels;
use segwire_proto::names::validate_label;
use serde::Serialize;

use crate::cli::{
    AttachArgs, Cli, CniCommand, CniInstallArgs, Command, DetachArgs, Output, WorkloadArgs,
};
use crate::cni_install;
use crate::container::Runtime;
use crate::control::{self, ContainerRef, Request, Response};
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
                    token: read_token(args.token.as_deref(), args.token_file.as_deref())?,
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
        Command::Run {
            metrics_listen,
            idle_cpu,
            ..
        } => crate::agent::run(dir, metrics_listen, idle_cpu).await,
        Command::Attach(args) => attach(&dir, cli.output, args),
        Command::Detach(args) => detach(&dir, cli.output, args),
        Command::Status => {
            let status = match call(&dir, &Request::Status)? {
                Response::Status(s) => s,
                other => bail!("unexpected answer from the agent: {other:?}"),
            };
            print(cli.output, &status, || crate::status::render(&status))
        }
        Command::Cni(CniCommand::Install(args)) => cni_install(&dir, cli.output, args),
        Command::Cni(CniCommand::Uninstall(args)) => {
            let name = args.name.unwrap_or_else(|| {
                cni_install::default_name(args.segment.as_deref().unwrap_or_default())
            });
            let removed = cni_install::uninstall(&args.conf_dir, &args.bin_dir, &name)?;
            print(cli.output, &removed, || {
                removed
                    .iter()
                    .map(|p| format!("removed {}\n", p.display()))
                    .collect()
            })
        }
    }
}

fn cni_install(dir: &StateDir, output: Output, args: CniInstallArgs) -> anyhow::Result<()> {
    let plugin = match args.plugin {
        Some(p) => p,
        None => cni_install::plugin_next_to_me()?,
    };
    let socket = std::path::absolute(dir.socket_file())
        .context("cannot make the state directory path absolute")?;
    let install = cni_install::Install {
        name: args
            .name
            .unwrap_or_else(|| cni_install::default_name(&args.segment)),
        segment: args.segment,
        labels: labels(&args.labels)?,
        conf_dir: args.conf_dir,
        bin_dir: args.bin_dir,
        agent_socket: socket,
        plugin,
    };
    let done = cni_install::install(&install)?;
    print(output, &done, || {
        format!(
            "wrote {} and installed {}\ncontainers join segment {} with: podman run --network {} ...",
            done.conf.display(),
            done.plugin.display(),
            done.segment,
            done.network
        )
    })
}

/// The join token from the argument, `-` (stdin) or `--token-file`, trimmed.
fn read_token(arg: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let text = match (arg, file) {
        (Some("-"), _) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read the join token from stdin")?;
            s
        }
        (Some(token), _) => token.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the join token from {}", path.display()))?,
        (None, None) => bail!("give the join token: `segwire-node join --token-file FILE`, or `-` to read it from stdin"),
    };
    let token = text.trim();
    if token.is_empty() {
        bail!("the join token is empty; paste the whole line `segwire token create` printed");
    }
    Ok(token.to_owned())
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
        Response::Error { message, .. } => bail!("{message}"),
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
        bail!(
            "say which workload: --host, --netns NAME_OR_PATH, --pid PID or --container NAME_OR_ID"
        );
    };
    Ok(Workload::from_netns(&netns))
}

/// A running container's workload (its main process's namespace) and what to record of it.
fn running_container(
    name: &str,
    runtime: Option<Runtime>,
) -> anyhow::Result<(Workload, ContainerRef)> {
    let runtime = Runtime::choose(runtime);
    let c = runtime.inspect(name)?;
    if !c.running || c.pid == 0 {
        bail!(
            "container {} is not running ({} says it is {}); start it first, e.g. `{runtime} start {}`",
            c.name,
            runtime,
            c.status,
            c.name
        );
    }
    let reference = ContainerRef {
        id: c.id,
        name: Some(c.name),
        runtime: runtime.to_string(),
    };
    Ok((Workload::Pid(c.pid), reference))
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
    let (workload, container) = match &args.workload.container {
        Some(name) => {
            let (w, c) = running_container(name, args.runtime)?;
            (w, Some(c))
        }
        None => (workload(&args.workload)?, None),
    };
    let name = args.name.or_else(|| {
        container
            .as_ref()
            .and_then(|c| c.name.as_deref())
            .map(member_name)
    });
    let request = Request::Attach {
        segment: args.segment,
        workload: workload.to_string(),
        name,
        labels: labels(&args.labels)?,
        interface: None,
        container,
    };
    let attached = match call(dir, &request)? {
        Response::Attached(a) => a,
        other => bail!("unexpected answer from the agent: {other:?}"),
    };
    print(output, &attached, || {
        format!(
            "{} {} in {} (segment {}, member {}){}",
            attached.interface,
            [
                Some(format!("{}/32", attached.address)).filter(|_| !attached.address.is_empty()),
                attached.address6.as_ref().map(|a6| format!("{a6}/128")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
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
    if let Some(name) = &args.workload.container {
        return detach_container(dir, output, name, &args);
    }
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

/// `detach --container`: by the runtime's full id when it still knows the container (a
/// stopped one too), else by what was given (an id, a long id prefix or the name).
fn detach_container(
    dir: &StateDir,
    output: Output,
    given: &str,
    args: &DetachArgs,
) -> anyhow::Result<()> {
    let container = Runtime::choose(args.runtime)
        .inspect(given)
        .map_or_else(|_| given.to_owned(), |c| c.id);
    let request = Request::DetachContainer {
        container,
        segment: Some(args.segment.clone()),
        interface: None,
    };
    let members = match call(dir, &request)? {
        Response::DetachedMembers { members } => members,
        other => bail!("unexpected answer from the agent: {other:?}"),
    };
    if members.is_empty() {
        bail!(
            "container {given} is not attached to segment {} on this node",
            args.segment
        );
    }
    print(output, &members, || {
        members
            .iter()
            .map(|m| {
                format!(
                    "detached container {given} from {} ({} removed)\n",
                    m.segment, m.interface
                )
            })
            .collect()
    })
}

/// A member name from a container name: a lowercase DNS label (other characters become
/// `-`), at most 63 characters.
fn member_name(container: &str) -> String {
    let mut out = String::new();
    for c in container.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::{member_name, read_token};

    #[test]
    fn the_join_token_comes_from_the_argument_or_a_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("token");
        std::fs::write(&file, "  swt1_abc\n").expect("write");
        assert_eq!(read_token(None, Some(&file)).expect("file"), "swt1_abc");
        assert_eq!(read_token(Some("swt1_x"), None).expect("arg"), "swt1_x");
        std::fs::write(&file, "\n").expect("write");
        assert!(read_token(None, Some(&file))
            .expect_err("empty")
            .to_string()
            .contains("empty"));
        assert!(read_token(None, Some(&tmp.path().join("missing"))).is_err());
    }

    #[test]
    fn container_names_become_member_names() {
        assert_eq!(member_name("web1"), "web1");
        assert_eq!(member_name("My_App.v2"), "my-app-v2");
        assert_eq!(member_name("--x__y--"), "x-y");
        assert_eq!(member_name(&"a".repeat(80)).len(), 63);
    }
}
