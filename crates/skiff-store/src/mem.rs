//! An in-memory [`Store`]: the reference implementation for the conformance suite and a fake for
//! unit tests of the layers above.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::validate_key;
use crate::Consistency;
use crate::Event;
use crate::EventKind;
use crate::EventWindow;
use crate::ListOptions;
use crate::ListPage;
use crate::Precondition;
use crate::Record;
use crate::Revision;
use crate::Store;
use crate::StoreError;
use crate::WatchStream;
use crate::Write;

/// A single-process store; every read is trivially linearizable.
pub struct MemStore {
    objects: Mutex<BTreeMap<String, Record>>,
    window: Arc<EventWindow>,
    /// The fencing token of this process's leadership; it always leads, until `step_down`.
    term: AtomicU64,
}

impl MemStore {
    pub fn new() -> Self {
        Self::with_window(100_000)
    }

    /// A store whose watch window keeps `capacity` events.
    pub fn with_window(capacity: usize) -> Self {
        Self { objects: Mutex::new(BTreeMap::new()), window: EventWindow::new(0, capacity), term: AtomicU64::new(1) }
    }

    /// Ends the current leadership and starts the next one, as a leader change would: writes
    /// fenced with the old token fail from now on. For tests of leader-only components.
    pub fn step_down(&self) {
        let _writes = self.objects.lock();
        self.term.fetch_add(1, Ordering::SeqCst);
    }

    fn write(
        &self,
        key: &str,
        fence: Option<u64>,
        f: impl FnOnce(Option<&Record>, Revision) -> Result<(EventKind, Record), StoreError>,
    ) -> Result<Record, StoreError> {
        validate_key(key)?;
        let mut objects = self.objects.lock();
        // Checked under the write lock, so a step-down cannot slip between check and write.
        let term = self.term.load(Ordering::SeqCst);
        if let Some(fence) = fence.filter(|fence| *fence != term) {
            return Err(StoreError::Fenced {
                key: key.to_string(),
                reason: format!("the leadership of term {fence} has ended (current term {term})"),
            });
        }
        let rev = self.window.head() + 1;
        let (kind, record) = f(objects.get(key), rev)?;
        match kind {
            EventKind::Deleted => {
                objects.remove(key);
            }
            _ => {
                objects.insert(key.to_string(), record.clone());
            }
        }
        self.window.push(Event { kind, record: record.clone() });
        Ok(record)
    }
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str, _consistency: Consistency) -> Result<Option<Record>, StoreError> {
        validate_key(key)?;
        Ok(self.objects.lock().get(key).cloned())
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let objects = self.objects.lock();
        let revision = self.window.head();
        let start = options.continue_after.clone().unwrap_or_else(|| prefix.to_string());
        let limit = options.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut continue_after = None;
        for (k, v) in objects.range(start..) {
            if !k.starts_with(prefix) {
                break;
            }
            if Some(k) == options.continue_after.as_ref() {
                continue;
            }
            if items.len() == limit {
                continue_after = items.last().map(|r: &Record| r.key.clone());
                break;
            }
            items.push(v.clone());
        }
        Ok(ListPage { items, revision, continue_after })
    }

    async fn create(&self, key: &str, value: Vec<u8>, uid: &str) -> Result<Record, StoreError> {
        self.apply(None, Write::Create { key: key.to_string(), value, uid: uid.to_string() })
    }

    async fn update(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Record, StoreError> {
        self.apply(None, Write::Update { key: key.to_string(), value, precondition })
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Record, StoreError> {
        self.apply(None, Write::Delete { key: key.to_string(), precondition })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.window.watch(prefix, after)
    }

    async fn current_revision(&self, _consistency: Consistency) -> Result<Revision, StoreError> {
        Ok(self.window.head())
    }

    async fn fence_token(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.term.load(Ordering::SeqCst)))
    }

    async fn write_fenced(&self, fence: u64, write: Write) -> Result<Record, StoreError> {
        self.apply(Some(fence), write)
    }
}

impl MemStore {
    fn apply(&self, fence: Option<u64>, write: Write) -> Result<Record, StoreError> {
        match write {
            Write::Create { key, value, uid } => self.write(&key, fence, |current, rev| {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists { key: key.clone() });
                }
                let record = Record { key: key.clone(), value: value.into(), revision: rev, create_revision: rev, uid };
                Ok((EventKind::Created, record))
            }),
            Write::Update { key, value, precondition } => self.write(&key, fence, |current, rev| {
                let current = current.ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
                precondition.check(current).map_err(|reason| StoreError::Conflict { key: key.clone(), reason })?;
                Ok((EventKind::Updated, Record { value: value.into(), revision: rev, ..current.clone() }))
            }),
            Write::Delete { key, precondition } => self.write(&key, fence, |current, rev| {
                let current = current.ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
                precondition.check(current).map_err(|reason| StoreError::Conflict { key: key.clone(), reason })?;
                Ok((EventKind::Deleted, Record { revision: rev, ..current.clone() }))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mem_store_passes_conformance() {
        let store = MemStore::new();
        crate::conformance::run_all(&store, "conformance").await;
    }

    #[tokio::test]
    async fn small_window_expires_old_watch_starts() {
        let store = MemStore::with_window(3);
        for i in 0..10 {
            store.create(&format!("k{i}"), vec![], "u").await.expect("create");
        }
        assert!(matches!(store.watch("", 1).await, Err(StoreError::Expired { .. })));
        assert!(store.watch("", 8).await.is_ok());
    }
}
