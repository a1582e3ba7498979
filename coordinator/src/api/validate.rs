//! Input checks shared by several routes, each failing with a 400 that names the value.

use std::net::SocketAddr;

use segwire_proto::api::Labels;
use segwire_proto::names::validate_label;

use super::error::{ApiError, ApiResult};

/// Most labels on one member, token or peer.
pub const MAX_LABELS: usize = 32;
/// Most endpoints a node or member reports.
pub const MAX_ENDPOINTS: usize = 16;

/// At most [`MAX_LABELS`] labels, every key and value in the label alphabet.
pub fn labels(labels: &Labels) -> ApiResult<()> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_LABELS} labels are allowed, not {}",
            labels.len()
        )));
    }
    for (k, v) in labels {
        validate_label(k)
            .and_then(|_| validate_label(v))
            .map_err(|e| ApiError::bad_request(format!("label {k:?}: {e}")))?;
    }
    Ok(())
}

/// An endpoint is `IP:port` (agents do not resolve host names).
pub fn endpoint(e: &str) -> ApiResult<SocketAddr> {
    e.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "endpoint {:?} is not IP:port (agents do not resolve host names)",
            e.chars().take(60).collect::<String>()
        ))
    })
}
