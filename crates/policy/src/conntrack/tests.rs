#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::testutil::{ACK, FIN_ACK, RST, SYN, SYN_ACK};

const OUT: Direction = Direction::Egress;
const IN: Direction = Direction::Ingress;

fn key(protocol: u8, remote_port: u16) -> FlowKey {
    FlowKey {
        remote: 0x0a00_0002,
        local_port: 40000,
        remote_port,
        protocol,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn table(max_entries: usize) -> Conntrack {
    Conntrack::new(ConntrackConfig {
        max_entries,
        timeouts: Timeouts::default(),
    })
}

#[test]
fn tcp_states_follow_the_handshake() {
    use State::*;
    let cases: &[(State, bool, u8, State)] = &[
        (SynSent, true, SYN_ACK, SynReceived),
        (SynSent, false, SYN, SynSent),
        (SynSent, true, ACK, SynSent),
        (SynReceived, false, ACK, Established),
        (SynReceived, true, ACK, SynReceived),
        (Established, true, ACK, Established),
        (PickedUp, false, ACK, PickedUp),
        (PickedUp, true, ACK, Established),
        (PickedUp, true, RST, Closed),
        (Established, false, FIN_ACK, Closing),
        (Established, true, RST, Closed),
        (SynSent, true, RST, Closed),
        (Closing, true, ACK, Closing),
        (Closing, false, SYN, SynSent),
        (Closed, false, SYN, SynSent),
        (Closed, true, ACK, Closed),
        (Closed, true, SYN, Closed),
    ];
    for &(from, is_reply, flags, want) in cases {
        assert_eq!(
            advance(from, proto::TCP, is_reply, TcpFlags(flags)),
            want,
            "{from:?} reply={is_reply} flags={flags:#x}"
        );
    }
    assert_eq!(
        advance(State::Unreplied, proto::UDP, false, TcpFlags(0)),
        State::Unreplied
    );
    assert_eq!(
        advance(State::Unreplied, proto::UDP, true, TcpFlags(0)),
        State::Replied
    );
}

#[test]
fn first_packet_sets_the_initial_state() {
    let t0 = Duration::ZERO;
    let mut ct = table(8);
    for (flags, port, want) in [
        (SYN, 1, State::SynSent),
        (ACK, 2, State::PickedUp),
        (FIN_ACK, 3, State::Closing),
    ] {
        ct.insert(key(proto::TCP, port), OUT, TcpFlags(flags), None, t0);
        assert_eq!(
            ct.track(&key(proto::TCP, port), OUT, TcpFlags(ACK), t0)
                .unwrap()
                .state,
            want
        );
    }
    ct.insert(key(proto::UDP, 1), OUT, TcpFlags(0), None, t0);
    assert_eq!(
        ct.track(&key(proto::UDP, 1), OUT, TcpFlags(0), t0)
            .unwrap()
            .state,
        State::Unreplied
    );
}

/// (name, protocol, opening flags, later packets as (is reply, flags), idle timeout after them)
type TimeoutCase<'a> = (&'a str, u8, u8, &'a [(bool, u8)], Duration);

#[test]
fn timeouts_expire_with_passed_in_time() {
    // The documented default timeouts, written out (not read back from `Timeouts::default`).
    let cases: &[TimeoutCase<'_>] = &[
        ("tcp syn sent", proto::TCP, SYN, &[], secs(30)),
        (
            "tcp syn received",
            proto::TCP,
            SYN,
            &[(true, SYN_ACK)],
            secs(60),
        ),
        (
            "tcp established",
            proto::TCP,
            SYN,
            &[(true, SYN_ACK), (false, ACK)],
            secs(7200),
        ),
        (
            "tcp closing",
            proto::TCP,
            SYN,
            &[(true, SYN_ACK), (false, ACK), (false, FIN_ACK)],
            secs(120),
        ),
        (
            "tcp closed",
            proto::TCP,
            SYN,
            &[(true, SYN_ACK), (false, ACK), (true, RST)],
            secs(10),
        ),
        ("udp unreplied", proto::UDP, 0, &[(false, 0)], secs(30)),
        ("udp replied", proto::UDP, 0, &[(true, 0)], secs(180)),
        ("icmp echo", proto::ICMP, 0, &[(true, 0)], secs(30)),
        ("other replied", 47, 0, &[(true, 0)], secs(180)),
    ];
    for &(name, protocol, open, packets, timeout) in cases {
        let t0 = Duration::ZERO;
        let k = key(protocol, 80);
        // Alive just before the timeout.
        let mut ct = table(8);
        ct.insert(k, OUT, TcpFlags(open), None, t0);
        let mut now = t0;
        for &(reply, flags) in packets {
            now += secs(1);
            let dir = if reply { IN } else { OUT };
            assert!(ct.track(&k, dir, TcpFlags(flags), now).is_some(), "{name}");
        }
        let last = now;
        assert!(
            ct.track(&k, IN, TcpFlags(ACK), last + timeout - secs(1))
                .is_some(),
            "{name}: alive"
        );
        // Expired at the timeout: judged afresh (gone), counted.
        let mut ct = table(8);
        ct.insert(k, OUT, TcpFlags(open), None, t0);
        for (i, &(reply, flags)) in packets.iter().enumerate() {
            let dir = if reply { IN } else { OUT };
            assert!(ct
                .track(&k, dir, TcpFlags(flags), t0 + secs(i as u64 + 1))
                .is_some());
        }
        assert!(
            ct.track(&k, IN, TcpFlags(ACK), last + timeout).is_none(),
            "{name}: expired"
        );
        assert_eq!((ct.len(), ct.expired), (0, 1), "{name}");
    }
}

#[test]
fn expire_sweeps_idle_entries() {
    let t0 = Duration::ZERO;
    let mut ct = table(8);
    ct.insert(key(proto::UDP, 1), OUT, TcpFlags(0), None, t0);
    ct.insert(key(proto::TCP, 2), OUT, TcpFlags(ACK), None, t0);
    assert_eq!(ct.expire(t0 + secs(29)), 0);
    assert_eq!(ct.expire(t0 + secs(30)), 1);
    assert_eq!(ct.len(), 1);
    assert_eq!(ct.expire(t0 + secs(7200)), 1);
    assert_eq!((ct.len(), ct.expired), (0, 2));
}

#[test]
fn a_full_table_evicts_the_longest_idle_entry() {
    let t0 = Duration::ZERO;
    let mut ct = table(3);
    for port in 1..=3 {
        ct.insert(
            key(proto::UDP, port),
            OUT,
            TcpFlags(0),
            None,
            t0 + secs(u64::from(port)),
        );
    }
    // Port 1 was opened first but is seen again: port 2 is now the longest idle.
    assert!(ct
        .track(&key(proto::UDP, 1), IN, TcpFlags(0), t0 + secs(4))
        .is_some());
    ct.insert(key(proto::UDP, 4), OUT, TcpFlags(0), None, t0 + secs(5));
    assert_eq!((ct.len(), ct.evictions), (3, 1));
    assert!(ct
        .track(&key(proto::UDP, 2), IN, TcpFlags(0), t0 + secs(5))
        .is_none());
    for port in [1, 3, 4] {
        assert!(
            ct.track(&key(proto::UDP, port), IN, TcpFlags(0), t0 + secs(6))
                .is_some(),
            "{port}"
        );
    }
    // Many more connections: the table never grows past its bound.
    for port in 10..1000 {
        ct.insert(key(proto::UDP, port), OUT, TcpFlags(0), None, t0 + secs(7));
        assert!(ct.len() <= 3);
    }
    assert_eq!(ct.evictions, 1 + 990);
    assert_eq!(ct.slots.len(), 3);
}

#[test]
fn retain_updates_and_cuts() {
    let t0 = Duration::ZERO;
    let mut ct = table(8);
    for port in 1..=4 {
        ct.insert(key(proto::UDP, port), OUT, TcpFlags(0), None, t0);
    }
    let (expired, cut) = ct.retain(t0, |e| e.key.remote_port % 2 == 0);
    assert_eq!((expired, cut, ct.len()), (0, 2, 2));
    assert!(ct.track(&key(proto::UDP, 1), IN, TcpFlags(0), t0).is_none());
    assert!(ct.track(&key(proto::UDP, 2), IN, TcpFlags(0), t0).is_some());
}

#[test]
fn zero_max_entries_still_tracks_one() {
    let t0 = Duration::ZERO;
    let mut ct = table(0);
    ct.insert(key(proto::UDP, 1), OUT, TcpFlags(0), None, t0);
    ct.insert(key(proto::UDP, 2), OUT, TcpFlags(0), None, t0);
    assert_eq!((ct.len(), ct.evictions), (1, 1));
}

#[test]
fn a_full_table_gives_each_peer_a_fair_share() {
    let t0 = Duration::ZERO;
    let mut ct = table(4);
    let of = |remote: u128, port: u16| FlowKey {
        remote,
        local_port: 40000,
        remote_port: port,
        protocol: proto::UDP,
    };
    // X fills the table alone.
    for port in 1..=4 {
        ct.insert(
            of(1, port),
            OUT,
            TcpFlags(0),
            None,
            t0 + secs(u64::from(port)),
        );
    }
    // Y's connections take room from X, down to an even split, then from Y itself.
    for port in 1..=5 {
        ct.insert(
            of(2, port),
            OUT,
            TcpFlags(0),
            None,
            t0 + secs(10 + u64::from(port)),
        );
    }
    assert_eq!(
        (ct.peer_entries(1), ct.peer_entries(2), ct.len()),
        (2, 2, 4)
    );
    // X kept its newest two; Y its newest two.
    for (remote, port, kept) in [
        (1, 3, true),
        (1, 4, true),
        (1, 2, false),
        (2, 5, true),
        (2, 3, false),
    ] {
        assert_eq!(
            ct.track(&of(remote, port), IN, TcpFlags(0), t0 + secs(20))
                .is_some(),
            kept,
            "{remote}/{port}"
        );
    }
    assert_eq!(ct.evictions, 5);
}
