//! Junk, truncated and replayed datagrams of every message type.

use proptest::prelude::*;

use crate::testutil::{underlay, Net};
use crate::DropReason;

use super::{assert_flows, A, B};

/// An established pair and a real B -> A data datagram (it carries A's receiver index).
fn established() -> (Net, Vec<u8>) {
    let mut net = Net::new(2);
    assert_flows(&mut net, A, B, 1);
    let data = net
        .log
        .iter()
        .rev()
        .find(|s| s.from == B && s.bytes[0] == 4 && s.bytes.len() > 32)
        .map(|s| s.bytes.clone())
        .expect("a data datagram from B");
    (net, data)
}

fn message(kind: u8, len: usize, index: Option<&[u8]>, fill: u8) -> Vec<u8> {
    let mut m = vec![fill; len];
    if len >= 4 {
        m[..4].copy_from_slice(&[kind, 0, 0, 0]);
    }
    if let Some(i) = index {
        // receiver index: bytes 4..8 for data and cookie, 8..12 for responses
        let at = if kind == 2 { 8 } else { 4 };
        if len >= at + 4 {
            m[at..at + 4].copy_from_slice(i);
        }
    }
    m
}

/// Injects `bytes` into A from B's endpoint; returns the drop reason counted.
fn reason_for(net: &mut Net, bytes: &[u8]) -> Vec<DropReason> {
    let before = net.router(A).drops();
    net.inject(A, underlay(B), bytes);
    net.pump();
    assert!(net.take_delivered(A).is_empty(), "junk was delivered");
    let after = net.router(A).drops();
    DropReason::ALL
        .iter()
        .copied()
        .flat_map(|r| std::iter::repeat_n(r, (after.get(r) - before.get(r)) as usize))
        .collect()
}

#[test]
fn junk_of_every_type_is_dropped_and_counted() {
    let (mut net, data) = established();
    let idx = &data[4..8].to_vec();
    use DropReason::*;
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("empty", vec![], Malformed),
        ("one byte", vec![1], Malformed),
        (
            "init, bad mac",
            message(1, 148, None, 0x55),
            HandshakeFailed,
        ),
        ("init, truncated", message(1, 147, None, 0x55), Malformed),
        ("init, too long", message(1, 149, None, 0x55), Malformed),
        (
            "response, unknown index",
            message(2, 92, None, 0x55),
            UnknownPeer,
        ),
        (
            "response, our index",
            message(2, 92, Some(idx), 0x55),
            HandshakeFailed,
        ),
        (
            "response, truncated",
            message(2, 91, Some(idx), 0x55),
            Malformed,
        ),
        (
            "cookie, unknown index",
            message(3, 64, None, 0x55),
            UnknownPeer,
        ),
        (
            "cookie, our index",
            message(3, 64, Some(idx), 0x55),
            HandshakeFailed,
        ),
        (
            "cookie, truncated",
            message(3, 63, Some(idx), 0x55),
            Malformed,
        ),
        (
            "data, unknown index",
            message(4, 200, None, 0x55),
            UnknownPeer,
        ),
        (
            "data, our index, garbage",
            message(4, 200, Some(idx), 0x55),
            DecryptFailed,
        ),
        (
            "data, truncated",
            message(4, 31, Some(idx), 0x00),
            Malformed,
        ),
        ("data, replayed", data.clone(), Replay),
        ("type 5", message(5, 100, None, 0), Malformed),
        ("type 1 with reserved bits", vec![1, 1, 0, 0], Malformed),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(reason_for(&mut net, &bytes), vec![want], "{name}");
    }
    // still works afterwards
    assert_flows(&mut net, A, B, 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_datagrams_are_dropped_once_and_never_panic(
        kind in 0u8..6,
        use_index in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let (mut net, data) = established();
        let mut bytes = body;
        if bytes.len() >= 4 && kind > 0 {
            bytes[..4].copy_from_slice(&[kind, 0, 0, 0]);
            if use_index && bytes.len() >= 12 {
                let at = if kind == 2 { 8 } else { 4 };
                bytes[at..at + 4].copy_from_slice(&data[4..8]);
            }
        }
        let reasons = reason_for(&mut net, &bytes);
        prop_assert_eq!(reasons.len(), 1);
    }
}
