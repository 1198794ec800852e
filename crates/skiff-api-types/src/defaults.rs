//! Server-side defaulting: the fields the Kubernetes API server (1.32) fills in when an object is
//! created or updated, so that what clients read back matches what upstream would have stored.
//!
//! Objects are `serde_json::Value` trees in their JSON (camelCase) form. Defaulting never fails and
//! never panics: a field holding the wrong JSON type is left exactly as it is, for validation to
//! report. Following upstream, whose Go structs cannot tell "absent" from a zero value, a plain
//! string field holding `""` and a plain number field holding `0` count as unset — protobuf and Go
//! clients send those for fields they never touched. Pointer fields upstream (`replicas`,
//! `terminationGracePeriodSeconds`, `defaultMode`, ...) are defaulted only when absent or `null`,
//! because `0` is a meaningful value there.
//!
//! Not done here, because upstream does not do it while defaulting either: values the server
//! allocates (cluster IPs, node ports, names from `generateName`, uid, timestamps), admission
//! plug-ins (default tolerations, service-account token volumes, priority from a custom
//! PriorityClass), and `status.phase: Pending` for new pods. Two allocator decisions that need no
//! cluster state — a Service's IP family fields and the `clusterIP`/`clusterIPs` pair — are made
//! here for a single-stack IPv4 cluster.

use base64::Engine as _;
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The members of a pod's VolumeSource; a volume sets exactly one. Other keys are not sources (and
/// upstream's typed decoding would drop them), so they do not stop a bare volume becoming an emptyDir.
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// Where a PodSpec lives decides which defaults it gets: upstream fills some fields only on Pods,
/// so that changing them never rolls out new pods for every Deployment in the cluster.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SpecOwner {
    Pod,
    Template,
}

/// Fills in what the API server defaults on create and update, as upstream 1.32 does. `group` is "" for core.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else { return };
    match (group, kind) {
        ("", "Pod") => default_pod(root),
        ("", "PodTemplate") => default_template(root),
        ("", "ReplicationController") => default_replication_controller(root),
        ("apps", "Deployment") => default_deployment(root),
        ("apps", "ReplicaSet") => default_replica_set(root),
        ("", "Service") => default_service(root),
        ("", "Secret") => default_secret(obj),
        ("", "Namespace") => default_namespace(root),
        ("", "Node") => default_node(root),
        ("", "Endpoints") => default_endpoints(root),
        ("discovery.k8s.io", "EndpointSlice") => default_endpoint_slice(root),
        ("", "LimitRange") => default_limit_range(root),
        ("", "PersistentVolumeClaim") => default_persistent_volume_claim(root),
        ("", "PersistentVolume") => default_persistent_volume(root),
        (RBAC_GROUP, "RoleBinding" | "ClusterRoleBinding") => default_role_binding(root),
        _ => {}
    }
}

/// Moves a Secret's write-only `stringData` into `data` (base64-encoded, overriding keys already in
/// `data`) and drops `stringData`, as upstream's conversion does before anything else sees the
/// object. Left untouched when either field has the wrong JSON type, so validation can say so.
pub fn fold_secret_string_data(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else { return };
    match root.get("stringData") {
        None => return,
        Some(Value::Null) => {
            root.remove("stringData");
            return;
        }
        Some(Value::Object(entries)) if entries.values().all(Value::is_string) => {}
        Some(_) => return,
    }
    if !matches!(root.get("data"), None | Some(Value::Null | Value::Object(_))) {
        return;
    }
    let Some(Value::Object(string_data)) = root.remove("stringData") else { return };
    let Some(data) = child_obj(root, "data") else { return };
    for (key, value) in string_data {
        if let Value::String(text) = value {
            data.insert(key, Value::String(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON helpers. Each one leaves a value of an unexpected type alone.

/// The object under `key`, created empty when absent or null (upstream's non-pointer structs always
/// exist, so their defaults always apply); `None` when `key` holds something else.
fn child_obj<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    let slot = m.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Obj::new());
    }
    slot.as_object_mut()
}

/// The object under `key` when there is one; for upstream's pointer structs, which stay absent.
fn existing_obj<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects in the array under `key`, skipping items of other types.
fn objects_in<'a>(m: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    m.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

fn is_unset(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

fn is_zero(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn str_of<'a>(m: &'a Obj, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Defaults a plain string field, for which `""` means unset.
fn default_str(m: &mut Obj, key: &str, value: &str) {
    if is_blank(m.get(key)) {
        m.insert(key.to_string(), Value::from(value));
    }
}

/// Defaults a plain integer field, for which `0` means unset.
fn default_int(m: &mut Obj, key: &str, value: i64) {
    if is_zero(m.get(key)) {
        m.insert(key.to_string(), Value::from(value));
    }
}

/// Defaults a pointer field, which only absence (or `null`) leaves unset.
fn default_ptr(m: &mut Obj, key: &str, value: Value) {
    if is_unset(m.get(key)) {
        m.insert(key.to_string(), value);
    }
}

// ---------------------------------------------------------------------------------------------
// Pods and pod templates.

fn default_pod(root: &mut Obj) {
    if let Some(spec) = child_obj(root, "spec") {
        default_pod_spec(spec, SpecOwner::Pod);
    }
}

/// A PodTemplateSpec under `template`: its spec gets the PodSpec defaults but not the Pod-only ones.
fn default_template(parent: &mut Obj) {
    if let Some(spec) = child_obj(parent, "template").and_then(|t| child_obj(t, "spec")) {
        default_pod_spec(spec, SpecOwner::Template);
    }
}

fn default_pod_spec(spec: &mut Obj, owner: SpecOwner) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    child_obj(spec, "securityContext");
    default_ptr(spec, "terminationGracePeriodSeconds", Value::from(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        objects_in(spec, key).for_each(default_container);
    }
    objects_in(spec, "volumes").for_each(default_volume);
    if owner == SpecOwner::Pod {
        default_pod_only(spec);
    }
}

/// What upstream sets on Pods only (SetDefaults_Pod and the Priority admission plug-in), never on
/// the templates inside workloads.
fn default_pod_only(spec: &mut Obj) {
    default_ptr(spec, "enableServiceLinks", Value::Bool(true));
    let host_network = spec.get("hostNetwork") == Some(&Value::Bool(true));
    for key in ["containers", "initContainers"] {
        for container in objects_in(spec, key) {
            default_requests_from_limits(container);
            if host_network {
                default_host_ports(container);
            }
        }
    }
    default_priority(spec);
}

/// Priority comes from the pod's PriorityClass. Without a class (and, as skiff has no global default
/// class, that means priority 0) or with one of the two built-in classes the value is known here;
/// any other class is left for whoever resolves PriorityClass objects.
fn default_priority(spec: &mut Obj) {
    if !is_unset(spec.get("priority")) {
        return;
    }
    let priority = match str_of(spec, "priorityClassName") {
        "" => 0,
        "system-cluster-critical" => 2_000_000_000,
        "system-node-critical" => 2_000_001_000,
        _ => return,
    };
    spec.insert("priority".to_string(), Value::from(priority));
    default_ptr(spec, "preemptionPolicy", Value::from("PreemptLowerPriority"));
}

fn default_requests_from_limits(container: &mut Obj) {
    let Some(resources) = existing_obj(container, "resources") else { return };
    let limits = match resources.get("limits") {
        Some(Value::Object(limits)) if !limits.is_empty() => limits.clone(),
        _ => return,
    };
    let Some(requests) = child_obj(resources, "requests") else { return };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// With the host's network namespace a container port is a host port, so upstream records it.
fn default_host_ports(container: &mut Obj) {
    for port in objects_in(container, "ports") {
        if is_zero(port.get("hostPort")) {
            if let Some(container_port @ Value::Number(_)) = port.get("containerPort").cloned() {
                port.insert("hostPort".to_string(), container_port);
            }
        }
    }
}

fn default_container(container: &mut Obj) {
    if is_blank(container.get("imagePullPolicy")) {
        let policy = if pulls_always(str_of(container, "image")) { "Always" } else { "IfNotPresent" };
        container.insert("imagePullPolicy".to_string(), Value::from(policy));
    }
    default_str(container, "terminationMessagePath", "/dev/termination-log");
    default_str(container, "terminationMessagePolicy", "File");
    for port in objects_in(container, "ports") {
        default_str(port, "protocol", "TCP");
    }
    // A non-pointer struct upstream, so it is always serialized, if only as `{}`.
    child_obj(container, "resources");
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = existing_obj(container, key) {
            default_probe(probe);
        }
    }
    if let Some(lifecycle) = existing_obj(container, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(handler) = existing_obj(lifecycle, key) {
                default_handler(handler);
            }
        }
    }
    for env in objects_in(container, "env") {
        if let Some(source) = existing_obj(env, "valueFrom") {
            if let Some(field_ref) = existing_obj(source, "fieldRef") {
                default_str(field_ref, "apiVersion", "v1");
            }
            if let Some(resource_ref) = existing_obj(source, "resourceFieldRef") {
                // A non-pointer Quantity upstream: its zero value is always serialized as "0".
                default_ptr(resource_ref, "divisor", Value::from("0"));
            }
        }
    }
}

fn default_probe(probe: &mut Obj) {
    default_int(probe, "timeoutSeconds", 1);
    default_int(probe, "periodSeconds", 10);
    default_int(probe, "successThreshold", 1);
    default_int(probe, "failureThreshold", 3);
    default_handler(probe);
}

fn default_handler(handler: &mut Obj) {
    if let Some(http_get) = existing_obj(handler, "httpGet") {
        default_str(http_get, "path", "/");
        default_str(http_get, "scheme", "HTTP");
    }
}

/// Upstream pulls on every start only for `:latest` — including an image with neither tag nor
/// digest, which means `:latest`. References it cannot parse get `IfNotPresent`.
fn pulls_always(image: &str) -> bool {
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A ':' after the last '/' starts the tag; one before it belongs to a registry's port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].find(':') {
        Some(colon) => (&name_and_tag[..last_slash + colon], Some(&name_and_tag[last_slash + colon + 1..])),
        None => (name_and_tag, None),
    };
    if !is_repository_name(name) || tag.is_some_and(|t| !is_tag(t)) || digest.is_some_and(|d| !d.contains(':')) {
        return false;
    }
    match tag {
        Some(tag) => tag == "latest",
        None => digest.is_none(),
    }
}

/// Repository paths are lower case; only a leading registry host (one with a '.' or ':' or named
/// `localhost`) may differ.
fn is_repository_name(name: &str) -> bool {
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) {
            components.remove(0);
        }
    }
    components.iter().all(|c| {
        !c.is_empty()
            && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    })
}

fn is_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn default_volume(volume: &mut Obj) {
    let has_source = VOLUME_SOURCES.iter().any(|key| volume.get(*key).is_some_and(|v| !v.is_null()));
    if !has_source {
        volume.insert("emptyDir".to_string(), Value::Object(Obj::new()));
    }
    // 0644: readable by every user in the container, writable by none but the owner.
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = existing_obj(volume, key) {
            default_ptr(source, "defaultMode", Value::from(0o644));
        }
    }
    if let Some(downward) = existing_obj(volume, "downwardAPI") {
        default_downward_items(downward);
    }
    if let Some(projected) = existing_obj(volume, "projected") {
        for source in objects_in(projected, "sources") {
            if let Some(downward) = existing_obj(source, "downwardAPI") {
                default_downward_items(downward);
            }
            if let Some(token) = existing_obj(source, "serviceAccountToken") {
                default_ptr(token, "expirationSeconds", Value::from(3600));
            }
        }
    }
    if let Some(host_path) = existing_obj(volume, "hostPath") {
        default_ptr(host_path, "type", Value::from(""));
    }
    if let Some(iscsi) = existing_obj(volume, "iscsi") {
        default_str(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = existing_obj(volume, "rbd") {
        default_str(rbd, "pool", "rbd");
        default_str(rbd, "user", "admin");
        default_str(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(azure) = existing_obj(volume, "azureDisk") {
        default_ptr(azure, "cachingMode", Value::from("ReadWrite"));
        default_ptr(azure, "fsType", Value::from("ext4"));
        default_ptr(azure, "readOnly", Value::Bool(false));
        default_ptr(azure, "kind", Value::from("Shared"));
    }
    if let Some(scale_io) = existing_obj(volume, "scaleIO") {
        default_str(scale_io, "storageMode", "ThinProvisioned");
        default_str(scale_io, "fsType", "xfs");
    }
    let claim_spec = existing_obj(volume, "ephemeral")
        .and_then(|e| existing_obj(e, "volumeClaimTemplate"))
        .and_then(|t| existing_obj(t, "spec"));
    if let Some(claim_spec) = claim_spec {
        default_ptr(claim_spec, "volumeMode", Value::from("Filesystem"));
    }
}

fn default_downward_items(downward: &mut Obj) {
    for item in objects_in(downward, "items") {
        if let Some(field_ref) = existing_obj(item, "fieldRef") {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads.

fn default_deployment(root: &mut Obj) {
    let Some(spec) = child_obj(root, "spec") else { return };
    default_ptr(spec, "replicas", Value::from(1));
    if let Some(strategy) = child_obj(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child_obj(strategy, "rollingUpdate") {
                default_ptr(rolling, "maxUnavailable", Value::from("25%"));
                default_ptr(rolling, "maxSurge", Value::from("25%"));
            }
        }
    }
    default_ptr(spec, "revisionHistoryLimit", Value::from(10));
    default_ptr(spec, "progressDeadlineSeconds", Value::from(600));
    default_template(spec);
}

fn default_replica_set(root: &mut Obj) {
    let Some(spec) = child_obj(root, "spec") else { return };
    default_ptr(spec, "replicas", Value::from(1));
    default_template(spec);
}

/// ReplicationControllers predate label selectors: an unset selector (and unset object labels) is
/// taken from the template's labels.
fn default_replication_controller(root: &mut Obj) {
    let Some(spec) = child_obj(root, "spec") else { return };
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = &template_labels {
        if is_empty_map(spec.get("selector")) {
            spec.insert("selector".to_string(), labels.clone());
        }
    }
    default_ptr(spec, "replicas", Value::from(1));
    if let Some(template) = existing_obj(spec, "template") {
        if let Some(template_spec) = child_obj(template, "spec") {
            default_pod_spec(template_spec, SpecOwner::Template);
        }
    }
    if let (Some(labels), Some(meta)) = (template_labels, child_obj(root, "metadata")) {
        if is_empty_map(meta.get("labels")) {
            meta.insert("labels".to_string(), labels);
        }
    }
}

fn is_empty_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Networking.

fn default_service(root: &mut Obj) {
    let Some(spec) = child_obj(root, "spec") else { return };
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => default_client_ip_affinity(spec),
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    let service_type = str_of(spec, "type").to_string();
    for port in objects_in(spec, "ports") {
        default_str(port, "protocol", "TCP");
        if is_blank(port.get("targetPort")) || is_zero(port.get("targetPort")) {
            if let Some(number @ Value::Number(_)) = port.get("port").cloned() {
                port.insert("targetPort".to_string(), number);
            }
        }
    }
    let has_external_ips = matches!(spec.get("externalIPs"), Some(Value::Array(ips)) if !ips.is_empty());
    let externally_accessible = matches!(service_type.as_str(), "NodePort" | "LoadBalancer")
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(service_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default_ptr(spec, "internalTrafficPolicy", Value::from("Cluster"));
    }
    if service_type == "LoadBalancer" {
        default_ptr(spec, "allocateLoadBalancerNodePorts", Value::Bool(true));
    }
    if service_type != "ExternalName" {
        sync_cluster_ips(spec);
        default_ip_families(spec);
    }
}

/// Three hours, upstream's default stickiness for ClientIP session affinity.
fn default_client_ip_affinity(spec: &mut Obj) {
    let timeout_set = spec
        .get("sessionAffinityConfig")
        .and_then(|c| c.get("clientIP"))
        .and_then(|c| c.get("timeoutSeconds"))
        .is_some_and(|t| !t.is_null());
    if !timeout_set {
        let config = serde_json::json!({ "clientIP": { "timeoutSeconds": 10800 } });
        spec.insert("sessionAffinityConfig".to_string(), config);
    }
}

/// `clusterIP` is the legacy single-value form of `clusterIPs[0]`; clients may send either.
fn sync_cluster_ips(spec: &mut Obj) {
    let cluster_ip = str_of(spec, "clusterIP").to_string();
    let first = match spec.get("clusterIPs") {
        Some(Value::Array(ips)) => ips.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let ips_unset = match spec.get("clusterIPs") {
        None | Some(Value::Null) => true,
        Some(Value::Array(ips)) => ips.is_empty(),
        _ => false,
    };
    if ips_unset && !cluster_ip.is_empty() {
        spec.insert("clusterIPs".to_string(), Value::Array(vec![Value::from(cluster_ip)]));
    } else if is_blank(spec.get("clusterIP")) {
        if let Some(first) = first {
            spec.insert("clusterIP".to_string(), Value::from(first));
        }
    }
}

/// The allocator's choice for a single-stack IPv4 cluster: one family, except where the user named
/// two (or gave two IPs), and for headless Services without a selector, whose endpoints are managed
/// by hand and so may be of any family.
fn default_ip_families(spec: &mut Obj) {
    let ips: Vec<String> = match spec.get("clusterIPs") {
        Some(Value::Array(ips)) => ips.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let headless = ips.first().is_some_and(|ip| ip == "None");
    let selectorless = is_empty_map(spec.get("selector"));
    let named_families = match spec.get("ipFamilies") {
        Some(Value::Array(families)) => families.len(),
        _ => 0,
    };
    if is_unset(spec.get("ipFamilyPolicy")) {
        let dual = ips.len() >= 2 || named_families >= 2 || (headless && selectorless);
        let policy = if dual { "RequireDualStack" } else { "SingleStack" };
        spec.insert("ipFamilyPolicy".to_string(), Value::from(policy));
    }
    let families_unset = match spec.get("ipFamilies") {
        None | Some(Value::Null) => true,
        Some(Value::Array(families)) => families.is_empty(),
        Some(_) => false,
    };
    if families_unset {
        let mut families: Vec<Value> = ips
            .iter()
            .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| Value::from(if ip.is_ipv6() { "IPv6" } else { "IPv4" }))
            .collect();
        if families.is_empty() {
            families.push(Value::from("IPv4"));
        }
        spec.insert("ipFamilies".to_string(), Value::Array(families));
    }
}

fn default_endpoints(root: &mut Obj) {
    for subset in objects_in(root, "subsets") {
        for port in objects_in(subset, "ports") {
            default_str(port, "protocol", "TCP");
        }
    }
}

fn default_endpoint_slice(root: &mut Obj) {
    for port in objects_in(root, "ports") {
        default_ptr(port, "name", Value::from(""));
        default_ptr(port, "protocol", Value::from("TCP"));
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration, cluster and policy objects.

fn default_secret(obj: &mut Value) {
    fold_secret_string_data(obj);
    if let Some(root) = obj.as_object_mut() {
        default_str(root, "type", "Opaque");
    }
}

/// Every namespace carries its own name as a label, so namespace selectors can pick it by name; its
/// `kubernetes` finalizer makes the server empty it before it goes away.
fn default_namespace(root: &mut Obj) {
    let name = root.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    if !name.is_empty() {
        if let Some(labels) = existing_obj(root, "metadata").and_then(|meta| child_obj(meta, "labels")) {
            labels.insert("kubernetes.io/metadata.name".to_string(), Value::from(name));
        }
    }
    // `spec.finalizers` gets `kubernetes` on create only (admission): the namespace controller
    // removes it through `namespaces/finalize`, and defaulting must not put it back.
    if let Some(status) = child_obj(root, "status") {
        default_str(status, "phase", "Active");
    }
}

fn default_node(root: &mut Obj) {
    let Some(status) = existing_obj(root, "status") else { return };
    if is_unset(status.get("allocatable")) {
        if let Some(capacity @ Value::Object(_)) = status.get("capacity").cloned() {
            status.insert("allocatable".to_string(), capacity);
        }
    }
}

fn default_limit_range(root: &mut Obj) {
    if let Some(spec) = existing_obj(root, "spec") {
        objects_in(spec, "limits").for_each(default_limit_range_item);
    }
}

/// For containers, an unset default limit comes from the max, and an unset default request from
/// the default limit, else from the min.
fn default_limit_range_item(item: &mut Obj) {
    if str_of(item, "type") != "Container" {
        return;
    }
    let read = |key: &str| match item.get(key) {
        None | Some(Value::Null) => Some(Obj::new()),
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => None,
    };
    let (Some(max), Some(min), Some(mut limit), Some(mut request)) =
        (read("max"), read("min"), read("default"), read("defaultRequest"))
    else {
        return;
    };
    for (name, quantity) in &max {
        limit.entry(name.clone()).or_insert_with(|| quantity.clone());
    }
    for (name, quantity) in limit.iter().chain(min.iter()) {
        request.entry(name.clone()).or_insert_with(|| quantity.clone());
    }
    if !limit.is_empty() {
        item.insert("default".to_string(), Value::Object(limit));
    }
    if !request.is_empty() {
        item.insert("defaultRequest".to_string(), Value::Object(request));
    }
}

fn default_persistent_volume_claim(root: &mut Obj) {
    if let Some(spec) = child_obj(root, "spec") {
        default_ptr(spec, "volumeMode", Value::from("Filesystem"));
    }
    if let Some(status) = child_obj(root, "status") {
        default_str(status, "phase", "Pending");
    }
}

fn default_persistent_volume(root: &mut Obj) {
    if let Some(spec) = child_obj(root, "spec") {
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_ptr(spec, "volumeMode", Value::from("Filesystem"));
    }
    if let Some(status) = child_obj(root, "status") {
        default_str(status, "phase", "Pending");
    }
}

/// Users and groups are RBAC's own kinds; service accounts are core objects, whose group is "".
fn default_role_binding(root: &mut Obj) {
    if let Some(role_ref) = child_obj(root, "roleRef") {
        default_str(role_ref, "apiGroup", RBAC_GROUP);
    }
    for subject in objects_in(root, "subjects") {
        if is_blank(subject.get("apiGroup")) && matches!(str_of(subject, "kind"), "User" | "Group") {
            subject.insert("apiGroup".to_string(), Value::from(RBAC_GROUP));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
        apply_defaults(group, kind, &mut obj);
        obj
    }

    fn pod(spec: Value) -> Value {
        defaulted("", "Pod", json!({ "metadata": { "name": "p", "namespace": "default" }, "spec": spec }))
    }

    fn pull_policy(image: &str) -> Value {
        pod(json!({ "containers": [{ "name": "c", "image": image }] }))["spec"]["containers"][0]["imagePullPolicy"]
            .clone()
    }

    #[test]
    fn pod_spec_gets_upstream_defaults() {
        let p =
            pod(json!({ "containers": [{ "name": "c", "image": "nginx:1.25", "ports": [{ "containerPort": 80 }] }] }));
        let spec = &p["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        let c = &spec["containers"][0];
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["resources"], json!({}));
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert!(spec.get("tolerations").is_none(), "tolerations are admission's business");
    }

    #[test]
    fn empty_strings_count_as_unset_but_set_values_stay() {
        let p = pod(json!({ "restartPolicy": "", "dnsPolicy": "Default", "containers": [] }));
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["dnsPolicy"], "Default");
        let p = pod(json!({ "restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [] }));
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 0, "a pointer field keeps an explicit 0");
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("docker.io/library/nginx:1.25"), "IfNotPresent");
        assert_eq!(pull_policy("nginx@sha256:0123456789abcdef0123456789abcdef"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/app"), "Always", "the port is not a tag");
        assert_eq!(pull_policy("localhost:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy("Nginx"), "IfNotPresent", "unparsable references are not pulled every time");
        let p = pod(json!({ "containers": [{ "name": "c", "image": "nginx", "imagePullPolicy": "Never" }] }));
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn pod_requests_default_from_limits_but_templates_do_not() {
        let container = json!({ "name": "c", "image": "i",
            "resources": { "limits": { "cpu": "1", "memory": "1Gi" }, "requests": { "cpu": "500m" } } });
        let p = pod(json!({ "containers": [container.clone()] }));
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"], json!({ "cpu": "500m", "memory": "1Gi" }));
        let d = defaulted(
            "apps",
            "Deployment",
            json!({ "spec": { "template": { "spec": { "containers": [container] } } } }),
        );
        let template_spec = &d["spec"]["template"]["spec"];
        assert_eq!(template_spec["containers"][0]["resources"]["requests"], json!({ "cpu": "500m" }));
        assert!(template_spec.get("enableServiceLinks").is_none());
        assert!(template_spec.get("priority").is_none());
        assert_eq!(template_spec["restartPolicy"], "Always");
        assert_eq!(template_spec["containers"][0]["terminationMessagePolicy"], "File");
    }

    #[test]
    fn probes_lifecycle_and_env_are_defaulted() {
        let p = pod(json!({ "containers": [{ "name": "c", "image": "i",
            "livenessProbe": { "httpGet": { "port": 8080 }, "timeoutSeconds": 0, "failureThreshold": 5 },
            "lifecycle": { "preStop": { "httpGet": { "port": 80, "path": "/stop" } } },
            "env": [{ "name": "N", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                    { "name": "L", "valueFrom": { "resourceFieldRef": { "resource": "limits.cpu" } } }] }] }));
        let c = &p["spec"]["containers"][0];
        let probe = &c["livenessProbe"];
        assert_eq!(probe["timeoutSeconds"], 1);
        assert_eq!(probe["periodSeconds"], 10);
        assert_eq!(probe["successThreshold"], 1);
        assert_eq!(probe["failureThreshold"], 5);
        assert_eq!(probe["httpGet"], json!({ "port": 8080, "path": "/", "scheme": "HTTP" }));
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["path"], "/stop");
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"], "0");
    }

    #[test]
    fn volumes_get_modes_and_a_source() {
        let p = pod(json!({ "containers": [], "volumes": [
            { "name": "s", "secret": { "secretName": "x" } },
            { "name": "c", "configMap": { "name": "x", "defaultMode": 256 } },
            { "name": "bare" },
            { "name": "t", "projected": { "sources": [{ "serviceAccountToken": { "path": "token" } }] } },
            { "name": "h", "hostPath": { "path": "/tmp" } } ] }));
        let v = &p["spec"]["volumes"];
        assert_eq!(v[0]["secret"]["defaultMode"], 420);
        assert_eq!(v[1]["configMap"]["defaultMode"], 256);
        assert_eq!(v[2]["emptyDir"], json!({}));
        assert!(v[0].get("emptyDir").is_none());
        assert_eq!(v[3]["projected"]["defaultMode"], 420);
        assert_eq!(v[3]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3600);
        assert_eq!(v[4]["hostPath"]["type"], "");
    }

    #[test]
    fn host_network_pods_record_host_ports() {
        let p = pod(json!({ "hostNetwork": true, "containers": [{ "name": "c", "image": "i",
            "ports": [{ "containerPort": 8080 }, { "containerPort": 9090, "hostPort": 9091 }] }] }));
        let ports = &p["spec"]["containers"][0]["ports"];
        assert_eq!(ports[0]["hostPort"], 8080);
        assert_eq!(ports[1]["hostPort"], 9091);
    }

    #[test]
    fn priority_follows_known_classes_only() {
        let p = pod(json!({ "priorityClassName": "system-node-critical", "containers": [] }));
        assert_eq!(p["spec"]["priority"], 2_000_001_000);
        let p = pod(json!({ "priorityClassName": "my-class", "containers": [] }));
        assert!(p["spec"].get("priority").is_none());
        assert!(p["spec"].get("preemptionPolicy").is_none());
    }

    #[test]
    fn wrong_types_are_left_alone() {
        let cases = [
            json!("not an object"),
            json!({ "spec": "x" }),
            json!({ "spec": { "containers": "x", "volumes": [1, null, "v"] } }),
            json!({ "spec": { "containers": [1, { "name": 3, "image": 4, "ports": "p", "resources": 5,
                "env": [{ "valueFrom": "x" }], "livenessProbe": [] }] } }),
            json!({ "spec": { "containers": [{ "resources": { "limits": "x" } }], "securityContext": 3 } }),
        ];
        for case in cases {
            for (group, kind) in [
                ("", "Pod"),
                ("apps", "Deployment"),
                ("", "Service"),
                ("", "Secret"),
                ("", "Namespace"),
                ("", "LimitRange"),
                ("", "Endpoints"),
                ("discovery.k8s.io", "EndpointSlice"),
                ("", "Node"),
                (RBAC_GROUP, "RoleBinding"),
                ("", "ReplicationController"),
            ] {
                defaulted(group, kind, case.clone());
            }
        }
        let p = pod(json!({ "securityContext": 3, "containers": [{ "name": "c", "image": "i", "resources": 5 }] }));
        assert_eq!(p["spec"]["securityContext"], 3);
        assert_eq!(p["spec"]["containers"][0]["resources"], 5);
        let d = defaulted("apps", "Deployment", json!({ "spec": "x" }));
        assert_eq!(d["spec"], "x");
    }

    #[test]
    fn deployment_defaults() {
        let d = defaulted("apps", "Deployment", json!({ "spec": { "template": {} } }));
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({ "type": "RollingUpdate",
            "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } })
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert!(spec.get("minReadySeconds").is_none());
        assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");

        let d =
            defaulted("apps", "Deployment", json!({ "spec": { "replicas": 0, "strategy": { "type": "Recreate" } } }));
        assert_eq!(d["spec"]["replicas"], 0, "zero replicas is a real value");
        assert_eq!(d["spec"]["strategy"], json!({ "type": "Recreate" }));
    }

    #[test]
    fn replica_sets_and_controllers() {
        let rs = defaulted("apps", "ReplicaSet", json!({ "spec": { "template": { "spec": { "containers": [] } } } }));
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let rc = defaulted(
            "",
            "ReplicationController",
            json!({ "metadata": { "name": "r" }, "spec": { "template": { "metadata": { "labels": { "app": "a" } } } } }),
        );
        assert_eq!(rc["spec"]["selector"], json!({ "app": "a" }));
        assert_eq!(rc["metadata"]["labels"], json!({ "app": "a" }));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn cluster_ip_service_defaults() {
        let s = defaulted(
            "",
            "Service",
            json!({ "spec": { "selector": { "app": "a" },
            "ports": [{ "port": 80 }, { "port": 443, "targetPort": "https", "protocol": "UDP" }] } }),
        );
        let spec = &s["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ports"][0], json!({ "port": 80, "protocol": "TCP", "targetPort": 80 }));
        assert_eq!(spec["ports"][1]["targetPort"], "https");
        assert_eq!(spec["ports"][1]["protocol"], "UDP");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert!(spec.get("externalTrafficPolicy").is_none());
        assert!(spec.get("clusterIP").is_none(), "allocation happens elsewhere");
    }

    #[test]
    fn other_service_types() {
        let s = defaulted("", "Service", json!({ "spec": { "type": "LoadBalancer", "ports": [{ "port": 80 }] } }));
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["allocateLoadBalancerNodePorts"], true);
        let s = defaulted("", "Service", json!({ "spec": { "type": "ExternalName", "externalName": "example.com" } }));
        for absent in ["ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "externalTrafficPolicy"] {
            assert!(s["spec"].get(absent).is_none(), "{absent} is not set on ExternalName services");
        }
        let s = defaulted("", "Service", json!({ "spec": { "clusterIP": "None" } }));
        assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(s["spec"]["ipFamilyPolicy"], "RequireDualStack");
        let s = defaulted("", "Service", json!({ "spec": { "clusterIPs": ["fd00::10"], "selector": { "a": "b" } } }));
        assert_eq!(s["spec"]["clusterIP"], "fd00::10");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv6"]));
        let s = defaulted("", "Service", json!({ "spec": { "sessionAffinity": "ClientIP" } }));
        assert_eq!(s["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
    }

    #[test]
    fn secrets_fold_string_data() {
        let s = defaulted(
            "",
            "Secret",
            json!({ "data": { "a": "b2xk", "keep": "eA==" }, "stringData": { "a": "new", "b": "hi" } }),
        );
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["data"], json!({ "a": "bmV3", "b": "aGk=", "keep": "eA==" }));
        let mut wrong = json!({ "stringData": { "a": 1 } });
        fold_secret_string_data(&mut wrong);
        assert_eq!(wrong, json!({ "stringData": { "a": 1 } }));
        let mut wrong_data = json!({ "data": "x", "stringData": { "a": "b" } });
        fold_secret_string_data(&mut wrong_data);
        assert_eq!(wrong_data["stringData"]["a"], "b");
        let s = defaulted("", "Secret", json!({ "type": "kubernetes.io/tls" }));
        assert_eq!(s["type"], "kubernetes.io/tls");
    }

    #[test]
    fn namespace_defaults() {
        let ns = defaulted("", "Namespace", json!({ "metadata": { "name": "team-a" } }));
        assert_eq!(ns["spec"].get("finalizers"), None, "added on create by admission, not by defaulting");
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
        let ns = defaulted(
            "",
            "Namespace",
            json!({ "metadata": { "name": "b", "labels": { "kubernetes.io/metadata.name": "wrong" } },
                    "status": { "phase": "Terminating" } }),
        );
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "b");
        assert_eq!(ns["status"]["phase"], "Terminating");
    }

    #[test]
    fn node_endpoints_and_slices() {
        let n = defaulted("", "Node", json!({ "status": { "capacity": { "cpu": "4" } } }));
        assert_eq!(n["status"]["allocatable"], json!({ "cpu": "4" }));
        let e = defaulted("", "Endpoints", json!({ "subsets": [{ "ports": [{ "port": 80 }] }] }));
        assert_eq!(e["subsets"][0]["ports"][0]["protocol"], "TCP");
        let s = defaulted("discovery.k8s.io", "EndpointSlice", json!({ "ports": [{ "port": 80 }] }));
        assert_eq!(s["ports"][0], json!({ "port": 80, "name": "", "protocol": "TCP" }));
    }

    #[test]
    fn role_binding_subjects_get_api_groups() {
        let b = defaulted(
            RBAC_GROUP,
            "RoleBinding",
            json!({ "roleRef": { "kind": "Role", "name": "r" }, "subjects": [
            { "kind": "User", "name": "u" }, { "kind": "Group", "name": "g" },
            { "kind": "ServiceAccount", "name": "sa", "namespace": "n" }] }),
        );
        assert_eq!(b["roleRef"]["apiGroup"], RBAC_GROUP);
        assert_eq!(b["subjects"][0]["apiGroup"], RBAC_GROUP);
        assert_eq!(b["subjects"][1]["apiGroup"], RBAC_GROUP);
        assert!(b["subjects"][2].get("apiGroup").is_none());
    }

    #[test]
    fn limit_range_container_defaults() {
        let lr = defaulted(
            "",
            "LimitRange",
            json!({ "spec": { "limits": [
            { "type": "Container", "max": { "cpu": "2" }, "min": { "memory": "64Mi" } },
            { "type": "Pod", "max": { "cpu": "4" } }] } }),
        );
        let item = &lr["spec"]["limits"][0];
        assert_eq!(item["default"], json!({ "cpu": "2" }));
        assert_eq!(item["defaultRequest"], json!({ "cpu": "2", "memory": "64Mi" }));
        assert!(lr["spec"]["limits"][1].get("default").is_none());
    }

    #[test]
    fn defaulting_is_idempotent() {
        let objects = [
            (
                "",
                "Pod",
                json!({ "spec": { "containers": [{ "name": "c", "image": "i", "resources": { "limits": { "cpu": "1" } } }] } }),
            ),
            (
                "apps",
                "Deployment",
                json!({ "spec": { "template": { "spec": { "containers": [{ "name": "c", "image": "i" }] } } } }),
            ),
            ("", "Service", json!({ "spec": { "ports": [{ "port": 1 }], "clusterIP": "10.0.0.1" } })),
            ("", "Secret", json!({ "stringData": { "a": "b" } })),
            ("", "Namespace", json!({ "metadata": { "name": "n" } })),
        ];
        for (group, kind, obj) in objects {
            let once = defaulted(group, kind, obj);
            assert_eq!(defaulted(group, kind, once.clone()), once, "{kind}");
        }
    }
}
