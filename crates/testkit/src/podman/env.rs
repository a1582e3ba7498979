//! The paths of one podman environment, the commands that use them, its configuration
//! files, its teardown, and the small helpers they need (rootfs, mounts, JSON scraps).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::*;

impl Env {
    pub(super) fn at(dir: &Path, prefix: String) -> Env {
        Env {
            dir: dir.to_path_buf(),
            prefix,
            cni_conf: dir.join("cni/net.d"),
            cni_bin: dir.join("cni/bin"),
        }
    }
    pub(super) fn containers_conf(&self) -> PathBuf {
        self.dir.join("containers.conf")
    }
    pub(super) fn storage_conf(&self) -> PathBuf {
        self.dir.join("storage.conf")
    }
    pub(super) fn registries_conf(&self) -> PathBuf {
        self.dir.join("registries.conf")
    }
    pub(super) fn graph_root(&self) -> PathBuf {
        self.dir.join("storage/root")
    }
    pub(super) fn run_root(&self) -> PathBuf {
        self.dir.join("storage/run")
    }
    pub(super) fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub(super) fn write_config(&self) -> Result<(), String> {
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

    pub(super) fn cmd(&self) -> Command {
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
    pub(super) fn quiet(&self, args: &[&str]) -> Result<String, String> {
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
    pub(super) fn teardown(&self) -> Vec<String> {
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
    pub(super) fn networks(&self) -> (Vec<String>, Vec<String>) {
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
pub(super) fn reap_stale() {
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
pub(super) fn build_rootfs(root: &Path) -> Result<(), String> {
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
pub(super) fn check(what: &str, out: &Output) -> Result<(), String> {
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

pub(super) fn is_root() -> bool {
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

pub(super) fn find_in_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Whether `path` is an ELF executable without a program interpreter (statically linked).
pub(super) fn is_static_elf(path: &Path) -> Result<bool, String> {
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
pub(super) fn json_str(s: &str) -> String {
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
pub(super) fn json_values(text: &str, key: &str) -> Vec<String> {
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
pub(super) fn mounts_under(dir: &Path) -> Vec<String> {
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
pub(super) fn unescape_mount(s: &str) -> String {
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
