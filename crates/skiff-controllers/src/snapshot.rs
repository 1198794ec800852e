//! What a controller sees: the cluster as the leader's caches last saw it, at one instant.
//!
//! Controllers are pure functions of a [`Snapshot`] (and their [`Config`]) to a list of
//! [`crate::Action`]s, so every decision is tested without a cluster. The manager
//! (`crate::manager`) builds a snapshot from its list+watch caches, runs every controller on it,
//! carries out the actions through the API, and does not build the next snapshot until the
//! caches show the effects of those writes (so a lagging cache never makes a controller create
//! the same pod twice).

use std::sync::Arc;
use std::time::Duration;

use crate::pod::Pod;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The cluster at one instant. Objects are shared (`Arc`), so taking a snapshot copies no object.
/// Every list is in `namespace/name` order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The time the snapshot was taken: the only clock a controller reads.
    pub now: jiff::Timestamp,
    pub namespaces: Vec<Arc<Namespace>>,
    pub nodes: Vec<Arc<Node>>,
    /// Every Lease; nodes' heartbeats are the ones in `kube-node-lease` named after the node.
    pub leases: Vec<Arc<Lease>>,
    pub pods: Vec<Arc<Pod>>,
    pub services: Vec<Arc<Service>>,
    pub endpoints: Vec<Arc<Endpoints>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    pub deployments: Vec<Arc<Deployment>>,
    pub service_accounts: Vec<Arc<ServiceAccount>>,
    pub config_maps: Vec<Arc<ConfigMap>>,
    pub secrets: Vec<Arc<Secret>>,
}

impl Snapshot {
    /// An empty cluster at `now` (tests fill in what they need).
    pub fn empty(now: jiff::Timestamp) -> Self {
        Self {
            now,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            leases: Vec::new(),
            pods: Vec::new(),
            services: Vec::new(),
            endpoints: Vec::new(),
            endpoint_slices: Vec::new(),
            replica_sets: Vec::new(),
            deployments: Vec::new(),
            service_accounts: Vec::new(),
            config_maps: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

/// The controllers' settings (the `skiff server` flags that set them are in `src/server.rs`).
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a node may go without renewing its Lease (or posting Ready) before its Ready
    /// condition becomes Unknown and it is tainted `unreachable` (upstream's
    /// `--node-monitor-grace-period`, 40 s there; skiff's default is shorter, see server flags).
    pub node_monitor_grace: Duration,
    /// The `tolerationSeconds` given by default to pods that do not say (upstream's
    /// DefaultTolerationSeconds admission: 300 s for `not-ready` and `unreachable`).
    pub default_toleration: Duration,
    /// The range podCIDRs are carved from (`--cluster-cidr`), if node IPAM is on.
    pub cluster_cidr: Option<String>,
    /// The prefix length of each node's podCIDR (upstream's `--node-cidr-mask-size`, 24).
    pub node_cidr_mask: u8,
    /// Terminated pods kept before the oldest are deleted (upstream's
    /// `--terminated-pod-gc-threshold`, 12 500).
    pub terminated_pod_threshold: usize,
    /// The cluster CA (PEM) published to every namespace as `kube-root-ca.crt`, if any.
    pub root_ca: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_monitor_grace: Duration::from_secs(40),
            default_toleration: Duration::from_secs(300),
            cluster_cidr: None,
            node_cidr_mask: 24,
            terminated_pod_threshold: 12_500,
            root_ca: None,
        }
    }
}
