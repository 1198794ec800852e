//! OpenAPI v3 documents, one per served group-version, generated from the registry and the
//! typed models of `k8s-openapi` (through `schemars`), plus the list and patch metadata kubectl
//! and the patch engines need, from the table in this module.
//!
//! kubectl reads these documents for `explain`, to decide that the server validates fields
//! (`fieldValidation` on PATCH operations that carry the kind), and to build client-side apply
//! patches (`x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaGenerator;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;

use crate::registry;
use crate::registry::Resource;

/// Patch and list semantics of one field, as upstream declares them.
struct ListMeta {
    schema: &'static str,
    field: &'static str,
    strategy: Option<&'static str>,
    merge_key: Option<&'static str>,
    list_type: Option<&'static str>,
    map_keys: &'static [&'static str],
}

const fn merge(schema: &'static str, field: &'static str, key: &'static str) -> ListMeta {
    ListMeta { schema, field, strategy: Some("merge"), merge_key: Some(key), list_type: None, map_keys: &[] }
}

const fn map_list(
    schema: &'static str,
    field: &'static str,
    key: &'static str,
    keys: &'static [&'static str],
) -> ListMeta {
    ListMeta { schema, field, strategy: Some("merge"), merge_key: Some(key), list_type: Some("map"), map_keys: keys }
}

const fn set(schema: &'static str, field: &'static str) -> ListMeta {
    ListMeta { schema, field, strategy: Some("merge"), merge_key: None, list_type: Some("set"), map_keys: &[] }
}

const fn atomic(schema: &'static str, field: &'static str) -> ListMeta {
    ListMeta { schema, field, strategy: None, merge_key: None, list_type: Some("atomic"), map_keys: &[] }
}

const fn retain_keys(schema: &'static str, field: &'static str) -> ListMeta {
    ListMeta { schema, field, strategy: Some("retainKeys"), merge_key: None, list_type: None, map_keys: &[] }
}

const CORE: &str = "io.k8s.api.core.v1.";

/// The list-merge facts of the served types (keyed by schema name without the `io.k8s.api.`
/// prefix for brevity, expanded in [`full_name`]).
const LIST_META: &[ListMeta] = &[
    set("meta.ObjectMeta", "finalizers"),
    map_list("meta.ObjectMeta", "ownerReferences", "uid", &["uid"]),
    atomic("meta.LabelSelector", "matchExpressions"),
    map_list("core.PodSpec", "containers", "name", &["name"]),
    map_list("core.PodSpec", "initContainers", "name", &["name"]),
    map_list("core.PodSpec", "ephemeralContainers", "name", &["name"]),
    ListMeta {
        schema: "core.PodSpec",
        field: "volumes",
        strategy: Some("merge,retainKeys"),
        merge_key: Some("name"),
        list_type: Some("map"),
        map_keys: &["name"],
    },
    merge("core.PodSpec", "imagePullSecrets", "name"),
    merge("core.PodSpec", "hostAliases", "ip"),
    map_list("core.PodSpec", "topologySpreadConstraints", "topologyKey", &["topologyKey", "whenUnsatisfiable"]),
    map_list("core.PodSpec", "schedulingGates", "name", &["name"]),
    atomic("core.PodSpec", "tolerations"),
    map_list("core.Container", "ports", "containerPort", &["containerPort", "protocol"]),
    merge("core.Container", "env", "name"),
    merge("core.Container", "volumeMounts", "mountPath"),
    merge("core.Container", "volumeDevices", "devicePath"),
    atomic("core.Container", "command"),
    atomic("core.Container", "args"),
    map_list("core.PodStatus", "conditions", "type", &["type"]),
    map_list("core.PodStatus", "podIPs", "ip", &["ip"]),
    map_list("core.PodStatus", "hostIPs", "ip", &["ip"]),
    map_list("core.ServiceSpec", "ports", "port", &["port", "protocol"]),
    atomic("core.ServiceSpec", "clusterIPs"),
    atomic("core.ServiceSpec", "ipFamilies"),
    map_list("core.ServiceStatus", "conditions", "type", &["type"]),
    set("core.NodeSpec", "podCIDRs"),
    atomic("core.NodeSpec", "taints"),
    map_list("core.NodeStatus", "conditions", "type", &["type"]),
    map_list("core.NodeStatus", "addresses", "type", &["type"]),
    map_list("core.NamespaceStatus", "conditions", "type", &["type"]),
    map_list("apps.DeploymentStatus", "conditions", "type", &["type"]),
    map_list("apps.ReplicaSetStatus", "conditions", "type", &["type"]),
    retain_keys("apps.DeploymentSpec", "strategy"),
    atomic("rbac.Role", "rules"),
    atomic("rbac.ClusterRole", "rules"),
    atomic("rbac.RoleBinding", "subjects"),
    atomic("rbac.ClusterRoleBinding", "subjects"),
    atomic("discovery.EndpointSlice", "endpoints"),
    atomic("discovery.EndpointSlice", "ports"),
    atomic("core.Endpoints", "subsets"),
];

fn full_name(short: &str) -> String {
    match short.split_once('.') {
        Some(("meta", rest)) => format!("io.k8s.apimachinery.pkg.apis.meta.v1.{rest}"),
        Some(("core", rest)) => format!("{CORE}{rest}"),
        Some((group, rest)) => format!("io.k8s.api.{group}.v1.{rest}"),
        None => short.to_string(),
    }
}

/// Every group-version's document, keyed by its path under `/openapi/v3/` (`api/v1`, `apis/apps/v1`).
pub fn documents() -> BTreeMap<String, Value> {
    let schemas = served_schemas();
    let mut docs = BTreeMap::new();
    let mut group_versions: Vec<(&str, &str)> = Vec::new();
    for r in registry::RESOURCES {
        if !group_versions.contains(&(r.group, r.version)) {
            group_versions.push((r.group, r.version));
        }
    }
    for (group, version) in group_versions {
        let resources: Vec<&Resource> = registry::resources_of(group, version).collect();
        let path = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
        docs.insert(path, document(&resources, schemas));
    }
    docs
}

static SERVED: OnceLock<Map<String, Value>> = OnceLock::new();

/// [`all_schemas`], built once per process: the API server's patch engines walk this one, and
/// the managedFields walk keeps an index of its nodes (see `apply`).
pub fn served_schemas() -> &'static Map<String, Value> {
    SERVED.get_or_init(all_schemas)
}

/// [`served_schemas`] if something has asked for them already.
pub fn served_schemas_if_built() -> Option<&'static Map<String, Value>> {
    SERVED.get()
}

/// The `components.schemas` map of every served kind (all documents share it); also what the
/// patch engines walk.
pub fn all_schemas() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    add_kinds(&mut generator);
    let mut schemas = generator.take_definitions(true);
    for r in registry::RESOURCES {
        if let Some(Value::Object(s)) = schemas.get_mut(r.schema) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "kind": r.kind, "version": r.version}]),
            );
        }
    }
    for m in LIST_META {
        let Some(Value::Object(s)) = schemas.get_mut(&full_name(m.schema)) else { continue };
        let Some(Value::Object(prop)) = s.get_mut("properties").and_then(|p| p.get_mut(m.field)) else { continue };
        if let Some(strategy) = m.strategy {
            prop.insert("x-kubernetes-patch-strategy".into(), strategy.into());
        }
        if let Some(key) = m.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
        if let Some(list_type) = m.list_type {
            prop.insert("x-kubernetes-list-type".into(), list_type.into());
        }
        if !m.map_keys.is_empty() {
            prop.insert("x-kubernetes-list-map-keys".into(), json!(m.map_keys));
        }
    }
    schemas.insert(PATCH_SCHEMA.into(), json!({"type": "object", "description": "A patch: JSON patch, merge patch, strategic merge patch or an apply configuration."}));
    schemas
}

const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

fn add_kinds(g: &mut SchemaGenerator) {
    fn add<T: JsonSchema>(g: &mut SchemaGenerator) {
        let _ = g.subschema_for::<T>();
    }
    add::<api::core::v1::Namespace>(g);
    add::<api::core::v1::Pod>(g);
    add::<api::core::v1::Node>(g);
    add::<api::core::v1::Service>(g);
    add::<api::core::v1::Endpoints>(g);
    add::<api::core::v1::ConfigMap>(g);
    add::<api::core::v1::Secret>(g);
    add::<api::core::v1::ServiceAccount>(g);
    add::<api::core::v1::Event>(g);
    add::<api::core::v1::ResourceQuota>(g);
    add::<api::core::v1::LimitRange>(g);
    add::<api::core::v1::Binding>(g);
    add::<api::apps::v1::Deployment>(g);
    add::<api::apps::v1::ReplicaSet>(g);
    add::<api::autoscaling::v1::Scale>(g);
    add::<api::policy::v1::Eviction>(g);
    add::<api::coordination::v1::Lease>(g);
    add::<api::discovery::v1::EndpointSlice>(g);
    add::<api::events::v1::Event>(g);
    add::<api::rbac::v1::Role>(g);
    add::<api::rbac::v1::ClusterRole>(g);
    add::<api::rbac::v1::RoleBinding>(g);
    add::<api::rbac::v1::ClusterRoleBinding>(g);
    add::<api::authorization::v1::SelfSubjectAccessReview>(g);
    add::<api::authorization::v1::SelfSubjectRulesReview>(g);
    add::<api::authentication::v1::SelfSubjectReview>(g);
    add::<meta::DeleteOptions>(g);
    add::<meta::Status>(g);
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn document(resources: &[&Resource], schemas: &Map<String, Value>) -> Value {
    let mut paths = Map::new();
    for r in resources {
        add_paths(&mut paths, r);
    }
    // Each document carries the schemas its operations reach; sharing the full set keeps `$ref`s
    // resolvable without a reachability walk, at a size kubectl caches once.
    let (group, version) = resources.first().map(|r| (r.group, r.version)).unwrap_or(("", "v1"));
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
        "x-skiff-group-version": registry::api_version(group, version),
    })
}

fn add_paths(paths: &mut Map<String, Value>, r: &Resource) {
    let root =
        if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
    let scope = if r.namespaced { format!("{root}/namespaces/{{namespace}}") } else { root.clone() };
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let body = json!({"content": {"application/json": {"schema": reference(r.schema)}}});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference(r.schema)}}}});
    let created = json!({
        "200": {"description": "OK", "content": {"application/json": {"schema": reference(r.schema)}}},
        "201": {"description": "Created", "content": {"application/json": {"schema": reference(r.schema)}}}
    });
    let write_params = json!([
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted. The only valid value is All."
        ),
        query("fieldManager", "The name of the actor or entity making these changes."),
        query("fieldValidation", "How the server treats unknown or duplicate fields: Ignore, Warn or Strict."),
    ]);
    let op = |action: &str, extra: Value| {
        let mut o = json!({
            "operationId": format!("{action}{}", r.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        });
        if let (Value::Object(o), Value::Object(extra)) = (&mut o, extra) {
            o.extend(extra);
        }
        o
    };
    let mut collection = Map::new();
    if r.has_verb("create") {
        collection.insert(
            "post".into(),
            op("post", json!({"parameters": write_params, "requestBody": body, "responses": created})),
        );
    }
    if r.has_verb("list") {
        collection.insert("get".into(), op("list", json!({"responses": {"200": {"description": "OK"}}})));
    }
    if r.has_verb("deletecollection") {
        collection
            .insert("delete".into(), op("deletecollection", json!({"responses": {"200": {"description": "OK"}}})));
    }
    if !collection.is_empty() {
        paths.insert(format!("{scope}/{}", r.plural), Value::Object(collection));
    }
    if r.namespaced && r.has_verb("list") {
        paths.insert(
            format!("{root}/{}", r.plural),
            json!({"get": op("list", json!({"responses": {"200": {"description": "OK"}}}))}),
        );
    }
    if r.storage != registry::Storage::Stored {
        return;
    }
    let patch_body = json!({"content": {
        "application/json-patch+json": {"schema": reference(PATCH_SCHEMA)},
        "application/merge-patch+json": {"schema": reference(PATCH_SCHEMA)},
        "application/strategic-merge-patch+json": {"schema": reference(PATCH_SCHEMA)},
        "application/apply-patch+yaml": {"schema": reference(PATCH_SCHEMA)},
    }});
    let mut patch_params = write_params.clone();
    if let Value::Array(p) = &mut patch_params {
        p.push(query(
            "force",
            "Force is going to \"force\" Apply requests: the fields of other managers are taken over.",
        ));
    }
    let mut item = Map::new();
    item.insert("get".into(), op("get", json!({"responses": ok})));
    item.insert(
        "put".into(),
        op("put", json!({"parameters": write_params, "requestBody": body, "responses": created})),
    );
    item.insert(
        "patch".into(),
        op("patch", json!({"parameters": patch_params, "requestBody": patch_body, "responses": created})),
    );
    item.insert(
        "delete".into(),
        op("delete", json!({"requestBody": {"content": {"application/json": {"schema": reference("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")}}}, "responses": ok})),
    );
    item.insert(
        "parameters".into(),
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]),
    );
    paths.insert(format!("{scope}/{}/{{name}}", r.plural), Value::Object(item));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_what_kubectl_looks_for() {
        let docs = documents();
        let core = docs.get("api/v1").expect("core document");
        let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        let params = patch["parameters"].as_array().expect("parameters");
        assert!(params.iter().any(|p| p["name"] == "fieldValidation"));
        assert!(patch["requestBody"]["content"].get("application/strategic-merge-patch+json").is_some());
        let schemas = &core["components"]["schemas"];
        assert_eq!(schemas["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert!(docs.contains_key("apis/apps/v1"));
    }

    #[test]
    fn every_list_meta_entry_names_a_real_field() {
        let schemas = all_schemas();
        for m in LIST_META {
            let name = full_name(m.schema);
            let prop = schemas.get(&name).and_then(|s| s.get("properties")).and_then(|p| p.get(m.field));
            assert!(prop.is_some(), "{name}.{} does not exist", m.field);
        }
    }
}
