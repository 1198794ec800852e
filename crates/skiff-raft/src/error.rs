use std::path::PathBuf;

/// Why a server could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    /// The data dir holds something that is not a skiff data dir, or another server's.
    #[error("data dir {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    /// RocksDB refused to open or write (corruption, full disk, permissions).
    #[error("storage: {0}")]
    Storage(String),
    /// `--peers` contradicts the membership stored in the data dir.
    #[error("peer list disagrees with the stored membership: {0}")]
    PeerMismatch(String),
    /// Bad configuration values.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Raft stopped with a fatal error.
    #[error("raft: {0}")]
    Raft(String),
    /// Listening or connecting failed.
    #[error("network: {0}")]
    Network(String),
}

impl From<rocksdb::Error> for RaftStoreError {
    fn from(e: rocksdb::Error) -> Self {
        RaftStoreError::Storage(e.to_string())
    }
}
