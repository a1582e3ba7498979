//! Which peers every member of a segment may reach, resolved once for the whole segment
//! so that asking for one member costs the size of its answer, not a scan of the segment.

use crate::compile::MemberIndex;
use crate::model::{Action, Member, Policy, Selector};

/// The peers one member may exchange any traffic with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every other member.
    All,
    /// Only these members (indexes into the segment's members, ascending; never itself).
    Some(Vec<usize>),
}

/// One side of a rule seen from the member it matches: whom the other side selects.
#[derive(Debug)]
enum Remote {
    Any,
    Set(Vec<usize>),
}

/// A policy resolved against a segment's members: for each member, the rule sides it
/// matches. Build it once per segment version; [`Reachability::reach`] then answers
/// the same as [`crate::reachable_peers`] without looking at the other members.
#[derive(Debug)]
pub struct Reachability {
    members: usize,
    allow_all: bool,
    remotes: Vec<Remote>,
    /// For each member, indexes into `remotes` of the rule sides it is on.
    links: Vec<Vec<u32>>,
}

impl Reachability {
    /// Resolves `policy` against `members` (the whole segment): linear in the members
    /// and the rules.
    #[must_use]
    pub fn new(policy: &Policy, members: &[Member]) -> Self {
        let mut r = Reachability {
            members: members.len(),
            allow_all: policy.default == Action::Allow,
            remotes: Vec::new(),
            links: vec![Vec::new(); members.len()],
        };
        if r.allow_all {
            return r;
        }
        let index = MemberIndex::new(members);
        for rule in policy.rules.iter().filter(|r| !r.ports.is_empty()) {
            for (local, remote) in [(&rule.from, &rule.to), (&rule.to, &rule.from)] {
                let k = u32::try_from(r.remotes.len()).unwrap_or(u32::MAX);
                r.remotes.push(match remote {
                    Selector::Any => Remote::Any,
                    other => Remote::Set(index.candidates(other)),
                });
                for i in index.candidates(local) {
                    r.links[i].push(k);
                }
            }
        }
        r
    }

    /// The peers member `i` may reach.
    #[must_use]
    pub fn reach(&self, i: usize) -> Reach {
        if self.allow_all {
            return Reach::All;
        }
        let mut found = Vec::new();
        for &k in self.links.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            match self.remotes.get(k as usize) {
                Some(Remote::Any) => return Reach::All,
                Some(Remote::Set(s)) => found.extend(s.iter().copied().filter(|&j| j != i)),
                None => {}
            }
        }
        found.sort_unstable();
        found.dedup();
        if found.len() + 1 >= self.members {
            Reach::All
        } else {
            Reach::Some(found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reachable_peers;
    use crate::testutil::member;

    fn policy(json: &str) -> Policy {
        Policy::from_json(json).expect("policy")
    }

    /// Same answer as `reachable_peers` for every member (which names the peers; `All`
    /// stands for every other member).
    fn check(p: &Policy, members: &[Member]) {
        let r = Reachability::new(p, members);
        for (i, m) in members.iter().enumerate() {
            let want = reachable_peers(p, m, members);
            let got: std::collections::BTreeSet<String> = match r.reach(i) {
                Reach::All => members
                    .iter()
                    .filter(|o| o.name != m.name)
                    .map(|o| o.name.clone())
                    .collect(),
                Reach::Some(ix) => ix.iter().map(|&j| members[j].name.clone()).collect(),
            };
            assert_eq!(got, want, "member {}", m.name);
        }
    }

    fn segment() -> Vec<Member> {
        vec![
            member("web-1", "100.64.0.1", &[("app", "web")]),
            member("web-2", "100.64.0.2", &[("app", "web")]),
            member("db-1", "100.64.0.3", &[("app", "db"), ("tier", "gold")]),
            member("db-2", "100.64.0.4", &[("app", "db")]),
            member("cache", "100.64.0.9", &[("app", "cache")]),
        ]
    }

    #[test]
    fn allow_default_reaches_everyone() {
        let p = policy(r#"{"default":"allow","rules":[]}"#);
        assert_eq!(Reachability::new(&p, &segment()).reach(0), Reach::All);
        check(&p, &segment());
    }

    #[test]
    fn deny_rules_match_the_per_member_answer() {
        for json in [
            r#"{"default":"deny","rules":[{"name":"a","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"db"}},"ports":["tcp/5432"]}]}"#,
            r#"{"default":"deny","rules":[{"name":"a","from":{"member":"cache"},"to":"*","ports":["any"]}]}"#,
            r#"{"default":"deny","rules":[{"name":"a","from":{"cidr":"100.64.0.0/30"},"to":{"labels":{"app":"db","tier":"gold"}},"ports":["icmp"]},{"name":"b","from":{"labels":{"app":"db"}},"to":{"labels":{"app":"db"}},"ports":["udp/53"]}]}"#,
            r#"{"default":"deny","rules":[]}"#,
        ] {
            check(&policy(json), &segment());
        }
    }

    #[test]
    fn a_member_reaching_all_others_is_all() {
        let p = policy(
            r#"{"default":"deny","rules":[{"name":"a","from":{"labels":{"app":"web"}},"to":{"cidr":"100.64.0.0/24"},"ports":["any"]}]}"#,
        );
        let r = Reachability::new(&p, &segment());
        assert_eq!(r.reach(0), Reach::All);
        assert_eq!(r.reach(4), Reach::Some(vec![0, 1]));
    }
}
