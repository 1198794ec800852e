//! The Raft log and vote in RocksDB.
//!
//! # Durability contract
//!
//! * `save_vote` writes with fsync before returning: a server never forgets a vote it gave.
//! * `append` writes the entries without fsync and hands the completion callback to a flusher
//!   thread, which fsyncs the WAL once for every callback queued so far and only then reports the
//!   entries flushed. Several appends in flight share one fsync (group commit); openraft counts an
//!   entry toward a quorum only after its callback.
//! * `truncate_after` and `purge` write with fsync. Before purging, the state machine's column
//!   families (written without the WAL, see [`crate::state_machine`]) are flushed to table files
//!   and the WAL is synced, so the state machine is durable up to every entry purged.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::mpsc;
use std::sync::Arc;

use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use rocksdb::Direction;
use rocksdb::FlushOptions;
use rocksdb::IteratorMode;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use rocksdb::DB;

use crate::codec::decode;
use crate::codec::encode;
use crate::codec::index_from_key;
use crate::codec::index_key;
use crate::datadir::CF_KV;
use crate::datadir::CF_LOGS;
use crate::datadir::CF_META;
use crate::datadir::CF_SM;
use crate::Entry;
use crate::LogId;
use crate::TypeConfig;
use crate::Vote;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

fn io_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

fn synced() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

/// The log store; cheap to clone (clones share the database and the flusher).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: Arc<Flusher>,
}

/// The thread that syncs the WAL for appends. When the last store clone is dropped, the channel
/// closes and the thread is joined, so the database it holds is closed before the drop returns:
/// a RocksDB still open while the process exits can abort in its static destructors
/// ("pthread lock: Invalid argument").
struct Flusher {
    tx: Option<mpsc::Sender<IOFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        let flush_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("skiff-log-flush".into())
            .spawn(move || flusher(flush_db, flush_rx))
            .map_err(|e| tracing::error!("cannot start the log flusher: {e}"))
            .ok();
        Self { db, flusher: Arc::new(Flusher { tx: Some(flush_tx), thread }) }
    }

    fn cf(&self, name: &str) -> io::Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| io::Error::other(format!("column family {name} missing")))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.db.get_cf(self.cf(CF_META)?, key).map_err(io_err)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

fn flusher(db: Arc<DB>, rx: mpsc::Receiver<IOFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = db.flush_wal(true);
        metrics::record_flush(batch.len());
        for cb in batch {
            cb.io_completed(result.as_ref().map(|_| ()).map_err(|e| io::Error::other(e.to_string())));
        }
    }
}

/// Counters for how well appends are batched (exported on `/metrics`).
pub mod metrics {
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;

    static FSYNCS: AtomicU64 = AtomicU64::new(0);
    static APPENDS: AtomicU64 = AtomicU64::new(0);
    static ENTRIES: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn record_flush(appends: usize) {
        FSYNCS.fetch_add(1, Ordering::Relaxed);
        APPENDS.fetch_add(appends as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_entries(n: usize) {
        ENTRIES.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// (log fsyncs, appends, entries) since the process started.
    pub fn snapshot() -> (u64, u64, u64) {
        (FSYNCS.load(Ordering::Relaxed), APPENDS.load(Ordering::Relaxed), ENTRIES.load(Ordering::Relaxed))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let from = index_key(start);
        let iter = self.db.iterator_cf(self.cf(CF_LOGS)?, IteratorMode::From(&from, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(io_err)?;
            let idx = index_from_key(&k)?;
            if !range.contains(&idx) {
                break;
            }
            out.push(decode::<Entry>(&v)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let mut iter = self.db.iterator_cf(self.cf(CF_LOGS)?, IteratorMode::End);
        let last = match iter.next() {
            Some(item) => {
                let (_, v) = item.map_err(io_err)?;
                Some(decode::<Entry>(&v)?.log_id)
            }
            None => None,
        };
        Ok(LogState { last_log_id: last.or(last_purged), last_purged_log_id: last_purged })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.db.put_cf_opt(self.cf(CF_META)?, KEY_VOTE, encode(vote)?, &synced()).map_err(io_err)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.db.put_cf(self.cf(CF_META)?, KEY_COMMITTED, encode(&committed)?).map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.cf(CF_LOGS)?;
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for entry in entries {
            batch.put_cf(cf, index_key(entry.log_id.index), encode(&entry)?);
            n += 1;
        }
        self.db.write(batch).map_err(io_err)?;
        metrics::record_entries(n);
        let sent = self.flusher.tx.as_ref().is_some_and(|tx| tx.send(callback).is_ok());
        if !sent {
            return Err(io::Error::other("log flusher stopped"));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_LOGS)?, index_key(from), index_key(u64::MAX));
        batch.delete_cf(self.cf(CF_LOGS)?, index_key(u64::MAX));
        self.db.write_opt(batch, &synced()).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Make the state machine durable up to here before the log that could rebuild it goes.
        // Openraft purges only entries a snapshot covers, so they are all applied by now.
        let mut wait = FlushOptions::default();
        wait.set_wait(true);
        self.db.flush_cfs_opt(&[self.cf(CF_KV)?, self.cf(CF_SM)?], &wait).map_err(io_err)?;
        self.db.flush_wal(true).map_err(io_err)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, KEY_PURGED, encode(&log_id)?);
        batch.delete_range_cf(self.cf(CF_LOGS)?, index_key(0), index_key(log_id.index + 1));
        self.db.write_opt(batch, &synced()).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::log_id;

    use super::*;
    use crate::datadir;

    fn unflushed(db: &DB, cf_name: &str) -> u64 {
        let cf = db.cf_handle(cf_name).expect("column family");
        db.property_int_value_cf(cf, "rocksdb.num-entries-active-mem-table").ok().flatten().unwrap_or(u64::MAX)
    }

    /// The state machine writes without the WAL, so only a flush makes it durable; the entries that
    /// could rebuild it must not go before it is.
    #[tokio::test]
    async fn purging_flushes_the_state_machine_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = datadir::open(&dir.path().join("data"), 1).expect("data dir");
        let db = data.db.clone();
        let mut unlogged = WriteOptions::default();
        unlogged.disable_wal(true);
        let kv = db.cf_handle(CF_KV).expect("kv");
        db.put_cf_opt(kv, b"/registry/pods/a", b"object", &unlogged).expect("write kv");
        let sm = db.cf_handle(CF_SM).expect("sm");
        db.put_cf_opt(sm, b"applied", b"7", &unlogged).expect("write sm");
        assert_eq!((unflushed(&db, CF_KV), unflushed(&db, CF_SM)), (1, 1), "writes start in the memtables");

        let mut log = LogStore::new(db.clone());
        log.purge(log_id::<TypeConfig>(1, 1, 5)).await.expect("purge");
        assert_eq!((unflushed(&db, CF_KV), unflushed(&db, CF_SM)), (0, 0), "purge left the state machine unflushed");
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(5));
    }
}
