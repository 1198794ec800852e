//! `skiff server --encryption-key-file`: Secrets encrypted at rest (docs/encryption.md).

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skiff_store::encrypted::Keyring;
use skiff_store::EncryptedStore;
use skiff_store::Store;

/// How often the key file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// `store` with the values of Secrets encrypted with the keys in `path`, and a task that follows
/// the file: a changed file that loads replaces the keys; one that does not is reported and the
/// keys in use are kept.
pub fn wrap(store: Arc<dyn Store>, path: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keyring = keyring(&text, path)?;
    let secrets = skiff_api_types::registry::find("", "v1", "secrets")
        .context("the resource registry has no core/v1 secrets")?
        .key_prefix();
    tracing::info!(keys = ?keyring.names(), prefix = %secrets, file = %path.display(), "Secrets are encrypted at rest");
    let encrypted = Arc::new(EncryptedStore::new(store, [secrets], keyring));
    tokio::spawn(follow(encrypted.clone(), path.to_path_buf(), text));
    Ok(encrypted)
}

fn keyring(text: &str, path: &Path) -> anyhow::Result<Keyring> {
    let keys = skiff_pki::encryption::parse_encryption_keys(text, path)?;
    Keyring::new(keys.into_iter().map(|k| (k.name, k.secret))).with_context(|| format!("{}", path.display()))
}

async fn follow(store: Arc<EncryptedStore>, path: PathBuf, mut last: String) {
    let mut unreadable = false;
    loop {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => {
                unreadable = false;
                text
            }
            Err(e) => {
                if !unreadable {
                    tracing::error!(file = %path.display(), "cannot read the encryption key file ({e}); keeping the keys in use");
                }
                unreadable = true;
                continue;
            }
        };
        if text == last {
            continue;
        }
        match keyring(&text, &path) {
            Ok(keyring) => {
                tracing::info!(keys = ?keyring.names(), file = %path.display(), "encryption keys reloaded");
                store.set_keyring(keyring);
            }
            Err(e) => tracing::error!("encryption key file changed but does not load: {e:#}; keeping the keys in use"),
        }
        last = text;
    }
}
