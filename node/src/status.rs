//! `segwire-node status`: what the agent runs, as JSON for scripts and a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use segwire_tunnel::{DropCounts, PeerStatus};

use crate::member::MemberStats;
use crate::reconcile::MemberConfig;
use crate::state::LocalMember;
pub use segwire_control::status::{AgentStatus, FirewallView, MemberView, PeerView};

fn drops_map(d: &DropCounts) -> BTreeMap<String, u64> {
    d.nonzero()
        .map(|(r, n)| (r.as_str().to_owned(), n))
        .collect()
}

/// The view of a local member: from its running config and data path when it runs, from
/// the saved state alone when it does not.
#[must_use]
pub fn member_view(
    local: &LocalMember,
    config: Option<&MemberConfig>,
    stats: Option<&MemberStats>,
) -> MemberView {
    let mut drops = BTreeMap::new();
    let mut peers = Vec::new();
    if let Some(s) = stats {
        drops = drops_map(&s.router.drops);
        if s.tun_write_errors > 0 {
            drops.insert("tun_write_error".into(), s.tun_write_errors);
        }
        if s.udp_send_errors > 0 {
            drops.insert("udp_send_error".into(), s.udp_send_errors);
        }
        peers = s
            .router
            .peers
            .iter()
            .map(|p| peer_view(p, config))
            .collect();
    }
    MemberView {
        id: local.id.clone(),
        name: local.name.clone(),
        segment: local.segment.clone(),
        interface: local.interface(),
        workload: local.workload.to_string(),
        address: local.address.map(|a| a.to_string()).unwrap_or_default(),
        address6: config
            .and_then(|c| c.ipv6.map(|(a, _)| a))
            .or(local.address6)
            .map(|a| a.to_string()),
        listen_port: local.listen_port,
        public_key: local.private_key.public_key().to_base64(),
        up: stats.is_some(),
        psk_version: config.map(|c| c.psk_version),
        drops,
        peers,
        wg_socket: None,
        quarantined_until: None,
        policy_version: config.map(|c| c.policy.version),
        firewall: stats.map_or_else(FirewallView::default, |s| FirewallView {
            allowed: s.firewall.allowed,
            denied: s.firewall.denied,
            connections: s.firewall.conntrack_entries,
            evictions: s.firewall.conntrack_evictions,
            cut: s.firewall.conntrack_cut,
            flows_dropped: s.flows_dropped,
        }),
        flows: match (stats, config) {
            (Some(s), Some(c)) => s
                .flows
                .iter()
                .map(|f| crate::flows::to_record(f, c))
                .collect(),
            _ => Vec::new(),
        },
    }
}

fn peer_view(p: &PeerStatus, config: Option<&MemberConfig>) -> PeerView {
    let spec = config.and_then(|c| c.peers.get(&p.public_key));
    PeerView {
        name: spec.map_or_else(|| "?".to_owned(), |s| s.name.clone()),
        node: spec.map_or_else(String::new, |s| s.node.clone()),
        public_key: p.public_key.to_base64(),
        endpoint: p.endpoint.map(|e| e.to_string()),
        allowed_ips: p.allowed_ips.iter().map(ToString::to_string).collect(),
        last_handshake_secs: p.last_handshake_ago.map(|d| d.as_secs()),
        handshakes: p.handshakes,
        rx_bytes: p.traffic.rx_bytes,
        tx_bytes: p.traffic.tx_bytes,
        drops: drops_map(&p.drops),
    }
}

/// Renders the status as aligned tables.
#[must_use]
pub fn render(status: &AgentStatus) -> String {
    let mut out = String::new();
    let coordinator = if status.revoked {
        "REVOKED (re-join with `segwire-node join --force TOKEN`)".to_owned()
    } else if status.coordinator_reachable {
        "reachable".to_owned()
    } else {
        format!(
            "unreachable ({}), serving the saved netmap",
            status
                .coordinator_error
                .as_deref()
                .unwrap_or("not contacted yet")
        )
    };
    let _ = writeln!(
        out,
        "node {} ({})  coordinator {}: {}  netmap v{}",
        status.node, status.node_id, status.coordinator, coordinator, status.netmap_version
    );
    if status.members.is_empty() {
        out.push_str(
            "no members; attach one with `segwire-node attach --segment S --netns NAME`\n",
        );
        return out;
    }
    let mut rows = vec![row(&[
        "SEGMENT",
        "INTERFACE",
        "WORKLOAD",
        "ADDRESS",
        "PORT",
        "STATE",
        "PUBLIC KEY",
    ])];
    for m in &status.members {
        rows.push(vec![
            m.segment.clone(),
            m.interface.clone(),
            m.workload.clone(),
            [
                Some(m.address.as_str()).filter(|a| !a.is_empty()),
                m.address6.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(","),
            m.listen_port.to_string(),
            match (&m.quarantined_until, m.up) {
                (Some(t), _) => format!("quarantined until {t}"),
                (None, true) => "up".to_owned(),
                (None, false) => "down".to_owned(),
            },
            m.public_key.clone(),
        ]);
    }
    out.push_str(&table(&rows));
    for m in &status.members {
        let wg = m
            .wg_socket
            .as_ref()
            .map_or_else(String::new, |s| format!("; `wg show {s}`"));
        let _ = writeln!(
            out,
            "\npeers of {} ({} on {}{wg}):",
            m.name, m.segment, m.workload
        );
        if !m.drops.is_empty() {
            let _ = writeln!(out, "  member drops: {}", show_drops(&m.drops));
        }
        let f = &m.firewall;
        let _ = writeln!(
            out,
            "  policy v{}: {} allowed, {} denied, {} connections tracked, {} evicted, {} cut",
            m.policy_version.unwrap_or(0),
            f.allowed,
            f.denied,
            f.connections,
            f.evictions,
            f.cut
        );
        let mut rows = vec![row(&[
            "PEER",
            "NODE",
            "ENDPOINT",
            "ALLOWED IPS",
            "HANDSHAKE",
            "RX",
            "TX",
            "DROPS",
            "PUBLIC KEY",
        ])];
        for p in &m.peers {
            rows.push(vec![
                p.name.clone(),
                p.node.clone(),
                p.endpoint.clone().unwrap_or_else(|| "-".into()),
                p.allowed_ips.join(","),
                p.last_handshake_secs
                    .map_or_else(|| "never".into(), |s| format!("{s}s ago")),
                bytes(p.rx_bytes),
                bytes(p.tx_bytes),
                show_drops(&p.drops),
                p.public_key.clone(),
            ]);
        }
        if m.peers.is_empty() {
            out.push_str("  (none)\n");
        } else {
            for line in table(&rows).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if !m.flows.is_empty() {
            let _ = writeln!(out, "  flows:");
            let mut rows = vec![row(&["DIR", "VERDICT", "FLOW", "PEER", "RULE", "COUNT"])];
            for fl in &m.flows {
                rows.push(vec![
                    fl.direction.clone(),
                    fl.verdict.clone(),
                    if fl.protocol == "tcp" || fl.protocol == "udp" {
                        format!("{} {} -> {}:{}", fl.protocol, fl.src, fl.dst, fl.dst_port)
                    } else {
                        format!("{} {} -> {}", fl.protocol, fl.src, fl.dst)
                    },
                    fl.peer.clone().unwrap_or_else(|| "-".into()),
                    fl.rule.clone().unwrap_or_else(|| "(default)".into()),
                    fl.count.to_string(),
                ]);
            }
            for line in table(&rows).lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

fn show_drops(d: &BTreeMap<String, u64>) -> String {
    if d.is_empty() {
        return "0".into();
    }
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Left-aligned columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_bytes_read_well() {
        let t = table(&[row(&["A", "BB", "C"]), row(&["long", "x", "y"])]);
        assert_eq!(t, "A     BB  C\nlong  x   y\n");
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(50 * 1024 * 1024), "50.0 MiB");
    }

    #[test]
    fn empty_status_says_what_to_do() {
        let s = AgentStatus {
            node: "a".into(),
            node_id: "n".into(),
            coordinator: "https://x".into(),
            coordinator_reachable: false,
            coordinator_error: None,
            revoked: false,
            netmap_version: 0,
            members: vec![],
        };
        let text = render(&s);
        assert!(text.contains("attach"), "{text}");
    }
}
