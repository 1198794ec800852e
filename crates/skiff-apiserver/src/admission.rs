//! Preparing an object for the store: server-set metadata, defaults, validation and the
//! per-kind rules that run on every create and update, whatever verb brought the object.

use serde_json::json;
use serde_json::Value;
use skiff_api_types::registry::Resource;
use skiff_api_types::typed;
use skiff_api_types::validation;

use crate::error::ApiError;
use crate::error::Cause;
use crate::objects;
use crate::request::FieldValidation;

/// Metadata only the server sets; whatever a client sends there is replaced.
const SERVER_FIELDS: &[&str] =
    &["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "selfLink"];

/// Checks the object's shape against its kind; unknown and duplicate fields are errors under
/// `Strict`, warnings under `Warn`, and ignored under `Ignore`.
pub fn check_shape(
    r: &Resource,
    obj: &Value,
    duplicates: Vec<String>,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let mut problems: Vec<String> = typed::unknown_fields(r.group, r.kind, obj)
        .map_err(|e| ApiError::BadRequest(format!("{} in body is invalid: {e}", r.kind)))?
        .into_iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    problems.extend(duplicates.into_iter().map(|f| format!("duplicate field \"{f}\"")));
    match mode {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Strict if problems.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => Err(ApiError::BadRequest(format!("strict decoding error: {}", problems.join(", ")))),
    }
}

/// Where the service-account volume is mounted in every container.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Upstream's ServiceAccount admission for a new pod: unless the pod opts out
/// (`automountServiceAccountToken: false`) or already mounts something at
/// [`SERVICE_ACCOUNT_MOUNT`], it gets a `kube-api-access-XXXXX` projected volume (a token for its
/// service account that the node refreshes, the cluster CA from `kube-root-ca.crt`, and its
/// namespace) mounted read-only there in every container. `suffix` is the volume name's random
/// part.
pub fn mount_service_account_token(pod: &mut Value, suffix: &str) {
    let spec = &pod["spec"];
    if spec.get("automountServiceAccountToken").and_then(Value::as_bool) == Some(false) {
        return;
    }
    let mounted = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|field| spec.get(field).and_then(Value::as_array))
        .flatten()
        .any(|c| {
            c.get("volumeMounts")
                .and_then(Value::as_array)
                .is_some_and(|m| m.iter().any(|m| m["mountPath"].as_str() == Some(SERVICE_ACCOUNT_MOUNT)))
        });
    if mounted {
        return;
    }
    let name = format!("kube-api-access-{suffix}");
    let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}});
    let mount = json!({"name": name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT});
    match pod["spec"]["volumes"].as_array_mut() {
        Some(volumes) => volumes.push(volume),
        None => pod["spec"]["volumes"] = json!([volume]),
    }
    // `get_mut`, not indexing: indexing a pod without init containers would add
    // `initContainers: null` to it.
    for field in ["containers", "initContainers"] {
        let containers = pod.get_mut("spec").and_then(|spec| spec.get_mut(field)).and_then(Value::as_array_mut);
        for c in containers.into_iter().flatten() {
            match c["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
        }
    }
}

/// Node restriction: an agent may create only its own Node and its own Lease (the authorizer
/// cannot see the name of an object being created; it is in the body).
pub fn node_restriction(user: &crate::authn::UserInfo, r: &Resource, obj: &Value) -> Result<(), ApiError> {
    let Some(node) = crate::authz::node::node_name(user) else { return Ok(()) };
    let own = matches!((r.group, r.plural), ("", "nodes") | ("coordination.k8s.io", "leases"));
    let name = objects::meta_str(obj, "name").unwrap_or("");
    if own && name != node {
        return Err(ApiError::Forbidden(format!(
            "{} \"{name}\" is forbidden: node \"{node}\" is not allowed to create {} other than its own",
            r.plural, r.plural
        )));
    }
    Ok(())
}

/// Sets apiVersion and kind, and rejects a body that names another kind.
pub fn check_kind(r: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    let api_version = r.api_version();
    let sent_kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let sent_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!sent_kind.is_empty() && sent_kind != r.kind) || (!sent_version.is_empty() && sent_version != api_version) {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({sent_version}) and kind ({sent_kind}) do not match the request ({api_version}, {})",
            r.kind
        )));
    }
    obj["apiVersion"] = api_version.into();
    obj["kind"] = r.kind.into();
    Ok(())
}

/// Puts the namespace of the URL into the object (or checks they agree).
pub fn check_namespace(r: &Resource, obj: &mut Value, namespace: Option<&str>) -> Result<(), ApiError> {
    if !r.namespaced {
        objects::remove_meta(obj, "namespace");
        return Ok(());
    }
    let Some(ns) = namespace else {
        return Err(ApiError::BadRequest(format!("{} must be created inside a namespace", r.plural)));
    };
    match objects::meta_str(obj, "namespace") {
        Some(sent) if sent != ns => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => {
            objects::set_meta(obj, "namespace", ns.into());
            Ok(())
        }
    }
}

/// The finalizer in a namespace's `spec.finalizers` that the namespace controller removes once
/// it has deleted everything in the namespace.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Server-set metadata of a new object.
pub fn prepare_create(r: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    if objects::meta_str(obj, "resourceVersion").is_some() {
        return Err(ApiError::BadRequest("resourceVersion should not be set on objects to be created".into()));
    }
    for f in SERVER_FIELDS {
        objects::remove_meta(obj, f);
    }
    if objects::meta_str(obj, "name").is_none() {
        match objects::meta_str(obj, "generateName") {
            Some(prefix) => {
                let name = format!("{prefix}{}", objects::random_suffix());
                objects::set_meta(obj, "name", name.into());
            }
            None => {
                return Err(ApiError::invalid(
                    r.group,
                    r.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ))
            }
        }
    }
    objects::set_meta(obj, "uid", uuid::Uuid::new_v4().to_string().into());
    objects::set_meta(obj, "creationTimestamp", objects::now().into());
    if r.tracks_generation {
        objects::set_meta(obj, "generation", 1.into());
    }
    match (r.group, r.kind) {
        ("", "Pod") => {
            // A new pod is Pending until it is scheduled; clients cannot create it in another phase.
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
            // Every namespace is created with the `kubernetes` finalizer: deleting it then waits
            // for the namespace controller to empty it.
            let finalizers = &mut obj["spec"]["finalizers"];
            if !finalizers.is_array() {
                *finalizers = json!([]);
            }
            if let Some(list) = finalizers.as_array_mut() {
                if !list.iter().any(|f| f == NAMESPACE_FINALIZER) {
                    list.push(NAMESPACE_FINALIZER.into());
                }
            }
        }
        (_, "Deployment" | "ReplicaSet") | ("", "Service" | "Node" | "ResourceQuota") => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Carries over what an update may not change and what the other half of a status split owns.
pub fn prepare_update(r: &Resource, old: &Value, new: &mut Value, subresource: Option<&str>) {
    let is_namespace = (r.group, r.kind) == ("", "Namespace");
    if subresource == Some("finalize") {
        // Only the namespace's spec.finalizers changes.
        let finalizers = new.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
        let mut merged = old.clone();
        merged["spec"]["finalizers"] = finalizers;
        if let Some(rv) = objects::meta_str(new, "resourceVersion").map(str::to_string) {
            objects::set_meta(&mut merged, "resourceVersion", rv.into());
        }
        *new = merged;
        return;
    }
    if is_namespace {
        // spec.finalizers changes only through `finalize`, as upstream.
        match old.pointer("/spec/finalizers") {
            Some(f) => new["spec"]["finalizers"] = f.clone(),
            None => _ = new.get_mut("spec").and_then(Value::as_object_mut).map(|s| s.remove("finalizers")),
        }
    }
    if subresource == Some("status") {
        // A status write changes only status (and nothing of metadata but what it must carry).
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        if let Some(rv) = objects::meta_str(new, "resourceVersion").map(str::to_string) {
            objects::set_meta(&mut merged, "resourceVersion", rv.into());
        }
        *new = merged;
        return;
    }
    for f in SERVER_FIELDS {
        match objects::meta(old).and_then(|m| m.get(*f)) {
            Some(v) => objects::set_meta(new, f, v.clone()),
            None => objects::remove_meta(new, f),
        }
    }
    if r.has_status() || r.kind == "Pod" {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if r.tracks_generation && objects::spec_part(old) != objects::spec_part(new) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1) + 1;
        objects::set_meta(new, "generation", generation.into());
    }
    if (r.group, r.kind) == ("", "Service") {
        // Clients that replace a Service without its cluster IP keep the one it has.
        for field in ["clusterIP", "clusterIPs"] {
            let missing = new.pointer(&format!("/spec/{field}")).is_none_or(|v| v.is_null() || v == "");
            if let (true, Some(v), Some(spec)) =
                (missing, old.pointer(&format!("/spec/{field}")), new.get_mut("spec").and_then(Value::as_object_mut))
            {
                spec.insert(field.into(), v.clone());
            }
        }
    }
}

/// Defaults and validates; `old` is the stored object on update.
pub fn default_and_validate(r: &Resource, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    skiff_api_types::defaults::apply_defaults(r.group, r.kind, obj);
    if (r.group, r.kind) == ("", "Secret") {
        skiff_api_types::defaults::fold_secret_string_data(obj);
    }
    let errors = validation::validate(r.group, r.kind, obj, old);
    if errors.is_empty() {
        return Ok(());
    }
    let causes = errors
        .iter()
        .map(|e| {
            let full = e.to_string();
            let message = full.strip_prefix(&format!("{}: ", e.field)).unwrap_or(&full).to_string();
            Cause { reason: e.reason().into(), message, field: e.field.clone() }
        })
        .collect();
    Err(ApiError::invalid(r.group, r.kind, objects::name_of(obj), causes))
}

/// The QoS class upstream derives from a pod's requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|m| !m.is_empty()) || limits.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|m| m.get(res));
            let request = requests.and_then(|m| m.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use skiff_api_types::registry;

    use super::*;

    #[test]
    fn service_account_token_is_mounted_in_every_container_and_adds_nothing_else() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]}});
        mount_service_account_token(&mut pod, "x1y2z");
        let spec = pod["spec"].as_object().expect("spec");
        assert!(!spec.contains_key("initContainers"), "a pod without init containers gains none: {pod}");
        assert_eq!(pod["spec"]["volumes"][0]["name"], "kube-api-access-x1y2z");
        assert_eq!(pod["spec"]["volumes"][0]["projected"]["defaultMode"], 420);
        for (c, mounts) in [(0, 1), (1, 2)] {
            let m = pod["spec"]["containers"][c]["volumeMounts"].as_array().expect("mounts");
            assert_eq!(m.len(), mounts, "{pod}");
            assert_eq!(
                m[mounts - 1],
                json!({"name": "kube-api-access-x1y2z", "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT})
            );
        }

        let mut with_init = json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}});
        mount_service_account_token(&mut with_init, "abcde");
        assert_eq!(with_init["spec"]["initContainers"][0]["volumeMounts"][0]["mountPath"], SERVICE_ACCOUNT_MOUNT);

        let opted_out = json!({"spec": {"automountServiceAccountToken": false, "containers": [{"name": "a"}]}});
        let mut pod = opted_out.clone();
        mount_service_account_token(&mut pod, "abcde");
        assert_eq!(pod, opted_out);

        let own = json!({"spec": {"initContainers": [{"name": "i", "volumeMounts": [{"name": "mine", "mountPath": SERVICE_ACCOUNT_MOUNT}]}], "containers": [{"name": "a"}]}});
        let mut pod = own.clone();
        mount_service_account_token(&mut pod, "abcde");
        assert_eq!(pod, own, "a pod that mounts something there itself is left alone");
    }

    #[test]
    fn qos_classes() {
        let none = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(qos_class(&none), "BestEffort");
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn status_writes_change_only_status() {
        let r = registry::find("", "v1", "pods").expect("pods");
        let old = json!({"metadata": {"name": "p", "uid": "u", "labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"phase": "Pending"}});
        let mut new =
            json!({"metadata": {"name": "p", "labels": {}}, "spec": {"x": 2}, "status": {"phase": "Running"}});
        prepare_update(r, &old, &mut new, Some("status"));
        assert_eq!(new["spec"]["x"], 1);
        assert_eq!(new["metadata"]["labels"]["a"], "b");
        assert_eq!(new["status"]["phase"], "Running");
        let mut main =
            json!({"metadata": {"name": "p", "uid": "forged"}, "spec": {"x": 2}, "status": {"phase": "Failed"}});
        prepare_update(r, &old, &mut main, None);
        assert_eq!(main["status"]["phase"], "Pending");
        assert_eq!(main["metadata"]["uid"], "u");
    }

    #[test]
    fn namespace_finalizers_come_on_create_and_change_only_through_finalize() {
        let r = registry::find("", "v1", "namespaces").expect("namespaces");
        let mut plain = json!({"metadata": {"name": "a"}});
        prepare_create(r, &mut plain).expect("create");
        assert_eq!(plain["spec"]["finalizers"], json!(["kubernetes"]));
        let mut other = json!({"metadata": {"name": "b"}, "spec": {"finalizers": ["example.com/x"]}});
        prepare_create(r, &mut other).expect("create");
        assert_eq!(other["spec"]["finalizers"], json!(["example.com/x", "kubernetes"]), "added, never replacing");

        let old = json!({"metadata": {"name": "a", "uid": "u", "labels": {"k": "v"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}});
        let mut update = json!({"metadata": {"name": "a", "labels": {}}, "spec": {"finalizers": []}});
        prepare_update(r, &old, &mut update, None);
        assert_eq!(update["spec"]["finalizers"], json!(["kubernetes"]), "a plain update keeps them");
        let mut finalize = json!({"metadata": {"name": "a", "resourceVersion": "9", "labels": {}},
            "spec": {"finalizers": []}, "status": {"phase": "Active"}});
        prepare_update(r, &old, &mut finalize, Some("finalize"));
        assert_eq!(finalize["spec"]["finalizers"], json!([]), "finalize changes them");
        assert_eq!(finalize["metadata"]["labels"]["k"], "v", "and nothing else");
        assert_eq!(finalize["status"]["phase"], "Terminating");
        assert_eq!(finalize["metadata"]["resourceVersion"], "9", "its precondition is kept");
    }

    #[test]
    fn generation_moves_with_spec_only() {
        let r = registry::find("apps", "v1", "deployments").expect("deployments");
        let old = json!({"metadata": {"name": "d", "generation": 3}, "spec": {"replicas": 1}});
        let mut same = json!({"metadata": {"name": "d", "labels": {"x": "y"}}, "spec": {"replicas": 1}});
        prepare_update(r, &old, &mut same, None);
        assert_eq!(same["metadata"]["generation"], 3);
        let mut changed = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}});
        prepare_update(r, &old, &mut changed, None);
        assert_eq!(changed["metadata"]["generation"], 4);
    }
}
