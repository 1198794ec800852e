//! `skiff agent`: the kubelet of a worker machine.
//!
//! It registers its Node and keeps it alive (Lease heartbeats, status), watches the pods bound
//! to it, and runs them in containerd through the CRI, with pod networking from CNI plugins.
//! Everything it knows of a pod's containers it asks the runtime again on every sync, so a
//! restarted agent picks up running pods without restarting them.
//!
//! Layout: [`node`] (host facts, Node and Lease objects), [`containerd`] (the managed runtime),
//! [`cri`] (the gRPC client), [`cni`] (network configuration), [`pod`] (per-pod decisions, pure,
//! and the worker that carries them out), [`agent`] (wiring), [`logs`] (the log endpoint the API
//! server proxies to).

pub mod agent;
pub mod cni;
pub mod containerd;
pub mod cri;
pub mod dns;
pub mod logs;
pub mod node;
pub mod pod;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod spdy;
pub mod websocket;

pub use agent::reset;
pub use agent::run;
pub use agent::AgentConfig;
pub use agent::AgentError;

/// The kubelet version the Node reports (the API level skiff serves).
pub const KUBELET_VERSION: &str = "v1.32.0-skiff";
