//! Key material made on this node: X25519 static keys, kept as 32 secret bytes.

use std::fmt;

use segwire_proto::keys::{decode_key, encode_key, KeyError};
use segwire_tunnel::{PublicKey, StaticSecret};
use serde::{Deserialize, Serialize};

/// A private X25519 key. Never logged: its `Debug` is redacted; it is stored only in the
/// state file (mode 0600) and never sent anywhere.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrivateKey([u8; 32]);

impl PrivateKey {
    /// A fresh random key from the OS's CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        PrivateKey(StaticSecret::random_from_rng(rand::rngs::OsRng).to_bytes())
    }

    /// The key for the WireGuard router.
    #[must_use]
    pub fn secret(&self) -> StaticSecret {
        StaticSecret::from(self.0)
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_secret(&self.secret())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl TryFrom<String> for PrivateKey {
    type Error = KeyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        decode_key("private key", &s).map(PrivateKey)
    }
}

impl From<PrivateKey> for String {
    fn from(k: PrivateKey) -> Self {
        encode_key(&k.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_redacted_and_round_trip() {
        let a = PrivateKey::generate();
        let b = PrivateKey::generate();
        assert_ne!(a, b);
        assert_ne!(a.public_key(), b.public_key());
        let text = String::from(a.clone());
        assert!(!format!("{a:?}").contains(&text));
        assert_eq!(PrivateKey::try_from(text).expect("parses"), a);
    }
}
