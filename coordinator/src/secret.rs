//! Random ids and secrets, their hashes, and constant-time comparison.
//!
//! Credentials have the form `<prefix>_<id>.<secret>`: the id finds the row, the secret
//! is checked against its stored SHA-256 in constant time. Secrets are 256 random bits,
//! so a plain hash (no key stretching) is enough.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of admin/operator/viewer API keys.
pub const API_KEY_PREFIX: &str = "swk";
/// Prefix of node credentials.
pub const NODE_CRED_PREFIX: &str = "swn";

/// A fresh random id: 16 lowercase hex characters.
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A fresh 256-bit secret, base64url without padding.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// 32 random bytes (a WireGuard preshared key).
pub fn new_key() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// Hex SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Builds a credential string `<prefix>_<id>.<secret>`.
pub fn credential(prefix: &str, id: &str, secret: &str) -> String {
    format!("{prefix}_{id}.{secret}")
}

/// Splits a credential into (prefix, id, secret); `None` if it has another shape.
pub fn split_credential(s: &str) -> Option<(&str, &str, &str)> {
    let (prefix, rest) = s.split_once('_')?;
    let (id, secret) = rest.split_once('.')?;
    if id.is_empty() || secret.is_empty() || id.len() > 64 || secret.len() > 128 {
        return None;
    }
    Some((prefix, id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_round_trip() {
        let (id, secret) = (new_id(), new_secret());
        let c = credential(API_KEY_PREFIX, &id, &secret);
        let (p, i, s) = split_credential(&c).expect("splits");
        assert_eq!((p, i, s), (API_KEY_PREFIX, id.as_str(), secret.as_str()));
        assert!(verify_secret(s, &hash_secret(&secret)));
        assert!(!verify_secret("other", &hash_secret(&secret)));
        assert!(split_credential("garbage").is_none());
        assert!(split_credential("swk_.x").is_none());
    }
}
