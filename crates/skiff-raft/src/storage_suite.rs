//! openraft's own storage conformance suite, run against our segment-file log and RocksDB state
//! machine.

use openraft::errors::ErrorSource;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::StorageError;

use crate::datadir;
use crate::log_store::LogStore;
use crate::state_machine::StateMachine;
use crate::TypeConfig;

type Source = <TypeConfig as openraft::RaftTypeConfig>::ErrorSource;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::read(Source::from_error(&e)))?;
        let data =
            datadir::open(&dir.path().join("data"), 1).map_err(|e| StorageError::read(Source::from_string(e)))?;
        let log = LogStore::open(data.db.clone(), &data.log_path())
            .map_err(|e| StorageError::read(Source::from_error(&e)))?;
        let sm = StateMachine::open(data.db.clone(), data.snapshot_path(), 1000, Vec::new())
            .map_err(|e| StorageError::read(Source::from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_storage_passes_the_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await?;
    Ok(())
}
