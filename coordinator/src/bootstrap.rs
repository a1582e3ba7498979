//! First start and later starts: the data directory, the admin API key and `admin.conf`.

use std::path::Path;

use anyhow::{Context, Result};
use segwire_client::config::AdminConf;
use segwire_proto::CaPin;

use crate::convert::now;
use crate::files::{read_if_exists, write_private};
use crate::secret::{self, API_KEY_PREFIX};
use crate::store::Store;

/// Makes sure an admin key exists and `DIR/admin.conf` names the current URL and pin.
///
/// On first start a new admin key is made and stored hashed; its only plain copy is in
/// admin.conf. Later starts keep the key and rewrite only the URL and pin if they changed.
/// A coordinator that `joined` a database another coordinator set up makes no admin key:
/// the first coordinator's admin.conf, copied into `dir`, works against it.
pub async fn admin_conf(
    dir: &Path,
    store: &dyn Store,
    url: &str,
    pin: CaPin,
    joined: bool,
) -> Result<()> {
    let path = dir.join("admin.conf");
    let existing = match read_if_exists(&path)? {
        Some(text) => Some(AdminConf::parse(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}); move it away to make a new admin key",
                path.display()
            )
        })?),
        None => None,
    };
    let api_key = match existing {
        Some(conf) if conf.url == url && conf.ca_pin == pin => return Ok(()),
        Some(conf) => conf.api_key,
        None if joined => {
            tracing::info!(path = %path.display(), "no admin.conf: this coordinator shares the database of another one and makes no admin key; copy that coordinator's admin.conf here (its url is then rewritten to this coordinator's)");
            return Ok(());
        }
        None => {
            let (id, secret_text) = (secret::new_id(), secret::new_secret());
            store
                .create_api_key(
                    &id,
                    &secret::hash_secret(&secret_text),
                    "admin",
                    "bootstrap admin key",
                    now(),
                )
                .await
                .context("cannot store the admin key")?;
            tracing::info!(key_id = %id, path = %path.display(), "created the admin API key");
            secret::credential(API_KEY_PREFIX, &id, &secret_text)
        }
    };
    let conf = AdminConf {
        url: url.to_string(),
        ca_pin: pin,
        api_key,
    };
    write_private(&path, conf.render().as_bytes())?;
    Ok(())
}
