//! The coordinator's CA and server certificate.
//!
//! The CA (ECDSA P-256) is made once and kept in the data directory; nodes and the CLI
//! trust it through its pin. The server certificate is issued afresh at every start, so
//! its names always cover the current `--listen` address and every `--advertise` name.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use segwire_proto::CaPin;
use time::{Duration, OffsetDateTime};

use crate::files::{read_if_exists, write_private};

/// The CA and the current server certificate, ready for rustls.
pub struct Pki {
    /// Pin of the CA (what tokens and admin.conf carry).
    pub pin: CaPin,
    /// Chain to present: server certificate, then the CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Loads the CA from `dir` (making it on first start) and issues a server certificate for `names`.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Pki> {
    let key_path = dir.join("ca.key");
    let cert_path = dir.join("ca.crt");
    let (ca_key, ca_pem) = match (read_if_exists(&key_path)?, read_if_exists(&cert_path)?) {
        (Some(k), Some(c)) => (
            KeyPair::from_pem(&k).context("ca.key in the data directory is damaged")?,
            c,
        ),
        (None, None) => {
            let (key, pem) = make_ca()?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            write_private(&cert_path, pem.as_bytes())?;
            tracing::info!(path = %cert_path.display(), "created a new CA");
            (key, pem)
        }
        _ => anyhow::bail!(
            "the data directory has only one of ca.key and ca.crt; restore both from backup"
        ),
    };
    let ca_params = CertificateParams::from_ca_cert_pem(&ca_pem)
        .context("ca.crt in the data directory is damaged")?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot load the CA")?;
    let ca_der = pem_to_der(&ca_pem)?;
    let pin = segwire_client::pinning::pin_of_cert(&ca_der)
        .context("ca.crt in the data directory is damaged")?;

    let server_key = KeyPair::generate().context("cannot make a server key")?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "segwire coordinator");
    params.subject_alt_names = sans(names)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(825);
    let server = params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .context("cannot issue the server certificate")?;
    Ok(Pki {
        pin,
        chain: vec![server.der().clone(), CertificateDer::from(ca_der)],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    })
}

fn make_ca() -> Result<(KeyPair, String)> {
    let key = KeyPair::generate().context("cannot make the CA key")?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "segwire CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key).context("cannot make the CA")?;
    Ok((key, cert.pem()))
}

fn sans(names: &[String]) -> Result<Vec<SanType>> {
    let mut out = Vec::new();
    for n in names {
        let san = match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.clone()
                    .try_into()
                    .with_context(|| format!("{n:?} is not a valid host name for --advertise"))?,
            ),
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .context("ca.crt in the data directory is damaged")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_names_become_ip_sans_not_dns_names() {
        let dir = tempfile::tempdir().expect("dir");
        let names: Vec<String> = ["2001:2::1", "198.18.0.1", "coord.example", "::1"]
            .map(String::from)
            .to_vec();
        let pki = load_or_create(dir.path(), &names).expect("pki");
        let issued = CertificateParams::from_ca_cert_der(&pki.chain[0]).expect("parse");
        let ip = |s: &str| SanType::IpAddress(s.parse().expect("ip"));
        assert_eq!(
            issued.subject_alt_names,
            vec![
                ip("2001:2::1"),
                ip("198.18.0.1"),
                SanType::DnsName("coord.example".try_into().expect("dns")),
                ip("::1"),
            ]
        );
    }
}
