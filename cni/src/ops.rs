//! The CNI verbs, each one request to the agent, without any process plumbing.

use std::path::Path;
use std::time::Duration;

use segwire_control::{ContainerRef, ControlError, Request, Response, CNI_RUNTIME};
use segwire_proto::api::Labels;
use segwire_proto::names::validate_member_name;

use crate::config::{self, NetConf};
use crate::env::{CniArgs, Env};
use crate::member;
use crate::result::{
    self, CniError, AGENT_REFUSED, INVALID_ENV, IO_FAILURE, NOT_AVAILABLE, TRY_AGAIN_LATER,
};

/// How long ADD waits for the agent (an attach may talk to the coordinator).
pub const ADD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the other verbs wait for the agent.
pub const OTHER_TIMEOUT: Duration = Duration::from_secs(30);

/// Something that answers control requests: the agent's socket, or a fake in tests.
pub trait Agent {
    /// Sends one request to the agent on `socket` and returns its answer.
    ///
    /// # Errors
    /// [`ControlError`] when the agent cannot be reached or answers garbage.
    fn call(
        &mut self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ControlError>;
}

/// The real agent, reached through its control socket.
#[derive(Debug, Default)]
pub struct SocketAgent;

impl Agent for SocketAgent {
    fn call(
        &mut self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ControlError> {
        segwire_control::call_with_timeout(socket, request, timeout)
    }
}

/// What the process prints and how it exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Text for stdout (a JSON document or nothing).
    pub stdout: String,
    /// Text for stderr (notes for a human, or nothing).
    pub stderr: String,
    /// The exit status: 0 for success, 1 with a CNI error object on stdout.
    pub exit: i32,
}

/// A successful verb's output.
#[derive(Debug, Default)]
struct Done {
    stdout: String,
    stderr: String,
}

impl Done {
    fn print(stdout: String) -> Done {
        Done {
            stdout,
            stderr: String::new(),
        }
    }
}

/// Runs the verb `env.command` with the network config `stdin`.
pub fn run(env: &Env, stdin: &[u8], agent: &mut dyn Agent) -> Outcome {
    let version = config::output_version(stdin);
    let done = match env.command.as_deref() {
        Some("VERSION") => Ok(Done::print(result::version_json())),
        Some("ADD") => add(env, stdin, agent),
        Some("DEL") => del(env, stdin, agent),
        Some("CHECK") => check(env, stdin, agent),
        Some("GC") => gc(stdin, agent),
        Some("STATUS") => status(stdin, agent),
        Some(other) => Err(CniError::new(
            INVALID_ENV,
            format!("CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, GC, STATUS or VERSION"),
        )),
        None => Err(CniError::new(
            INVALID_ENV,
            "CNI_COMMAND is not set; segwire-cni is a CNI plugin run by a container runtime",
        )),
    };
    match done {
        Ok(done) => Outcome {
            stdout: done.stdout,
            stderr: done.stderr,
            exit: 0,
        },
        Err(e) => Outcome {
            stdout: e.to_json(&version),
            stderr: String::new(),
            exit: 1,
        },
    }
}

/// The labels asked for: the network's, then `runtimeConfig.labels`, then the
/// `SEGWIRE_LABEL_*` pairs of `CNI_ARGS`; later sources win.
fn container_labels(conf: &NetConf, args: &CniArgs) -> Result<Labels, CniError> {
    let mut labels = conf.labels.clone();
    labels.extend(conf.runtime_labels.clone());
    labels.extend(args.labels()?);
    Ok(labels)
}

fn control_error(e: ControlError) -> CniError {
    match e {
        ControlError::PermissionDenied { .. } => CniError::new(IO_FAILURE, e.to_string()),
        ControlError::NotRunning { .. } | ControlError::Protocol { .. } => {
            CniError::new(TRY_AGAIN_LATER, e.to_string())
        }
    }
}

fn call(
    agent: &mut dyn Agent,
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, CniError> {
    agent.call(socket, request, timeout).map_err(control_error)
}

/// Code 100 for an answer the verb cannot use: the agent's own refusal, or a surprise.
fn refused(answer: Response) -> CniError {
    let kind = match answer {
        Response::Error {
            message,
            retry: true,
        } => return CniError::new(TRY_AGAIN_LATER, message),
        Response::Error { message, .. } => return CniError::new(AGENT_REFUSED, message),
        Response::Attached(_) => "attached",
        Response::Detached { .. } => "detached",
        Response::DetachedMembers { .. } => "detached_members",
        Response::Status(_) => "status",
    };
    CniError::new(
        AGENT_REFUSED,
        format!("the agent gave an unexpected answer ({kind}); are segwire-node and segwire-cni the same version?"),
    )
}

fn add(env: &Env, stdin: &[u8], agent: &mut dyn Agent) -> Result<Done, CniError> {
    let conf = config::parse(stdin)?;
    let id = env.checked_container_id()?;
    let netns = env.netns()?;
    let ifname = env.ifname()?;
    let args = env.cni_args();
    let labels = container_labels(&conf, &args)?;
    let pod = args.pod_name();
    let name = member::member_name(pod, id);
    validate_member_name(&name).map_err(|e| {
        CniError::new(
            INVALID_ENV,
            format!("no member name can be made from the container: {e}"),
        )
    })?;
    let request = Request::Attach {
        segment: conf.segment.clone(),
        workload: format!("path:{netns}"),
        name: Some(name),
        labels,
        interface: Some(ifname.to_owned()),
        container: Some(ContainerRef {
            id: id.to_owned(),
            name: pod.map(str::to_owned),
            runtime: CNI_RUNTIME.into(),
        }),
    };
    match call(agent, &conf.agent_socket, &request, ADD_TIMEOUT)? {
        Response::Attached(a) if !a.up || (a.cidr.is_empty() && a.cidr6.is_none()) => Err(CniError::new(
            TRY_AGAIN_LATER,
            format!(
                "member {} was attached but its interface is not up yet (no netmap from the coordinator in time); try again, or see `segwire-node status`",
                a.name
            ),
        )),
        Response::Attached(a) => Ok(Done::print(result::add_result(
            &conf.cni_version,
            ifname,
            netns,
            &a,
        )?)),
        other => Err(refused(other)),
    }
}

/// DEL needs only the container id: a broken config or a missing namespace must not
/// keep a container from being torn down, and an absent agent is not an error (it
/// detaches members whose namespace is gone when it starts).
fn del(env: &Env, stdin: &[u8], agent: &mut dyn Agent) -> Result<Done, CniError> {
    let id = env.container_id()?;
    let conf = config::parse_lenient(stdin);
    let request = Request::DetachContainer {
        container: id.to_owned(),
        segment: conf.segment,
        interface: env.ifname.clone(),
    };
    match agent.call(&conf.agent_socket, &request, OTHER_TIMEOUT) {
        Err(ControlError::NotRunning { path }) => Ok(Done {
            stdout: String::new(),
            stderr: format!(
                "segwire-cni: no agent answers on {}; nothing detached now: the agent detaches members whose namespace is gone when it starts",
                path.display()
            ),
        }),
        Err(e) => Err(control_error(e)),
        Ok(Response::DetachedMembers { .. } | Response::Detached { .. }) => Ok(Done::default()),
        Ok(other) => Err(refused(other)),
    }
}

fn check(env: &Env, stdin: &[u8], agent: &mut dyn Agent) -> Result<Done, CniError> {
    let conf = config::parse(stdin)?;
    let request = Request::Check {
        container: env.container_id()?.to_owned(),
        segment: conf.segment.clone(),
        interface: env.ifname()?.to_owned(),
    };
    let attached = match call(agent, &conf.agent_socket, &request, OTHER_TIMEOUT)? {
        Response::Attached(a) => a,
        other => return Err(refused(other)),
    };
    let expected = conf
        .prev_result
        .as_ref()
        .map(result::prev_result_ips)
        .unwrap_or_default();
    let ours = result::address_ip(&attached.address)
        .or_else(|| attached.address6.as_deref().and_then(result::address_ip));
    if !expected.is_empty() && ours.is_none_or(|ip| !expected.contains(&ip)) {
        let listed: Vec<String> = expected.iter().map(ToString::to_string).collect();
        return Err(CniError::new(
            AGENT_REFUSED,
            format!(
                "the member's overlay address {:?} is not the one in prevResult ({})",
                attached.address,
                listed.join(", ")
            ),
        ));
    }
    Ok(Done::default())
}

fn gc(stdin: &[u8], agent: &mut dyn Agent) -> Result<Done, CniError> {
    let conf = config::parse(stdin)?;
    if conf.disable_gc {
        return Ok(Done::default());
    }
    let request = Request::Gc {
        segment: conf.segment.clone(),
        valid: conf.valid_containers()?,
    };
    match call(agent, &conf.agent_socket, &request, OTHER_TIMEOUT)? {
        Response::DetachedMembers { members } => Ok(Done {
            stdout: String::new(),
            stderr: members
                .iter()
                .map(|m| {
                    format!(
                        "segwire-cni: GC detached member {} ({})",
                        m.name, m.interface
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }),
        other => Err(refused(other)),
    }
}

fn status(stdin: &[u8], agent: &mut dyn Agent) -> Result<Done, CniError> {
    let conf = config::parse(stdin)?;
    let unavailable = |msg: String| CniError::new(NOT_AVAILABLE, msg);
    match agent.call(&conf.agent_socket, &Request::Status, OTHER_TIMEOUT) {
        Ok(Response::Status(s)) if s.revoked => Err(unavailable(format!(
            "the coordinator revoked node {:?}, so its agent attaches nothing; enroll the node again",
            s.node
        ))),
        Ok(Response::Status(_)) => Ok(Done::default()),
        Ok(other) => Err(unavailable(refused(other).msg)),
        Err(e @ ControlError::PermissionDenied { .. }) => Err(control_error(e)),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
