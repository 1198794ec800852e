//! A view of a store whose every write is fenced with one token.

use std::sync::Arc;

use async_trait::async_trait;

use crate::Consistency;
use crate::ListOptions;
use crate::ListPage;
use crate::Precondition;
use crate::Record;
use crate::Revision;
use crate::Store;
use crate::StoreError;
use crate::WatchStream;
use crate::Write;

/// `inner`, with every create, update and delete sent through [`Store::write_fenced`] with
/// `fence`. Reads and watches pass through. Code written against plain [`Store`] writes (the API
/// server's write paths) becomes fenced by being handed this instead.
pub struct FencedStore {
    inner: Arc<dyn Store>,
    fence: u64,
}

impl FencedStore {
    pub fn new(inner: Arc<dyn Store>, fence: u64) -> Self {
        Self { inner, fence }
    }
}

#[async_trait]
impl Store for FencedStore {
    async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Record>, StoreError> {
        self.inner.get(key, consistency).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, options).await
    }

    async fn create(&self, key: &str, value: Vec<u8>, uid: &str) -> Result<Record, StoreError> {
        let write = Write::Create { key: key.to_string(), value, uid: uid.to_string() };
        self.inner.write_fenced(self.fence, write).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Record, StoreError> {
        self.inner.write_fenced(self.fence, Write::Update { key: key.to_string(), value, precondition }).await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Record, StoreError> {
        self.inner.write_fenced(self.fence, Write::Delete { key: key.to_string(), precondition }).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, after).await
    }

    async fn current_revision(&self, consistency: Consistency) -> Result<Revision, StoreError> {
        self.inner.current_revision(consistency).await
    }

    async fn fence_token(&self) -> Result<Option<u64>, StoreError> {
        self.inner.fence_token().await
    }

    async fn write_fenced(&self, fence: u64, write: Write) -> Result<Record, StoreError> {
        self.inner.write_fenced(fence, write).await
    }

    async fn needs_rewrite(&self, record: &Record) -> bool {
        self.inner.needs_rewrite(record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    #[tokio::test]
    async fn every_write_carries_the_token() {
        let mem = Arc::new(MemStore::new());
        let token = mem.fence_token().await.expect("token").expect("leads");
        let fenced = FencedStore::new(mem.clone(), token);
        let rec = fenced.create("k", b"1".to_vec(), "u").await.expect("current token");
        mem.step_down();
        let err = fenced.update("k", b"2".to_vec(), Precondition::revision(rec.revision)).await.expect_err("stale");
        assert!(matches!(err, StoreError::Fenced { .. }), "got {err:?}");
        let err = fenced.create("k2", b"1".to_vec(), "u").await.expect_err("stale");
        assert!(matches!(err, StoreError::Fenced { .. }), "got {err:?}");
        let err = fenced.delete("k", Precondition::none()).await.expect_err("stale");
        assert!(matches!(err, StoreError::Fenced { .. }), "got {err:?}");
        assert_eq!(
            fenced.get("k", Consistency::Linearizable).await.expect("read").map(|r| r.value.to_vec()),
            Some(b"1".to_vec())
        );
        // Plain writes to the store itself are not fenced.
        mem.update("k", b"3".to_vec(), Precondition::none()).await.expect("unfenced");
    }
}
