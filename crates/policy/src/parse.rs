//! Validation of a policy document (as a JSON value) into the typed [`Policy`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{FieldRef, PolicyError, Problem};
use crate::model::{Action, Policy, PortRange, PortSpec, Rule, Selector};

const POLICY_FIELDS: &str = "default, rules, quarantine";
const RULE_FIELDS: &str = "name, from, to, ports";

/// Validates a JSON value into a policy; the first problem found is returned.
pub(crate) fn policy_from_value(value: &Value) -> Result<Policy, PolicyError> {
    let top = |field: FieldRef, problem: Problem| PolicyError::Policy { field, problem };
    let obj = value.as_object().ok_or_else(|| {
        top(
            FieldRef::new("document"),
            Problem::WrongType {
                expected: "an object",
            },
        )
    })?;
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "default" | "rules" | "quarantine"))
    {
        return Err(top(
            FieldRef::new(key.clone()),
            Problem::UnknownField {
                expected: POLICY_FIELDS,
            },
        ));
    }
    let default = match obj.get("default") {
        None => return Err(top(FieldRef::new("default"), Problem::Missing)),
        Some(Value::String(s)) if s == "allow" => Action::Allow,
        Some(Value::String(s)) if s == "deny" => Action::Deny,
        Some(Value::String(s)) => {
            return Err(top(
                FieldRef::with_value("default", s.clone()),
                Problem::BadDefault,
            ))
        }
        Some(_) => return Err(top(FieldRef::new("default"), Problem::BadDefault)),
    };
    let items: &[Value] = match obj.get("rules") {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(top(
                FieldRef::new("rules"),
                Problem::WrongType {
                    expected: "an array",
                },
            ))
        }
    };
    let mut rules = Vec::with_capacity(items.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let rule = rule_from_value(index, item)?;
        if let Some(&first) = seen.get(rule.name.as_str()) {
            return Err(PolicyError::Rule {
                index,
                name: Some(rule.name.clone()),
                field: FieldRef::new("name"),
                problem: Problem::DuplicateName { first },
            });
        }
        // `items` outlives `seen`; borrow the name from the JSON value.
        if let Some(name) = item.get("name").and_then(Value::as_str) {
            seen.insert(name, index);
        }
        rules.push(rule);
    }
    let quarantine = obj
        .get("quarantine")
        .map(crate::quarantine::from_value)
        .transpose()?;
    Ok(Policy {
        default,
        rules,
        quarantine,
    })
}

fn rule_from_value(index: usize, value: &Value) -> Result<Rule, PolicyError> {
    let name_hint = value.get("name").and_then(Value::as_str).map(str::to_owned);
    let err = |field: FieldRef, problem: Problem| PolicyError::Rule {
        index,
        name: name_hint.clone().filter(|n| !n.trim().is_empty()),
        field,
        problem,
    };
    let obj = value.as_object().ok_or_else(|| {
        err(
            FieldRef::new("rule"),
            Problem::WrongType {
                expected: "an object",
            },
        )
    })?;
    let name = match obj.get("name") {
        None => return Err(err(FieldRef::new("name"), Problem::Missing)),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(err(FieldRef::new("name"), Problem::Empty))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(err(
                FieldRef::new("name"),
                Problem::WrongType {
                    expected: "a string",
                },
            ))
        }
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "from" | "to" | "ports"))
    {
        return Err(err(
            FieldRef::new(key.clone()),
            Problem::UnknownField {
                expected: RULE_FIELDS,
            },
        ));
    }
    let from = selector(obj, "from").map_err(|(f, p)| err(f, p))?;
    let to = selector(obj, "to").map_err(|(f, p)| err(f, p))?;
    let ports = ports(obj).map_err(|(f, p)| err(f, p))?;
    Ok(Rule {
        name,
        from,
        to,
        ports,
    })
}

type FieldResult<T> = Result<T, (FieldRef, Problem)>;

fn selector(obj: &Map<String, Value>, side: &'static str) -> FieldResult<Selector> {
    let value = obj
        .get(side)
        .ok_or((FieldRef::new(side), Problem::Missing))?;
    let map = match value {
        Value::String(s) if s == "*" => return Ok(Selector::Any),
        Value::Object(map) if map.len() == 1 => map,
        _ => return Err((FieldRef::new(side), Problem::BadSelector)),
    };
    let (kind, inner) = map
        .iter()
        .next()
        .ok_or((FieldRef::new(side), Problem::BadSelector))?;
    let path = format!("{side}.{kind}");
    match kind.as_str() {
        "labels" => labels(&path, inner).map(Selector::Labels),
        "cidr" => {
            let text = inner.as_str().ok_or_else(|| {
                (
                    FieldRef::new(path.clone()),
                    Problem::WrongType {
                        expected: "a string",
                    },
                )
            })?;
            cidr(text)
                .map(Selector::Cidr)
                .map_err(|p| (FieldRef::with_value(path, text), p))
        }
        "member" => match inner {
            Value::String(s) if s.trim().is_empty() => Err((FieldRef::new(path), Problem::Empty)),
            Value::String(s) => Ok(Selector::Member(s.clone())),
            _ => Err((
                FieldRef::new(path),
                Problem::WrongType {
                    expected: "a string",
                },
            )),
        },
        _ => Err((FieldRef::new(side), Problem::BadSelector)),
    }
}

fn labels(path: &str, value: &Value) -> FieldResult<BTreeMap<String, String>> {
    let map = value.as_object().ok_or_else(|| {
        (
            FieldRef::new(path),
            Problem::WrongType {
                expected: "an object",
            },
        )
    })?;
    if map.is_empty() {
        return Err((FieldRef::new(path), Problem::EmptyLabels));
    }
    let mut out = BTreeMap::new();
    for (key, v) in map {
        if key.trim().is_empty() {
            return Err((
                FieldRef::with_value(format!("{path} key"), key.clone()),
                Problem::Empty,
            ));
        }
        let v = v.as_str().ok_or_else(|| {
            (
                FieldRef::new(format!("{path}.{key}")),
                Problem::WrongType {
                    expected: "a string",
                },
            )
        })?;
        out.insert(key.clone(), v.to_owned());
    }
    Ok(out)
}

/// Parses `a.b.c.d/n` or `x:y::/n` and rejects host bits.
fn cidr(text: &str) -> Result<IpNet, Problem> {
    let (addr, len) = text.split_once('/').ok_or(Problem::BadCidr)?;
    let addr: IpAddr = addr.parse().map_err(|_| Problem::BadCidr)?;
    let len: u8 = len.parse().map_err(|_| Problem::BadCidr)?;
    let net = IpNet::new(addr, len).map_err(|_| Problem::BadCidr)?;
    if net.trunc() != net {
        return Err(Problem::HostBitsSet {
            network: net.trunc(),
        });
    }
    Ok(net)
}

fn ports(obj: &Map<String, Value>) -> FieldResult<Vec<PortSpec>> {
    let items = match obj.get("ports") {
        None => return Err((FieldRef::new("ports"), Problem::Missing)),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err((
                FieldRef::new("ports"),
                Problem::WrongType {
                    expected: "an array",
                },
            ))
        }
    };
    if items.is_empty() {
        return Err((FieldRef::new("ports"), Problem::NoPorts));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("ports[{i}]");
            let text = item.as_str().ok_or_else(|| {
                (
                    FieldRef::new(path.clone()),
                    Problem::WrongType {
                        expected: "a string like \"tcp/443\"",
                    },
                )
            })?;
            parse_port_spec(text).map_err(|p| (FieldRef::with_value(path, text), p))
        })
        .collect()
}

/// Parses one `ports` entry: `tcp/N`, `tcp/N-M`, `udp/N`, `udp/N-M`, `icmp` or `any`.
pub(crate) fn parse_port_spec(text: &str) -> Result<PortSpec, Problem> {
    match text {
        "icmp" => return Ok(PortSpec::Icmp),
        "any" => return Ok(PortSpec::Any),
        _ => {}
    }
    let (proto, range) = text.split_once('/').ok_or(Problem::BadPortSyntax)?;
    let range = match range.split_once('-') {
        None => {
            let port = port(range)?;
            PortRange::single(port).ok_or(Problem::PortOutOfRange)?
        }
        Some((a, b)) => {
            let (start, end) = (port(a)?, port(b)?);
            if start == 0 || end == 0 {
                return Err(Problem::PortOutOfRange);
            }
            PortRange::new(start, end).ok_or(Problem::ReversedRange { start, end })?
        }
    };
    match proto {
        "tcp" => Ok(PortSpec::Tcp(range)),
        "udp" => Ok(PortSpec::Udp(range)),
        _ => Err(Problem::BadPortSyntax),
    }
}

/// A decimal port number; digits only, so `+80` or ` 80` are syntax errors.
fn port(text: &str) -> Result<u16, Problem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::BadPortSyntax);
    }
    match text.parse::<u32>() {
        Ok(n) if n <= u32::from(u16::MAX) => u16::try_from(n).map_err(|_| Problem::PortOutOfRange),
        _ => Err(Problem::PortOutOfRange),
    }
}

#[cfg(test)]
mod tests;
