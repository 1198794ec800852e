//! Pod topology spread constraints.
//!
//! `DoNotSchedule` constraints filter: placing the pod in a domain must not
//! push that domain more than `maxSkew` matching pods above the emptiest
//! domain. `ScheduleAnyway` constraints only score: fewer matching pods in the
//! node's domain is better.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::cluster::{namespace_of, ClusterView, NodeView};
use crate::node_affinity::matches_required;
use crate::selectors::{label_selector_matches, labels_of};
use crate::taints::untolerated_taint;

/// Reason when placing the pod on the node would exceed `maxSkew`.
pub(crate) const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// Reason when the node lacks a constraint's topology key.
pub(crate) const REASON_SPREAD_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";

/// One constraint with its defaults resolved.
struct Constraint<'a> {
    max_skew: i64,
    topology_key: &'a str,
    /// The label selector narrowed by `matchLabelKeys`.
    selector: Option<LabelSelector>,
    min_domains: Option<i64>,
    honor_node_affinity: bool,
    honor_node_taints: bool,
}

impl Constraint<'_> {
    /// Whether a node's pods count toward this constraint's domains, per the
    /// node inclusion policies (affinity honoured and taints ignored by default).
    fn includes(&self, pod: &Pod, node: &NodeView<'_>) -> bool {
        (!self.honor_node_affinity || matches_required(pod, node.node))
            && (!self.honor_node_taints || untolerated_taint(pod, node.node).is_none())
    }

    fn selects(&self, pod: &Pod) -> bool {
        // A constraint without a selector matches no pods, so it never skews.
        self.selector.as_ref().is_some_and(|s| label_selector_matches(s, labels_of(&pod.metadata.labels)))
    }

    /// Matching pods on one node: same namespace as the incoming pod, not
    /// being deleted (they are about to free their slot), selected by the constraint.
    fn count_on(&self, incoming: &Pod, node: &NodeView<'_>) -> i64 {
        let namespace = namespace_of(incoming);
        let count = node
            .pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && namespace_of(p) == namespace && self.selects(p))
            .count();
        i64::try_from(count).unwrap_or(i64::MAX)
    }
}

fn constraints_of<'a>(pod: &'a Pod, when_unsatisfiable: &str) -> Vec<Constraint<'a>> {
    let all = pod.spec.as_ref().and_then(|s| s.topology_spread_constraints.as_deref()).unwrap_or_default();
    all.iter().filter(|c| c.when_unsatisfiable == when_unsatisfiable).map(|c| resolve(pod, c)).collect()
}

fn resolve<'a>(pod: &Pod, constraint: &'a TopologySpreadConstraint) -> Constraint<'a> {
    let pod_labels = labels_of(&pod.metadata.labels);
    let selector = constraint.label_selector.clone().map(|mut selector| {
        // matchLabelKeys pins the selector to this pod's own values, e.g. its
        // pod-template-hash, so each rollout revision spreads on its own.
        for key in constraint.match_label_keys.iter().flatten() {
            if let Some(value) = pod_labels.get(key) {
                selector.match_expressions.get_or_insert_with(Vec::new).push(LabelSelectorRequirement {
                    key: key.clone(),
                    operator: "In".to_string(),
                    values: Some(vec![value.clone()]),
                });
            }
        }
        selector
    });
    Constraint {
        max_skew: i64::from(constraint.max_skew),
        topology_key: &constraint.topology_key,
        selector,
        min_domains: constraint.min_domains.map(i64::from),
        honor_node_affinity: constraint.node_affinity_policy.as_deref() != Some("Ignore"),
        honor_node_taints: constraint.node_taints_policy.as_deref() == Some("Honor"),
    }
}

/// Matching-pod counts per domain value, one map per constraint.
///
/// Only nodes carrying every constraint's topology key take part, and a
/// domain with zero matching pods is still recorded, because empty domains
/// are what keeps the minimum (and thus the allowed skew) low.
fn domain_counts(pod: &Pod, constraints: &[Constraint<'_>], cluster: &ClusterView<'_>) -> Vec<HashMap<String, i64>> {
    let mut counts = vec![HashMap::new(); constraints.len()];
    for node in &cluster.nodes {
        if !constraints.iter().all(|c| node.labels.contains_key(c.topology_key)) {
            continue;
        }
        for (constraint, counts) in constraints.iter().zip(counts.iter_mut()) {
            if !constraint.includes(pod, node) {
                continue;
            }
            let Some(value) = node.labels.get(constraint.topology_key) else { continue };
            let entry = counts.entry(value.clone()).or_insert(0);
            *entry += constraint.count_on(pod, node);
        }
    }
    counts
}

/// Pre-computed domain counts for the `DoNotSchedule` filter.
pub(crate) struct SpreadFilter<'a> {
    pod: &'a Pod,
    constraints: Vec<Constraint<'a>>,
    counts: Vec<HashMap<String, i64>>,
}

impl<'a> SpreadFilter<'a> {
    /// Counts matching pods per domain once for all nodes.
    pub(crate) fn new(pod: &'a Pod, cluster: &ClusterView<'_>) -> Self {
        let constraints = constraints_of(pod, DO_NOT_SCHEDULE);
        let counts = domain_counts(pod, &constraints, cluster);
        Self { pod, constraints, counts }
    }

    /// Filter: why placing the pod on `node` would break a hard constraint.
    pub(crate) fn violation(&self, node: &NodeView<'_>) -> Option<&'static str> {
        for (constraint, counts) in self.constraints.iter().zip(&self.counts) {
            let Some(value) = node.labels.get(constraint.topology_key) else {
                return Some(REASON_SPREAD_MISSING_LABEL);
            };
            let domains = i64::try_from(counts.len()).unwrap_or(i64::MAX);
            // With fewer domains than minDomains, the missing domains count as
            // empty, so the global minimum is zero.
            let min = if constraint.min_domains.is_some_and(|wanted| domains < wanted) {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
            let own = i64::from(constraint.selects(self.pod));
            let skew = counts.get(value).copied().unwrap_or(0) + own - min;
            if skew > constraint.max_skew {
                return Some(REASON_SPREAD);
            }
        }
        None
    }
}

/// Score input for `ScheduleAnyway` constraints: for each node in `nodes`,
/// the matching pods in its domains summed over constraints, or `None` when
/// the node lacks a topology key (such nodes get the lowest score).
///
/// Returns `None` when the pod has no soft constraints, so the score is skipped.
pub(crate) fn soft_counts(pod: &Pod, cluster: &ClusterView<'_>, nodes: &[&NodeView<'_>]) -> Option<Vec<Option<i64>>> {
    let constraints = constraints_of(pod, SCHEDULE_ANYWAY);
    if constraints.is_empty() {
        return None;
    }
    let counts = domain_counts(pod, &constraints, cluster);
    let per_node = nodes
        .iter()
        .map(|node| {
            constraints.iter().zip(&counts).try_fold(0i64, |sum, (constraint, counts)| {
                let value = node.labels.get(constraint.topology_key)?;
                Some(sum.saturating_add(counts.get(value).copied().unwrap_or(0)))
            })
        })
        .collect();
    Some(per_node)
}
