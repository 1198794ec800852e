//! skiff's replicated [`Store`](skiff_store::Store): openraft with a RocksDB log and state
//! machine, a tonic transport between servers, forwarding of writes to the leader and read-index
//! reads.
//!
//! * [`log_store`] — the Raft log and vote in RocksDB, with group-committed fsyncs.
//! * [`state_machine`] — objects in RocksDB, compare-and-swap applied in the state machine,
//!   snapshots, and the watch window.
//! * [`network`] / [`service`] — the gRPC transport (`proto/skiff/v1/raft.proto`).
//! * [`tls`] — mutual TLS on the Raft port (optional), with certificates reloaded from disk.
//! * [`node`] — one server: opening the data dir, bootstrapping, serving, and the `Store` impl.
//! * [`client`] — a `Store` that talks to servers over gRPC (tools, tests, benchmarks).

pub mod client;
pub mod codec;
pub mod command;
pub mod datadir;
pub mod error;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod node;
pub mod resident;
pub mod segments;
pub mod service;
pub mod state_machine;
pub mod tls;

/// Generated gRPC code for `proto/skiff/v1/raft.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("skiff.v1");
}

/// Generated gRPC code for replication (built in `build.rs`, bincode on the wire).
#[allow(clippy::all, missing_docs)]
pub mod replication {
    include!(concat!(env!("OUT_DIR"), "/skiff.v1.Replication.rs"));
}

pub use client::RemoteStore;
pub use error::RaftStoreError;
pub use node::NodeConfig;
pub use node::RaftNode;

use std::io::Cursor;

openraft::declare_raft_types!(
    /// The openraft type configuration of skiff.
    pub TypeConfig:
        D = command::Command,
        R = command::CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// Snapshot bytes as they move between state machine and network.
pub type SnapshotData = Cursor<Vec<u8>>;

pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

#[cfg(test)]
mod storage_suite;
