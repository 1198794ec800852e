//! What exists in every cluster: the system namespaces, the `kubernetes` Service and the default
//! RBAC roles and bindings. (Emptying a deleted namespace is the namespace controller's work,
//! in skiff-controllers.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use serde_json::Value;
use skiff_api_types::registry;
use skiff_store::Consistency;
use skiff_store::Precondition;
use skiff_store::StoreError;

use crate::objects;
use crate::state::ApiState;

pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Where namespaces are stored. Every create reads its namespace under it, so the server keeps
/// the objects under it resident in memory (`skiff_raft::resident`).
pub const KEY_PREFIX: &str = "/registry/core/namespaces/";

/// Creates what every cluster has, retrying until the store accepts writes.
pub async fn run(state: Arc<ApiState>) {
    loop {
        match bootstrap(&state).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!("bootstrap objects not written yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn bootstrap(state: &ApiState) -> Result<(), StoreError> {
    let ns = registry::find("", "v1", "namespaces").ok_or_else(|| StoreError::Internal("no namespaces".into()))?;
    for name in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": objects::now(),
                "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        create_if_absent(state, &ns.key(None, name), &obj).await?;
    }
    let net = state.config.service_network;
    let ip = net.first().to_string();
    let svc_res = registry::find("", "v1", "services").ok_or_else(|| StoreError::Internal("no services".into()))?;
    let key = svc_res.key(Some("default"), "kubernetes");
    if state.store.get(&key, Consistency::Linearizable).await?.is_none() {
        // Claim the address first; it is ours whether or not an earlier attempt claimed it.
        match state.store.create(&format!("/registry/ranges/serviceips/{ip}"), b"default/kubernetes".to_vec(), "").await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": objects::now(), "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "sessionAffinity": "None",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            "status": {"loadBalancer": {}}});
        create_if_absent(state, &key, &svc).await?;
    }
    let rbac = |plural: &str| {
        registry::find("rbac.authorization.k8s.io", "v1", plural)
            .ok_or_else(|| StoreError::Internal(format!("no {plural}")))
    };
    let (roles, bindings) = (rbac("clusterroles")?, rbac("clusterrolebindings")?);
    let defaults = crate::authz::bootstrap::cluster_roles()
        .into_iter()
        .map(|r| (roles, r))
        .chain(crate::authz::bootstrap::cluster_role_bindings().into_iter().map(|b| (bindings, b)));
    for (resource, mut obj) in defaults {
        let name = objects::meta_str(&obj, "name").unwrap_or("").to_string();
        let key = resource.key(None, &name);
        match state.store.get(&key, Consistency::Linearizable).await? {
            None => {
                obj["metadata"]["uid"] = uuid::Uuid::new_v4().to_string().into();
                obj["metadata"]["creationTimestamp"] = objects::now().into();
                create_if_absent(state, &key, &obj).await?;
            }
            // As upstream: a default still marked `autoupdate: "true"` follows the defaults of
            // the running version (an upgrade that grants a component more takes effect); one an
            // operator marked "false" is left as it is.
            Some(record) => {
                let Ok(mut current) = serde_json::from_slice::<Value>(&record.value) else { continue };
                let autoupdate = current.pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate");
                if autoupdate.and_then(Value::as_str) != Some("true") {
                    continue;
                }
                let mut changed = false;
                for field in ["rules", "aggregationRule", "roleRef", "subjects"] {
                    if obj.get(field) != current.get(field) {
                        match obj.get(field) {
                            Some(v) => current[field] = v.clone(),
                            None => _ = current.as_object_mut().map(|o| o.remove(field)),
                        }
                        changed = true;
                    }
                }
                if changed {
                    let bytes = objects::to_bytes(&current).map_err(|e| StoreError::Internal(e.to_string()))?;
                    match state.store.update(&key, bytes, Precondition::revision(record.revision)).await {
                        Ok(_) | Err(StoreError::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(())
}

async fn create_if_absent(state: &ApiState, key: &str, obj: &Value) -> Result<(), StoreError> {
    let uid = objects::meta_str(obj, "uid").unwrap_or("").to_string();
    let bytes = objects::to_bytes(obj).map_err(|e| StoreError::Internal(e.to_string()))?;
    match state.store.create(key, bytes, &uid).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use skiff_store::MemStore;

    use super::*;

    #[test]
    fn the_namespace_key_prefix_is_the_registrys() {
        let ns = registry::find("", "v1", "namespaces").expect("namespaces");
        assert_eq!(ns.key_prefix(), KEY_PREFIX);
    }

    async fn stored(state: &ApiState, name: &str) -> (Value, u64) {
        let roles = registry::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("clusterroles");
        let record =
            state.store.get(&roles.key(None, name), Consistency::Linearizable).await.expect("get").expect("stored");
        (serde_json::from_slice(&record.value).expect("json"), record.revision)
    }

    async fn overwrite(state: &ApiState, name: &str, role: &Value, revision: u64) {
        let roles = registry::find("rbac.authorization.k8s.io", "v1", "clusterroles").expect("clusterroles");
        let bytes = objects::to_bytes(role).expect("bytes");
        state.store.update(&roles.key(None, name), bytes, Precondition::revision(revision)).await.expect("update");
    }

    #[tokio::test]
    async fn default_roles_are_restored_unless_an_operator_opted_out() {
        let state = ApiState::new(Arc::new(MemStore::new()), Default::default());
        bootstrap(&state).await.expect("bootstrap");
        let (view, _) = stored(&state, "view").await;
        assert!(view.get("aggregationRule").is_some(), "the defaults are written");

        // An edited default that still says autoupdate is put back at the next start.
        let (mut scheduler, revision) = stored(&state, "system:kube-scheduler").await;
        let defaults = scheduler["rules"].clone();
        scheduler["rules"] = json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]);
        overwrite(&state, "system:kube-scheduler", &scheduler, revision).await;
        // One the operator marked autoupdate "false" keeps the edit.
        let (mut basic, revision) = stored(&state, "system:basic-user").await;
        basic["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false".into();
        basic["rules"] = json!([]);
        overwrite(&state, "system:basic-user", &basic, revision).await;

        bootstrap(&state).await.expect("second start");
        assert_eq!(stored(&state, "system:kube-scheduler").await.0["rules"], defaults);
        assert_eq!(stored(&state, "system:basic-user").await.0["rules"], json!([]));
    }
}
