//! Row decoding for the SQL stores: the SELECTs each entity is read with and the
//! conversions from database rows to the store's row types.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use segwire_proto::api::{DefaultAction, RotationPhase};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use super::DbRow;

use crate::store::{MemberRow, NodeRow, Rotation, SegmentRow, StoreError, StoreResult, TokenRow};

pub(super) const SEGMENT_SELECT: &str =
    "SELECT s.id, s.name, s.net, s.prefix, s.net6, s.default_action, s.psk, \
    s.psk_version, s.psk_next, s.psk_previous, s.rotation_phase, s.rotation_version, \
    s.rotation_since, s.version, s.created_at, s.policy, s.policy_version, \
    (SELECT COUNT(*) FROM members m WHERE m.segment_id = s.id) AS members FROM segments s";

pub(super) const NODE_SELECT: &str =
    "SELECT n.id, n.name, n.public_key, n.cred_hash, n.segments, n.labels, \
    n.endpoints, n.observed, n.created_at, n.last_seen, n.version, n.polled_by, \
    (SELECT COUNT(*) FROM members m WHERE m.node_id = n.id) AS members \
    FROM nodes n WHERE n.revoked_at IS NULL AND n.kind = 'agent'";

pub(super) const MEMBER_SELECT: &str =
    "SELECT m.id, m.node_id, n.name AS node_name, m.segment_id, \
    s.name AS segment, m.name, m.workload, m.address, m.address6, m.public_key, m.listen_port, m.endpoints, \
    m.labels, m.created_at, m.quarantined_until FROM members m JOIN nodes n ON n.id = m.node_id \
    JOIN segments s ON s.id = m.segment_id";

pub(super) const TOKEN_SELECT: &str =
    "SELECT id, secret_hash, segments, labels, uses, uses_left, created_at, \
    expires_at, revoked_at FROM tokens";

pub(super) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(super) fn from_json<T: DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A nullable text column holding an address or network.
fn parse_opt<T: std::str::FromStr>(text: Option<String>) -> StoreResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    text.map(|t| {
        t.parse()
            .map_err(|e: T::Err| StoreError::Corrupt(format!("{t:?}: {e}")))
    })
    .transpose()
}

pub(super) fn default_to_str(d: DefaultAction) -> &'static str {
    match d {
        DefaultAction::Allow => "allow",
        DefaultAction::Deny => "deny",
    }
}

/// The rotation columns of a segment row: a phase and the key it publishes beside `psk`.
fn rotation(r: &DbRow) -> StoreResult<Option<Rotation>> {
    let Some(phase) = r.try_get::<Option<String>, _>("rotation_phase")? else {
        return Ok(None);
    };
    let phase = RotationPhase::parse(&phase)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown key rotation phase {phase:?}")))?;
    let column = match phase {
        RotationPhase::Accepting => "psk_next",
        RotationPhase::Switched => "psk_previous",
    };
    let other_psk: Option<String> = r.try_get(column)?;
    Ok(Some(Rotation {
        phase,
        other_psk: other_psk
            .ok_or_else(|| StoreError::Corrupt(format!("key rotation without {column}")))?,
        version: r.try_get("rotation_version")?,
        since: r.try_get("rotation_since")?,
    }))
}

pub(super) fn segment_row(r: &DbRow) -> StoreResult<SegmentRow> {
    let net = match (
        r.try_get::<Option<i64>, _>("net")?,
        r.try_get::<Option<i64>, _>("prefix")?,
    ) {
        (Some(net), Some(prefix)) => Some(
            Ipv4Net::new(Ipv4Addr::from(net as u32), prefix as u8)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
        _ => None,
    };
    let default = match r.try_get::<String, _>("default_action")?.as_str() {
        "deny" => DefaultAction::Deny,
        _ => DefaultAction::Allow,
    };
    Ok(SegmentRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        net,
        net6: parse_opt(r.try_get("net6")?)?,
        default,
        psk: r.try_get("psk")?,
        psk_version: r.try_get("psk_version")?,
        rotation: rotation(r)?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        members: r.try_get("members")?,
        policy: r.try_get("policy")?,
        policy_version: r.try_get("policy_version")?,
    })
}

pub(super) fn node_row(r: &DbRow) -> StoreResult<NodeRow> {
    Ok(NodeRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        public_key: r.try_get("public_key")?,
        cred_hash: r.try_get("cred_hash")?,
        segments: from_json(&r.try_get::<String, _>("segments")?)?,
        labels: from_json(&r.try_get::<String, _>("labels")?)?,
        endpoints: from_json(&r.try_get::<String, _>("endpoints")?)?,
        observed: r.try_get("observed")?,
        created_at: r.try_get("created_at")?,
        last_seen: r.try_get("last_seen")?,
        version: r.try_get("version")?,
        members: r.try_get("members")?,
        polled_by: r.try_get("polled_by")?,
    })
}

pub(super) fn member_row(r: &DbRow) -> StoreResult<MemberRow> {
    Ok(MemberRow {
        id: r.try_get("id")?,
        node_id: r.try_get("node_id")?,
        node_name: r.try_get("node_name")?,
        segment_id: r.try_get("segment_id")?,
        segment: r.try_get("segment")?,
        name: r.try_get("name")?,
        workload: r.try_get("workload")?,
        address: r
            .try_get::<Option<i64>, _>("address")?
            .map(|a| Ipv4Addr::from(a as u32)),
        address6: parse_opt(r.try_get("address6")?)?,
        public_key: r.try_get("public_key")?,
        listen_port: r.try_get::<i64, _>("listen_port")? as u16,
        endpoints: from_json(&r.try_get::<String, _>("endpoints")?)?,
        labels: from_json(&r.try_get::<String, _>("labels")?)?,
        created_at: r.try_get("created_at")?,
        quarantined_until: r.try_get("quarantined_until")?,
    })
}

pub(super) fn token_row(r: &DbRow) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        segments: from_json(&r.try_get::<String, _>("segments")?)?,
        labels: from_json(&r.try_get::<String, _>("labels")?)?,
        uses: r.try_get("uses")?,
        uses_left: r.try_get("uses_left")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .map(|d| d.is_unique_violation())
        .unwrap_or(false)
}
