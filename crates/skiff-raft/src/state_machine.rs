//! The replicated state: objects in RocksDB, written by applying log entries in order.
//!
//! # Contract
//!
//! * An entry at index `i` that writes an object gives it revision `i`. Preconditions (create on
//!   an absent key, revision and uid matches) are checked here, against the state produced by
//!   every earlier entry, so the outcome is the same on every server.
//! * Data, the applied log id and the membership are written in one RocksDB batch per `apply`
//!   call, without the WAL: the Raft log already holds every byte of it, and writing it twice
//!   was a tenth of a follower's CPU. The database flushes its column families atomically, so
//!   what reaches disk is always a state that matches its stored applied index; a crash loses
//!   the unflushed tail of applies, and the server re-applies it from the log. The log store
//!   flushes this state before it purges entries (see [`crate::log_store`]), so the entries a
//!   crash could need are never gone.
//! * Installing a snapshot, and applying a membership change, write with the WAL and fsync,
//!   the latter after flushing what came before it: a restarting server checks its peer list
//!   against the stored membership, so that must survive a crash.
//! * After the batch is written, the changes are published to the [`EventWindow`] and the
//!   waiting clients are answered, so a client that saw its write acknowledged can read it here.
//! * Snapshots are a consistent RocksDB snapshot of objects, applied index and membership,
//!   written to `DATA_DIR/snapshot` with fsync and an atomic rename.

use std::collections::HashMap;
use std::io;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use futures::TryStreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use parking_lot::RwLock;
use rocksdb::FlushOptions;
use rocksdb::IteratorMode;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use rocksdb::DB;
use serde::Deserialize;
use serde::Serialize;
use skiff_store::Event;
use skiff_store::EventKind;
use skiff_store::EventWindow;
use skiff_store::Record;
use skiff_store::StoreError;

use crate::codec::decode;
use crate::codec::encode;
use crate::command::Command;
use crate::command::CommandResult;
use crate::datadir::CF_KV;
use crate::datadir::CF_SM;
use crate::resident::Resident;
use crate::LogId;
use crate::Snapshot;
use crate::SnapshotData;
use crate::SnapshotMeta;
use crate::StoredMembership;
use crate::TypeConfig;

const KEY_APPLIED: &[u8] = b"applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";

/// An object as stored under its key.
///
/// `value` is shared, not copied, between the log entry that wrote it, the batch being applied
/// and the reply. `Bytes` encodes as `serde_bytes` does a `Vec<u8>`, so stored objects and
/// snapshots read the same as before it was shared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredObject {
    pub value: Bytes,
    pub revision: u64,
    pub create_revision: u64,
    pub uid: String,
}

impl StoredObject {
    pub fn into_record(self, key: String) -> Record {
        Record { key, value: self.value, revision: self.revision, create_revision: self.create_revision, uid: self.uid }
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    objects: Vec<(String, StoredObject)>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// Shared read access to the state, for the `Store` implementation.
#[derive(Clone)]
pub struct StateReader {
    pub db: Arc<DB>,
    /// Held for writing while a snapshot replaces the whole state, so no read sees half of it.
    pub install_lock: Arc<RwLock<()>>,
    pub window: Arc<EventWindow>,
    /// The objects under the resident prefixes, answered without RocksDB.
    pub resident: Arc<Resident>,
}

fn io_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

fn cf<'a>(db: &'a DB, name: &str) -> io::Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

impl StateReader {
    pub fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let _guard = self.install_lock.read();
        if let Some(resident) = self.resident.get(key) {
            return Ok(resident.map(|obj| obj.into_record(key.to_string())));
        }
        let cf = cf(&self.db, CF_KV).map_err(|e| StoreError::Internal(e.to_string()))?;
        match self.db.get_cf(cf, key.as_bytes()).map_err(|e| StoreError::Internal(e.to_string()))? {
            Some(bytes) => {
                let obj: StoredObject = decode(&bytes).map_err(|e| StoreError::Internal(e.to_string()))?;
                Ok(Some(obj.into_record(key.to_string())))
            }
            None => Ok(None),
        }
    }

    /// Up to `limit` objects under `prefix` strictly after `after`, and whether more remain.
    pub fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<(Vec<Record>, bool), StoreError> {
        let _guard = self.install_lock.read();
        let internal = |e: String| StoreError::Internal(e);
        let cf = cf(&self.db, CF_KV).map_err(|e| internal(e.to_string()))?;
        let start = after.unwrap_or(prefix);
        let iter = self.db.iterator_cf(cf, IteratorMode::From(start.as_bytes(), rocksdb::Direction::Forward));
        let mut items = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(|e| internal(e.to_string()))?;
            let key = String::from_utf8(k.to_vec()).map_err(|e| internal(e.to_string()))?;
            if !key.starts_with(prefix) {
                break;
            }
            if Some(key.as_str()) == after {
                continue;
            }
            if items.len() == limit {
                return Ok((items, true));
            }
            let obj: StoredObject = decode(&v).map_err(|e| internal(e.to_string()))?;
            items.push(obj.into_record(key));
        }
        Ok((items, false))
    }
}

/// The state machine handed to openraft.
pub struct StateMachine {
    reader: StateReader,
    snapshot_path: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl StateMachine {
    /// Opens the state stored in `db`; the watch window starts at the stored applied index, and
    /// the objects under `resident_prefixes` are also kept in memory (see [`Resident`]).
    pub fn open(
        db: Arc<DB>,
        snapshot_path: PathBuf,
        window_capacity: usize,
        resident_prefixes: Vec<String>,
    ) -> io::Result<Self> {
        let applied: Option<LogId> = match db.get_cf(cf(&db, CF_SM)?, KEY_APPLIED).map_err(io_err)? {
            Some(b) => decode(&b)?,
            None => None,
        };
        let membership: StoredMembership = match db.get_cf(cf(&db, CF_SM)?, KEY_MEMBERSHIP).map_err(io_err)? {
            Some(b) => decode(&b)?,
            None => StoredMembership::default(),
        };
        let start = applied.as_ref().map(|l| l.index).unwrap_or(0);
        let window = EventWindow::new(start, window_capacity);
        let resident = Arc::new(Resident::load(&db, resident_prefixes)?);
        Ok(Self {
            reader: StateReader { db, install_lock: Arc::new(RwLock::new(())), window, resident },
            snapshot_path,
            applied,
            membership,
        })
    }

    pub fn reader(&self) -> StateReader {
        self.reader.clone()
    }

    pub fn membership(&self) -> &StoredMembership {
        &self.membership
    }

    fn db(&self) -> &DB {
        &self.reader.db
    }
}

/// Applies one command against the stored state plus this batch's earlier writes.
/// `term` is the term of the leader that appended the entry: a fenced command is accepted only
/// if it names that term, i.e. only if the leadership that issued it appended it. An entry keeps
/// its term when a later leader commits it, so a write made in time is not lost to a leader
/// change, and one that reached the log through any later leader is refused.
///
/// The outcome is the change's event (whose record is also the write's reply) or why the
/// command was refused; the outer `Err` is a failure to read the stored state.
fn apply_command(
    db: &DB,
    overlay: &mut HashMap<String, Option<StoredObject>>,
    cmd: Command,
    index: u64,
    term: u64,
) -> io::Result<Result<Event, StoreError>> {
    let cmd = match cmd {
        Command::Fenced { term: fence, inner } if fence != term => {
            crate::metrics::record_fenced(fence, false);
            let key = inner.key().to_string();
            let reason = format!("the leadership of term {fence} has ended (written in term {term})");
            return Ok(Err(StoreError::Fenced { key, reason }));
        }
        Command::Fenced { term: fence, inner } => {
            crate::metrics::record_fenced(fence, true);
            *inner
        }
        plain => plain,
    };
    let key = cmd.key().to_string();
    let current: Option<StoredObject> = match overlay.get(&key) {
        Some(v) => v.clone(),
        None => match db.get_cf(cf(db, CF_KV)?, key.as_bytes()).map_err(io_err)? {
            Some(b) => Some(decode(&b)?),
            None => None,
        },
    };
    let (kind, new_obj, event_obj) = match cmd {
        Command::Create { value, uid, .. } => {
            if current.is_some() {
                return Ok(Err(StoreError::AlreadyExists { key }));
            }
            let obj = StoredObject { value, revision: index, create_revision: index, uid };
            (EventKind::Created, Some(obj.clone()), obj)
        }
        Command::Update { value, precondition, .. } => {
            let Some(cur) = current else {
                return Ok(Err(StoreError::NotFound { key }));
            };
            if let Err(reason) = precondition.check_identity(cur.revision, &cur.uid) {
                return Ok(Err(StoreError::Conflict { key, reason }));
            }
            let obj = StoredObject { value, revision: index, ..cur };
            (EventKind::Updated, Some(obj.clone()), obj)
        }
        Command::Delete { precondition, .. } => {
            let Some(cur) = current else {
                return Ok(Err(StoreError::NotFound { key }));
            };
            if let Err(reason) = precondition.check_identity(cur.revision, &cur.uid) {
                return Ok(Err(StoreError::Conflict { key, reason }));
            }
            (EventKind::Deleted, None, StoredObject { revision: index, ..cur })
        }
        Command::Fenced { .. } => return Ok(Err(StoreError::Invalid("a fenced write inside a fenced write".into()))),
    };
    overlay.insert(key.clone(), new_obj);
    Ok(Ok(Event { kind, record: event_obj.into_record(key) }))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut overlay: HashMap<String, Option<StoredObject>> = HashMap::new();
        let mut events = Vec::new();
        let mut replies = Vec::new();
        let mut membership_changed = false;
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            let result = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(cmd) => {
                    let term = entry.log_id.leader_id.term;
                    let outcome = apply_command(self.db(), &mut overlay, cmd, index, term)?;
                    // Only a write whose client waits here (on the leader that took it) gets a
                    // reply; a follower builds none.
                    let reply = responder.is_some().then(|| match &outcome {
                        Ok(event) => CommandResult(Ok(event.record.clone())),
                        Err(e) => CommandResult(Err(e.clone())),
                    });
                    events.extend(outcome.ok());
                    reply
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    membership_changed = true;
                    None
                }
            };
            self.applied = Some(entry.log_id);
            if let Some(responder) = responder {
                let reply = result.unwrap_or_else(|| CommandResult(Err(StoreError::Invalid("not a command".into()))));
                replies.push((responder, reply));
            }
        }
        let db = self.db();
        let mut batch = WriteBatch::default();
        let kv = cf(db, CF_KV)?;
        for (key, obj) in &overlay {
            match obj {
                Some(o) => batch.put_cf(kv, key.as_bytes(), encode(o)?),
                None => batch.delete_cf(kv, key.as_bytes()),
            }
        }
        let sm = cf(db, CF_SM)?;
        batch.put_cf(sm, KEY_APPLIED, encode(&self.applied)?);
        if membership_changed {
            batch.put_cf(sm, KEY_MEMBERSHIP, encode(&self.membership)?);
        }
        let mut options = WriteOptions::default();
        if membership_changed {
            // A server checks its peer list against the stored membership before it starts, so a
            // membership change is made durable at once: everything applied before it is flushed,
            // and its own batch goes through the WAL with fsync.
            let mut wait = FlushOptions::default();
            wait.set_wait(true);
            db.flush_cfs_opt(&[kv, sm], &wait).map_err(io_err)?;
            options.set_sync(true);
        } else {
            options.disable_wal(true);
        }
        db.write_opt(batch, &options).map_err(io_err)?;
        self.reader.resident.apply(&overlay);

        let window = &self.reader.window;
        for e in events {
            window.push(e);
        }
        if let Some(applied) = &self.applied {
            window.advance(applied.index);
        }
        for (responder, reply) in replies {
            responder.send(reply);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { db: self.reader.db.clone(), snapshot_path: self.snapshot_path.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = decode(&data)?;
        {
            let _guard = self.reader.install_lock.write();
            let db = self.db();
            let kv = cf(db, CF_KV)?;
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(kv, b"".as_slice(), [0xffu8; 8].as_slice());
            for (key, obj) in &body.objects {
                batch.put_cf(kv, key.as_bytes(), encode(obj)?);
            }
            let sm = cf(db, CF_SM)?;
            batch.put_cf(sm, KEY_APPLIED, encode(&meta.last_log_id)?);
            batch.put_cf(sm, KEY_MEMBERSHIP, encode(&meta.last_membership)?);
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts).map_err(io_err)?;
            self.reader.resident.reload(db)?;
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        write_snapshot_file(&self.snapshot_path, &SnapshotFile { meta: meta.clone(), data })?;
        self.reader.window.reset(meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0));
        tracing::info!(last_log_id = ?meta.last_log_id, objects = body.objects.len(), "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        read_snapshot_file(&self.snapshot_path)
    }
}

fn write_snapshot_file(path: &PathBuf, file: &SnapshotFile) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&encode(file)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_snapshot_file(path: &PathBuf) -> io::Result<Option<Snapshot>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: SnapshotFile = decode(&bytes)?;
            Ok(Some(Snapshot { meta: file.meta, snapshot: Cursor::new(file.data) }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot, off the apply path.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    snapshot_path: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let db = self.db.clone();
        let path = self.snapshot_path.clone();
        tokio::task::spawn_blocking(move || -> io::Result<Snapshot> {
            let snap = db.snapshot();
            let applied: Option<LogId> = match snap.get_cf(cf(&db, CF_SM)?, KEY_APPLIED).map_err(io_err)? {
                Some(b) => decode(&b)?,
                None => None,
            };
            let membership: StoredMembership = match snap.get_cf(cf(&db, CF_SM)?, KEY_MEMBERSHIP).map_err(io_err)? {
                Some(b) => decode(&b)?,
                None => StoredMembership::default(),
            };
            let mut objects = Vec::new();
            for item in snap.iterator_cf(cf(&db, CF_KV)?, IteratorMode::Start) {
                let (k, v) = item.map_err(io_err)?;
                let key = String::from_utf8(k.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                objects.push((key, decode::<StoredObject>(&v)?));
            }
            let data = encode(&SnapshotBody { objects })?;
            let meta = SnapshotMeta { last_log_id: applied, last_membership: membership };
            let file = SnapshotFile { meta: meta.clone(), data };
            write_snapshot_file(&path, &file)?;
            Ok(Snapshot { meta, snapshot: Cursor::new(file.data) })
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use skiff_store::Precondition;

    use super::*;

    /// Objects and snapshots written before values were shared (a `Vec<u8>` through
    /// `serde_bytes`) are on disk: they must read, and be written, unchanged.
    #[test]
    fn stored_objects_keep_their_encoding() {
        #[derive(Serialize)]
        struct Before {
            #[serde(with = "serde_bytes")]
            value: Vec<u8>,
            revision: u64,
            create_revision: u64,
            uid: String,
        }
        let old = Before { value: b"{\"a\":1}".to_vec(), revision: 7, create_revision: 5, uid: "u".into() };
        let bytes = encode(&old).expect("encode");
        let now: StoredObject = decode(&bytes).expect("decode");
        assert_eq!(
            (&now.value[..], now.revision, now.create_revision, now.uid.as_str()),
            (&b"{\"a\":1}"[..], 7, 5, "u")
        );
        assert_eq!(encode(&now).expect("encode"), bytes, "and encode the same way");
    }

    fn create(key: &str, value: &'static [u8]) -> Command {
        Command::Create { key: key.into(), value: Bytes::from_static(value), uid: format!("uid-{key}") }
    }

    fn update(key: &str, value: &'static [u8], precondition: Precondition) -> Command {
        Command::Update { key: key.into(), value: Bytes::from_static(value), precondition }
    }

    fn delete(key: &str, precondition: Precondition) -> Command {
        Command::Delete { key: key.into(), precondition }
    }

    /// One batch that writes the same key several times: each command sees the ones before it,
    /// preconditions are checked against them, and the events carry each state in turn.
    #[test]
    fn a_batch_sees_its_own_earlier_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = crate::datadir::open(&dir.path().join("data"), 1).expect("datadir");
        let mut overlay = HashMap::new();
        let mut apply = |cmd: Command, index: u64| apply_command(&data.db, &mut overlay, cmd, index, 1).expect("apply");

        let created = apply(create("/a", b"one"), 10).expect("create");
        assert_eq!(
            (created.kind, created.record.value.as_ref(), created.record.revision),
            (EventKind::Created, &b"one"[..], 10)
        );
        assert!(matches!(apply(create("/a", b"again"), 11), Err(StoreError::AlreadyExists { .. })));
        let stale = apply(update("/a", b"two", Precondition::revision(9)), 12);
        assert!(
            matches!(stale, Err(StoreError::Conflict { ref reason, .. }) if reason.contains("current is 10")),
            "{stale:?}"
        );
        let updated = apply(update("/a", b"two", Precondition::revision(10)), 13).expect("update");
        assert_eq!(
            (updated.record.value.as_ref(), updated.record.revision, updated.record.create_revision),
            (&b"two"[..], 13, 10)
        );
        let wrong_uid = Precondition { revision: None, uid: Some("someone-else".into()) };
        assert!(matches!(apply(delete("/a", wrong_uid), 14), Err(StoreError::Conflict { .. })));
        let mine = Precondition { revision: Some(13), uid: Some("uid-/a".into()) };
        let deleted = apply(delete("/a", mine), 15).expect("delete");
        // A deletion's event carries the object as it was, at the deletion's revision.
        assert_eq!(
            (deleted.kind, deleted.record.value.as_ref(), deleted.record.revision),
            (EventKind::Deleted, &b"two"[..], 15)
        );
        assert!(matches!(apply(delete("/a", Precondition::none()), 16), Err(StoreError::NotFound { .. })));
        apply(create("/a", b"three"), 17).expect("created again after the delete");
        assert!(matches!(overlay.get("/a"), Some(Some(obj)) if obj.value == b"three"[..] && obj.create_revision == 17));
    }
}
