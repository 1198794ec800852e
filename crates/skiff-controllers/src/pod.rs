//! Pods as the controllers hold them: only the fields some controller reads.
//!
//! The manager caches every pod in the cluster, and the leader pays for each one it decodes and
//! keeps. `k8s_openapi`'s `Pod` is about 2 KiB before its first string, and every `Container`
//! another 2 KiB, nearly all of it `None`; its decoder builds every field, `managedFields` (a JSON
//! tree) included, only for the cache to drop most of them. Under pod creates with no controller
//! to act, watching and caching every pod that way cost the servers 15% of their CPU per create
//! (`docs/benchmarks.md`, eleventh session), much of it decoding and faulting in the memory the
//! cache grew by; with these types the leader grows half as much per pod.
//!
//! The types here have the field names and types of `k8s_openapi`'s, so a controller reads a pod
//! the same way whichever it holds; a spec or status field missing here is a compile error, not a
//! silent `None`. Fields not declared are skipped while decoding, without building anything.
//! `metadata` stays an [`ObjectMeta`], which the garbage collector reads alike for every kind,
//! but arrives without `managedFields` and `annotations`: no controller reads them on a pod, and
//! `routine`'s `pod_annotations_change_no_decision` holds the controllers to that. (Upstream's
//! ReplicaSet controller reads one pod annotation, `controller.kubernetes.io/pod-deletion-cost`;
//! a controller here that wants one should decode that key alone.)

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ContainerPort;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::api::core::v1::PodIP;
use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use serde::Serialize;

// A missing `Option` field decodes as `None` by itself; `default` is written only where a custom
// decoder would otherwise make the field required. `Serialize` is for tests that edit a cached
// pod as JSON.

/// A pod, as far as the controllers read it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Pod {
    #[serde(default, deserialize_with = "meta_for_controllers")]
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

/// The spec fields the controllers read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    pub hostname: Option<String>,
    pub init_containers: Option<Vec<Container>>,
    pub node_name: Option<String>,
    pub subdomain: Option<String>,
    pub tolerations: Option<Vec<Toleration>>,
}

/// The container fields the controllers read: named ports, for Services' `targetPort` (with
/// the restart policy that makes an init container a sidecar, whose ports count too).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    pub ports: Option<Vec<ContainerPort>>,
    pub restart_policy: Option<String>,
}

/// The status fields the controllers read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub conditions: Option<Vec<PodCondition>>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
    pub phase: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
}

/// The container status fields the controllers read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ready: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub restart_count: i32,
}

impl k8s_openapi::Resource for Pod {
    const API_VERSION: &'static str = <k8s_openapi::api::core::v1::Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <k8s_openapi::api::core::v1::Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <k8s_openapi::api::core::v1::Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <k8s_openapi::api::core::v1::Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <k8s_openapi::api::core::v1::Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Pod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A required field's value, its default when sent as `null` (as `k8s_openapi` reads them).
fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `metadata` decoded without `managedFields` and `annotations`, which no controller reads of a
/// pod: managedFields would be decoded into a JSON tree only to be dropped, and annotations are
/// often a pod's bulk (`kubectl apply`'s last-applied configuration is a copy of the whole pod).
fn meta_for_controllers<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let Some(wire) = Option::<MetaWire>::deserialize(deserializer)? else { return Ok(ObjectMeta::default()) };
    Ok(ObjectMeta {
        annotations: None,
        creation_timestamp: wire.creation_timestamp,
        deletion_grace_period_seconds: wire.deletion_grace_period_seconds,
        deletion_timestamp: wire.deletion_timestamp,
        finalizers: wire.finalizers,
        generate_name: wire.generate_name,
        generation: wire.generation,
        labels: wire.labels,
        managed_fields: None,
        name: wire.name,
        namespace: wire.namespace,
        owner_references: wire.owner_references,
        resource_version: wire.resource_version,
        self_link: wire.self_link,
        uid: wire.uid,
    })
}

/// [`ObjectMeta`]'s fields but `managedFields` and `annotations`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaWire {
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rich_pod() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"},
                "finalizers": ["example.com/hold"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": "rs1", "controller": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]
            },
            "spec": {
                "nodeName": "n1", "hostname": "h", "subdomain": "s",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
                "containers": [{"name": "app", "image": "registry.local/app:1", "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}],
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                    "ports": [{"name": "metrics", "containerPort": 9090}]}],
                "volumes": [{"name": "v", "emptyDir": {}}]
            },
            "status": {
                "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 3, "image": "i", "imageID": "x",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}}]
            }
        })
    }

    #[test]
    fn a_pod_decodes_to_what_controllers_read() {
        let pod: Pod = serde_json::from_value(rich_pod()).expect("decodes");
        let full: k8s_openapi::api::core::v1::Pod = serde_json::from_value(rich_pod()).expect("decodes");
        let meta = &pod.metadata;
        assert_eq!(meta.annotations, None);
        assert_eq!(meta.managed_fields, None);
        assert_eq!(
            ObjectMeta { annotations: None, managed_fields: None, ..full.metadata.clone() },
            *meta,
            "every other metadata field is kept"
        );
        let spec = pod.spec.as_ref().expect("spec");
        let full_spec = full.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name, full_spec.node_name);
        assert_eq!((&spec.hostname, &spec.subdomain), (&full_spec.hostname, &full_spec.subdomain));
        assert_eq!(spec.tolerations, full_spec.tolerations);
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.containers[0].name, "app");
        assert_eq!(spec.containers[0].ports, full_spec.containers[0].ports);
        let sidecar = &spec.init_containers.as_ref().expect("init containers")[0];
        assert_eq!(
            (sidecar.restart_policy.as_deref(), sidecar.ports.as_ref().map(Vec::len)),
            (Some("Always"), Some(1))
        );
        let status = pod.status.as_ref().expect("status");
        let full_status = full.status.as_ref().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!((&status.pod_ip, &status.pod_ips), (&full_status.pod_ip, &full_status.pod_ips));
        assert_eq!(status.conditions, full_status.conditions);
        let statuses = status.container_statuses.as_ref().expect("container statuses");
        assert_eq!((statuses[0].name.as_str(), statuses[0].ready, statuses[0].restart_count), ("app", true, 3));
    }

    #[test]
    fn nulls_and_missing_fields_read_as_absent() {
        let pod: Pod = serde_json::from_value(json!({"metadata": null, "spec": {"containers": null,
            "nodeName": null}, "status": {"containerStatuses": [{"name": null, "ready": null, "restartCount": null}]}}))
        .expect("decodes");
        assert_eq!(pod.metadata, ObjectMeta::default());
        assert_eq!(pod.spec, Some(PodSpec::default()));
        let statuses = pod.status.and_then(|s| s.container_statuses).expect("statuses");
        assert_eq!(statuses, vec![ContainerStatus::default()]);
        let empty: Pod = serde_json::from_value(json!({})).expect("decodes");
        assert_eq!(empty, Pod::default());
    }

    #[test]
    fn a_wrongly_typed_field_is_an_error() {
        assert!(serde_json::from_value::<Pod>(json!({"spec": {"nodeName": 5}})).is_err());
        assert!(serde_json::from_value::<Pod>(json!({"metadata": {"labels": ["a"]}})).is_err());
    }
}
