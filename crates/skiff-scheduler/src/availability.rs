//! Whether a node accepts new pods at all: cordoning, readiness and a pod's
//! explicit `spec.nodeName`.

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::taints::{pod_tolerates, NO_SCHEDULE};

/// Reason for a cordoned node.
pub(crate) const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason for a node whose Ready condition is not True.
pub(crate) const REASON_NOT_READY: &str = "node(s) had condition NotReady";
/// Reason for nodes other than the one named in `spec.nodeName`.
pub(crate) const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";

const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Filter: a cordoned node (`spec.unschedulable`) only takes pods that
/// tolerate `node.kubernetes.io/unschedulable:NoSchedule`.
pub(crate) fn cordoned(pod: &Pod, node: &Node) -> Option<&'static str> {
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    (unschedulable && !pod_tolerates(pod, TAINT_UNSCHEDULABLE, "", NO_SCHEDULE)).then_some(REASON_UNSCHEDULABLE)
}

/// Filter: the node's `Ready` condition must be `True`.
///
/// Upstream expresses readiness only through the `not-ready`/`unreachable`
/// taints a lifecycle controller adds, so pods that tolerate those taints
/// (CNI and other node-bootstrap DaemonSets) must still land on a node that is
/// not Ready yet, or the node never becomes Ready. We honour the same
/// tolerations here so skiff works with or without such a controller.
#[cfg(test)]
pub(crate) fn not_ready(pod: &Pod, node: &Node) -> Option<&'static str> {
    not_ready_with(pod, ready_status(node))
}

/// The status of the node's `Ready` condition, if it has one (looked up once per node and pass).
pub(crate) fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str())
}

/// [`not_ready`] given the node's `Ready` status.
pub(crate) fn not_ready_with(pod: &Pod, ready_status: Option<&str>) -> Option<&'static str> {
    let taint_key = match ready_status {
        Some("True") => return None,
        // Unknown means the node stopped reporting, which upstream taints as unreachable.
        Some("Unknown") => TAINT_UNREACHABLE,
        _ => TAINT_NOT_READY,
    };
    (!pod_tolerates(pod, taint_key, "", NO_SCHEDULE)).then_some(REASON_NOT_READY)
}

/// Filter: a pod that already names its node only fits that node.
pub(crate) fn other_node_requested(pod: &Pod, node_name: &str) -> Option<&'static str> {
    let wanted = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())?;
    (wanted != node_name).then_some(REASON_NODE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(spec: serde_json::Value, ready: Option<&str>) -> Node {
        let conditions = match ready {
            Some(status) => json!([{"type": "Ready", "status": status}]),
            None => json!([]),
        };
        serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec, "status": {"conditions": conditions}}))
            .expect("test fixture")
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}}),
        )
        .expect("test fixture")
    }

    #[test]
    fn cordoned_node_rejects_unless_tolerated() {
        let n = node(json!({"unschedulable": true}), Some("True"));
        assert_eq!(cordoned(&pod(json!([])), &n), Some(REASON_UNSCHEDULABLE));
        let tolerant =
            pod(json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]));
        assert_eq!(cordoned(&tolerant, &n), None);
        assert_eq!(cordoned(&pod(json!([])), &node(json!({}), Some("True"))), None);
    }

    #[test]
    fn readiness_requires_true_condition() {
        let p = pod(json!([]));
        assert_eq!(not_ready(&p, &node(json!({}), Some("True"))), None);
        assert_eq!(not_ready(&p, &node(json!({}), Some("False"))), Some(REASON_NOT_READY));
        assert_eq!(not_ready(&p, &node(json!({}), Some("Unknown"))), Some(REASON_NOT_READY));
        assert_eq!(not_ready(&p, &node(json!({}), None)), Some(REASON_NOT_READY));
    }

    #[test]
    fn readiness_honours_bootstrap_tolerations() {
        let cni = pod(json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]));
        assert_eq!(not_ready(&cni, &node(json!({}), Some("False"))), None);
        // Tolerating not-ready says nothing about unreachable nodes.
        assert_eq!(not_ready(&cni, &node(json!({}), Some("Unknown"))), Some(REASON_NOT_READY));
    }

    #[test]
    fn explicit_node_name_pins_the_pod() {
        let pinned: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [], "nodeName": "n2"}}))
                .expect("test fixture");
        assert_eq!(other_node_requested(&pinned, "n1"), Some(REASON_NODE_NAME));
        assert_eq!(other_node_requested(&pinned, "n2"), None);
        assert_eq!(other_node_requested(&pod(json!([])), "n1"), None);
    }
}
