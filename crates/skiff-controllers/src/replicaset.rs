//! The ReplicaSet controller: every ReplicaSet has as many active pods as `spec.replicas` asks.
//!
//! Per ReplicaSet, in one round: pods it selects that have no controller are adopted (an owner
//! reference, written conditionally on the pod's resourceVersion), pods it controls that it no
//! longer selects are released, missing pods are created from the template (at most
//! [`BURST_REPLICAS`] per round, as upstream) and surplus pods are deleted, least valuable first
//! (unscheduled, then pending, then not ready, then ready for the shortest time, most restarts,
//! newest). The status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
//! observedGeneration) is written only when it changes.
//!
//! Upstream waits for its own creates with "expectations"; here the manager does not start the
//! next round until the caches show this round's writes, which serves the same end. Pods are
//! named by the controller (`<replicaset>-<5 characters>`, derived from the ReplicaSet's uid, the
//! round's clock and the pod's index) rather than by `generateName`, so the `SuccessfulCreate`
//! event can name the pod; a name taken already fails with 409 and the next round tries another.

use std::collections::BTreeMap;

use crate::pod::Pod;
use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::json;
use serde_json::Value;

use crate::action::path;
use crate::workload;
use crate::Action;
use crate::Config;
use crate::EventType;
use crate::Snapshot;

/// The component events are recorded as.
pub const COMPONENT: &str = "replicaset-controller";

/// The most pods one ReplicaSet creates or deletes in one round.
pub const BURST_REPLICAS: usize = 500;

/// The characters generated name suffixes use (upstream's: no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The writes that bring every ReplicaSet to its replicas.
pub fn reconcile(snapshot: &Snapshot, _config: &Config) -> Vec<Action> {
    let mut pods_by_namespace: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in &snapshot.pods {
        pods_by_namespace.entry(pod.metadata.namespace.as_deref().unwrap_or("")).or_default().push(pod);
    }
    let mut actions = Vec::new();
    for rs in &snapshot.replica_sets {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let pods = pods_by_namespace.get(ns).map(Vec::as_slice).unwrap_or(&[]);
        actions.extend(reconcile_one(rs, pods, snapshot.now));
    }
    actions
}

fn reconcile_one(rs: &ReplicaSet, pods: &[&Pod], now: jiff::Timestamp) -> Vec<Action> {
    let (Some(name), Some(ns), Some(uid)) =
        (rs.metadata.name.as_deref(), rs.metadata.namespace.as_deref(), rs.metadata.uid.as_deref())
    else {
        return Vec::new();
    };
    // A ReplicaSet being deleted is the garbage collector's business (its pods go with it, or
    // are orphaned, as the delete asked).
    if rs.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let Some(spec) = rs.spec.as_ref() else {
        return Vec::new();
    };
    let Some(selector) = workload::workload_selector(Some(&spec.selector)) else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let selected = workload::selects(&selector, &pod.metadata);
        match workload::controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if selected {
                    owned.push(pod);
                } else if pod.metadata.deletion_timestamp.is_none() {
                    actions.push(release(pod, uid));
                }
            }
            None if selected && workload::pod_is_active(pod) => {
                actions.push(adopt(pod, rs));
                owned.push(pod);
            }
            _ => {}
        }
    }
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| workload::pod_is_active(p)).collect();
    let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    if active.len() < want {
        let missing = (want - active.len()).min(BURST_REPLICAS);
        for i in 0..missing {
            let pod_name = pod_name(name, uid, now, i);
            actions.push(create_pod(rs, ns, &pod_name));
            let message = format!("Created pod: {pod_name}");
            actions.push(Action::event(
                COMPONENT,
                "apps/v1",
                "ReplicaSet",
                &rs.metadata,
                EventType::Normal,
                "SuccessfulCreate",
                message,
            ));
        }
    } else if active.len() > want {
        let mut ranked = active.clone();
        ranked.sort_by_key(|p| deletion_rank(p));
        for pod in ranked.into_iter().take((active.len() - want).min(BURST_REPLICAS)) {
            let (Some(pod_name), Some(pod_uid)) = (pod.metadata.name.as_deref(), pod.metadata.uid.as_deref()) else {
                continue;
            };
            actions.push(Action::delete(path::core("pods", Some(ns), Some(pod_name)), pod_uid));
            let message = format!("Deleted pod: {pod_name}");
            actions.push(Action::event(
                COMPONENT,
                "apps/v1",
                "ReplicaSet",
                &rs.metadata,
                EventType::Normal,
                "SuccessfulDelete",
                message,
            ));
        }
    }
    if let Some(patch) = status_patch(rs, &active, now) {
        actions.push(Action::MergePatch {
            path: format!("{}/status", path::group("apps/v1", "replicasets", Some(ns), Some(name))),
            patch,
        });
    }
    actions
}

/// Takes an orphan pod the ReplicaSet selects: its owner references gain the ReplicaSet's, as
/// long as the pod has not changed since the snapshot.
fn adopt(pod: &Pod, rs: &ReplicaSet) -> Action {
    let mut refs: Vec<Value> =
        pod.metadata.owner_references.iter().flatten().filter_map(|r| serde_json::to_value(r).ok()).collect();
    refs.push(workload::controller_ref("apps/v1", "ReplicaSet", &rs.metadata));
    Action::MergePatch {
        path: pod_path(pod),
        patch: json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}}),
    }
}

/// Lets go of a pod whose labels no longer match: its reference to the ReplicaSet goes.
fn release(pod: &Pod, uid: &str) -> Action {
    let refs: Vec<Value> = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != uid)
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    Action::MergePatch {
        path: pod_path(pod),
        patch: json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}}),
    }
}

fn pod_path(pod: &Pod) -> String {
    path::core("pods", pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref())
}

fn create_pod(rs: &ReplicaSet, ns: &str, pod_name: &str) -> Action {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    let mut metadata = json!({
        "name": pod_name,
        "namespace": ns,
        "ownerReferences": [workload::controller_ref("apps/v1", "ReplicaSet", &rs.metadata)],
    });
    if let Some(labels) = template_meta.and_then(|m| m.labels.as_ref()) {
        metadata["labels"] = json!(labels);
    }
    if let Some(annotations) = template_meta.and_then(|m| m.annotations.as_ref()) {
        metadata["annotations"] = json!(annotations);
    }
    let spec = template.and_then(|t| t.spec.as_ref()).and_then(|s| serde_json::to_value(s).ok()).unwrap_or(json!({}));
    Action::Create {
        collection: path::core("pods", Some(ns), None),
        object: json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}),
    }
}

/// `<replicaset>-<5 characters>`: the characters come from an FNV-1a hash of the ReplicaSet's
/// uid, the round's clock and the pod's index, so one round never names two pods alike and
/// rounds differ from each other.
fn pod_name(rs_name: &str, uid: &str, now: jiff::Timestamp, index: usize) -> String {
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, format!("{uid}/{}/{index}", now.as_nanosecond()).as_bytes());
    let mut hash = std::hash::Hasher::finish(&hasher);
    let mut suffix = String::with_capacity(5);
    for _ in 0..5 {
        let digit = (hash % NAME_ALPHABET.len() as u64) as usize;
        suffix.push(char::from(NAME_ALPHABET[digit]));
        hash /= NAME_ALPHABET.len() as u64;
    }
    // Names are at most 63 characters where they become hostnames; upstream cuts the base.
    let base: String = rs_name.chars().take(57).collect();
    format!("{base}-{suffix}")
}

/// Which pods go first when there are too many: the lower the key, the sooner.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<i64>, std::cmp::Reverse<i32>, std::cmp::Reverse<i64>) {
    let scheduled = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let phase_rank = match workload::phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = workload::pod_condition(pod, "Ready").filter(|c| c.status == "True");
    let ready_since = ready.and_then(|c| c.last_transition_time.as_ref()).map_or(0, |t| t.0.as_second());
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let created = pod.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second());
    (
        u8::from(scheduled),
        phase_rank,
        u8::from(ready.is_some()),
        std::cmp::Reverse(ready_since),
        std::cmp::Reverse(restarts),
        std::cmp::Reverse(created),
    )
}

/// The status patch, or None when the status already says all of it.
fn status_patch(rs: &ReplicaSet, active: &[&Pod], now: jiff::Timestamp) -> Option<Value> {
    let spec = rs.spec.as_ref()?;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = workload::labels(&p.metadata);
            template_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| workload::pod_is_ready(p)).count();
    let available = active.iter().filter(|p| workload::pod_is_available(p, min_ready, now)).count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let current = rs.status.as_ref();
    let generation = rs.metadata.generation;
    let unchanged = current.is_some_and(|s| {
        s.replicas == count(active.len())
            && s.fully_labeled_replicas.unwrap_or(0) == count(fully_labeled)
            && s.ready_replicas.unwrap_or(0) == count(ready)
            && s.available_replicas.unwrap_or(0) == count(available)
            && (generation.is_none() || s.observed_generation == generation)
    });
    if unchanged {
        return None;
    }
    Some(json!({"status": {
        "replicas": count(active.len()),
        "fullyLabeledReplicas": count(fully_labeled),
        "readyReplicas": count(ready),
        "availableReplicas": count(available),
        "observedGeneration": generation,
    }}))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const NOW: &str = "2026-01-01T00:10:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().expect("time")
    }

    fn rs(replicas: i32) -> Arc<ReplicaSet> {
        rs_with(replicas, json!({}))
    }

    fn rs_with(replicas: i32, status: Value) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-uid", "generation": 1},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
                "status": status,
            }))
            .expect("fixture"),
        )
    }

    fn pod(name: &str, owner: Option<&str>, extra: Value) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "resourceVersion": "7", "labels": {"app": "web", "tier": "front"},
            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        if let Some(owner) = owner {
            v["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": owner, "controller": true}]);
        }
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).expect("fixture"))
    }

    fn merge(base: &mut Value, extra: Value) {
        match (base, extra) {
            (Value::Object(b), Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }

    fn ready(since: &str) -> Value {
        json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]}})
    }

    fn run(rss: Vec<Arc<ReplicaSet>>, pods: Vec<Arc<Pod>>) -> Vec<Action> {
        let mut snapshot = Snapshot::empty(now());
        snapshot.replica_sets = rss;
        snapshot.pods = pods;
        reconcile(&snapshot, &Config::default())
    }

    fn creates(actions: &[Action]) -> Vec<&Value> {
        actions.iter().filter_map(|a| if let Action::Create { object, .. } = a { Some(object) } else { None }).collect()
    }

    fn deletes(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| if let Action::Delete { path, .. } = a { Some(path.clone()) } else { None })
            .collect()
    }

    fn status_of(actions: &[Action]) -> Option<&Value> {
        actions.iter().find_map(|a| match a {
            Action::MergePatch { path, patch } if path.ends_with("/status") => Some(&patch["status"]),
            _ => None,
        })
    }

    #[test]
    fn missing_pods_are_created_from_the_template_with_an_owner() {
        let actions = run(vec![rs(3)], vec![pod("web-abc-aaaaa", Some("rs-uid"), json!({}))]);
        let created = creates(&actions);
        assert_eq!(created.len(), 2);
        let names: Vec<&str> = created.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
        assert_ne!(names[0], names[1], "one round never names two pods alike");
        for pod in &created {
            assert!(pod["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("web-abc-") && n.len() == 13));
            assert_eq!(pod["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
            assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
            assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
            assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
        }
        let events: Vec<&Action> = actions.iter().filter(|a| matches!(a, Action::Event { .. })).collect();
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0], Action::Event { reason, message, .. }
            if reason == "SuccessfulCreate" && message == &format!("Created pod: {}", names[0])));
        assert_eq!(status_of(&actions).map(|s| s["replicas"].clone()), Some(json!(1)));
    }

    #[test]
    fn a_settled_replicaset_wants_nothing() {
        let status = json!({"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "observedGeneration": 1});
        let pods = vec![
            pod("a", Some("rs-uid"), ready("2026-01-01T00:00:00Z")),
            pod("b", Some("rs-uid"), ready("2026-01-01T00:00:00Z")),
        ];
        assert_eq!(run(vec![rs_with(2, status)], pods), Vec::new());
    }

    #[test]
    fn surplus_pods_go_least_valuable_first() {
        let pods = vec![
            pod("old-ready", Some("rs-uid"), ready("2026-01-01T00:00:00Z")),
            pod("new-ready", Some("rs-uid"), ready("2026-01-01T00:05:00Z")),
            pod(
                "running-not-ready",
                Some("rs-uid"),
                json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}),
            ),
            pod("pending", Some("rs-uid"), json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}})),
            pod("unscheduled", Some("rs-uid"), json!({})),
        ];
        let order = |n: i32| deletes(&run(vec![rs(n)], pods.clone()));
        assert_eq!(order(4), vec!["/api/v1/namespaces/ns/pods/unscheduled"]);
        assert_eq!(
            order(1),
            vec![
                "/api/v1/namespaces/ns/pods/unscheduled",
                "/api/v1/namespaces/ns/pods/pending",
                "/api/v1/namespaces/ns/pods/running-not-ready",
                "/api/v1/namespaces/ns/pods/new-ready",
            ]
        );
        let actions = run(vec![rs(4)], pods);
        assert!(actions.iter().any(|a| matches!(a, Action::Delete { uid: Some(u), .. } if u == "uid-unscheduled")));
    }

    #[test]
    fn orphans_are_adopted_and_mismatched_pods_released() {
        let pods = vec![
            pod("orphan", None, json!({})),
            pod("other-owner", Some("someone-else"), json!({})),
            pod("relabelled", Some("rs-uid"), json!({"metadata": {"labels": {"app": "db"}}})),
            pod("unrelated", None, json!({"metadata": {"labels": {"app": "db"}}})),
        ];
        let actions = run(vec![rs(1)], pods);
        let patches: Vec<(&String, &Value)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::MergePatch { path, patch } if !path.ends_with("/status") => Some((path, patch)),
                _ => None,
            })
            .collect();
        assert_eq!(patches.len(), 2, "{patches:?}");
        assert_eq!(patches[0].0, "/api/v1/namespaces/ns/pods/orphan");
        assert_eq!(patches[0].1["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(patches[0].1["metadata"]["resourceVersion"], "7");
        assert_eq!(patches[1].0, "/api/v1/namespaces/ns/pods/relabelled");
        assert_eq!(patches[1].1["metadata"]["ownerReferences"], json!([]));
        // The adopted pod counts: replicas 1 is met, nothing is created.
        assert!(creates(&actions).is_empty());
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let pods = vec![
            pod("leaving", Some("rs-uid"), json!({"metadata": {"deletionTimestamp": "2026-01-01T00:09:00Z"}})),
            pod("done", Some("rs-uid"), json!({"status": {"phase": "Succeeded"}})),
        ];
        let actions = run(vec![rs(2)], pods);
        assert_eq!(creates(&actions).len(), 2);
        assert!(deletes(&actions).is_empty());
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let mut set: ReplicaSet = (*rs(2)).clone();
        if let Some(spec) = set.spec.as_mut() {
            spec.min_ready_seconds = Some(120);
        }
        let pods = vec![
            pod("a", Some("rs-uid"), ready("2026-01-01T00:00:00Z")),
            pod("b", Some("rs-uid"), ready("2026-01-01T00:09:00Z")),
        ];
        let actions = run(vec![Arc::new(set)], pods);
        let status = status_of(&actions).cloned().unwrap_or_default();
        assert_eq!(status["readyReplicas"], 2);
        assert_eq!(status["availableReplicas"], 1);
        assert_eq!(status["observedGeneration"], 1);
    }

    #[test]
    fn deleting_or_selectorless_replicasets_are_left_alone() {
        let mut deleting: ReplicaSet = (*rs(3)).clone();
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(run(vec![Arc::new(deleting)], Vec::new()).is_empty());
        let mut empty: ReplicaSet = (*rs(3)).clone();
        if let Some(spec) = empty.spec.as_mut() {
            spec.selector = Default::default();
        }
        assert!(run(vec![Arc::new(empty)], vec![pod("orphan", None, json!({}))]).is_empty());
    }

    #[test]
    fn creates_are_capped_per_round() {
        let actions = run(vec![rs(2_000)], Vec::new());
        assert_eq!(creates(&actions).len(), BURST_REPLICAS);
    }

    #[test]
    fn pods_in_other_namespaces_are_not_seen() {
        let stray = pod("elsewhere", None, json!({"metadata": {"namespace": "other"}}));
        let actions = run(vec![rs(1)], vec![stray]);
        assert_eq!(creates(&actions).len(), 1);
    }
}
