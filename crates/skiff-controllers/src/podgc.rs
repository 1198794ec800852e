//! The pod garbage collector: removes pods nothing else will ever remove, as upstream's pod GC
//! controller does.
//!
//! Guarantees:
//! - Terminated pods (Succeeded or Failed) beyond `terminated_pod_threshold` (0 disables it) are
//!   deleted, oldest first (creationTimestamp, then name), so that many remain.
//! - A pod bound to a node that does not exist is marked Failed with a `DisruptionTarget`
//!   condition (if it had not finished) and force-deleted; both only if a fresh read finds
//!   nothing at the node's path, so a node cache lagging behind a node's registration never
//!   kills that node's pods.
//! - A terminating pod never scheduled is force-deleted: no node will ever finish it.
//! - A terminating pod on a node that is not Ready and tainted
//!   `node.kubernetes.io/out-of-service:NoExecute` is marked Failed (with `DisruptionTarget`) and
//!   force-deleted.
//!
//! Force deletion is gracePeriodSeconds 0 with the pod's uid as precondition. A pod whose
//! deletion only waits on finalizers (deletionTimestamp set, grace 0) is not deleted again: that
//! would change nothing, every round.
//!
//! Differences from upstream: no 40 s quarantine before orphaned pods are collected (the fresh
//! read of the node stands in for upstream's confirming GET); terminating pods on out-of-service
//! nodes also get the `DisruptionTarget` condition. And one addition: a terminated pod marked
//! for deletion with no finalizers left is force-deleted, since skiff's API server (unlike
//! upstream's, which removes an object whose last finalizer goes when its grace period is 0)
//! keeps such a pod until someone deletes it again.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::pod::Pod;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use serde_json::Value;

use crate::action::path;
use crate::workload;
use crate::Action;
use crate::Config;
use crate::Snapshot;

/// The name this controller acts as.
pub const COMPONENT: &str = "pod-garbage-collector";

/// The taint that says a node's pods may be removed at once (its workloads are known stopped).
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// The reason of the `DisruptionTarget` condition this controller sets.
pub const REASON: &str = "DeletionByPodGC";

/// The writes the pod garbage collector wants now.
pub fn reconcile(snapshot: &Snapshot, config: &Config) -> Vec<Action> {
    let nodes: BTreeMap<&str, &Node> =
        snapshot.nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref()))).collect();
    let mut actions = Vec::new();
    // Pods this round already removes: the threshold counts the rest.
    let mut handled: BTreeSet<&str> = BTreeSet::new();

    for pod in &snapshot.pods {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
        let wanted = match node_name {
            Some(node) => match nodes.get(node) {
                None => {
                    let absent = vec![(path::core("nodes", None, Some(node)), String::new())];
                    fail_and_delete(snapshot, pod, uid, "PodGC: node no longer exists")
                        .into_iter()
                        .map(|action| Action::Verified { absent: absent.clone(), action: Box::new(action) })
                        .collect()
                }
                Some(n) if terminating && out_of_service(n) => {
                    fail_and_delete(snapshot, pod, uid, "PodGC: node is out of service")
                }
                Some(_) => finished_but_kept(pod, uid),
            },
            None if terminating => force_delete(pod, uid).into_iter().collect(),
            None => Vec::new(),
        };
        if !wanted.is_empty() {
            handled.insert(uid);
            actions.extend(wanted);
        }
    }

    let threshold = config.terminated_pod_threshold;
    if threshold > 0 {
        let mut terminated: Vec<&Pod> = snapshot
            .pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| workload::pod_is_terminated(p) && p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.metadata.uid.as_deref().is_some_and(|uid| !handled.contains(uid)))
            .collect();
        if terminated.len() > threshold {
            terminated.sort_by(|a, b| {
                let key = |p: &Pod| {
                    (
                        p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                        p.metadata.name.clone(),
                        p.metadata.namespace.clone(),
                    )
                };
                key(a).cmp(&key(b))
            });
            let excess = terminated.len() - threshold;
            for pod in terminated.into_iter().take(excess) {
                let Some(uid) = pod.metadata.uid.as_deref() else {
                    continue;
                };
                actions.extend(force_delete(pod, uid));
            }
        }
    }
    actions
}

/// Built only for a pod that needs a write: most pods need none, and every round visits all.
fn pod_path(pod: &Pod) -> Option<String> {
    Some(path::core("pods", Some(pod.metadata.namespace.as_deref()?), Some(pod.metadata.name.as_deref()?)))
}

/// Whether a node's pods may be removed without waiting for the node: it says so with the
/// out-of-service taint, and is not Ready.
fn out_of_service(node: &Node) -> bool {
    let spec = node.spec.as_ref();
    let tainted = spec
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == OUT_OF_SERVICE_TAINT && t.effect == "NoExecute");
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    tainted && !ready
}

/// A delete with grace 0, unless the pod's deletion only waits on finalizers (deleting it again
/// would change nothing).
fn force_delete(pod: &Pod, uid: &str) -> Option<Action> {
    let meta = &pod.metadata;
    let waits_on_finalizers = meta.deletion_timestamp.is_some()
        && meta.deletion_grace_period_seconds == Some(0)
        && meta.finalizers.as_deref().is_some_and(|f| !f.is_empty());
    if waits_on_finalizers {
        return None;
    }
    Some(Action::Delete { path: pod_path(pod)?, uid: Some(uid.to_string()), propagation: None, grace: Some(0) })
}

/// For a pod that has not finished: a status patch to Failed with a `DisruptionTarget`
/// condition; then the force delete.
fn fail_and_delete(snapshot: &Snapshot, pod: &Pod, uid: &str, message: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(pod_path) = pod_path(pod) else {
        return actions;
    };
    if !workload::pod_is_terminated(pod) {
        let mut conditions: Vec<Value> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|c| c.type_ != "DisruptionTarget")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        conditions.push(json!({"type": "DisruptionTarget", "status": "True", "reason": REASON,
            "message": message, "lastTransitionTime": workload::timestamp(snapshot.now)}));
        actions.push(Action::MergePatch {
            path: format!("{pod_path}/status"),
            patch: json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"phase": "Failed", "conditions": conditions}}),
        });
    }
    actions.extend(force_delete(pod, uid));
    actions
}

/// A terminated pod marked for deletion with no finalizers left: nothing but another delete
/// removes it from skiff's API server.
fn finished_but_kept(pod: &Pod, uid: &str) -> Vec<Action> {
    let meta = &pod.metadata;
    let kept = workload::pod_is_terminated(pod)
        && meta.deletion_timestamp.is_some()
        && meta.finalizers.as_deref().is_none_or(<[String]>::is_empty);
    if !kept {
        return Vec::new();
    }
    force_delete(pod, uid).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const NOW: &str = "2026-01-01T00:01:00Z";

    fn snapshot(nodes: Vec<Arc<Node>>, pods: Vec<Arc<Pod>>) -> Snapshot {
        let mut s = Snapshot::empty(NOW.parse().expect("time"));
        s.nodes = nodes;
        s.pods = pods;
        s
    }

    fn node(name: &str, ready: bool, out_of_service: bool) -> Arc<Node> {
        let taints =
            if out_of_service { json!([{"key": OUT_OF_SERVICE_TAINT, "effect": "NoExecute"}]) } else { json!([]) };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "uid": format!("{name}-uid")},
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}]}}))
            .expect("fixture"),
        )
    }

    /// A pod named `name` (uid `name`-uid) in namespace `a`, created at `created`.
    fn pod(name: &str, node: &str, phase: &str, created: &str) -> Value {
        json!({"metadata": {"namespace": "a", "name": name, "uid": format!("{name}-uid"), "resourceVersion": "7",
                "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}})
    }

    fn terminating(mut pod: Value, grace: i64, finalizers: &[&str]) -> Value {
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        pod["metadata"]["finalizers"] = json!(finalizers);
        pod
    }

    fn arc(v: Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(v).expect("fixture"))
    }

    fn run(s: &Snapshot, threshold: usize) -> Vec<Action> {
        reconcile(s, &Config { terminated_pod_threshold: threshold, ..Config::default() })
    }

    fn force_delete(name: &str) -> Action {
        Action::Delete {
            path: format!("/api/v1/namespaces/a/pods/{name}"),
            uid: Some(format!("{name}-uid")),
            propagation: None,
            grace: Some(0),
        }
    }

    fn failed(name: &str, message: &str) -> Action {
        Action::MergePatch {
            path: format!("/api/v1/namespaces/a/pods/{name}/status"),
            patch: json!({"metadata": {"resourceVersion": "7"}, "status": {"phase": "Failed", "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "DisruptionTarget", "status": "True", "reason": REASON, "message": message,
                    "lastTransitionTime": NOW}]}}),
        }
    }

    fn unless_node(node: &str, action: Action) -> Action {
        Action::Verified { absent: vec![(format!("/api/v1/nodes/{node}"), String::new())], action: Box::new(action) }
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_go_oldest_first() {
        let n = node("n1", true, false);
        let pods = vec![
            arc(pod("d", "n1", "Failed", "2026-01-01T00:00:03Z")),
            arc(pod("c", "n1", "Succeeded", "2026-01-01T00:00:01Z")),
            arc(pod("b", "n1", "Succeeded", "2026-01-01T00:00:01Z")),
            arc(pod("a", "n1", "Succeeded", "2026-01-01T00:00:02Z")),
            arc(pod("running", "n1", "Running", "2026-01-01T00:00:00Z")),
            // Already being deleted (a finalizer holds it): neither counted nor deleted again.
            arc(terminating(pod("old", "n1", "Failed", "2026-01-01T00:00:00Z"), 0, &["example.com/keep"])),
        ];
        let s = snapshot(vec![n.clone()], pods);
        // Same creation time: by name.
        assert_eq!(run(&s, 2), vec![force_delete("b"), force_delete("c")]);
        assert_eq!(run(&s, 1), vec![force_delete("b"), force_delete("c"), force_delete("a")]);
        assert_eq!(run(&s, 4), vec![]);
        assert_eq!(run(&s, 0), vec![], "0 disables it");
        // After the deletes: steady.
        let left = vec![
            arc(pod("d", "n1", "Failed", "2026-01-01T00:00:03Z")),
            arc(pod("a", "n1", "Succeeded", "2026-01-01T00:00:02Z")),
        ];
        assert_eq!(run(&snapshot(vec![n], left), 2), vec![]);
    }

    #[test]
    fn pods_of_a_node_that_is_gone_are_failed_and_deleted_once_a_fresh_read_agrees() {
        let s = snapshot(vec![node("n1", true, false)], vec![arc(pod("p", "n2", "Running", NOW))]);
        assert_eq!(
            run(&s, 0),
            vec![unless_node("n2", failed("p", "PodGC: node no longer exists")), unless_node("n2", force_delete("p"))]
        );
        // On an existing node, nothing.
        let s = snapshot(vec![node("n2", false, false)], vec![arc(pod("p", "n2", "Running", NOW))]);
        assert_eq!(run(&s, 0), vec![]);
    }

    #[test]
    fn a_finished_pod_of_a_gone_node_is_only_deleted() {
        let s = snapshot(vec![], vec![arc(pod("p", "n2", "Failed", NOW))]);
        assert_eq!(run(&s, 0), vec![unless_node("n2", force_delete("p"))]);
        // The pod of a gone node is not counted against the threshold as well: with q, one remains.
        let two = snapshot(
            vec![node("n1", true, false)],
            vec![arc(pod("p", "n2", "Failed", NOW)), arc(pod("q", "n1", "Failed", NOW))],
        );
        assert_eq!(run(&two, 1), vec![unless_node("n2", force_delete("p"))]);
    }

    #[test]
    fn an_existing_disruption_condition_is_replaced_not_repeated() {
        let mut p = pod("p", "n2", "Running", NOW);
        p["status"]["conditions"] = json!([{"type": "Ready", "status": "False"},
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]);
        let s = snapshot(vec![], vec![arc(p)]);
        assert_eq!(run(&s, 0)[0], unless_node("n2", failed("p", "PodGC: node no longer exists")));
    }

    #[test]
    fn terminating_pods_never_scheduled_are_force_deleted() {
        let s = snapshot(vec![], vec![arc(terminating(pod("p", "", "Pending", NOW), 30, &[]))]);
        assert_eq!(run(&s, 0), vec![force_delete("p")]);
        // Not terminating: the scheduler's business.
        let s = snapshot(vec![], vec![arc(pod("p", "", "Pending", NOW))]);
        assert_eq!(run(&s, 0), vec![]);
        // Waiting only on a finalizer: deleting again changes nothing.
        let s = snapshot(vec![], vec![arc(terminating(pod("p", "", "Pending", NOW), 0, &["example.com/keep"]))]);
        assert_eq!(run(&s, 0), vec![]);
    }

    #[test]
    fn terminating_pods_of_an_out_of_service_node_are_failed_and_deleted() {
        let message = "PodGC: node is out of service";
        let running = arc(terminating(pod("p", "n1", "Running", NOW), 30, &[]));
        let s = snapshot(vec![node("n1", false, true)], vec![running.clone(), arc(pod("q", "n1", "Running", NOW))]);
        assert_eq!(run(&s, 0), vec![failed("p", message), force_delete("p")], "q is not terminating");
        let done = arc(terminating(pod("p", "n1", "Failed", NOW), 30, &[]));
        assert_eq!(run(&snapshot(vec![node("n1", false, true)], vec![done]), 0), vec![force_delete("p")]);
        // Ready, or not tainted: the node finishes its pods itself.
        assert_eq!(run(&snapshot(vec![node("n1", true, true)], vec![running.clone()]), 0), vec![]);
        assert_eq!(run(&snapshot(vec![node("n1", false, false)], vec![running]), 0), vec![]);
    }

    #[test]
    fn a_finished_pod_marked_for_deletion_without_finalizers_is_deleted_again() {
        let n = vec![node("n1", true, false)];
        let kept = arc(terminating(pod("p", "n1", "Succeeded", NOW), 0, &[]));
        assert_eq!(run(&snapshot(n.clone(), vec![kept]), 0), vec![force_delete("p")]);
        let held = arc(terminating(pod("p", "n1", "Succeeded", NOW), 0, &["example.com/keep"]));
        assert_eq!(run(&snapshot(n.clone(), vec![held]), 0), vec![]);
        // A running pod being deleted gracefully is its node's to finish.
        let graceful = arc(terminating(pod("p", "n1", "Running", NOW), 30, &[]));
        assert_eq!(run(&snapshot(n, vec![graceful]), 0), vec![]);
    }

    #[test]
    fn a_steady_cluster_wants_nothing() {
        let nodes = vec![node("n1", true, false), node("n2", false, true)];
        let pods = vec![
            arc(pod("a", "n1", "Running", NOW)),
            arc(pod("b", "n2", "Running", NOW)),
            arc(pod("c", "", "Pending", NOW)),
            arc(pod("d", "n1", "Succeeded", NOW)),
        ];
        assert_eq!(run(&snapshot(nodes, pods), 12_500), vec![]);
    }
}
