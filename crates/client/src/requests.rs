//! One typed method per coordinator route.

use std::time::Duration;

use reqwest::Method;
use segwire_proto::api::{
    AttachRequest, CreateSegment, CreateToken, DetectionReport, EndpointReport, EnrollRequest,
    EnrollResponse, FlowRecord, FlowReport, Member, Node, PolicyCheck, PolicyCheckResult,
    PolicyDoc, Segment, TokenCreated, TokenInfo, UpdateSegment,
};
use segwire_proto::delta::{NetMapDelta, DELTA_CONTENT_TYPE};
use segwire_proto::netmap::NetMap;

use crate::{Client, ClientError};

const NO_BODY: Option<&()> = None;

/// How long past its `wait` a netmap long-poll may take before the coordinator counts as
/// gone (the client then moves to the next one it knows).
pub const LONG_POLL_GRACE: Duration = Duration::from_secs(5);

/// What a delta-capable netmap poll brought.
#[derive(Debug)]
pub enum NetmapUpdate {
    /// A whole map.
    Full(Box<NetMap>),
    /// The changes since the version asked with.
    Delta(Box<NetMapDelta>),
}

/// Percent-encodes one path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// `POST /v1/segments`.
    pub async fn create_segment(&self, req: &CreateSegment) -> Result<Segment, ClientError> {
        self.call_json(Method::POST, "/v1/segments", Some(req))
            .await
    }

    /// `GET /v1/segments`.
    pub async fn list_segments(&self) -> Result<Vec<Segment>, ClientError> {
        self.call_json(Method::GET, "/v1/segments", NO_BODY).await
    }

    /// `GET /v1/segments/{name}`.
    pub async fn get_segment(&self, name: &str) -> Result<Segment, ClientError> {
        let path = format!("/v1/segments/{}", enc(name));
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `DELETE /v1/segments/{name}[?force=true]`.
    pub async fn delete_segment(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let path = format!("/v1/segments/{}?force={force}", enc(name));
        self.call::<(), serde_json::Value>(Method::DELETE, &path, NO_BODY)
            .await
            .map(|_| ())
    }

    /// `POST /v1/segments/{name}/rotate-key`.
    pub async fn rotate_key(&self, name: &str) -> Result<Segment, ClientError> {
        let path = format!("/v1/segments/{}/rotate-key", enc(name));
        self.call_json(Method::POST, &path, NO_BODY).await
    }

    /// `PATCH /v1/segments/{name}`: add the segment's IPv6 prefix.
    pub async fn update_segment(
        &self,
        name: &str,
        req: &UpdateSegment,
    ) -> Result<Segment, ClientError> {
        let path = format!("/v1/segments/{}", enc(name));
        self.call_json(Method::PATCH, &path, Some(req)).await
    }

    /// `PUT /v1/segments/{name}/policy` with a policy document.
    pub async fn set_policy(
        &self,
        segment: &str,
        policy: &serde_json::Value,
    ) -> Result<PolicyDoc, ClientError> {
        let path = format!("/v1/segments/{}/policy", enc(segment));
        self.call_json(Method::PUT, &path, Some(policy)).await
    }

    /// `GET /v1/segments/{name}/policy`.
    pub async fn get_policy(&self, segment: &str) -> Result<PolicyDoc, ClientError> {
        let path = format!("/v1/segments/{}/policy", enc(segment));
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `POST /v1/segments/{name}/policy/check`.
    pub async fn check_policy(
        &self,
        segment: &str,
        req: &PolicyCheck,
    ) -> Result<PolicyCheckResult, ClientError> {
        let path = format!("/v1/segments/{}/policy/check", enc(segment));
        self.call_json(Method::POST, &path, Some(req)).await
    }

    /// `POST /v1/tokens`.
    pub async fn create_token(&self, req: &CreateToken) -> Result<TokenCreated, ClientError> {
        self.call_json(Method::POST, "/v1/tokens", Some(req)).await
    }

    /// `GET /v1/tokens`.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.call_json(Method::GET, "/v1/tokens", NO_BODY).await
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/tokens/{}", enc(id));
        self.call::<(), serde_json::Value>(Method::DELETE, &path, NO_BODY)
            .await
            .map(|_| ())
    }

    /// `GET /v1/nodes`.
    pub async fn list_nodes(&self) -> Result<Vec<Node>, ClientError> {
        self.call_json(Method::GET, "/v1/nodes", NO_BODY).await
    }

    /// `GET /v1/nodes/{id_or_name}`.
    pub async fn get_node(&self, id_or_name: &str) -> Result<Node, ClientError> {
        let path = format!("/v1/nodes/{}", enc(id_or_name));
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `DELETE /v1/nodes/{id_or_name}`: revokes the node and removes its members.
    pub async fn revoke_node(&self, id_or_name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/nodes/{}", enc(id_or_name));
        self.call::<(), serde_json::Value>(Method::DELETE, &path, NO_BODY)
            .await
            .map(|_| ())
    }

    /// `GET /v1/members[?segment=S]`.
    pub async fn list_members(&self, segment: Option<&str>) -> Result<Vec<Member>, ClientError> {
        let path = match segment {
            Some(s) => format!("/v1/members?segment={}", enc(s)),
            None => "/v1/members".to_string(),
        };
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `POST /v1/enroll` (no credential needed: the token is the credential).
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        self.call_json(Method::POST, "/v1/enroll", Some(req)).await
    }

    /// `GET /v1/node/netmap?since=V&wait=S`: `None` when nothing changed within `wait_secs`.
    pub async fn netmap(&self, since: u64, wait_secs: u64) -> Result<Option<NetMap>, ClientError> {
        let path = format!("/v1/node/netmap?since={since}&wait={wait_secs}");
        self.call(Method::GET, &path, NO_BODY).await
    }

    /// `GET /v1/node/netmap?delta=1`: like [`Client::netmap`], but the answer may be a
    /// delta from `since`; `full` asks for a whole map (after a delta that did not apply).
    pub async fn netmap_update(
        &self,
        since: u64,
        wait_secs: u64,
        full: bool,
    ) -> Result<Option<NetmapUpdate>, ClientError> {
        let path = format!(
            "/v1/node/netmap?since={since}&wait={wait_secs}&delta=1&full={}",
            u8::from(full)
        );
        // A coordinator that holds the poll past its wait is as good as gone.
        let timeout = Duration::from_secs(wait_secs) + LONG_POLL_GRACE;
        let Some((kind, bytes)) = self
            .fetch_within(Method::GET, &path, NO_BODY, Some(timeout))
            .await?
        else {
            return Ok(None);
        };
        let decode = |e: serde_json::Error| ClientError::Decode(e.to_string());
        if kind.starts_with(DELTA_CONTENT_TYPE) {
            serde_json::from_slice(&bytes)
                .map(|d| Some(NetmapUpdate::Delta(Box::new(d))))
                .map_err(decode)
        } else {
            serde_json::from_slice(&bytes)
                .map(|m| Some(NetmapUpdate::Full(Box::new(m))))
                .map_err(decode)
        }
    }

    /// `POST /v1/node/members`: attach a workload; returns the member with its overlay address.
    pub async fn attach(&self, req: &AttachRequest) -> Result<Member, ClientError> {
        self.call_json(Method::POST, "/v1/node/members", Some(req))
            .await
    }

    /// `DELETE /v1/node/members/{id}`.
    pub async fn detach(&self, member_id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/node/members/{}", enc(member_id));
        self.call::<(), serde_json::Value>(Method::DELETE, &path, NO_BODY)
            .await
            .map(|_| ())
    }

    /// `POST /v1/node/flows`: ship flow records.
    pub async fn report_flows(&self, req: &FlowReport) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(Method::POST, "/v1/node/flows", Some(req))
            .await
            .map(|_| ())
    }

    /// `POST /v1/node/detections`: report one detection at once.
    pub async fn report_detection(&self, req: &DetectionReport) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(Method::POST, "/v1/node/detections", Some(req))
            .await
            .map(|_| ())
    }

    /// `POST /v1/segments/{name}/members/{member}/release`: lift a quarantine early.
    pub async fn release_member(&self, segment: &str, member: &str) -> Result<Member, ClientError> {
        let path = format!(
            "/v1/segments/{}/members/{}/release",
            enc(segment),
            enc(member)
        );
        self.call_json(Method::POST, &path, NO_BODY).await
    }

    /// `GET /v1/flows`: flow records, newest first.
    pub async fn list_flows(
        &self,
        segment: Option<&str>,
        denied: bool,
        since: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FlowRecord>, ClientError> {
        let mut path = format!("/v1/flows?denied={denied}&limit={limit}");
        if let Some(s) = segment {
            path.push_str(&format!("&segment={}", enc(s)));
        }
        if let Some(t) = since {
            path.push_str(&format!("&since={t}"));
        }
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `POST /v1/node/endpoints`.
    pub async fn report_endpoints(&self, req: &EndpointReport) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(Method::POST, "/v1/node/endpoints", Some(req))
            .await
            .map(|_| ())
    }
}
