//! Netmap fan-out: each segment is read and serialized once per version, and every
//! node's answer is assembled from the prepared segments it has members in.
//!
//! A change bumps the versions of the segments it touches; the first long-poll that
//! asks for a segment at its new version reads it (the others wait for that one read),
//! later ones reuse it. Segments a change did not touch keep their prepared view.

pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use self::view::SegmentView;
use crate::store::{NodeRow, NodeVersions, Store, StoreError, StoreResult};

type Slot = (i64, Arc<OnceCell<Arc<SegmentView>>>);

/// Prepared segments by id, each at the newest version asked for.
#[derive(Default)]
pub struct NetmapCache {
    segments: Mutex<HashMap<String, Slot>>,
}

impl NetmapCache {
    /// The segment prepared at `version` or later, read from `store` at most once per version.
    pub async fn segment(
        &self,
        store: &dyn Store,
        segment_id: &str,
        version: i64,
    ) -> StoreResult<Arc<SegmentView>> {
        let cell = {
            let mut map = self.segments.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(segment_id) {
                Some((v, cell)) if *v >= version => cell.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    map.insert(segment_id.to_string(), (version, cell.clone()));
                    cell
                }
            }
        };
        let view = cell
            .get_or_try_init(|| async {
                let rows = store.segment_rows(segment_id).await?;
                Ok::<_, StoreError>(Arc::new(SegmentView::new(rows)))
            })
            .await?;
        Ok(view.clone())
    }

    /// The JSON netmap of `node` made of the segments in `versions`, and its version.
    pub async fn netmap(
        &self,
        store: &dyn Store,
        node: &NodeRow,
        versions: &NodeVersions,
    ) -> StoreResult<(i64, String)> {
        let mut views = Vec::with_capacity(versions.segments.len());
        for (id, v) in &versions.segments {
            match self.segment(store, id, *v).await {
                Ok(view) => views.push(view),
                // Deleted since the versions were read: the next round sees it gone.
                Err(StoreError::NotFound(_)) => self.forget(id),
                Err(e) => return Err(e),
            }
        }
        let version = views
            .iter()
            .map(|v| v.version())
            .chain(std::iter::once(versions.node))
            .max()
            .unwrap_or(0);
        let refs: Vec<&SegmentView> = views.iter().map(Arc::as_ref).collect();
        Ok((version, view::render(node, version, &refs)))
    }

    /// Drops a segment that no longer exists.
    fn forget(&self, segment_id: &str) {
        let mut map = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(segment_id);
    }
}

#[cfg(test)]
mod tests;
