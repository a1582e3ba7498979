//! Typed methods for external members (`/v1/peers`).

use reqwest::Method;
use segwire_proto::peer::{AddPeer, ExternalPeer, PeerConfig};

use crate::requests::enc;
use crate::{Client, ClientError};

const NO_BODY: Option<&()> = None;

fn segment_query(segment: Option<&str>) -> String {
    segment.map_or_else(String::new, |s| format!("?segment={}", enc(s)))
}

impl Client {
    /// `POST /v1/peers`: the new device's configuration (carries the segment PSK).
    pub async fn add_peer(&self, req: &AddPeer) -> Result<PeerConfig, ClientError> {
        self.call_json(Method::POST, "/v1/peers", Some(req)).await
    }

    /// `GET /v1/peers[?segment=S]`.
    pub async fn list_peers(
        &self,
        segment: Option<&str>,
    ) -> Result<Vec<ExternalPeer>, ClientError> {
        let path = format!("/v1/peers{}", segment_query(segment));
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `GET /v1/peers/{name}/config[?segment=S]` (carries the segment PSK).
    pub async fn peer_config(
        &self,
        name: &str,
        segment: Option<&str>,
    ) -> Result<PeerConfig, ClientError> {
        let path = format!("/v1/peers/{}/config{}", enc(name), segment_query(segment));
        self.call_json(Method::GET, &path, NO_BODY).await
    }

    /// `DELETE /v1/peers/{name}[?segment=S]`.
    pub async fn remove_peer(&self, name: &str, segment: Option<&str>) -> Result<(), ClientError> {
        let path = format!("/v1/peers/{}{}", enc(name), segment_query(segment));
        self.call::<(), serde_json::Value>(Method::DELETE, &path, NO_BODY)
            .await
            .map(|_| ())
    }
}
