//! Validation of API objects, as the API server runs it after defaulting and before storing.
//!
//! Objects are `serde_json::Value` trees in their JSON (camelCase) form. Every check reports a
//! [`FieldError`] naming the field by its path (`spec.containers[0].image`) and worded the way the
//! Kubernetes API words it, because clients and users match on those messages. Validation never
//! panics: a field holding the wrong JSON type is reported as `Invalid` and not looked into further.
//!
//! `validate` sees the object after defaulting, so fields upstream defaults (restart policies,
//! protocols, ...) are present; a value the user set to something unsupported is still reported.
//! Kinds without rules of their own here get the metadata checks only.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::names;

type Obj = Map<String, Value>;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Upstream caps the sum of all annotation keys and values of one object at 256 KiB.
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;
/// ConfigMaps and Secrets live in etcd values, which upstream keeps to about 1 MiB.
const MAX_CONFIG_SIZE: usize = 1024 * 1024;
const MAX_CONFIG_KEY_LEN: usize = 253;
const MAX_IANA_SVC_NAME_LEN: usize = 15;
const QUANTITY_REGEX_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,\
`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing \
tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
const HOST_PORT_RANGE_MSG: &str = "must be between 0 and 65535, inclusive";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const NON_NEGATIVE_MSG: &str = "must be greater than or equal to 0";
const IMMUTABLE_MSG: &str = "field is immutable";
const IMMUTABLE_WHEN_SET_MSG: &str = "field is immutable when `immutable` is set";

// ---------------------------------------------------------------------------------------------
// Errors.

/// What is wrong with a field; each maps to one upstream `reason` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorType {
    Required,
    Invalid,
    NotSupported,
    Forbidden,
    Duplicate,
    TooLong,
    TooMany,
    /// A reference to something that does not exist in the object (a volume mount naming no volume).
    NotFound,
}

/// One problem with one field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorType,
    /// The field's path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The offending value as upstream prints it: strings quoted, numbers bare; `None` when not shown.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    /// The `reason` of this error in a Status's `details.causes`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::TooMany => "FieldValueTooMany",
            FieldErrorType::NotFound => "FieldValueNotFound",
        }
    }

    /// The message without the field path, as a Status cause carries it.
    pub fn body(&self) -> String {
        let label = match self.kind {
            FieldErrorType::Required => "Required value",
            FieldErrorType::Invalid => "Invalid value",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::TooMany => "Too many",
            FieldErrorType::NotFound => "Not found",
        };
        let mut out = label.to_string();
        // Upstream never prints the value of these kinds, even when it has one.
        let hides_value =
            matches!(self.kind, FieldErrorType::Required | FieldErrorType::Forbidden | FieldErrorType::TooLong);
        if let (false, Some(value)) = (hides_value, &self.value) {
            out.push_str(": ");
            out.push_str(value);
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Collects errors; the methods mirror upstream's error constructors so call sites read alike.
#[derive(Default)]
struct Sink(Vec<FieldError>);

impl Sink {
    fn push(&mut self, kind: FieldErrorType, field: &str, value: Option<String>, detail: &str) {
        self.0.push(FieldError { kind, field: field.to_string(), value, detail: detail.to_string() });
    }
    fn required(&mut self, field: &str, detail: &str) {
        self.push(FieldErrorType::Required, field, None, detail);
    }
    fn invalid(&mut self, field: &str, value: String, detail: &str) {
        self.push(FieldErrorType::Invalid, field, Some(value), detail);
    }
    fn invalid_str(&mut self, field: &str, value: &str, detail: &str) {
        self.invalid(field, quote(value), detail);
    }
    fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list = supported.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        self.push(FieldErrorType::NotSupported, field, Some(quote(value)), &format!("supported values: {list}"));
    }
    fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(FieldErrorType::Forbidden, field, None, detail);
    }
    fn duplicate(&mut self, field: &str, value: String) {
        self.push(FieldErrorType::Duplicate, field, Some(value), "");
    }
    fn too_long(&mut self, field: &str, max: usize) {
        self.push(FieldErrorType::TooLong, field, None, &format!("may not be more than {max} bytes"));
    }
    fn too_many(&mut self, field: &str, actual: usize, max: usize) {
        self.push(FieldErrorType::TooMany, field, Some(actual.to_string()), &format!("must have at most {max} items"));
    }
    fn not_found(&mut self, field: &str, value: &str) {
        self.push(FieldErrorType::NotFound, field, Some(quote(value)), "");
    }
    /// One `Invalid` per problem message, as upstream reports name checks.
    fn each_invalid(&mut self, field: &str, value: &str, problems: Vec<String>) {
        for msg in problems {
            self.invalid_str(field, value, &msg);
        }
    }
}

/// A string as Go's `%q` prints it, which for the ASCII that names are made of is JSON quoting.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

/// A string map as Go's `%#v` prints a `map[string]string`, keys sorted.
fn go_string_map(m: &Obj) -> String {
    let entries: BTreeMap<&String, &Value> = m.iter().collect();
    let body = entries.iter().map(|(k, v)| format!("{}:{}", quote(k), render(v))).collect::<Vec<_>>().join(", ");
    format!("map[string]string{{{body}}}")
}

// Every field validated gets its path built, error or not: these join strings directly, as the
// formatting machinery cost a create more than the validation rules around them.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        joined(path, &[".", key])
    }
}

fn index(path: &str, i: usize) -> String {
    let mut digits = itoa::Buffer::new();
    joined(path, &["[", digits.format(i), "]"])
}

fn keyed(path: &str, key: &str) -> String {
    joined(path, &["[", key, "]"])
}

fn joined(path: &str, parts: &[&str]) -> String {
    let mut out = String::with_capacity(path.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    out.push_str(path);
    for part in parts {
        out.push_str(part);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Typed access. Absent and `null` read as unset; any other wrong type is reported once.

fn obj_at<'a>(s: &mut Sink, v: Option<&'a Value>, path: &str) -> Option<&'a Obj> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            s.invalid(path, render(other), "must be an object");
            None
        }
    }
}

fn arr_at<'a>(s: &mut Sink, v: Option<&'a Value>, path: &str) -> &'a [Value] {
    match v {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => &[],
        Some(other) => {
            s.invalid(path, render(other), "must be an array");
            &[]
        }
    }
}

/// The objects of an array with their paths; items of other types are reported and skipped.
fn objs_at<'a>(s: &mut Sink, v: Option<&'a Value>, path: &str) -> Vec<(String, &'a Obj)> {
    let mut out = Vec::new();
    for (i, item) in arr_at(s, v, path).iter().enumerate() {
        if let Some(m) = obj_at(s, Some(item), &index(path, i)) {
            out.push((index(path, i), m));
        }
    }
    out
}

fn str_at<'a>(s: &mut Sink, v: Option<&'a Value>, path: &str) -> Option<&'a str> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            s.invalid(path, render(other), "must be a string");
            None
        }
    }
}

/// A string field where, as in upstream's Go structs, `""` and absent are the same.
fn text<'a>(s: &mut Sink, m: &'a Obj, key: &str, path: &str) -> &'a str {
    str_at(s, m.get(key), &child(path, key)).unwrap_or("")
}

fn int_at(s: &mut Sink, v: Option<&Value>, path: &str) -> Option<i64> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(other) => {
            s.invalid(path, render(other), "must be an integer");
            None
        }
    }
}

fn int(s: &mut Sink, m: &Obj, key: &str, path: &str) -> Option<i64> {
    int_at(s, m.get(key), &child(path, key))
}

fn bool_at(s: &mut Sink, v: Option<&Value>, path: &str) -> Option<bool> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            s.invalid(path, render(other), "must be a boolean");
            None
        }
    }
}

/// A `map[string]string`: entries with non-string values are reported and left out.
fn str_map_at<'a>(s: &mut Sink, v: Option<&'a Value>, path: &str) -> Vec<(&'a str, &'a str)> {
    let Some(m) = obj_at(s, v, path) else { return Vec::new() };
    let mut out = Vec::new();
    for (k, v) in m {
        match v {
            Value::String(text) => out.push((k.as_str(), text.as_str())),
            Value::Null => out.push((k.as_str(), "")),
            other => s.invalid(&keyed(path, k), render(other), "must be a string"),
        }
    }
    out
}

fn strings_at<'a>(s: &mut Sink, v: Option<&'a Value>, path: &str) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    for (i, item) in arr_at(s, v, path).iter().enumerate() {
        if let Some(text) = str_at(s, Some(item), &index(path, i)) {
            out.push((index(path, i), text));
        }
    }
    out
}

fn non_negative(s: &mut Sink, m: &Obj, key: &str, path: &str) {
    if let Some(n) = int(s, m, key, path) {
        if n < 0 {
            s.invalid(&child(path, key), n.to_string(), NON_NEGATIVE_MSG);
        }
    }
}

/// Whether a field holds something of another type than expected, which was reported already.
fn has_wrong_type(v: Option<&Value>, expected: fn(&Value) -> bool) -> bool {
    v.is_some_and(|v| !v.is_null() && !expected(v))
}

fn is_set(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Entry point.

/// Validates an object after defaulting. `old` is the stored object on update (None on create).
/// `group` is "" for core.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut s = Sink::default();
    let Some(root) = obj.as_object() else {
        s.invalid("", render(obj), "must be an object");
        return s.0;
    };
    let old = old.and_then(Value::as_object);
    validate_meta(&mut s, group, kind, root, old);
    match (group, kind) {
        ("", "Pod") => validate_pod(&mut s, root, old),
        ("", "PodTemplate") => validate_pod_template(&mut s, root),
        ("", "ReplicationController") => validate_replication_controller(&mut s, root, old),
        ("apps", "Deployment") => validate_deployment(&mut s, root, old),
        ("apps", "ReplicaSet") => validate_replica_set(&mut s, root, old),
        ("apps", "StatefulSet" | "DaemonSet") => validate_simple_workload(&mut s, root, old),
        ("batch", "Job") => validate_job(&mut s, root),
        ("batch", "CronJob") => validate_cron_job(&mut s, root),
        ("", "Service") => validate_service(&mut s, root, old),
        ("", "ConfigMap") => validate_config_map(&mut s, root, old),
        ("", "Secret") => validate_secret(&mut s, root, old),
        ("", "Namespace") => validate_namespace(&mut s, root),
        ("", "Node") => validate_node(&mut s, root, old),
        ("", "ServiceAccount") => validate_service_account(&mut s, root),
        ("", "Endpoints") => validate_endpoints(&mut s, root),
        ("discovery.k8s.io", "EndpointSlice") => validate_endpoint_slice(&mut s, root, old),
        ("coordination.k8s.io", "Lease") => validate_lease(&mut s, root),
        ("", "Event") => validate_core_event(&mut s, root),
        ("events.k8s.io", "Event") => validate_events_event(&mut s, root),
        ("", "ResourceQuota") => validate_resource_quota(&mut s, root),
        ("", "LimitRange") => validate_limit_range(&mut s, root),
        (RBAC_GROUP, "Role") => validate_role(&mut s, root, false),
        (RBAC_GROUP, "ClusterRole") => validate_role(&mut s, root, true),
        (RBAC_GROUP, "RoleBinding") => validate_role_binding(&mut s, root, old, false),
        (RBAC_GROUP, "ClusterRoleBinding") => validate_role_binding(&mut s, root, old, true),
        _ => {}
    }
    s.0
}

// ---------------------------------------------------------------------------------------------
// Object metadata.

#[derive(Clone, Copy)]
enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        // Event names are generated from the involved object's name plus a suffix; upstream only
        // requires that they can be a URL path segment.
        ("", "Event") | ("events.k8s.io", "Event") => NameRule::PathSegment,
        (RBAC_GROUP, _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn name_problems(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::dns1123_subdomain(name),
        NameRule::Label => names::dns1123_label(name),
        NameRule::Dns1035 => names::dns1035_label(name),
        NameRule::PathSegment => path_segment_problems(name),
    }
}

/// Names that end up as one segment of a URL path may not be `.`/`..` nor contain `/` or `%`.
fn path_segment_problems(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name == "." || name == ".." {
        out.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

/// Whether objects of a kind live in a namespace; `None` for kinds this module does not know.
fn is_namespaced(group: &str, kind: &str) -> Option<bool> {
    const CLUSTER: &[(&str, &str)] = &[
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        (RBAC_GROUP, "ClusterRole"),
        (RBAC_GROUP, "ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ];
    const NAMESPACED: &[(&str, &str)] = &[
        ("", "Pod"),
        ("", "PodTemplate"),
        ("", "ReplicationController"),
        ("", "Service"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Endpoints"),
        ("", "Event"),
        ("", "ResourceQuota"),
        ("", "LimitRange"),
        ("", "PersistentVolumeClaim"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ControllerRevision"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("coordination.k8s.io", "Lease"),
        ("events.k8s.io", "Event"),
        (RBAC_GROUP, "Role"),
        (RBAC_GROUP, "RoleBinding"),
        ("networking.k8s.io", "Ingress"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("policy", "PodDisruptionBudget"),
        ("autoscaling", "HorizontalPodAutoscaler"),
    ];
    if CLUSTER.contains(&(group, kind)) {
        Some(false)
    } else if NAMESPACED.contains(&(group, kind)) {
        Some(true)
    } else {
        None
    }
}

fn validate_meta(s: &mut Sink, group: &str, kind: &str, root: &Obj, old: Option<&Obj>) {
    let Some(meta) = obj_at(s, root.get("metadata"), "metadata") else {
        if !is_set(root.get("metadata")) {
            s.required("metadata.name", "name or generateName is required");
        }
        return;
    };
    let path = "metadata";
    let name = text(s, meta, "name", path);
    if name.is_empty() {
        s.required("metadata.name", "name or generateName is required");
    } else {
        s.each_invalid("metadata.name", name, name_problems(name_rule(group, kind), name));
    }
    let namespace = text(s, meta, "namespace", path);
    match (is_namespaced(group, kind), namespace.is_empty()) {
        (Some(true), true) => s.required("metadata.namespace", ""),
        (Some(false), false) => s.forbidden("metadata.namespace", "not allowed on this type"),
        (_, false) => s.each_invalid("metadata.namespace", namespace, names::dns1123_label(namespace)),
        _ => {}
    }
    validate_labels(s, meta.get("labels"), "metadata.labels");
    validate_annotations(s, meta.get("annotations"), "metadata.annotations");
    for (p, finalizer) in strings_at(s, meta.get("finalizers"), "metadata.finalizers") {
        s.each_invalid(&p, finalizer, names::qualified_name(finalizer));
    }
    validate_owner_references(s, meta.get("ownerReferences"));
    if let Some(old_meta) = old.and_then(|o| o.get("metadata")).and_then(Value::as_object) {
        for key in ["name", "namespace"] {
            let old_value = old_meta.get(key).and_then(Value::as_str).unwrap_or("");
            let new_value = meta.get(key).and_then(Value::as_str).unwrap_or("");
            if old_value != new_value {
                s.invalid_str(&child(path, key), new_value, IMMUTABLE_MSG);
            }
        }
    }
}

fn validate_labels(s: &mut Sink, v: Option<&Value>, path: &str) {
    for (key, value) in str_map_at(s, v, path) {
        s.each_invalid(path, key, names::qualified_name(key));
        s.each_invalid(path, value, names::label_value(value));
    }
}

fn validate_annotations(s: &mut Sink, v: Option<&Value>, path: &str) {
    let mut total = 0;
    for (key, value) in str_map_at(s, v, path) {
        // Annotation keys are compared case-insensitively upstream, so upper case is allowed.
        s.each_invalid(path, key, names::qualified_name(&key.to_ascii_lowercase()));
        total += key.len() + value.len();
    }
    if total > MAX_ANNOTATIONS_SIZE {
        s.too_long(path, MAX_ANNOTATIONS_SIZE);
    }
}

fn validate_owner_references(s: &mut Sink, v: Option<&Value>) {
    // Upstream reports these on the list's path, not on the item's.
    let path = "metadata.ownerReferences";
    let mut controllers = 0;
    for (_, owner) in objs_at(s, v, path) {
        for (key, what) in [("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            let value = text(s, owner, key, path);
            if value.is_empty() {
                s.invalid_str(&child(path, key), value, &format!("{what} must not be empty"));
            }
        }
        if bool_at(s, owner.get("controller"), &child(path, "controller")) == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        s.invalid(path, controllers.to_string(), "Only one reference can have Controller set to true");
    }
}

/// The spec of a Deployment-like object's pod template, checked as pods are, under `path`.
fn validate_pod_template_spec(s: &mut Sink, template: Option<&Value>, path: &str) -> Option<Obj> {
    let Some(template) = obj_at(s, template, path) else {
        s.required(path, "");
        return None;
    };
    let labels = child(&child(path, "metadata"), "labels");
    if let Some(meta) = obj_at(s, template.get("metadata"), &child(path, "metadata")) {
        validate_labels(s, meta.get("labels"), &labels);
        validate_annotations(s, meta.get("annotations"), &child(&child(path, "metadata"), "annotations"));
    }
    let spec_path = child(path, "spec");
    match obj_at(s, template.get("spec"), &spec_path) {
        Some(spec) => validate_pod_spec(s, spec, &spec_path),
        None => s.required(&child(&spec_path, "containers"), ""),
    }
    template.get("metadata").and_then(|m| m.get("labels")).and_then(Value::as_object).cloned().or(Some(Obj::new()))
}

// ---------------------------------------------------------------------------------------------
// Pods.

fn validate_pod(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    match obj_at(s, root.get("spec"), "spec") {
        Some(spec) => validate_pod_spec(s, spec, "spec"),
        None => s.required("spec.containers", ""),
    }
    if let (Some(new_spec), Some(old_spec)) =
        (root.get("spec"), old.and_then(|o| o.get("spec")).filter(|v| v.is_object()))
    {
        validate_pod_spec_update(s, new_spec, old_spec);
    }
}

fn validate_pod_template(s: &mut Sink, root: &Obj) {
    validate_pod_template_spec(s, root.get("template"), "template");
}

fn validate_pod_spec(s: &mut Sink, spec: &Obj, path: &str) {
    let volumes = validate_volumes(s, spec.get("volumes"), &child(path, "volumes"));
    let mut container_names = HashSet::new();
    let mut host_ports = HashSet::new();
    let init_path = child(path, "initContainers");
    for (p, container) in objs_at(s, spec.get("initContainers"), &init_path) {
        validate_container(s, container, &p, &volumes, &mut container_names, true);
        collect_host_ports(s, container, &p, &mut host_ports);
    }
    let containers_path = child(path, "containers");
    let containers = objs_at(s, spec.get("containers"), &containers_path);
    if containers.is_empty() && !has_wrong_type(spec.get("containers"), Value::is_array) {
        s.required(&containers_path, "");
    }
    for (p, container) in containers {
        validate_container(s, container, &p, &volumes, &mut container_names, false);
        collect_host_ports(s, container, &p, &mut host_ports);
    }
    let restart = text(s, spec, "restartPolicy", path);
    check_enum(s, &child(path, "restartPolicy"), restart, &["Always", "Never", "OnFailure"]);
    let dns = text(s, spec, "dnsPolicy", path);
    check_enum(s, &child(path, "dnsPolicy"), dns, &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]);
    non_negative(s, spec, "terminationGracePeriodSeconds", path);
    if let Some(deadline) = int(s, spec, "activeDeadlineSeconds", path) {
        if !(1..=i64::from(i32::MAX)).contains(&deadline) {
            s.invalid(
                &child(path, "activeDeadlineSeconds"),
                deadline.to_string(),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    validate_labels(s, spec.get("nodeSelector"), &child(path, "nodeSelector"));
    validate_tolerations(s, spec.get("tolerations"), &child(path, "tolerations"));
    let sa = text(s, spec, "serviceAccountName", path);
    if !sa.is_empty() {
        s.each_invalid(&child(path, "serviceAccountName"), sa, names::dns1123_subdomain(sa));
    }
    let hostname = text(s, spec, "hostname", path);
    if !hostname.is_empty() {
        s.each_invalid(&child(path, "hostname"), hostname, names::dns1123_label(hostname));
    }
    let subdomain = text(s, spec, "subdomain", path);
    if !subdomain.is_empty() {
        s.each_invalid(&child(path, "subdomain"), subdomain, names::dns1123_label(subdomain));
    }
    for (p, secret) in objs_at(s, spec.get("imagePullSecrets"), &child(path, "imagePullSecrets")) {
        text(s, secret, "name", &p);
    }
}

/// An unset value counts as missing: after defaulting, only a user's explicit `""` gets here.
fn check_enum(s: &mut Sink, path: &str, value: &str, supported: &[&str]) {
    if value.is_empty() {
        s.required(path, "");
    } else if !supported.contains(&value) {
        s.not_supported(path, value, supported);
    }
}

fn check_optional_enum(s: &mut Sink, path: &str, value: &str, supported: &[&str]) {
    if !value.is_empty() && !supported.contains(&value) {
        s.not_supported(path, value, supported);
    }
}

fn validate_volumes(s: &mut Sink, v: Option<&Value>, path: &str) -> HashSet<String> {
    let mut names_seen = HashSet::new();
    for (p, volume) in objs_at(s, v, path) {
        let name = text(s, volume, "name", &p);
        let name_path = child(&p, "name");
        if name.is_empty() {
            s.required(&name_path, "");
        } else {
            s.each_invalid(&name_path, name, names::dns1123_label(name));
            if !names_seen.insert(name.to_string()) {
                s.duplicate(&name_path, quote(name));
            }
        }
        let sources: Vec<&str> =
            crate::defaults::VOLUME_SOURCES.iter().copied().filter(|key| is_set(volume.get(*key))).collect();
        match sources.as_slice() {
            [] => s.required(&p, "must specify a volume type"),
            [one] => validate_volume_source(s, volume, one, &child(&p, one)),
            [_, rest @ ..] => {
                for extra in rest {
                    s.forbidden(&child(&p, extra), "may not specify more than 1 volume type");
                }
            }
        }
    }
    names_seen
}

fn validate_volume_source(s: &mut Sink, volume: &Obj, source: &str, path: &str) {
    let Some(m) = obj_at(s, volume.get(source), path) else { return };
    let required_key = match source {
        "secret" => "secretName",
        "configMap" => "name",
        "persistentVolumeClaim" => "claimName",
        "hostPath" | "nfs" => "path",
        _ => "",
    };
    if !required_key.is_empty() && text(s, m, required_key, path).is_empty() {
        s.required(&child(path, required_key), "");
    }
    if let Some(mode) = int(s, m, "defaultMode", path) {
        if !(0..=0o777).contains(&mode) {
            s.invalid(
                &child(path, "defaultMode"),
                mode.to_string(),
                "must be a number between 0 and 0777 (octal), both inclusive",
            );
        }
    }
    if source == "emptyDir" {
        if let Some(limit) = m.get("sizeLimit").filter(|v| !v.is_null()) {
            check_quantity(s, limit, &child(path, "sizeLimit"));
        }
    }
}

fn validate_container(
    s: &mut Sink,
    c: &Obj,
    path: &str,
    volumes: &HashSet<String>,
    seen: &mut HashSet<String>,
    init: bool,
) {
    let name = text(s, c, "name", path);
    let name_path = child(path, "name");
    if name.is_empty() {
        s.required(&name_path, "");
    } else {
        s.each_invalid(&name_path, name, names::dns1123_label(name));
        if !seen.insert(name.to_string()) {
            s.duplicate(&name_path, quote(name));
        }
    }
    let image = text(s, c, "image", path);
    if image.is_empty() {
        s.required(&child(path, "image"), "");
    } else if image.trim() != image {
        s.invalid_str(&child(path, "image"), image, "must not have leading or trailing whitespace");
    }
    let pull = text(s, c, "imagePullPolicy", path);
    check_enum(s, &child(path, "imagePullPolicy"), pull, &["Always", "IfNotPresent", "Never"]);
    let policy = text(s, c, "terminationMessagePolicy", path);
    check_optional_enum(s, &child(path, "terminationMessagePolicy"), policy, &["FallbackToLogsOnError", "File"]);
    validate_container_ports(s, c.get("ports"), &child(path, "ports"));
    validate_env(s, c.get("env"), &child(path, "env"));
    validate_env_from(s, c.get("envFrom"), &child(path, "envFrom"));
    validate_resources(s, c.get("resources"), &child(path, "resources"));
    validate_volume_mounts(s, c.get("volumeMounts"), &child(path, "volumeMounts"), volumes);
    let restart = text(s, c, "restartPolicy", path);
    let sidecar = restart == "Always";
    if init {
        check_optional_enum(s, &child(path, "restartPolicy"), restart, &["Always"]);
    } else if !restart.is_empty() {
        s.forbidden(&child(path, "restartPolicy"), "may not be set for non-init containers");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let probe_path = child(path, probe);
        if !is_set(c.get(probe)) {
            continue;
        }
        if init && !sidecar {
            s.forbidden(&probe_path, "may not be set for init containers without restartPolicy=Always");
            continue;
        }
        if let Some(p) = obj_at(s, c.get(probe), &probe_path) {
            validate_probe(s, p, &probe_path, probe != "readinessProbe");
        }
    }
    if let Some(lifecycle) = obj_at(s, c.get("lifecycle"), &child(path, "lifecycle")) {
        for hook in ["postStart", "preStop"] {
            let hook_path = child(&child(path, "lifecycle"), hook);
            if let Some(h) = obj_at(s, lifecycle.get(hook), &hook_path) {
                validate_handler(s, h, &hook_path, &["exec", "httpGet", "sleep", "tcpSocket"]);
            }
        }
    }
}

fn validate_container_ports(s: &mut Sink, v: Option<&Value>, path: &str) {
    let mut port_names = HashSet::new();
    for (p, port) in objs_at(s, v, path) {
        let name = text(s, port, "name", &p);
        if !name.is_empty() {
            s.each_invalid(&child(&p, "name"), name, iana_svc_name_problems(name));
            if !port_names.insert(name.to_string()) {
                s.duplicate(&child(&p, "name"), quote(name));
            }
        }
        match int(s, port, "containerPort", &p) {
            None if !is_set(port.get("containerPort")) => s.required(&child(&p, "containerPort"), ""),
            Some(n) if !(1..=65535).contains(&n) => {
                s.invalid(&child(&p, "containerPort"), n.to_string(), PORT_RANGE_MSG)
            }
            _ => {}
        }
        if let Some(n) = int(s, port, "hostPort", &p) {
            if !(0..=65535).contains(&n) {
                s.invalid(&child(&p, "hostPort"), n.to_string(), HOST_PORT_RANGE_MSG);
            }
        }
        let protocol = text(s, port, "protocol", &p);
        check_enum(s, &child(&p, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
        let host_ip = text(s, port, "hostIP", &p);
        if !host_ip.is_empty() && host_ip.parse::<IpAddr>().is_err() {
            s.invalid_str(&child(&p, "hostIP"), host_ip, IP_MSG);
        }
    }
}

/// Two containers of one pod cannot bind the same port and protocol on the host.
fn collect_host_ports(s: &mut Sink, c: &Obj, path: &str, seen: &mut HashSet<String>) {
    let Some(ports) = c.get("ports").and_then(Value::as_array) else { return };
    for (i, port) in ports.iter().enumerate() {
        let Some(host_port) = port.get("hostPort").and_then(Value::as_i64).filter(|p| *p != 0) else { continue };
        let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        let host_ip = port.get("hostIP").and_then(Value::as_str).unwrap_or("");
        let key = format!("{host_ip}/{protocol}/{host_port}");
        if !seen.insert(key) {
            s.duplicate(
                &child(&index(&child(path, "ports"), i), "hostPort"),
                quote(&format!("{host_port}/{protocol}")),
            );
        }
    }
}

/// IANA service names (named ports): at most 15 lower-case alphanumerics or '-', with a letter,
/// no '-' at either end and no "--".
fn iana_svc_name_problems(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.len() > MAX_IANA_SVC_NAME_LEN {
        out.push(format!("must be no more than {MAX_IANA_SVC_NAME_LEN} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens".to_string());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_string());
    }
    out
}

/// A port given as a number (1–65535) or as the name of a container port.
fn validate_int_or_port_name(s: &mut Sink, v: Option<&Value>, path: &str) {
    match v {
        None | Some(Value::Null) => s.required(path, ""),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(port) if (1..=65535).contains(&port) => {}
            _ => s.invalid(path, n.to_string(), PORT_RANGE_MSG),
        },
        Some(Value::String(name)) if name.is_empty() => s.required(path, ""),
        Some(Value::String(name)) => s.each_invalid(path, name, iana_svc_name_problems(name)),
        Some(other) => s.invalid(path, render(other), "must be an integer or a string"),
    }
}

fn validate_env(s: &mut Sink, v: Option<&Value>, path: &str) {
    for (p, var) in objs_at(s, v, path) {
        let name = text(s, var, "name", &p);
        if name.is_empty() {
            s.required(&child(&p, "name"), "");
        } else {
            s.each_invalid(&child(&p, "name"), name, names::env_var_name(name));
        }
        let value = text(s, var, "value", &p);
        let from_path = child(&p, "valueFrom");
        let Some(from) = obj_at(s, var.get("valueFrom"), &from_path) else { continue };
        let sources: Vec<&str> = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"]
            .into_iter()
            .filter(|k| is_set(from.get(*k)))
            .collect();
        match sources.len() {
            0 => s.invalid_str(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ),
            1 => {}
            _ => s.invalid_str(&from_path, "", "may not have more than one field specified at a time"),
        }
        if !value.is_empty() && !sources.is_empty() {
            s.invalid_str(&from_path, "", "may not be specified when `value` is not empty");
        }
        for key_ref in ["configMapKeyRef", "secretKeyRef"] {
            let ref_path = child(&from_path, key_ref);
            if let Some(r) = obj_at(s, from.get(key_ref), &ref_path) {
                let key = text(s, r, "key", &ref_path);
                if key.is_empty() {
                    s.required(&child(&ref_path, "key"), "");
                } else {
                    s.each_invalid(&child(&ref_path, "key"), key, config_key_problems(key));
                }
            }
        }
        let field_path = child(&from_path, "fieldRef");
        if let Some(r) = obj_at(s, from.get("fieldRef"), &field_path) {
            if text(s, r, "fieldPath", &field_path).is_empty() {
                s.required(&child(&field_path, "fieldPath"), "");
            }
        }
        let resource_path = child(&from_path, "resourceFieldRef");
        if let Some(r) = obj_at(s, from.get("resourceFieldRef"), &resource_path) {
            if text(s, r, "resource", &resource_path).is_empty() {
                s.required(&child(&resource_path, "resource"), "");
            }
        }
    }
}

fn validate_env_from(s: &mut Sink, v: Option<&Value>, path: &str) {
    for (p, source) in objs_at(s, v, path) {
        let prefix = text(s, source, "prefix", &p);
        if !prefix.is_empty() {
            s.each_invalid(&child(&p, "prefix"), prefix, names::env_var_name(prefix));
        }
        let refs: Vec<&str> = ["configMapRef", "secretRef"].into_iter().filter(|k| is_set(source.get(*k))).collect();
        match refs.len() {
            0 => s.invalid_str(&p, "", "must specify one of: `configMapRef` or `secretRef`"),
            1 => {
                let ref_path = child(&p, refs[0]);
                if let Some(r) = obj_at(s, source.get(refs[0]), &ref_path) {
                    if text(s, r, "name", &ref_path).is_empty() {
                        s.required(&child(&ref_path, "name"), "");
                    }
                }
            }
            _ => s.invalid_str(&p, "", "may not have more than one field specified at a time"),
        }
    }
}

fn validate_volume_mounts(s: &mut Sink, v: Option<&Value>, path: &str, volumes: &HashSet<String>) {
    let mut mount_paths = HashSet::new();
    for (p, mount) in objs_at(s, v, path) {
        let name = text(s, mount, "name", &p);
        if name.is_empty() {
            s.required(&child(&p, "name"), "");
        } else if !volumes.contains(name) {
            s.not_found(&child(&p, "name"), name);
        }
        let mount_path = text(s, mount, "mountPath", &p);
        if mount_path.is_empty() {
            s.required(&child(&p, "mountPath"), "");
        } else if !mount_paths.insert(mount_path.to_string()) {
            s.invalid_str(&child(&p, "mountPath"), mount_path, "must be unique");
        }
        let sub_path = text(s, mount, "subPath", &p);
        if sub_path.starts_with('/') {
            s.invalid_str(&child(&p, "subPath"), sub_path, "must be a relative path");
        } else if sub_path.split('/').any(|part| part == "..") {
            s.invalid_str(&child(&p, "subPath"), sub_path, "must not contain '..'");
        }
    }
}

fn validate_probe(s: &mut Sink, probe: &Obj, path: &str, success_must_be_one: bool) {
    validate_handler(s, probe, path, &["exec", "grpc", "httpGet", "tcpSocket"]);
    for key in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        non_negative(s, probe, key, path);
    }
    if let Some(grace) = int(s, probe, "terminationGracePeriodSeconds", path) {
        if grace <= 0 {
            s.invalid(&child(path, "terminationGracePeriodSeconds"), grace.to_string(), "must be greater than 0");
        }
    }
    // Liveness and startup only ever need one success; upstream refuses anything else there.
    if success_must_be_one {
        if let Some(n) = probe.get("successThreshold").and_then(Value::as_i64) {
            if n != 1 {
                s.invalid(&child(path, "successThreshold"), n.to_string(), "must be 1");
            }
        }
    }
}

fn validate_handler(s: &mut Sink, handler: &Obj, path: &str, kinds: &[&str]) {
    let present: Vec<&str> = kinds.iter().copied().filter(|k| is_set(handler.get(*k))).collect();
    match present.as_slice() {
        [] => s.required(path, "must specify a handler type"),
        [_, rest @ ..] => {
            for extra in rest {
                s.forbidden(&child(path, extra), "may not specify more than 1 handler type");
            }
        }
    }
    for kind in ["httpGet", "tcpSocket"] {
        let p = child(path, kind);
        if let Some(action) = obj_at(s, handler.get(kind), &p) {
            validate_int_or_port_name(s, action.get("port"), &child(&p, "port"));
        }
    }
    let http = child(path, "httpGet");
    if let Some(action) = obj_at(s, handler.get("httpGet"), &http) {
        let scheme = text(s, action, "scheme", &http);
        check_optional_enum(s, &child(&http, "scheme"), scheme, &["HTTP", "HTTPS"]);
    }
    let exec = child(path, "exec");
    if let Some(action) = obj_at(s, handler.get("exec"), &exec) {
        if strings_at(s, action.get("command"), &child(&exec, "command")).is_empty() {
            s.required(&child(&exec, "command"), "");
        }
    }
    let grpc = child(path, "grpc");
    if let Some(action) = obj_at(s, handler.get("grpc"), &grpc) {
        match int(s, action, "port", &grpc) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => s.invalid(&child(&grpc, "port"), n.to_string(), PORT_RANGE_MSG),
            None => s.required(&child(&grpc, "port"), ""),
        }
    }
}

fn validate_tolerations(s: &mut Sink, v: Option<&Value>, path: &str) {
    for (p, t) in objs_at(s, v, path) {
        let key = text(s, t, "key", &p);
        let operator = text(s, t, "operator", &p);
        let value = text(s, t, "value", &p);
        let effect = text(s, t, "effect", &p);
        if !key.is_empty() {
            s.each_invalid(&child(&p, "key"), key, names::qualified_name(key));
        } else if operator != "Exists" {
            s.invalid_str(
                &child(&p, "operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        match operator {
            "" | "Equal" => s.each_invalid(&child(&p, "value"), value, names::label_value(value)),
            "Exists" if !value.is_empty() => {
                s.invalid_str(&child(&p, "operator"), value, "value must be empty when `operator` is 'Exists'")
            }
            "Exists" => {}
            other => s.not_supported(&child(&p, "operator"), other, &["Equal", "Exists"]),
        }
        check_optional_enum(s, &child(&p, "effect"), effect, &["NoExecute", "NoSchedule", "PreferNoSchedule"]);
        if is_set(t.get("tolerationSeconds")) && effect != "NoExecute" {
            s.invalid_str(&child(&p, "effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set");
        }
    }
}

fn validate_resources(s: &mut Sink, v: Option<&Value>, path: &str) {
    let Some(resources) = obj_at(s, v, path) else { return };
    let limits = quantities(s, resources.get("limits"), &child(path, "limits"), true);
    let requests_path = child(path, "requests");
    let requests = quantities(s, resources.get("requests"), &requests_path, true);
    for (name, (raw, request)) in &requests {
        let Some((limit_raw, limit)) = limits.get(name) else { continue };
        // Extended resources cannot be overcommitted, so their request is their limit.
        let extended = name.contains('/') && !name.starts_with("kubernetes.io/");
        if extended && request != limit {
            s.invalid_str(&keyed(&requests_path, name), raw, &format!("must be equal to {name} limit of {limit_raw}"));
        } else if request > limit {
            s.invalid_str(
                &keyed(&requests_path, name),
                raw,
                &format!("must be less than or equal to {name} limit of {limit_raw}"),
            );
        }
    }
}

/// The quantities of a resource list, by resource name, each with its text and milli-value.
fn quantities(s: &mut Sink, v: Option<&Value>, path: &str, container: bool) -> BTreeMap<String, (String, i128)> {
    let mut out = BTreeMap::new();
    let Some(m) = obj_at(s, v, path) else { return out };
    for (name, q) in m {
        let p = keyed(path, name);
        validate_resource_name(s, name, &p, container);
        if let Some(value) = check_quantity(s, q, &p) {
            out.insert(name.clone(), (quantity_text(q), value));
        }
    }
    out
}

fn validate_resource_name(s: &mut Sink, name: &str, path: &str, container: bool) {
    s.each_invalid(path, name, names::qualified_name(name));
    let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if container && !name.contains('/') && !standard {
        s.invalid_str(path, name, "must be a standard resource for containers");
    }
}

fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Quantities may be JSON strings or numbers; both must parse and be non-negative.
fn check_quantity(s: &mut Sink, v: &Value, path: &str) -> Option<i128> {
    let raw = match v {
        Value::String(_) | Value::Number(_) => quantity_text(v),
        other => {
            s.invalid(path, render(other), "must be a string or a number");
            return None;
        }
    };
    match parse_quantity(&raw) {
        Ok(value) if value < 0 => {
            s.invalid_str(path, &raw, NON_NEGATIVE_MSG);
            None
        }
        Ok(value) => Some(value),
        Err(msg) => {
            s.invalid_str(path, &raw, &msg);
            None
        }
    }
}

/// Which pod spec changes an update may make; everything else must stay as it was.
fn validate_pod_spec_update(s: &mut Sink, new_spec: &Value, old_spec: &Value) {
    let mut munged = new_spec.clone();
    let (Some(m), Some(old)) = (munged.as_object_mut(), old_spec.as_object()) else { return };
    for key in ["containers", "initContainers"] {
        copy_images(m, old, key);
    }
    check_deadline_update(s, m.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds"));
    restore(m, old, "activeDeadlineSeconds");
    if !tolerations_only_added(m.get("tolerations"), old.get("tolerations")) {
        s.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds");
    }
    restore(m, old, "tolerations");
    let old_grace = old.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    let new_grace = m.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
        restore(m, old, "terminationGracePeriodSeconds");
    }
    if gates_only_removed(m.get("schedulingGates"), old.get("schedulingGates")) {
        restore(m, old, "schedulingGates");
    }
    // Ephemeral containers change only through their own subresource, which the server handles.
    restore(m, old, "ephemeralContainers");
    if &munged != old_spec {
        s.forbidden("spec", POD_UPDATE_MSG);
    }
}

/// Puts the old value of `key` (or its absence) into the munged spec.
fn restore(m: &mut Obj, old: &Obj, key: &str) {
    match old.get(key) {
        Some(v) => m.insert(key.to_string(), v.clone()),
        None => m.remove(key),
    };
}

fn copy_images(m: &mut Obj, old: &Obj, key: &str) {
    let (Some(new_list), Some(old_list)) =
        (m.get_mut(key).and_then(Value::as_array_mut), old.get(key).and_then(Value::as_array))
    else {
        return;
    };
    for (new_c, old_c) in new_list.iter_mut().zip(old_list) {
        if let (Some(new_c), Some(image)) = (new_c.as_object_mut(), old_c.get("image")) {
            new_c.insert("image".to_string(), image.clone());
        }
    }
}

fn check_deadline_update(s: &mut Sink, new: Option<&Value>, old: Option<&Value>) {
    let path = "spec.activeDeadlineSeconds";
    let (new, old) = (new.and_then(Value::as_i64), old.and_then(Value::as_i64));
    match (new, old) {
        (None, Some(_)) => s.invalid(path, "null".to_string(), "must not update from a positive integer to nil value"),
        (Some(n), Some(o)) if n > o => s.invalid(path, n.to_string(), "must be less than or equal to previous value"),
        _ => {}
    }
}

/// Every old toleration must still be there, changed at most in its `tolerationSeconds`.
fn tolerations_only_added(new: Option<&Value>, old: Option<&Value>) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new: Vec<Value> = new.and_then(Value::as_array).into_iter().flatten().map(strip).collect();
    old.and_then(Value::as_array).into_iter().flatten().all(|t| new.contains(&strip(t)))
}

fn gates_only_removed(new: Option<&Value>, old: Option<&Value>) -> bool {
    let old: Vec<&Value> = old.and_then(Value::as_array).into_iter().flatten().collect();
    new.and_then(Value::as_array).into_iter().flatten().all(|g| old.contains(&g))
}

// ---------------------------------------------------------------------------------------------
// Workloads.

/// The checks shared by Deployments, ReplicaSets, StatefulSets and DaemonSets: a non-empty label
/// selector that the template's labels satisfy, and a template whose pods restart always.
fn validate_workload_spec(s: &mut Sink, spec: &Obj, old_spec: Option<&Obj>) {
    let path = "spec";
    non_negative(s, spec, "replicas", path);
    non_negative(s, spec, "minReadySeconds", path);
    let selector_path = "spec.selector";
    let selector = match obj_at(s, spec.get("selector"), selector_path) {
        Some(sel) => {
            let empty = sel.get("matchLabels").and_then(Value::as_object).is_none_or(Obj::is_empty)
                && sel.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty);
            if empty {
                s.invalid(
                    selector_path,
                    render(&Value::Object(sel.clone())),
                    "empty selector is invalid for deployment",
                );
            }
            validate_label_selector(s, sel, selector_path);
            Some(sel)
        }
        None => {
            if !is_set(spec.get("selector")) {
                s.required(selector_path, "");
            }
            None
        }
    };
    let template_labels = validate_pod_template_spec(s, spec.get("template"), "spec.template");
    if let (Some(sel), Some(labels)) = (selector, &template_labels) {
        if !selector_matches(sel, labels) {
            s.invalid(
                "spec.template.metadata.labels",
                go_string_map(labels),
                "`selector` does not match template `labels`",
            );
        }
    }
    if template_labels.is_some() {
        check_template_restart(s, spec, &["Always"]);
        if spec.get("template").and_then(|t| t.get("spec")).is_some_and(|t| is_set(t.get("activeDeadlineSeconds"))) {
            s.forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            );
        }
    }
    if let Some(old_selector) = old_spec.and_then(|o| o.get("selector")) {
        let new_selector = spec.get("selector").unwrap_or(&Value::Null);
        if new_selector != old_selector {
            s.invalid(selector_path, render(new_selector), IMMUTABLE_MSG);
        }
    }
}

fn check_template_restart(s: &mut Sink, spec: &Obj, allowed: &[&str]) {
    let policy = spec
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(|t| t.get("restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !policy.is_empty() && !allowed.contains(&policy) {
        s.not_supported("spec.template.spec.restartPolicy", policy, allowed);
    }
}

fn validate_label_selector(s: &mut Sink, sel: &Obj, path: &str) {
    validate_labels(s, sel.get("matchLabels"), &child(path, "matchLabels"));
    for (p, expr) in objs_at(s, sel.get("matchExpressions"), &child(path, "matchExpressions")) {
        let key = text(s, expr, "key", &p);
        s.each_invalid(&child(&p, "key"), key, names::qualified_name(key));
        let values = strings_at(s, expr.get("values"), &child(&p, "values"));
        match text(s, expr, "operator", &p) {
            "In" | "NotIn" if values.is_empty() => {
                s.required(&child(&p, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                s.forbidden(&child(&p, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => s.not_supported(&child(&p, "operator"), other, &["DoesNotExist", "Exists", "In", "NotIn"]),
        }
        for (vp, value) in values {
            s.each_invalid(&vp, value, names::label_value(value));
        }
    }
}

fn selector_matches(sel: &Obj, labels: &Obj) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = sel.get("matchLabels").and_then(Value::as_object).into_iter().flatten();
    let labels_ok = match_labels.into_iter().all(|(k, v)| label(k) == v.as_str());
    let exprs = sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten();
    labels_ok
        && exprs.into_iter().all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> =
                e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
}

fn spec_and_old<'a>(s: &mut Sink, root: &'a Obj, old: Option<&'a Obj>) -> Option<(&'a Obj, Option<&'a Obj>)> {
    let old_spec = old.and_then(|o| o.get("spec")).and_then(Value::as_object);
    match obj_at(s, root.get("spec"), "spec") {
        Some(spec) => Some((spec, old_spec)),
        None => {
            s.required("spec", "");
            None
        }
    }
}

fn validate_deployment(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let Some((spec, old_spec)) = spec_and_old(s, root, old) else { return };
    validate_workload_spec(s, spec, old_spec);
    non_negative(s, spec, "revisionHistoryLimit", "spec");
    validate_strategy(s, spec.get("strategy"), "spec.strategy");
    let min_ready = int(s, spec, "minReadySeconds", "spec").unwrap_or(0);
    if let Some(deadline) = int(s, spec, "progressDeadlineSeconds", "spec") {
        if deadline < 0 {
            s.invalid("spec.progressDeadlineSeconds", deadline.to_string(), NON_NEGATIVE_MSG);
        } else if deadline <= min_ready {
            s.invalid("spec.progressDeadlineSeconds", deadline.to_string(), "must be greater than minReadySeconds");
        }
    }
}

fn validate_strategy(s: &mut Sink, v: Option<&Value>, path: &str) {
    let Some(strategy) = obj_at(s, v, path) else { return };
    let kind = text(s, strategy, "type", path);
    check_enum(s, &child(path, "type"), kind, &["Recreate", "RollingUpdate"]);
    let rolling_path = child(path, "rollingUpdate");
    let Some(rolling) = obj_at(s, strategy.get("rollingUpdate"), &rolling_path) else { return };
    if kind == "Recreate" {
        s.forbidden(&rolling_path, "may not be specified when strategy `type` is 'Recreate'");
        return;
    }
    let surge = int_or_percent(s, rolling.get("maxSurge"), &child(&rolling_path, "maxSurge"));
    let unavailable_path = child(&rolling_path, "maxUnavailable");
    let unavailable = int_or_percent(s, rolling.get("maxUnavailable"), &unavailable_path);
    if let Some(IntOrPercent::Percent(p)) = unavailable {
        if p > 100 {
            s.invalid_str(&unavailable_path, &format!("{p}%"), "must not be greater than 100%");
        }
    }
    if surge.as_ref().is_some_and(IntOrPercent::is_zero) && unavailable.as_ref().is_some_and(IntOrPercent::is_zero) {
        let shown = rolling.get("maxUnavailable").map(render).unwrap_or_default();
        s.invalid(&unavailable_path, shown, "may not be 0 when `maxSurge` is 0");
    }
}

enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    fn is_zero(&self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }
}

fn int_or_percent(s: &mut Sink, v: Option<&Value>, path: &str) -> Option<IntOrPercent> {
    let parsed = match v? {
        Value::Null => return None,
        Value::Number(n) => n.as_i64().map(IntOrPercent::Int),
        Value::String(text) => text
            .strip_suffix('%')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok().map(IntOrPercent::Percent)),
        _ => None,
    };
    match parsed {
        Some(IntOrPercent::Int(n)) if n < 0 => {
            s.invalid(path, n.to_string(), NON_NEGATIVE_MSG);
            None
        }
        Some(value) => Some(value),
        None => {
            s.invalid(path, v.map(render).unwrap_or_default(), "must be an integer or percentage (e.g '5%')");
            None
        }
    }
}

fn validate_replica_set(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let Some((spec, old_spec)) = spec_and_old(s, root, old) else { return };
    validate_workload_spec(s, spec, old_spec);
}

fn validate_simple_workload(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let Some((spec, old_spec)) = spec_and_old(s, root, old) else { return };
    validate_workload_spec(s, spec, old_spec);
    non_negative(s, spec, "revisionHistoryLimit", "spec");
}

/// ReplicationControllers select with a plain label map, not a LabelSelector.
fn validate_replication_controller(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let Some((spec, _)) = spec_and_old(s, root, old) else { return };
    non_negative(s, spec, "replicas", "spec");
    non_negative(s, spec, "minReadySeconds", "spec");
    let selector: Vec<(&str, &str)> = str_map_at(s, spec.get("selector"), "spec.selector");
    if selector.is_empty() {
        s.required("spec.selector", "");
    }
    validate_labels(s, spec.get("selector"), "spec.selector");
    if let Some(labels) = validate_pod_template_spec(s, spec.get("template"), "spec.template") {
        if !selector.iter().all(|(k, v)| labels.get(*k).and_then(Value::as_str) == Some(v)) {
            s.invalid(
                "spec.template.metadata.labels",
                go_string_map(&labels),
                "`selector` does not match template `labels`",
            );
        }
        check_template_restart(s, spec, &["Always"]);
    }
}

fn validate_job(s: &mut Sink, root: &Obj) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else {
        s.required("spec", "");
        return;
    };
    validate_job_spec(s, spec, "spec");
}

fn validate_job_spec(s: &mut Sink, spec: &Obj, path: &str) {
    for key in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        non_negative(s, spec, key, path);
    }
    let template_path = child(path, "template");
    validate_pod_template_spec(s, spec.get("template"), &template_path);
    let policy = spec
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(|t| t.get("restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !policy.is_empty() && !["OnFailure", "Never"].contains(&policy) {
        s.not_supported(&child(&child(&template_path, "spec"), "restartPolicy"), policy, &["OnFailure", "Never"]);
    }
}

fn validate_cron_job(s: &mut Sink, root: &Obj) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else {
        s.required("spec", "");
        return;
    };
    if text(s, spec, "schedule", "spec").is_empty() {
        s.required("spec.schedule", "");
    }
    let policy = text(s, spec, "concurrencyPolicy", "spec");
    check_optional_enum(s, "spec.concurrencyPolicy", policy, &["Allow", "Forbid", "Replace"]);
    for key in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        non_negative(s, spec, key, "spec");
    }
    let job_template = "spec.jobTemplate";
    if let Some(template) = obj_at(s, spec.get("jobTemplate"), job_template) {
        if let Some(job) = obj_at(s, template.get("spec"), &child(job_template, "spec")) {
            validate_job_spec(s, job, &child(job_template, "spec"));
        }
    } else {
        s.required(job_template, "");
    }
}

// ---------------------------------------------------------------------------------------------
// Services and endpoints.

fn validate_service(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else {
        s.required("spec", "");
        return;
    };
    let path = "spec";
    let kind = text(s, spec, "type", path);
    check_enum(s, "spec.type", kind, &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]);
    let cluster_ip = text(s, spec, "clusterIP", path);
    let headless = cluster_ip == "None";
    let ports = objs_at(s, spec.get("ports"), "spec.ports");
    if ports.is_empty() && kind != "ExternalName" && !headless && !has_wrong_type(spec.get("ports"), Value::is_array) {
        s.required("spec.ports", "");
    }
    validate_service_ports(s, &ports, kind);
    if kind == "ExternalName" {
        let external = text(s, spec, "externalName", path);
        if external.is_empty() {
            s.required("spec.externalName", "");
        } else {
            let trimmed = external.strip_suffix('.').unwrap_or(external);
            s.each_invalid("spec.externalName", external, names::dns1123_subdomain(trimmed));
        }
    }
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        s.invalid_str("spec.clusterIPs[0]", cluster_ip, IP_MSG);
    }
    for (p, ip) in strings_at(s, spec.get("externalIPs"), "spec.externalIPs") {
        if ip.parse::<IpAddr>().is_err() {
            s.invalid_str(&p, ip, IP_MSG);
        }
    }
    validate_labels(s, spec.get("selector"), "spec.selector");
    let affinity = text(s, spec, "sessionAffinity", path);
    check_enum(s, "spec.sessionAffinity", affinity, &["ClientIP", "None"]);
    if affinity == "ClientIP" {
        let timeout =
            spec.get("sessionAffinityConfig").and_then(|c| c.get("clientIP")).and_then(|c| c.get("timeoutSeconds"));
        let timeout_path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
        if let Some(t) = int_at(s, timeout, timeout_path) {
            if !(1..=86400).contains(&t) {
                s.invalid(timeout_path, t.to_string(), "must be greater than 0 and less than 86400");
            }
        }
    }
    let external_policy = text(s, spec, "externalTrafficPolicy", path);
    check_optional_enum(s, "spec.externalTrafficPolicy", external_policy, &["Cluster", "Local"]);
    let internal_policy = text(s, spec, "internalTrafficPolicy", path);
    check_optional_enum(s, "spec.internalTrafficPolicy", internal_policy, &["Cluster", "Local"]);
    if let Some(old_spec) = old.and_then(|o| o.get("spec")).and_then(Value::as_object) {
        validate_cluster_ip_update(s, spec, old_spec);
    }
}

fn validate_service_ports(s: &mut Sink, ports: &[(String, &Obj)], kind: &str) {
    let mut port_names = HashSet::new();
    let mut port_keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (p, port) in ports {
        let name = text(s, port, "name", p);
        let name_path = child(p, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                s.required(&name_path, "");
            }
        } else {
            s.each_invalid(&name_path, name, names::dns1123_label(name));
            if !port_names.insert(name.to_string()) {
                s.duplicate(&name_path, quote(name));
            }
        }
        let number = int(s, port, "port", p);
        match number {
            None if !is_set(port.get("port")) => s.required(&child(p, "port"), ""),
            Some(n) if !(1..=65535).contains(&n) => s.invalid(&child(p, "port"), n.to_string(), PORT_RANGE_MSG),
            _ => {}
        }
        let protocol = text(s, port, "protocol", p);
        check_enum(s, &child(p, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
        if let Some(n) = number {
            if !port_keys.insert((n, protocol.to_string())) {
                s.duplicate(p, quote(&format!("{n}/{protocol}")));
            }
        }
        if is_set(port.get("targetPort")) {
            validate_int_or_port_name(s, port.get("targetPort"), &child(p, "targetPort"));
        }
        if let Some(node_port) = int(s, port, "nodePort", p).filter(|n| *n != 0) {
            let node_path = child(p, "nodePort");
            if !matches!(kind, "NodePort" | "LoadBalancer") {
                s.forbidden(&node_path, &format!("may not be used when `type` is '{kind}'"));
            } else if !(1..=65535).contains(&node_port) {
                s.invalid(&node_path, node_port.to_string(), PORT_RANGE_MSG);
            } else if !node_ports.insert((node_port, protocol.to_string())) {
                s.duplicate(&node_path, node_port.to_string());
            }
        }
    }
}

/// A cluster IP, once allocated, is the Service's for life; only turning the Service into (or out
/// of) an ExternalName one releases it. An update that leaves `clusterIP` empty keeps the old one,
/// as upstream's update strategy copies it over before validating.
fn validate_cluster_ip_update(s: &mut Sink, spec: &Obj, old_spec: &Obj) {
    let new_type = spec.get("type").and_then(Value::as_str).unwrap_or("");
    let old_type = old_spec.get("type").and_then(Value::as_str).unwrap_or("");
    if new_type == "ExternalName" || old_type == "ExternalName" {
        return;
    }
    let old_ip = old_spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    let new_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
        let shown = match spec.get("clusterIPs").and_then(Value::as_array) {
            Some(ips) => {
                let items = ips.iter().map(render).collect::<Vec<_>>().join(", ");
                format!("[]string{{{items}}}")
            }
            None => format!("[]string{{{}}}", quote(new_ip)),
        };
        s.invalid("spec.clusterIPs[0]", shown, "may not change once set");
    }
}

fn validate_endpoints(s: &mut Sink, root: &Obj) {
    for (p, subset) in objs_at(s, root.get("subsets"), "subsets") {
        for key in ["addresses", "notReadyAddresses"] {
            for (ap, address) in objs_at(s, subset.get(key), &child(&p, key)) {
                let ip = text(s, address, "ip", &ap);
                if ip.parse::<IpAddr>().is_err() {
                    s.invalid_str(&child(&ap, "ip"), ip, IP_MSG);
                }
                let hostname = text(s, address, "hostname", &ap);
                if !hostname.is_empty() {
                    s.each_invalid(&child(&ap, "hostname"), hostname, names::dns1123_label(hostname));
                }
            }
        }
        let ports = objs_at(s, subset.get("ports"), &child(&p, "ports"));
        let mut port_names = HashSet::new();
        for (pp, port) in &ports {
            let name = text(s, port, "name", pp);
            if !name.is_empty() {
                s.each_invalid(&child(pp, "name"), name, names::dns1123_label(name));
                if !port_names.insert(name.to_string()) {
                    s.duplicate(&child(pp, "name"), quote(name));
                }
            } else if ports.len() > 1 {
                s.required(&child(pp, "name"), "");
            }
            match int(s, port, "port", pp) {
                Some(n) if (1..=65535).contains(&n) => {}
                Some(n) => s.invalid(&child(pp, "port"), n.to_string(), PORT_RANGE_MSG),
                None => s.invalid(&child(pp, "port"), "0".to_string(), PORT_RANGE_MSG),
            }
            let protocol = text(s, port, "protocol", pp);
            check_enum(s, &child(pp, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
        }
    }
}

fn validate_endpoint_slice(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let family = text(s, root, "addressType", "");
    check_enum(s, "addressType", family, &["FQDN", "IPv4", "IPv6"]);
    let endpoints = objs_at(s, root.get("endpoints"), "endpoints");
    if endpoints.len() > 1000 {
        s.too_many("endpoints", endpoints.len(), 1000);
    }
    for (p, endpoint) in endpoints {
        let addresses = strings_at(s, endpoint.get("addresses"), &child(&p, "addresses"));
        if addresses.is_empty() {
            s.required(&child(&p, "addresses"), "must contain at least 1 address");
        } else if addresses.len() > 100 {
            s.too_many(&child(&p, "addresses"), addresses.len(), 100);
        }
        for (ap, address) in addresses {
            let problems: Vec<String> = match (family, address.parse::<IpAddr>()) {
                ("IPv4", Ok(IpAddr::V4(_))) | ("IPv6", Ok(IpAddr::V6(_))) => Vec::new(),
                ("IPv4", _) => vec!["must be a valid IPv4 address".to_string()],
                ("IPv6", _) => vec!["must be a valid IPv6 address".to_string()],
                ("FQDN", _) => names::dns1123_subdomain(address),
                _ => Vec::new(),
            };
            s.each_invalid(&ap, address, problems);
        }
        let hostname = text(s, endpoint, "hostname", &p);
        if !hostname.is_empty() {
            s.each_invalid(&child(&p, "hostname"), hostname, names::dns1123_label(hostname));
        }
    }
    let mut port_names = HashSet::new();
    for (p, port) in objs_at(s, root.get("ports"), "ports") {
        let name = text(s, port, "name", &p);
        if !name.is_empty() {
            s.each_invalid(&child(&p, "name"), name, names::dns1123_label(name));
        }
        if !port_names.insert(name.to_string()) {
            s.duplicate(&child(&p, "name"), quote(name));
        }
        if let Some(n) = int(s, port, "port", &p) {
            if !(1..=65535).contains(&n) {
                s.invalid(&child(&p, "port"), n.to_string(), PORT_RANGE_MSG);
            }
        }
        let protocol = text(s, port, "protocol", &p);
        check_optional_enum(s, &child(&p, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
    }
    if let Some(old_family) = old.and_then(|o| o.get("addressType")).and_then(Value::as_str) {
        if old_family != family {
            s.invalid_str("addressType", family, IMMUTABLE_MSG);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ConfigMaps and Secrets.

/// Keys become file names when mounted, hence the file-name-safe alphabet and the ban on dot-dirs.
fn config_key_problems(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > MAX_CONFIG_KEY_LEN {
        out.push(format!("must be no more than {MAX_CONFIG_KEY_LEN} characters"));
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        out.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  \
             or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    match key {
        "." => out.push("must not be '.'".to_string()),
        ".." => out.push("must not be '..'".to_string()),
        _ if key.starts_with("..") => out.push("must not start with '..'".to_string()),
        _ => {}
    }
    out
}

/// Checks the keys of a data map and decodes its values (base64 when `encoded`); returns the keys
/// and the total size of the values in bytes.
fn data_entries(s: &mut Sink, v: Option<&Value>, path: &str, encoded: bool) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut size = 0;
    let Some(m) = obj_at(s, v, path) else { return (keys, size) };
    for (key, value) in m {
        let p = keyed(path, key);
        s.each_invalid(&p, key, config_key_problems(key));
        keys.push(key.clone());
        let Some(text) = str_at(s, Some(value), &p) else { continue };
        if encoded {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => size += bytes.len(),
                Err(err) => s.invalid(&p, "\"<value omitted>\"".to_string(), &format!("illegal base64 data: {err}")),
            }
        } else {
            size += text.len();
        }
    }
    (keys, size)
}

fn validate_config_map(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let (data_keys, data_size) = data_entries(s, root.get("data"), "data", false);
    let (binary_keys, binary_size) = data_entries(s, root.get("binaryData"), "binaryData", true);
    for key in data_keys.iter().filter(|k| binary_keys.contains(k)) {
        s.invalid_str(&keyed("data", key), key, "duplicate of key present in binaryData");
    }
    if data_size + binary_size > MAX_CONFIG_SIZE {
        s.too_long("[]", MAX_CONFIG_SIZE);
    }
    bool_at(s, root.get("immutable"), "immutable");
    if let Some(old) = old {
        validate_immutable_data(s, root, old, &["data", "binaryData"]);
    }
}

/// Once `immutable: true` is stored, the payload is frozen and the flag itself cannot be cleared.
fn validate_immutable_data(s: &mut Sink, new: &Obj, old: &Obj, payload: &[&str]) {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if new.get("immutable") != Some(&Value::Bool(true)) {
        s.forbidden("immutable", IMMUTABLE_WHEN_SET_MSG);
    }
    let normalized = |m: &Obj, key: &str| match m.get(key) {
        None | Some(Value::Null) => Value::Object(Obj::new()),
        Some(v) => v.clone(),
    };
    for key in payload {
        if normalized(new, key) != normalized(old, key) {
            s.forbidden(key, IMMUTABLE_WHEN_SET_MSG);
        }
    }
}

fn validate_secret(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let (keys, size) = data_entries(s, root.get("data"), "data", true);
    if size > MAX_CONFIG_SIZE {
        s.too_long("data", MAX_CONFIG_SIZE);
    }
    let kind = text(s, root, "type", "");
    let require_key = |s: &mut Sink, key: &str| {
        if !keys.iter().any(|k| k == key) {
            s.required(&keyed("data", key), "");
        }
    };
    match kind {
        "kubernetes.io/service-account-token" => {
            let annotation = "kubernetes.io/service-account.name";
            let name = root
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(annotation))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                s.required(&keyed("metadata.annotations", annotation), "");
            }
        }
        "kubernetes.io/dockercfg" => {
            require_key(s, ".dockercfg");
            check_json_key(s, root, ".dockercfg");
        }
        "kubernetes.io/dockerconfigjson" => {
            require_key(s, ".dockerconfigjson");
            check_json_key(s, root, ".dockerconfigjson");
        }
        "kubernetes.io/basic-auth" if !keys.iter().any(|k| k == "username" || k == "password") => {
            s.required(&keyed("data", "username"), "");
            s.required(&keyed("data", "password"), "");
        }
        "kubernetes.io/ssh-auth" => require_key(s, "ssh-privatekey"),
        "kubernetes.io/tls" => {
            require_key(s, "tls.crt");
            require_key(s, "tls.key");
        }
        _ => {}
    }
    bool_at(s, root.get("immutable"), "immutable");
    if let Some(old) = old {
        let old_kind = old.get("type").and_then(Value::as_str).unwrap_or("");
        if old_kind != kind {
            s.invalid_str("type", kind, IMMUTABLE_MSG);
        }
        validate_immutable_data(s, root, old, &["data"]);
    }
}

/// Docker config secrets must hold JSON, or kubelets fail to pull with them much later.
fn check_json_key(s: &mut Sink, root: &Obj, key: &str) {
    let Some(encoded) = root.get("data").and_then(|d| d.get(key)).and_then(Value::as_str) else { return };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return };
    if let Err(err) = serde_json::from_slice::<Value>(&bytes) {
        s.invalid(&keyed("data", key), "\"<secret contents redacted>\"".to_string(), &err.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster objects.

fn validate_namespace(s: &mut Sink, root: &Obj) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else { return };
    for (_, finalizer) in strings_at(s, spec.get("finalizers"), "spec.finalizers") {
        s.each_invalid("spec.finalizers", finalizer, names::qualified_name(finalizer));
    }
}

fn validate_node(s: &mut Sink, root: &Obj, old: Option<&Obj>) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else { return };
    let cidr = text(s, spec, "podCIDR", "spec");
    if !cidr.is_empty() && !is_cidr(cidr) {
        s.invalid_str("spec.podCIDR", cidr, CIDR_MSG);
    }
    let cidrs = strings_at(s, spec.get("podCIDRs"), "spec.podCIDRs");
    if cidrs.len() > 2 {
        s.too_many("spec.podCIDRs", cidrs.len(), 2);
    }
    for (p, c) in &cidrs {
        if !is_cidr(c) {
            s.invalid_str(p, c, CIDR_MSG);
        }
    }
    let mut seen = HashSet::new();
    for (p, taint) in objs_at(s, spec.get("taints"), "spec.taints") {
        let key = text(s, taint, "key", &p);
        if key.is_empty() {
            s.required(&child(&p, "key"), "");
        } else {
            s.each_invalid(&child(&p, "key"), key, names::qualified_name(key));
        }
        let value = text(s, taint, "value", &p);
        s.each_invalid(&child(&p, "value"), value, names::label_value(value));
        let effect = text(s, taint, "effect", &p);
        check_enum(s, &child(&p, "effect"), effect, &["NoExecute", "NoSchedule", "PreferNoSchedule"]);
        if !seen.insert((key.to_string(), effect.to_string())) {
            s.duplicate(&p, quote(&format!("{key}:{effect}")));
        }
    }
    let old_cidrs = old.and_then(|o| o.get("spec")).and_then(|sp| sp.get("podCIDRs")).and_then(Value::as_array);
    if let Some(old_cidrs) = old_cidrs.filter(|c| !c.is_empty()) {
        if spec.get("podCIDRs").and_then(Value::as_array) != Some(old_cidrs) {
            s.forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid");
        }
    }
}

fn is_cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else { return false };
    let Ok(ip) = ip.parse::<IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

fn validate_service_account(s: &mut Sink, root: &Obj) {
    for key in ["secrets", "imagePullSecrets"] {
        for (p, reference) in objs_at(s, root.get(key), key) {
            text(s, reference, "name", &p);
        }
    }
    bool_at(s, root.get("automountServiceAccountToken"), "automountServiceAccountToken");
}

fn validate_lease(s: &mut Sink, root: &Obj) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else { return };
    if let Some(duration) = int(s, spec, "leaseDurationSeconds", "spec") {
        if duration <= 0 {
            s.invalid("spec.leaseDurationSeconds", duration.to_string(), "must be greater than 0");
        }
    }
    non_negative(s, spec, "leaseTransitions", "spec");
    text(s, spec, "holderIdentity", "spec");
}

fn validate_core_event(s: &mut Sink, root: &Obj) {
    let namespace = root.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("");
    if let Some(involved) = obj_at(s, root.get("involvedObject"), "involvedObject") {
        let involved_ns = text(s, involved, "namespace", "involvedObject");
        if !involved_ns.is_empty() && involved_ns != namespace {
            s.invalid_str("involvedObject.namespace", involved_ns, "does not match event.namespace");
        }
    }
    let reason = text(s, root, "reason", "");
    if reason.len() > 128 {
        s.too_long("reason", 128);
    }
    non_negative(s, root, "count", "");
    // Events written by the newer events API carry a reporting controller and its stricter fields.
    let controller = text(s, root, "reportingComponent", "");
    if !controller.is_empty() {
        s.each_invalid("reportingComponent", controller, names::qualified_name(controller));
        let kind = text(s, root, "type", "");
        check_optional_enum(s, "type", kind, &["Normal", "Warning"]);
        let action = text(s, root, "action", "");
        if action.len() > 128 {
            s.too_long("action", 128);
        }
    }
}

fn validate_events_event(s: &mut Sink, root: &Obj) {
    if !is_set(root.get("eventTime")) {
        s.required("eventTime", "");
    }
    let kind = text(s, root, "type", "");
    check_enum(s, "type", kind, &["Normal", "Warning"]);
    let controller = text(s, root, "reportingController", "");
    if controller.is_empty() {
        s.required("reportingController", "");
    } else {
        s.each_invalid("reportingController", controller, names::qualified_name(controller));
    }
    for (key, max) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let value = text(s, root, key, "");
        if value.is_empty() {
            s.required(key, "");
        } else if value.len() > max {
            s.too_long(key, max);
        }
    }
    let note = text(s, root, "note", "");
    if note.len() > 1024 {
        s.too_long("note", 1024);
    }
    let namespace = root.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("");
    if let Some(regarding) = obj_at(s, root.get("regarding"), "regarding") {
        let regarding_ns = text(s, regarding, "namespace", "regarding");
        if !regarding_ns.is_empty() && regarding_ns != namespace {
            s.invalid_str("regarding.namespace", regarding_ns, "does not match event.namespace");
        }
    }
}

fn validate_resource_quota(s: &mut Sink, root: &Obj) {
    if let Some(spec) = obj_at(s, root.get("spec"), "spec") {
        quantities(s, spec.get("hard"), "spec.hard", false);
        for (p, scope) in strings_at(s, spec.get("scopes"), "spec.scopes") {
            const SCOPES: &[&str] = &[
                "BestEffort",
                "CrossNamespacePodAffinity",
                "NotBestEffort",
                "NotTerminating",
                "PriorityClass",
                "Terminating",
            ];
            if !SCOPES.contains(&scope) {
                s.not_supported(&p, scope, SCOPES);
            }
        }
    }
    if let Some(status) = obj_at(s, root.get("status"), "status") {
        quantities(s, status.get("hard"), "status.hard", false);
        quantities(s, status.get("used"), "status.used", false);
    }
}

fn validate_limit_range(s: &mut Sink, root: &Obj) {
    let Some(spec) = obj_at(s, root.get("spec"), "spec") else {
        s.required("spec", "");
        return;
    };
    for (p, item) in objs_at(s, spec.get("limits"), "spec.limits") {
        let kind = text(s, item, "type", &p);
        check_enum(s, &child(&p, "type"), kind, &["Container", "PersistentVolumeClaim", "Pod"]);
        let mut lists = BTreeMap::new();
        for key in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
            lists.insert(key, quantities(s, item.get(key), &child(&p, key), false));
        }
        let (Some(max), Some(min)) = (lists.get("max"), lists.get("min")) else { continue };
        for (name, (min_raw, min_value)) in min {
            if let Some((max_raw, max_value)) = max.get(name) {
                if min_value > max_value {
                    s.invalid_str(
                        &keyed(&child(&p, "min"), name),
                        min_raw,
                        &format!("min value {min_raw} is greater than max value {max_raw}"),
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC.

fn validate_role(s: &mut Sink, root: &Obj, cluster: bool) {
    let aggregated = cluster && is_set(root.get("aggregationRule"));
    if aggregated {
        if let Some(rule) = obj_at(s, root.get("aggregationRule"), "aggregationRule") {
            let selectors = objs_at(s, rule.get("clusterRoleSelectors"), "aggregationRule.clusterRoleSelectors");
            if selectors.is_empty() {
                s.required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                );
            }
            for (p, sel) in selectors {
                validate_label_selector(s, sel, &p);
            }
        }
    }
    for (p, rule) in objs_at(s, root.get("rules"), "rules") {
        validate_policy_rule(s, rule, &p, cluster);
    }
}

fn validate_policy_rule(s: &mut Sink, rule: &Obj, path: &str, cluster: bool) {
    let verbs = strings_at(s, rule.get("verbs"), &child(path, "verbs"));
    if verbs.is_empty() {
        s.required(&child(path, "verbs"), "verbs must contain at least one value");
    }
    let urls = strings_at(s, rule.get("nonResourceURLs"), &child(path, "nonResourceURLs"));
    let groups = strings_at(s, rule.get("apiGroups"), &child(path, "apiGroups"));
    let resources = strings_at(s, rule.get("resources"), &child(path, "resources"));
    if !urls.is_empty() {
        let shown = format!("[]string{{{}}}", urls.iter().map(|(_, u)| quote(u)).collect::<Vec<_>>().join(", "));
        if !cluster {
            s.invalid(&child(path, "nonResourceURLs"), shown, "namespaced rules cannot apply to non-resource URLs");
        } else if !groups.is_empty() || !resources.is_empty() {
            s.invalid(
                &child(path, "nonResourceURLs"),
                shown,
                "rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        return;
    }
    if groups.is_empty() {
        s.required(&child(path, "apiGroups"), "resource rules must supply at least one api group");
    }
    if resources.is_empty() {
        s.required(&child(path, "resources"), "resource rules must supply at least one resource");
    }
}

fn validate_role_binding(s: &mut Sink, root: &Obj, old: Option<&Obj>, cluster: bool) {
    match obj_at(s, root.get("roleRef"), "roleRef") {
        Some(role_ref) => {
            let group = text(s, role_ref, "apiGroup", "roleRef");
            if group != RBAC_GROUP {
                s.not_supported("roleRef.apiGroup", group, &[RBAC_GROUP]);
            }
            let kind = text(s, role_ref, "kind", "roleRef");
            let kinds: &[&str] = if cluster { &["ClusterRole"] } else { &["ClusterRole", "Role"] };
            if !kinds.contains(&kind) {
                s.not_supported("roleRef.kind", kind, kinds);
            }
            let name = text(s, role_ref, "name", "roleRef");
            if name.is_empty() {
                s.required("roleRef.name", "");
            } else {
                s.each_invalid("roleRef.name", name, path_segment_problems(name));
            }
        }
        None => s.required("roleRef", ""),
    }
    for (p, subject) in objs_at(s, root.get("subjects"), "subjects") {
        validate_subject(s, subject, &p, cluster);
    }
    if let Some(old_ref) = old.and_then(|o| o.get("roleRef")) {
        let new_ref = root.get("roleRef").unwrap_or(&Value::Null);
        if new_ref != old_ref {
            s.invalid("roleRef", render(new_ref), "cannot change roleRef");
        }
    }
}

fn validate_subject(s: &mut Sink, subject: &Obj, path: &str, cluster: bool) {
    let name = text(s, subject, "name", path);
    if name.is_empty() {
        s.required(&child(path, "name"), "");
    }
    let group = text(s, subject, "apiGroup", path);
    match text(s, subject, "kind", path) {
        "ServiceAccount" => {
            if !name.is_empty() {
                s.each_invalid(&child(path, "name"), name, names::dns1123_subdomain(name));
            }
            if !group.is_empty() {
                s.not_supported(&child(path, "apiGroup"), group, &[""]);
            }
            if cluster && text(s, subject, "namespace", path).is_empty() {
                s.required(&child(path, "namespace"), "");
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                s.not_supported(&child(path, "apiGroup"), group, &[RBAC_GROUP]);
            }
        }
        other => s.not_supported(&child(path, "kind"), other, &["Group", "ServiceAccount", "User"]),
    }
}

// ---------------------------------------------------------------------------------------------
// Quantities.

/// Parses a Kubernetes quantity ("100m", "1Gi", "2", "1e3", "0.5") into milli-units, rounding any
/// finer fraction up as upstream's `MilliValue` does. Values too large for `i128` saturate.
pub fn parse_quantity(s: &str) -> Result<i128, String> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(QUANTITY_REGEX_MSG.to_string());
    }
    if !suffix.bytes().all(|b| b"eEinumkKMGTP+-0123456789".contains(&b)) {
        return Err(QUANTITY_REGEX_MSG.to_string());
    }
    let (exp10, exp2) = parse_suffix(suffix).ok_or_else(|| "unable to parse quantity's suffix".to_string())?;
    let digits = format!("{whole}{fraction}");
    let mantissa = digits.bytes().try_fold(0i128, |acc, d| acc.checked_mul(10)?.checked_add(i128::from(d - b'0')));
    let Some(mantissa) = mantissa else { return Ok(saturate(negative)) };
    // Milli-units: three more decimal places, less those the fraction already took.
    let scale = exp10 + 3 - i64::try_from(fraction.len()).unwrap_or(i64::MAX);
    // Binary suffixes go up to 2^60, so the shift cannot overflow.
    let Some(scaled) = mantissa.checked_mul(1i128 << exp2) else { return Ok(saturate(negative)) };
    let magnitude = if scale >= 0 {
        match u32::try_from(scale).ok().and_then(|e| 10i128.checked_pow(e)).and_then(|p| scaled.checked_mul(p)) {
            Some(v) => v,
            None if scaled == 0 => 0,
            None => return Ok(saturate(negative)),
        }
    } else {
        match u32::try_from(-scale).ok().and_then(|e| 10i128.checked_pow(e)) {
            // Rounds away from zero, so a tiny positive request never becomes zero.
            Some(divisor) => (scaled + divisor - 1) / divisor,
            None => i128::from(scaled != 0),
        }
    };
    Ok(if negative { -magnitude } else { magnitude })
}

fn saturate(negative: bool) -> i128 {
    if negative {
        i128::MIN
    } else {
        i128::MAX
    }
}

/// The power of ten and the power of two a suffix multiplies by.
fn parse_suffix(suffix: &str) -> Option<(i64, u32)> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exp) = decimal {
        return Some((exp, 0));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(exp) = binary {
        return Some((0, exp));
    }
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    exponent.parse::<i64>().ok().filter(|e| e.abs() < 1000).map(|e| (e, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(group: &str, kind: &str, obj: &Value) -> Vec<String> {
        validate(group, kind, obj, None).iter().map(ToString::to_string).collect()
    }

    fn check_update(group: &str, kind: &str, obj: &Value, old: &Value) -> Vec<String> {
        validate(group, kind, obj, Some(old)).iter().map(ToString::to_string).collect()
    }

    fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
        crate::defaults::apply_defaults(group, kind, &mut obj);
        obj
    }

    /// Server-set metadata as the API server adds it before validating.
    fn meta(name: &str) -> Value {
        json!({
            "name": name, "namespace": "default", "uid": "0b6a1f6e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "resourceVersion": "12", "generation": 1, "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"app": "web"}
        })
    }

    fn pod() -> Value {
        defaulted(
            "",
            "Pod",
            json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": meta("web-0"),
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["true"]}],
                    "containers": [{
                        "name": "web", "image": "nginx:1.25",
                        "ports": [{"name": "http", "containerPort": 80}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
                        "livenessProbe": {"httpGet": {"port": "http"}},
                        "readinessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}
                    }],
                    "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "cfg"}}],
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                    "nodeSelector": {"kubernetes.io/os": "linux"}
                }
            }),
        )
    }

    fn deployment() -> Value {
        defaulted(
            "apps",
            "Deployment",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
                "spec": {
                    "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
                    }
                }
            }),
        )
    }

    fn service() -> Value {
        defaulted(
            "",
            "Service",
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": meta("web"),
                "spec": {
                    "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]
                }
            }),
        )
    }

    /// Sets the field `pointer` names, adding it to its parent object when absent.
    fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer starts with '/'");
        let parent = obj.pointer_mut(parent).and_then(Value::as_object_mut).expect("parent is an object");
        parent.insert(key.to_string(), value);
        obj
    }

    fn without(mut obj: Value, parent: &str, key: &str) -> Value {
        obj.pointer_mut(parent).and_then(Value::as_object_mut).expect("parent is an object").remove(key);
        obj
    }

    #[test]
    fn realistic_defaulted_objects_are_valid() {
        assert_eq!(check("", "Pod", &pod()), Vec::<String>::new());
        assert_eq!(check("apps", "Deployment", &deployment()), Vec::<String>::new());
        assert_eq!(check("", "Service", &service()), Vec::<String>::new());
        let rs = defaulted(
            "apps",
            "ReplicaSet",
            json!({"metadata": meta("web-1"), "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        );
        assert_eq!(check("apps", "ReplicaSet", &rs), Vec::<String>::new());
    }

    #[test]
    fn display_matches_upstream_format() {
        let no_image = without(pod(), "/spec/containers/0", "image");
        assert_eq!(check("", "Pod", &no_image), ["spec.containers[0].image: Required value"]);
        let bad_name = with(pod(), "/metadata/name", json!("Bad_Name"));
        assert_eq!(
            check("", "Pod", &bad_name),
            ["metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case \
              alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
              'example.com', regex used for validation is \
              '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
        );
        let restart = with(pod(), "/spec/restartPolicy", json!("Sometimes"));
        assert_eq!(
            check("", "Pod", &restart),
            ["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\""]
        );
        let err = &validate("", "Pod", &restart, None)[0];
        assert_eq!(err.reason(), "FieldValueNotSupported");
        assert_eq!(err.field, "spec.restartPolicy");
    }

    #[test]
    fn metadata_name_and_namespace() {
        let no_name = without(pod(), "/metadata", "name");
        assert_eq!(check("", "Pod", &no_name), ["metadata.name: Required value: name or generateName is required"]);
        let no_ns = without(pod(), "/metadata", "namespace");
        assert_eq!(check("", "Pod", &no_ns), ["metadata.namespace: Required value"]);
        let bad_ns = with(pod(), "/metadata/namespace", json!("a.b"));
        assert_eq!(check("", "Pod", &bad_ns).len(), 1);
        assert!(check("", "Pod", &bad_ns)[0]
            .starts_with("metadata.namespace: Invalid value: \"a.b\": a lowercase RFC 1123 label"));
        // Services need DNS-1035 labels: no leading digit; Namespaces need DNS-1123 labels: no dots.
        let svc = with(service(), "/metadata/name", json!("1web"));
        assert!(check("", "Service", &svc)[0].contains("a DNS-1035 label"));
        assert_eq!(check("", "Namespace", &json!({"metadata": {"name": "a.b"}})).len(), 1);
        assert_eq!(check("", "Namespace", &json!({"metadata": {"name": "team-a"}})), Vec::<String>::new());
        assert_eq!(
            check("", "Namespace", &json!({"metadata": {"name": "x", "namespace": "default"}})),
            ["metadata.namespace: Forbidden: not allowed on this type"]
        );
        // RBAC names only need to be URL path segments.
        let role = json!({"metadata": {"name": "system:controller:Foo", "namespace": "default"}, "rules": []});
        assert_eq!(check(RBAC_GROUP, "Role", &role), Vec::<String>::new());
        let role = with(role, "/metadata/name", json!("a/b"));
        assert_eq!(check(RBAC_GROUP, "Role", &role), ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]);
        assert_eq!(check("", "Event", &json!({"metadata": {"name": "..", "namespace": "x"}})).len(), 1);
    }

    #[test]
    fn metadata_labels_annotations_finalizers_owners() {
        let labels = with(pod(), "/metadata/labels", json!({"bad key": "v", "ok": "bad value"}));
        let errs = check("", "Pod", &labels);
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|e| e.starts_with("metadata.labels: Invalid value: ")));
        let big = "x".repeat(MAX_ANNOTATIONS_SIZE);
        let annotations = with(pod(), "/metadata/labels", json!({}));
        let mut annotations = annotations;
        annotations["metadata"]["annotations"] = json!({"Example.com/Key": big});
        assert_eq!(
            check("", "Pod", &annotations),
            ["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        let mut fin = pod();
        fin["metadata"]["finalizers"] = json!(["example.com/ok", "bad finalizer"]);
        assert_eq!(check("", "Pod", &fin).len(), 1);
        assert!(check("", "Pod", &fin)[0].starts_with("metadata.finalizers[1]: Invalid value"));
        let mut owners = pod();
        owners["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web"}]);
        assert_eq!(
            check("", "Pod", &owners),
            ["metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"]
        );
    }

    #[test]
    fn name_and_namespace_are_immutable() {
        let renamed = with(pod(), "/metadata/name", json!("web-1"));
        assert_eq!(
            check_update("", "Pod", &renamed, &pod()),
            ["metadata.name: Invalid value: \"web-1\": field is immutable"]
        );
    }

    #[test]
    fn pod_containers() {
        let none = with(pod(), "/spec/containers", json!([]));
        assert_eq!(check("", "Pod", &none), ["spec.containers: Required value"]);
        let dup = with(pod(), "/spec/initContainers/0/name", json!("web"));
        assert_eq!(check("", "Pod", &dup), ["spec.containers[0].name: Duplicate value: \"web\""]);
        let no_init_image = without(pod(), "/spec/initContainers/0", "image");
        assert_eq!(check("", "Pod", &no_init_image), ["spec.initContainers[0].image: Required value"]);
        let pull = with(pod(), "/spec/containers/0/imagePullPolicy", json!("Sometimes"));
        assert_eq!(check("", "Pod", &pull).len(), 1);
        let dns = with(pod(), "/spec/dnsPolicy", json!("Google"));
        assert!(check("", "Pod", &dns)[0].starts_with("spec.dnsPolicy: Unsupported value: \"Google\""));
        let grace = with(pod(), "/spec/terminationGracePeriodSeconds", json!(-1));
        assert_eq!(
            check("", "Pod", &grace),
            ["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn pod_ports() {
        let ports = with(
            pod(),
            "/spec/containers/0/ports",
            json!([
                {"name": "http", "containerPort": 0, "protocol": "TCP"},
                {"name": "http", "containerPort": 81, "hostPort": 70000, "protocol": "ICMP"},
                {"name": "a-very-long-port-name", "containerPort": 82, "protocol": "TCP"}
            ]),
        );
        let errs = check("", "Pod", &ports);
        assert!(errs.contains(
            &"spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"
                .to_string()
        ));
        assert!(errs.contains(&"spec.containers[0].ports[1].name: Duplicate value: \"http\"".to_string()));
        assert!(errs.contains(
            &"spec.containers[0].ports[1].hostPort: Invalid value: 70000: must be between 0 and 65535, inclusive"
                .to_string()
        ));
        assert!(errs.contains(&"spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string()));
        assert!(errs.contains(&"spec.containers[0].ports[2].name: Invalid value: \"a-very-long-port-name\": must be no more than 15 characters".to_string()));
        assert_eq!(errs.len(), 5);
    }

    #[test]
    fn pod_resources() {
        let res = with(
            pod(),
            "/spec/containers/0/resources",
            json!({"requests": {"cpu": "2", "memory": "lots", "gpu": "1"}, "limits": {"cpu": "500m"}}),
        );
        let errs = check("", "Pod", &res);
        assert_eq!(
            errs,
            [
                "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 500m",
            ]
        );
        let extended = with(
            pod(),
            "/spec/containers/0/resources",
            json!({"limits": {"example.com/gpu": 1}, "requests": {"example.com/gpu": 1}}),
        );
        assert_eq!(check("", "Pod", &extended), Vec::<String>::new());
    }

    #[test]
    fn pod_volumes_and_mounts() {
        let vols = with(
            pod(),
            "/spec/volumes",
            json!([
                {"name": "data", "emptyDir": {}},
                {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}},
                {"name": "Cfg"}
            ]),
        );
        let errs = check("", "Pod", &vols);
        assert!(errs.contains(&"spec.volumes[1].name: Duplicate value: \"data\"".to_string()));
        assert!(
            errs.contains(&"spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type".to_string())
        );
        assert!(errs.contains(&"spec.volumes[2]: Required value: must specify a volume type".to_string()));
        assert!(errs.contains(&"spec.containers[0].volumeMounts[1].name: Not found: \"cfg\"".to_string()));
        let mounts = with(
            pod(),
            "/spec/containers/0/volumeMounts",
            json!([{"name": "data", "mountPath": "/d"}, {"name": "cfg", "mountPath": "/d"}, {"name": "cfg"}]),
        );
        assert_eq!(
            check("", "Pod", &mounts),
            [
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
                "spec.containers[0].volumeMounts[2].mountPath: Required value",
            ]
        );
    }

    #[test]
    fn pod_env() {
        let env = with(
            pod(),
            "/spec/containers/0/env",
            json!([
                {"name": "A=B", "value": "x"},
                {"name": "B", "valueFrom": {}},
                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "x"}, "secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
            ]),
        );
        let errs = check("", "Pod", &env);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("spec.containers[0].env[0].name: Invalid value: \"A=B\""));
        assert_eq!(
            errs[1],
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, \
             `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        );
        assert_eq!(
            errs[2],
            "spec.containers[0].env[2].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"
        );
    }

    #[test]
    fn pod_probes() {
        let probes = with(
            pod(),
            "/spec/containers/0/livenessProbe",
            json!({"httpGet": {"port": 0}, "exec": {"command": ["x"]}, "periodSeconds": -1, "successThreshold": 2}),
        );
        let errs = check("", "Pod", &probes);
        assert!(errs.contains(
            &"spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type"
                .to_string()
        ));
        assert!(errs.contains(
            &"spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"
                .to_string()
        ));
        assert!(errs.contains(
            &"spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0"
                .to_string()
        ));
        assert!(errs
            .contains(&"spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1".to_string()));
        let no_handler = with(pod(), "/spec/containers/0/readinessProbe", json!({"periodSeconds": 5}));
        assert_eq!(
            check("", "Pod", &no_handler),
            ["spec.containers[0].readinessProbe: Required value: must specify a handler type"]
        );
        let mut init_probe = pod();
        init_probe["spec"]["initContainers"][0]["readinessProbe"] = json!({"exec": {"command": ["x"]}});
        assert_eq!(
            check("", "Pod", &init_probe),
            ["spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"]
        );
    }

    #[test]
    fn pod_update_allows_only_mutable_fields() {
        let old = pod();
        let image = with(old.clone(), "/spec/containers/0/image", json!("nginx:1.26"));
        let image = with(image, "/spec/activeDeadlineSeconds", json!(60));
        assert_eq!(check_update("", "Pod", &image, &old), Vec::<String>::new());
        let mut more_tolerations = old.clone();
        more_tolerations["spec"]["tolerations"].as_array_mut().expect("array").push(json!({"operator": "Exists"}));
        assert_eq!(check_update("", "Pod", &more_tolerations, &old), Vec::<String>::new());
        let command = with(old.clone(), "/spec/containers/0/ports", json!([]));
        assert_eq!(check_update("", "Pod", &command, &old), [format!("spec: Forbidden: {POD_UPDATE_MSG}")]);
        let dropped = with(old.clone(), "/spec/tolerations", json!([]));
        assert_eq!(
            check_update("", "Pod", &dropped, &old),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
        let with_deadline = with(old.clone(), "/spec/activeDeadlineSeconds", json!(60));
        let longer = with(old, "/spec/activeDeadlineSeconds", json!(120));
        assert_eq!(
            check_update("", "Pod", &longer, &with_deadline),
            ["spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal to previous value"]
        );
        // A status write keeps the spec, so it passes.
        let status = with(with_deadline.clone(), "/metadata/labels", json!({"app": "web", "x": "y"}));
        let mut status = status;
        status["status"] = json!({"phase": "Running"});
        assert_eq!(check_update("", "Pod", &status, &with_deadline), Vec::<String>::new());
    }

    #[test]
    fn deployment_selector_and_template() {
        let mismatch = with(deployment(), "/spec/template/metadata/labels", json!({"app": "api", "tier": "fe"}));
        assert_eq!(
            check("apps", "Deployment", &mismatch),
            ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\", \"tier\":\"fe\"}: \
              `selector` does not match template `labels`"]
        );
        let no_selector = without(deployment(), "/spec", "selector");
        assert_eq!(check("apps", "Deployment", &no_selector), ["spec.selector: Required value"]);
        let empty = with(deployment(), "/spec/selector", json!({}));
        assert_eq!(
            check("apps", "Deployment", &empty),
            ["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
        let restart = with(deployment(), "/spec/template/spec/restartPolicy", json!("Never"));
        assert_eq!(
            check("apps", "Deployment", &restart),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
        let replicas = with(deployment(), "/spec/replicas", json!(-1));
        assert_eq!(
            check("apps", "Deployment", &replicas),
            ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
        );
        let no_image = without(deployment(), "/spec/template/spec/containers/0", "image");
        assert_eq!(check("apps", "Deployment", &no_image), ["spec.template.spec.containers[0].image: Required value"]);
        let moved = with(deployment(), "/spec/selector/matchLabels/app", json!("web2"));
        let moved = with(moved, "/spec/template/metadata/labels/app", json!("web2"));
        assert_eq!(
            check_update("apps", "Deployment", &moved, &deployment()),
            ["spec.selector: Invalid value: {\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":[\"db\"]}],\"matchLabels\":{\"app\":\"web2\"}}: field is immutable"]
        );
    }

    #[test]
    fn deployment_strategy_and_deadlines() {
        let recreate = with(deployment(), "/spec/strategy/type", json!("Recreate"));
        assert_eq!(
            check("apps", "Deployment", &recreate),
            ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        let bad_type = with(deployment(), "/spec/strategy/type", json!("BlueGreen"));
        assert_eq!(check("apps", "Deployment", &bad_type).len(), 1);
        let zeros = with(deployment(), "/spec/strategy/rollingUpdate", json!({"maxSurge": 0, "maxUnavailable": "0%"}));
        assert_eq!(
            check("apps", "Deployment", &zeros),
            ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
        );
        let over =
            with(deployment(), "/spec/strategy/rollingUpdate", json!({"maxSurge": "x", "maxUnavailable": "150%"}));
        assert_eq!(
            check("apps", "Deployment", &over),
            [
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": must be an integer or percentage (e.g '5%')",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
            ]
        );
        let deadline = with(deployment(), "/spec/progressDeadlineSeconds", json!(10));
        let deadline = with(deadline, "/spec/minReadySeconds", json!(10));
        assert_eq!(
            check("apps", "Deployment", &deadline),
            ["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"]
        );
        let history = with(deployment(), "/spec/revisionHistoryLimit", json!(-2));
        assert_eq!(check("apps", "Deployment", &history).len(), 1);
    }

    #[test]
    fn service_ports_and_types() {
        let no_ports = with(service(), "/spec/ports", json!([]));
        assert_eq!(check("", "Service", &no_ports), ["spec.ports: Required value"]);
        let headless = defaulted(
            "",
            "Service",
            json!({"metadata": meta("db"), "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        );
        assert_eq!(check("", "Service", &headless), Vec::<String>::new());
        let external = defaulted("", "Service", json!({"metadata": meta("ext"), "spec": {"type": "ExternalName"}}));
        assert_eq!(check("", "Service", &external), ["spec.externalName: Required value"]);
        let external = with(external, "/spec/externalName", json!("db.example.com."));
        assert_eq!(check("", "Service", &external), Vec::<String>::new());
        let ports = with(
            service(),
            "/spec/ports",
            json!([
                {"port": 0, "protocol": "TCP", "targetPort": 0},
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}
            ]),
        );
        assert_eq!(
            check("", "Service", &ports),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]
        );
        let node_port = with(ports, "/spec/type", json!("NodePort"));
        assert_eq!(check("", "Service", &node_port).len(), 3);
        let bad_type = with(service(), "/spec/type", json!("Magic"));
        assert_eq!(
            check("", "Service", &bad_type),
            ["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
        );
        let affinity = with(service(), "/spec/sessionAffinity", json!("Sticky"));
        assert_eq!(check("", "Service", &affinity).len(), 1);
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = service();
        let moved = with(old.clone(), "/spec/clusterIP", json!("10.96.0.11"));
        let moved = with(moved, "/spec/clusterIPs", json!(["10.96.0.11"]));
        assert_eq!(
            check_update("", "Service", &moved, &old),
            ["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"]
        );
        let headless = with(old.clone(), "/spec/clusterIP", json!("None"));
        assert_eq!(check_update("", "Service", &headless, &old).len(), 1);
        let same = with(old.clone(), "/spec/selector", json!({"app": "web2"}));
        assert_eq!(check_update("", "Service", &same, &old), Vec::<String>::new());
    }

    #[test]
    fn config_maps() {
        let cm = |data: Value| json!({"metadata": meta("cfg"), "data": data});
        assert_eq!(check("", "ConfigMap", &cm(json!({"app.conf": "x", "KEY_1": "y"}))), Vec::<String>::new());
        let errs = check("", "ConfigMap", &cm(json!({"a/b": "x", "..": "y"})));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("data[..]: Invalid value: \"..\": must not be '..'"));
        assert!(errs[1].starts_with("data[a/b]: Invalid value: \"a/b\": a valid config key must consist of"));
        let mut both = cm(json!({"k": "x"}));
        both["binaryData"] = json!({"k": "eA=="});
        assert_eq!(
            check("", "ConfigMap", &both),
            ["data[k]: Invalid value: \"k\": duplicate of key present in binaryData"]
        );
        let big = cm(json!({"k": "x".repeat(MAX_CONFIG_SIZE + 1)}));
        assert_eq!(check("", "ConfigMap", &big), ["[]: Too long: may not be more than 1048576 bytes"]);
        let mut frozen = cm(json!({"k": "x"}));
        frozen["immutable"] = json!(true);
        let changed = with(frozen.clone(), "/data/k", json!("y"));
        assert_eq!(
            check_update("", "ConfigMap", &changed, &frozen),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let thawed = with(frozen.clone(), "/immutable", json!(false));
        assert_eq!(
            check_update("", "ConfigMap", &thawed, &frozen),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let relabeled = with(frozen.clone(), "/metadata/labels", json!({"a": "b"}));
        assert_eq!(check_update("", "ConfigMap", &relabeled, &frozen), Vec::<String>::new());
    }

    #[test]
    fn secrets() {
        let secret = |kind: &str, data: Value| {
            defaulted("", "Secret", json!({"metadata": meta("s"), "type": kind, "data": data}))
        };
        assert_eq!(check("", "Secret", &secret("Opaque", json!({"password": "aHVudGVyMg=="}))), Vec::<String>::new());
        let errs = check("", "Secret", &secret("Opaque", json!({"password": "not base64!"})));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("data[password]: Invalid value: \"<value omitted>\": illegal base64 data"));
        assert_eq!(
            check("", "Secret", &secret("kubernetes.io/tls", json!({"tls.crt": "eA=="}))),
            ["data[tls.key]: Required value"]
        );
        assert_eq!(
            check("", "Secret", &secret("kubernetes.io/dockerconfigjson", json!({}))),
            ["data[.dockerconfigjson]: Required value"]
        );
        let bad_json = secret("kubernetes.io/dockerconfigjson", json!({".dockerconfigjson": "eyJ4Ig=="}));
        assert_eq!(check("", "Secret", &bad_json).len(), 1);
        assert_eq!(
            check("", "Secret", &secret("kubernetes.io/service-account-token", json!({}))),
            ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
        let mut from_string = json!({"metadata": meta("s"), "stringData": {"user": "admin"}});
        from_string = defaulted("", "Secret", from_string);
        assert_eq!(check("", "Secret", &from_string), Vec::<String>::new());
        let old = secret("Opaque", json!({}));
        let retyped = with(old.clone(), "/type", json!("kubernetes.io/basic-auth"));
        let retyped = with(retyped, "/data", json!({"username": "YQ=="}));
        assert_eq!(
            check_update("", "Secret", &retyped, &old),
            ["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
        );
    }

    #[test]
    fn namespaces_nodes_and_service_accounts() {
        let ns = json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes", "bad finalizer"]}});
        assert_eq!(check("", "Namespace", &ns).len(), 1);
        let node = json!({"metadata": {"name": "node-1"}, "spec": {
            "podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24", "10.244.0.0/33"],
            "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, {"key": "x", "effect": "Sometimes"}]
        }});
        let errs = check("", "Node", &node);
        assert_eq!(
            errs,
            [
                "spec.podCIDRs[1]: Invalid value: \"10.244.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                "spec.taints[1].effect: Unsupported value: \"Sometimes\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"",
            ]
        );
        let old_node = json!({"metadata": {"name": "node-1"}, "spec": {"podCIDRs": ["10.244.1.0/24"]}});
        let new_node = json!({"metadata": {"name": "node-1"}, "spec": {"podCIDRs": ["10.244.2.0/24"]}});
        assert_eq!(check_update("", "Node", &new_node, &old_node).len(), 1);
        let sa = json!({"metadata": meta("builder"), "secrets": [{"name": "t"}]});
        assert_eq!(check("", "ServiceAccount", &sa), Vec::<String>::new());
    }

    #[test]
    fn endpoints_and_slices() {
        let ep = defaulted(
            "",
            "Endpoints",
            json!({"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "nope"}], "ports": [{"port": 70000}]}]}),
        );
        assert_eq!(
            check("", "Endpoints", &ep),
            [
                "subsets[0].addresses[1].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ]
        );
        let slice = defaulted(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": meta("web-abc"), "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": []}, {"addresses": ["::1"]}], "ports": [{"port": 80}]}),
        );
        assert_eq!(
            check("discovery.k8s.io", "EndpointSlice", &slice),
            [
                "endpoints[1].addresses: Required value: must contain at least 1 address",
                "endpoints[2].addresses[0]: Invalid value: \"::1\": must be a valid IPv4 address",
            ]
        );
        let bad_family = with(slice, "/addressType", json!("IPv5"));
        assert!(
            check("discovery.k8s.io", "EndpointSlice", &bad_family)[0].starts_with("addressType: Unsupported value")
        );
    }

    #[test]
    fn leases_events_quotas_limit_ranges() {
        let lease = json!({"metadata": meta("leader"), "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0}});
        assert_eq!(
            check("coordination.k8s.io", "Lease", &lease),
            ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
        );
        let event = json!({"metadata": meta("web.17a"), "involvedObject": {"kind": "Pod", "namespace": "other", "name": "web"},
            "reason": "Started", "type": "Normal"});
        assert_eq!(
            check("", "Event", &event),
            ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        let new_event = json!({"metadata": meta("web.17b"), "eventTime": "2024-01-01T00:00:00.000000Z", "type": "Normal",
            "reportingController": "example.com/ctl", "reportingInstance": "ctl-1", "action": "Bind", "reason": "Scheduled"});
        assert_eq!(check("events.k8s.io", "Event", &new_event), Vec::<String>::new());
        let no_action = without(new_event, "", "action");
        assert_eq!(check("events.k8s.io", "Event", &no_action), ["action: Required value"]);
        let quota =
            json!({"metadata": meta("q"), "spec": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "x"}}});
        assert_eq!(check("", "ResourceQuota", &quota).len(), 1);
        let limits = defaulted(
            "",
            "LimitRange",
            json!({"metadata": meta("l"), "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}},
                {"type": "Node"}]}}),
        );
        let errs = check("", "LimitRange", &limits);
        assert!(errs.contains(
            &"spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1".to_string()
        ));
        assert!(errs.iter().any(|e| e.starts_with("spec.limits[1].type: Unsupported value: \"Node\"")));
    }

    #[test]
    fn rbac_roles() {
        let role = json!({"metadata": meta("r"), "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            {"verbs": ["get"]}
        ]});
        assert_eq!(
            check(RBAC_GROUP, "Role", &role),
            [
                "rules[1].verbs: Required value: verbs must contain at least one value",
                "rules[2].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[3].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[3].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        let cluster_role =
            json!({"metadata": {"name": "view"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert_eq!(check(RBAC_GROUP, "ClusterRole", &cluster_role), Vec::<String>::new());
    }

    #[test]
    fn rbac_bindings() {
        let binding = defaulted(
            RBAC_GROUP,
            "ClusterRoleBinding",
            json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "builder"}, {"kind": "Robot", "name": "r"}]}),
        );
        assert_eq!(
            check(RBAC_GROUP, "ClusterRoleBinding", &binding),
            [
                "subjects[1].namespace: Required value",
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"Group\", \"ServiceAccount\", \"User\"",
            ]
        );
        let role_kind = with(binding.clone(), "/roleRef/kind", json!("Role"));
        assert!(check(RBAC_GROUP, "ClusterRoleBinding", &role_kind)
            .contains(&"roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"".to_string()));
        let rb = defaulted(
            RBAC_GROUP,
            "RoleBinding",
            json!({"metadata": meta("rb"), "roleRef": {"kind": "Role", "name": "edit"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
        );
        assert_eq!(check(RBAC_GROUP, "RoleBinding", &rb), Vec::<String>::new());
        let changed = with(rb.clone(), "/roleRef/name", json!("admin"));
        let errs = check_update(RBAC_GROUP, "RoleBinding", &changed, &rb);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("roleRef: Invalid value: ") && errs[0].ends_with(": cannot change roleRef"));
    }

    #[test]
    fn wrong_json_types_are_reported_not_panicked_on() {
        let spec_string = json!({"metadata": meta("p"), "spec": "x"});
        assert_eq!(
            check("", "Pod", &spec_string),
            ["spec: Invalid value: \"x\": must be an object", "spec.containers: Required value"]
        );
        let containers_obj = with(pod(), "/spec/containers", json!({}));
        assert_eq!(check("", "Pod", &containers_obj), ["spec.containers: Invalid value: {}: must be an array"]);
        let port_string = with(pod(), "/spec/containers/0/ports/0/containerPort", json!("80"));
        assert_eq!(
            check("", "Pod", &port_string),
            ["spec.containers[0].ports[0].containerPort: Invalid value: \"80\": must be an integer"]
        );
        assert_eq!(check("", "Pod", &json!([1])), ["Invalid value: [1]: must be an object"].map(|e| format!(": {e}")));
        for (group, kind) in [
            ("apps", "Deployment"),
            ("", "Service"),
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Node"),
            ("", "Endpoints"),
            (RBAC_GROUP, "ClusterRoleBinding"),
            ("", "LimitRange"),
        ] {
            for junk in [json!(1), json!("x"), json!([true]), json!({"a": null})] {
                let obj = json!({"metadata": {"name": junk.clone(), "labels": junk.clone()}, "spec": junk.clone(),
                    "data": junk.clone(), "subsets": junk.clone(), "roleRef": junk.clone(), "subjects": junk.clone()});
                assert!(!validate(group, kind, &obj, Some(&obj)).is_empty(), "{group}/{kind} with {junk}");
            }
        }
    }

    #[test]
    fn quantities_parse_to_milli_units() {
        assert_eq!(parse_quantity("100m"), Ok(100));
        assert_eq!(parse_quantity("2"), Ok(2000));
        assert_eq!(parse_quantity("0.5"), Ok(500));
        assert_eq!(parse_quantity("1Gi"), Ok(1024 * 1024 * 1024 * 1000));
        assert_eq!(parse_quantity("1e3"), Ok(1_000_000));
        assert_eq!(parse_quantity("1E-3"), Ok(1));
        assert_eq!(parse_quantity("1k"), Ok(1_000_000));
        assert_eq!(parse_quantity("-1.5"), Ok(-1500));
        assert_eq!(parse_quantity("1n"), Ok(1), "fractions of a milli-unit round up");
        assert_eq!(parse_quantity(".5Ki"), Ok(512_000));
        assert_eq!(parse_quantity("1e40"), Ok(i128::MAX));
        for bad in ["", "abc", "1x", "1..2", "Gi", "1 Gi", "1e", "1Kb", "."] {
            assert!(parse_quantity(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(parse_quantity("12kb"), Err(QUANTITY_REGEX_MSG.to_string()));
        assert_eq!(parse_quantity("1Ki1"), Err("unable to parse quantity's suffix".to_string()));
    }
}
