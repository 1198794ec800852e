use serde::Deserialize;
use serde::Serialize;

/// A store-wide, strictly increasing change number (the Kubernetes `resourceVersion`).
pub type Revision = u64;

/// One stored object as the store sees it: opaque bytes plus bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    /// Shared, not copied, by the store's layers: the write, its log entry, the watch window's
    /// event and every reply hold the same bytes. Encodes as a `serde_bytes` `Vec<u8>` did.
    pub value: bytes::Bytes,
    /// Revision of the change that last wrote this object (for a deleted record: the deletion).
    pub revision: Revision,
    /// Revision of the change that created this object.
    pub create_revision: Revision,
    /// Caller-chosen identity of this incarnation of the key (the object's `metadata.uid`).
    pub uid: String,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (read-index through the leader).
    Linearizable,
    /// Whatever this server has applied; may be stale (`resourceVersion=0`).
    Local,
}

/// Conditions a write must satisfy at the moment it is ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// The object's current revision must equal this.
    pub revision: Option<Revision>,
    /// The object's uid must equal this.
    pub uid: Option<String>,
}

impl Precondition {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn revision(revision: Revision) -> Self {
        Self { revision: Some(revision), uid: None }
    }

    /// Checks the precondition against the current record; `Err` holds the reason.
    pub fn check(&self, current: &Record) -> Result<(), String> {
        self.check_identity(current.revision, &current.uid)
    }

    /// [`Self::check`] against the current object's revision and uid alone, which are all it
    /// reads.
    pub fn check_identity(&self, revision: Revision, uid: &str) -> Result<(), String> {
        if let Some(rev) = self.revision {
            if rev != revision {
                return Err(format!("expected revision {rev}, current is {revision}"));
            }
        }
        if let Some(expected) = &self.uid {
            if expected != uid {
                return Err(format!("expected uid {expected}, current is {uid}"));
            }
        }
        Ok(())
    }
}

/// Options of a [`crate::Store::list`] call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOptions {
    /// At most this many items; `None` for all.
    pub limit: Option<usize>,
    /// Resume after this key (the `continue_after` of the previous page).
    pub continue_after: Option<String>,
    pub consistency: Consistency,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self { limit: None, continue_after: None, consistency: Consistency::Linearizable }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub items: Vec<Record>,
    /// The store revision the page was read at.
    pub revision: Revision,
    /// Set when more items remain: pass it as `continue_after` to read the next page.
    pub continue_after: Option<String>,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One change, as delivered by a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The object after the change; for `Deleted`, the object as it was, with the deletion's
    /// revision.
    pub record: Record,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.record.revision
    }
}

/// An item of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchItem {
    Event(Event),
    /// Every change up to and including this revision has been delivered (used for bookmarks).
    Progress(Revision),
}

/// One write, for [`crate::Store::write_fenced`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Create { key: String, value: Vec<u8>, uid: String },
    Update { key: String, value: Vec<u8>, precondition: Precondition },
    Delete { key: String, precondition: Precondition },
}

impl Write {
    pub fn key(&self) -> &str {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => key,
        }
    }
}
