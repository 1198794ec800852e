//! The Raft log in segment files ([`crate::segments`]); the vote, the committed id and the purge
//! point in RocksDB's `meta` column family.
//!
//! # Durability contract
//!
//! * `save_vote` writes with fsync before returning: a server never forgets a vote it gave.
//! * `append` writes the entries without fsync and hands the completion callback to a flusher
//!   thread, which syncs the segment files of every callback queued so far once and only then
//!   reports the entries flushed. Several appends in flight share one fsync (group commit);
//!   openraft counts an entry toward a quorum only after its callback. A leader's own appends
//!   that queue up behind a sync are synced at most every [`LEADER_SYNC_INTERVAL`] (see
//!   [`Pacer`]); a follower's are synced as soon as the previous sync ends.
//! * `truncate_after` is durable when it returns.
//! * `save_committed` is not made durable on its own (openraft treats it as a hint); a crash may
//!   leave an older committed id, never a newer one.
//! * `purge` first makes the state machine durable up to the purge point (its column families
//!   are written without the WAL, see [`crate::state_machine`]: they are flushed to table files),
//!   then records the purge point with fsync, and only then unlinks the segments it covers.
//!
//! Data dirs from before the segment files kept the log in RocksDB's `logs` column family; the
//! first open moves it out (see [`LogStore::open`]).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use parking_lot::Mutex;
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
use crate::segments;
use crate::segments::Batch;
use crate::segments::Segments;
use crate::segments::ToSync;
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

fn cf<'a>(db: &'a DB, name: &str) -> io::Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

fn get_meta<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, CF_META)?, key).map_err(io_err)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// The log store; cheap to clone (clones share the files, the database and the flusher).
pub struct LogStore {
    db: Arc<DB>,
    log: Arc<Mutex<Log>>,
    flusher: Arc<Flusher>,
    /// The buffer appends frame their records in, kept between appends.
    batch: Batch,
    /// This server's id, which tells its own entries (appended as leader) from a leader's.
    own_id: Option<u64>,
}

impl Clone for LogStore {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            log: self.log.clone(),
            flusher: self.flusher.clone(),
            batch: Batch::default(),
            own_id: self.own_id,
        }
    }
}

/// The largest append buffer kept for the next append (a full AppendEntries of 2 KiB objects
/// fits; a bigger one is freed).
const KEEP_BATCH_BYTES: usize = 8 << 20;

/// The segments, the id of their last entry (`None` when they hold none) and the newest entries.
struct Log {
    segments: Segments,
    last: Option<LogId>,
    recent: Recent,
}

/// The newest entries, as appended: replication to every follower and the state machine read
/// each entry soon after it is appended, and a clone shares the values ([`bytes::Bytes`]) where a
/// read from the files copies, checks and decodes them every time.
#[derive(Default)]
struct Recent {
    entries: VecDeque<Entry>,
}

/// How many entries [`Recent`] keeps (about 14 MiB of 3.5 KiB pods).
const RECENT_ENTRIES: usize = 4096;

impl Recent {
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    fn push(&mut self, entry: Entry) {
        let follows = self.entries.back().is_none_or(|last| last.log_id.index + 1 == entry.log_id.index);
        if !follows {
            self.entries.clear();
        }
        self.entries.push_back(entry);
        if self.entries.len() > RECENT_ENTRIES {
            self.entries.pop_front();
        }
    }

    /// Clones of entries `from..to` if all of them are here.
    fn get(&self, from: u64, to: u64) -> Option<Vec<Entry>> {
        let first = self.first()?;
        let end = first + self.entries.len() as u64;
        if from < first || to > end || from >= to {
            return None;
        }
        Some(self.entries.range((from - first) as usize..(to - first) as usize).cloned().collect())
    }

    /// Forgets entries from `index` on.
    fn truncate_from(&mut self, index: u64) {
        if let Some(first) = self.first() {
            self.entries.truncate(index.saturating_sub(first) as usize);
        }
    }

    /// Forgets entries up to and including `index`.
    fn purge_to(&mut self, index: u64) {
        while self.first().is_some_and(|first| first <= index) {
            self.entries.pop_front();
        }
    }
}

/// An append waiting to reach disk, and whether it holds the leader's own entries.
struct Pending {
    flushed: IOFlushed<TypeConfig>,
    to_sync: ToSync,
    own: bool,
}

/// The thread that syncs the segment files for appends. When the last store clone is dropped,
/// the channel closes and the thread is joined, so nothing it holds outlives the store.
struct Flusher {
    tx: Option<mpsc::Sender<Pending>>,
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
    /// Opens the log in `dir`. When `dir` does not exist yet and the database still holds a log
    /// (a data dir from before segment files), the entries are copied into a new directory that
    /// takes the name `dir` only once complete and synced; then the old copy is deleted.
    pub fn open(db: Arc<DB>, dir: &Path) -> io::Result<Self> {
        let purged: Option<LogId> = get_meta(&db, KEY_PURGED)?;
        if !dir.exists() {
            move_log_out_of_rocksdb(&db, dir, purged.as_ref().map(|l| l.index))?;
        }
        let segments = Segments::open(dir, purged.as_ref().map(|l| l.index))?;
        let mut log = Log { segments, last: None, recent: Recent::default() };
        if let Some((_, last)) = log.segments.bounds() {
            let mut found = None;
            for span in log.segments.locate(last, last + 1) {
                span.read(|_, payload| {
                    found = Some(decode::<Entry>(payload)?.log_id);
                    Ok(())
                })?;
            }
            log.last = found;
        }
        let (flush_tx, flush_rx) = mpsc::channel::<Pending>();
        let thread = std::thread::Builder::new()
            .name("skiff-log-flush".into())
            .spawn(move || flusher(flush_rx))
            .map_err(|e| tracing::error!("cannot start the log flusher: {e}"))
            .ok();
        let flusher = Arc::new(Flusher { tx: Some(flush_tx), thread });
        Ok(Self { db, log: Arc::new(Mutex::new(log)), flusher, batch: Batch::default(), own_id: None })
    }

    /// Tells the store which server it belongs to, so that its appends as leader are paced (see
    /// [`Pacer`]). Without it every append is synced as soon as it can be.
    pub fn with_own_id(mut self, id: u64) -> Self {
        self.own_id = Some(id);
        self
    }

    fn cf(&self, name: &str) -> io::Result<&rocksdb::ColumnFamily> {
        cf(&self.db, name)
    }
}

fn move_log_out_of_rocksdb(db: &DB, dir: &Path, purged: Option<u64>) -> io::Result<()> {
    let logs = cf(db, CF_LOGS)?;
    if db.iterator_cf(logs, IteratorMode::Start).next().is_none() {
        return Ok(());
    }
    let tmp = dir.with_extension("moving");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let mut segments = Segments::open(&tmp, purged)?;
    let mut moved = 0u64;
    let mut batch = Batch::default();
    for item in db.iterator_cf(logs, IteratorMode::Start) {
        let (key, value) = item.map_err(io_err)?;
        batch.push(index_from_key(&key)?, |buf| {
            buf.extend_from_slice(&value);
            Ok(())
        })?;
        if batch.len() == 1024 {
            segments.append(&std::mem::take(&mut batch))?.sync()?;
        }
        moved += 1;
    }
    segments.append(&batch)?.sync()?;
    drop(segments);
    std::fs::rename(&tmp, dir)?;
    if let Some(parent) = dir.parent() {
        File::open(parent)?.sync_all()?;
    }
    let mut clear = WriteBatch::default();
    clear.delete_range_cf(logs, index_key(0), index_key(u64::MAX));
    clear.delete_cf(logs, index_key(u64::MAX));
    db.write_opt(clear, &synced()).map_err(io_err)?;
    tracing::info!(entries = moved, dir = %dir.display(), "moved the Raft log out of RocksDB into segment files");
    Ok(())
}

/// How often a leader syncs its own appends at most while they queue up. A write commits once a
/// majority holds it, and with the followers up that majority does not need the leader: a
/// follower's copy arrives over the network and takes a sync of its own (1.2–1.5 ms on the
/// benchmark machine, against 0.7 ms for the leader's). Syncing the leader's log as often as it
/// can therefore buys no earlier commit, only more syncs, each a wake-up, a system call and a
/// trip to the disk; spaced out, each carries more entries.
pub const LEADER_SYNC_INTERVAL: Duration = Duration::from_micros(1500);

/// When the flusher starts its next sync: the sans-IO part of the flusher.
///
/// An append that arrives while the flusher is idle is synced at once, so a lone write (or a
/// leader without load) never waits. Only the leader's own appends that were already queued
/// when the previous sync ended wait, until [`LEADER_SYNC_INTERVAL`] after that sync began. A
/// follower's appends never wait: its acknowledgement is what commits a write.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    last_start: Option<Instant>,
}

impl Pacer {
    fn new(interval: Duration) -> Self {
        Self { interval, last_start: None }
    }

    /// How long to wait before syncing a batch whose first append is `own` (the leader's) and was
    /// `queued` (waiting when the previous sync ended).
    fn wait(&self, queued: bool, own: bool, now: Instant) -> Duration {
        match self.last_start {
            Some(start) if queued && own => (start + self.interval).saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }

    fn started(&mut self, at: Instant) {
        self.last_start = Some(at);
    }
}

/// Whether `last` (an append's last entry) was written by the server `own_id`, as its leader: a
/// follower's entries carry another server's id.
fn written_by(own_id: Option<u64>, last: Option<&Entry>) -> bool {
    own_id.is_some_and(|id| last.is_some_and(|e| e.log_id.leader_id.node_id == id))
}

fn flusher(rx: mpsc::Receiver<Pending>) {
    flush_loop(
        rx,
        LEADER_SYNC_INTERVAL,
        |pending| pending.own,
        |batch| {
            let started = Instant::now();
            let result = segments::sync_all(batch.iter().map(|pending| &pending.to_sync)).map_err(|e| e.to_string());
            crate::metrics::LOG_SYNC.observe(started.elapsed());
            metrics::record_flush(batch.len());
            for pending in batch {
                pending.flushed.io_completed(result.clone().map_err(io::Error::other));
            }
        },
    );
}

/// Hands `sync` every batch of what is queued on `rx`, paced by a [`Pacer`] with `interval`
/// (`own` says whether an item is the leader's), until the channel closes and is drained.
fn flush_loop<P>(rx: mpsc::Receiver<P>, interval: Duration, own: impl Fn(&P) -> bool, mut sync: impl FnMut(Vec<P>)) {
    let mut pacer = Pacer::new(interval);
    loop {
        let (first, queued) = match rx.try_recv() {
            Ok(first) => (first, true),
            Err(mpsc::TryRecvError::Empty) => match rx.recv() {
                Ok(first) => (first, false),
                Err(mpsc::RecvError) => return,
            },
            Err(mpsc::TryRecvError::Disconnected) => return,
        };
        let wait = pacer.wait(queued, own(&first), Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        pacer.started(Instant::now());
        sync(batch);
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
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        // Located under the lock, read outside it: appends do not wait for reads.
        let spans = {
            let log = self.log.lock();
            if let Some(entries) = log.recent.get(start, end) {
                return Ok(entries);
            }
            log.segments.locate(start, end)
        };
        let mut out = Vec::new();
        for span in spans {
            span.read(|_, payload| {
                out.push(decode::<Entry>(payload)?);
                Ok(())
            })?;
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        get_meta(&self.db, KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = get_meta(&self.db, KEY_PURGED)?;
        let last = self.log.lock().last;
        Ok(LogState { last_log_id: last.or(last_purged), last_purged_log_id: last_purged })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.db.put_cf_opt(self.cf(CF_META)?, KEY_VOTE, encode(vote)?, &synced()).map_err(io_err)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Only a hint for a restart (openraft re-learns the commit point from the leader), so it
        // skips the WAL: it reaches disk with the next memtable flush, never ahead of the log.
        let mut unlogged = WriteOptions::default();
        unlogged.disable_wal(true);
        self.db.put_cf_opt(self.cf(CF_META)?, KEY_COMMITTED, encode(&committed)?, &unlogged).map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(get_meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch = &mut self.batch;
        batch.clear(KEEP_BATCH_BYTES);
        let mut appended: Vec<Entry> = Vec::new();
        for entry in entries {
            batch.push(entry.log_id.index, |buf| {
                bincode::serialize_into(buf, &entry).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            })?;
            appended.push(entry);
        }
        let own = written_by(self.own_id, appended.last());
        let file = {
            let mut log = self.log.lock();
            let file = log.segments.append(batch)?;
            if let Some(entry) = appended.last() {
                log.last = Some(entry.log_id);
            }
            for entry in appended {
                log.recent.push(entry);
            }
            file
        };
        metrics::record_entries(batch.len());
        let pending = Pending { flushed: callback, to_sync: file, own };
        let sent = self.flusher.tx.as_ref().is_some_and(|tx| tx.send(pending).is_ok());
        if !sent {
            return Err(io::Error::other("log flusher stopped"));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut log = self.log.lock();
        if log.last.is_none_or(|last| last.index < from) {
            return Ok(());
        }
        log.segments.truncate_from(from)?;
        log.recent.truncate_from(from);
        log.last = if log.segments.bounds().is_some() { last_log_id } else { None };
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Make the state machine durable up to here before the log that could rebuild it goes.
        // Openraft purges only entries a snapshot covers, so they are all applied by now.
        let mut wait = FlushOptions::default();
        wait.set_wait(true);
        self.db.flush_cfs_opt(&[self.cf(CF_KV)?, self.cf(CF_SM)?], &wait).map_err(io_err)?;
        self.db.flush_wal(true).map_err(io_err)?;
        self.db.put_cf_opt(self.cf(CF_META)?, KEY_PURGED, encode(&log_id)?, &synced()).map_err(io_err)?;
        let mut log = self.log.lock();
        log.segments.purge_to(log_id.index)?;
        log.recent.purge_to(log_id.index);
        if log.segments.bounds().is_none() {
            log.last = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::blank_ent;
    use openraft::testing::log_id;

    use super::*;
    use crate::datadir;

    #[test]
    fn a_leader_paces_only_its_own_queued_appends() {
        let interval = Duration::from_micros(1500);
        let mut pacer = Pacer::new(interval);
        let t0 = Instant::now();
        assert_eq!(pacer.wait(true, true, t0), Duration::ZERO, "the first sync never waits");
        pacer.started(t0);
        let soon = t0 + Duration::from_micros(500);
        assert_eq!(pacer.wait(true, true, soon), Duration::from_micros(1000), "queued, own: waits out the interval");
        assert_eq!(pacer.wait(false, true, soon), Duration::ZERO, "an append to an idle flusher is synced at once");
        assert_eq!(pacer.wait(true, false, soon), Duration::ZERO, "a follower's appends never wait");
        let late = t0 + Duration::from_millis(2);
        assert_eq!(pacer.wait(true, true, late), Duration::ZERO, "the interval has passed");
        pacer.started(late);
        assert_eq!(pacer.wait(true, true, late + Duration::from_micros(100)), Duration::from_micros(1400));
    }

    /// The flusher's loop with a stand-in disk (each sync takes 2 ms): items sent while a sync
    /// runs queue up. The interval is long (150 ms) so that a loaded machine cannot fake or hide
    /// the pacing.
    fn run_flush_loop(own: bool, items: usize) -> Vec<(Instant, usize)> {
        let (tx, rx) = mpsc::channel::<bool>();
        let syncs = Arc::new(Mutex::new(Vec::new()));
        let recorded = syncs.clone();
        let thread = std::thread::spawn(move || {
            flush_loop(
                rx,
                Duration::from_millis(150),
                |own| *own,
                |batch| {
                    recorded.lock().push((Instant::now(), batch.len()));
                    std::thread::sleep(Duration::from_millis(2));
                },
            )
        });
        for _ in 0..items {
            tx.send(own).expect("flusher runs");
            std::thread::sleep(Duration::from_micros(500));
        }
        drop(tx);
        thread.join().expect("flusher ends once the channel closes");
        let syncs = syncs.lock().clone();
        assert_eq!(syncs.iter().map(|(_, n)| n).sum::<usize>(), items, "every item is synced exactly once");
        syncs
    }

    #[test]
    fn the_flusher_spaces_the_leaders_queued_syncs_and_not_a_followers() {
        let leader = run_flush_loop(true, 40);
        for pair in leader.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= Duration::from_millis(150), "a leader's syncs are paced: {leader:?}");
        }
        // 40 items 0.5 ms apart take about 20 ms to send: the first sync, then one paced sync
        // that carries everything else.
        assert!(leader.len() <= 3, "{leader:?}");

        let follower = run_flush_loop(false, 40);
        assert!(
            follower.len() >= 4,
            "a follower's queued appends are synced as soon as the last sync ends: {follower:?}"
        );
        for pair in follower.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 < Duration::from_millis(150),
                "a follower's syncs are not paced: {follower:?}"
            );
        }
    }

    #[test]
    fn own_entries_are_told_by_their_leader_id() {
        let mine = blank_ent::<TypeConfig>(3, 1, 10);
        let theirs = blank_ent::<TypeConfig>(3, 2, 11);
        assert!(written_by(Some(1), Some(&mine)));
        assert!(!written_by(Some(1), Some(&theirs)), "a follower appends its leader's entries");
        assert!(!written_by(None, Some(&mine)), "a store that does not know its id paces nothing");
        assert!(!written_by(Some(1), None));
    }

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

        let mut log = LogStore::open(db.clone(), &dir.path().join("log")).expect("open log");
        log.purge(log_id::<TypeConfig>(1, 1, 5)).await.expect("purge");
        assert_eq!((unflushed(&db, CF_KV), unflushed(&db, CF_SM)), (0, 0), "purge left the state machine unflushed");
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(5));
    }

    /// A data dir from before segment files: the log in RocksDB moves into segments on the
    /// first open, entries below the purge point stay behind, and later opens find it there.
    #[tokio::test]
    async fn a_log_kept_in_rocksdb_moves_into_segment_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = datadir::open(&dir.path().join("data"), 1).expect("data dir");
        let db = data.db.clone();
        let logs = db.cf_handle(CF_LOGS).expect("logs");
        for index in 4..=9 {
            let entry: Entry = blank_ent::<TypeConfig>(2, 1, index);
            db.put_cf(logs, index_key(index), encode(&entry).expect("encode")).expect("old log");
        }
        db.put_cf(db.cf_handle(CF_META).expect("meta"), KEY_PURGED, encode(&log_id::<TypeConfig>(1, 1, 5)).expect("e"))
            .expect("purge point");

        let mut log = LogStore::open(db.clone(), &data.log_path()).expect("open moves the log");
        let moved: Vec<u64> =
            log.try_get_log_entries(0..100).await.expect("read").iter().map(|e| e.log_id.index).collect();
        assert_eq!(moved, [6, 7, 8, 9]);
        assert!(db.iterator_cf(logs, IteratorMode::Start).next().is_none(), "the old copy is gone");
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|l| l.index), Some(9));
        drop(log);

        let mut log = LogStore::open(db, &data.log_path()).expect("reopen");
        assert_eq!(log.try_get_log_entries(6..8).await.expect("read").len(), 2);
    }

    /// Entries read back from the files are the entries the cache of recent ones holds.
    #[tokio::test]
    async fn reads_from_the_files_equal_reads_from_the_cache() {
        use openraft::entry::EntryPayload;

        use crate::command::Command;

        let dir = tempfile::tempdir().expect("tempdir");
        let data = datadir::open(&dir.path().join("data"), 1).expect("data dir");
        let mut log = LogStore::open(data.db.clone(), &data.log_path()).expect("open");
        let total = RECENT_ENTRIES as u64 + 10;
        let entries: Vec<Entry> = (1..=total)
            .map(|index| Entry {
                log_id: log_id::<TypeConfig>(1, 1, index),
                payload: EntryPayload::Normal(Command::Create {
                    key: format!("/registry/pods/p{index}"),
                    value: format!("{{\"n\":{index}}}").into_bytes().into(),
                    uid: String::new(),
                }),
            })
            .collect();
        for chunk in entries.chunks(100) {
            log.append(chunk.to_vec(), IOFlushed::noop()).await.expect("append");
        }
        let cached_from = log.log.lock().recent.first().expect("cached");
        assert_eq!(cached_from, total - RECENT_ENTRIES as u64 + 1, "the cache keeps the newest entries");

        let from_files = log.try_get_log_entries(1..=total).await.expect("files");
        let from_cache = log.try_get_log_entries(cached_from..=total).await.expect("cache");
        assert_eq!(from_files, entries);
        assert_eq!(from_cache, entries[(cached_from - 1) as usize..]);

        log.truncate_after(Some(log_id::<TypeConfig>(1, 1, total - 5))).await.expect("truncate");
        assert_eq!(log.try_get_log_entries(total - 10..).await.expect("read").len(), 6);
        log.purge(log_id::<TypeConfig>(1, 1, total - 7)).await.expect("purge");
        let rest: Vec<u64> = log.try_get_log_entries(..).await.expect("read").iter().map(|e| e.log_id.index).collect();
        assert_eq!(rest, (total - 6..=total - 5).collect::<Vec<_>>());
    }
}
