//! Encryption at rest for chosen key prefixes (the Secrets).
//!
//! [`EncryptedStore`] wraps any [`Store`]: a value written under one of its prefixes is sealed
//! with AES-256-GCM before it reaches the inner store, and opened again on every way back out
//! (get, list, watch events, the records writes return). The inner store, and so the Raft log,
//! the RocksDB state and every snapshot, only ever holds ciphertext for those keys. Keys outside
//! the prefixes pass through untouched.
//!
//! A sealed value is self-describing:
//!
//! ```text
//! k8s:enc:aesgcm:v1:NAME:  NONCE (12 bytes)  CIPHERTEXT+TAG (plaintext length + 16 bytes)
//! ```
//!
//! `NAME` names the key of the [`Keyring`] that sealed it, so values sealed under older keys stay
//! readable while the keyring still holds them (rotation). The nonce is fresh and random for
//! every write, and the store key is the associated data, so a sealed value copied to another key
//! fails authentication instead of being served under the wrong name. A value without the
//! `k8s:enc:` prefix is read as plaintext: that is how data written before encryption was turned
//! on stays readable until it is rewritten.
//!
//! A value that carries the prefix but cannot be opened (unknown key name, unknown provider,
//! truncated, altered) is an error ([`StoreError::Internal`], a 500 at the API), never a panic and
//! never the ciphertext handed out as if it were the object.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::Aead;
use aes_gcm::aead::KeyInit;
use aes_gcm::aead::OsRng;
use aes_gcm::aead::Payload;
use aes_gcm::Aes256Gcm;
use aes_gcm::Nonce;
use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::RwLock;

use crate::Consistency;
use crate::ListOptions;
use crate::ListPage;
use crate::Precondition;
use crate::Record;
use crate::Revision;
use crate::Store;
use crate::StoreError;
use crate::WatchItem;
use crate::WatchStream;
use crate::Write;

/// What every encrypted value starts with, whatever the provider (upstream's convention).
pub const ENCRYPTED_MARKER: &[u8] = b"k8s:enc:";
/// The prefix of a value sealed by this module, followed by the key name and `:`.
pub const AESGCM_PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:";
/// Length of a data key: AES-256.
pub const KEY_LEN: usize = 32;
/// Longest key name accepted.
pub const MAX_KEY_NAME_LEN: usize = 64;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Whether `value` is an encrypted value (of any provider) rather than plaintext.
pub fn is_encrypted(value: &[u8]) -> bool {
    value.starts_with(ENCRYPTED_MARKER)
}

/// Whether `name` is usable as a key name: 1 to 64 of `A-Z a-z 0-9 . _ -`. (The name is written
/// in front of every value it seals, so it must not contain `:`.)
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Why a [`Keyring`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No key at all: nothing could be encrypted.
    #[error("no encryption key: at least one is needed")]
    Empty,
    /// A name that cannot be written into the value prefix.
    #[error("invalid encryption key name {0:?}: use 1 to 64 of A-Z a-z 0-9 . _ -")]
    InvalidName(String),
    /// Two keys with one name: a value sealed under that name could not be attributed.
    #[error("encryption key name {0:?} is used twice")]
    Duplicate(String),
}

struct DataKey {
    name: String,
    cipher: Aes256Gcm,
}

/// The data keys, in order: the first seals every new value, all of them open values.
pub struct Keyring {
    keys: Vec<DataKey>,
}

impl fmt::Debug for Keyring {
    // Names only: the key material stays out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("names", &self.names()).finish()
    }
}

impl Keyring {
    /// A keyring of `(name, key)` pairs; the first one encrypts.
    pub fn new(keys: impl IntoIterator<Item = (String, [u8; KEY_LEN])>) -> Result<Keyring, KeyringError> {
        let mut out: Vec<DataKey> = Vec::new();
        for (name, secret) in keys {
            if !valid_key_name(&name) {
                return Err(KeyringError::InvalidName(name));
            }
            if out.iter().any(|k| k.name == name) {
                return Err(KeyringError::Duplicate(name));
            }
            out.push(DataKey { name, cipher: Aes256Gcm::new(&secret.into()) });
        }
        if out.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Keyring { keys: out })
    }

    /// The key names, the encrypting one first.
    pub fn names(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.name.as_str()).collect()
    }

    /// The name of the key new values are sealed with.
    pub fn primary(&self) -> &str {
        self.keys.first().map_or("", |k| k.name.as_str())
    }

    /// Seals `plaintext` stored under `key` with the first key.
    pub fn seal(&self, key: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let fail = |reason: &str| StoreError::Internal(format!("{key}: cannot encrypt the value: {reason}"));
        let data_key = self.keys.first().ok_or_else(|| fail("no encryption key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.try_fill_bytes(&mut nonce).map_err(|_| fail("the system random number generator failed"))?;
        let sealed = data_key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: key.as_bytes() })
            .map_err(|_| fail("AES-GCM refused the input"))?;
        let mut out = Vec::with_capacity(AESGCM_PREFIX.len() + data_key.name.len() + 1 + NONCE_LEN + sealed.len());
        out.extend_from_slice(AESGCM_PREFIX);
        out.extend_from_slice(data_key.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Whether `stored` is sealed with the first key (and so needs no rewrite after rotation).
    pub fn sealed_with_primary(&self, stored: &[u8]) -> bool {
        let Some(rest) = stored.strip_prefix(AESGCM_PREFIX) else { return false };
        rest.strip_prefix(self.primary().as_bytes()).is_some_and(|r| r.first() == Some(&b':'))
    }

    /// Opens a value stored under `key`: a sealed one is decrypted with the key it names, a
    /// plaintext one (no `k8s:enc:` prefix) is returned as it is.
    pub fn open(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if !is_encrypted(&stored) {
            return Ok(stored);
        }
        let fail = |reason: String| StoreError::Internal(format!("{key}: cannot decrypt the stored value: {reason}"));
        let Some(rest) = stored.strip_prefix(AESGCM_PREFIX) else {
            let provider = stored[ENCRYPTED_MARKER.len()..].split(|b| *b == b':').next().unwrap_or_default();
            return Err(fail(format!(
                "it was written by the encryption provider {:?}, which this server does not have",
                String::from_utf8_lossy(&provider[..provider.len().min(32)])
            )));
        };
        let name_end = rest
            .iter()
            .take(MAX_KEY_NAME_LEN + 1)
            .position(|b| *b == b':')
            .ok_or_else(|| fail("the key name is malformed".into()))?;
        let name = String::from_utf8_lossy(&rest[..name_end]);
        let data_key = self.keys.iter().find(|k| k.name == name).ok_or_else(|| {
            fail(format!(
                "it was encrypted with the key {name:?}, which is not in the key file (it has {}); \
                 put that key back into the key file",
                self.names().join(", ")
            ))
        })?;
        let body = &rest[name_end + 1..];
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(fail(format!("it is truncated ({} bytes after the prefix)", body.len())));
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        data_key.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: key.as_bytes() }).map_err(|_| {
            fail(format!(
                "authentication with the key {name:?} failed: the value was altered, was copied from another \
                 object, or the key file holds a different key under that name"
            ))
        })
    }
}

/// What the store and its watch streams share: which keys are encrypted, and with what.
struct Sealer {
    prefixes: Vec<String>,
    keyring: RwLock<Arc<Keyring>>,
}

impl Sealer {
    fn covers(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.keyring.read().clone()
    }

    /// The bytes to hand to the inner store for `value` under `key`.
    fn seal(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.keyring().seal(key, value)
    }

    /// A record read from the inner store, with its value as the caller wrote it.
    fn open(&self, mut record: Record) -> Result<Record, StoreError> {
        if self.covers(&record.key) {
            record.value = self.keyring().open(&record.key, Vec::from(std::mem::take(&mut record.value)))?.into();
        }
        Ok(record)
    }
}

/// `inner`, with the values of keys under `prefixes` encrypted at rest. See the module docs.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    sealer: Arc<Sealer>,
}

impl fmt::Debug for EncryptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("prefixes", &self.sealer.prefixes)
            .field("keyring", &self.sealer.keyring())
            .finish_non_exhaustive()
    }
}

impl EncryptedStore {
    /// Encrypts the values of keys that start with one of `prefixes` (`""` covers every key)
    /// with `keyring`.
    pub fn new(inner: Arc<dyn Store>, prefixes: impl IntoIterator<Item = String>, keyring: Keyring) -> Self {
        let sealer = Sealer { prefixes: prefixes.into_iter().collect(), keyring: RwLock::new(Arc::new(keyring)) };
        Self { inner, sealer: Arc::new(sealer) }
    }

    /// Replaces the keyring (a reloaded key file). Writes from now on use its first key; running
    /// watches open later events with it.
    pub fn set_keyring(&self, keyring: Keyring) {
        *self.sealer.keyring.write() = Arc::new(keyring);
    }

    /// The keyring in use.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.sealer.keyring()
    }

    /// Whether values under `key` are encrypted.
    pub fn covers(&self, key: &str) -> bool {
        self.sealer.covers(key)
    }

    /// Writes `value` through `write` (sealed when the key is covered); the returned record
    /// carries the plaintext the caller passed, not what was stored.
    async fn write_value<F, Fut>(&self, key: &str, value: Vec<u8>, write: F) -> Result<Record, StoreError>
    where
        F: FnOnce(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = Result<Record, StoreError>>,
    {
        if !self.sealer.covers(key) {
            return write(value).await;
        }
        let sealed = self.sealer.seal(key, &value)?;
        let mut record = write(sealed).await?;
        record.value = value.into();
        Ok(record)
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Record>, StoreError> {
        self.inner.get(key, consistency).await?.map(|r| self.sealer.open(r)).transpose()
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let mut page = self.inner.list(prefix, options).await?;
        page.items = page.items.into_iter().map(|r| self.sealer.open(r)).collect::<Result<_, _>>()?;
        Ok(page)
    }

    async fn create(&self, key: &str, value: Vec<u8>, uid: &str) -> Result<Record, StoreError> {
        self.write_value(key, value, |v| self.inner.create(key, v, uid)).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Record, StoreError> {
        self.write_value(key, value, |v| self.inner.update(key, v, precondition)).await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Record, StoreError> {
        // The delete has happened when this fails to open the last value; the error says so by
        // being indeterminate (Internal).
        let record = self.inner.delete(key, precondition).await?;
        self.sealer.open(record)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let inner = self.inner.watch(prefix, after).await?;
        let sealer = self.sealer.clone();
        Ok(Box::pin(inner.map(move |item| match item {
            Ok(WatchItem::Event(mut event)) => {
                event.record = sealer.open(event.record)?;
                Ok(WatchItem::Event(event))
            }
            other => other,
        })))
    }

    async fn current_revision(&self, consistency: Consistency) -> Result<Revision, StoreError> {
        self.inner.current_revision(consistency).await
    }

    async fn fence_token(&self) -> Result<Option<u64>, StoreError> {
        self.inner.fence_token().await
    }

    async fn write_fenced(&self, fence: u64, write: Write) -> Result<Record, StoreError> {
        match write {
            Write::Create { key, value, uid } => {
                let k = key.clone();
                self.write_value(&k, value, |value| self.inner.write_fenced(fence, Write::Create { key, value, uid }))
                    .await
            }
            Write::Update { key, value, precondition } => {
                let k = key.clone();
                self.write_value(&k, value, |value| {
                    self.inner.write_fenced(fence, Write::Update { key, value, precondition })
                })
                .await
            }
            Write::Delete { key, precondition } => {
                let record = self.inner.write_fenced(fence, Write::Delete { key, precondition }).await?;
                self.sealer.open(record)
            }
        }
    }

    async fn needs_rewrite(&self, record: &Record) -> bool {
        if !self.sealer.covers(&record.key) {
            return self.inner.needs_rewrite(record).await;
        }
        // The caller read `record` linearizably, so local state has reached its revision. A
        // different revision means a newer write, which sealed with its writer's current key.
        match self.inner.get(&record.key, Consistency::Local).await {
            Ok(Some(stored)) if stored.revision == record.revision => {
                !self.sealer.keyring().sealed_with_primary(&stored.value)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::EventKind;
    use crate::MemStore;

    const SECRETS: &str = "/registry/core/secrets/";

    fn keyring(names: &[&str]) -> Keyring {
        Keyring::new(names.iter().map(|n| (n.to_string(), key_bytes(n)))).expect("keyring")
    }

    /// A deterministic key per name, so two keyrings agree on a name's key.
    fn key_bytes(name: &str) -> [u8; KEY_LEN] {
        let mut k = [7u8; KEY_LEN];
        for (i, b) in name.bytes().enumerate() {
            k[i % KEY_LEN] ^= b;
        }
        k
    }

    fn setup(names: &[&str]) -> (Arc<MemStore>, EncryptedStore) {
        let mem = Arc::new(MemStore::new());
        let enc = EncryptedStore::new(mem.clone(), [SECRETS.to_string()], keyring(names));
        (mem, enc)
    }

    async fn raw(mem: &MemStore, key: &str) -> Vec<u8> {
        mem.get(key, Consistency::Linearizable).await.expect("get").expect("present").value.to_vec()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn internal(result: Result<impl fmt::Debug, StoreError>) -> String {
        match result {
            Err(StoreError::Internal(m)) => m,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn values_round_trip_and_are_sealed_inside() {
        let (mem, enc) = setup(&["key1"]);
        let key = format!("{SECRETS}default/s");
        let created = enc.create(&key, b"hunter2".to_vec(), "u").await.expect("create");
        assert_eq!(created.value, &b"hunter2"[..], "create returns the plaintext");
        let stored = raw(&mem, &key).await;
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "stored {stored:?}");
        assert!(!contains(&stored, b"hunter2"), "plaintext inside the stored value");
        assert_eq!(stored.len(), b"k8s:enc:aesgcm:v1:key1:".len() + NONCE_LEN + 7 + TAG_LEN);

        let got = enc.get(&key, Consistency::Linearizable).await.expect("get").expect("present");
        assert_eq!(got, created);
        let page = enc.list(SECRETS, ListOptions::default()).await.expect("list");
        assert_eq!(page.items, vec![created.clone()]);
        let everything = enc.list("", ListOptions::default()).await.expect("list all");
        assert_eq!(everything.items, vec![created.clone()], "opened by record key, not list prefix");

        let updated = enc.update(&key, b"hunter3".to_vec(), Precondition::revision(created.revision)).await;
        let updated = updated.expect("update");
        assert_eq!(updated.value, &b"hunter3"[..]);
        assert!(!contains(&raw(&mem, &key).await, b"hunter3"));
        let deleted = enc.delete(&key, Precondition::none()).await.expect("delete");
        assert_eq!(deleted.value, &b"hunter3"[..], "delete returns the last plaintext");

        let mut watch = enc.watch("", 0).await.expect("watch");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
                Ok(Some(Ok(WatchItem::Event(e)))) => seen.push((e.kind, e.record.value.to_vec())),
                Ok(Some(Ok(WatchItem::Progress(_)))) => {}
                other => panic!("watch: {other:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                (EventKind::Created, b"hunter2".to_vec()),
                (EventKind::Updated, b"hunter3".to_vec()),
                (EventKind::Deleted, b"hunter3".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn every_write_gets_a_fresh_nonce() {
        let (mem, enc) = setup(&["key1"]);
        let (a, b) = (format!("{SECRETS}ns/a"), format!("{SECRETS}ns/b"));
        enc.create(&a, b"same".to_vec(), "u").await.expect("create");
        let first = raw(&mem, &a).await;
        enc.update(&a, b"same".to_vec(), Precondition::none()).await.expect("update");
        let second = raw(&mem, &a).await;
        assert_ne!(first, second, "rewriting one value gives new ciphertext");
        enc.create(&b, b"same".to_vec(), "u").await.expect("create");
        let prefix = b"k8s:enc:aesgcm:v1:key1:".len();
        let nonces = [&first, &second, &raw(&mem, &b).await].map(|v| v[prefix..prefix + NONCE_LEN].to_vec());
        assert!(nonces[0] != nonces[1] && nonces[1] != nonces[2] && nonces[0] != nonces[2], "{nonces:?}");
    }

    #[tokio::test]
    async fn altered_or_moved_ciphertext_is_refused() {
        let (mem, enc) = setup(&["key1"]);
        let (a, b) = (format!("{SECRETS}ns/a"), format!("{SECRETS}ns/b"));
        enc.create(&a, b"secret-a".to_vec(), "u").await.expect("create");
        enc.create(&b, b"secret-b".to_vec(), "u").await.expect("create");
        let good = raw(&mem, &a).await;

        // One flipped bit in the ciphertext.
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        mem.update(&a, tampered, Precondition::none()).await.expect("raw write");
        let msg = internal(enc.get(&a, Consistency::Linearizable).await);
        assert!(msg.contains("authentication") && msg.contains(&a), "{msg}");
        internal(enc.list(SECRETS, ListOptions::default()).await);
        let mut watch = enc.watch(SECRETS, 2).await.expect("watch");
        let item = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("event");
        assert!(matches!(item, Some(Err(StoreError::Internal(_)))), "watch yields the error: {item:?}");

        // A valid ciphertext of another key (the associated data differs).
        mem.update(&b, good, Precondition::none()).await.expect("raw write");
        let msg = internal(enc.get(&b, Consistency::Linearizable).await);
        assert!(msg.contains("authentication"), "{msg}");

        // Truncated, an unknown provider, a malformed name.
        for bad in [&b"k8s:enc:aesgcm:v1:key1:short"[..], b"k8s:enc:kms:v2:x:abc", b"k8s:enc:aesgcm:v1:no-colon"] {
            mem.update(&b, bad.to_vec(), Precondition::none()).await.expect("raw write");
            internal(enc.get(&b, Consistency::Linearizable).await);
        }
    }

    #[tokio::test]
    async fn a_key_missing_from_the_keyring_is_named() {
        let (mem, old) = setup(&["key0"]);
        let key = format!("{SECRETS}ns/a");
        old.create(&key, b"v".to_vec(), "u").await.expect("create");
        let new = EncryptedStore::new(mem.clone(), [SECRETS.to_string()], keyring(&["key1"]));
        let msg = internal(new.get(&key, Consistency::Linearizable).await);
        assert!(msg.contains("\"key0\"") && msg.contains("key1"), "{msg}");
        // A key of the same name but other bytes fails authentication.
        let impostor = Keyring::new([("key0".to_string(), [1u8; KEY_LEN])]).expect("keyring");
        new.set_keyring(impostor);
        let msg = internal(new.get(&key, Consistency::Linearizable).await);
        assert!(msg.contains("authentication"), "{msg}");
    }

    #[tokio::test]
    async fn plaintext_written_before_encryption_stays_readable() {
        let (mem, enc) = setup(&["key1"]);
        let key = format!("{SECRETS}ns/legacy");
        mem.create(&key, br#"{"data":{"a":"Yg=="}}"#.to_vec(), "u").await.expect("raw create");
        let got = enc.get(&key, Consistency::Linearizable).await.expect("get").expect("present");
        assert_eq!(got.value, &br#"{"data":{"a":"Yg=="}}"#[..]);
        enc.update(&key, got.value.to_vec(), Precondition::none()).await.expect("rewrite");
        assert!(raw(&mem, &key).await.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "rewriting encrypts it");
    }

    #[tokio::test]
    async fn rotation_keeps_old_values_readable() {
        let (mem, enc) = setup(&["key1"]);
        let (a, b) = (format!("{SECRETS}ns/a"), format!("{SECRETS}ns/b"));
        enc.create(&a, b"old".to_vec(), "u").await.expect("create");
        enc.set_keyring(keyring(&["key2", "key1"]));
        assert_eq!(enc.keyring().primary(), "key2");
        let got = enc.get(&a, Consistency::Linearizable).await.expect("get").expect("present");
        assert_eq!(got.value, &b"old"[..], "readable with the old key second");
        enc.create(&b, b"new".to_vec(), "u").await.expect("create");
        assert!(raw(&mem, &b).await.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        // Rewrite everything, then drop the old key.
        enc.update(&a, got.value.to_vec(), Precondition::none()).await.expect("rewrite");
        assert!(raw(&mem, &a).await.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        enc.set_keyring(keyring(&["key2"]));
        let page = enc.list(SECRETS, ListOptions::default()).await.expect("list");
        let values: Vec<_> = page.items.into_iter().map(|r| r.value).collect();
        assert_eq!(values, [b"old".to_vec(), b"new".to_vec()]);
    }

    #[tokio::test]
    async fn outdated_values_ask_for_a_rewrite() {
        let (mem, enc) = setup(&["key1"]);
        let (a, legacy) = (format!("{SECRETS}ns/a"), format!("{SECRETS}ns/legacy"));
        let rec = enc.create(&a, b"v".to_vec(), "u").await.expect("create");
        assert!(!enc.needs_rewrite(&rec).await, "sealed with the first key");
        let plain = mem.create(&legacy, b"old".to_vec(), "u").await.expect("raw create");
        assert!(enc.needs_rewrite(&plain).await, "plaintext under the prefix");
        enc.set_keyring(keyring(&["key11", "key1"]));
        assert!(enc.needs_rewrite(&rec).await, "sealed with an older key (key1 is a prefix of key11)");
        let rec = enc.update(&a, rec.value.to_vec(), Precondition::none()).await.expect("rewrite");
        assert!(!enc.needs_rewrite(&rec).await);
        let stale = Record { revision: rec.revision - 1, ..rec };
        assert!(!enc.needs_rewrite(&stale).await, "a record that is not the stored one");
        let other = mem.create("/registry/core/configmaps/ns/c", b"x".to_vec(), "u").await.expect("raw create");
        assert!(!enc.needs_rewrite(&other).await, "outside the prefixes");
        let fenced = crate::FencedStore::new(Arc::new(enc), 1);
        assert!(fenced.needs_rewrite(&plain).await, "wrappers forward the question");
    }

    #[tokio::test]
    async fn other_keys_pass_through_untouched() {
        let (mem, enc) = setup(&["key1"]);
        let key = "/registry/core/configmaps/ns/c";
        enc.create(key, b"plain".to_vec(), "u").await.expect("create");
        assert_eq!(raw(&mem, key).await, b"plain");
        // Even a value that looks sealed is returned as stored outside the prefixes.
        mem.update(key, b"k8s:enc:aesgcm:v1:key9:xyz".to_vec(), Precondition::none()).await.expect("raw");
        let got = enc.get(key, Consistency::Linearizable).await.expect("get").expect("present");
        assert_eq!(got.value, &b"k8s:enc:aesgcm:v1:key9:xyz"[..]);
        assert!(!enc.covers(key) && enc.covers(&format!("{SECRETS}ns/s")));
    }

    #[tokio::test]
    async fn fenced_writes_are_sealed_too() {
        let (mem, enc) = setup(&["key1"]);
        let token = enc.fence_token().await.expect("token").expect("leads");
        let key = format!("{SECRETS}ns/f");
        let c = enc
            .write_fenced(token, Write::Create { key: key.clone(), value: b"one".to_vec(), uid: "u".into() })
            .await
            .expect("create");
        assert_eq!(c.value, &b"one"[..]);
        assert!(is_encrypted(&raw(&mem, &key).await));
        let u = Write::Update { key: key.clone(), value: b"two".to_vec(), precondition: Precondition::none() };
        assert_eq!(enc.write_fenced(token, u).await.expect("update").value, &b"two"[..]);
        let stored = raw(&mem, &key).await;
        assert!(is_encrypted(&stored) && !contains(&stored, b"two"));
        let stale = Write::Update { key: key.clone(), value: b"x".to_vec(), precondition: Precondition::none() };
        assert!(matches!(enc.write_fenced(token + 1, stale).await, Err(StoreError::Fenced { .. })));
        let d = enc.write_fenced(token, Write::Delete { key, precondition: Precondition::none() }).await;
        assert_eq!(d.expect("delete").value, &b"two"[..]);
    }

    #[test]
    fn keyrings_are_validated() {
        assert_eq!(Keyring::new([]).expect_err("empty"), KeyringError::Empty);
        let dup = Keyring::new([("a".to_string(), [0; KEY_LEN]), ("a".to_string(), [1; KEY_LEN])]);
        assert_eq!(dup.expect_err("duplicate"), KeyringError::Duplicate("a".into()));
        for bad in ["", "a:b", "a b", &"x".repeat(65)] {
            let err = Keyring::new([(bad.to_string(), [0; KEY_LEN])]).expect_err("bad name");
            assert!(matches!(err, KeyringError::InvalidName(_)), "{bad:?}: {err:?}");
        }
        let ring = keyring(&["k2", "k1"]);
        assert_eq!(ring.names(), ["k2", "k1"]);
        let shown = format!("{ring:?}");
        assert!(shown.contains("k2") && !shown.contains("cipher"), "{shown}");
    }

    #[tokio::test]
    async fn encrypted_mem_store_passes_conformance() {
        let mem = Arc::new(MemStore::new());
        // Every key is encrypted, so the suite exercises sealing and opening on every path.
        let enc = Arc::new(EncryptedStore::new(mem.clone(), [String::new()], keyring(&["key1"])));
        crate::conformance::run_all(enc.as_ref(), "conformance").await;
        crate::conformance::run_concurrent(enc.clone(), "concurrent").await;
        let stored = mem.list("", ListOptions::default()).await.expect("list");
        assert!(stored.items.len() > 50, "the suite wrote {} objects", stored.items.len());
        for r in &stored.items {
            assert!(r.value.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "{} is stored in plaintext", r.key);
        }
    }
}
