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
use std::process::{Command, Output};
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

mod env;
#[cfg(test)]
mod tests;

use env::*;
