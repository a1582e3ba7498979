//! `segwire-node cni install|uninstall`: a CNI network config list for one segment that
//! points at this agent's socket, and the `segwire-cni` plugin installed as type `segwire`,
//! so podman (CNI backend), nerdctl and Nomad attach containers at start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use segwire_proto::api::Labels;
use segwire_proto::names::validate_segment_name;
use serde::Serialize;

/// The plugin type, and so the file name of the plugin in the bin directory.
pub const PLUGIN_TYPE: &str = "segwire";
/// The CNI version written in the config list: the newest that podman 4.3's libcni reads.
pub const CONF_VERSION: &str = "1.0.0";
/// Where runtimes look for network configs by default.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
/// Where runtimes look for plugins by default (podman also searches `/usr/lib/cni`).
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";

/// What `cni install` writes and where.
#[derive(Debug, Clone)]
pub struct Install {
    /// Segment the network attaches to.
    pub segment: String,
    /// Labels of every member attached through it.
    pub labels: Labels,
    /// Network name (what `podman run --network` takes).
    pub name: String,
    /// Directory of network config lists.
    pub conf_dir: PathBuf,
    /// Directory of plugins.
    pub bin_dir: PathBuf,
    /// The agent's control socket.
    pub agent_socket: PathBuf,
    /// The `segwire-cni` binary to install.
    pub plugin: PathBuf,
}

/// What was installed, for the output.
#[derive(Debug, Serialize)]
pub struct Installed {
    /// Network name.
    pub network: String,
    /// Segment.
    pub segment: String,
    /// The config list written.
    pub conf: PathBuf,
    /// The plugin written.
    pub plugin: PathBuf,
}

/// The default network name for a segment.
#[must_use]
pub fn default_name(segment: &str) -> String {
    format!("segwire-{segment}")
}

/// The plugin binary shipped next to this executable.
///
/// # Errors
/// When this executable's path is unknown.
pub fn plugin_next_to_me() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot tell where segwire-node is installed")?;
    Ok(me.with_file_name("segwire-cni"))
}

/// The config list file of network `name`.
#[must_use]
pub fn conf_file(conf_dir: &Path, name: &str) -> PathBuf {
    conf_dir.join(format!("{name}.conflist"))
}

/// The JSON of the config list.
#[must_use]
pub fn conflist(install: &Install) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": CONF_VERSION,
        "name": install.name,
        "plugins": [{
            "type": PLUGIN_TYPE,
            "segment": install.segment,
            "labels": install.labels,
            "agent_socket": install.agent_socket,
        }],
    })
}

/// Writes the config list and installs the plugin. An existing config list of that name
/// is replaced only when it is segwire's.
///
/// # Errors
/// A sentence naming the file that could not be written, or why it was refused.
pub fn install(install: &Install) -> anyhow::Result<Installed> {
    validate_segment_name(&install.segment)?;
    validate_network_name(&install.name)?;
    if !install.plugin.is_file() {
        bail!(
            "the CNI plugin {} is missing; install segwire-cni next to segwire-node",
            install.plugin.display()
        );
    }
    let conf = conf_file(&install.conf_dir, &install.name);
    if conf.exists() && !is_ours(&conf) {
        bail!(
            "{} exists and is not a segwire network; choose another --name or remove it",
            conf.display()
        );
    }
    for dir in [&install.conf_dir, &install.bin_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let plugin = install.bin_dir.join(PLUGIN_TYPE);
    let bytes = fs::read(&install.plugin)
        .with_context(|| format!("cannot read {}", install.plugin.display()))?;
    write_atomically(&plugin, &bytes, 0o755)?;
    let mut text = serde_json::to_vec_pretty(&conflist(install))?;
    text.push(b'\n');
    write_atomically(&conf, &text, 0o644)?;
    Ok(Installed {
        network: install.name.clone(),
        segment: install.segment.clone(),
        conf,
        plugin,
    })
}

/// Removes network `name`'s config list (only a segwire one), and the plugin when no
/// segwire network is left in `conf_dir`. Returns the files removed.
///
/// # Errors
/// When the config list is not segwire's, or a file cannot be removed.
pub fn uninstall(conf_dir: &Path, bin_dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    validate_network_name(name)?;
    let conf = conf_file(conf_dir, name);
    let mut removed = Vec::new();
    if conf.exists() {
        if !is_ours(&conf) {
            bail!(
                "{} is not a segwire network; not removing it",
                conf.display()
            );
        }
        fs::remove_file(&conf).with_context(|| format!("cannot remove {}", conf.display()))?;
        removed.push(conf);
    }
    let others = fs::read_dir(conf_dir)
        .map(|dir| {
            dir.filter_map(Result::ok).any(|e| {
                e.path().extension().is_some_and(|x| x == "conflist") && is_ours(&e.path())
            })
        })
        .unwrap_or(false);
    let plugin = bin_dir.join(PLUGIN_TYPE);
    if !others && plugin.exists() {
        fs::remove_file(&plugin).with_context(|| format!("cannot remove {}", plugin.display()))?;
        removed.push(plugin);
    }
    if removed.is_empty() {
        bail!(
            "there is no segwire network {name} in {} (nothing to remove)",
            conf_dir.display()
        );
    }
    Ok(removed)
}

/// Network names end up as file names: a lowercase DNS-label-like name.
fn validate_network_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        bail!("network name {name:?} may only use letters, digits, '-', '_' and '.' (at most 64, not starting with '.')")
    }
}

/// Whether the config list at `path` is one of ours (its first plugin is segwire's).
fn is_ours(path: &Path) -> bool {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["plugins"][0]["type"] == PLUGIN_TYPE)
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("segwire-tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(tmp: &Path) -> Install {
        let plugin = tmp.join("segwire-cni");
        fs::write(&plugin, b"#!/bin/sh\n").expect("plugin");
        Install {
            segment: "web".into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            name: default_name("web"),
            conf_dir: tmp.join("net.d"),
            bin_dir: tmp.join("bin"),
            agent_socket: PathBuf::from("/var/lib/segwire/agent.sock"),
            plugin,
        }
    }

    #[test]
    fn install_writes_a_conflist_and_the_plugin_and_uninstall_removes_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let i = setup(tmp.path());
        let done = install(&i).expect("install");
        assert_eq!(done.conf, tmp.path().join("net.d/segwire-web.conflist"));
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(&done.conf).expect("read")).expect("json");
        assert_eq!(v["cniVersion"], CONF_VERSION);
        assert_eq!(v["name"], "segwire-web");
        assert_eq!(v["plugins"][0]["type"], "segwire");
        assert_eq!(v["plugins"][0]["segment"], "web");
        assert_eq!(v["plugins"][0]["labels"]["app"], "web");
        assert_eq!(
            v["plugins"][0]["agent_socket"],
            "/var/lib/segwire/agent.sock"
        );
        let mode = fs::metadata(&done.plugin)
            .expect("plugin")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        // Installing again replaces our own file.
        install(&i).expect("reinstall");
        let removed = uninstall(&i.conf_dir, &i.bin_dir, &i.name).expect("uninstall");
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!done.conf.exists() && !done.plugin.exists());
        let err = uninstall(&i.conf_dir, &i.bin_dir, &i.name).expect_err("nothing left");
        assert!(err.to_string().contains("nothing to remove"), "{err}");
    }

    #[test]
    fn foreign_networks_are_never_overwritten_or_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let i = setup(tmp.path());
        fs::create_dir_all(&i.conf_dir).expect("dir");
        let foreign = conf_file(&i.conf_dir, &i.name);
        fs::write(&foreign, br#"{"name":"x","plugins":[{"type":"bridge"}]}"#).expect("write");
        assert!(install(&i).is_err());
        assert!(uninstall(&i.conf_dir, &i.bin_dir, &i.name).is_err());
        assert!(foreign.exists());
    }

    #[test]
    fn the_plugin_stays_while_another_segwire_network_uses_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let web = setup(tmp.path());
        let db = Install {
            segment: "db".into(),
            name: default_name("db"),
            ..web.clone()
        };
        install(&web).expect("web");
        install(&db).expect("db");
        let removed = uninstall(&web.conf_dir, &web.bin_dir, &web.name).expect("uninstall");
        assert_eq!(removed.len(), 1);
        assert!(web.bin_dir.join(PLUGIN_TYPE).exists());
    }

    #[test]
    fn bad_names_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut i = setup(tmp.path());
        i.name = "../etc".into();
        assert!(install(&i).is_err());
        i.name = "ok".into();
        i.segment = "Bad Segment".into();
        assert!(install(&i).is_err());
        i.segment = "web".into();
        i.plugin = tmp.path().join("missing");
        assert!(install(&i)
            .expect_err("no plugin")
            .to_string()
            .contains("missing"));
    }
}
