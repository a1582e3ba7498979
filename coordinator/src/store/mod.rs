//! The coordinator's store: a trait with one implementation per database.
//!
//! The API layer speaks only to [`Store`]; rows here are the store's own types, converted
//! to wire types in the API layer. Every mutating method runs in one write transaction
//! and returns the ids of the nodes whose netmap it changed, so the caller can wake them.

/// The entity modules of `store/sql/`, for a backend module to compile against its own
/// `Backend`, `Db`, `DbRow`, `DbConn` and `dialect` (SQLite and PostgreSQL share them).
macro_rules! sql_modules {
    () => {
        #[path = "sql/access.rs"]
        mod access;
        #[path = "sql/cluster.rs"]
        mod cluster;
        #[path = "sql/flows.rs"]
        mod flows;
        #[path = "sql/keys.rs"]
        mod keys;
        #[path = "sql/members.rs"]
        mod members;
        #[path = "sql/netmap.rs"]
        mod netmap;
        #[path = "sql/nodes.rs"]
        mod nodes;
        #[path = "sql/peers.rs"]
        mod peers;
        #[path = "sql/quarantine.rs"]
        mod quarantine;
        #[path = "sql/rows.rs"]
        mod rows;
        #[path = "sql/segments.rs"]
        mod segments;
        #[path = "sql/store_impl.rs"]
        mod store_impl;
        #[path = "sql/tokens.rs"]
        mod tokens;
        #[path = "sql/tx.rs"]
        mod tx;
        use self::access::record;
    };
}

/// A directory holding the migrations of `dir` (under the crate) numbered below `below`,
/// for tests that build a database as an older coordinator left it.
#[cfg(test)]
fn migrations_below(dir: &str, below: i64) -> tempfile::TempDir {
    let out = tempfile::tempdir().expect("a temp dir");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    for entry in std::fs::read_dir(&src).expect("the migrations directory") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let number: Option<i64> = name.split('_').next().and_then(|n| n.parse().ok());
        if number.is_some_and(|n| n < below) {
            std::fs::copy(&path, out.path().join(&name)).expect("copy a migration");
        }
    }
    out
}

pub mod access;
pub mod audit;
pub mod cluster;
pub mod flows;
pub mod peers;
pub mod postgres;
pub mod quarantine;
pub mod rules;
pub mod sqlite;

use std::net::{Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use segwire_proto::api::{DefaultAction, Labels, RotationPhase};
use thiserror::Error;

/// A store failure, mapped to an HTTP status in one place (`api::error`).
#[derive(Debug, Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with existing state (duplicate name, overlapping CIDR, ...).
    #[error("{0}")]
    Conflict(String),
    /// The token cannot be used (expired, used up, revoked).
    #[error("{0}")]
    TokenRejected(String),
    /// The token is unknown or its secret is wrong: a guess, counted by the rate limit.
    #[error("{0}")]
    TokenUnknown(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request holds a value the database cannot store (a NUL character on
    /// PostgreSQL, say).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data could not be decoded.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    /// Sorts the database errors a request can cause from the failures of the database:
    /// a serialization failure or deadlock (SQLSTATE 40001, 40P01) is a concurrent change
    /// to retry, the same `Conflict` (409) either backend reports for a clash; a character
    /// the database cannot store (22021, 22P05: PostgreSQL refuses NUL) is `Invalid`.
    fn from(e: sqlx::Error) -> Self {
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        match code.as_deref() {
            Some("40001" | "40P01") => StoreError::Conflict(
                "another change to the same data happened at the same time; retry".into(),
            ),
            Some("22021" | "22P05") => StoreError::Invalid(
                "the request holds a NUL character or other text the database cannot store; remove it".into(),
            ),
            _ => StoreError::Db(e),
        }
    }
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Node ids whose netmaps a change touched.
pub type Touched = Vec<String>;

/// A segment row. `Debug` leaves out the preshared key.
#[derive(Clone)]
pub struct SegmentRow {
    /// Internal id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Overlay IPv4 network; `None` on an IPv6-only segment (then `net6` is set).
    pub net: Option<Ipv4Net>,
    /// Overlay IPv6 prefix of a dual-stack or IPv6-only segment.
    pub net6: Option<Ipv6Net>,
    /// Policy default.
    pub default: DefaultAction,
    /// Preshared key (base64). Secret.
    pub psk: String,
    /// Preshared key version.
    pub psk_version: i64,
    /// The key rotation in progress, if any, with the keys it publishes beside `psk`.
    pub rotation: Option<Rotation>,
    /// Change counter.
    pub version: i64,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Attached members.
    pub members: i64,
    /// Current policy (JSON), if one was set.
    pub policy: Option<String>,
    /// Policy version (0 = never set).
    pub policy_version: i64,
}

/// A segment key rotation in progress (see docs/psk-rotation.md).
#[derive(Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Which phase it is in.
    pub phase: RotationPhase,
    /// `accepting`: the next key (answered, not yet used to initiate); `switched`: the
    /// previous key (still answered). Secret.
    pub other_psk: String,
    /// The segment version the phase began at: a node that applied a netmap at or above
    /// it has the phase's keys.
    pub version: i64,
    /// When the phase began (unix seconds).
    pub since: i64,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("phase", &self.phase)
            .field("other_psk", &"<redacted>")
            .field("version", &self.version)
            .field("since", &self.since)
            .finish()
    }
}

impl SegmentRow {
    /// The next key, during a rotation's `accepting` phase.
    pub fn psk_next(&self) -> Option<&str> {
        self.rotation
            .as_ref()
            .filter(|r| r.phase == RotationPhase::Accepting)
            .map(|r| r.other_psk.as_str())
    }

    /// The previous key, during a rotation's `switched` phase.
    pub fn psk_previous(&self) -> Option<&str> {
        self.rotation
            .as_ref()
            .filter(|r| r.phase == RotationPhase::Switched)
            .map(|r| r.other_psk.as_str())
    }
}

/// A join token row (the secret is only hashed).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Token id.
    pub id: String,
    /// SHA-256 of the secret.
    pub secret_hash: String,
    /// Segments it grants.
    pub segments: Vec<String>,
    /// Labels it stamps.
    pub labels: Labels,
    /// Enrolments allowed.
    pub uses: i64,
    /// Enrolments left.
    pub uses_left: i64,
    /// Creation time.
    pub created_at: i64,
    /// Expiry time.
    pub expires_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

/// A node row.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// Node id.
    pub id: String,
    /// Node name.
    pub name: String,
    /// Identity public key.
    pub public_key: String,
    /// SHA-256 of the node credential's secret.
    pub cred_hash: String,
    /// Segments it may attach to.
    pub segments: Vec<String>,
    /// Labels stamped on its members.
    pub labels: Labels,
    /// Reported underlay IPs.
    pub endpoints: Vec<String>,
    /// Last observed source IP.
    pub observed: Option<String>,
    /// Enrolment time.
    pub created_at: i64,
    /// Last contact.
    pub last_seen: Option<i64>,
    /// Change counter of the node's own state.
    pub version: i64,
    /// Members it has.
    pub members: i64,
    /// The coordinator (instance id) that last took its long-polls, on PostgreSQL.
    pub polled_by: Option<String>,
}

/// A member row, joined with its node and segment names.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// Member id.
    pub id: String,
    /// Owning node id.
    pub node_id: String,
    /// Owning node name.
    pub node_name: String,
    /// Segment id.
    pub segment_id: String,
    /// Segment name.
    pub segment: String,
    /// Member name.
    pub name: String,
    /// Workload description.
    pub workload: String,
    /// Overlay IPv4 address; `None` on an IPv6-only segment.
    pub address: Option<Ipv4Addr>,
    /// Overlay IPv6 address (on a segment with an IPv6 prefix).
    pub address6: Option<Ipv6Addr>,
    /// WireGuard public key.
    pub public_key: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// Explicit endpoints.
    pub endpoints: Vec<String>,
    /// Effective labels.
    pub labels: Labels,
    /// Attach time.
    pub created_at: i64,
    /// Quarantined until (unix seconds): cut off from every peer of the segment.
    pub quarantined_until: Option<i64>,
}

/// A new segment. `Debug` leaves out the preshared key.
#[derive(Clone)]
pub struct NewSegment {
    /// Name (validated).
    pub name: String,
    /// IPv4 network (validated); `None` for an IPv6-only segment.
    pub net: Option<Ipv4Net>,
    /// IPv6 prefix (validated); at least one of `net` and `net6` is set.
    pub net6: Option<Ipv6Net>,
    /// Policy default.
    pub default: DefaultAction,
    /// Fresh preshared key (base64).
    pub psk: String,
}

/// An enrolment: the presented token and the new node. `Debug` leaves out the token
/// secret.
#[derive(Clone)]
pub struct NewNode {
    /// Token id presented.
    pub token_id: String,
    /// Token secret presented (compared in constant time, never stored).
    pub token_secret: String,
    /// New node id.
    pub id: String,
    /// Node name.
    pub name: String,
    /// Identity public key.
    pub public_key: String,
    /// SHA-256 of the new node credential's secret.
    pub cred_hash: String,
    /// Reported underlay IPs.
    pub endpoints: Vec<String>,
    /// Observed source IP.
    pub observed: Option<String>,
}

/// A member to attach.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// Node asking.
    pub node_id: String,
    /// Segment name.
    pub segment: String,
    /// Workload description.
    pub workload: String,
    /// Requested name, if any.
    pub name: Option<String>,
    /// WireGuard public key.
    pub public_key: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// Explicit endpoints.
    pub endpoints: Vec<String>,
    /// Labels asked for (the node's token labels are merged over them).
    pub labels: Labels,
    /// Seconds a released address stays unused.
    pub quarantine_secs: i64,
    /// Most members the node may have in all (a new one past it is a `Conflict`).
    pub max_members_per_node: i64,
}

/// What a node's netmap is built from.
#[derive(Debug, Clone)]
pub struct NetmapRows {
    /// The node.
    pub node: NodeRow,
    /// Segments the node has members in.
    pub segments: Vec<SegmentRow>,
    /// All members of those segments (the node's own included).
    pub members: Vec<MemberRow>,
    /// Nodes owning those members (for their endpoints).
    pub nodes: Vec<NodeRow>,
    /// The node's netmap version.
    pub version: i64,
}

/// The versions a node's netmap is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeVersions {
    /// The node's own change counter.
    pub node: i64,
    /// `(segment id, version)` of every segment the node has a member in, by name.
    pub segments: Vec<(String, i64)>,
    /// False when the node is revoked or gone (its credential no longer counts).
    pub live: bool,
}

impl NodeVersions {
    /// The node's netmap version: the highest of its own and its segments' versions.
    pub fn version(&self) -> i64 {
        self.segments
            .iter()
            .map(|(_, v)| *v)
            .chain(std::iter::once(self.node))
            .max()
            .unwrap_or(0)
    }
}

/// One segment as every node's netmap sees it.
#[derive(Debug, Clone)]
pub struct SegmentRows {
    /// The segment.
    pub segment: SegmentRow,
    /// Its members, by address.
    pub members: Vec<MemberRow>,
    /// The live agent nodes owning them (for their endpoints).
    pub nodes: Vec<NodeRow>,
}

/// The coordinator's persistent state.
#[async_trait]
pub trait Store: peers::PeerStore + quarantine::QuarantineStore + Send + Sync + 'static {
    /// Creates a segment; `Conflict` on a taken name or an overlapping network.
    async fn create_segment(&self, seg: NewSegment, now: i64) -> StoreResult<SegmentRow>;
    /// All segments by name.
    async fn list_segments(&self) -> StoreResult<Vec<SegmentRow>>;
    /// One segment by name.
    async fn get_segment(&self, name: &str) -> StoreResult<SegmentRow>;
    /// Deletes a segment; with members only when `force` (their addresses are released).
    async fn delete_segment(&self, name: &str, force: bool, now: i64) -> StoreResult<Touched>;
    /// Starts a make-before-break rotation to `psk`: it is published as the next key
    /// (phase `accepting`) and the key version bumps. A rotation already in progress is
    /// superseded: an `accepting` one gets the new next key, a `switched` one retires its
    /// previous key at once.
    async fn rotate_psk(
        &self,
        name: &str,
        psk: String,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)>;
    /// Moves a segment's rotation on by one phase (`accepting` → `switched` → done), if it
    /// is still in `phase` begun at `version` (so several coordinators, or a rotation
    /// superseded meanwhile, move it once). `None` when it was not.
    async fn advance_rotation(
        &self,
        segment_id: &str,
        phase: RotationPhase,
        version: i64,
        now: i64,
    ) -> StoreResult<Option<(SegmentRow, Touched)>>;
    /// The segments with a key rotation in progress.
    async fn rotating_segments(&self) -> StoreResult<Vec<SegmentRow>>;
    /// Gives a segment the prefix of the family it lacks (validated: an IPv6 prefix next
    /// to its IPv4 network, or an IPv4 network next to its IPv6 prefix) and every member
    /// an address from it, in one transaction; the other family's addresses are
    /// untouched. `Conflict` when the segment already has a prefix of that family, or the
    /// prefix overlaps another segment's.
    async fn add_prefix(
        &self,
        name: &str,
        net: IpNet,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)>;

    /// Replaces a segment's policy (already validated), keeps it in history, bumps versions.
    async fn set_policy(
        &self,
        name: &str,
        body: String,
        default: DefaultAction,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)>;

    /// Stores a new token.
    async fn create_token(&self, token: TokenRow) -> StoreResult<()>;
    /// All tokens, newest first.
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRow>>;
    /// Revokes a token.
    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<()>;

    /// Checks and consumes one use of the token and creates the node, in one transaction.
    async fn enroll(&self, node: NewNode, now: i64) -> StoreResult<NodeRow>;
    /// All live nodes by name.
    async fn list_nodes(&self) -> StoreResult<Vec<NodeRow>>;
    /// A live node by id or name.
    async fn get_node(&self, id_or_name: &str) -> StoreResult<NodeRow>;
    /// A live node by id, for authentication (`None` if unknown or revoked).
    async fn node_for_auth(&self, id: &str) -> StoreResult<Option<NodeRow>>;
    /// The credential hash of a revoked node by id (`None` if unknown or live), so a
    /// revoked node can be told so explicitly.
    async fn revoked_node_cred(&self, id: &str) -> StoreResult<Option<String>>;
    /// Revokes a node and releases its members' addresses.
    async fn revoke_node(&self, id_or_name: &str, now: i64) -> StoreResult<(NodeRow, Touched)>;
    /// Records the node's reported endpoints and observed address.
    async fn set_endpoints(
        &self,
        node_id: &str,
        endpoints: Vec<String>,
        observed: Option<String>,
        now: i64,
    ) -> StoreResult<Touched>;
    /// Records the node's last contact time and observed address (no version change).
    async fn touch_node(
        &self,
        node_id: &str,
        observed: Option<String>,
        now: i64,
    ) -> StoreResult<()>;

    /// Attaches a workload, allocating its overlay address.
    async fn attach(&self, member: NewMember, now: i64) -> StoreResult<(MemberRow, Touched)>;
    /// Detaches one of the node's members.
    async fn detach(&self, node_id: &str, member_id: &str, now: i64) -> StoreResult<Touched>;
    /// Members, optionally of one segment.
    async fn list_members(&self, segment: Option<&str>) -> StoreResult<Vec<MemberRow>>;
    /// The members of one node.
    async fn node_members(&self, node_id: &str) -> StoreResult<Vec<MemberRow>>;

    /// Everything needed to build the node's netmap.
    async fn netmap_rows(&self, node_id: &str) -> StoreResult<NetmapRows>;

    /// The versions the node's netmap is made of (one cheap read per long-poll round).
    async fn node_versions(&self, node_id: &str) -> StoreResult<NodeVersions>;
    /// One segment with its members (by address) and their live nodes, read consistently.
    async fn segment_rows(&self, segment_id: &str) -> StoreResult<SegmentRows>;

    /// Tells the other coordinators sharing this database that a committed change touched
    /// these nodes, so they wake their long-polls (nothing to do on SQLite).
    async fn announce(&self, touched: &Touched);

    /// Stores a new unscoped, non-expiring API key (the bootstrap admin key; the API
    /// uses [`access::AccessStore`]).
    async fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        role: &str,
        description: &str,
        now: i64,
    ) -> StoreResult<()>;
}

impl std::fmt::Debug for SegmentRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("net", &self.net)
            .field("default", &self.default)
            .field("psk", &"<redacted>")
            .field("psk_version", &self.psk_version)
            .field("rotation", &self.rotation)
            .field("version", &self.version)
            .field("members", &self.members)
            .field("policy_version", &self.policy_version)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSegment")
            .field("name", &self.name)
            .field("net", &self.net)
            .field("default", &self.default)
            .field("psk", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for NewNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewNode")
            .field("token_id", &self.token_id)
            .field("token_secret", &"<redacted>")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("public_key", &self.public_key)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_psk_or_token_secret() {
        let psk = "cHNrLXNlY3JldC1wc2stc2VjcmV0LXBzay1zZWNyZXQ=";
        let row = SegmentRow {
            id: "s1".into(),
            name: "web".into(),
            net: Some("100.64.1.0/24".parse().expect("net")),
            net6: None,
            default: DefaultAction::Allow,
            psk: psk.into(),
            psk_version: 1,
            rotation: None,
            version: 1,
            created_at: 0,
            members: 0,
            policy: None,
            policy_version: 0,
        };
        let new = NewSegment {
            name: "web".into(),
            net: row.net,
            net6: None,
            default: DefaultAction::Deny,
            psk: psk.into(),
        };
        let node = NewNode {
            token_id: "t1".into(),
            token_secret: "tok-secret-123".into(),
            id: "n1".into(),
            name: "host-a".into(),
            public_key: "pk".into(),
            cred_hash: "h".into(),
            endpoints: Vec::new(),
            observed: None,
        };
        for text in [format!("{row:?}"), format!("{new:?}"), format!("{node:?}")] {
            assert!(
                !text.contains(psk) && !text.contains("tok-secret-123"),
                "{text}"
            );
            assert!(text.contains("<redacted>"), "{text}");
        }
    }
}
