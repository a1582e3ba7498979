use super::*;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

#[test]
fn json_values_finds_string_values() {
    let text =
        r#"{"name": "n1", "plugins": [{"type":"bridge","bridge" : "br1","x":{"bridge":2}}]}"#;
    assert_eq!(json_values(text, "name"), ["n1"]);
    assert_eq!(json_values(text, "bridge"), ["br1"]);
    assert_eq!(json_str("a\"b\\c"), r#""a\"b\\c""#);
}

#[test]
fn mountinfo_escapes_are_undone() {
    assert_eq!(unescape_mount(r"/tmp/a\040b"), "/tmp/a b");
    assert_eq!(unescape_mount(r"/tmp/a\0"), r"/tmp/a\0");
    assert_eq!(unescape_mount("/tmp/ä"), "/tmp/ä");
}

/// One ping from container `from` to `to`, retried a few times.
fn pings(pm: &Podman, from: &str, to: &str) -> bool {
    (0..5).any(|_| {
        pm.run(&["exec", from, "ping", "-c", "1", "-W", "1", to])
            .status
            .success()
    })
}

fn netns_inode(path: &str) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path}: {e}"))
        .ino()
}

#[test]
fn podman_containers_on_a_bridge_network() {
    if let Some(reason) = Podman::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let t = Instant::now();
    let pm = Podman::new("pt")
        .expect("podman environment")
        .expect("podman is available");
    eprintln!("environment and image: {:?}", t.elapsed());
    let dir = pm.dir().to_path_buf();
    assert!(pm.cni_conf_dir().starts_with(&dir) && pm.cni_bin_dir().is_dir());

    let net = pm.bridge_network("lan");
    assert!(net.name.starts_with(pm.prefix()) && net.bridge.starts_with(pm.prefix()));
    let t = Instant::now();
    pm.sleeper("a", &net.name);
    eprintln!("podman run -d: {:?}", t.elapsed());
    pm.sleeper("b", &net.name);
    assert!(Path::new("/sys/class/net").join(&net.bridge).exists());

    let subnet = net.subnet.trim_end_matches("0/24");
    let (ip_a, ip_b) = (pm.ip("a", &net.name), pm.ip("b", &net.name));
    assert!(
        ip_a.starts_with(subnet) && ip_b.starts_with(subnet) && ip_a != ip_b,
        "{ip_a} {ip_b} in {}",
        net.subnet
    );
    assert!(pings(&pm, "a", &ip_b), "a cannot ping b at {ip_b}");

    // The pid's network namespace is the one podman reports.
    let pid = pm.pid("a");
    assert!(pid > 0);
    let ns_a = pm.netns("a");
    assert!(ns_a.starts_with("/run/netns/"), "{ns_a}");
    assert_eq!(
        netns_inode(&format!("/proc/{pid}/ns/net")),
        netns_inode(&ns_a)
    );

    // Stop removes b's namespace; start makes a new one and b is reachable again.
    let ns_b = pm.netns("b");
    let t = Instant::now();
    pm.ok(&["stop", "-t", "0", "b"]);
    eprintln!("podman stop -t 0: {:?}", t.elapsed());
    assert_eq!(pm.inspect("b", "{{.State.Status}}"), "exited");
    assert_eq!(pm.pid("b"), 0);
    assert!(!Path::new(&ns_b).exists(), "{ns_b} survived stop");
    let t = Instant::now();
    pm.ok(&["stop", "a"]);
    pm.ok(&["start", "a"]);
    eprintln!(
        "podman stop + start (stop signal SIGKILL): {:?}",
        t.elapsed()
    );
    pm.ok(&["start", "b"]);
    let ns_b2 = pm.netns("b");
    assert!(
        ns_b2 != ns_b && Path::new(&ns_b2).exists(),
        "{ns_b} -> {ns_b2}"
    );
    let ip_b = pm.ip("b", &net.name);
    assert!(
        pings(&pm, "a", &ip_b),
        "a cannot ping b at {ip_b} after restart"
    );

    // --network none: loopback only.
    pm.sleeper("c", "none");
    let links = pm.ok(&["exec", "c", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");
    assert_eq!(pm.netns("c"), "");

    pm.ok(&["rm", "-f", "c"]);
    let names = pm.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["a", "b"], "{names}");

    let (prefix, ns_a, ns_b2) = (pm.prefix().to_string(), ns_a, ns_b2);
    let t = Instant::now();
    drop(pm);
    eprintln!("drop: {:?}", t.elapsed());
    assert!(!dir.exists(), "{} survived", dir.display());
    assert!(
        !Path::new("/sys/class/net").join(&net.bridge).exists(),
        "bridge survived"
    );
    for ns in [ns_a, ns_b2] {
        assert!(!Path::new(&ns).exists(), "{ns} survived");
    }
    assert!(mounts_under(&dir).is_empty());
    let cached: Vec<String> = fs::read_dir(CNI_CACHE)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(cached.is_empty(), "CNI cache entries survived: {cached:?}");
}

/// A CNI plugin that hands out 100.64.9.5 without making an interface and fails every DEL.
const FAILING_DEL: &str = r#"#!/bin/sh
case "$CNI_COMMAND" in
ADD) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:11:22:33:44:55","sandbox":"%s"}],"ips":[{"address":"100.64.9.5/32","interface":0}],"dns":{}}' "$CNI_NETNS" ;;
DEL) echo '{"cniVersion":"1.0.0","code":11,"msg":"no DEL today"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
"#;

fn cache_entries(net: &str) -> Vec<String> {
    fs::read_dir(CNI_CACHE)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.starts_with(&format!("{net}-")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn podman_cleans_up_after_a_panic_and_a_failed_del() {
    if let Some(reason) = Podman::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let seen = Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pm = Podman::new("pp")
            .expect("podman environment")
            .expect("podman is available");
        let plugin = pm.cni_bin_dir().join("faildel");
        fs::write(&plugin, FAILING_DEL).expect("write plugin");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&plugin, fs::Permissions::from_mode(0o755)).expect("chmod");
        let fake = pm.network("fake", r#"{"type": "faildel"}"#);
        let lan = pm.bridge_network("lan");
        pm.sleeper("x", &fake);
        assert_eq!(pm.ip("x", &fake), "100.64.9.5");
        assert_eq!(
            pm.inspect(
                "x",
                &format!("{{{{(index .NetworkSettings.Networks {fake:?}).IPPrefixLen}}}}")
            ),
            "32"
        );
        // The failed DEL does not fail rm; libcni's cache entry stays behind.
        pm.ok(&["rm", "-f", "x"]);
        assert_eq!(cache_entries(&fake).len(), 1);
        pm.sleeper("y", &fake);
        pm.sleeper("z", &lan.name);
        *seen.lock().expect("seen") = Some((pm.dir().to_path_buf(), fake, lan.bridge.clone()));
        panic!("test failure while containers run");
    }));
    assert!(result.is_err());
    let (dir, fake, bridge) = seen
        .lock()
        .expect("seen")
        .take()
        .expect("environment was made");
    assert!(!dir.exists(), "{} survived", dir.display());
    assert!(
        cache_entries(&fake).is_empty(),
        "{:?}",
        cache_entries(&fake)
    );
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "{bridge} survived"
    );
}

#[test]
fn podman_reaps_environments_of_dead_processes() {
    if let Some(reason) = Podman::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let pm = Podman::new("pr")
        .expect("podman environment")
        .expect("podman is available");
    let lan = pm.bridge_network("lan");
    pm.sleeper("orphan", &lan.name);
    let pid = pm.pid("orphan");
    let dir = pm.dir().to_path_buf();
    // As if the test process had been killed: no drop, and its owner is gone.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead = gone.id();
    gone.wait().expect("wait true");
    fs::write(dir.join("owner"), format!("{dead} {}\n", pm.prefix())).expect("owner");
    std::mem::forget(pm);

    let next = Podman::new("pr")
        .expect("podman environment")
        .expect("podman is available");
    drop(next);
    // A parallel test's Podman::new may be the one reaping it.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!dir.exists(), "{} was not reaped", dir.display());
    assert!(!Path::new("/sys/class/net").join(&lan.bridge).exists());
    assert!(
        !Path::new("/proc").join(pid.to_string()).exists(),
        "container process {pid} survived"
    );
}
