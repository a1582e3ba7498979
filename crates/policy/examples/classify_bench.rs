//! Classifier and firewall cost per packet for 1, 100 and 10,000 rules.
//!
//! `cargo run --release -p segwire-policy --example classify_bench`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use segwire_policy::packet::proto;
use segwire_policy::{
    Action, CompiledPolicy, ConntrackConfig, Direction, Firewall, Flow, Member, Policy, PortRange,
    PortSpec, Rule, Selector,
};

const MEMBERS: usize = 500;
const APPS: [&str; 6] = ["web", "db", "cache", "batch", "api", "queue"];
const TIERS: [&str; 3] = ["a", "b", "c"];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn member_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).expect("few members");
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 10)) + i)
}

fn members() -> Vec<Member> {
    (0..MEMBERS)
        .map(|i| Member {
            name: format!("m{i}"),
            ip: Some(member_ip(i)),
            ip6: None,
            labels: BTreeMap::from([
                ("app".to_owned(), APPS[i % APPS.len()].to_owned()),
                ("tier".to_owned(), TIERS[i % TIERS.len()].to_owned()),
            ]),
        })
        .collect()
}

fn selector(rng: &mut Rng) -> Selector {
    match rng.below(10) {
        0 => Selector::Any,
        1..=3 => {
            let mut labels = BTreeMap::new();
            labels.insert("app".to_owned(), APPS[rng.below(6) as usize].to_owned());
            if rng.below(2) == 0 {
                labels.insert("tier".to_owned(), TIERS[rng.below(3) as usize].to_owned());
            }
            Selector::Labels(labels)
        }
        4..=6 => Selector::Member(format!("m{}", rng.below(MEMBERS as u64))),
        _ => {
            let len = 16 + rng.below(17) as u8;
            let addr =
                Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + rng.below(1 << 14) as u32);
            Selector::Cidr(
                ipnet::Ipv4Net::new(addr, len)
                    .expect("len <= 32")
                    .trunc()
                    .into(),
            )
        }
    }
}

fn port_spec(rng: &mut Rng) -> PortSpec {
    let start = 1 + rng.below(60_000) as u16;
    let range = if rng.below(3) == 0 {
        PortRange::new(start, start + rng.below(1000) as u16)
    } else {
        PortRange::single(start)
    }
    .expect("valid range");
    match rng.below(10) {
        0 => PortSpec::Icmp,
        1..=2 => PortSpec::Udp(range),
        _ => PortSpec::Tcp(range),
    }
}

fn policy(rules: usize, rng: &mut Rng) -> Policy {
    Policy {
        quarantine: None,
        default: Action::Deny,
        rules: (0..rules)
            .map(|i| Rule {
                name: format!("rule-{i}"),
                from: selector(rng),
                to: selector(rng),
                ports: (0..1 + rng.below(3)).map(|_| port_spec(rng)).collect(),
            })
            .collect(),
    }
}

fn flows(rng: &mut Rng, n: usize) -> Vec<Flow> {
    (0..n)
        .map(|_| Flow {
            direction: if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            remote: member_ip(rng.below(MEMBERS as u64 + 50) as usize).into(),
            protocol: [proto::TCP, proto::TCP, proto::UDP, proto::ICMP][rng.below(4) as usize],
            port: 1 + rng.below(61_000) as u16,
        })
        .collect()
}

/// An IPv4 TCP/UDP packet (20-byte header plus 20 bytes of transport header).
fn packet(local: Ipv4Addr, f: &Flow, rng: &mut Rng) -> Vec<u8> {
    let (src, dst) = match f.direction {
        Direction::Egress => (IpAddr::V4(local), f.remote),
        Direction::Ingress => (f.remote, IpAddr::V4(local)),
    };
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
        unreachable!("the bench's flows are IPv4")
    };
    let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, f.protocol, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let mut l4 = [0u8; 20];
    l4[0..2].copy_from_slice(&(1024 + rng.below(60_000) as u16).to_be_bytes());
    l4[2..4].copy_from_slice(&f.port.to_be_bytes());
    if f.protocol == proto::ICMP {
        l4[0] = 8;
        l4[1] = 0;
    }
    l4[12] = 0x50;
    l4[13] = 0x02; // SYN
    p.extend_from_slice(&l4);
    p
}

fn per_item(elapsed: Duration, items: usize) -> f64 {
    elapsed.as_nanos() as f64 / items as f64
}

fn main() {
    let members = members();
    let local = &members[0];
    println!(
        "{MEMBERS} members; policies with mixed label/member/cidr/any selectors, random ports"
    );
    println!(
        "{:>7} {:>12} {:>15} {:>15} {:>12}",
        "rules", "compile", "classify ns", "firewall ns", "allowed"
    );
    for rules in [1, 100, 10_000] {
        let mut rng = Rng(0x5eed_0000 + rules as u64);
        let policy = policy(rules, &mut rng);
        let t = Instant::now();
        let compiled = CompiledPolicy::compile(&policy, local, &members);
        let compile_time = t.elapsed();

        let flows = flows(&mut rng, 4096);
        let rounds = 500;
        let mut allowed = 0usize;
        let t = Instant::now();
        for _ in 0..rounds {
            for f in &flows {
                allowed += usize::from(compiled.classify(black_box(f)).allowed);
            }
        }
        let classify_ns = per_item(t.elapsed(), rounds * flows.len());

        let packets: Vec<Vec<u8>> = flows
            .iter()
            .map(|f| packet(member_ip(0), f, &mut rng))
            .collect();
        let mut firewall = Firewall::new(compiled, ConntrackConfig::default());
        let start = Duration::ZERO;
        let t = Instant::now();
        for round in 0..rounds {
            let now = start + Duration::from_millis(round as u64);
            for (i, p) in packets.iter().enumerate() {
                let v = if flows[i].direction == Direction::Egress {
                    firewall.egress(black_box(p), now)
                } else {
                    firewall.ingress(black_box(p), now)
                };
                let _ = black_box(v);
            }
        }
        let firewall_ns = per_item(t.elapsed(), rounds * packets.len());
        println!(
            "{rules:>7} {:>10.1}ms {classify_ns:>15.1} {firewall_ns:>15.1} {:>11.1}%",
            compile_time.as_secs_f64() * 1e3,
            100.0 * allowed as f64 / (rounds * flows.len()) as f64,
        );
    }
    println!(
        "classify: CompiledPolicy::classify on a prepared flow (first packet of a connection)"
    );
    println!("firewall: parse + conntrack + classify per raw packet (allowed flows hit conntrack after the first)");
}
