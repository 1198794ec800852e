//! skiff's controllers. Each is a pure reconcile function (what should exist, given what does)
//! tested without a cluster, plus a loop that runs only while this server leads, keeps caches of
//! what it reads by list and watch, and writes through the API with the leadership's fencing
//! token (`docs/fencing.md`).
//!
//! Today: the ServiceAccount controller. The others of issue 6 (ReplicaSet, Deployment, node
//! lifecycle, garbage collector, namespace, endpoints, IPAM, pod GC) follow the same shape.

pub mod serviceaccounts;
