//! The steady-state packet path of two members (encrypt, policy, decrypt, policy, flow
//! log) never allocates: a counting global allocator watches it. Only the test's own
//! thread is counted (the harness's threads allocate when they like).
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether allocations on this thread are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const POLICY: &str = r#"{ "default": "deny", "rules": [
    { "name": "dns", "from": "*", "to": "*", "ports": ["udp/53"] } ] }"#;

#[test]
fn packets_through_two_members_do_not_allocate() {
    let mut net = Net::new(&[POLICY, POLICY]);
    let batch: Vec<Vec<u8>> = (0..16)
        .map(|_| udp(overlay(1), overlay(2), 53, 1200))
        .collect();
    net.send(1, &batch);
    assert_eq!(
        net.take_delivered(2).len(),
        16,
        "warm-up: handshake done, flow tracked"
    );
    let now = net.now;
    let (a, b) = net.nodes.split_at_mut(1);
    let (a, b) = (&mut a[0].member, &mut b[0].member);
    // One round outside the count so every buffer has its final size.
    for counted in [false, true] {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        COUNTED.with(|c| c.set(counted));
        for _ in 0..100 {
            a.handle_tun(now, batch.iter().map(Vec::as_slice));
            b.handle_udp(now, a.datagrams().iter().map(|d| (underlay(1), d.bytes)));
            a.clear_datagrams();
            assert_eq!(b.packets().len(), 16);
            b.clear_packets();
        }
        COUNTED.with(|c| c.set(false));
        if counted {
            assert_eq!(
                ALLOCATIONS.load(Ordering::Relaxed) - before,
                0,
                "allocations in 1,600 packets"
            );
        }
    }
}
