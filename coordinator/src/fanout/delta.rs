//! Netmap deltas: what changed for one node between two prepared versions of its
//! segments. The segment-wide part (members added, changed, gone) is computed once per
//! pair of versions; a member whose peers are "everyone" then costs only the changed
//! entries, so a change in a segment of N sends N small answers, not N lists of N.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use segwire_proto::delta::{map_digest, MemberDelta, NetMapDelta};
use segwire_proto::netmap::NetMap;
use serde_json::{Map, Value};

use super::view::{push_open, SegmentView};
use crate::store::NodeRow;

/// Diffs kept per view (one per older version asked from); cleared when full.
const DIFFS_PER_VIEW: usize = 16;

/// Segment diffs into one view, by the older version.
pub type DiffCache = Mutex<HashMap<i64, Arc<SegmentDiff>>>;

/// What changed in a segment's member list between two versions.
#[derive(Debug)]
pub struct SegmentDiff {
    /// Indexes (in the newer view) of the members added or whose peer entry changed.
    changed: Vec<usize>,
    /// Ids of the members of the older view that are gone.
    removed: Vec<String>,
}

impl SegmentDiff {
    fn new(old: &SegmentView, new: &SegmentView) -> Self {
        let changed = (0..new.member_count())
            .filter(|&k| match old.index_of(&new.member(k).id) {
                Some(ok) => old.peer_json(ok) != new.peer_json(k),
                None => true,
            })
            .collect();
        let removed = (0..old.member_count())
            .map(|k| &old.member(k).id)
            .filter(|id| new.index_of(id).is_none())
            .cloned()
            .collect();
        SegmentDiff { changed, removed }
    }
}

/// The diff from `old` to `new`, computed once per pair of versions.
fn segment_diff(old: &SegmentView, new: &SegmentView) -> Arc<SegmentDiff> {
    let mut cache = new.diffs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(d) = cache.get(&old.version()) {
        return d.clone();
    }
    let d = Arc::new(SegmentDiff::new(old, new));
    if cache.len() >= DIFFS_PER_VIEW {
        cache.clear();
    }
    cache.insert(old.version(), d.clone());
    d
}

/// One segment of a node's delta: the view the node's map was made of (`None` when the
/// node had nothing there) and the current one.
pub type Part<'a> = (Option<&'a SegmentView>, &'a SegmentView);

/// The JSON [`NetMapDelta`] from the node's map at `base` (made of the older views) to
/// its map at `version` (made of the newer ones), which names the `coordinators` URLs.
pub fn render_delta(
    node: &NodeRow,
    version: i64,
    base: u64,
    parts: &[Part<'_>],
    coordinators: &[String],
) -> String {
    let mut own: Vec<(Option<&SegmentView>, &SegmentView, usize)> = parts
        .iter()
        .flat_map(|(old, new)| {
            new.members_of(&node.id)
                .iter()
                .map(move |i| (*old, *new, *i))
        })
        .collect();
    own.sort_by_key(|(_, v, i)| v.member(*i).address);
    let top = NetMap {
        version: version as u64,
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        coordinators: coordinators.to_vec(),
        members: Vec::new(),
    };
    let top_json = serde_json::to_string(&top).unwrap_or_default();
    let mut head = object(&top);
    head.remove("version");
    head.remove("members");
    let mut members = String::new();
    let mut digests = Vec::with_capacity(own.len());
    for (k, (old, new, i)) in own.iter().enumerate() {
        if k > 0 {
            members.push(',');
        }
        digests.push(write_member_delta(*old, new, *i, &mut members));
    }
    let delta = NetMapDelta {
        version: version as u64,
        base,
        digest: map_digest(&top_json, &digests),
        head,
        members: Vec::new(),
    };
    let mut out = String::with_capacity(members.len() + 256);
    push_open(&mut out, &delta, "\"members\":[]}");
    out.push_str(&members);
    out.push_str("]}");
    out
}

/// Appends the delta of member `i` of `new` since `old` to `out`; returns the member's
/// digest in the new version.
fn write_member_delta(
    old: Option<&SegmentView>,
    new: &SegmentView,
    i: usize,
    out: &mut String,
) -> [u8; 32] {
    let id = &new.member(i).id;
    let head = new.head(i);
    let head_json = serde_json::to_string(&head).unwrap_or_default();
    let mut fields = object(&head);
    fields.remove("peers");
    let before = old.and_then(|o| Some((o, o.index_of(id)?)));
    let set = match before {
        None => fields,
        Some((o, j)) => {
            let mut was = object(&o.head(j));
            was.remove("peers");
            changed_fields(was, fields)
        }
    };
    let (removed, changed) = match before {
        None => (Vec::new(), new.peer_indexes(i)),
        Some((o, j)) if o.is_plain(j) && new.is_plain(i) => {
            let d = segment_diff(o, new);
            let changed = d.changed.iter().copied().filter(|&k| k != i).collect();
            (d.removed.clone(), changed)
        }
        Some((o, j)) => peers_between(o, j, new, i),
    };
    let delta = MemberDelta {
        id: id.clone(),
        set,
        peers_removed: removed,
        peers_set: Vec::new(),
    };
    push_open(out, &delta, "\"peers_set\":[]}");
    new.push_peers(&changed, out);
    out.push_str("]}");
    new.digest(i, &head_json)
}

/// The peers gone from member `j` of `old` and those added or changed for member `i` of
/// `new` (the same member), comparing their whole lists: for members whose list the
/// policy or a quarantine limits.
fn peers_between(
    old: &SegmentView,
    j: usize,
    new: &SegmentView,
    i: usize,
) -> (Vec<String>, Vec<usize>) {
    let had: HashSet<&str> = old
        .peer_indexes(j)
        .into_iter()
        .map(|k| old.member(k).id.as_str())
        .collect();
    let now = new.peer_indexes(i);
    let has: HashSet<&str> = now.iter().map(|&k| new.member(k).id.as_str()).collect();
    let mut removed: Vec<String> = had
        .iter()
        .filter(|id| !has.contains(*id))
        .map(|id| id.to_string())
        .collect();
    removed.sort();
    let changed = now
        .into_iter()
        .filter(|&k| {
            let pid = new.member(k).id.as_str();
            match old.index_of(pid) {
                Some(ok) if had.contains(pid) => old.peer_json(ok) != new.peer_json(k),
                _ => true,
            }
        })
        .collect();
    (removed, changed)
}

/// The fields of `now` that differ from `was`, and `null` for those gone.
fn changed_fields(was: Map<String, Value>, now: Map<String, Value>) -> Map<String, Value> {
    let mut set = Map::new();
    for k in was.keys() {
        if !now.contains_key(k) {
            set.insert(k.clone(), Value::Null);
        }
    }
    for (k, v) in now {
        if was.get(&k) != Some(&v) {
            set.insert(k, v);
        }
    }
    set
}

fn object<T: serde::Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}
