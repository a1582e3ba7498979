//! External members: stock WireGuard devices (appliances, laptops, kernel WireGuard
//! hosts) that join a segment without running `segwire-node`.
//!
//! The coordinator stores only the device's public key; the device gets a wg-quick
//! configuration ([`PeerConfig::wg_quick`]) listing the members it may reach, each with
//! the segment's preshared key. That configuration is secret (it carries the PSK):
//! `Debug` redacts it and nothing logs it.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::Labels;

/// Keepalive written into every `[Peer]` of a device's configuration: external devices
/// are often behind NAT, and the agents can reach one only after it has spoken.
pub const PERSISTENT_KEEPALIVE: u16 = 25;

/// Placeholder written where the private key goes when the CLI did not make it.
pub const PRIVATE_KEY_PLACEHOLDER: &str = "<your private key>";

/// `POST /v1/peers`: register a stock WireGuard device as a member of a segment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPeer {
    /// Segment to join.
    pub segment: String,
    /// Member name, unique in the segment (lowercase DNS label).
    pub name: String,
    /// The device's WireGuard public key (base64). Its private key never reaches the coordinator.
    pub public_key: String,
    /// `IP:port` where the device listens, if it has a stable address; without one the
    /// agents wait for the device to connect (it roams to the source of its packets).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Labels that policies select it by.
    #[serde(default)]
    pub labels: Labels,
}

/// An external member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExternalPeer {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment name.
    pub segment: String,
    /// IPv4 overlay address the coordinator allocated; absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// IPv6 overlay address, on a segment with an IPv6 prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// WireGuard public key (base64).
    pub public_key: String,
    /// `IP:port` the device listens on, if registered.
    pub endpoint: Option<String>,
    /// Labels.
    pub labels: Labels,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// One member the device may reach: a `[Peer]` of its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigPeer {
    /// Member name.
    pub name: String,
    /// Node the member lives on (empty for another external device).
    pub node: String,
    /// Its WireGuard public key (base64).
    pub public_key: String,
    /// Its IPv4 overlay address (an allowed IP, as /32); absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its IPv6 overlay address (an allowed IP, as /128), on a segment with an IPv6
    /// prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// Its first `IP:port` endpoint, if it has one.
    pub endpoint: Option<String>,
}

/// Everything a device's wg-quick configuration is made from. Secret: carries the PSK.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerConfig {
    /// The device as registered.
    pub peer: ExternalPeer,
    /// The segment's IPv4 network; absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// The segment's IPv6 prefix, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr6: Option<String>,
    /// The segment's preshared key (base64). Secret: never logged.
    pub psk: String,
    /// Version of that key; a rotation means the device needs a new configuration.
    pub psk_version: u64,
    /// The members the segment's policy lets it exchange traffic with.
    pub peers: Vec<ConfigPeer>,
}

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("peer", &self.peer)
            .field("cidr", &self.cidr)
            .field("cidr6", &self.cidr6)
            .field("psk", &"<redacted>")
            .field("psk_version", &self.psk_version)
            .field("peers", &self.peers)
            .finish()
    }
}

impl PeerConfig {
    /// The wg-quick configuration for the device. `private_key` is written as given:
    /// the key the CLI just made, or [`PRIVATE_KEY_PLACEHOLDER`].
    ///
    /// `Address` is the device's /32 and /128, whichever it has (wg-quick adds a route
    /// per `AllowedIPs`, each peer's /32 and /128 likewise); a
    /// `ListenPort` is written when an endpoint was registered, so the agents can reach
    /// the device there.
    #[must_use]
    pub fn wg_quick(&self, private_key: &str) -> String {
        let p = &self.peer;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# segwire external member {:?} of segment {:?} ({}), preshared key v{}",
            p.name,
            p.segment,
            [self.cidr.as_deref(), self.cidr6.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            self.psk_version
        );
        out.push_str("[Interface]\n");
        let _ = writeln!(
            out,
            "Address = {}",
            host_nets(p.address.as_deref(), p.address6.as_deref())
        );
        let _ = writeln!(out, "PrivateKey = {private_key}");
        if let Some(port) = p.endpoint.as_deref().and_then(endpoint_port) {
            let _ = writeln!(out, "ListenPort = {port}");
        }
        for peer in &self.peers {
            out.push('\n');
            if peer.node.is_empty() {
                let _ = writeln!(out, "# {} (external)", peer.name);
            } else {
                let _ = writeln!(out, "# {} on {}", peer.name, peer.node);
            }
            out.push_str("[Peer]\n");
            let _ = writeln!(out, "PublicKey = {}", peer.public_key);
            let _ = writeln!(out, "PresharedKey = {}", self.psk);
            if let Some(ep) = &peer.endpoint {
                let _ = writeln!(out, "Endpoint = {ep}");
            }
            let nets = host_nets(peer.address.as_deref(), peer.address6.as_deref());
            let _ = writeln!(out, "AllowedIPs = {nets}");
            let _ = writeln!(out, "PersistentKeepalive = {PERSISTENT_KEEPALIVE}");
        }
        out
    }
}

/// `a/32`, `a/32, b/128` or `b/128`: the host networks of the addresses there are.
fn host_nets(v4: Option<&str>, v6: Option<&str>) -> String {
    let v4 = v4.map(|a| format!("{a}/32"));
    let v6 = v6.map(|a| format!("{a}/128"));
    v4.into_iter().chain(v6).collect::<Vec<_>>().join(", ")
}

/// The port of an `IP:port` or `[IPv6]:port` endpoint.
fn endpoint_port(ep: &str) -> Option<u16> {
    ep.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PeerConfig {
        PeerConfig {
            peer: ExternalPeer {
                id: "p1".into(),
                name: "laptop".into(),
                segment: "web".into(),
                address: Some("100.64.1.9".into()),
                address6: None,
                public_key: "PUB".into(),
                endpoint: Some("198.18.0.9:51900".into()),
                labels: Labels::new(),
                created_at: "now".into(),
            },
            cidr: Some("100.64.1.0/24".into()),
            cidr6: None,
            psk: "PSK".into(),
            psk_version: 2,
            peers: vec![
                ConfigPeer {
                    name: "web-1".into(),
                    node: "host-a".into(),
                    public_key: "K1".into(),
                    address: Some("100.64.1.2".into()),
                    address6: None,
                    endpoint: Some("198.18.0.2:51820".into()),
                },
                ConfigPeer {
                    name: "phone".into(),
                    node: String::new(),
                    public_key: "K2".into(),
                    address: Some("100.64.1.3".into()),
                    address6: None,
                    endpoint: None,
                },
            ],
        }
    }

    #[test]
    fn wg_quick_has_every_field() {
        let text = config().wg_quick("PRIV");
        let expected = "\
# segwire external member \"laptop\" of segment \"web\" (100.64.1.0/24), preshared key v2
[Interface]
Address = 100.64.1.9/32
PrivateKey = PRIV
ListenPort = 51900

# web-1 on host-a
[Peer]
PublicKey = K1
PresharedKey = PSK
Endpoint = 198.18.0.2:51820
AllowedIPs = 100.64.1.2/32
PersistentKeepalive = 25

# phone (external)
[Peer]
PublicKey = K2
PresharedKey = PSK
AllowedIPs = 100.64.1.3/32
PersistentKeepalive = 25
";
        assert_eq!(text, expected);
    }

    #[test]
    fn dual_stack_devices_get_both_addresses_and_allowed_ips() {
        let mut c = config();
        c.cidr6 = Some("fd00:1::/64".into());
        c.peer.address6 = Some("fd00:1::9".into());
        c.peers[0].address6 = Some("fd00:1::2".into());
        let text = c.wg_quick("PRIV");
        assert!(
            text.contains("Address = 100.64.1.9/32, fd00:1::9/128\n"),
            "{text}"
        );
        assert!(
            text.contains("AllowedIPs = 100.64.1.2/32, fd00:1::2/128\n"),
            "{text}"
        );
        assert!(text.contains("AllowedIPs = 100.64.1.3/32\n"), "{text}");
    }

    #[test]
    fn ipv6_only_devices_get_only_ipv6_addresses_and_allowed_ips() {
        let mut c = config();
        c.cidr = None;
        c.cidr6 = Some("fd00:1::/64".into());
        c.peer.address = None;
        c.peer.address6 = Some("fd00:1::9".into());
        for (p, a) in c.peers.iter_mut().zip(["fd00:1::2", "fd00:1::3"]) {
            p.address = None;
            p.address6 = Some(a.into());
        }
        let text = c.wg_quick("PRIV");
        assert!(text.contains("(fd00:1::/64), preshared"), "{text}");
        assert!(text.contains("Address = fd00:1::9/128\n"), "{text}");
        assert!(text.contains("AllowedIPs = fd00:1::2/128\n"), "{text}");
        assert!(text.contains("AllowedIPs = fd00:1::3/128\n"), "{text}");
        assert!(!text.contains("/32"), "{text}");
    }

    #[test]
    fn no_listen_port_without_endpoint() {
        let mut c = config();
        c.peer.endpoint = None;
        assert!(!c.wg_quick(PRIVATE_KEY_PLACEHOLDER).contains("ListenPort"));
    }

    #[test]
    fn debug_hides_the_psk() {
        let text = format!("{:?}", config());
        assert!(!text.contains("PSK\""), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
