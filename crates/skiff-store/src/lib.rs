//! The storage contract of skiff.
//!
//! Everything above the store (API server, controllers, scheduler) sees objects only through the
//! [`Store`] trait: opaque bytes under string keys, each carrying the `revision` (the
//! Kubernetes `resourceVersion`) of the change that last wrote it. This crate knows nothing about
//! Raft or RocksDB; `skiff-raft` implements the trait on top of them, [`MemStore`] implements it
//! in memory, and [`conformance`] is the suite every implementation must pass.

pub mod conformance;
pub mod encrypted;
mod error;
mod fenced;
pub mod leadership;
mod mem;
mod types;
mod window;

pub use encrypted::EncryptedStore;
pub use error::StoreError;
pub use fenced::FencedStore;
pub use mem::MemStore;
pub use types::*;
pub use window::EventWindow;
pub use window::WatchStream;

use async_trait::async_trait;

/// Rejects keys no implementation can store (400 at the API edge). Every implementation checks
/// keys with this one function, so they agree on what is valid.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid("empty key".into()));
    }
    Ok(())
}

/// A revisioned key/value object store with compare-and-swap writes and ordered watches.
///
/// # Contract
///
/// * **Revisions.** Every successful write gets a revision strictly greater than every revision
///   handed out before it, store-wide. For the replicated store it is the Raft log index of the
///   entry that made the change, identical on every server.
/// * **Durability.** A write that returned `Ok` is durable: it survives a crash of any minority of
///   servers (for the replicated store) and is visible to every later [`Consistency::Linearizable`]
///   read on any server.
/// * **Atomicity.** A write that returned `Err` other than [`StoreError::Unavailable`] or
///   [`StoreError::Timeout`] changed nothing. After those two the outcome is unknown: the write may
///   or may not have been applied.
/// * **Preconditions** are checked inside the store at the point the write is ordered (inside the
///   state machine for Raft), so two writers holding the same revision can never both succeed.
/// * **Watches** deliver every change with a revision greater than the starting revision, in
///   revision order, exactly once, or end with [`StoreError::Expired`] when that history has been
///   compacted.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one object. `Ok(None)` when absent.
    async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Record>, StoreError>;

    /// Lists objects whose key starts with `prefix`, in key order, one page at a time.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError>;

    /// Creates an object; fails with [`StoreError::AlreadyExists`] if the key is present.
    async fn create(&self, key: &str, value: Vec<u8>, uid: &str) -> Result<Record, StoreError>;

    /// Replaces an existing object's value if `precondition` holds.
    async fn update(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Record, StoreError>;

    /// Removes an object if `precondition` holds; returns the removed object with the revision of
    /// the deletion.
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Record, StoreError>;

    /// Streams changes to keys under `prefix` with revision greater than `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// The highest revision this store has applied (for a linearizable value, read a key first).
    async fn current_revision(&self, consistency: Consistency) -> Result<Revision, StoreError>;

    /// The fencing token of the leadership this process holds right now, or `None` when it holds
    /// none. Leader-only components (scheduler, controllers) act only while this is `Some`, and
    /// tag every write with the token through [`Store::write_fenced`]. For the replicated store
    /// the token is the Raft term in which this server leads; a token is never reused for a later
    /// leadership.
    async fn fence_token(&self) -> Result<Option<u64>, StoreError>;

    /// Performs `write` only if the leadership named by `fence` still holds at the point the
    /// write is ordered; otherwise fails with [`StoreError::Fenced`] and changes nothing. The
    /// check is made where writes are ordered (inside the state machine for Raft, against the term
    /// of the log entry carrying the write), not by the caller, so a deposed leader that wakes up
    /// from a pause cannot get a write accepted however late it notices. The other rules of the
    /// write (preconditions, AlreadyExists, NotFound) apply as for the plain methods.
    async fn write_fenced(&self, fence: u64, write: Write) -> Result<Record, StoreError>;

    /// Whether `record` (as just read from this store) should be written back even though its
    /// value is unchanged, because the stored form is outdated: for [`EncryptedStore`], a value
    /// stored in plaintext or sealed with a key other than the current first key. A caller that
    /// skips no-op updates asks this first, so rewriting an object (`kubectl replace`) moves it
    /// to the current key. Wrappers forward it; plain stores never need it.
    async fn needs_rewrite(&self, record: &Record) -> bool {
        let _ = record;
        false
    }
}
