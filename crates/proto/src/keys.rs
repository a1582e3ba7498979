//! WireGuard key encoding: 32 bytes as standard base64, as `wg` prints them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

/// A key string that is not 32 bytes of standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{what} must be 32 bytes in standard base64 (44 characters, as `wg genkey | wg pubkey` prints)"
)]
pub struct KeyError {
    /// Which key was bad ("public key", "preshared key").
    pub what: &'static str,
}

/// Decodes a base64 WireGuard key into its 32 bytes.
pub fn decode_key(what: &'static str, s: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD.decode(s.trim()).map_err(|_| KeyError { what })?;
    bytes.try_into().map_err(|_| KeyError { what })
}

/// Encodes 32 key bytes as standard base64.
pub fn encode_key(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = [7u8; 32];
        assert_eq!(decode_key("public key", &encode_key(&k)), Ok(k));
        assert!(decode_key("public key", "abc").is_err());
        assert!(decode_key("public key", &STANDARD.encode([1u8; 31])).is_err());
    }
}
