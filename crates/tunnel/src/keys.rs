//! Key types: a peer's static public key and the segment's preshared key.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use x25519_dalek::StaticSecret;

/// Length in bytes of every WireGuard key.
pub const KEY_LEN: usize = 32;

/// A static X25519 public key; shown and parsed as standard base64 (like `wg`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The public key belonging to `secret`.
    pub fn from_secret(secret: &StaticSecret) -> Self {
        Self(x25519_dalek::PublicKey::from(secret).to_bytes())
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Standard base64 (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A key that is not 32 bytes of standard base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a base64-encoded 32-byte key")]
pub struct InvalidKey;

impl FromStr for PublicKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_key(s).map(Self)
    }
}

impl From<x25519_dalek::PublicKey> for PublicKey {
    fn from(k: x25519_dalek::PublicKey) -> Self {
        Self(k.to_bytes())
    }
}

/// The segment's preshared key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses standard base64.
    pub fn from_base64(s: &str) -> Result<Self, InvalidKey> {
        decode_key(s).map(Self)
    }

    pub(crate) fn bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

fn decode_key(s: &str) -> Result<[u8; KEY_LEN], InvalidKey> {
    let bytes = STANDARD.decode(s.trim()).map_err(|_| InvalidKey)?;
    bytes.try_into().map_err(|_| InvalidKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_round_trips_base64() {
        let k = PublicKey([7; KEY_LEN]);
        assert_eq!(k.to_base64().parse::<PublicKey>(), Ok(k));
        assert_eq!("abc".parse::<PublicKey>(), Err(InvalidKey));
    }

    #[test]
    fn psk_debug_is_redacted() {
        let psk = PresharedKey::new([42; KEY_LEN]);
        assert!(!format!("{psk:?}").contains("42"));
    }
}
