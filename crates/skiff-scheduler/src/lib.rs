//! # skiff-scheduler
//!
//! The sans-IO decision core of skiff's scheduler: given one pending pod and
//! a [`Snapshot`] of nodes and pods, [`schedule`] decides which node the pod
//! should be bound to, or explains why none fits. It performs no I/O and keeps
//! no state; a watch-and-bind loop around it owns caching, retries and binding.
//!
//! Everything but [`runner`] is pure; `runner` is the loop that lists, decides and binds
//! through the API while this server leads.
//!
//! ## Decision flow
//!
//! 1. **Pod requests.** The pod's effective requests are computed once
//!    (containers summed, sidecar init containers added, ordinary init
//!    containers as a floor, overhead on top; limits stand in for missing
//!    requests). An unparseable quantity yields [`Decision::Unschedulable`]
//!    with a message naming the container and resource.
//! 2. **Filters**, per node, stopping at the first that fails (upstream's
//!    plugin order, with the readiness check placed right after taints):
//!    cordoned (`spec.unschedulable`) → `spec.nodeName` → taints
//!    (`NoSchedule`/`NoExecute`) → `Ready` condition → `nodeSelector` and
//!    required node affinity → host ports → resources (cpu, memory,
//!    ephemeral-storage, extended resources, pod count) → topology spread
//!    (`DoNotSchedule`) → inter-pod affinity, anti-affinity and existing pods'
//!    anti-affinity. The resource filter reports every shortage it finds
//!    (`Insufficient cpu` and `Insufficient memory`), as upstream does.
//! 3. **No feasible node** → the failure reasons are counted per reason and
//!    rendered like upstream:
//!    `0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 Insufficient cpu.`
//!    The `"<count> <reason>"` strings are sorted as strings, exactly as
//!    upstream sorts them.
//! 4. **Scores** (each 0..=100) for the feasible nodes, combined with
//!    upstream's default weights (see [`score`]): LeastAllocated ×1,
//!    BalancedAllocation ×1, preferred node affinity ×2, preferred inter-pod
//!    affinity ×2, `ScheduleAnyway` topology spread ×2, `PreferNoSchedule`
//!    taints ×3.
//! 5. **Selection.** The highest total wins; ties go to the node whose name
//!    sorts first. Upstream picks randomly among ties; a deterministic choice
//!    makes decisions reproducible and testable.
//!
//! ## Readiness
//!
//! A node whose `Ready` condition is not `True` is rejected with
//! `node(s) had condition NotReady`, unless the pod tolerates
//! `node.kubernetes.io/not-ready` (or `node.kubernetes.io/unreachable` when
//! the status is `Unknown`) for `NoSchedule`. Upstream only knows readiness
//! through those taints, and network plugins rely on landing on not-yet-ready
//! nodes; honouring the tolerations keeps that working whether or not a
//! lifecycle controller taints nodes.
//!
//! ## Deliberately left out
//!
//! - Volume filters (binding, zones, attach limits, restrictions), dynamic
//!   resource allocation, image locality scoring.
//! - Preemption: an unschedulable pod never evicts lower-priority pods.
//! - Pod-level `spec.resources` (alpha in 1.32) and in-place resize status.
//! - Default (cluster-level) topology spread constraints; only the pod's own
//!   constraints apply. Spread scoring counts matching pods per domain and
//!   does not apply upstream's per-constraint log weighting.
//! - Namespace selectors in pod affinity terms can only see the automatic
//!   `kubernetes.io/metadata.name` label, because the snapshot carries no
//!   Namespace objects; selectors on other namespace labels match nothing
//!   beyond the explicitly listed namespaces.
//! - `matchLabelKeys`/`mismatchLabelKeys` on pod affinity terms are expected
//!   to have been merged into the label selector by the API server, as
//!   upstream does. `matchLabelKeys` on topology spread constraints *is*
//!   applied here. `minDomains` and the node inclusion policies are honoured.
//! - A node without a `pods` entry in `status.allocatable` admits no pods,
//!   as upstream.

mod affinity;
mod availability;
mod cluster;
mod node_affinity;
mod ports;
pub mod quantity;
pub mod resources;
pub mod runner;
pub mod score;
mod selectors;
mod spread;
mod taints;

#[cfg(test)]
mod schedule_tests;

use std::collections::BTreeMap;
use std::hash::Hasher;

use std::borrow::Borrow;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::affinity::AffinityFilter;
use crate::cluster::{ClusterView, NodeView};
use crate::resources::{insufficient_resources, pod_requests, RequestMode, ResourceList, Strictness};
use crate::score::{
    WEIGHT_BALANCED_ALLOCATION, WEIGHT_INTER_POD_AFFINITY, WEIGHT_LEAST_ALLOCATED, WEIGHT_NODE_AFFINITY,
    WEIGHT_TAINT_TOLERATION, WEIGHT_TOPOLOGY_SPREAD,
};
use crate::spread::SpreadFilter;

/// Reason for a node whose `status.allocatable` holds an unparseable quantity.
const REASON_BAD_ALLOCATABLE: &str = "node(s) had invalid allocatable resources";

/// Everything the scheduler looks at for one decision.
/// Objects are shared with the caches they come from (`Arc`), so taking a snapshot of a large
/// cluster copies pointers, not pods.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// All nodes known to the cluster, schedulable or not.
    pub nodes: Vec<Arc<Node>>,
    /// All pods, bound (`spec.nodeName` set) or not. Pods bound to nodes not
    /// in `nodes`, and pods in phase `Succeeded` or `Failed`, are ignored. The
    /// pod being scheduled may be included; it is recognised by UID (or by
    /// namespace and name) and never counted against itself.
    pub pods: Vec<Arc<Pod>>,
}

impl Snapshot {
    /// A snapshot of owned objects (tests, and callers without caches).
    pub fn of(nodes: Vec<Node>, pods: Vec<Pod>) -> Self {
        Self { nodes: nodes.into_iter().map(Arc::new).collect(), pods: pods.into_iter().map(Arc::new).collect() }
    }
}

/// The outcome of scheduling one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod to `node`; `score` is the node's weighted total.
    Bind {
        /// Name of the chosen node.
        node: String,
        /// Weighted sum of the node's scores (informational).
        score: i64,
    },
    /// No node fits.
    Unschedulable {
        /// Human-readable summary suitable for a `FailedScheduling` event and
        /// the pod's `PodScheduled` condition message.
        message: String,
        /// How many nodes failed for each reason. Empty when no node was
        /// examined: the snapshot has no nodes, or the pod itself is invalid.
        reasons: BTreeMap<String, usize>,
    },
}

/// Decides where `pod` should run given `snapshot`.
///
/// Pure and deterministic: the same inputs always give the same decision,
/// whatever the order of pods in the snapshot. Never panics on malformed
/// input; bad quantities on the pod make it unschedulable, bad quantities on a
/// node exclude that node, and bad quantities on bound pods are ignored.
pub fn schedule(pod: &Pod, snapshot: &Snapshot) -> Decision {
    if let Some(decision) = early_decision(pod, snapshot) {
        return decision;
    }
    decide(pod, &ClusterView::build(Some(pod), snapshot), 0).0
}

/// Decides for every pod of `pending`, in order, each decision counting the pods placed by the
/// earlier ones (as a scheduler that binds them in that order would see). The cluster is
/// examined once, not once per pod, so a pass over many waiting pods costs about pending × nodes.
pub fn schedule_all<P: Borrow<Pod>>(pending: &[P], snapshot: &Snapshot) -> Vec<Decision> {
    let mut cluster = ClusterView::build(None, snapshot);
    let mut decisions = Vec::with_capacity(pending.len());
    let mut start = 0;
    for pod in pending.iter().map(Borrow::borrow) {
        let decision = match early_decision(pod, snapshot) {
            Some(decision) => decision,
            None => {
                let (decision, examined) = decide(pod, &cluster, start);
                start = (start + examined) % cluster.nodes.len().max(1);
                decision
            }
        };
        if let Decision::Bind { node, .. } = &decision {
            cluster.assume(pod, node);
        }
        decisions.push(decision);
    }
    decisions
}

/// The decisions that need no look at the nodes: an invalid pod, an empty cluster.
fn early_decision(pod: &Pod, snapshot: &Snapshot) -> Option<Decision> {
    if let Err(err) = pod_requests(pod, RequestMode::Actual, Strictness::Strict) {
        return Some(Decision::Unschedulable {
            message: format!("pod has an invalid resource quantity: {err}"),
            reasons: BTreeMap::new(),
        });
    }
    snapshot.nodes.is_empty().then(|| Decision::Unschedulable {
        message: "0/0 nodes are available: no nodes registered.".to_string(),
        reasons: BTreeMap::new(),
    })
}

/// The filters and scores of one pod against a view of the cluster.
/// How many feasible nodes one decision looks for before it stops filtering: every node up to
/// 100, then upstream's adaptive `percentageOfNodesToScore` (50 % less one point per 125 nodes,
/// at least 5 %, at least 100 nodes). Scoring a sample is what keeps a decision's cost flat as the
/// cluster grows; successive decisions start where the last one stopped, so every node is looked
/// at in turn.
fn feasible_nodes_to_find(total: usize) -> usize {
    const MIN_NODES: usize = 100;
    if total <= MIN_NODES {
        return total;
    }
    let percent = 50usize.saturating_sub(total / 125).max(5);
    (total * percent / 100).max(MIN_NODES)
}

/// The filters and scores of one pod against a view of the cluster, examining nodes from
/// `start` on (wrapping) until enough feasible ones are found. Also answers how many nodes it
/// examined.
fn decide(pod: &Pod, cluster: &ClusterView<'_>, start: usize) -> (Decision, usize) {
    let Ok(request) = pod_requests(pod, RequestMode::Actual, Strictness::Strict) else {
        let decision = Decision::Unschedulable {
            message: "pod has an invalid resource quantity".into(),
            reasons: BTreeMap::new(),
        };
        return (decision, 0);
    };
    let filters = Filters {
        pod,
        request: &request,
        host_ports: ports::host_ports(pod),
        spread: SpreadFilter::new(pod, cluster),
        affinity: AffinityFilter::new(pod, cluster),
    };

    let mut feasible: Vec<&NodeView<'_>> = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let total = cluster.nodes.len();
    let wanted = feasible_nodes_to_find(total);
    let mut examined = 0;
    for i in 0..total {
        let node = &cluster.nodes[(start + i) % total];
        examined += 1;
        let failures = filters.run(node);
        if failures.is_empty() {
            feasible.push(node);
            if feasible.len() >= wanted {
                break;
            }
        }
        for reason in failures {
            *reasons.entry(reason).or_insert(0) += 1;
        }
    }

    // With no feasible node every node was examined, so the reasons cover the whole cluster.
    if feasible.is_empty() {
        let message = unschedulable_message(total, &reasons);
        return (Decision::Unschedulable { message, reasons }, examined);
    }

    // Both were parsed already by the strict pass above, so this cannot fail;
    // falling back keeps the function total without an unwrap.
    let scoring_request =
        pod_requests(pod, RequestMode::NonZeroForScoring, Strictness::Strict).unwrap_or_else(|_| request.clone());
    let totals = total_scores(pod, &request, &scoring_request, cluster, &feasible);

    // Ties go to the node whose hash with the pod is highest: deterministic for one pod, yet
    // different pods with equal scores spread over the tied nodes (upstream picks at random).
    let seed = tie_break_seed(pod.metadata.uid.as_deref().or(pod.metadata.name.as_deref()).unwrap_or(""));
    let top = totals.iter().copied().max();
    let best = feasible.iter().zip(totals).filter(|(_, score)| Some(*score) == top).max_by(|(a, _), (b, _)| {
        tie_break(seed, a.name).cmp(&tie_break(seed, b.name)).then_with(|| b.name.cmp(a.name))
    });
    let decision = match best {
        Some((node, score)) => Decision::Bind { node: node.name.to_string(), score },
        // Unreachable: `feasible` is non-empty. Kept total rather than panicking.
        None => Decision::Unschedulable { message: unschedulable_message(total, &reasons), reasons },
    };
    (decision, examined)
}

/// The filter chain with everything computed once per decision.
struct Filters<'a> {
    pod: &'a Pod,
    request: &'a ResourceList,
    host_ports: Vec<ports::HostPort>,
    spread: SpreadFilter<'a>,
    affinity: AffinityFilter<'a>,
}

impl Filters<'_> {
    /// Reasons the node is rejected by the first failing filter; empty when it fits.
    fn run(&self, node: &NodeView<'_>) -> Vec<String> {
        let one = |reason: &str| vec![reason.to_string()];
        if let Some(reason) = availability::cordoned(self.pod, node.node) {
            return one(reason);
        }
        if let Some(reason) = availability::other_node_requested(self.pod, node.name) {
            return one(reason);
        }
        if let Some(reason) = taints::untolerated_taint(self.pod, node.node) {
            return vec![reason];
        }
        if let Some(reason) = availability::not_ready_with(self.pod, node.ready) {
            return one(reason);
        }
        if let Some(reason) = node_affinity::mismatch(self.pod, node.node) {
            return one(reason);
        }
        if let Some(reason) = ports::conflict(&self.host_ports, node.pods.iter().copied()) {
            return one(reason);
        }
        let Ok(allocatable) = node.allocatable.as_ref() else { return one(REASON_BAD_ALLOCATABLE) };
        let shortages = insufficient_resources(self.request, allocatable, &node.requested, node.pods.len());
        if !shortages.is_empty() {
            return shortages;
        }
        if let Some(reason) = self.spread.violation(node) {
            return one(reason);
        }
        if let Some(reason) = self.affinity.violation(node) {
            return one(reason);
        }
        Vec::new()
    }
}

/// Weighted score totals for `nodes`, in the same order.
fn total_scores(
    pod: &Pod,
    request: &ResourceList,
    scoring_request: &ResourceList,
    cluster: &ClusterView<'_>,
    nodes: &[&NodeView<'_>],
) -> Vec<i64> {
    let node_affinity_raw: Vec<i64> = nodes.iter().map(|n| node_affinity::preferred_weight(pod, n.node)).collect();
    let node_affinity = score::normalize_to_max(&node_affinity_raw, false);

    let inter_pod = score::normalize_min_max(&affinity::preference_weights(pod, cluster, nodes));

    let taints_raw: Vec<i64> = nodes.iter().map(|n| taints::intolerable_preferences(pod, n.node)).collect();
    let taints = score::normalize_to_max(&taints_raw, true);

    let spread = match spread::soft_counts(pod, cluster, nodes) {
        Some(raw) => score::normalize_spread(&raw),
        None => vec![0; nodes.len()],
    };

    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            WEIGHT_LEAST_ALLOCATED * score::least_allocated(scoring_request, node)
                + WEIGHT_BALANCED_ALLOCATION * score::balanced_allocation(request, node)
                + WEIGHT_NODE_AFFINITY * node_affinity[i]
                + WEIGHT_INTER_POD_AFFINITY * inter_pod[i]
                + WEIGHT_TAINT_TOLERATION * taints[i]
                + WEIGHT_TOPOLOGY_SPREAD * spread[i]
        })
        .collect()
}

/// FNV-1a of the pod's uid (and a separator), the start of every [`tie_break`] for that pod.
fn tie_break_seed(uid: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(uid.as_bytes());
    hasher.write(&[0]);
    hasher.finish()
}

/// FNV-1a of the pod's uid and the node's name.
fn tie_break(seed: u64, node: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::with_key(seed);
    hasher.write(node.as_bytes());
    hasher.finish()
}

/// Renders upstream's `0/N nodes are available: ...` message.
fn unschedulable_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
    // Upstream sorts the rendered "<count> <reason>" strings, not the reasons.
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}
