//! `/v1/segments/{name}/policy`: set (validated; a bad file changes nothing), show, check.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use segwire_policy::{CompiledPolicy, Direction, Flow, Policy};
use segwire_proto::api::{ErrorBody, PolicyCheck, PolicyCheckResult, PolicyDoc};

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::AppState;
use crate::convert::now;
use crate::policy;

/// Largest policy document accepted.
pub const MAX_POLICY_BYTES: usize = 4 << 20;

fn doc(seg: &crate::store::SegmentRow) -> PolicyDoc {
    PolicyDoc {
        segment: seg.name.clone(),
        version: seg.policy_version as u64,
        policy: serde_json::to_value(policy::effective(seg)).unwrap_or_default(),
    }
}

/// Replace the segment's policy. An invalid document is refused and the old policy stays.
#[utoipa::path(put, path = "/v1/segments/{name}/policy", request_body(content = serde_json::Value, description = "policy document"),
    responses((status = 200, body = PolicyDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<PolicyDoc>> {
    admin.check_segment(&name)?;
    if body.len() > MAX_POLICY_BYTES {
        return Err(ApiError::bad_request(
            "the policy document is larger than 4 MiB",
        ));
    }
    let parsed = parse_document(&body)?;
    let stored = serde_json::to_string(&parsed).unwrap_or_default();
    let (row, touched) = st
        .store
        .set_policy(&name, stored, policy::default_of(&parsed), now())
        .await?;
    st.commit(&touched).await;
    tracing::info!(actor = %admin.key_id, segment = %name, version = row.policy_version, rules = parsed.rules.len(), "policy set");
    Ok(Json(doc(&row)))
}

/// A policy document from a request body, validated; 400 with the parser's message.
pub fn parse_document(body: &[u8]) -> ApiResult<Policy> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the policy document is not UTF-8 text"))?;
    Policy::from_json(text).map_err(|e| ApiError::bad_request(format!("invalid policy: {e}")))
}

/// Show the segment's policy in force.
#[utoipa::path(get, path = "/v1/segments/{name}/policy", responses((status = 200, body = PolicyDoc), (status = 404, body = ErrorBody)))]
pub async fn show(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PolicyDoc>> {
    admin.check_segment(&name)?;
    Ok(Json(doc(&st.store.get_segment(&name).await?)))
}

/// Parses `tcp/N`, `udp/N` or `icmp` into (IP protocol, port).
pub fn parse_probe(s: &str) -> Result<(u8, u16), String> {
    let s = s.trim().to_ascii_lowercase();
    if s == "icmp" {
        return Ok((1, 0));
    }
    let (proto, port) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: write tcp/PORT, udp/PORT or icmp"))?;
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        _ => return Err(format!("{s:?}: the protocol must be tcp, udp or icmp")),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?}: the port must be 1-65535"))?;
    Ok((proto, port))
}

/// Would a connection from one member to another be allowed, and by which rule?
#[utoipa::path(post, path = "/v1/segments/{name}/policy/check", request_body = PolicyCheck,
    responses((status = 200, body = PolicyCheckResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn check(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PolicyCheck>,
) -> ApiResult<Json<PolicyCheckResult>> {
    admin.check_segment(&name)?;
    let seg = st.store.get_segment(&name).await?;
    let (protocol, port) = parse_probe(&req.port).map_err(ApiError::bad_request)?;
    let members = st.store.list_members(Some(&name)).await?;
    // A member is named by its name or one of its overlay addresses; `to` may also be any
    // address (a CIDR rule may cover it). An IPv6 `from` asks about IPv6.
    let by_addr = |a: IpAddr| {
        members
            .iter()
            .find(|m| m.address.map(IpAddr::V4) == Some(a) || m.address6.map(IpAddr::V6) == Some(a))
    };
    let find = |n: &str| {
        let found = match n.parse::<IpAddr>() {
            Ok(a) => by_addr(a),
            Err(_) => members.iter().find(|m| m.name == n),
        };
        found.ok_or_else(|| {
            // 400, not 404: the segment exists; the request names a member it lacks.
            ApiError::bad_request(format!("segment {name:?} has no member named {n:?}"))
        })
    };
    let from = find(&req.from)?;
    // An IPv6 `from` asks about IPv6, and so does a member with no IPv4 address.
    let v6 = match req.from.parse::<IpAddr>() {
        Ok(a) => a.is_ipv6(),
        Err(_) => from.address.is_none(),
    };
    let remote = match req.to.parse::<IpAddr>() {
        Ok(a) => a,
        Err(_) => {
            let to = find(&req.to)?;
            match (v6, to.address6) {
                (true, Some(a6)) => IpAddr::V6(a6),
                (true, None) => {
                    return Err(ApiError::bad_request(format!(
                        "member {:?} has no IPv6 address; give its IPv4 address or name to ask about IPv4",
                        to.name
                    )))
                }
                (false, _) => match to.address {
                    Some(a) => IpAddr::V4(a),
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "member {:?} has no IPv4 address; give its IPv6 address or name to ask about IPv6",
                            to.name
                        )))
                    }
                },
            }
        }
    };
    let from_has_family = match remote {
        IpAddr::V4(_) => from.address.is_some(),
        IpAddr::V6(_) => from.address6.is_some(),
    };
    if !from_has_family {
        let family = if remote.is_ipv6() { "IPv6" } else { "IPv4" };
        return Err(ApiError::bad_request(format!(
            "member {:?} has no {family} address, so it cannot reach {remote}",
            from.name
        )));
    }
    let protocol = match (protocol, remote) {
        (segwire_policy::packet::proto::ICMP, IpAddr::V6(_)) => {
            segwire_policy::packet::proto::ICMPV6
        }
        (p, _) => p,
    };
    let pol = policy::effective(&seg);
    let all: Vec<_> = members.iter().map(policy::member).collect();
    let compiled = CompiledPolicy::compile(&pol, &policy::member(from), &all);
    let decision = compiled.classify(&Flow {
        direction: Direction::Egress,
        remote,
        protocol,
        port,
    });
    let rule = decision
        .rule
        .and_then(|id| compiled.rule_name(id))
        .map(str::to_string);
    let verdict = if decision.allowed {
        "allowed"
    } else {
        "denied"
    };
    let reason = match &rule {
        Some(r) => format!("{verdict} by rule {r:?}"),
        None => format!("{verdict} by the segment default (no rule matches)"),
    };
    Ok(Json(PolicyCheckResult {
        allowed: decision.allowed,
        rule,
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_probe;

    #[test]
    fn probes() {
        assert_eq!(parse_probe("tcp/5432"), Ok((6, 5432)));
        assert_eq!(parse_probe("UDP/53"), Ok((17, 53)));
        assert_eq!(parse_probe("icmp"), Ok((1, 0)));
        for bad in ["tcp/0", "tcp/70000", "sctp/1", "5432", "tcp/x"] {
            assert!(parse_probe(bad).is_err(), "{bad}");
        }
    }
}
