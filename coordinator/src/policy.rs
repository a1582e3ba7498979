//! Segment policies on the coordinator: the effective policy of a segment, and which
//! peers each member may exchange any traffic with (the rest stay out of its netmap).

use segwire_policy::{Action, Member, Policy};
use segwire_proto::api::DefaultAction;

use crate::store::{MemberRow, SegmentRow};

/// The policy in force: the stored one, or the segment default with no rules.
pub fn effective(seg: &SegmentRow) -> Policy {
    seg.policy
        .as_deref()
        .and_then(|body| match Policy::from_json(body) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(segment = %seg.name, error = %e, "stored policy does not parse; applying the segment default");
                None
            }
        })
        .unwrap_or_else(|| Policy {
            quarantine: None,
            default: action(seg.default),
            rules: Vec::new(),
        })
}

/// The policy as agents get it in netmaps: what their firewalls enforce. The
/// `"quarantine"` block is the coordinator's business (agents only report detections), and
/// leaving it out keeps the netmap readable by agents that predate it.
pub fn for_agents(p: &Policy) -> serde_json::Value {
    let enforced = Policy {
        quarantine: None,
        ..p.clone()
    };
    serde_json::to_value(&enforced).unwrap_or_default()
}

/// The policy's default as the API's type.
pub fn default_of(p: &Policy) -> DefaultAction {
    match p.default {
        Action::Allow => DefaultAction::Allow,
        Action::Deny => DefaultAction::Deny,
    }
}

fn action(d: DefaultAction) -> Action {
    match d {
        DefaultAction::Allow => Action::Allow,
        DefaultAction::Deny => Action::Deny,
    }
}

/// A member row as the policy crate sees it.
pub fn member(m: &MemberRow) -> Member {
    Member {
        name: m.name.clone(),
        ip: m.address,
        ip6: m.address6,
        labels: m.labels.clone(),
    }
}
