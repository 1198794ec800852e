//! Test support for skiff: clusters of real `skiff server` processes, network faults, recorded
//! client histories and a linearizability checker.

pub mod cluster;
pub mod linearizability;
pub mod netfault;
pub mod proxy;
pub mod tls;
pub mod workload;

pub use cluster::ClusterError;
pub use cluster::ClusterOptions;
pub use cluster::ProcessCluster;
