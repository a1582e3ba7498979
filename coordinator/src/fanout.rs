//! Netmap fan-out: each segment is read and serialized once per version, and every
//! node's answer is assembled from the prepared segments it has members in.
//!
//! A change bumps the versions of the segments it touches; the first long-poll that
//! asks for a segment at its new version reads it (the others wait for that one read),
//! later ones reuse it. Segments a change did not touch keep their prepared view.
//!
//! The last [`HISTORY_VERSIONS`] views of each segment (at most [`HISTORY_BYTES`] of
//! them, but always two) stay in a history, so a node that names the version it holds
//! gets a delta from it ([`delta`]); older than that, it gets a full map.

pub mod delta;
pub mod view;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use self::view::SegmentView;
use crate::store::{NodeRow, NodeVersions, Store, StoreError, StoreResult};

type Slot = (i64, Arc<OnceCell<Arc<SegmentView>>>);

/// Versions of each segment kept for deltas.
pub const HISTORY_VERSIONS: usize = 8;
/// Bytes of prepared views kept per segment for deltas (the two newest are always kept).
pub const HISTORY_BYTES: usize = 64 << 20;

/// Prepared segments by id, each at the newest version asked for.
#[derive(Default)]
pub struct NetmapCache {
    segments: Mutex<HashMap<String, Slot>>,
    /// The last views of each segment, oldest first.
    history: Mutex<HashMap<String, VecDeque<Arc<SegmentView>>>>,
}

/// A node's answer as JSON, whole or as a delta.
#[derive(Debug)]
pub enum Answer {
    /// A full [`segwire_proto::netmap::NetMap`].
    Full(String),
    /// A [`segwire_proto::delta::NetMapDelta`].
    Delta(String),
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
                let view = Arc::new(SegmentView::new(rows));
                self.remember(segment_id, &view);
                Ok::<_, StoreError>(view)
            })
            .await?;
        Ok(view.clone())
    }

    /// Adds a newly prepared view to its segment's history.
    fn remember(&self, segment_id: &str, view: &Arc<SegmentView>) {
        let mut all = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let h = all.entry(segment_id.to_string()).or_default();
        if h.back().is_some_and(|b| b.version() >= view.version()) {
            return;
        }
        h.push_back(view.clone());
        let mut bytes: usize = h.iter().map(|v| v.weight()).sum();
        while h.len() > 2 && (h.len() > HISTORY_VERSIONS || bytes > HISTORY_BYTES) {
            if let Some(old) = h.pop_front() {
                bytes -= old.weight();
            }
        }
    }

    /// The newest remembered view of the segment at `version` or before.
    fn view_at(&self, segment_id: &str, version: u64) -> Option<Arc<SegmentView>> {
        let all = self.history.lock().unwrap_or_else(|p| p.into_inner());
        all.get(segment_id)?
            .iter()
            .rev()
            .find(|v| v.version() as u64 <= version)
            .cloned()
    }

    /// `node`'s answer: a delta from its map at `since` when asked for (`since` given)
    /// and every segment's view at that version is remembered, else its full map; either
    /// names the `coordinators` URLs.
    pub async fn answer(
        &self,
        store: &dyn Store,
        node: &NodeRow,
        versions: &NodeVersions,
        since: Option<u64>,
        coordinators: &[String],
    ) -> StoreResult<Answer> {
        let (version, views) = self.views(store, versions).await?;
        let refs: Vec<&SegmentView> = views.iter().map(|(_, v)| v.as_ref()).collect();
        if let Some(base) = since.filter(|&b| b > 0 && b < version as u64) {
            let olds: Option<Vec<_>> = views
                .iter()
                .map(|(id, v)| match v.version() as u64 <= base {
                    true => Some(v.clone()),
                    false => self.view_at(id, base),
                })
                .collect();
            if let Some(olds) = olds {
                let parts: Vec<delta::Part<'_>> = olds
                    .iter()
                    .zip(&refs)
                    .map(|(o, n)| (Some(o.as_ref()), *n))
                    .collect();
                return Ok(Answer::Delta(delta::render_delta(
                    node,
                    version,
                    base,
                    &parts,
                    coordinators,
                )));
            }
        }
        Ok(Answer::Full(view::render(
            node,
            version,
            &refs,
            coordinators,
        )))
    }

    /// The prepared segments of `versions` (by id) and the netmap version they make.
    async fn views(
        &self,
        store: &dyn Store,
        versions: &NodeVersions,
    ) -> StoreResult<(i64, Vec<(String, Arc<SegmentView>)>)> {
        let mut views = Vec::with_capacity(versions.segments.len());
        for (id, v) in &versions.segments {
            match self.segment(store, id, *v).await {
                Ok(view) => views.push((id.clone(), view)),
                // Deleted since the versions were read: the next round sees it gone.
                Err(StoreError::NotFound(_)) => self.forget(id),
                Err(e) => return Err(e),
            }
        }
        let version = views
            .iter()
            .map(|(_, v)| v.version())
            .chain(std::iter::once(versions.node))
            .max()
            .unwrap_or(0);
        Ok((version, views))
    }

    /// Drops a segment that no longer exists.
    fn forget(&self, segment_id: &str) {
        let mut map = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(segment_id);
        drop(map);
        let mut all = self.history.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(segment_id);
    }
}

#[cfg(test)]
mod tests;
