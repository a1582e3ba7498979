//! Input checks shared by several routes, each failing with a 400 that names the value.

use std::net::SocketAddr;

use segwire_proto::api::Labels;
use segwire_proto::names::validate_label;

use super::error::{ApiError, ApiResult};

/// Every label key and value uses the label alphabet.
pub fn labels(labels: &Labels) -> ApiResult<()> {
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
