//! skiff's controllers. Each is a pure reconcile function — what should be written, given a
//! [`Snapshot`] of the cluster — tested without a cluster, and one manager
//! ([`manager`]) runs them all only while this server leads: it keeps list+watch caches, builds
//! snapshots, and carries out the [`Action`]s through the API with the leadership's fencing
//! token (`docs/fencing.md`).

pub mod action;
pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod ipam;
pub mod manager;
pub mod namespace;
pub mod nodelifecycle;
pub mod pod;
pub mod podgc;
pub mod replicaset;
pub mod rootca;
pub mod routine;
pub mod serviceaccounts;
pub mod snapshot;
pub mod workload;

pub use action::Action;
pub use action::EventType;
pub use snapshot::Config;
pub use snapshot::Snapshot;

/// A controller: the writes it wants, given the cluster now.
pub type Reconcile = fn(&Snapshot, &Config) -> Vec<Action>;
