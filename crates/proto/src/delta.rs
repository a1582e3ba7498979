//! Netmap deltas: what changed in a node's netmap since a version it holds.
//!
//! An agent asks with `GET /v1/node/netmap?since=V&delta=1`; the coordinator answers
//! with a [`NetMapDelta`] (content type [`DELTA_CONTENT_TYPE`]) when it still knows the
//! node's map at `V`, else with a full [`NetMap`] (`application/json`). An agent that
//! does not send `delta=1` always gets full maps. `full=1` asks for a full map even
//! when a delta could be made (the agent does so after a delta it could not verify).
//!
//! The format is generic over the netmap's fields: the top-level fields (other than
//! `version` and `members`) come whole in `head`, a member's changed fields (other than
//! `peers`) come as JSON values in `set`, and peers come whole. A field either side adds
//! later flows through without a special case here.
//!
//! A delta names its `base` version, the resulting `version` and the resulting map's
//! [`NetMap::digest`], which the agent checks after applying it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::netmap::{MemberMap, NetMap, Peer};

/// Content type of a delta answer (a full map is `application/json`).
pub const DELTA_CONTENT_TYPE: &str = "application/vnd.segwire.netmap-delta+json";

/// The changes that turn a node's netmap at `base` into its netmap at `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NetMapDelta {
    /// The resulting version (first, like a full map's).
    pub version: u64,
    /// The version this delta applies to.
    pub base: u64,
    /// [`NetMap::digest`] of the resulting map.
    pub digest: String,
    /// Every top-level field of the resulting map but `version` and `members`.
    #[schema(value_type = Object)]
    pub head: Map<String, Value>,
    /// Every member of the resulting map, in order; a member of the base not listed is gone.
    pub members: Vec<MemberDelta>,
}

/// One member of the resulting map: what changed since the base (everything, if new).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberDelta {
    /// Member id.
    pub id: String,
    /// Fields (other than `peers`) whose value changed; `null` for one that went away.
    /// May carry the PSK: never logged.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub set: Map<String, Value>,
    /// Ids of the peers gone from this member's list.
    #[serde(default)]
    pub peers_removed: Vec<String>,
    /// Peers added to the list or changed, whole. (Last: the coordinator writes it last.)
    #[serde(default)]
    pub peers_set: Vec<Peer>,
}

impl std::fmt::Debug for MemberDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `set` may hold the PSK: only its keys are shown.
        f.debug_struct("MemberDelta")
            .field("id", &self.id)
            .field("set", &self.set.keys().collect::<Vec<_>>())
            .field("peers_removed", &self.peers_removed)
            .field("peers_set", &self.peers_set)
            .finish()
    }
}

/// Why a delta could not be applied; the agent then asks for a full map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta is for another base version than the map held.
    #[error("the delta applies to version {expected}, but the map held is version {held}")]
    WrongBase {
        /// The delta's base.
        expected: u64,
        /// The version held.
        held: u64,
    },
    /// A member's fields did not make a valid member.
    #[error("member {id} of the delta is not valid: {reason}")]
    Invalid {
        /// Member id.
        id: String,
        /// What serde said.
        reason: String,
    },
    /// The result's digest differs from the one the coordinator sent.
    #[error("the map made from the delta does not match the coordinator's digest")]
    Digest,
}

impl NetMapDelta {
    /// Applies the delta to `base` and checks the result against [`NetMapDelta::digest`].
    pub fn apply(&self, base: &NetMap) -> Result<NetMap, DeltaError> {
        if base.version != self.base {
            return Err(DeltaError::WrongBase {
                expected: self.base,
                held: base.version,
            });
        }
        let mut members = Vec::with_capacity(self.members.len());
        for d in &self.members {
            let old = base.members.iter().find(|m| m.id == d.id);
            members.push(d.apply(old)?);
        }
        let mut top = self.head.clone();
        top.insert("version".into(), Value::from(self.version));
        top.insert("members".into(), Value::Array(Vec::new()));
        let mut map: NetMap =
            serde_json::from_value(Value::Object(top)).map_err(|e| DeltaError::Invalid {
                id: String::new(),
                reason: e.to_string(),
            })?;
        if head_digest(&map, &members) != self.digest {
            return Err(DeltaError::Digest);
        }
        map.members = members;
        Ok(map)
    }
}

impl MemberDelta {
    /// The member made from `old` (none for a new member) and this delta.
    fn apply(&self, old: Option<&MemberMap>) -> Result<MemberMap, DeltaError> {
        let invalid = |e: serde_json::Error| DeltaError::Invalid {
            id: self.id.clone(),
            reason: e.to_string(),
        };
        let (mut fields, mut peers) = match old {
            Some(m) => {
                let mut head = m.clone();
                let peers = std::mem::take(&mut head.peers);
                match serde_json::to_value(head).map_err(invalid)? {
                    Value::Object(f) => (f, peers),
                    _ => (Map::new(), peers),
                }
            }
            None => (Map::new(), Vec::new()),
        };
        for (k, v) in &self.set {
            fields.insert(k.clone(), v.clone());
        }
        fields.insert("peers".into(), Value::Array(Vec::new()));
        let mut member: MemberMap =
            serde_json::from_value(Value::Object(fields)).map_err(invalid)?;
        if !self.peers_removed.is_empty() || !self.peers_set.is_empty() {
            let gone: std::collections::HashSet<&str> = self
                .peers_removed
                .iter()
                .chain(self.peers_set.iter().map(|p| &p.id))
                .map(String::as_str)
                .collect();
            peers.retain(|p| !gone.contains(p.id.as_str()));
            peers.extend(self.peers_set.iter().cloned());
            // The coordinator lists peers by address (IPv4, then IPv6 on an IPv6-only
            // segment); a stable sort keeps its order.
            let ip = |a: &Option<String>| a.as_deref().and_then(|a| a.parse::<IpAddr>().ok());
            peers.sort_by_key(|p| (ip(&p.address), ip(&p.address6)));
        }
        member.peers = peers;
        Ok(member)
    }
}

/// A peer's share of its member's digest: the first 16 bytes of the SHA-256 of its JSON.
#[must_use]
pub fn peer_hash(peer_json: &str) -> u128 {
    let d = Sha256::digest(peer_json.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

/// The digest of one member: its JSON without peers (`"peers":[]`) and the wrapping sum
/// of its peers' [`peer_hash`]es, so it does not depend on their order and the
/// coordinator can compute it without serializing the list.
#[must_use]
pub fn member_digest(head_json: &str, peer_sum: u128) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(head_json.as_bytes());
    h.update(b"\n");
    h.update(peer_sum.to_le_bytes());
    h.finalize().into()
}

/// The digest of a map: its JSON without members (`"members":[]`) and its members'
/// [`member_digest`]s in order, as lowercase hex.
#[must_use]
pub fn map_digest<'a>(head_json: &str, members: impl IntoIterator<Item = &'a [u8; 32]>) -> String {
    let mut h = Sha256::new();
    h.update(head_json.as_bytes());
    for m in members {
        h.update(b"\n");
        h.update(m);
    }
    hex::encode(h.finalize())
}

impl NetMap {
    /// The content digest a [`NetMapDelta`] carries: see [`map_digest`].
    #[must_use]
    pub fn digest(&self) -> String {
        let mut head = self.clone();
        let members = std::mem::take(&mut head.members);
        head_digest(&head, &members)
    }
}

/// [`NetMap::digest`] of `head` (its members empty) with `members`.
fn head_digest(head: &NetMap, members: &[MemberMap]) -> String {
    let digests: Vec<[u8; 32]> = members.iter().map(MemberMap::digest).collect();
    map_digest(&to_json(head), &digests)
}

impl MemberMap {
    /// This member's [`member_digest`].
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        let mut head = self.clone();
        let peers = std::mem::take(&mut head.peers);
        let sum = peers
            .iter()
            .fold(0u128, |s, p| s.wrapping_add(peer_hash(&to_json(p))));
        member_digest(&to_json(&head), sum)
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests;
