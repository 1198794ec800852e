//! `nodeSelector` and node affinity: the required part filters, the
//! preferred part scores.

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::selectors::{labels_of, node_selector_term_matches};

/// Reason for a node rejected by `nodeSelector` or required node affinity.
pub(crate) const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether the node satisfies both the pod's `nodeSelector` (exact label
/// match) and its required node affinity (terms ORed, requirements ANDed).
///
/// Also used by topology spreading, which only counts nodes the pod could use.
pub(crate) fn matches_required(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return true };
    let labels = labels_of(&node.metadata.labels);
    let selector_ok =
        spec.node_selector.iter().flatten().all(|(key, value)| labels.get(key).is_some_and(|actual| actual == value));
    if !selector_ok {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    let Some(required) = required else { return true };
    let name = node.metadata.name.as_deref().unwrap_or_default();
    // An empty term list matches nothing, as upstream: the field was set, so
    // the user asked for a restriction that no node can meet.
    required.node_selector_terms.iter().any(|term| node_selector_term_matches(term, name, labels))
}

/// Filter wrapper around [`matches_required`].
pub(crate) fn mismatch(pod: &Pod, node: &Node) -> Option<&'static str> {
    (!matches_required(pod, node)).then_some(REASON_NODE_AFFINITY)
}

/// Score input: the sum of weights of the preferred terms this node matches.
pub(crate) fn preferred_weight(pod: &Pod, node: &Node) -> i64 {
    let preferred = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default();
    let labels = labels_of(&node.metadata.labels);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    preferred
        .iter()
        .filter(|term| node_selector_term_matches(&term.preference, name, labels))
        .map(|term| i64::from(term.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("test fixture")
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("test fixture")
    }

    #[test]
    fn node_selector_requires_exact_labels() {
        let p = pod(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(mismatch(&p, &node("a", json!({"disk": "ssd", "x": "y"}))), None);
        assert_eq!(mismatch(&p, &node("b", json!({"disk": "hdd"}))), Some(REASON_NODE_AFFINITY));
        assert_eq!(mismatch(&p, &node("c", json!({}))), Some(REASON_NODE_AFFINITY));
    }

    #[test]
    fn required_terms_are_ored_and_expressions_anded() {
        let p = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a"]},
                        {"key": "arch", "operator": "NotIn", "values": ["arm64"]}
                    ]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
                ]
            }}}}),
        );
        assert_eq!(mismatch(&p, &node("n1", json!({"zone": "a", "arch": "amd64"}))), None);
        assert_eq!(mismatch(&p, &node("n2", json!({"zone": "a", "arch": "arm64"}))), Some(REASON_NODE_AFFINITY));
        assert_eq!(mismatch(&p, &node("n3", json!({"zone": "b"}))), Some(REASON_NODE_AFFINITY));
        assert_eq!(mismatch(&p, &node("special", json!({"zone": "b"}))), None);
    }

    #[test]
    fn empty_required_term_list_matches_nothing() {
        let p = pod(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}
        }}}));
        assert_eq!(mismatch(&p, &node("n1", json!({"zone": "a"}))), Some(REASON_NODE_AFFINITY));
    }

    #[test]
    fn preferred_weights_sum_over_matching_terms() {
        let p = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}
            ]}}}),
        );
        assert_eq!(preferred_weight(&p, &node("n1", json!({"zone": "a", "disk": "ssd"}))), 15);
        assert_eq!(preferred_weight(&p, &node("n2", json!({"disk": "ssd"}))), 5);
        assert_eq!(preferred_weight(&p, &node("n3", json!({}))), 0);
    }
}
