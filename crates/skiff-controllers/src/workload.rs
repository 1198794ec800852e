//! What several controllers ask of pods and owners: who controls an object, whether a pod is
//! active, ready or available, and which pods a workload's selector picks.

use std::collections::BTreeMap;

use crate::pod::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as SelectorObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;
use serde_json::Value;
use skiff_api_types::selector::LabelSelector;

/// The owner reference with `controller: true`, if the object has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_deref()?.iter().find(|r| r.controller == Some(true))
}

/// Whether the object is controlled by the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The owner reference a controller puts on what it creates or adopts: `controller` and
/// `blockOwnerDeletion` set, as upstream's controllers do.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": owner.name, "uid": owner.uid,
        "controller": true, "blockOwnerDeletion": true})
}

/// The selector a workload's `spec.selector` describes, or None when it selects nothing a
/// controller should act on: missing, empty (`{}` would select every pod in the namespace;
/// upstream's validation rejects it for apps/v1 workloads) or invalid.
pub fn workload_selector(selector: Option<&SelectorObject>) -> Option<LabelSelector> {
    let object = serde_json::to_value(selector?).ok()?;
    let parsed = LabelSelector::from_object(&object).ok()?;
    (!parsed.is_empty()).then_some(parsed)
}

/// The selector of a Service's `spec.selector` map, or None when it has none (a Service without
/// a selector has its Endpoints written by someone else).
pub fn map_selector(selector: Option<&BTreeMap<String, String>>) -> Option<LabelSelector> {
    let map = selector.filter(|m| !m.is_empty())?;
    let parsed = LabelSelector::from_object(&json!({ "matchLabels": map })).ok()?;
    Some(parsed)
}

/// An object's labels (empty when it has none).
pub fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// Whether `selector` picks an object with this metadata.
pub fn selects(selector: &LabelSelector, meta: &ObjectMeta) -> bool {
    match &meta.labels {
        Some(labels) => selector.matches(labels),
        None => selector.matches(&BTreeMap::new()),
    }
}

/// A pod's phase ("" when it has no status yet).
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Whether the pod has finished for good (Succeeded or Failed).
pub fn pod_is_terminated(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether the pod counts towards a workload's replicas: not finished and not being deleted.
pub fn pod_is_active(pod: &Pod) -> bool {
    !pod_is_terminated(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's condition of `type_`, if it has one.
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_deref()?.iter().find(|c| c.type_ == type_)
}

/// Whether the pod's `Ready` condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod_condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now` (upstream's
/// "available"). With `min_ready_seconds` 0, ready is available.
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    let Some(ready) = pod_condition(pod, "Ready").filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    match &ready.last_transition_time {
        Some(since) => since.0 + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
        None => false,
    }
}

/// `now` in the API's time format (RFC 3339, whole seconds, UTC).
pub fn timestamp(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An object's `namespace/name`, for logs and messages.
pub fn key(meta: &ObjectMeta) -> String {
    format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("fixture")
    }

    #[test]
    fn controllers_and_selectors() {
        let p = pod(json!({"metadata": {"name": "p", "labels": {"app": "web"}, "ownerReferences": [
            {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "u0"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]}}));
        assert_eq!(controller_of(&p.metadata).map(|r| r.uid.as_str()), Some("u1"));
        assert!(controlled_by(&p.metadata, "u1"));
        assert!(!controlled_by(&p.metadata, "u0"));
        let web: SelectorObject = serde_json::from_value(json!({"matchLabels": {"app": "web"}})).expect("fixture");
        let db: SelectorObject = serde_json::from_value(json!({"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["db"]}]}))
        .expect("fixture");
        assert!(workload_selector(Some(&web)).is_some_and(|s| selects(&s, &p.metadata)));
        assert!(workload_selector(Some(&db)).is_some_and(|s| !selects(&s, &p.metadata)));
        assert!(workload_selector(Some(&SelectorObject::default())).is_none(), "empty selects nothing");
        assert!(workload_selector(None).is_none());
        let map = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert!(map_selector(Some(&map)).is_some_and(|s| selects(&s, &p.metadata)));
        assert!(map_selector(Some(&BTreeMap::new())).is_none());
    }

    #[test]
    fn readiness_and_availability() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().expect("time");
        let ready = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:30Z"}]}}));
        assert!(pod_is_active(&ready) && pod_is_ready(&ready));
        assert!(pod_is_available(&ready, 0, now));
        assert!(pod_is_available(&ready, 30, now));
        assert!(!pod_is_available(&ready, 31, now));
        let pending = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}}));
        assert!(pod_is_active(&pending) && !pod_is_ready(&pending) && !pod_is_available(&pending, 0, now));
        let done = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}}));
        assert!(!pod_is_active(&done) && pod_is_terminated(&done));
        let deleting = pod(json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert!(!pod_is_active(&deleting));
        assert_eq!(timestamp(now), "2026-01-01T00:01:00Z");
    }
}
