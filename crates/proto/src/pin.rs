//! The CA pin: the SHA-256 of the CA certificate's SubjectPublicKeyInfo, written
//! `sha256:<64 hex>` as kubeadm does. A node or CLI trusts the coordinator only through it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A pin that does not have the `sha256:<64 hex digits>` form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("CA pin must look like sha256:<64 hex digits>")]
pub struct PinError;

/// SHA-256 of a CA's SubjectPublicKeyInfo (DER).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaPin(pub [u8; 32]);

impl CaPin {
    /// Computes the pin of a DER-encoded SubjectPublicKeyInfo.
    pub fn of_spki_der(spki: &[u8]) -> Self {
        CaPin(Sha256::digest(spki).into())
    }
}

impl fmt::Display for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for CaPin {
    type Err = PinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.trim().strip_prefix("sha256:").ok_or(PinError)?;
        let bytes = hex::decode(hex_part).map_err(|_| PinError)?;
        Ok(CaPin(bytes.try_into().map_err(|_| PinError)?))
    }
}

impl Serialize for CaPin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CaPin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let pin = CaPin::of_spki_der(b"spki");
        let text = pin.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<CaPin>(), Ok(pin));
        assert!("sha256:zz".parse::<CaPin>().is_err());
        assert!("md5:00".parse::<CaPin>().is_err());
    }
}
