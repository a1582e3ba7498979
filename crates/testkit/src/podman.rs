//! A podman environment of a test's own: real containers on CNI networks of its own.
//!
//! [`Podman::new`] makes a temp dir holding everything podman writes for the test: a
//! `containers.conf` (runc, cgroupfs, CNI backend, file events and locks), a vfs
//! `storage.conf`, an empty `registries.conf` (nothing is ever pulled), the CNI config dir
//! ([`Podman::cni_conf_dir`]), a CNI plugin dir searched before `/usr/lib/cni`
//! ([`Podman::cni_bin_dir`]) and a busybox image imported from Debian's `busybox-static`
//! ([`Podman::image`]). [`Podman::cmd`] is `podman` pointed at all of that through
//! `CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF` and `CONTAINERS_REGISTRIES_CONF` (conmon
//! passes them on to the `podman container cleanup` it runs when a container exits).
//!
//! Names that end up in host-wide places start with a prefix unique to the run
//! (`sw<pid><tag><n>`): networks are `<prefix>-<name>`, bridges `<prefix>b<k>`. Dropping the
//! environment (also when the test panics) removes its containers, image, storage,
//! networks and bridges, the CNI cache entries libcni keeps in `/var/lib/cni/results`,
//! any network namespace of its containers that survived, and anything still mounted
//! under its dir. An environment whose test process died without dropping it (killed,
//! aborted) is cleaned up by the next [`Podman::new`].
//!
//! What podman 4.3 (Debian 12) does with a CNI plugin, found by experiment:
//! - conflists may say `cniVersion` up to `1.0.0`. A `1.1.0` conflist is passed through on
//!   ADD, but DEL then fails inside libcni before the plugin runs ("failed to convert cached
//!   result to config version 1.1.0"), so the plugin never sees DEL. A plugin's result must
//!   say `1.0.0` or older ("unsupported CNI result version 1.1.0").
//! - Every podman command that loads networks calls each plugin with `VERSION` first.
//! - ADD and DEL get `CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=<container name>`,
//!   `CNI_CONTAINERID=<64-hex id>`, `CNI_IFNAME=eth0`, `CNI_PATH=<plugin dirs joined by :>` and
//!   `CNI_NETNS=/run/netns/netns-<uuid>`, a new path on every start. DEL's stdin carries the
//!   cached ADD result as `prevResult`.
//! - `run`/`start`: the netns is made, then ADD. `stop`, `rm -f` of a running container and
//!   a container exiting on its own: DEL, then the netns is removed (it still exists during
//!   DEL). `rm` of a stopped container calls nothing.
//! - A result whose interface has no `mac` or `"mac": ""` fails the run with
//!   "Error: invalid MAC address" (exit 126); podman then calls DEL and removes the netns,
//!   and the container stays `Created`.
//! - A failing ADD fails `run` (exit 126) / `start` (exit 125) with
//!   `Error: plugin type="<type>" failed (add): cni plugin <type> failed: <msg>: <details>`,
//!   after a DEL (without `prevResult`) and removal of the netns.
//! - A failing DEL is only logged (`level=error msg="Unable to clean up network for
//!   container …"`, by whichever of `podman stop` and conmon's cleanup gets there first):
//!   `stop`/`rm` still succeed, the netns is still removed, and libcni's cache entry
//!   `/var/lib/cni/results/<network>-<id>-eth0` is left behind (drop removes it).
//! - `inspect -f '{{json .NetworkSettings.Networks}}'` shows the result's address:
//!   `"IPAddress":"100.64.9.5","IPPrefixLen":32,"MacAddress":"02:11:22:33:44:55"` and
//!   `"Gateway":"<nil>"` when the result has none.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Where libcni caches ADD results (fixed in podman 4.3's libcni).
const CNI_CACHE: &str = "/var/lib/cni/results";
/// Debian's standard CNI plugins (`containernetworking-plugins`).
const SYSTEM_PLUGINS: &str = "/usr/lib/cni";
/// Debian's `busybox-static` (the dynamically linked `busybox` package uses the same path).
const BUSYBOX: &str = "/bin/busybox";
/// Start of the name of every environment's temp dir.
const DIR_PREFIX: &str = "segwire-podman-";

static SEQ: AtomicU32 = AtomicU32::new(0);
static NETS: AtomicU32 = AtomicU32::new(0);

/// An isolated podman environment, removed on drop.
pub struct Podman {
    env: Env,
    image: String,
    bridges: Mutex<u32>,
    // Dropped after `Drop::drop` has torn everything down.
    _dir: tempfile::TempDir,
}

/// A bridge network made by [`Podman::bridge_network`].
#[derive(Debug, Clone)]
pub struct BridgeNet {
    /// Network name to pass to `podman run --network`.
    pub name: String,
    /// Name of the Linux bridge on the host.
    pub bridge: String,
    /// The network's IPv4 subnet, e.g. `100.96.7.0/24`.
    pub subnet: String,
}

/// The paths of one environment, and the commands that use them.
struct Env {
    dir: PathBuf,
    prefix: String,
    cni_conf: PathBuf,
    cni_bin: PathBuf,
}

impl Podman {
    /// Why podman tests cannot run here, or `None` when they can.
    ///
    /// Needs root, podman 4 (with its CNI backend), runc, tar, a statically linked
    /// `/bin/busybox` (`busybox-static`) and the `bridge`/`host-local` plugins in
    /// `/usr/lib/cni` (`containernetworking-plugins`).
    pub fn unavailable() -> Option<String> {
        if !is_root() {
            return Some("needs root (podman with CNI networks and runc)".into());
        }
        for prog in ["podman", "runc", "conmon", "tar"] {
            if find_in_path(prog).is_none() {
                return Some(format!(
                    "`{prog}` is not installed (apt-get install podman runc busybox-static containernetworking-plugins uidmap)"
                ));
            }
        }
        let version = match Command::new("podman").arg("--version").output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
            Ok(out) => {
                return Some(format!(
                    "`podman --version` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => return Some(format!("cannot run podman: {e}")),
        };
        // "podman version 4.3.1"
        let major = version
            .split_whitespace()
            .last()
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        if major != Some(4) {
            return Some(format!(
                "needs podman 4 for its CNI backend, found {:?}",
                version.trim()
            ));
        }
        match is_static_elf(Path::new(BUSYBOX)) {
            Ok(true) => {}
            Ok(false) => {
                return Some(format!(
                    "{BUSYBOX} is dynamically linked: install busybox-static"
                ))
            }
            Err(e) => return Some(format!("{BUSYBOX}: {e} (install busybox-static)")),
        }
        for plugin in ["bridge", "host-local"] {
            if !Path::new(SYSTEM_PLUGINS).join(plugin).exists() {
                return Some(format!(
                    "{SYSTEM_PLUGINS}/{plugin} is missing: install containernetworking-plugins"
                ));
            }
        }
        None
    }

    /// A new environment with the busybox image imported, or `Ok(None)` (after printing
    /// why to stderr) when [`Podman::unavailable`] says podman cannot run here.
    ///
    /// `tag` is one to three lowercase letters or digits telling the environments of a
    /// test run apart (pick ones that netlab labs of the same run do not use); every name
    /// starts with `sw<pid><tag><n>`. `Err` means podman is there but setting it up failed.
    pub fn new(tag: &str) -> Result<Option<Podman>, String> {
        if !(1..=3).contains(&tag.len())
            || !tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!(
                "podman tag {tag:?}: use 1 to 3 lowercase letters or digits"
            ));
        }
        if let Some(reason) = Podman::unavailable() {
            eprintln!("podman unavailable: {reason}");
            return Ok(None);
        }
        reap_stale();

        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("sw{}{tag}{n}", std::process::id() % 100_000);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let env = Env::at(dir.path(), prefix);
        env.write_config()?;
        let image = format!("localhost/sw-busybox:{}", env.prefix);
        let podman = Podman {
            env,
            image,
            bridges: Mutex::new(0),
            _dir: dir,
        };
        podman.import_image()?;
        Ok(Some(podman))
    }

    /// The run-unique prefix of every name this environment puts on the host.
    pub fn prefix(&self) -> &str {
        &self.env.prefix
    }

    /// The environment's temp dir (configs, storage, CNI dirs); gone after drop.
    pub fn dir(&self) -> &Path {
        &self.env.dir
    }

    /// The CNI config dir podman reads networks from (`network_config_dir`).
    pub fn cni_conf_dir(&self) -> &Path {
        &self.env.cni_conf
    }

    /// The CNI plugin dir searched before `/usr/lib/cni` (put the plugin under test here).
    pub fn cni_bin_dir(&self) -> &Path {
        &self.env.cni_bin
    }

    /// The busybox image (`localhost/sw-busybox:<prefix>`): every busybox applet in `/bin`
    /// (`sh`, `sleep`, `ping`, `nc`, `ip`, `ifconfig`, `wget`, `httpd`, …), `CMD
    /// ["/bin/sh"]`, stop signal SIGKILL so `podman stop` does not wait 10 s for a
    /// `sleep` that ignores SIGTERM.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// `podman` pointed at this environment (env vars and `--root/--runroot/--tmpdir`
    /// set); add the subcommand and its arguments.
    pub fn cmd(&self) -> Command {
        self.env.cmd()
    }

    /// Runs `podman <args>` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman {args:?}: {e}"))
    }

    /// Runs `podman <args>` and returns stdout without trailing whitespace; panics with
    /// stdout and stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// `podman inspect --format <format> <name>`, trimmed; panics when it fails.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
            .trim()
            .to_string()
    }

    /// Host pid of the container's main process (0 when it is not running).
    pub fn pid(&self, name: &str) -> u32 {
        let s = self.inspect(name, "{{.State.Pid}}");
        s.parse()
            .unwrap_or_else(|e| panic!("pid of {name}: {s:?}: {e}"))
    }

    /// The container's IPv4 address on `network` ("" when it has none).
    pub fn ip(&self, name: &str, network: &str) -> String {
        self.inspect(
            name,
            &format!("{{{{(index .NetworkSettings.Networks {network:?}).IPAddress}}}}"),
        )
    }

    /// Path of the container's network namespace (`/run/netns/netns-<uuid>`, new on every
    /// start; "" when it is not running).
    pub fn netns(&self, name: &str) -> String {
        self.inspect(name, "{{.NetworkSettings.SandboxKey}}")
    }

    /// Starts `sleep` in a detached container `name` on `network` (a network name, or
    /// `none`) and returns its id.
    pub fn sleeper(&self, name: &str, network: &str) -> String {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            &self.image,
            "sleep",
            "1000000",
        ])
    }

    /// The full name (`<prefix>-<name>`) of this environment's network `name`.
    pub fn net_name(&self, name: &str) -> String {
        format!("{}-{name}", self.env.prefix)
    }

    /// Writes network `name` as a conflist with `plugins` (the JSON text of the plugin
    /// objects, without the enclosing brackets) and returns its full name.
    ///
    /// The conflist says `cniVersion` 1.0.0, the newest podman 4.3 can tear down.
    pub fn network(&self, name: &str, plugins: &str) -> String {
        let full = self.net_name(name);
        let text = format!(
            "{{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": {},\n  \"plugins\": [\n    {plugins}\n  ]\n}}\n",
            json_str(&full)
        );
        let path = self.cni_conf_dir().join(format!("{full}.conflist"));
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        full
    }

    /// A network `name` of the stock `bridge` and `host-local` plugins on a bridge of its
    /// own, with a /24 from 100.96.0.0/11 (clear of the 100.64.x segments the tests use).
    ///
    /// Containers on it reach each other by address (there is no DNS: use
    /// [`Podman::ip`]). The host gets no address on the bridge and nothing is routed or
    /// masqueraded, so making it changes no host-wide setting (`isGateway` would turn on
    /// `net.ipv4.ip_forward`).
    pub fn bridge_network(&self, name: &str) -> BridgeNet {
        let k = {
            let mut n = self.bridges.lock().expect("bridge counter");
            *n += 1;
            *n
        };
        let bridge = format!("{}b{k}", self.env.prefix);
        assert!(
            bridge.len() <= 15,
            "bridge name {bridge} is longer than 15 characters: use a shorter tag"
        );
        // Distinct per process for the first 64 networks; processes rarely share pid % 128.
        let i = (std::process::id() % 128) * 64 + NETS.fetch_add(1, Ordering::Relaxed) % 64;
        let subnet = format!("100.{}.{}.0/24", 96 + i / 256, i % 256);
        let ipam_dir = self.env.dir.join("cni/ipam");
        let plugin = format!(
            "{{\"type\": \"bridge\", \"bridge\": {}, \"isGateway\": false, \"ipMasq\": false, \
             \"ipam\": {{\"type\": \"host-local\", \"dataDir\": {}, \"ranges\": [[{{\"subnet\": {}}}]]}}}}",
            json_str(&bridge),
            json_str(&ipam_dir.to_string_lossy()),
            json_str(&subnet)
        );
        let name = self.network(name, &plugin);
        BridgeNet {
            name,
            bridge,
            subnet,
        }
    }

    /// Makes `program` available as CNI plugin type `kind` (a symlink in
    /// [`Podman::cni_bin_dir`]) and returns the link's path.
    pub fn install_plugin(&self, kind: &str, program: &Path) -> PathBuf {
        let link = self.cni_bin_dir().join(kind);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(program, &link)
            .unwrap_or_else(|e| panic!("link {} -> {}: {e}", link.display(), program.display()));
        link
    }

    fn import_image(&self) -> Result<(), String> {
        let rootfs = self.env.dir.join("rootfs");
        build_rootfs(&rootfs)?;
        let tar = self.env.dir.join("rootfs.tar");
        let out = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .map_err(|e| format!("cannot run tar: {e}"))?;
        check("tar", &out)?;
        let out = self
            .cmd()
            .args([
                "import",
                "--quiet",
                "--change",
                "CMD [\"/bin/sh\"]",
                "--change",
                "STOPSIGNAL SIGKILL",
            ])
            .arg(&tar)
            .arg(&self.image)
            .output()
            .map_err(|e| format!("cannot run podman import: {e}"))?;
        check("podman import", &out)?;
        let _ = fs::remove_file(&tar);
        let _ = fs::remove_dir_all(&rootfs);
        Ok(())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for problem in self.env.teardown() {
            eprintln!("podman cleanup ({}): {problem}", self.env.prefix);
        }
    }
}

impl Env {
    fn at(dir: &Path, prefix: String) -> Env {
        Env {
            dir: dir.to_path_buf(),
            prefix,
            cni_conf: dir.join("cni/net.d"),
            cni_bin: dir.join("cni/bin"),
        }
    }
    fn containers_conf(&self) -> PathBuf {
        self.dir.join("containers.conf")
    }
    fn storage_conf(&self) -> PathBuf {
        self.dir.join("storage.conf")
    }
    fn registries_conf(&self) -> PathBuf {
        self.dir.join("registries.conf")
    }
    fn graph_root(&self) -> PathBuf {
        self.dir.join("storage/root")
    }
    fn run_root(&self) -> PathBuf {
        self.dir.join("storage/run")
    }
    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn write_config(&self) -> Result<(), String> {
        for sub in [
            "cni/net.d",
            "cni/bin",
            "cni/ipam",
            "storage/root",
            "storage/run",
            "tmp",
            "xdg",
        ] {
            let p = self.dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
        }
        let d = |p: PathBuf| json_str(&p.to_string_lossy());
        let containers = format!(
            r#"# Written by segwire-testkit for one test; removed with it.
[containers]
# crun/runc cannot raise rlimits in the sandbox; podman's defaults for root would.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
default_sysctls = ["net.ipv4.ping_group_range=0 2147483647"]
# No network unless --network says which (podman's default network would make cni-podman0).
netns = "none"
log_driver = "k8s-file"

[network]
network_backend = "cni"
network_config_dir = {netd}
cni_plugin_dirs = [{bin}, {system}]
default_network = {default_net}

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {events}
tmp_dir = {tmp}
image_copy_tmp_dir = {tmp}
# Locks in tmp_dir, not the host-wide /dev/shm/libpod_lock.
lock_type = "file"
pull_policy = "never"
"#,
            netd = d(self.cni_conf.clone()),
            bin = d(self.cni_bin.clone()),
            system = json_str(SYSTEM_PLUGINS),
            default_net = json_str(&format!("{}-default", self.prefix)),
            events = d(self.tmp().join("events.log")),
            tmp = d(self.tmp()),
        );
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = {}\nrunroot = {}\n",
            d(self.graph_root()),
            d(self.run_root())
        );
        let owner = format!("{} {}\n", std::process::id(), self.prefix);
        for (path, text) in [
            (self.containers_conf(), containers),
            (self.storage_conf(), storage),
            (self.registries_conf(), String::new()),
            (self.dir.join("owner"), owner),
        ] {
            fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.containers_conf())
            .env("CONTAINERS_STORAGE_CONF", self.storage_conf())
            .env("CONTAINERS_REGISTRIES_CONF", self.registries_conf())
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"))
            .env("TMPDIR", self.tmp())
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .arg("--root")
            .arg(self.graph_root())
            .arg("--runroot")
            .arg(self.run_root())
            .arg("--tmpdir")
            .arg(self.tmp());
        c
    }

    /// Output of `podman <args>`, or what went wrong.
    fn quiet(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run podman {args:?}: {e}"))?;
        check(&format!("podman {args:?}"), &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Removes everything of this environment except its dir; returns what failed.
    fn teardown(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let ids: Vec<String> = match self.quiet(&["ps", "-a", "-q", "--no-trunc"]) {
            Ok(s) => s.split_whitespace().map(str::to_string).collect(),
            Err(e) => {
                problems.push(e);
                Vec::new()
            }
        };
        let mut netns = Vec::new();
        if !ids.is_empty() {
            let mut args = vec![
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.NetworkSettings.SandboxKey}}",
            ];
            args.extend(ids.iter().map(String::as_str));
            if let Ok(s) = self.quiet(&args) {
                netns.extend(
                    s.lines()
                        .map(str::trim)
                        .filter(|l| l.starts_with("/run/netns/"))
                        .map(str::to_string),
                );
            }
            if let Err(e) = self.quiet(&["rm", "--force", "--all", "--time", "0"]) {
                problems.push(e);
            }
        }
        // Read before `system reset` deletes the conflists.
        let (nets, bridges) = self.networks();
        if let Err(e) = self.quiet(&["system", "reset", "--force"]) {
            problems.push(e);
        }
        // reset deletes the bridges of the bridge networks it could parse; make sure.
        for b in bridges.iter().filter(|b| b.starts_with(&self.prefix)) {
            if Path::new("/sys/class/net").join(b).exists() {
                let _ = Command::new("ip")
                    .args(["link", "del", b])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for ns in &netns {
            if Path::new(ns).exists() {
                let _ = Command::new("umount")
                    .arg(ns)
                    .stderr(Stdio::null())
                    .status();
                if let Err(e) = fs::remove_file(ns) {
                    problems.push(format!("remove netns {ns}: {e}"));
                }
            }
        }
        // libcni's cache entries are `<network>-<container id>-<ifname>`; failed DELs leave them.
        if let Ok(entries) = fs::read_dir(CNI_CACHE) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let ours = ids.iter().any(|id| file.contains(&format!("-{id}-")))
                    || nets.iter().any(|n| {
                        n.starts_with(&format!("{}-", self.prefix))
                            && file.starts_with(&format!("{n}-"))
                    });
                if ours {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        // vfs needs no mounts, but containers' /dev/shm and the like could survive a failure.
        for m in mounts_under(&self.dir) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&m)
                .stderr(Stdio::null())
                .status();
        }
        problems
    }

    /// Network names and bridge names found in the conflists of the CNI config dir.
    fn networks(&self) -> (Vec<String>, Vec<String>) {
        let mut nets = Vec::new();
        let mut bridges = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.cni_conf) {
            for entry in entries.flatten() {
                if let Ok(text) = fs::read_to_string(entry.path()) {
                    nets.extend(json_values(&text, "name"));
                    bridges.extend(json_values(&text, "bridge"));
                }
            }
        }
        (nets, bridges)
    }
}

/// Cleans up environments whose test process died without dropping them.
fn reap_stale() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let Ok(owner) = fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut words = owner.split_whitespace();
        let (Some(pid), Some(prefix)) = (words.next(), words.next()) else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        // One reaper per dir, even with several test processes starting at once.
        if fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join("reaping"))
            .is_err()
        {
            continue;
        }
        let env = Env::at(&dir, prefix.to_string());
        if env.containers_conf().exists() && env.storage_conf().exists() {
            for problem in env.teardown() {
                eprintln!(
                    "podman cleanup of stale {} ({prefix}): {problem}",
                    dir.display()
                );
            }
        }
        if let Err(e) = fs::remove_dir_all(&dir) {
            eprintln!("cannot remove stale {}: {e}", dir.display());
        }
    }
}

/// A busybox root filesystem: `/bin/busybox` and a symlink for each applet.
fn build_rootfs(root: &Path) -> Result<(), String> {
    let mkdir = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()));
    for sub in [
        "bin", "etc", "proc", "sys", "dev", "run", "root", "tmp", "var/tmp", "usr",
    ] {
        mkdir(&root.join(sub))?;
    }
    for sub in ["tmp", "var/tmp"] {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join(sub), fs::Permissions::from_mode(0o1777))
            .map_err(|e| format!("chmod {sub}: {e}"))?;
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(|e| format!("copy {BUSYBOX}: {e}"))?;
    let out = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|e| format!("cannot run {BUSYBOX}: {e}"))?;
    check("busybox --list", &out)?;
    let link = |target: &str, at: PathBuf| {
        std::os::unix::fs::symlink(target, &at).map_err(|e| format!("link {}: {e}", at.display()))
    };
    for applet in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if applet != "busybox" && !applet.contains('/') {
            link("busybox", root.join("bin").join(applet))?;
        }
    }
    link("bin", root.join("sbin"))?;
    link("../bin", root.join("usr/bin"))?;
    link("../bin", root.join("usr/sbin"))?;
    for (file, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        fs::write(root.join(file), text).map_err(|e| format!("write {file}: {e}"))?;
    }
    Ok(())
}

/// `Err` with the command's output when it failed.
fn check(what: &str, out: &Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).trim_end()
    ))
}

fn is_root() -> bool {
    // The effective uid, from /proc (no libc call needed).
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn find_in_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Whether `path` is an ELF executable without a program interpreter (statically linked).
fn is_static_elf(path: &Path) -> Result<bool, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let phoff = bytes
        .get(0x20..0x28)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("truncated ELF header")?;
    let (Some(phentsize), Some(phnum)) = (u16_at(0x36), u16_at(0x38)) else {
        return Err("truncated ELF header".into());
    };
    const PT_INTERP: u32 = 3;
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff).map_err(|e| e.to_string())? + i * usize::from(phentsize);
        let kind = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated program headers")?;
        if kind == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `s` as a JSON (and TOML basic) string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The string values of every `"key": "…"` in a JSON text (enough for conflists).
fn json_values(text: &str, key: &str) -> Vec<String> {
    let needle = format!("\"{key}\"");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let Some(value) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let Some(value) = value.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = value.find('"') {
            found.push(value[..end].to_string());
        }
    }
    found
}

/// Mount points at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let mut found: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found.dedup();
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
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
}
