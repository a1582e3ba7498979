//! The coordinator's CA and server certificate.
//!
//! The CA (ECDSA P-256) is made once and kept in the database, so every coordinator
//! sharing it presents certificates from one CA (see `cluster`); nodes and the CLI
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

/// The CA: its key pair and certificate, and the pin of the certificate.
pub struct Ca {
    key: KeyPair,
    cert_pem: String,
    /// Pin of the CA certificate.
    pub pin: CaPin,
}

impl Ca {
    /// Makes a new CA.
    pub fn new() -> Result<Ca> {
        let (key, pem) = make_ca()?;
        Ca::from_pem(&key.serialize_pem(), &pem, "the new CA")
    }

    /// The CA from its key and certificate PEM; `origin` names where they come from in
    /// the error ("ca.crt in the data directory", "the CA in the database").
    pub fn from_pem(key_pem: &str, cert_pem: &str, origin: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem)
            .with_context(|| format!("the key of {origin} is damaged"))?;
        let pin = pin_of_pem(cert_pem).with_context(|| format!("{origin} is damaged"))?;
        Ok(Ca {
            key,
            cert_pem: cert_pem.to_string(),
            pin,
        })
    }

    /// The private key, PEM. Secret.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

/// What the data directory holds of a CA.
pub enum LocalCa {
    /// `ca.key` and `ca.crt` (PEM): this coordinator made or uploaded the CA.
    Both(String, String),
    /// Only `ca.crt`: the copy a coordinator writes of a CA it took from the database.
    CertOnly(String),
    /// No CA yet.
    Nothing,
}

/// Reads what `dir` holds of a CA (a `ca.key` without `ca.crt` is an error).
pub fn read_local(dir: &Path) -> Result<LocalCa> {
    let key_path = dir.join("ca.key");
    let cert_path = dir.join("ca.crt");
    match (read_if_exists(&key_path)?, read_if_exists(&cert_path)?) {
        (Some(k), Some(c)) => Ok(LocalCa::Both(k, c)),
        (None, Some(c)) => Ok(LocalCa::CertOnly(c)),
        (None, None) => Ok(LocalCa::Nothing),
        (Some(_), None) => {
            anyhow::bail!("the data directory has ca.key but no ca.crt; restore ca.crt from backup")
        }
    }
}

/// Writes `ca` into `dir`: the certificate always (for operators), the key when `with_key`.
pub fn write_local(dir: &Path, ca: &Ca, with_key: bool) -> Result<()> {
    if with_key {
        write_private(&dir.join("ca.key"), ca.key_pem().as_bytes())?;
    }
    write_private(&dir.join("ca.crt"), ca.cert_pem.as_bytes())
}

/// The pin of a PEM certificate.
pub fn pin_of_pem(cert_pem: &str) -> Result<CaPin> {
    let der = pem_to_der(cert_pem)?;
    segwire_client::pinning::pin_of_cert(&der).context("not a certificate")
}

/// Issues a server certificate for `names` from `ca`.
pub fn issue(ca: &Ca, names: &[String]) -> Result<Pki> {
    let ca_params = CertificateParams::from_ca_cert_pem(&ca.cert_pem)
        .context("the CA certificate is damaged")?;
    let ca_cert = ca_params
        .self_signed(&ca.key)
        .context("cannot load the CA")?;
    let ca_der = pem_to_der(&ca.cert_pem)?;

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
        .signed_by(&server_key, &ca_cert, &ca.key)
        .context("cannot issue the server certificate")?;
    Ok(Pki {
        pin: ca.pin,
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
        .context("the CA certificate is not valid PEM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_names_become_ip_sans_not_dns_names() {
        let names: Vec<String> = ["2001:2::1", "198.18.0.1", "coord.example", "::1"]
            .map(String::from)
            .to_vec();
        let pki = issue(&Ca::new().expect("ca"), &names).expect("pki");
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
