//! Interface names for segment attachments (`sw-<segment>`), kept within Linux's 15 bytes.

use crate::NetdevError;

/// Prefix of every interface segwire creates in a workload.
pub const INTERFACE_PREFIX: &str = "sw-";

/// Longest interface name Linux accepts (`IFNAMSIZ` minus the terminating NUL).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// Longest segment name that is used as is; longer names are cut and hashed.
const MAX_VERBATIM_SEGMENT_LEN: usize = MAX_INTERFACE_NAME_LEN - INTERFACE_PREFIX.len();

/// How many bytes of a long segment name are kept before the hash.
const KEPT_PREFIX_LEN: usize = 7;

/// The interface name of a workload's attachment to `segment`.
///
/// - A segment name of at most 12 bytes gives `sw-<segment>` (e.g. `db` → `sw-db`).
/// - A longer one gives `sw-<first 7 bytes>-<4 hex digits>` (exactly 15 bytes), where the
///   hex digits are the 32-bit FNV-1a hash of the **whole** segment name (UTF-8 bytes,
///   offset basis `0x811c9dc5`, prime `0x01000193`) folded to 16 bits as
///   `(h >> 16) ^ (h & 0xffff)`, printed in lowercase. Should the 7th byte fall inside a
///   multi-byte character, the cut moves back to the previous character boundary.
///
/// This scheme is part of the contract (users and scripts look for these names): it is
/// deterministic across runs, machines and versions, and must never change.
///
/// Segment names are expected to be valid (lowercase letters, digits, `-`); this function
/// does not validate them; [`validate_interface_name`] checks the result.
#[must_use]
pub fn interface_name(segment: &str) -> String {
    if segment.len() <= MAX_VERBATIM_SEGMENT_LEN {
        return format!("{INTERFACE_PREFIX}{segment}");
    }
    let mut cut = KEPT_PREFIX_LEN;
    while !segment.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{INTERFACE_PREFIX}{}-{:04x}",
        &segment[..cut],
        fold16(fnv1a32(segment.as_bytes()))
    )
}

/// Checks that `name` is a name Linux accepts for a network interface.
///
/// # Errors
/// [`NetdevError::InvalidInterfaceName`] when it is empty, longer than 15 bytes, `.` or
/// `..`, or contains `/`, `:`, whitespace or NUL.
pub fn validate_interface_name(name: &str) -> Result<(), NetdevError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_INTERFACE_NAME_LEN {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are reserved")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        Some("it contains `/`, `:`, whitespace or NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetdevError::InvalidInterfaceName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// 32-bit FNV-1a.
fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    })
}

/// Folds a 32-bit hash to 16 bits by xoring its halves.
fn fold16(hash: u32) -> u32 {
    (hash >> 16) ^ (hash & 0xffff)
}

#[cfg(test)]
mod tests;
