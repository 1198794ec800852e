//! What goes into the Raft log and what applying it returns.

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;
use skiff_store::Precondition;
use skiff_store::Record;
use skiff_store::StoreError;

/// A write proposed through Raft. Values are encoded as byte strings (serde's default
/// element-by-element encoding of `Vec<u8>` cost a third of the servers' CPU) and held as shared
/// [`Bytes`], so the log store's cache of recent entries hands them to replication and apply
/// without copying. Preconditions are checked when the entry is applied, so the outcome is
/// decided by log order, identically on every server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Create {
        key: String,
        value: Bytes,
        uid: String,
    },
    Update {
        key: String,
        value: Bytes,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
    /// `inner`, applied only if the entry carrying it was appended in `term`
    /// ([`skiff_store::Store::write_fenced`]). Last, so older log entries decode unchanged.
    Fenced {
        term: u64,
        inner: Box<Command>,
    },
}

impl Command {
    pub fn key(&self) -> &str {
        match self {
            Command::Create { key, .. } | Command::Update { key, .. } | Command::Delete { key, .. } => key,
            Command::Fenced { inner, .. } => inner.key(),
        }
    }
}

/// The outcome of applying a [`Command`]: the written record (revision = the entry's log index),
/// or the precondition failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult(pub Result<Record, StoreError>);

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Create { key, .. } => write!(f, "create {key}"),
            Command::Update { key, precondition, .. } => write!(f, "update {key} if {precondition:?}"),
            Command::Delete { key, precondition } => write!(f, "delete {key} if {precondition:?}"),
            Command::Fenced { term, inner } => write!(f, "{inner} while term {term} leads"),
        }
    }
}

impl std::fmt::Display for CommandResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(r) => write!(f, "ok {} at {}", r.key, r.revision),
            Err(e) => write!(f, "error: {e}"),
        }
    }
}

impl From<skiff_store::Write> for Command {
    fn from(write: skiff_store::Write) -> Self {
        match write {
            skiff_store::Write::Create { key, value, uid } => Command::Create { key, value: compact(value), uid },
            skiff_store::Write::Update { key, value, precondition } => {
                Command::Update { key, value: compact(value), precondition }
            }
            skiff_store::Write::Delete { key, precondition } => Command::Delete { key, precondition },
        }
    }
}

/// A written value as the buffer the log, the state machine and the watch window share. That
/// buffer outlives the write (the window keeps up to its capacity of events), and a value fresh
/// from a serializer sits in a buffer grown by doubling, up to twice its length: such a value is
/// copied once into a buffer of its own size. The allocator would not give the spare room back
/// on shrinking in place.
fn compact(value: Vec<u8>) -> Bytes {
    if value.capacity() - value.len() > value.len() / 8 {
        Bytes::copy_from_slice(&value)
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands written before values became `Bytes` (a `Vec<u8>` through `serde_bytes`) are
    /// still in logs and snapshots on disk: they must decode unchanged.
    #[test]
    fn values_keep_their_encoding() {
        #[derive(Serialize)]
        enum Before {
            Create {
                key: String,
                #[serde(with = "serde_bytes")]
                value: Vec<u8>,
                uid: String,
            },
        }
        let old = Before::Create { key: "/k".into(), value: b"{\"a\":1}".to_vec(), uid: "u".into() };
        let bytes = crate::codec::encode(&old).expect("encode");
        let now: Command = crate::codec::decode(&bytes).expect("decode");
        assert_eq!(now, Command::Create { key: "/k".into(), value: Bytes::from_static(b"{\"a\":1}"), uid: "u".into() });
        assert_eq!(crate::codec::encode(&now).expect("encode"), bytes, "and encode the same way");
    }

    /// A record crosses between servers (a forwarded write's reply, a remote read) in bincode:
    /// sharing its value as `Bytes` must not change that encoding, or servers of two versions
    /// would not understand each other during a rolling upgrade.
    #[test]
    fn records_keep_their_encoding() {
        #[derive(Serialize)]
        struct Before {
            key: String,
            #[serde(with = "serde_bytes")]
            value: Vec<u8>,
            revision: u64,
            create_revision: u64,
            uid: String,
        }
        let old = Before { key: "/k".into(), value: b"{}".to_vec(), revision: 9, create_revision: 3, uid: "u".into() };
        let bytes = crate::codec::encode(&old).expect("encode");
        let now: skiff_store::Record = crate::codec::decode(&bytes).expect("decode");
        assert_eq!((now.key.as_str(), &now.value[..], now.revision, now.create_revision), ("/k", &b"{}"[..], 9, 3));
        assert_eq!(crate::codec::encode(&now).expect("encode"), bytes, "and encode the same way");
    }

    /// A value from a serializer's doubling buffer does not bring its spare capacity into the
    /// log and the watch window; one already about its size is not copied.
    #[test]
    fn written_values_are_kept_at_their_size() {
        let mut grown = Vec::with_capacity(8192);
        grown.extend_from_slice(&[b'x'; 4200]);
        let Command::Create { value, .. } =
            Command::from(skiff_store::Write::Create { key: "/k".into(), value: grown, uid: "u".into() })
        else {
            panic!("a create");
        };
        assert_eq!(value.len(), 4200);
        let kept = value.try_into_mut().expect("unique");
        assert!(kept.capacity() < 4200 + 4200 / 8, "capacity {} kept for 4200 bytes", kept.capacity());

        let exact = vec![b'y'; 4200];
        let at = exact.as_ptr();
        let Command::Update { value, .. } = Command::from(skiff_store::Write::Update {
            key: "/k".into(),
            value: exact,
            precondition: skiff_store::Precondition::none(),
        }) else {
            panic!("an update");
        };
        assert_eq!(value.as_ptr(), at, "a value about its size is shared, not copied");
    }
}
