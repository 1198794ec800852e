//! The node lifecycle controller and the taint-eviction controller, as upstream 1.32's
//! `node-lifecycle-controller` and `taint-eviction-controller`.
//!
//! What it guarantees, every round:
//! - A node whose last heartbeat (the later of its Lease `kube-node-lease/NAME` renewTime and its
//!   Ready condition's lastHeartbeatTime; its creationTimestamp when it has neither, so a node
//!   that has just registered gets a grace period) is older than `node_monitor_grace` has its
//!   Ready, MemoryPressure, DiskPressure and PIDPressure conditions Unknown (reason
//!   `NodeStatusUnknown`; a condition the kubelet never posted is added), with a `NodeNotReady`
//!   event when Ready was True. Its Ready pods are marked not ready.
//! - Node taints follow the node: Ready False → `node.kubernetes.io/not-ready`, Ready Unknown →
//!   `node.kubernetes.io/unreachable`, each with NoSchedule and NoExecute (the NoExecute one
//!   stamped with timeAdded); MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable True →
//!   the matching NoSchedule taint; `spec.unschedulable` → `node.kubernetes.io/unschedulable`.
//!   Every other taint is left as it is, and an existing taint is never rewritten (its timeAdded
//!   stays).
//! - A pod bound to a node with NoExecute taints is evicted (a `DisruptionTarget` condition, then
//!   a graceful delete) at once if it does not tolerate one of them, or once the shortest
//!   matching `tolerationSeconds` has passed since the taint's timeAdded; never if the matching
//!   tolerations set no `tolerationSeconds`.
//!
//! Differences from upstream:
//! - skiff's API server has no DefaultTolerationSeconds admission (it adds no tolerations at
//!   admission: `tolerationSeconds` appears there only in validation), so a pod without a
//!   toleration for `not-ready`/`unreachable` (judged as that admission does: a toleration with
//!   that key or no key, and effect NoExecute or none) is treated as if it had one for
//!   `config.default_toleration`.
//! - Toleration time counts from the taint's `timeAdded`, not from when the controller first saw
//!   the taint (this controller keeps no memory between rounds). A NoExecute taint without
//!   `timeAdded` (which skiff's API server does not fill in) counts as added long ago: a pod that
//!   tolerates it only for a while is evicted at once.
//! - No rate limiting of evictions and no zone-disruption modes (upstream slows or stops
//!   evicting when most nodes of a zone are unhealthy); no node deletion for cloud providers.
//! - Pods are marked not ready only while their node's heartbeat is stale (upstream: whenever
//!   its Ready is not True); a node that reports Ready False itself is alive, and its kubelet
//!   owns its pods' readiness.
//! - A node with no Ready condition at all keeps whatever `not-ready`/`unreachable` taints it has
//!   (upstream removes the NoSchedule ones; the kubelet registers with `not-ready`).
//! - In a round that writes a node's status, its taints are left for the next round: both writes
//!   are conditional on the same resourceVersion, so the second would only be refused.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::pod::Pod;
use jiff::SignedDuration;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use serde_json::Value;

use crate::action::path;
use crate::workload;
use crate::Action;
use crate::Config;
use crate::EventType;
use crate::Snapshot;

/// The component the node lifecycle controller's events come from.
pub const COMPONENT: &str = "node-controller";
/// The component eviction events come from.
pub const EVICTION_COMPONENT: &str = "taint-eviction-controller";
/// The taint of a node whose kubelet reports it not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose kubelet stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

const LEASE_NAMESPACE: &str = "kube-node-lease";
const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";
const UNKNOWN: &str = "Unknown";
/// The conditions a node whose kubelet went silent has Unknown.
const MONITORED: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// Conditions that, when True, taint the node NoSchedule.
const CONDITION_TAINTS: [(&str, &str); 4] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    ("NetworkUnavailable", "node.kubernetes.io/network-unavailable"),
];

/// Marks silent nodes Unknown, keeps node taints in line with conditions, marks pods of silent
/// nodes not ready and evicts pods that do not (or no longer) tolerate their node's NoExecute taints.
pub fn reconcile(snapshot: &Snapshot, config: &Config) -> Vec<Action> {
    let now = snapshot.now;
    let renewals: BTreeMap<&str, Timestamp> = snapshot
        .leases
        .iter()
        .filter(|l| l.metadata.namespace.as_deref() == Some(LEASE_NAMESPACE))
        .filter_map(|l| Some((l.metadata.name.as_deref()?, l.spec.as_ref()?.renew_time.as_ref()?.0)))
        .collect();
    let mut actions = Vec::new();
    let mut silent = BTreeSet::new();
    let mut nodes = BTreeMap::new();
    for node in &snapshot.nodes {
        let Some(name) = node.metadata.name.as_deref() else { continue };
        nodes.insert(name, node.as_ref());
        let beat = heartbeat(node, renewals.get(name).copied());
        if beat.is_some_and(|beat| is_past(beat, config.node_monitor_grace, now)) {
            silent.insert(name);
            if let Some(status) = unknown_conditions(node, now) {
                actions.extend(status);
                continue;
            }
        }
        actions.extend(taint_patch(node, now));
    }
    for pod in &snapshot.pods {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
        let Some(node) = nodes.get(node_name) else { continue };
        actions.extend(pod_actions(pod, node, silent.contains(node_name), config, now));
    }
    actions
}

/// Whether `since + length` is before `now` (never, if that overflows).
fn is_past(since: Timestamp, length: std::time::Duration, now: Timestamp) -> bool {
    SignedDuration::try_from(length).ok().and_then(|d| since.checked_add(d).ok()).is_some_and(|end| end < now)
}

/// The node's last sign of life: the later of its Lease renewal and its Ready heartbeat, or its
/// creation when it has shown none.
fn heartbeat(node: &Node, renewed: Option<Timestamp>) -> Option<Timestamp> {
    let posted = node_condition(node, "Ready").and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    match (renewed, posted) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (Some(t), None) | (None, Some(t)) => Some(t),
        (None, None) => node.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

fn node_condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_deref()?.iter().find(|c| c.type_ == type_)
}

/// The status write (and event) that makes a silent node's monitored conditions Unknown, or None
/// when they already are.
fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<Action>> {
    let name = node.metadata.name.as_deref()?;
    let mut conditions: Vec<NodeCondition> =
        node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let was_ready = node_condition(node, "Ready").is_some_and(|c| c.status == "True");
    let mut changed = false;
    for type_ in MONITORED {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == UNKNOWN => {}
            Some(c) => {
                c.status = UNKNOWN.to_string();
                c.reason = Some("NodeStatusUnknown".to_string());
                c.message = Some("Kubelet stopped posting node status.".to_string());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.to_string(),
                    status: UNKNOWN.to_string(),
                    reason: Some("NodeStatusUnknown".to_string()),
                    message: Some("Kubelet never posted node status.".to_string()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    if !changed {
        return None;
    }
    let mut actions = vec![Action::MergePatch {
        path: format!("{}/status", path::core("nodes", None, Some(name))),
        patch: json!({"metadata": {"resourceVersion": node.metadata.resource_version},
            "status": {"conditions": conditions}}),
    }];
    if was_ready {
        actions.push(Action::event(
            COMPONENT,
            "v1",
            "Node",
            &node.metadata,
            EventType::Normal,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        ));
    }
    Some(actions)
}

/// The taint write that brings the node's condition taints in line with its conditions, or None
/// when they are.
fn taint_patch(node: &Node, now: Timestamp) -> Option<Action> {
    let name = node.metadata.name.as_deref()?;
    let status_of = |type_: &str| node_condition(node, type_).map(|c| c.status.as_str());
    // (key, effect) pairs this controller decides this round, and the ones it wants.
    let mut managed: Vec<(&str, &str)> = Vec::new();
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if let Some(ready) = status_of("Ready") {
        for key in [NOT_READY, UNREACHABLE] {
            managed.extend([(key, NO_SCHEDULE), (key, NO_EXECUTE)]);
        }
        match ready {
            "False" => wanted.extend([(NOT_READY, NO_SCHEDULE), (NOT_READY, NO_EXECUTE)]),
            UNKNOWN => wanted.extend([(UNREACHABLE, NO_SCHEDULE), (UNREACHABLE, NO_EXECUTE)]),
            _ => {}
        }
    }
    for (type_, key) in CONDITION_TAINTS {
        managed.push((key, NO_SCHEDULE));
        if status_of(type_) == Some("True") {
            wanted.push((key, NO_SCHEDULE));
        }
    }
    managed.push((UNSCHEDULABLE, NO_SCHEDULE));
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((UNSCHEDULABLE, NO_SCHEDULE));
    }

    let old: &[Taint] = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let pair = |t: &Taint| (t.key.clone(), t.effect.clone());
    let mut taints: Vec<Taint> = old
        .iter()
        .filter(|t| {
            let p = (t.key.as_str(), t.effect.as_str());
            !managed.contains(&p) || wanted.contains(&p)
        })
        .cloned()
        .collect();
    let removed = taints.len() != old.len();
    let present: BTreeSet<(String, String)> = taints.iter().map(pair).collect();
    let mut added = false;
    for (key, effect) in wanted {
        if present.contains(&(key.to_string(), effect.to_string())) {
            continue;
        }
        taints.push(Taint {
            key: key.to_string(),
            effect: effect.to_string(),
            value: None,
            time_added: (effect == NO_EXECUTE).then_some(Time(now)),
        });
        added = true;
    }
    if !removed && !added {
        return None;
    }
    let taints = if taints.is_empty() { Value::Null } else { json!(taints) };
    Some(Action::MergePatch {
        path: path::core("nodes", None, Some(name)),
        patch: json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}}),
    })
}

/// Whether `toleration` tolerates `taint` (upstream's matching: an empty key with `Exists`
/// matches every key, an empty effect every effect; `Equal`, the default, compares values).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if toleration.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The pod's tolerations, with the `not-ready`/`unreachable` ones upstream's
/// DefaultTolerationSeconds admission would have added (skiff's API server does not).
fn effective_tolerations(pod: &Pod, default: std::time::Duration) -> Vec<Toleration> {
    let mut tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    let seconds = i64::try_from(default.as_secs()).unwrap_or(i64::MAX);
    for key in [NOT_READY, UNREACHABLE] {
        // Judged as the admission plugin does: by key (or none) and effect, not by full matching.
        let covered = tolerations.iter().any(|t| {
            let key_matches = matches!(t.key.as_deref(), None | Some("")) || t.key.as_deref() == Some(key);
            key_matches && matches!(t.effect.as_deref(), None | Some("") | Some(NO_EXECUTE))
        });
        if !covered {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some(NO_EXECUTE.to_string()),
                toleration_seconds: Some(seconds),
                value: None,
            });
        }
    }
    tolerations
}

/// Whether a pod with `tolerations` must leave a node with NoExecute `taints` at `now`: it does
/// not tolerate one of them, or the shortest toleration (the first matching one per taint, as
/// upstream) has run out since that taint's timeAdded.
pub fn eviction_due(taints: &[&Taint], tolerations: &[Toleration], now: Timestamp) -> bool {
    taints.iter().any(|taint| {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else { return true };
        let Some(seconds) = toleration.toleration_seconds else { return false };
        let Some(added) = &taint.time_added else { return true };
        added.0.checked_add(SignedDuration::from_secs(seconds.max(0))).is_ok_and(|end| end <= now)
    })
}

/// The writes for one pod bound to `node`: marking it not ready when the node went silent, and
/// evicting it when its node's NoExecute taints say so.
fn pod_actions(pod: &Pod, node: &Node, silent: bool, config: &Config, now: Timestamp) -> Vec<Action> {
    let (Some(ns), Some(name)) = (pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref()) else {
        return Vec::new();
    };
    let mark_not_ready = silent && workload::pod_is_ready(pod);
    let no_execute: Vec<&Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .collect();
    let evict = !no_execute.is_empty()
        && workload::pod_is_active(pod)
        && eviction_due(&no_execute, &effective_tolerations(pod, config.default_toleration), now);
    if !mark_not_ready && !evict {
        return Vec::new();
    }

    let mut conditions: Vec<PodCondition> = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    if mark_not_ready {
        for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
            c.status = "False".to_string();
            c.last_transition_time = Some(Time(now));
            changed = true;
        }
    }
    if evict && workload::pod_condition(pod, "DisruptionTarget").is_none_or(|c| c.status != "True") {
        let target = PodCondition {
            type_: "DisruptionTarget".to_string(),
            status: "True".to_string(),
            reason: Some("DeletionByTaintManager".to_string()),
            message: Some("Taint manager: deleting due to NoExecute taint".to_string()),
            last_transition_time: Some(Time(now)),
            last_probe_time: None,
        };
        match conditions.iter_mut().find(|c| c.type_ == "DisruptionTarget") {
            Some(c) => *c = target,
            None => conditions.push(target),
        }
        changed = true;
    }

    let pod_path = path::core("pods", Some(ns), Some(name));
    let mut actions = Vec::new();
    if changed {
        actions.push(Action::MergePatch {
            path: format!("{pod_path}/status"),
            patch: json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": conditions}}),
        });
    }
    if mark_not_ready {
        actions.push(Action::event(
            COMPONENT,
            "v1",
            "Pod",
            &pod.metadata,
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready",
        ));
    }
    if evict {
        actions.push(Action::Delete { path: pod_path, uid: pod.metadata.uid.clone(), propagation: None, grace: None });
        actions.push(Action::event(
            EVICTION_COMPONENT,
            "v1",
            "Pod",
            &pod.metadata,
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        ));
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::coordination::v1::Lease;

    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().expect("time")
    }

    /// `now` moved by `secs` seconds, in the API's format.
    fn at(secs: i64) -> String {
        workload::timestamp(now() + SignedDuration::from_secs(secs))
    }

    fn ready(status: &str, beat: i64) -> Value {
        json!({"type": "Ready", "status": status, "reason": "KubeletReady", "lastHeartbeatTime": at(beat),
            "lastTransitionTime": at(-3600)})
    }

    fn node(name: &str, conditions: Vec<Value>, spec: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "uid": format!("{name}-uid"),
                "resourceVersion": "1", "creationTimestamp": at(-7200)},
                "spec": spec, "status": {"conditions": conditions}}))
            .expect("fixture"),
        )
    }

    fn lease(name: &str, renewed: i64) -> Arc<Lease> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": name, "renewTime": format!("{}.000000Z", at(renewed).trim_end_matches('Z'))}}))
            .expect("fixture"),
        )
    }

    fn pod(name: &str, node: &str, tolerations: Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                "resourceVersion": "1"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}], "tolerations": tolerations},
                "status": {"phase": "Running", "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": at(-3000)}]}}))
            .expect("fixture"),
        )
    }

    fn cluster(nodes: Vec<Arc<Node>>, leases: Vec<Arc<Lease>>, pods: Vec<Arc<Pod>>) -> Snapshot {
        let mut s = Snapshot::empty(now());
        s.nodes = nodes;
        s.leases = leases;
        s.pods = pods;
        s
    }

    fn run(s: &Snapshot) -> Vec<Action> {
        reconcile(s, &Config::default())
    }

    fn merge(target: &mut Value, patch: &Value) {
        let Value::Object(fields) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        for (k, v) in fields {
            if v.is_null() {
                target.as_object_mut().expect("object").remove(k);
            } else {
                merge(target.as_object_mut().expect("object").entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }

    /// Applies one object's write as the API would: merge patches conditional on resourceVersion
    /// (a stale one is refused, as a 409), deletes set deletionTimestamp.
    fn write<T: serde::Serialize + serde::de::DeserializeOwned>(object: &mut Arc<T>, action: &Action, now: Timestamp) {
        let mut value = serde_json::to_value(object.as_ref()).expect("serialize");
        let rv: u64 = value["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).expect("rv");
        match action {
            Action::MergePatch { patch, .. } => {
                if patch["metadata"]["resourceVersion"] != value["metadata"]["resourceVersion"] {
                    return;
                }
                merge(&mut value, patch);
            }
            Action::Delete { .. } => value["metadata"]["deletionTimestamp"] = json!(workload::timestamp(now)),
            _ => return,
        }
        value["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
        *object = Arc::new(serde_json::from_value(value).expect("valid object"));
    }

    /// The snapshot after the actions are carried out.
    fn apply(s: &Snapshot, actions: &[Action]) -> Snapshot {
        let mut s = s.clone();
        for action in actions {
            let target = action.target();
            let target = target.trim_end_matches("/status");
            for n in &mut s.nodes {
                if path::core("nodes", None, n.metadata.name.as_deref()) == target {
                    write(n, action, s.now);
                }
            }
            for p in &mut s.pods {
                if path::core("pods", Some("ns"), p.metadata.name.as_deref()) == target {
                    write(p, action, s.now);
                }
            }
        }
        s
    }

    fn node_of(s: &Snapshot, name: &str) -> Value {
        let n = s.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(name)).expect("node");
        serde_json::to_value(n.as_ref()).expect("serialize")
    }

    fn pod_of(s: &Snapshot, name: &str) -> Value {
        let p = s.pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)).expect("pod");
        serde_json::to_value(p.as_ref()).expect("serialize")
    }

    fn condition(object: &Value, type_: &str) -> Value {
        object["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
            .unwrap_or(Value::Null)
    }

    fn taints(node: &Value) -> Vec<String> {
        node["spec"]["taints"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| format!("{}:{}", t["key"].as_str().unwrap_or(""), t["effect"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn reasons(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn deletes(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_healthy_node_wants_nothing() {
        let s = cluster(
            vec![node("n1", vec![ready("True", -5)], json!({}))],
            vec![lease("n1", -5)],
            vec![pod("p", "n1", json!([]))],
        );
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn a_fresh_lease_counts_as_a_heartbeat() {
        // The kubelet posts status rarely when nothing changes; the Lease is what says it lives.
        let s = cluster(vec![node("n1", vec![ready("True", -600)], json!({}))], vec![lease("n1", -3)], vec![]);
        assert_eq!(run(&s), vec![]);
        // And a fresh Ready heartbeat counts when the Lease is old.
        let s = cluster(vec![node("n1", vec![ready("True", -3)], json!({}))], vec![lease("n1", -600)], vec![]);
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn a_silent_node_goes_unknown_then_unreachable_and_its_pods_not_ready() {
        let s = cluster(
            vec![node("n1", vec![ready("True", -60), json!({"type": "MemoryPressure", "status": "False"})], json!({}))],
            vec![lease("n1", -41)],
            vec![pod("p", "n1", json!([])), pod("elsewhere", "n2", json!([]))],
        );
        let first = run(&s);
        assert_eq!(reasons(&first), vec!["NodeNotReady", "NodeNotReady"], "one on the node, one on the pod");
        assert_eq!(first.len(), 4, "node status, its event, pod status, its event; no taints yet: {first:?}");
        let s = apply(&s, &first);
        let n = node_of(&s, "n1");
        let r = condition(&n, "Ready");
        assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("Unknown"), Some("NodeStatusUnknown")));
        assert_eq!(r["message"], "Kubelet stopped posting node status.");
        assert_eq!(r["lastHeartbeatTime"], json!(at(-60)), "the heartbeat is kept");
        assert_eq!(r["lastTransitionTime"], json!(at(0)));
        assert_eq!(condition(&n, "MemoryPressure")["message"], "Kubelet stopped posting node status.");
        for never in ["DiskPressure", "PIDPressure"] {
            assert_eq!(condition(&n, never)["status"], "Unknown");
            assert_eq!(condition(&n, never)["message"], "Kubelet never posted node status.");
        }
        assert!(taints(&n).is_empty(), "taints wait for the next round, or the write would conflict");
        assert_eq!(condition(&pod_of(&s, "p"), "Ready")["status"], "False");
        assert_eq!(condition(&pod_of(&s, "p"), "PodScheduled")["status"], "True", "the other conditions stay");
        assert_eq!(condition(&pod_of(&s, "elsewhere"), "Ready")["status"], "True");

        let second = run(&s);
        assert_eq!(second.len(), 1, "{second:?}");
        let s = apply(&s, &second);
        let n = node_of(&s, "n1");
        assert_eq!(taints(&n), vec![format!("{UNREACHABLE}:NoSchedule"), format!("{UNREACHABLE}:NoExecute")]);
        assert_eq!(n["spec"]["taints"][0]["timeAdded"], Value::Null);
        assert_eq!(n["spec"]["taints"][1]["timeAdded"], json!(at(0)));
        assert_eq!(run(&s), vec![], "converged");

        // The default toleration (300 s) runs out, counted from timeAdded.
        let mut later = s.clone();
        later.now = now() + SignedDuration::from_secs(299);
        assert_eq!(run(&later), vec![]);
        later.now = now() + SignedDuration::from_secs(300);
        let evict = run(&later);
        assert_eq!(deletes(&evict), vec!["/api/v1/namespaces/ns/pods/p"]);
        let after = apply(&later, &evict);
        assert_eq!(run(&after), vec![], "a pod being deleted is not evicted again");
    }

    #[test]
    fn a_node_already_unknown_is_not_rewritten() {
        let unknown = |t: &str| json!({"type": t, "status": "Unknown", "lastHeartbeatTime": at(-90)});
        let conditions = MONITORED.iter().map(|t| unknown(t)).collect();
        let tainted = json!({"taints": [{"key": UNREACHABLE, "effect": "NoSchedule"},
            {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": at(-50)}]});
        let s = cluster(vec![node("n1", conditions, tainted)], vec![lease("n1", -90)], vec![]);
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn a_brand_new_node_has_a_grace_period() {
        let mut fresh = node("n1", vec![], json!({}));
        Arc::make_mut(&mut fresh).metadata.creation_timestamp = Some(Time(now() - SignedDuration::from_secs(10)));
        let s = cluster(vec![fresh.clone()], vec![], vec![]);
        assert_eq!(run(&s), vec![]);
        // Past the grace period it never reported: every condition is added, Unknown.
        let mut s = s;
        s.now = now() + SignedDuration::from_secs(31);
        let actions = run(&s);
        assert!(reasons(&actions).is_empty(), "it was never Ready");
        let s = apply(&s, &actions);
        let n = node_of(&s, "n1");
        assert_eq!(condition(&n, "Ready")["message"], "Kubelet never posted node status.");
        assert_eq!(condition(&n, "Ready")["lastHeartbeatTime"], json!(at(-10)));
    }

    #[test]
    fn a_node_that_reports_not_ready_is_tainted_not_ready() {
        let s = cluster(
            vec![node("n1", vec![ready("False", -2)], json!({}))],
            vec![lease("n1", -2)],
            vec![pod("p", "n1", json!([]))],
        );
        let actions = run(&s);
        assert_eq!(actions.len(), 1, "no status change and no pod marked: {actions:?}");
        let s = apply(&s, &actions);
        assert_eq!(
            taints(&node_of(&s, "n1")),
            vec![format!("{NOT_READY}:NoSchedule"), format!("{NOT_READY}:NoExecute")]
        );
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn recovery_removes_condition_taints_and_keeps_the_others() {
        let spec = json!({"taints": [
            {"key": UNREACHABLE, "effect": "NoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": at(-100)},
            {"key": "maintenance", "effect": "NoExecute", "timeAdded": at(-100)}]});
        let s = cluster(vec![node("n1", vec![ready("True", -1)], spec)], vec![lease("n1", -1)], vec![]);
        let actions = run(&s);
        assert_eq!(actions.len(), 1);
        let s = apply(&s, &actions);
        let n = node_of(&s, "n1");
        assert_eq!(taints(&n), vec!["dedicated:NoSchedule", "maintenance:NoExecute"]);
        assert_eq!(n["spec"]["taints"][0]["value"], "gpu");
        assert_eq!(n["spec"]["taints"][1]["timeAdded"], json!(at(-100)));
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn ready_false_to_unknown_swaps_the_taints_and_keeps_nothing_stale() {
        let spec = json!({"taints": [{"key": NOT_READY, "effect": "NoSchedule"},
            {"key": NOT_READY, "effect": "NoExecute", "timeAdded": at(-100)}]});
        let mut conditions = vec![ready("Unknown", -100)];
        conditions
            .extend(["MemoryPressure", "DiskPressure", "PIDPressure"].map(|t| json!({"type": t, "status": "Unknown"})));
        let s = cluster(vec![node("n1", conditions, spec)], vec![lease("n1", -100)], vec![]);
        let s = apply(&s, &run(&s));
        let n = node_of(&s, "n1");
        assert_eq!(taints(&n), vec![format!("{UNREACHABLE}:NoSchedule"), format!("{UNREACHABLE}:NoExecute")]);
        assert_eq!(n["spec"]["taints"][1]["timeAdded"], json!(at(0)));
    }

    #[test]
    fn cordoned_nodes_are_tainted_unschedulable() {
        let s = cluster(
            vec![node("n1", vec![ready("True", -1)], json!({"unschedulable": true}))],
            vec![lease("n1", -1)],
            vec![],
        );
        let s = apply(&s, &run(&s));
        let n = node_of(&s, "n1");
        assert_eq!(taints(&n), vec![format!("{UNSCHEDULABLE}:NoSchedule")]);
        assert_eq!(n["spec"]["taints"][0]["timeAdded"], Value::Null);
        assert_eq!(run(&s), vec![]);
        let mut s = s;
        let mut uncordoned = (*s.nodes[0]).clone();
        uncordoned.spec.as_mut().expect("spec").unschedulable = Some(false);
        s.nodes[0] = Arc::new(uncordoned);
        let s = apply(&s, &run(&s));
        assert!(taints(&node_of(&s, "n1")).is_empty());
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn pods_are_evicted_when_their_tolerations_run_out() {
        let spec = json!({"taints": [{"key": "maintenance", "value": "yes", "effect": "NoExecute", "timeAdded": at(-100)},
            {"key": "dedicated", "effect": "NoSchedule"}]});
        let short =
            json!([{"key": "maintenance", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]);
        let long = json!([{"key": "maintenance", "operator": "Equal", "value": "yes", "tolerationSeconds": 200}]);
        let forever = json!([{"key": "maintenance", "operator": "Exists"}]);
        let other_value = json!([{"key": "maintenance", "operator": "Equal", "value": "no"}]);
        let wildcard = json!([{"operator": "Exists"}]);
        let s = cluster(
            vec![node("n1", vec![ready("True", -1)], spec)],
            vec![lease("n1", -1)],
            vec![
                pod("forever", "n1", forever),
                pod("long", "n1", long),
                pod("none", "n1", json!([])),
                pod("other-value", "n1", other_value),
                pod("short", "n1", short),
                pod("wildcard", "n1", wildcard),
            ],
        );
        let actions = run(&s);
        assert_eq!(
            deletes(&actions),
            vec![
                "/api/v1/namespaces/ns/pods/none",
                "/api/v1/namespaces/ns/pods/other-value",
                "/api/v1/namespaces/ns/pods/short"
            ]
        );
        let Some(Action::Delete { uid, grace, .. }) = actions.iter().find(|a| matches!(a, Action::Delete { .. }))
        else {
            panic!("a delete")
        };
        assert_eq!((uid.as_deref(), *grace), (Some("none-uid"), None), "graceful, only that pod");
        let event = actions.iter().find(|a| matches!(a, Action::Event { .. })).expect("event");
        assert_eq!(
            event,
            &Action::Event {
                regarding: json!({"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": "none",
                    "uid": "none-uid", "resourceVersion": "1"}),
                component: EVICTION_COMPONENT,
                kind: EventType::Normal,
                reason: "TaintManagerEviction".into(),
                message: "Marking for deletion Pod ns/none".into(),
            }
        );
        let s = apply(&s, &actions);
        let target = condition(&pod_of(&s, "short"), "DisruptionTarget");
        assert_eq!(
            (target["status"].as_str(), target["reason"].as_str()),
            (Some("True"), Some("DeletionByTaintManager"))
        );
        assert_eq!(
            condition(&pod_of(&s, "short"), "Ready")["status"],
            "True",
            "eviction alone does not mark not ready"
        );
        assert!(pod_of(&s, "short")["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(run(&s), vec![]);

        let mut later = s.clone();
        later.now = now() + SignedDuration::from_secs(100);
        assert_eq!(deletes(&run(&later)), vec!["/api/v1/namespaces/ns/pods/long"]);
    }

    #[test]
    fn explicit_tolerations_replace_the_default_one() {
        let spec = json!({"taints": [{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": at(-400)}]});
        let unknown = MONITORED.iter().map(|t| json!({"type": t, "status": "Unknown"})).collect();
        let mine = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600}]);
        let not_ready_only =
            json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600}]);
        let s = cluster(
            vec![node("n1", unknown, spec)],
            vec![lease("n1", -400)],
            vec![pod("default", "n1", json!([])), pod("mine", "n1", mine), pod("not-ready-only", "n1", not_ready_only)],
        );
        let actions = run(&s);
        assert_eq!(
            deletes(&actions),
            vec!["/api/v1/namespaces/ns/pods/default", "/api/v1/namespaces/ns/pods/not-ready-only"]
        );
        // One status write per pod, marking it not ready and a disruption target at once.
        let status =
            actions.iter().find(|a| a.target() == "/api/v1/namespaces/ns/pods/default/status").expect("status");
        let Action::MergePatch { patch, .. } = status else { panic!("a patch") };
        assert_eq!(patch["metadata"]["resourceVersion"], "1");
        let types: Vec<(&str, &str)> = patch["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|c| (c["type"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(types, vec![("PodScheduled", "True"), ("Ready", "False"), ("DisruptionTarget", "True")]);
        let config = |secs| Config { default_toleration: Duration::from_secs(secs), ..Config::default() };
        assert!(deletes(&reconcile(&s, &config(500))).is_empty(), "the default toleration comes from the config");
        assert_eq!(deletes(&reconcile(&s, &config(400))).len(), 2, "due exactly when it runs out");
    }

    #[test]
    fn terminated_pods_are_left_alone() {
        let spec = json!({"taints": [{"key": "maintenance", "effect": "NoExecute", "timeAdded": at(-100)}]});
        let mut done = (*pod("done", "n1", json!([]))).clone();
        done.status.as_mut().expect("status").phase = Some("Succeeded".into());
        let s = cluster(vec![node("n1", vec![ready("True", -1)], spec)], vec![lease("n1", -1)], vec![Arc::new(done)]);
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn toleration_matching() {
        let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        };
        let tol = |v: Value| -> Toleration { serde_json::from_value(v).expect("fixture") };
        let t = taint("k", Some("v"), "NoExecute");
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &t));
        assert!(tolerates(&tol(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})), &t));
        assert!(tolerates(&tol(json!({"key": "k", "value": "v"})), &t));
        assert!(tolerates(&tol(json!({"key": "k", "operator": "Equal", "value": "v", "effect": ""})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "value": "w"})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})), &t));
        assert!(!tolerates(&tol(json!({"key": "j", "operator": "Exists"})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "operator": "Gt", "value": "v"})), &t));
        assert!(tolerates(&tol(json!({"key": "k"})), &taint("k", None, "NoSchedule")));
        // A NoExecute taint without timeAdded counts as old; a huge tolerationSeconds does not overflow.
        let limited = [tol(json!({"key": "k", "operator": "Exists", "tolerationSeconds": 5}))];
        assert!(eviction_due(&[&t], &limited, now()));
        let huge = [tol(json!({"key": "k", "operator": "Exists", "tolerationSeconds": i64::MAX}))];
        let mut stamped = t.clone();
        stamped.time_added = Some(Time(now()));
        assert!(!eviction_due(&[&stamped], &huge, now()));
    }
}
