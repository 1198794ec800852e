//! What a controller asks for: writes through the API, described as data so reconcile functions
//! stay pure and tests compare them.

use serde_json::json;
use serde_json::Value;

/// One write through the API. Paths are API paths (`/api/v1/namespaces/ns/pods/p`,
/// `/apis/apps/v1/namespaces/ns/replicasets/rs/status`); see [`path`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST `object` to the collection at `collection`. `object` may use `metadata.generateName`.
    Create { collection: String, object: Value },
    /// PATCH the object at `path` with a JSON merge patch (RFC 7386). Include
    /// `metadata.resourceVersion` in the patch to make it conditional on the object not having
    /// changed since the snapshot (the API answers 409 otherwise, and the next round retries).
    MergePatch { path: String, patch: Value },
    /// DELETE the object at `path`, only if it still has `uid` (a precondition: a newer object
    /// of the same name is never deleted by mistake), with `propagationPolicy` if given
    /// (`Background`, `Foreground`, `Orphan`) and `gracePeriodSeconds` if given (0 removes a
    /// pod at once, for pods whose node will never finish their deletion).
    Delete { path: String, uid: Option<String>, propagation: Option<&'static str>, grace: Option<i64> },
    /// Carries out `action` only if a fresh read from the API (not the caches) finds, for every
    /// `(path, uid)` in `absent`, no object at `path` with that uid. For decisions that a lagging
    /// cache must not trigger, such as collecting a dependent whose owner the cache does not
    /// show (yet).
    Verified { absent: Vec<(String, String)>, action: Box<Action> },
    /// Records a core/v1 Event about `regarding` (an ObjectReference: apiVersion, kind,
    /// namespace, name, uid), as `component` (e.g. `replicaset-controller`).
    Event { regarding: Value, component: &'static str, kind: EventType, reason: String, message: String },
}

/// An Event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl Action {
    /// An Event about the object whose metadata is `meta`, of `api_version`/`kind`.
    pub fn event(
        component: &'static str,
        api_version: &str,
        kind_of_object: &str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Action::Event {
            regarding: json!({"apiVersion": api_version, "kind": kind_of_object,
                "namespace": meta.namespace, "name": meta.name, "uid": meta.uid,
                "resourceVersion": meta.resource_version}),
            component,
            kind,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A plain DELETE of the object at `path`, only if it still has `uid`: default propagation,
    /// default grace.
    pub fn delete(path: String, uid: &str) -> Self {
        Action::Delete { path, uid: Some(uid.to_string()), propagation: None, grace: None }
    }

    /// The API path this action writes to (for an Event, the events collection).
    pub fn target(&self) -> String {
        match self {
            Action::Create { collection, .. } => collection.clone(),
            Action::MergePatch { path, .. } | Action::Delete { path, .. } => path.clone(),
            Action::Verified { action, .. } => action.target(),
            Action::Event { regarding, .. } => {
                let ns = regarding["namespace"].as_str().filter(|ns| !ns.is_empty()).unwrap_or("default");
                path::core("events", Some(ns), None)
            }
        }
    }
}

/// Builders for API paths.
pub mod path {
    /// A core/v1 path: `/api/v1[/namespaces/NS]/RESOURCE[/NAME]`.
    pub fn core(resource: &str, namespace: Option<&str>, name: Option<&str>) -> String {
        build("/api/v1", resource, namespace, name)
    }

    /// A path in a named group: `/apis/GROUP/VERSION[/namespaces/NS]/RESOURCE[/NAME]`.
    pub fn group(group_version: &str, resource: &str, namespace: Option<&str>, name: Option<&str>) -> String {
        build(&format!("/apis/{group_version}"), resource, namespace, name)
    }

    fn build(prefix: &str, resource: &str, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut p = prefix.to_string();
        if let Some(ns) = namespace {
            p.push_str("/namespaces/");
            p.push_str(ns);
        }
        p.push('/');
        p.push_str(resource);
        if let Some(name) = name {
            p.push('/');
            p.push_str(name);
        }
        p
    }

    /// The path of an object given its apiVersion and kind, for the kinds controllers own or
    /// collect (None for a kind skiff does not serve).
    pub fn of_kind(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<String> {
        let resource = match kind {
            "Pod" => "pods",
            "ReplicaSet" => "replicasets",
            "Deployment" => "deployments",
            "Service" => "services",
            "Endpoints" => "endpoints",
            "EndpointSlice" => "endpointslices",
            "ConfigMap" => "configmaps",
            "Secret" => "secrets",
            "ServiceAccount" => "serviceaccounts",
            "Node" => "nodes",
            "Namespace" => "namespaces",
            "Lease" => "leases",
            _ => return None,
        };
        Some(if api_version == "v1" {
            core(resource, namespace, Some(name))
        } else {
            group(api_version, resource, namespace, Some(name))
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn paths() {
            assert_eq!(core("pods", Some("ns"), Some("p")), "/api/v1/namespaces/ns/pods/p");
            assert_eq!(core("nodes", None, None), "/api/v1/nodes");
            assert_eq!(group("apps/v1", "replicasets", Some("ns"), None), "/apis/apps/v1/namespaces/ns/replicasets");
            assert_eq!(
                of_kind("apps/v1", "Deployment", Some("a"), "d").as_deref(),
                Some("/apis/apps/v1/namespaces/a/deployments/d")
            );
            assert_eq!(of_kind("v1", "Node", None, "n").as_deref(), Some("/api/v1/nodes/n"));
            assert_eq!(of_kind("example.com/v1", "Widget", None, "w"), None);
        }
    }
}
