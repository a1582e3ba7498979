//! Compiling a policy for one member into lookup tables, and which peers a member can reach.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;

use crate::classify::{addr_key, CompiledPolicy, DirTable, PortTable, RangeMap, Segment, NO_RULE};
use crate::model::{Action, Member, Policy, PortSpec, Selector};

impl CompiledPolicy {
    /// Compiles `policy` for `local`, resolving label and member selectors against `members`
    /// (the segment's members; `local` may be among them). Never fails: a hand-built policy
    /// that [`Policy::validate`] would reject still compiles to its plain meaning.
    pub fn compile(policy: &Policy, local: &Member, members: &[Member]) -> CompiledPolicy {
        let index = MemberIndex::new(members);
        CompiledPolicy {
            local_name: local.name.clone(),
            local_ip: local.ip,
            local_ip6: local.ip6,
            default: policy.default,
            rule_names: policy.rules.iter().map(|r| r.name.clone()).collect(),
            egress: dir_table(policy, local, &index, |r| (&r.from, &r.to)),
            ingress: dir_table(policy, local, &index, |r| (&r.to, &r.from)),
        }
    }
}

/// Names of the peers `member` may exchange any traffic with, in either direction.
///
/// With `default: allow` that is every other member. `member` itself is never included.
pub fn reachable_peers(policy: &Policy, member: &Member, members: &[Member]) -> BTreeSet<String> {
    let others = || members.iter().filter(|m| m.name != member.name);
    if policy.default == Action::Allow {
        return others().map(|m| m.name.clone()).collect();
    }
    let index = MemberIndex::new(members);
    let mut found = vec![false; members.len()];
    for rule in policy.rules.iter().filter(|r| !r.ports.is_empty()) {
        for (local_side, remote_side) in [(&rule.from, &rule.to), (&rule.to, &rule.from)] {
            if local_side.matches_member(member) {
                if *remote_side == Selector::Any {
                    return others().map(|m| m.name.clone()).collect();
                }
                for i in index.candidates(remote_side) {
                    found[i] = true;
                }
            }
        }
    }
    members
        .iter()
        .zip(found)
        .filter(|(m, hit)| *hit && m.name != member.name)
        .map(|(m, _)| m.name.clone())
        .collect()
}

/// Members indexed by name and by label, to resolve selectors without scanning every rule
/// against every member.
pub(crate) struct MemberIndex<'a> {
    members: &'a [Member],
    by_name: HashMap<&'a str, Vec<usize>>,
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> MemberIndex<'a> {
    pub(crate) fn new(members: &'a [Member]) -> Self {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, m) in members.iter().enumerate() {
            by_name.entry(m.name.as_str()).or_default().push(i);
            for (k, v) in &m.labels {
                by_label
                    .entry((k.as_str(), v.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        MemberIndex {
            members,
            by_name,
            by_label,
        }
    }

    /// Indices of the members `sel` selects.
    pub(crate) fn candidates(&self, sel: &Selector) -> Vec<usize> {
        let pick = |ids: Option<&Vec<usize>>| ids.cloned().unwrap_or_default();
        match sel {
            Selector::Any => (0..self.members.len()).collect(),
            Selector::Member(name) => pick(self.by_name.get(name.as_str())),
            Selector::Labels(labels) => {
                // Start from the rarest label, then check the rest.
                let smallest = labels
                    .iter()
                    .map(|(k, v)| self.by_label.get(&(k.as_str(), v.as_str())))
                    .min_by_key(|ids| ids.map_or(0, Vec::len));
                match smallest {
                    Some(ids) => pick(ids)
                        .into_iter()
                        .filter(|&i| sel.matches_member(&self.members[i]))
                        .collect(),
                    None => (0..self.members.len()).collect(), // no labels: all match
                }
            }
            Selector::Cidr(_) => (0..self.members.len())
                .filter(|&i| sel.matches_member(&self.members[i]))
                .collect(),
        }
    }
}

type Sides = for<'r> fn(&'r crate::model::Rule) -> (&'r Selector, &'r Selector);

fn dir_table(policy: &Policy, local: &Member, index: &MemberIndex<'_>, sides: Sides) -> DirTable {
    let mut wildcard: Vec<(PortSpec, u32)> = Vec::new();
    let mut exact: BTreeMap<u128, Vec<(PortSpec, u32)>> = BTreeMap::new();
    let mut cidrs: Vec<(u128, u128, u32)> = Vec::new();
    for (idx, rule) in policy.rules.iter().enumerate() {
        let idx = u32::try_from(idx).unwrap_or(NO_RULE - 1);
        let (local_side, remote_side) = sides(rule);
        if !local_side.matches_member(local) {
            continue;
        }
        let specs = rule.ports.iter().map(|&p| (p, idx));
        match remote_side {
            Selector::Any => wildcard.extend(specs),
            Selector::Cidr(net) => {
                cidrs.extend(key_ranges(*net).into_iter().map(|(a, b)| (a, b, idx)));
            }
            Selector::Labels(_) | Selector::Member(_) => {
                for i in index.candidates(remote_side) {
                    for addr in index.members[i].addrs() {
                        exact
                            .entry(addr_key(addr))
                            .or_default()
                            .extend(specs.clone());
                    }
                }
            }
        }
    }
    let (exact_ips, exact_tables) = exact
        .into_iter()
        .map(|(ip, s)| (ip, port_table(&s)))
        .unzip();
    let (cidr_starts, cidr_ends, cidr_tables) = cidr_intervals(policy, &cidrs);
    DirTable {
        exact_ips,
        exact_tables,
        cidr_starts,
        cidr_ends,
        cidr_tables,
        wildcard: port_table(&wildcard),
    }
}

/// The key intervals (inclusive) a CIDR covers. An IPv6 network that contains the
/// IPv4-mapped block leaves it out (IPv6 packets never carry those addresses, and IPv4
/// addresses are keyed there); one inside it covers nothing.
fn key_ranges(net: IpNet) -> Vec<(u128, u128)> {
    let (start, end) = (addr_key(net.network()), addr_key(net.broadcast()));
    if net.addr().is_ipv4() {
        return vec![(start, end)];
    }
    let mapped_start = addr_key(std::net::Ipv4Addr::UNSPECIFIED.into());
    let mapped_end = addr_key(std::net::Ipv4Addr::BROADCAST.into());
    if end < mapped_start || start > mapped_end {
        return vec![(start, end)];
    }
    let mut out = Vec::with_capacity(2);
    if start < mapped_start {
        out.push((start, mapped_start - 1));
    }
    if end > mapped_end {
        out.push((mapped_end + 1, end));
    }
    out
}

/// Splits possibly overlapping CIDRs into disjoint intervals, each with a table of every
/// rule covering it.
fn cidr_intervals(
    policy: &Policy,
    cidrs: &[(u128, u128, u32)],
) -> (Vec<u128>, Vec<u128>, Vec<PortTable>) {
    // (position, rule, is_start); an interval [a, b] starts at a and ends before b + 1;
    // an interval reaching the last key has no end event.
    let mut events: Vec<(u128, u32, bool)> = Vec::with_capacity(cidrs.len() * 2);
    for &(start, end, rule) in cidrs {
        events.push((start, rule, true));
        if let Some(after) = end.checked_add(1) {
            events.push((after, rule, false));
        }
    }
    events.sort_unstable();
    let (mut starts, mut ends, mut tables) = (Vec::new(), Vec::new(), Vec::new());
    let mut active: BTreeMap<u32, usize> = BTreeMap::new();
    let mut i = 0;
    while i < events.len() {
        let pos = events[i].0;
        while i < events.len() && events[i].0 == pos {
            let (_, rule, is_start) = events[i];
            if is_start {
                *active.entry(rule).or_default() += 1;
            } else if let Some(n) = active.get_mut(&rule) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&rule);
                }
            }
            i += 1;
        }
        if !active.is_empty() {
            // The next event is past `pos`, so `next - 1` cannot underflow; with no next
            // event the interval runs to the last key.
            let end = events.get(i).map_or(u128::MAX, |&(next, _, _)| next - 1);
            let specs: Vec<(PortSpec, u32)> = active
                .keys()
                .flat_map(|&r| policy.rules[r as usize].ports.iter().map(move |&p| (p, r)))
                .collect();
            starts.push(pos);
            ends.push(end);
            tables.push(port_table(&specs));
        }
    }
    (starts, ends, tables)
}

fn port_table(specs: &[(PortSpec, u32)]) -> PortTable {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    let mut table = PortTable::default();
    for &(spec, rule) in specs {
        match spec {
            PortSpec::Tcp(r) => tcp.push((r.start(), r.end(), rule)),
            PortSpec::Udp(r) => udp.push((r.start(), r.end(), rule)),
            PortSpec::Icmp => table.icmp = table.icmp.min(rule),
            PortSpec::Any => {
                tcp.push((0, u16::MAX, rule));
                udp.push((0, u16::MAX, rule));
                table.icmp = table.icmp.min(rule);
                table.other = table.other.min(rule);
            }
        }
    }
    table.tcp = range_map(&tcp);
    table.udp = range_map(&udp);
    table
}

/// Disjoint segments with, for each, the smallest rule covering it.
fn range_map(items: &[(u16, u16, u32)]) -> RangeMap {
    let mut events: Vec<(u32, u32, bool)> = Vec::with_capacity(items.len() * 2);
    for &(start, end, rule) in items {
        events.push((u32::from(start), rule, true));
        events.push((u32::from(end) + 1, rule, false));
    }
    events.sort_unstable();
    let mut segments: Vec<Segment> = Vec::new();
    let mut active: BTreeMap<u32, usize> = BTreeMap::new();
    let mut i = 0;
    while i < events.len() {
        let pos = events[i].0;
        while i < events.len() && events[i].0 == pos {
            let (_, rule, is_start) = events[i];
            if is_start {
                *active.entry(rule).or_default() += 1;
            } else if let Some(n) = active.get_mut(&rule) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&rule);
                }
            }
            i += 1;
        }
        let (Some(&(next, _, _)), Some((&rule, _))) = (events.get(i), active.first_key_value())
        else {
            continue;
        };
        // Ports are < 2^16 and `next` <= 2^16, so both fit in u16.
        let start = u16::try_from(pos).unwrap_or(u16::MAX);
        let end = u16::try_from(next - 1).unwrap_or(u16::MAX);
        match segments.last_mut() {
            Some(last) if last.rule == rule && u32::from(last.end) + 1 == pos => last.end = end,
            _ => segments.push(Segment { start, end, rule }),
        }
    }
    RangeMap { segments }
}

#[cfg(test)]
mod tests;
