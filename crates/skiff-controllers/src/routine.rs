//! Which pod changes no controller acts on, so that a stream of them (thousands of bare pods
//! created by a client) does not make the manager look at every cached object again and again.
//!
//! A pod is *routine* when no controller's decision can depend on it:
//!
//! - it has no owner references: the ReplicaSet, Deployment and garbage collectors act only on
//!   pods that name an owner;
//! - it is not bound to a node: the pod garbage collector (orphans of deleted nodes) and the
//!   node lifecycle controller (pods of unreachable nodes) act only on bound pods;
//! - it is not being deleted and has no finalizers: what the garbage collectors finish;
//! - it has not finished (`Succeeded` or `Failed`): what the pod garbage collector counts;
//! - its namespace has no ReplicaSet (which could adopt it by its labels) and no Service with a
//!   selector (whose endpoints could list it).
//!
//! A deleted pod is never routine (dependents may have to go with it), and neither is a relist.
//! `decide` on a snapshot with routine pods added gives the same actions as without them; the
//! tests below hold every controller to that.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use skiff_client::Changes;

use crate::pod::Pod;

/// The namespaces where a pod's labels alone can matter: those with a ReplicaSet or a Service
/// with a selector.
pub fn selecting_namespaces<'a>(
    replica_sets: impl IntoIterator<Item = &'a Arc<ReplicaSet>>,
    services: impl IntoIterator<Item = &'a Arc<Service>>,
) -> BTreeSet<String> {
    let sets = replica_sets.into_iter().filter_map(|rs| rs.metadata.namespace.clone());
    let selecting = services
        .into_iter()
        .filter(|svc| svc.spec.as_ref().and_then(|spec| spec.selector.as_ref()).is_some_and(|s| !s.is_empty()))
        .filter_map(|svc| svc.metadata.namespace.clone());
    sets.chain(selecting).collect()
}

/// Whether no controller acts on `pod` as it is now (see the module's documentation).
pub fn is_routine(pod: &Pod, selecting: &BTreeSet<String>) -> bool {
    let meta = &pod.metadata;
    let owned = meta.owner_references.as_ref().is_some_and(|refs| !refs.is_empty());
    let finalized = meta.finalizers.as_ref().is_some_and(|f| !f.is_empty());
    let bound = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref()).is_some_and(|node| !node.is_empty());
    let selectable = meta.namespace.as_ref().is_none_or(|ns| selecting.contains(ns));
    !owned
        && !finalized
        && !bound
        && !selectable
        && meta.deletion_timestamp.is_none()
        && !crate::workload::pod_is_terminated(pod)
}

/// Whether every change in `changes` is a routine pod (nothing changed at all counts too).
pub fn only_routine(changes: &Changes<Pod>, selecting: &BTreeSet<String>) -> bool {
    match changes {
        Changes::Upserted(pods) => pods.iter().all(|pod| is_routine(pod, selecting)),
        Changes::Any => false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    use super::*;
    use crate::manager::decide;
    use crate::Config;
    use crate::Snapshot;

    fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).expect("fixture"))
    }

    fn bare_pod(ns: &str, name: &str) -> Arc<Pod> {
        typed(json!({"metadata": {"namespace": ns, "name": name, "uid": format!("{ns}-{name}"),
            "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Pending"}}))
    }

    /// A cluster where the controllers that read pods have something to do: a node gone silent
    /// with a pod on it, an orphan, a pod on a missing node, a Deployment, a ReplicaSet short of
    /// pods and a Service, all in namespace `busy`.
    fn busy_cluster() -> Snapshot {
        let now: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().expect("time");
        let mut s = Snapshot::empty(now);
        for ns in ["busy", "quiet"] {
            s.namespaces.push(typed::<Namespace>(json!({"metadata": {"name": ns, "uid": ns},
                "status": {"phase": "Active"}})));
        }
        s.nodes.push(typed::<Node>(json!({"metadata": {"name": "n1", "uid": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}})));
        s.pods.push(typed(json!({"metadata": {"namespace": "busy", "name": "bound", "uid": "b1",
            "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}})));
        // An orphan (its owner is gone) for the garbage collector, and a pod bound to a node that
        // does not exist for the pod GC.
        s.pods.push(typed(json!({"metadata": {"namespace": "busy", "name": "orphan", "uid": "o1",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "gone1"}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Pending"}})));
        s.pods.push(typed(json!({"metadata": {"namespace": "busy", "name": "stray", "uid": "st1"},
            "spec": {"nodeName": "missing", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}})));
        s.deployments.push(typed::<Deployment>(json!({"metadata": {"namespace": "busy", "name": "d", "uid": "d1",
            "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})));
        s.replica_sets.push(typed(json!({"metadata": {"namespace": "busy", "name": "rs", "uid": "rs1",
            "generation": 1},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})));
        s.services.push(typed(json!({"metadata": {"namespace": "busy", "name": "svc", "uid": "s1"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})));
        s
    }

    fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        match (target, patch) {
            (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(target.entry(key.clone()).or_insert(serde_json::Value::Null), value);
                }
            }
            (target, patch) => *target = patch.clone(),
        }
    }

    fn actions(s: &Snapshot) -> Vec<String> {
        decide(s, &Config::default()).iter().map(|(name, action)| format!("{name} {action:?}")).collect()
    }

    #[test]
    fn routine_pods_change_no_decision() {
        let base = busy_cluster();
        let before = actions(&base);
        for busy in
            ["serviceaccount", "nodelifecycle", "deployment", "replicaset", "endpoints", "garbagecollector", "podgc"]
        {
            assert!(before.iter().any(|a| a.starts_with(busy)), "the fixture must keep {busy} busy: {before:?}");
        }
        let selecting = selecting_namespaces(&base.replica_sets, &base.services);
        let mut with = base.clone();
        for i in 0..5 {
            let pod = bare_pod("quiet", &format!("p{i}"));
            assert!(is_routine(&pod, &selecting));
            with.pods.push(pod);
        }
        assert_eq!(actions(&with), before);
    }

    /// The manager's pod cache leaves annotations out (`crate::pod`): every controller must
    /// decide the same whatever a pod's annotations say.
    #[test]
    fn pod_annotations_change_no_decision() {
        let base = busy_cluster();
        let before = actions(&base);
        let mut annotated = base.clone();
        for pod in &mut annotated.pods {
            let mut with = Pod::clone(pod);
            with.metadata.annotations = Some(
                [
                    ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
                    ("deployment.kubernetes.io/revision", "7"),
                    ("controller.kubernetes.io/pod-deletion-cost", "-100"),
                    ("endpoints.kubernetes.io/hostname", "h"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            );
            *pod = Arc::new(with);
        }
        assert_eq!(actions(&annotated), before);
    }

    #[test]
    fn pods_a_controller_could_act_on_are_not_routine() {
        let s = busy_cluster();
        let selecting = selecting_namespaces(&s.replica_sets, &s.services);
        assert_eq!(selecting, BTreeSet::from(["busy".to_string()]));
        let variants: [(&str, serde_json::Value); 6] = [
            (
                "owned",
                json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "x", "uid": "x1", "controller": true}]}}),
            ),
            ("bound", json!({"spec": {"nodeName": "n1"}})),
            ("deleting", json!({"metadata": {"deletionTimestamp": "2026-01-01T00:30:00Z"}})),
            ("finalized", json!({"metadata": {"finalizers": ["example.com/hold"]}})),
            ("finished", json!({"status": {"phase": "Failed"}})),
            ("selectable", json!({"metadata": {"namespace": "busy"}})),
        ];
        for (why, patch) in variants {
            let mut pod = serde_json::to_value(bare_pod("quiet", "p").as_ref()).expect("pod");
            merge(&mut pod, &patch);
            let pod: Pod = serde_json::from_value(pod).expect("pod");
            assert!(!is_routine(&pod, &selecting), "{why}");
        }
        assert!(!only_routine(&Changes::Any, &selecting), "a delete or a relist");
        assert!(only_routine(&Changes::Upserted(vec![bare_pod("quiet", "p")]), &selecting));
        assert!(!only_routine(&Changes::Upserted(vec![bare_pod("quiet", "p"), bare_pod("busy", "q")]), &selecting));
    }

    #[test]
    fn selectorless_services_select_nothing() {
        let svc: Arc<Service> = typed(
            json!({"metadata": {"namespace": "default", "name": "kubernetes"}, "spec": {"ports": [{"port": 443}]}}),
        );
        assert!(selecting_namespaces(&[], &[svc]).is_empty());
    }
}
