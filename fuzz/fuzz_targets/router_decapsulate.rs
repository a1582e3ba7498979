//! Any datagram from the network into a router with one peer: no panic, and nothing
//! reaches the TUN side (no session exists, so nothing can authenticate).
#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use segwire_tunnel::{
    DatagramBatch, PacketBatch, PeerConfig, PresharedKey, PublicKey, Router, RouterConfig,
    StaticSecret,
};

fuzz_target!(|data: &[u8]| {
    let mut router = Router::new(RouterConfig::new(
        StaticSecret::from([1; 32]),
        PresharedKey::new([7; 32]),
        [100, 64, 0, 1].into(),
    ));
    let peer = PeerConfig {
        public_key: PublicKey::from_secret(&StaticSecret::from([2; 32])),
        endpoint: Some(SocketAddr::from(([198, 18, 0, 2], 51820))),
        allowed_ips: vec![std::net::IpAddr::from([100, 64, 0, 2]).into()],
        persistent_keepalive: None,
    };
    let now = Duration::from_secs(10);
    let _ = router.upsert_peer(now, &peer);
    let src = SocketAddr::from(([198, 18, 0, 9], 4000));
    let mut packets = PacketBatch::new(4, 1500);
    let mut out = DatagramBatch::new(4, 1500);
    // The same datagram twice: the second sees whatever state the first left.
    router.decapsulate_batch(now, [(src, data), (src, data)], &mut packets, &mut out);
    assert!(packets.is_empty(), "unauthenticated bytes reached the TUN side");
    router.handle_timers(now + Duration::from_secs(1), &mut out);
});
