//! [`Store`] for both SQL backends: each method hands over to its entity's module.

use async_trait::async_trait;
use segwire_proto::api::{DefaultAction, RotationPhase};

use super::{dialect, keys, members, netmap, nodes, segments, tokens, Backend};
use crate::store::{
    MemberRow, NetmapRows, NewMember, NewNode, NewSegment, NodeRow, NodeVersions, SegmentRow,
    SegmentRows, Store, StoreResult, TokenRow, Touched,
};

#[async_trait]
impl Store for Backend {
    async fn create_segment(&self, seg: NewSegment, now: i64) -> StoreResult<SegmentRow> {
        segments::create_segment(self, seg, now).await
    }

    async fn list_segments(&self) -> StoreResult<Vec<SegmentRow>> {
        segments::list_segments(self).await
    }

    async fn get_segment(&self, name: &str) -> StoreResult<SegmentRow> {
        segments::get_segment(self, name).await
    }

    async fn delete_segment(&self, name: &str, force: bool, now: i64) -> StoreResult<Touched> {
        segments::delete_segment(self, name, force, now).await
    }

    async fn rotate_psk(
        &self,
        name: &str,
        psk: String,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)> {
        segments::rotate_psk(self, name, psk, now).await
    }

    async fn advance_rotation(
        &self,
        segment_id: &str,
        phase: RotationPhase,
        version: i64,
        now: i64,
    ) -> StoreResult<Option<(SegmentRow, Touched)>> {
        segments::advance_rotation(self, segment_id, phase, version, now).await
    }

    async fn rotating_segments(&self) -> StoreResult<Vec<SegmentRow>> {
        segments::rotating_segments(self).await
    }

    async fn add_prefix(
        &self,
        name: &str,
        net: ipnet::IpNet,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)> {
        segments::add_prefix(self, name, net, now).await
    }

    async fn set_policy(
        &self,
        name: &str,
        body: String,
        default: DefaultAction,
        now: i64,
    ) -> StoreResult<(SegmentRow, Touched)> {
        segments::set_policy(self, name, body, default, now).await
    }

    async fn create_token(&self, t: TokenRow) -> StoreResult<()> {
        tokens::create_token(self, t).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRow>> {
        tokens::list_tokens(self).await
    }

    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<()> {
        tokens::revoke_token(self, id, now).await
    }

    async fn enroll(&self, n: NewNode, now: i64) -> StoreResult<NodeRow> {
        nodes::enroll(self, n, now).await
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRow>> {
        nodes::list_nodes(self).await
    }

    async fn get_node(&self, id_or_name: &str) -> StoreResult<NodeRow> {
        nodes::get_node(self, id_or_name).await
    }

    async fn node_for_auth(&self, id: &str) -> StoreResult<Option<NodeRow>> {
        nodes::node_for_auth(self, id).await
    }

    async fn revoked_node_cred(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT cred_hash FROM nodes WHERE id = $1 AND revoked_at IS NOT NULL AND kind = 'agent'",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn revoke_node(&self, id_or_name: &str, now: i64) -> StoreResult<(NodeRow, Touched)> {
        nodes::revoke_node(self, id_or_name, now).await
    }

    async fn set_endpoints(
        &self,
        node_id: &str,
        endpoints: Vec<String>,
        observed: Option<String>,
        now: i64,
    ) -> StoreResult<Touched> {
        nodes::set_endpoints(self, node_id, endpoints, observed, now).await
    }

    async fn touch_node(
        &self,
        node_id: &str,
        observed: Option<String>,
        now: i64,
    ) -> StoreResult<()> {
        nodes::touch_node(self, node_id, observed, now).await
    }

    async fn attach(&self, m: NewMember, now: i64) -> StoreResult<(MemberRow, Touched)> {
        members::attach(self, m, now).await
    }

    async fn detach(&self, node_id: &str, member_id: &str, now: i64) -> StoreResult<Touched> {
        members::detach(self, node_id, member_id, now).await
    }

    async fn list_members(&self, segment: Option<&str>) -> StoreResult<Vec<MemberRow>> {
        members::list_members(self, segment).await
    }

    async fn node_members(&self, node_id: &str) -> StoreResult<Vec<MemberRow>> {
        members::node_members(self, node_id).await
    }

    async fn netmap_rows(&self, node_id: &str) -> StoreResult<NetmapRows> {
        netmap::netmap_rows(self, node_id).await
    }

    async fn node_versions(&self, node_id: &str) -> StoreResult<NodeVersions> {
        netmap::node_versions(self, node_id).await
    }

    async fn segment_rows(&self, segment_id: &str) -> StoreResult<SegmentRows> {
        netmap::segment_rows(self, segment_id).await
    }

    async fn announce(&self, touched: &Touched) {
        dialect::announce(self, touched).await;
    }

    async fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        role: &str,
        description: &str,
        now: i64,
    ) -> StoreResult<()> {
        keys::create_api_key(self, id, hash, role, description, now).await
    }
}
