//! `attach|detach --container NAME_OR_ID`: finding a container through its runtime's
//! command line (`podman inspect`, `docker inspect`).

use std::fmt;
use std::process::Command;

use clap::ValueEnum;

/// A container runtime whose CLI can tell a container's id, name and main process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// `podman`.
    Podman,
    /// `docker` (or a docker-compatible CLI such as nerdctl installed as `docker`).
    Docker,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// A container as its runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full container id.
    pub id: String,
    /// Container name (without docker's leading `/`).
    pub name: String,
    /// Main process id (0 when not running).
    pub pid: u32,
    /// Whether it runs.
    pub running: bool,
    /// The runtime's state word (`running`, `exited`, `created`, …).
    pub status: String,
}

/// Why a container could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The runtime's CLI is not installed.
    #[error("{runtime} is not installed (or not on PATH); install it or choose another runtime with --runtime podman|docker")]
    NoRuntime {
        /// The runtime.
        runtime: Runtime,
    },
    /// The runtime knows no such container.
    #[error("{runtime} has no container {name:?}: {detail}")]
    NotFound {
        /// The runtime.
        runtime: Runtime,
        /// What was asked for.
        name: String,
        /// What the runtime said.
        detail: String,
    },
    /// The runtime's answer could not be read.
    #[error("could not read what `{runtime} inspect` said about {name:?}: {output:?}")]
    BadOutput {
        /// The runtime.
        runtime: Runtime,
        /// What was asked for.
        name: String,
        /// Its output.
        output: String,
    },
}

/// What `inspect --format` prints: one line, fields separated by spaces.
const FORMAT: &str = "{{.Id}} {{.Name}} {{.State.Pid}} {{.State.Running}} {{.State.Status}}";

impl Runtime {
    fn program(self) -> &'static str {
        match self {
            Runtime::Podman => "podman",
            Runtime::Docker => "docker",
        }
    }

    /// The runtime asked for, or podman when it is installed, else docker.
    #[must_use]
    pub fn choose(asked: Option<Runtime>) -> Runtime {
        asked.unwrap_or_else(|| {
            if on_path("podman") || !on_path("docker") {
                Runtime::Podman
            } else {
                Runtime::Docker
            }
        })
    }

    /// Looks up container `name` (a name or an id).
    ///
    /// # Errors
    /// [`ContainerError`].
    pub fn inspect(self, name: &str) -> Result<Container, ContainerError> {
        self.inspect_with(self.program(), name)
    }

    fn inspect_with(self, program: &str, name: &str) -> Result<Container, ContainerError> {
        let output = Command::new(program)
            .args(["inspect", "--type", "container", "--format", FORMAT, name])
            .output()
            .map_err(|_| ContainerError::NoRuntime { runtime: self })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let detail = stderr.lines().next().unwrap_or("no such container").trim();
            return Err(ContainerError::NotFound {
                runtime: self,
                name: name.to_owned(),
                detail: detail.trim_start_matches("Error: ").to_owned(),
            });
        }
        parse(stdout.lines().next().unwrap_or("")).ok_or_else(|| ContainerError::BadOutput {
            runtime: self,
            name: name.to_owned(),
            output: stdout.chars().take(200).collect(),
        })
    }
}

/// Parses one line of [`FORMAT`] output.
fn parse(line: &str) -> Option<Container> {
    let mut f = line.split_whitespace();
    let id = f.next()?.to_owned();
    let name = f.next()?.trim_start_matches('/').to_owned();
    let pid = f.next()?.parse().ok()?;
    let running = f.next()?.parse().ok()?;
    let status = f.next().unwrap_or("unknown").to_owned();
    Some(Container {
        id,
        name,
        pid,
        running,
        status,
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_lines_of_podman_and_docker_parse() {
        let c = parse("3f1e2d web1 4242 true running").expect("podman");
        assert_eq!(
            c,
            Container {
                id: "3f1e2d".into(),
                name: "web1".into(),
                pid: 4242,
                running: true,
                status: "running".into()
            }
        );
        let d = parse("abc /db 0 false exited").expect("docker");
        assert_eq!((d.name.as_str(), d.pid, d.running), ("db", 0, false));
        assert!(parse("").is_none());
        assert!(parse("abc web x true").is_none());
    }

    #[test]
    fn a_missing_runtime_is_a_sentence() {
        let err = Runtime::Podman
            .inspect_with("segwire-no-such-runtime", "x")
            .expect_err("no runtime");
        assert!(err.to_string().contains("not installed"), "{err}");
    }
}
