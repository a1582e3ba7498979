//! The agent's attach and detach requests: by workload, by container (CNI ADD/DEL,
//! `attach|detach --container`), CNI CHECK and GC.

use anyhow::{bail, Context};
use segwire_client::ClientError;
use segwire_netdev::{list_ipv4_addrs, list_links, validate_interface_name};
use segwire_proto::api::{AttachRequest, Labels};
use segwire_proto::names::validate_segment_name;

use super::{Agent, ATTACH_WAIT, FIRST_PORT};
use crate::control::{Attached, ContainerRef, DetachedMember, Response, CNI_RUNTIME};
use crate::keys::PrivateKey;
use crate::member;
use crate::state::LocalMember;
use crate::workload::{Liveness, Workload};

/// What an attach asks for, besides the segment and workload.
#[derive(Debug, Default)]
pub(super) struct AttachOptions {
    /// Member name (the coordinator picks one if absent).
    pub name: Option<String>,
    /// Labels asked for.
    pub labels: Labels,
    /// Interface name instead of `sw-<segment>`.
    pub interface: Option<String>,
    /// The container the workload belongs to.
    pub container: Option<ContainerRef>,
}

impl Agent {
    /// A free port for a new member, bound right away so nothing else takes it.
    fn pick_port(&self) -> anyhow::Result<(u16, std::net::UdpSocket)> {
        let used = |p: u16| {
            self.state.members.iter().any(|m| m.listen_port == p) || self.prebound.contains_key(&p)
        };
        for port in FIRST_PORT..=u16::MAX {
            if used(port) {
                continue;
            }
            if let Ok(socket) = member::bind_port(port) {
                return Ok((port, socket));
            }
        }
        bail!("no free UDP port from {FIRST_PORT} up");
    }

    pub(super) fn attached(&self, m: &LocalMember) -> Attached {
        let applied = self.applied.members.get(&m.id);
        Attached {
            id: m.id.clone(),
            name: m.name.clone(),
            segment: m.segment.clone(),
            workload: m.workload.to_string(),
            interface: m.interface(),
            address: m.address.map(|a| a.to_string()).unwrap_or_default(),
            cidr: applied
                .and_then(|c| c.ipv4)
                .map(|(_, n)| n.to_string())
                .unwrap_or_default(),
            address6: applied
                .and_then(|c| c.ipv6.map(|(a, _)| a))
                .or(m.address6)
                .map(|a| a.to_string()),
            cidr6: applied.and_then(|c| c.ipv6).map(|(_, n)| n.to_string()),
            listen_port: m.listen_port,
            public_key: m.private_key.public_key().to_base64(),
            up: self.running.contains_key(&m.id),
            container: m.container.clone(),
        }
    }

    pub(super) async fn attach(
        &mut self,
        segment: String,
        workload: &str,
        options: AttachOptions,
    ) -> anyhow::Result<Attached> {
        if self.revoked {
            bail!("this node was revoked by the coordinator; re-join it with `segwire-node join --force TOKEN`");
        }
        validate_segment_name(&segment)?;
        let workload: Workload = workload.parse()?;
        workload.netns().check()?;
        if let Some(name) = &options.interface {
            validate_interface_name(name)?;
        }
        if let Some(m) = self.state.member(&segment, &workload) {
            return Ok(self.attached(m));
        }
        let interface = options
            .interface
            .clone()
            .unwrap_or_else(|| segwire_netdev::interface_name(&segment));
        if let Some(other) = self
            .state
            .members
            .iter()
            .find(|m| m.workload == workload && m.interface() == interface)
        {
            bail!(
                "{workload} already has an interface {interface} for segment {}; choose another interface name",
                other.segment
            );
        }
        let netns_id = workload
            .netns_id()
            .with_context(|| format!("cannot look at the namespace of {workload}"))?;
        let key = PrivateKey::generate();
        let (port, socket) = self.pick_port()?;
        let request = AttachRequest {
            segment: segment.clone(),
            workload: workload.to_string(),
            name: options.name,
            public_key: key.public_key().to_base64(),
            listen_port: port,
            endpoints: Vec::new(),
            labels: options.labels.clone(),
        };
        let member = match self.client.attach(&request).await {
            Ok(m) => m,
            Err(e) => {
                self.note(&e);
                return Err(e.into());
            }
        };
        let parse = |a: &Option<String>| -> anyhow::Result<Option<std::net::IpAddr>> {
            a.as_deref()
                .map(|a| {
                    a.parse()
                        .with_context(|| format!("the coordinator gave a bad address {a:?}"))
                })
                .transpose()
        };
        let (address, address6) = match (parse(&member.address)?, parse(&member.address6)?) {
            (Some(std::net::IpAddr::V4(a)), Some(std::net::IpAddr::V6(a6))) => (Some(a), Some(a6)),
            (Some(std::net::IpAddr::V4(a)), None) => (Some(a), None),
            (None, Some(std::net::IpAddr::V6(a6))) => (None, Some(a6)),
            _ => bail!(
                "the coordinator gave no usable overlay address for member {}",
                member.name
            ),
        };
        let local = LocalMember {
            id: member.id,
            name: member.name,
            segment,
            workload,
            address,
            address6,
            listen_port: port,
            private_key: key,
            labels: options.labels,
            confirmed: false,
            interface: options.interface,
            container: options.container,
            netns_id,
        };
        tracing::info!(member = %local.name, segment = %local.segment, workload = %local.workload, address = ?local.address, address6 = ?local.address6, port, "member attached");
        self.state.members.push(local.clone());
        self.dir
            .save_state(&self.state)
            .context("the member was attached but could not be saved")?;
        self.prebound.insert(port, socket);
        // The coordinator wakes this node's long-poll: wait for the netmap that lists the
        // new member (taking every event in order meanwhile) so it runs when we answer.
        let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
        while !self.running.contains_key(&local.id) {
            match tokio::time::timeout_at(deadline, self.sync_rx.recv()).await {
                Ok(Some(event)) => self.on_sync(event).await,
                Ok(None) | Err(_) => {
                    tracing::warn!(member = %local.name, "no netmap with the new member yet; it comes up with the next one");
                    break;
                }
            }
        }
        Ok(self.attached(&local))
    }

    /// `detach --segment S --netns …`: the coordinator must confirm it first.
    pub(super) async fn detach(
        &mut self,
        segment: &str,
        workload: &str,
    ) -> anyhow::Result<Response> {
        let workload: Workload = workload.parse()?;
        let Some(m) = self.state.member(segment, &workload).cloned() else {
            bail!("{workload} is not attached to segment {segment} on this node");
        };
        if !self.revoked {
            match self.client.detach(&m.id).await {
                Ok(()) | Err(ClientError::Api { status: 404, .. }) => {}
                Err(e) => {
                    self.note(&e);
                    return Err(anyhow::Error::from(e).context(
                        "the coordinator must confirm a detach; try again when it is reachable",
                    ));
                }
            }
        }
        self.remove_local(std::slice::from_ref(&m.id), "detach")
            .await;
        Ok(Response::Detached {
            interface: m.interface(),
            id: m.id,
        })
    }

    /// CNI DEL and `detach --container`: detaches the container's members at once and
    /// tells the coordinator in the background ([`Agent::forget`]). Nothing to detach is
    /// not an error.
    pub(super) async fn detach_container(
        &mut self,
        container: &str,
        segment: Option<&str>,
        interface: Option<&str>,
    ) -> Vec<DetachedMember> {
        let ids: Vec<String> = self
            .state
            .members
            .iter()
            .filter(|m| m.container.as_ref().is_some_and(|c| names(c, container)))
            .filter(|m| segment.is_none_or(|s| m.segment == s))
            .filter(|m| interface.is_none_or(|i| m.interface() == i))
            .map(|m| m.id.clone())
            .collect();
        self.forget(&ids, "its container was detached").await
    }

    /// CNI GC: detaches the CNI-attached members of `segment` whose container is not in
    /// `valid`.
    pub(super) async fn collect_garbage(
        &mut self,
        segment: &str,
        valid: &[String],
    ) -> Vec<DetachedMember> {
        let ids: Vec<String> = self
            .state
            .members
            .iter()
            .filter(|m| m.segment == segment)
            .filter(|m| {
                m.container
                    .as_ref()
                    .is_some_and(|c| c.runtime == CNI_RUNTIME && !valid.contains(&c.id))
            })
            .map(|m| m.id.clone())
            .collect();
        self.forget(&ids, "CNI GC: its container is gone").await
    }

    /// CNI CHECK: the container's member of `segment` runs, and its interface carries its
    /// address.
    pub(super) async fn check(
        &self,
        container: &str,
        segment: &str,
        interface: &str,
    ) -> anyhow::Result<Attached> {
        let Some(m) = self.state.members.iter().find(|m| {
            m.segment == segment
                && m.interface() == interface
                && m.container.as_ref().is_some_and(|c| c.id == container)
        }) else {
            bail!("container {container} has no member in segment {segment} with interface {interface} on this node");
        };
        if let Liveness::Gone(why) = m.workload.liveness(m.netns_id) {
            bail!("member {} is going away: {why}", m.name);
        }
        if !self.running.contains_key(&m.id) {
            bail!(
                "the data path of member {} is not running (see `segwire-node status`)",
                m.name
            );
        }
        let netns = m.workload.netns();
        let links = list_links(&netns).await?;
        let Some(link) = links.iter().find(|l| l.name == interface) else {
            bail!("interface {interface} is missing in {netns}");
        };
        // The IPv4 address when the member has one (an IPv6-only member's interface is
        // checked by its link alone).
        if let Some(address) = m.address {
            let addrs = list_ipv4_addrs(&netns).await?;
            if !addrs
                .iter()
                .any(|a| a.index == link.index && a.addr.addr() == address)
            {
                bail!(
                    "interface {interface} in {netns} does not carry the member's address {address}"
                );
            }
        }
        Ok(self.attached(m))
    }
}

/// Whether `given` names the container: its id, an id prefix of 12 or more characters,
/// or its name.
fn names(c: &ContainerRef, given: &str) -> bool {
    c.id == given
        || (given.len() >= 12 && c.id.starts_with(given))
        || c.name.as_deref() == Some(given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_is_named_by_id_long_prefix_or_name() {
        let c = ContainerRef {
            id: "0123456789abcdef0123".into(),
            name: Some("web1".into()),
            runtime: "podman".into(),
        };
        assert!(names(&c, "0123456789abcdef0123"));
        assert!(names(&c, "0123456789ab"));
        assert!(names(&c, "web1"));
        assert!(!names(&c, "0123"), "a short prefix is ambiguous");
        assert!(!names(&c, "web"));
    }
}
