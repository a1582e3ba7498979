//! `/v1/segments`: create, list, show, delete, rotate the preshared key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use segwire_proto::api::{CreateSegment, ErrorBody, Segment, UpdateSegment};
use segwire_proto::names::validate_segment_name;
use serde::Deserialize;

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::query::ApiQuery;
use super::AppState;
use crate::convert::{self, now};
use crate::secret;
use crate::store::{rules, NewSegment};

/// Parses a segment network: IPv4, prefix /8 to /30, no host bits.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not an IPv4 network like 100.64.1.0/24", clip(s)))?;
    if !(8..=30).contains(&net.prefix_len()) {
        return Err(format!(
            "{net}: the prefix must be between /8 and /30 (a segment needs room for members)"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{net} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses a segment IPv6 prefix: /48 to /124, no host bits.
pub fn parse_cidr6(s: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = s
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not an IPv6 prefix like fd00:1::/64", clip(s)))?;
    if !(48..=124).contains(&net.prefix_len()) {
        return Err(format!(
            "{net}: the IPv6 prefix must be between /48 and /124"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{net} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses a segment's prefixes: at most one IPv4 network and at most one IPv6 prefix,
/// separated by a comma (either order); at least one of them.
pub fn parse_cidrs(s: &str) -> Result<(Option<Ipv4Net>, Option<Ipv6Net>), String> {
    let (mut v4, mut v6) = (None, None);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let family_v6 = part
            .parse::<IpNet>()
            .map(|n| n.addr().is_ipv6())
            .unwrap_or(part.contains(':'));
        if family_v6 {
            if v6.replace(parse_cidr6(part)?).is_some() {
                return Err("give at most one IPv6 prefix".into());
            }
        } else if v4.replace(parse_cidr(part)?).is_some() {
            return Err("give at most one IPv4 network".into());
        }
    }
    if v4.is_none() && v6.is_none() {
        return Err(
            "give an IPv4 network, an IPv6 prefix or both, like 100.64.1.0/24,fd00:1::/64".into(),
        );
    }
    Ok((v4, v6))
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Create a segment.
#[utoipa::path(post, path = "/v1/segments", request_body = CreateSegment,
    responses((status = 201, body = Segment), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    admin: Admin,
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CreateSegment>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    validate_segment_name(&req.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    admin.check_segment(&req.name)?;
    let (net, net6) = parse_cidrs(&req.cidr).map_err(ApiError::bad_request)?;
    let row = st
        .store
        .create_segment(
            NewSegment {
                name: req.name,
                net,
                net6,
                default: req.default.unwrap_or_default(),
                psk: STANDARD.encode(secret::new_key()),
            },
            now(),
        )
        .await?;
    tracing::info!(actor = %admin.key_id, segment = %row.name, cidr = ?row.net, cidr6 = ?row.net6, "segment created");
    Ok((StatusCode::CREATED, Json(convert::segment(&row))))
}

/// List segments.
#[utoipa::path(get, path = "/v1/segments", responses((status = 200, body = [Segment])))]
pub async fn list(admin: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<Segment>>> {
    let rows = st.store.list_segments().await?;
    Ok(Json(
        rows.iter()
            .filter(|r| admin.sees(&r.name))
            .map(convert::segment)
            .collect(),
    ))
}

/// Show one segment.
#[utoipa::path(get, path = "/v1/segments/{name}", responses((status = 200, body = Segment), (status = 404, body = ErrorBody)))]
pub async fn show(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Segment>> {
    admin.check_segment(&name)?;
    Ok(Json(convert::segment(&st.store.get_segment(&name).await?)))
}

/// Query of `DELETE /v1/segments/{name}`.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// Delete a segment (refused while it has members unless `force=true`).
#[utoipa::path(delete, path = "/v1/segments/{name}", params(("force" = Option<bool>, Query, description = "delete even with members")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    admin.check_segment(&name)?;
    let touched = st.store.delete_segment(&name, q.force, now()).await?;
    st.commit(&touched).await;
    tracing::info!(actor = %admin.key_id, segment = %name, force = q.force, "segment deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Give a segment the prefix of the family it lacks (IPv6 next to IPv4, or IPv4 next to
/// IPv6): every member gets an address from it, the addresses it has are untouched.
#[utoipa::path(patch, path = "/v1/segments/{name}", request_body = UpdateSegment,
    responses((status = 200, body = Segment), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateSegment>,
) -> ApiResult<Json<Segment>> {
    admin.check_segment(&name)?;
    let (net, net6) = parse_cidrs(&req.cidr).map_err(ApiError::bad_request)?;
    let mut seg = st.store.get_segment(&name).await?;
    // The prefixes the segment has are kept as they are; the one it lacks is added.
    let given = [net.map(IpNet::V4), net6.map(IpNet::V6)];
    let have = [seg.net.map(IpNet::V4), seg.net6.map(IpNet::V6)];
    // Every prefix given is checked before anything changes.
    let mut add = None;
    for (given, have) in given.into_iter().zip(have) {
        match (given, have) {
            (Some(g), Some(h)) if g != h => {
                return Err(ApiError::bad_request(format!(
                    "segment {name:?} keeps its {} {h}; only the family it lacks can be added",
                    rules::family(h)
                )));
            }
            (Some(g), None) => add = Some(g),
            _ => {}
        }
    }
    // A segment always has one family, so at most one is added.
    if let Some(g) = add {
        let (row, touched) = st.store.add_prefix(&name, g, now()).await?;
        st.commit(&touched).await;
        tracing::info!(actor = %admin.key_id, segment = %name, cidr = %g, "segment prefix added");
        seg = row;
    }
    Ok(Json(convert::segment(&seg)))
}

/// Rotate the segment's preshared key, make-before-break.
///
/// The new key is published as the next key (rotation `accepting`), members initiate with
/// it once every live node has it (`switched`), and the old key retires once every live
/// node has switched (each phase waits at most `--key-rotation-grace`).
#[utoipa::path(post, path = "/v1/segments/{name}/rotate-key", responses((status = 200, body = Segment), (status = 404, body = ErrorBody)))]
pub async fn rotate_key(
    admin: Admin,
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Segment>> {
    admin.check_segment(&name)?;
    let (row, touched) = st
        .store
        .rotate_psk(&name, STANDARD.encode(secret::new_key()), now())
        .await?;
    st.commit(&touched).await;
    tracing::info!(actor = %admin.key_id, segment = %name, psk_version = row.psk_version, "segment key rotation started (accepting the next key)");
    Ok(Json(convert::segment(&row)))
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn cidrs() {
        assert!(parse_cidr("100.64.1.0/24").is_ok());
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        for bad in [
            "100.64.1.0/33",
            "100.64.1.1/24",
            "0.0.0.0/0",
            "100.64.0.0/31",
            "x",
            "",
            "::/64",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dual_stack_cidrs() {
        use super::{parse_cidr6, parse_cidrs};
        assert!(parse_cidr6("fd00:1::/64").is_ok());
        assert!(parse_cidr6("fd00:1::/48").is_ok());
        assert!(parse_cidr6("fd00:1::/124").is_ok());
        for bad in [
            "fd00::/47",
            "fd00::/125",
            "fd00::1/64",
            "100.64.0.0/24",
            "x",
        ] {
            assert!(parse_cidr6(bad).is_err(), "{bad}");
        }
        let (v4, v6) = parse_cidrs("100.64.1.0/24, fd00:1::/64").expect("dual");
        assert_eq!(v4.map(|n| n.to_string()).as_deref(), Some("100.64.1.0/24"));
        assert_eq!(v6.map(|n| n.to_string()).as_deref(), Some("fd00:1::/64"));
        let (v4, v6) = parse_cidrs("fd00:1::/64").expect("v6 alone");
        assert!(v4.is_none() && v6.is_some());
        assert!(parse_cidrs("fd00:1::/64,fd00:2::/64").is_err());
        assert!(parse_cidrs("100.64.1.0/24,100.64.2.0/24").is_err());
        assert!(parse_cidrs("100.64.1.0/24,fd00:1::/40").is_err());
    }
}
