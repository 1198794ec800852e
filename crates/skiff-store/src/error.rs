use serde::Deserialize;
use serde::Serialize;

use crate::Revision;

/// Why a store operation failed. Each variant maps to one Kubernetes status at the API edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// The key does not exist (404).
    #[error("{key} not found")]
    NotFound { key: String },
    /// A create found the key already present (409 AlreadyExists).
    #[error("{key} already exists")]
    AlreadyExists { key: String },
    /// A precondition on revision or uid did not hold (409 Conflict).
    #[error("{key}: precondition failed: {reason}")]
    Conflict { key: String, reason: String },
    /// The requested revision is older than the retained history (410 Gone).
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Expired { requested: Revision, oldest: Revision },
    /// The argument can never succeed, e.g. an empty key (400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No leader or no quorum right now; the operation may or may not have been applied (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The operation did not complete in time; it may or may not have been applied (504).
    #[error("store operation timed out: {0}")]
    Timeout(String),
    /// A storage or internal failure (500).
    #[error("internal store error: {0}")]
    Internal(String),
    /// A fenced write ([`crate::Store::write_fenced`]) whose leadership had ended; nothing was
    /// written (409).
    #[error("{key}: fenced: {reason}")]
    Fenced { key: String, reason: String },
}

impl StoreError {
    /// Whether the operation may have taken effect despite the error.
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::Internal(_))
    }
}
