//! The policy as a reachability matrix: for every ordered pair of members, the ports on
//! which the first may open connections to the second, and the rules that say so. Pure;
//! the web console draws it and previews it for a policy not yet saved.

use segwire_policy::{Action, Member, Policy};

/// What row member `from` may open to column member `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Cell {
    /// Ports as written in the policy (`tcp/5432`, `icmp`, `any`), each once, in rule order.
    pub ports: Vec<String>,
    /// Names of the rules that allow it, in file order.
    pub rules: Vec<String>,
    /// True when the segment default (`allow`) lets everything through anyway.
    pub by_default: bool,
}

#[cfg(test)]
impl Cell {
    /// True when no connection at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && !self.by_default
    }
}

/// Rows reach columns: `cells[i][j]` is what `members[i]` may open to `members[j]`; the
/// diagonal stays empty (a member talking to itself never crosses the overlay).
pub fn reachability(policy: &Policy, members: &[Member]) -> Vec<Vec<Cell>> {
    members
        .iter()
        .enumerate()
        .map(|(i, from)| {
            members
                .iter()
                .enumerate()
                .map(|(j, to)| {
                    if i == j {
                        Cell::default()
                    } else {
                        cell(policy, from, to)
                    }
                })
                .collect()
        })
        .collect()
}

fn cell(policy: &Policy, from: &Member, to: &Member) -> Cell {
    let mut c = Cell {
        by_default: policy.default == Action::Allow,
        ..Cell::default()
    };
    for rule in &policy.rules {
        if rule.ports.is_empty() || !rule.from.matches_member(from) || !rule.to.matches_member(to) {
            continue;
        }
        c.rules.push(rule.name.clone());
        for p in &rule.ports {
            let text = p.to_string();
            if !c.ports.contains(&text) {
                c.ports.push(text);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, ip: &str, app: &str) -> Member {
        Member {
            name: name.into(),
            ip: ip.parse().ok(),
            ip6: None,
            labels: [("app".to_string(), app.to_string())].into(),
        }
    }

    fn members() -> Vec<Member> {
        vec![
            member("web-1", "100.64.1.2", "web"),
            member("db-1", "100.64.1.3", "db"),
            member("cache", "100.64.1.4", "cache"),
        ]
    }

    #[test]
    fn rows_reach_columns_on_the_rules_ports() -> Result<(), segwire_policy::PolicyError> {
        let p = Policy::from_json(
            r#"{"default":"deny","rules":[
              {"name":"web-db","from":{"labels":{"app":"web"}},"to":{"labels":{"app":"db"}},"ports":["tcp/5432","tcp/5432"]},
              {"name":"ping","from":"*","to":{"member":"db-1"},"ports":["icmp"]},
              {"name":"net","from":{"cidr":"100.64.1.4/32"},"to":{"cidr":"100.64.1.2/32"},"ports":["udp/53-54"]}
            ]}"#,
        )?;
        let m = reachability(&p, &members());
        assert_eq!(m[0][1].ports, ["tcp/5432", "icmp"]);
        assert_eq!(m[0][1].rules, ["web-db", "ping"]);
        assert!(m[1][0].is_empty(), "db does not reach web: {:?}", m[1][0]);
        assert_eq!(m[2][1].ports, ["icmp"]);
        assert_eq!(m[2][0].ports, ["udp/53-54"]);
        assert!(m[0][0].is_empty() && m[1][1].is_empty());
        Ok(())
    }

    #[test]
    fn default_allow_fills_every_cell_but_the_diagonal() {
        let p = Policy {
            quarantine: None,
            default: Action::Allow,
            rules: vec![],
        };
        let m = reachability(&p, &members());
        for (i, row) in m.iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                assert_eq!(c.is_empty(), i == j, "{i},{j}");
            }
        }
    }
}
