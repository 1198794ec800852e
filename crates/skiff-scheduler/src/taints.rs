//! Taints and tolerations: the hard filter for `NoSchedule`/`NoExecute`
//! taints and the soft preference against `PreferNoSchedule` ones.

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

/// Taint effect that forbids new pods.
pub(crate) const NO_SCHEDULE: &str = "NoSchedule";
/// Taint effect that forbids and evicts pods; the scheduler treats it like `NoSchedule`.
pub(crate) const NO_EXECUTE: &str = "NoExecute";
/// Taint effect that only discourages placement.
pub(crate) const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

/// The pod's tolerations, empty when it has none.
pub(crate) fn tolerations_of(pod: &Pod) -> &[Toleration] {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

/// The node's taints, empty when it has none.
pub(crate) fn taints_of(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

/// Whether one toleration tolerates a taint given by its parts.
///
/// An empty effect tolerates every effect, an empty key (with `Exists`)
/// tolerates every key, and a missing operator means `Equal`.
pub(crate) fn toleration_tolerates(toleration: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let wanted_effect = toleration.effect.as_deref().unwrap_or_default();
    if !wanted_effect.is_empty() && wanted_effect != effect {
        return false;
    }
    let wanted_key = toleration.key.as_deref().unwrap_or_default();
    if !wanted_key.is_empty() && wanted_key != key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Equal" | "" => toleration.value.as_deref().unwrap_or_default() == value,
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of the pod's tolerations tolerates the taint given by its parts.
pub(crate) fn pod_tolerates(pod: &Pod, key: &str, value: &str, effect: &str) -> bool {
    tolerations_of(pod).iter().any(|t| toleration_tolerates(t, key, value, effect))
}

/// Filter: the first `NoSchedule`/`NoExecute` taint the pod does not
/// tolerate, formatted as upstream's `node(s) had untolerated taint {KEY: VALUE}`.
pub(crate) fn untolerated_taint(pod: &Pod, node: &Node) -> Option<String> {
    taints_of(node)
        .iter()
        .filter(|taint| taint.effect == NO_SCHEDULE || taint.effect == NO_EXECUTE)
        .find(|taint| !pod_tolerates(pod, &taint.key, taint.value.as_deref().unwrap_or_default(), &taint.effect))
        .map(|taint| {
            format!("node(s) had untolerated taint {{{}: {}}}", taint.key, taint.value.as_deref().unwrap_or_default())
        })
}

/// Score input: how many `PreferNoSchedule` taints the pod does not tolerate.
///
/// Only tolerations whose effect is empty or `PreferNoSchedule` count, as
/// upstream does, so a `NoSchedule` toleration does not soften a preference.
pub(crate) fn intolerable_preferences(pod: &Pod, node: &Node) -> i64 {
    let relevant: Vec<&Toleration> = tolerations_of(pod)
        .iter()
        .filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == PREFER_NO_SCHEDULE))
        .collect();
    let count = taints_of(node)
        .iter()
        .filter(|taint| taint.effect == PREFER_NO_SCHEDULE)
        .filter(|taint| {
            let value = taint.value.as_deref().unwrap_or_default();
            !relevant.iter().any(|t| toleration_tolerates(t, &taint.key, value, &taint.effect))
        })
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": taints}})).expect("test fixture")
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}}),
        )
        .expect("test fixture")
    }

    #[test]
    fn untolerated_no_schedule_taint_is_reported_with_key_and_value() {
        let n = node(json!([
            {"key": "soft", "value": "x", "effect": "PreferNoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
        ]));
        assert_eq!(
            untolerated_taint(&pod(json!([])), &n).as_deref(),
            Some("node(s) had untolerated taint {dedicated: gpu}")
        );
        let empty_value = node(json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]));
        assert_eq!(
            untolerated_taint(&pod(json!([])), &empty_value).as_deref(),
            Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }")
        );
    }

    #[test]
    fn toleration_operators_and_wildcards() {
        let n = node(json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]));
        let tolerated = [
            json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
            json!([{"key": "dedicated", "value": "gpu"}]),
            json!([{"key": "dedicated", "operator": "Exists"}]),
            json!([{"operator": "Exists"}]),
        ];
        for t in tolerated {
            assert_eq!(untolerated_taint(&pod(t.clone()), &n), None, "{t}");
        }
        let not_tolerated = [
            json!([{"key": "dedicated", "operator": "Equal", "value": "cpu"}]),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
            json!([{"key": "other", "operator": "Exists"}]),
        ];
        for t in not_tolerated {
            assert!(untolerated_taint(&pod(t.clone()), &n).is_some(), "{t}");
        }
    }

    #[test]
    fn prefer_no_schedule_only_counts_for_scoring() {
        let n = node(json!([
            {"key": "a", "effect": "PreferNoSchedule"},
            {"key": "b", "effect": "PreferNoSchedule"}
        ]));
        assert_eq!(untolerated_taint(&pod(json!([])), &n), None);
        assert_eq!(intolerable_preferences(&pod(json!([])), &n), 2);
        assert_eq!(intolerable_preferences(&pod(json!([{"key": "a", "operator": "Exists"}])), &n), 1);
        // A NoSchedule-only toleration does not soften a preference.
        assert_eq!(
            intolerable_preferences(&pod(json!([{"key": "a", "operator": "Exists", "effect": "NoSchedule"}])), &n),
            2
        );
    }
}
