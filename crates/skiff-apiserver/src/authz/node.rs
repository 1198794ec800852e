//! The node authorizer: what an agent (user `system:node:NAME`, group `system:nodes`) may do.
//!
//! An agent reads what every node needs (nodes, pods, services, endpoints, endpoint slices) and
//! writes events. Beyond that it acts only on what is its own: its Node (and `nodes/status`),
//! its Lease in `kube-node-lease`, the status and deletion of pods bound to it, and it may read
//! a secret or configmap, or request a token for a service account, only while a pod bound to it
//! uses that object. The pod relationships are read from the store at the moment of the request,
//! so a pod just bound to the node already grants its secrets, and a deleted one no longer does.
//! Anything else gets no opinion (RBAC decides, and binds nothing to nodes by default).

use serde_json::Value;
use skiff_api_types::registry;
use skiff_store::Consistency;
use skiff_store::ListOptions;

use super::Attributes;
use super::Decision;
use super::UserInfo;
use crate::state::ApiState;

/// The group every agent is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The user name prefix of agents.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node an agent user speaks for, if the user is one.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

const READ: &[&str] = &["get", "list", "watch"];

/// The node authorizer's answer for `node`.
pub async fn authorize(state: &ApiState, node: &str, a: &Attributes) -> Decision {
    if !a.resource_request {
        return Decision::NoOpinion(String::new());
    }
    let verb = a.verb.as_str();
    let own = || a.name == node;
    let allow = |why: &str| Decision::Allow(format!("node {node}: {why}"));
    let unrelated = || Decision::NoOpinion(format!("node \"{node}\" has no relationship with this object"));
    match (a.api_group.as_str(), a.resource.as_str(), a.subresource.as_str()) {
        ("", "nodes", "") if READ.contains(&verb) => allow("reads nodes"),
        // A create names its node in the body; node-restriction admission checks it.
        ("", "nodes", "") if verb == "create" => allow("registers itself"),
        ("", "nodes", "" | "status") if matches!(verb, "get" | "update" | "patch") && own() => allow("its own node"),
        ("coordination.k8s.io", "leases", "") if a.namespace == "kube-node-lease" => {
            if verb == "create" || (matches!(verb, "get" | "update" | "patch") && own()) {
                allow("its own lease")
            } else {
                unrelated()
            }
        }
        ("", "pods", "") if READ.contains(&verb) => allow("reads pods"),
        ("", "pods", "status") | ("", "pods", "") if matches!(verb, "update" | "patch" | "delete") => {
            if a.subresource.is_empty() && verb != "delete" {
                return Decision::NoOpinion(format!("node \"{node}\" may change only a pod's status"));
            }
            match bound_to(state, &a.namespace, &a.name).await {
                Some(bound) if bound == node => allow("a pod bound to it"),
                _ => unrelated(),
            }
        }
        ("", "services" | "endpoints", "") | ("discovery.k8s.io", "endpointslices", "") if READ.contains(&verb) => {
            allow("reads service routing")
        }
        ("", "events", "") | ("events.k8s.io", "events", "") if matches!(verb, "create" | "update" | "patch") => {
            allow("records events")
        }
        ("", kind @ ("secrets" | "configmaps"), "") if verb == "get" && !a.name.is_empty() => {
            if pods_on(state, node, &a.namespace).await.iter().any(|pod| uses(pod, kind, &a.name)) {
                allow("used by a pod bound to it")
            } else {
                unrelated()
            }
        }
        ("", "serviceaccounts", "token") if verb == "create" => {
            let uses_account = |pod: &Value| {
                pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default") == a.name
            };
            if pods_on(state, node, &a.namespace).await.iter().any(uses_account) {
                allow("the service account of a pod bound to it")
            } else {
                unrelated()
            }
        }
        _ => Decision::NoOpinion(String::new()),
    }
}

/// The node a pod is bound to (`None` when it does not exist or is not bound).
async fn bound_to(state: &ApiState, namespace: &str, name: &str) -> Option<String> {
    let pods = registry::find("", "v1", "pods")?;
    let record = state.store.get(&pods.key(Some(namespace), name), Consistency::Linearizable).await.ok()??;
    let pod: Value = serde_json::from_slice(&record.value).ok()?;
    pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_string)
}

/// The pods of `namespace` bound to `node`.
async fn pods_on(state: &ApiState, node: &str, namespace: &str) -> Vec<Value> {
    let Some(pods) = registry::find("", "v1", "pods") else { return Vec::new() };
    let Ok(page) = state.store.list(&pods.list_prefix(Some(namespace)), ListOptions::default()).await else {
        return Vec::new();
    };
    page.items
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.value).ok())
        .filter(|pod| pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .collect()
}

/// Whether a pod refers to the secret or configmap `name`: in a volume (also projected), an env
/// var, envFrom, or (secrets) an image pull secret.
pub fn uses(pod: &Value, kind: &str, name: &str) -> bool {
    let spec = &pod["spec"];
    let (volume_field, key_ref, from_ref) = match kind {
        "secrets" => ("secret", "secretKeyRef", "secretRef"),
        _ => ("configMap", "configMapKeyRef", "configMapRef"),
    };
    let volume_name = |source: &Value| -> bool {
        let field = if kind == "secrets" { "secretName" } else { "name" };
        source.get(field).and_then(Value::as_str) == Some(name)
    };
    let array = |v: &Value| v.as_array().cloned().unwrap_or_default();
    for volume in array(&spec["volumes"]) {
        if volume.get(volume_field).is_some_and(volume_name) {
            return true;
        }
        let projected = array(&volume["projected"]["sources"]);
        if projected
            .iter()
            .any(|s| s.get(volume_field).and_then(|p| p.get("name")).and_then(Value::as_str) == Some(name))
        {
            return true;
        }
    }
    if kind == "secrets" && array(&spec["imagePullSecrets"]).iter().any(|s| s["name"].as_str() == Some(name)) {
        return true;
    }
    let containers = array(&spec["containers"])
        .into_iter()
        .chain(array(&spec["initContainers"]))
        .chain(array(&spec["ephemeralContainers"]));
    for container in containers {
        if array(&container["env"])
            .iter()
            .any(|e| e.pointer(&format!("/valueFrom/{key_ref}/name")).and_then(Value::as_str) == Some(name))
        {
            return true;
        }
        if array(&container["envFrom"])
            .iter()
            .any(|e| e.pointer(&format!("/{from_ref}/name")).and_then(Value::as_str) == Some(name))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn agents_are_recognised_by_name_and_group() {
        let node = UserInfo::new("system:node:n1", "", &["system:nodes".to_string()]);
        assert_eq!(node_name(&node), Some("n1"));
        assert_eq!(node_name(&UserInfo::new("system:node:n1", "", &[])), None, "the group is required");
        assert_eq!(node_name(&UserInfo::new("system:node:", "", &["system:nodes".to_string()])), None);
        assert_eq!(node_name(&UserInfo::new("jane", "", &["system:nodes".to_string()])), None);
    }

    #[test]
    fn pods_use_secrets_and_configmaps_in_every_place() {
        let pod = json!({"spec": {
            "volumes": [{"name": "a", "secret": {"secretName": "vol-secret"}},
                        {"name": "b", "configMap": {"name": "vol-cm"}},
                        {"name": "c", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}}],
            "imagePullSecrets": [{"name": "pull"}],
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                            "envFrom": [{"secretRef": {"name": "from-secret"}}]}]}});
        for name in ["vol-secret", "proj-secret", "pull", "env-secret", "from-secret"] {
            assert!(uses(&pod, "secrets", name), "{name}");
        }
        for name in ["vol-cm", "proj-cm", "init-cm"] {
            assert!(uses(&pod, "configmaps", name), "{name}");
        }
        assert!(!uses(&pod, "secrets", "vol-cm"));
        assert!(!uses(&pod, "configmaps", "env-secret"));
        assert!(!uses(&pod, "secrets", "other"));
    }
}
