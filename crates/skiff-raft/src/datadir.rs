//! The on-disk layout of a server and the checks that keep it from opening the wrong one.
//!
//! ```text
//! DATA_DIR/skiff.json   marker: format version and the id of the server that owns the dir
//! DATA_DIR/db/          RocksDB: column families `meta` (Raft's vote and purge point) and `kv`,
//!                       `sm` (state); `logs` held the Raft log before segment files
//! DATA_DIR/log/         the Raft log's segment files (see crate::segments)
//! DATA_DIR/snapshot     the latest state-machine snapshot (written atomically)
//! ```
//!
//! A server never re-initialises a directory that has content it does not recognise: a missing
//! or foreign marker, a different server id, or a database that fails to open is an error.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use rocksdb::BlockBasedOptions;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::Options;
use rocksdb::DB;
use serde::Deserialize;
use serde::Serialize;

use crate::RaftStoreError;

pub const CF_LOGS: &str = "logs";
pub const CF_META: &str = "meta";
pub const CF_KV: &str = "kv";
pub const CF_SM: &str = "sm";
const FORMAT: u32 = 1;
const MARKER: &str = "skiff.json";

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: u32,
    node_id: u64,
}

/// An opened data dir.
pub struct DataDir {
    pub path: PathBuf,
    pub db: Arc<DB>,
    /// True when the directory was created by this call.
    pub fresh: bool,
}

impl DataDir {
    pub fn snapshot_path(&self) -> PathBuf {
        self.path.join("snapshot")
    }

    pub fn log_path(&self) -> PathBuf {
        self.path.join("log")
    }
}

fn err(path: &Path, reason: impl Into<String>) -> RaftStoreError {
    RaftStoreError::DataDir { path: path.to_path_buf(), reason: reason.into() }
}

/// Opens (or, when absent or empty, creates) the data dir of server `node_id`.
pub fn open(path: &Path, node_id: u64) -> Result<DataDir, RaftStoreError> {
    fs::create_dir_all(path).map_err(|e| err(path, format!("cannot create: {e}")))?;
    let marker_path = path.join(MARKER);
    let fresh = if marker_path.exists() {
        let text = fs::read_to_string(&marker_path).map_err(|e| err(path, format!("cannot read {MARKER}: {e}")))?;
        let marker: Marker = serde_json::from_str(&text).map_err(|e| {
            err(path, format!("{MARKER} is corrupt ({e}); refusing to start rather than re-initialise"))
        })?;
        if marker.format != FORMAT {
            return Err(err(path, format!("format {} is not supported (this build reads {FORMAT})", marker.format)));
        }
        if marker.node_id != node_id {
            return Err(err(path, format!("belongs to server {} but this server is --id {node_id}", marker.node_id)));
        }
        false
    } else {
        let mut entries = fs::read_dir(path).map_err(|e| err(path, format!("cannot list: {e}")))?;
        if entries.next().is_some() {
            return Err(err(
                path,
                format!("is not empty and has no {MARKER}: not a skiff data dir; refusing to overwrite it"),
            ));
        }
        let marker =
            serde_json::to_string_pretty(&Marker { format: FORMAT, node_id }).map_err(|e| err(path, e.to_string()))?;
        let tmp = path.join(format!("{MARKER}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(|e| err(path, e.to_string()))?;
        f.write_all(marker.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| err(path, e.to_string()))?;
        fs::rename(&tmp, &marker_path).map_err(|e| err(path, e.to_string()))?;
        true
    };

    let db_path = path.join("db");
    let mut opts = Options::default();
    opts.create_if_missing(fresh);
    opts.create_missing_column_families(fresh);
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(3);
    // The state machine writes without the WAL (the Raft log can rebuild it), so its two column
    // families must reach disk together: objects and the applied index they correspond to.
    opts.set_atomic_flush(true);
    let cfs = [CF_LOGS, CF_META, CF_KV, CF_SM].map(|name| {
        ColumnFamilyDescriptor::new(name, if name == CF_KV { objects_options() } else { Options::default() })
    });
    let db = DB::open_cf_descriptors(&opts, &db_path, cfs).map_err(|e| {
        err(path, format!("cannot open the database ({e}); refusing to start rather than re-initialise"))
    })?;
    Ok(DataDir { path: path.to_path_buf(), db: Arc::new(db), fresh })
}

/// Every create looks its key up before writing it, and almost always finds nothing: bloom
/// filters, in the memtable and in every table file, answer "absent" without searching either.
fn objects_options() -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts.set_memtable_prefix_bloom_ratio(0.1);
    opts.set_memtable_whole_key_filtering(true);
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_foreign_and_mismatched_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d");
        assert!(open(&p, 1).expect("create").fresh);
        assert!(!open(&p, 1).expect("reopen").fresh);
        let e = open(&p, 2).err().expect("other id must fail");
        assert!(e.to_string().contains("belongs to server 1"), "{e}");

        let foreign = dir.path().join("foreign");
        fs::create_dir_all(&foreign).expect("mkdir");
        fs::write(foreign.join("important.txt"), "x").expect("write");
        let e = open(&foreign, 1).err().expect("foreign dir must fail");
        assert!(e.to_string().contains("not a skiff data dir"), "{e}");
        assert!(foreign.join("important.txt").exists(), "nothing removed");

        fs::write(p.join(MARKER), "{garbage").expect("corrupt marker");
        let e = open(&p, 1).err().expect("corrupt marker must fail");
        assert!(e.to_string().contains("corrupt"), "{e}");
    }

    #[test]
    fn refuses_a_missing_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d");
        drop(open(&p, 1).expect("create"));
        fs::remove_dir_all(p.join("db")).expect("remove db");
        let e = open(&p, 1).err().expect("missing db must fail");
        assert!(e.to_string().contains("cannot open the database"), "{e}");
    }
}
