//! Reconciliation, as pure functions: [`desired`] turns the saved state and the netmap
//! into the [`NodeConfig`] the node should run, and [`diff`] compares it with what is
//! applied and returns typed [`Change`]s. The agent logs and applies them; peers are
//! always updated in place, never rebuilt.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use segwire_proto::netmap::{MemberMap, NetMap, Peer};
use segwire_tunnel::{PeerConfig, PresharedKey, PublicKey};

use crate::keys::PrivateKey;
use crate::policy::PolicyInput;
use crate::state::{LocalMember, NodeState};
use crate::workload::Workload;

/// Everything this node should run: its members, by member id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeConfig {
    /// Members by id.
    pub members: BTreeMap<String, MemberConfig>,
}

/// One member as it should run.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment name.
    pub segment: String,
    /// Interface name (`sw-<segment>`, or the one the attach asked for).
    pub interface: String,
    /// Where the interface lives.
    pub workload: Workload,
    /// The member's IPv4 address and the segment's IPv4 network (its IPv4 route); `None`
    /// on an IPv6-only segment.
    pub ipv4: Option<(Ipv4Addr, Ipv4Net)>,
    /// The member's IPv6 address and the segment's prefix (its IPv6 route, on the same
    /// interface), on a dual-stack or IPv6-only segment.
    pub ipv6: Option<(Ipv6Addr, Ipv6Net)>,
    /// UDP port in the host namespace.
    pub listen_port: u16,
    /// Static private key.
    pub private_key: PrivateKey,
    /// Its public key.
    pub public_key: PublicKey,
    /// Segment preshared key.
    pub psk: PresharedKey,
    /// Version of the preshared key.
    pub psk_version: u64,
    /// During a key rotation, the second key answered too (the next key, then the
    /// previous one).
    pub psk_also: Option<PresharedKey>,
    /// Peers by public key.
    pub peers: BTreeMap<PublicKey, PeerSpec>,
    /// What its firewall is compiled from.
    pub policy: PolicyInput,
}

/// One peer of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Its public key.
    pub public_key: PublicKey,
    /// Member id of the peer.
    pub id: String,
    /// Member name of the peer.
    pub name: String,
    /// Node it lives on.
    pub node: String,
    /// Its IPv4 overlay address; `None` on an IPv6-only segment.
    pub address: Option<Ipv4Addr>,
    /// Its IPv6 overlay address, on a segment with an IPv6 prefix.
    pub address6: Option<Ipv6Addr>,
    /// Networks routed to it (its /32 and its /128, whichever it has).
    pub allowed_ips: Vec<IpNet>,
    /// Where to send to it (the first usable endpoint of the netmap).
    pub endpoint: Option<SocketAddr>,
    /// Its labels (policies select by them).
    pub labels: segwire_proto::api::Labels,
}

impl PeerSpec {
    /// The tunnel's view of this peer.
    #[must_use]
    pub fn to_peer_config(&self) -> PeerConfig {
        PeerConfig {
            public_key: self.public_key,
            endpoint: self.endpoint,
            allowed_ips: self.allowed_ips.clone(),
            persistent_keepalive: None,
        }
    }
}

/// The result of [`desired`]: the configuration, and what of the netmap had to be skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// What to run.
    pub config: NodeConfig,
    /// One sentence per skipped member or peer (for the log).
    pub skipped: Vec<String>,
}

/// The underlay address families this host can send from (its own endpoints' families):
/// each peer is reached at its first endpoint of one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Underlay {
    /// The host has an IPv4 underlay address.
    pub ipv4: bool,
    /// The host has an IPv6 underlay address.
    pub ipv6: bool,
}

impl Underlay {
    /// The families of `addrs`, the host's own underlay addresses; a host that knows none
    /// is taken to be on IPv4.
    #[must_use]
    pub fn of(addrs: &[std::net::IpAddr]) -> Underlay {
        let ipv4 = addrs.iter().any(std::net::IpAddr::is_ipv4);
        let ipv6 = addrs.iter().any(std::net::IpAddr::is_ipv6);
        Underlay {
            ipv4: ipv4 || !ipv6,
            ipv6,
        }
    }

    /// The endpoint to send to among `endpoints` (best first): the first IPv4 one when
    /// this host has IPv4, else the first IPv6 one when it has IPv6, else the first.
    #[must_use]
    pub fn pick(self, endpoints: &[SocketAddr]) -> Option<SocketAddr> {
        let first = |v4: bool| endpoints.iter().find(|e| e.is_ipv4() == v4);
        self.ipv4
            .then(|| first(true))
            .flatten()
            .or_else(|| self.ipv6.then(|| first(false)).flatten())
            .or(endpoints.first())
            .copied()
    }
}

impl Default for Underlay {
    fn default() -> Self {
        Underlay::of(&[])
    }
}

/// What the node should run: every local member (from `state`, which has its private
/// key) that the netmap lists, with the netmap's address, CIDR, PSK and peers, each peer
/// reached at an endpoint of a family the host's `underlay` has. Members the netmap
/// lists but this node has no key for, and malformed netmap entries, are skipped and
/// reported. No netmap means no members (their PSK is unknown).
#[must_use]
pub fn desired(state: &NodeState, netmap: Option<&NetMap>, underlay: Underlay) -> Desired {
    let mut out = Desired::default();
    let Some(netmap) = netmap else {
        return out;
    };
    for mm in &netmap.members {
        let Some(local) = state.members.iter().find(|m| m.id == mm.id) else {
            out.skipped.push(format!(
                "member {} ({}) is not attached on this node (no key); asking the coordinator to detach it",
                mm.name, mm.id
            ));
            continue;
        };
        match member_config(local, mm, underlay, &mut out.skipped) {
            Ok(config) => {
                out.config.members.insert(config.id.clone(), config);
            }
            Err(why) => out
                .skipped
                .push(format!("member {} ({}): {why}", mm.name, mm.id)),
        }
    }
    out
}

fn member_config(
    local: &LocalMember,
    mm: &MemberMap,
    underlay: Underlay,
    skipped: &mut Vec<String>,
) -> Result<MemberConfig, String> {
    let ipv4 = match (&mm.address, &mm.cidr) {
        (Some(a), Some(c)) => Some((
            a.parse::<Ipv4Addr>()
                .map_err(|_| format!("bad address {a:?}"))?,
            c.parse::<Ipv4Net>()
                .map_err(|_| format!("bad CIDR {c:?}"))?,
        )),
        _ => None,
    };
    let ipv6 = match (&mm.address6, &mm.cidr6) {
        (Some(a), Some(c)) => Some((
            a.parse::<Ipv6Addr>()
                .map_err(|_| format!("bad IPv6 address {a:?}"))?,
            c.parse::<Ipv6Net>()
                .map_err(|_| format!("bad IPv6 prefix {c:?}"))?,
        )),
        _ => None,
    };
    if ipv4.is_none() && ipv6.is_none() {
        return Err("no overlay address (neither IPv4 nor IPv6)".to_owned());
    }
    let psk = PresharedKey::from_base64(&mm.psk).map_err(|_| "bad preshared key".to_owned())?;
    let psk_also = mm
        .psk_next
        .as_deref()
        .or(mm.psk_previous.as_deref())
        .map(PresharedKey::from_base64)
        .transpose()
        .map_err(|_| "bad second preshared key".to_owned())?;
    let public_key = local.private_key.public_key();
    let mut peers = BTreeMap::new();
    for p in &mm.peers {
        match peer_spec(p, underlay) {
            Ok(spec) if spec.public_key == public_key => {
                skipped.push(format!("peer {} has this member's own key", p.name));
            }
            Ok(spec) => {
                peers.insert(spec.public_key, spec);
            }
            Err(why) => skipped.push(format!("peer {} of {}: {why}", p.name, mm.name)),
        }
    }
    let policy = PolicyInput::from_netmap(
        mm,
        ipv4.map(|(a, _)| a),
        ipv6.map(|(a, _)| a),
        peers
            .values()
            .map(|p| (p.name.clone(), p.address, p.address6, p.labels.clone())),
        skipped,
    );
    Ok(MemberConfig {
        id: mm.id.clone(),
        name: mm.name.clone(),
        segment: mm.segment.clone(),
        interface: local.interface(),
        workload: local.workload.clone(),
        ipv4,
        ipv6,
        listen_port: local.listen_port,
        private_key: local.private_key.clone(),
        public_key,
        psk,
        psk_version: mm.psk_version,
        psk_also,
        peers,
        policy,
    })
}

fn peer_spec(p: &Peer, underlay: Underlay) -> Result<PeerSpec, String> {
    let public_key: PublicKey = p
        .public_key
        .parse()
        .map_err(|_| "bad public key".to_owned())?;
    let address: Option<Ipv4Addr> = match &p.address {
        Some(a) => Some(a.parse().map_err(|_| format!("bad address {a:?}"))?),
        None => None,
    };
    let address6: Option<Ipv6Addr> = match &p.address6 {
        Some(a) => Some(a.parse().map_err(|_| format!("bad IPv6 address {a:?}"))?),
        None => None,
    };
    if address.is_none() && address6.is_none() {
        return Err("no overlay address".to_owned());
    }
    let endpoints: Vec<SocketAddr> = p.endpoints.iter().filter_map(|e| e.parse().ok()).collect();
    let endpoint = underlay.pick(&endpoints);
    Ok(PeerSpec {
        public_key,
        id: p.id.clone(),
        name: p.name.clone(),
        node: p.node.clone(),
        address,
        address6,
        allowed_ips: address
            .map(|a| Ipv4Net::from(a).into())
            .into_iter()
            .chain(address6.map(|a| Ipv6Net::from(a).into()))
            .collect(),
        endpoint,
        labels: p.labels.clone(),
    })
}

/// Marks the local members `netmap` lists as confirmed and forgets confirmed members it
/// no longer lists (the coordinator removed them). A member not yet confirmed is kept: the
/// netmap may predate its attach. Returns whether anything changed and what was forgotten.
pub fn confirm_members(
    members: &mut Vec<LocalMember>,
    netmap: &NetMap,
) -> (bool, Vec<LocalMember>) {
    let listed = |m: &LocalMember| netmap.members.iter().any(|x| x.id == m.id);
    let mut changed = false;
    for m in members.iter_mut() {
        if !m.confirmed && listed(m) {
            m.confirmed = true;
            changed = true;
        }
    }
    let (keep, removed): (Vec<_>, Vec<_>) = std::mem::take(members)
        .into_iter()
        .partition(|m| !m.confirmed || listed(m));
    *members = keep;
    (changed || !removed.is_empty(), removed)
}

/// One step from the applied configuration towards the desired one.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create the member's socket, interface and data path, with all its peers.
    AddMember(Box<MemberConfig>),
    /// Tear the member down.
    RemoveMember {
        /// Member id.
        id: String,
        /// Member name.
        name: String,
        /// Its interface.
        interface: String,
        /// Its workload.
        workload: Workload,
    },
    /// A new peer.
    AddPeer {
        /// Member id.
        member: String,
        /// The peer.
        peer: PeerSpec,
    },
    /// A peer is gone.
    RemovePeer {
        /// Member id.
        member: String,
        /// The peer's key.
        public_key: PublicKey,
        /// The peer's name.
        name: String,
    },
    /// A peer's endpoint changed (and maybe more): update it in place.
    UpdatePeerEndpoint {
        /// Member id.
        member: String,
        /// The peer as it should be.
        peer: PeerSpec,
        /// The endpoint before.
        from: Option<SocketAddr>,
    },
    /// A peer's allowed IPs (or name) changed: update it in place.
    UpdatePeer {
        /// Member id.
        member: String,
        /// The peer as it should be.
        peer: PeerSpec,
    },
    /// The member's policy, or the peers or labels it is compiled against, changed:
    /// recompile and cut tracked connections the new policy no longer allows.
    SetPolicy {
        /// Member id.
        member: String,
        /// The new inputs.
        policy: Box<PolicyInput>,
    },
    /// The member gained an address (its segment got the prefix of the other family):
    /// configure the interface again, in place; the addresses it had are left as they
    /// are.
    Readdress(Box<MemberConfig>),
    /// The segment's preshared keys changed (the one to initiate with, or the second one
    /// answered during a rotation).
    SetPsk {
        /// Member id.
        member: String,
        /// The key to initiate with.
        psk: PresharedKey,
        /// The second key answered too, during a rotation.
        also: Option<PresharedKey>,
        /// Its version.
        version: u64,
    },
}

/// The changes that turn `applied` into `desired`, removals first. A member whose
/// identity (interface, workload, IPv4 address or network once it has one, port or key)
/// changed is removed and added again; everything else, a new address of a family the
/// member lacked included, is changed in place.
#[must_use]
pub fn diff(applied: &NodeConfig, desired: &NodeConfig) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, old) in &applied.members {
        let replaced = desired
            .members
            .get(id)
            .is_some_and(|new| !same_identity(old, new));
        if !desired.members.contains_key(id) || replaced {
            changes.push(Change::RemoveMember {
                id: id.clone(),
                name: old.name.clone(),
                interface: old.interface.clone(),
                workload: old.workload.clone(),
            });
        }
    }
    for (id, new) in &desired.members {
        match applied.members.get(id) {
            Some(old) if same_identity(old, new) => diff_member(old, new, &mut changes),
            _ => changes.push(Change::AddMember(Box::new(new.clone()))),
        }
    }
    changes
}

fn same_identity(a: &MemberConfig, b: &MemberConfig) -> bool {
    a.interface == b.interface
        && a.workload == b.workload
        && (a.ipv4.is_none() || a.ipv4 == b.ipv4)
        && a.listen_port == b.listen_port
        && a.private_key == b.private_key
}

fn diff_member(old: &MemberConfig, new: &MemberConfig, changes: &mut Vec<Change>) {
    let member = &new.id;
    for (key, peer) in &old.peers {
        if !new.peers.contains_key(key) {
            changes.push(Change::RemovePeer {
                member: member.clone(),
                public_key: *key,
                name: peer.name.clone(),
            });
        }
    }
    if old.ipv4 != new.ipv4 || old.ipv6 != new.ipv6 {
        changes.push(Change::Readdress(Box::new(new.clone())));
    }
    if old.psk != new.psk || old.psk_also != new.psk_also {
        changes.push(Change::SetPsk {
            member: member.clone(),
            psk: new.psk.clone(),
            also: new.psk_also.clone(),
            version: new.psk_version,
        });
    }
    for (key, peer) in &new.peers {
        match old.peers.get(key) {
            None => changes.push(Change::AddPeer {
                member: member.clone(),
                peer: peer.clone(),
            }),
            Some(was) if was.endpoint != peer.endpoint => {
                changes.push(Change::UpdatePeerEndpoint {
                    member: member.clone(),
                    peer: peer.clone(),
                    from: was.endpoint,
                })
            }
            Some(was) if was != peer => changes.push(Change::UpdatePeer {
                member: member.clone(),
                peer: peer.clone(),
            }),
            Some(_) => {}
        }
    }
    if old.policy != new.policy {
        changes.push(Change::SetPolicy {
            member: member.clone(),
            policy: Box::new(new.policy.clone()),
        });
    }
}

/// `A in NET` per family the member has, comma-separated.
fn show_addresses(m: &MemberConfig) -> String {
    let v4 = m.ipv4.map(|(a, n)| format!("{a} in {n}"));
    let v6 = m.ipv6.map(|(a, n)| format!("{a} in {n}"));
    v4.into_iter().chain(v6).collect::<Vec<_>>().join(", ")
}

fn show_endpoint(e: Option<SocketAddr>) -> String {
    e.map_or_else(|| "none".to_owned(), |e| e.to_string())
}

impl fmt::Display for Change {
    /// One line for the log; never shows a key other than public ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddMember(m) => write!(
                f,
                "add member {} ({}) on {} in {}: {}, port {}, {} peers",
                m.name,
                m.segment,
                m.interface,
                m.workload,
                show_addresses(m),
                m.listen_port,
                m.peers.len()
            ),
            Change::RemoveMember {
                name,
                interface,
                workload,
                ..
            } => write!(f, "remove member {name} ({interface} in {workload})"),
            Change::AddPeer { member, peer } => write!(
                f,
                "member {member}: add peer {} {} at {}",
                peer.name,
                peer.allowed_ips
                    .iter()
                    .map(|n| n.addr().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                show_endpoint(peer.endpoint)
            ),
            Change::RemovePeer { member, name, .. } => {
                write!(f, "member {member}: remove peer {name}")
            }
            Change::UpdatePeerEndpoint { member, peer, from } => write!(
                f,
                "member {member}: peer {} endpoint {} -> {}",
                peer.name,
                show_endpoint(*from),
                show_endpoint(peer.endpoint)
            ),
            Change::UpdatePeer { member, peer } => {
                write!(f, "member {member}: update peer {} in place", peer.name)
            }
            Change::Readdress(m) => write!(
                f,
                "member {}: addresses now {} on {}",
                m.name,
                show_addresses(m),
                m.interface
            ),
            Change::SetPsk {
                member,
                version,
                also,
                ..
            } => write!(
                f,
                "member {member}: preshared key version {version}{}",
                if also.is_some() {
                    " (a rotation: a second key is answered too)"
                } else {
                    ""
                }
            ),
            Change::SetPolicy { member, policy } => write!(
                f,
                "member {member}: policy version {} ({} rules, default {:?}, {} members)",
                policy.version,
                policy.policy.rules.len(),
                policy.policy.default,
                policy.members.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests;
