use super::*;
use crate::testutil::{ip, privileged, TestNetns};
use crate::{host_addrs, link_exists, list_ipv4_addrs, list_links};

fn segment() -> Ipv4Net {
    "100.64.9.0/24".parse().expect("cidr")
}

#[tokio::test]
async fn address_outside_the_segment_is_refused() {
    let config = InterfaceConfig::new("sw-x", Ipv4Addr::new(100, 64, 10, 1), segment());
    let err = configure(&Netns::Current, &config)
        .await
        .expect_err("outside");
    assert!(
        matches!(err, NetdevError::AddressOutsideSegment { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn configure_is_idempotent_and_replaces_the_address() {
    if !privileged("configure_is_idempotent_and_replaces_the_address") {
        return;
    }
    let ns = TestNetns::new("cfg");
    let netns = Netns::Named(ns.name.clone());
    let mut config = InterfaceConfig::new("sw-cfg", Ipv4Addr::new(100, 64, 9, 5), segment());
    let _tun = create_interface(&netns, &config).await.expect("create");
    configure(&netns, &config).await.expect("configure again");

    let routes = ip(&["-n", &ns.name, "-4", "route", "show"]);
    assert_eq!(routes.lines().count(), 1, "{routes}");
    let addrs = list_ipv4_addrs(&netns).await.expect("addrs");
    let ours: Vec<_> = addrs
        .iter()
        .filter(|a| !a.addr.addr().is_loopback())
        .collect();
    assert_eq!(ours.len(), 1, "{addrs:?}");
    assert_eq!(ours[0].addr, "100.64.9.5/32".parse().expect("net"));

    // A new address and MTU replace the old ones; still exactly one route.
    config.ipv4 = Some((Ipv4Addr::new(100, 64, 9, 6), segment()));
    config.mtu = 1380;
    configure(&netns, &config).await.expect("reconfigure");
    let addrs = ip(&["-n", &ns.name, "-4", "addr", "show", "dev", "sw-cfg"]);
    assert!(addrs.contains("inet 100.64.9.6/32"), "{addrs}");
    assert!(!addrs.contains("100.64.9.5"), "{addrs}");
    let routes = ip(&["-n", &ns.name, "-4", "route", "show"]);
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.contains("src 100.64.9.6"), "{routes}");
    let links = list_links(&netns).await.expect("links");
    let link = links.iter().find(|l| l.name == "sw-cfg").expect("listed");
    assert_eq!(link.mtu, 1380);
}

#[tokio::test]
async fn missing_links() {
    if !privileged("missing_links") {
        return;
    }
    let ns = TestNetns::new("miss");
    let netns = Netns::Named(ns.name.clone());

    let links = list_links(&netns).await.expect("links");
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo"], "a fresh namespace has only lo");

    assert!(!link_exists(&netns, "sw-none").await.expect("exists"));
    assert!(!remove_link(&netns, "sw-none")
        .await
        .expect("remove missing"));
    let config = InterfaceConfig::new("sw-none", Ipv4Addr::new(100, 64, 9, 5), segment());
    let err = configure(&netns, &config).await.expect_err("no such link");
    assert!(matches!(err, NetdevError::LinkNotFound { .. }), "{err}");
    assert!(err.to_string().contains("sw-none"), "{err}");
}

/// Builds a namespace with `addrs` (veth pairs, so no dummy module is needed; the other
/// end is named veth*, itself never an endpoint) and returns what `host_addrs` reports
/// inside it.
fn host_addrs_with(tag: &str, addrs: &[(&str, &str)]) -> Vec<std::net::IpAddr> {
    let ns = TestNetns::new(tag);
    let n = ns.name.as_str();
    ip(&["-n", n, "link", "set", "lo", "up"]);
    for (i, (link, addr)) in addrs.iter().enumerate() {
        let exists = |l: &str| {
            let links = ip(&["-n", n, "-o", "link", "show"]);
            links.contains(&format!(" {l}@")) || links.contains(&format!(" {l}:"))
        };
        if link.starts_with("wg") && !exists(link) {
            // Another VPN's device: a TUN, as wireguard-go, boringtun or Tailscale make.
            ip(&["-n", n, "tuntap", "add", "dev", link, "mode", "tun"]);
        } else if !exists(link) {
            let peer = format!("veth{i}");
            ip(&[
                "-n", n, "link", "add", link, "type", "veth", "peer", "name", &peer,
            ]);
        }
        ip(&["-n", n, "addr", "add", addr, "dev", link, "nodad"]);
        ip(&["-n", n, "link", "set", link, "up"]);
    }
    Netns::Named(ns.name.clone())
        .run_blocking(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(host_addrs())
        })
        .expect("enter namespace")
        .expect("host addresses")
}

#[tokio::test]
async fn host_addresses_skip_loopback() {
    if !privileged("host_addresses_skip_loopback") {
        return;
    }
    // One address of each kind: the routable ones are reported, IPv4 first (a dual-stack
    // host reports both families).
    let addrs = host_addrs_with(
        "hostaddr",
        &[
            ("eth0", "198.18.5.1/24"),
            ("eth0", "169.254.7.7/16"),
            ("eth0", "2001:2:5::1/64"),
            ("sw-web", "100.64.9.1/24"),
        ],
    );
    assert_eq!(
        addrs,
        ["198.18.5.1", "2001:2:5::1"].map(|a| a.parse::<std::net::IpAddr>().expect("ip"))
    );
}

#[tokio::test]
async fn another_vpns_tunnel_addresses_are_not_endpoints() {
    if !privileged("another_vpns_tunnel_addresses_are_not_endpoints") {
        return;
    }
    // A host that also runs another WireGuard VPN: its tunnel address sorts first, but a
    // peer sending to it would push this overlay through that tunnel (and its MTU).
    let addrs = host_addrs_with(
        "hostaddrvpn",
        &[("eth0", "198.18.5.1/24"), ("wg0", "100.96.0.2/24")],
    );
    assert_eq!(
        addrs,
        ["198.18.5.1".parse::<std::net::IpAddr>().expect("ip")]
    );
}

#[tokio::test]
async fn a_host_with_only_ipv6_reports_its_global_ipv6_addresses() {
    if !privileged("a_host_with_only_ipv6_reports_its_global_ipv6_addresses") {
        return;
    }
    // The kernel's own fe80:: address of eth0 and the overlay's address are left out.
    let addrs = host_addrs_with(
        "hostaddr6",
        &[
            ("eth0", "2001:2:5::1/64"),
            ("eth0", "fe80::99/64"),
            ("sw-web", "fd00:9::1/128"),
        ],
    );
    assert_eq!(
        addrs,
        ["2001:2:5::1".parse::<std::net::IpAddr>().expect("ip")]
    );
}
