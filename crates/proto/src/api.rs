//! REST API bodies (`/v1/...`). Request types refuse unknown fields so a typo is an error,
//! not a silently ignored setting. Times are RFC 3339 strings in UTC.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Labels: small key/value strings used by policies to select members.
pub type Labels = BTreeMap<String, String>;

/// The body of every error response (except authentication failures, which have none,
/// and a revoked node's credential, which carries [`NODE_REVOKED`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One sentence saying what went wrong and what to do.
    pub error: String,
    /// A machine-readable reason, for answers a client acts on (e.g. [`NODE_REVOKED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `ErrorBody::code` of the 401 that tells a node its credential was revoked: the only
/// answer on which an agent removes its members (a bare 401 is not enough).
pub const NODE_REVOKED: &str = "node_revoked";

/// What a segment does with traffic no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// Traffic no rule matches passes.
    #[default]
    Allow,
    /// Traffic no rule matches is dropped.
    Deny,
}

/// `POST /v1/segments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSegment {
    /// Lowercase DNS label, at most 32 characters.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", max_length = 32)]
    pub name: String,
    /// The segment's prefixes, comma-separated: an IPv4 network (prefix /8 to /30), an
    /// IPv6 prefix (/48 to /124), or both for a dual-stack segment
    /// (`100.64.1.0/24,fd00:1::/64`); no host bits, not overlapping another segment's.
    pub cidr: String,
    /// Policy default for the segment (`allow` unless given).
    #[serde(default)]
    pub default: Option<DefaultAction>,
}

/// `PATCH /v1/segments/{name}`: give a segment the prefix of the family it lacks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSegment {
    /// The segment's prefixes after the update: the prefix to add (an IPv6 prefix, /48 to
    /// /124, to an IPv4 segment; an IPv4 network, /8 to /30, to an IPv6-only one), alone
    /// or next to the prefix the segment has, comma-separated. Every member gets an
    /// address from it; the addresses it has do not change.
    pub cidr: String,
}

/// A segment as the API shows it. Its preshared key is never shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Segment {
    /// Segment name.
    pub name: String,
    /// Overlay IPv4 network; absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Overlay IPv6 prefix of a dual-stack or IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr6: Option<String>,
    /// Policy default.
    pub default: DefaultAction,
    /// Version of the segment's preshared key; bumped by every rotation.
    pub psk_version: u64,
    /// The phase of a key rotation in progress, if one is (see docs/psk-rotation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationPhase>,
    /// Version of the segment's policy (0: none set, the default applies).
    pub policy_version: u64,
    /// Members currently attached.
    pub members: u64,
    /// Change counter of the segment (monotonic).
    pub version: u64,
    /// When the segment was created.
    pub created_at: String,
}

/// A segment key rotation in progress. Each phase ends when every live node of the
/// segment has applied it, or after the coordinator's grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RotationPhase {
    /// The new key is published; members answer with it and still initiate with the old one.
    Accepting,
    /// Members initiate with the new key and still answer with the old one.
    Switched,
}

impl RotationPhase {
    /// The name stored and shown (`accepting`, `switched`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RotationPhase::Accepting => "accepting",
            RotationPhase::Switched => "switched",
        }
    }

    /// The phase a stored name names.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepting" => Some(RotationPhase::Accepting),
            "switched" => Some(RotationPhase::Switched),
            _ => None,
        }
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Segments a node enrolled with this token may attach workloads to (at least one).
    pub segments: Vec<String>,
    /// Labels stamped on every member the node attaches (they win over labels the node asks for).
    #[serde(default)]
    pub labels: Labels,
    /// Lifetime in seconds (default 3600, at most 30 days).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// How many enrolments the token allows (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
}

/// The answer to `POST /v1/tokens`: the only time the token string is ever shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// Token id.
    pub id: String,
    /// The full join token string (`swt1_...`).
    pub token: String,
    /// When it stops working.
    pub expires_at: String,
    /// Enrolments it allows.
    pub uses: u32,
}

/// A join token as listed; the secret is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Segments it grants.
    pub segments: Vec<String>,
    /// Labels it stamps.
    pub labels: Labels,
    /// Enrolments it allowed at creation.
    pub uses: u32,
    /// Enrolments left.
    pub uses_left: u32,
    /// Creation time.
    pub created_at: String,
    /// Expiry time.
    pub expires_at: String,
    /// `active`, `expired`, `used` or `revoked`.
    pub state: String,
}

/// `POST /v1/enroll`: a node enrols with a join token. `Debug` leaves out the secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Token id (from the join token).
    pub token_id: String,
    /// Token secret (from the join token).
    pub token_secret: String,
    /// Node name (lowercase DNS label, not 16 hex digits); unique among live nodes.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", max_length = 63)]
    pub name: String,
    /// The node's identity public key (X25519, base64); its private key never leaves the node.
    pub public_key: String,
    /// Underlay addresses the node can be reached at (IPs, no ports).
    #[serde(default)]
    pub endpoints: Vec<String>,
}

/// The answer to an enrolment: the node's id and credential (shown once). `Debug` leaves
/// out the credential.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// Node id.
    pub node_id: String,
    /// Node name.
    pub name: String,
    /// Bearer credential for the node API (`swn_...`); stored hashed by the coordinator.
    pub credential: String,
    /// Segments the node may attach workloads to.
    pub segments: Vec<String>,
    /// Labels stamped on the node's members.
    pub labels: Labels,
}

/// A node as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Node id.
    pub id: String,
    /// Node name.
    pub name: String,
    /// Identity public key.
    pub public_key: String,
    /// Underlay addresses the node reported.
    pub endpoints: Vec<String>,
    /// Source address the coordinator last saw the node's requests come from.
    pub observed_address: Option<String>,
    /// Segments the node may attach to.
    pub segments: Vec<String>,
    /// Labels stamped on its members.
    pub labels: Labels,
    /// Members it has.
    pub members: u64,
    /// Enrolment time.
    pub created_at: String,
    /// Last time the node talked to the coordinator.
    pub last_seen: Option<String>,
}

/// `POST /v1/node/members`: a node attaches a workload to a segment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// Segment to attach to (must be granted by the node's token).
    pub segment: String,
    /// Which workload: `host`, `netns:NAME`, `path:/run/netns/x` or `pid:1234`.
    pub workload: String,
    /// Member name; defaults to `<node>-<segment>-<n>`.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", max_length = 63)]
    pub name: Option<String>,
    /// The member's WireGuard public key (base64); the private key stays on the node.
    pub public_key: String,
    /// UDP port the member's WireGuard socket listens on.
    pub listen_port: u16,
    /// Explicit `IP:port` endpoints; when empty the node's addresses with `listen_port` are used.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Labels the node asks for; the token's labels win on conflict.
    #[serde(default)]
    pub labels: Labels,
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Member name.
    pub name: String,
    /// Segment name.
    pub segment: String,
    /// Node name.
    pub node: String,
    /// Node id.
    pub node_id: String,
    /// Workload description.
    pub workload: String,
    /// Overlay IPv4 address; absent on an IPv6-only segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Overlay IPv6 address (segments with an IPv6 prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// WireGuard public key.
    pub public_key: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// Endpoints peers use to reach it (`IP:port`).
    pub endpoints: Vec<String>,
    /// Effective labels.
    pub labels: Labels,
    /// Attach time.
    pub created_at: String,
    /// Until when the member is quarantined (cut off from every peer), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_until: Option<String>,
}

/// `POST /v1/node/endpoints`: the node reports where it can be reached.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointReport {
    /// Underlay IP addresses of the node (no ports).
    pub endpoints: Vec<String>,
}

/// A segment's policy as stored: `GET /v1/segments/{name}/policy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyDoc {
    /// Segment name.
    pub segment: String,
    /// Policy version (0: none set yet; the document is the segment default with no rules).
    pub version: u64,
    /// The policy document (`{"default": ..., "rules": [...]}`).
    pub policy: serde_json::Value,
}

/// `POST /v1/segments/{name}/policy/check`: would this flow be allowed?
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyCheck {
    /// Member opening the connection: its name or one of its overlay addresses (an IPv6
    /// address asks about IPv6).
    pub from: String,
    /// Member receiving it (its name, answered in `from`'s family, or one of its
    /// addresses), or any address.
    pub to: String,
    /// `tcp/N`, `udp/N` or `icmp`.
    #[schema(
        pattern = r"^((tcp|udp)/([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])|icmp)$"
    )]
    pub port: String,
}

/// The answer to a policy check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyCheckResult {
    /// Whether the flow is allowed.
    pub allowed: bool,
    /// The rule that decided, or `None` when the segment default did.
    pub rule: Option<String>,
    /// One sentence explaining the decision.
    pub reason: String,
}

/// One aggregated flow-log record: new allowed connections or denied packets of one
/// (direction, verdict, protocol, source, destination, port, rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRecord {
    /// Segment name.
    pub segment: String,
    /// Member that saw the flow.
    pub member: String,
    /// Node of that member (filled in by the coordinator).
    #[serde(default)]
    pub node: String,
    /// The other member, when known.
    #[serde(default)]
    pub peer: Option<String>,
    /// `egress` (sent by the member) or `ingress`.
    pub direction: String,
    /// `allowed` (a new connection) or `denied` (packets).
    pub verdict: String,
    /// `tcp`, `udp`, `icmp` or `ip-N`.
    pub protocol: String,
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// Destination port (0 for ICMP).
    pub dst_port: u16,
    /// The deciding rule; `None` when the segment default decided.
    #[serde(default)]
    pub rule: Option<String>,
    /// Connections (allowed) or packets (denied) in this record.
    pub count: u64,
    /// First seen, unix seconds.
    pub first_seen: i64,
    /// Last seen, unix seconds.
    pub last_seen: i64,
}

/// `POST /v1/node/flows`: a node ships flow records (at most 1,000 per request).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowReport {
    /// The records.
    pub flows: Vec<FlowRecord>,
    /// Flows the node could not log since its last report because its table was full.
    #[serde(default)]
    pub dropped: u64,
}

/// What an agent's data path detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectionKind {
    /// The member tried many distinct peer ports the policy denies.
    Scan,
    /// Packets with a source address not the sender's (see [`SpoofDirection`]).
    Spoof,
    /// Handshakes from one underlay address keep failing (wrong key or preshared key).
    HandshakeFailed,
    /// Many denied packets arrived for the member.
    DeniedBurst,
}

/// Who sent the spoofed packets of a `spoof` detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpoofDirection {
    /// The member's own workload sent them (the member is the offender).
    Sent,
    /// A peer sent them to the member (the peer is the offender).
    Received,
}

/// `POST /v1/node/detections`: one detection of the node's data path, about one of the
/// node's own members, sent at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionReport {
    /// Segment name.
    pub segment: String,
    /// The node's member that saw it (the offender for `scan` and a `sent` spoof).
    pub member: String,
    /// What was detected.
    pub kind: DetectionKind,
    /// For `spoof`: who sent the packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<SpoofDirection>,
    /// The other members involved, by name (scanned peers, the spoofing peer, the peer
    /// whose handshakes fail).
    #[serde(default)]
    pub peers: Vec<String>,
    /// An address: the claimed source of a spoof, the underlay address of failing
    /// handshakes, the top source of a denied burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Targets (scan), packets (spoof, burst) or failures (handshakes) in the window.
    pub count: u64,
    /// How long it took to cross the threshold, in milliseconds.
    pub window_ms: u64,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token_id", &self.token_id)
            .field("token_secret", &"<redacted>")
            .field("name", &self.name)
            .field("public_key", &self.public_key)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .field("credential", &"<redacted>")
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_token_secret_or_credential() {
        let req = EnrollRequest {
            token_id: "t1".into(),
            token_secret: "tok-secret-123".into(),
            name: "host-a".into(),
            public_key: "pk".into(),
            endpoints: Vec::new(),
        };
        let resp = EnrollResponse {
            node_id: "n1".into(),
            name: "host-a".into(),
            credential: "swn_n1.cred-secret-456".into(),
            segments: vec!["web".into()],
            labels: Labels::new(),
        };
        for text in [format!("{req:?}"), format!("{resp:?}")] {
            assert!(
                !text.contains("tok-secret-123") && !text.contains("cred-secret-456"),
                "{text}"
            );
            assert!(text.contains("<redacted>"), "{text}");
        }
    }
}
