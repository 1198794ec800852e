//! The Endpoints and EndpointSlice controllers: every Service with a selector (not ExternalName,
//! not being deleted) gets an Endpoints object of its name and `discovery.k8s.io/v1`
//! EndpointSlices listing the pods it selects, as upstream 1.32's controllers write them, so
//! `kubectl get endpoints`, `kubectl describe service` and `kubectl get endpointslices` read the same.
//!
//! Endpoints: pods of the Service's namespace that it selects, not terminal, with an IP of the
//! Service's primary family; pods being deleted are left out unless `publishNotReadyAddresses`.
//! Ready pods (all, with `publishNotReadyAddresses`) are `addresses`, the rest
//! `notReadyAddresses`. Each Service port is resolved per pod (a named `targetPort` is looked up
//! in the pod's container ports of the same protocol; a pod lacking it is left out of that port)
//! and subsets are repacked as upstream does: ports offered by exactly the same addresses share a
//! subset. Addresses are keyed by IP and pod uid, as upstream's repacking keys them, so two
//! host-network pods with one IP stay two addresses. The object is only written when it differs
//! from what is wanted (compared after normalizing what the server defaults), so a steady cluster
//! costs no writes. An Endpoints object whose Service is gone is deleted (after a live read shows
//! no Service there), except leader-election records; Services without a selector have their
//! Endpoints left to whoever writes them.
//!
//! EndpointSlices: see `endpoints/slices.rs`, whose module documentation says what they guarantee.
//!
//! Differences from upstream: no `endpoints.kubernetes.io/last-change-trigger-time` annotation and
//! no truncation at 1000 addresses (`endpoints.kubernetes.io/over-capacity`); labels are compared
//! exactly (the headless label included), so a missing headless label is added at once rather
//! than on the next change; Endpoints are not created in a terminating namespace (the API
//! would refuse them).

mod slices;

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::pod::Pod;
use k8s_openapi::api::core::v1::EndpointAddress;
use k8s_openapi::api::core::v1::EndpointPort;
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;

use crate::action::path;
use crate::workload;
use crate::Action;
use crate::Config;
use crate::Snapshot;

/// The component name of the Endpoints controller (upstream's).
pub const COMPONENT: &str = "endpoint-controller";
/// The component name of the EndpointSlice controller (upstream's).
pub const SLICE_COMPONENT: &str = "endpointslice-controller";
/// Leader-election records kept in Endpoints objects carry this annotation; they have no
/// Service and must survive.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// The label upstream puts on the Endpoints and EndpointSlices of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The writes both controllers want now: Endpoints first, then EndpointSlices.
pub fn reconcile(snapshot: &Snapshot, _config: &Config) -> Vec<Action> {
    let served = served_services(snapshot);
    let mut actions = reconcile_endpoints(snapshot, &served);
    actions.extend(slices::reconcile(snapshot, &served));
    actions
}

/// A Service whose endpoints these controllers write, with the pods it selects (same
/// namespace, selected, not terminal; IPs and deletion are judged by each controller).
struct Served<'a> {
    service: &'a Service,
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
    ports: &'a [ServicePort],
    publish_not_ready: bool,
    /// `clusterIP: None` (headless): such a Service gets endpoints even without ports.
    cluster_ip_none: bool,
    /// Upstream's "IP set": a cluster IP that is neither empty nor `None`.
    ip_set: bool,
    /// The Service's primary IP family is IPv6.
    ipv6: bool,
    pods: Vec<&'a Pod>,
}

impl Served<'_> {
    /// The Service's labels, with the headless label exactly when it has no cluster IP.
    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = workload::labels(&self.service.metadata);
        if self.ip_set {
            labels.remove(HEADLESS_LABEL);
        } else {
            labels.insert(HEADLESS_LABEL.to_string(), String::new());
        }
        labels
    }

    /// The pod's hostname, when the pod asks to be known by it under this Service (upstream:
    /// `spec.hostname` set and `spec.subdomain` naming the Service).
    fn hostname_of(&self, pod: &Pod) -> Option<String> {
        let spec = pod.spec.as_ref()?;
        let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
        (spec.subdomain.as_deref() == Some(self.name)).then(|| hostname.to_string())
    }
}

/// The Services with a selector that are neither ExternalName nor being deleted, in snapshot
/// order.
fn served_services(snapshot: &Snapshot) -> Vec<Served<'_>> {
    let mut pods_by_namespace: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in &snapshot.pods {
        if let Some(ns) = pod.metadata.namespace.as_deref() {
            pods_by_namespace.entry(ns).or_default().push(pod);
        }
    }
    let mut served = Vec::new();
    for service in &snapshot.services {
        let meta = &service.metadata;
        let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            continue;
        };
        let Some(spec) = service.spec.as_ref() else { continue };
        if meta.deletion_timestamp.is_some() || spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(selector) = workload::map_selector(spec.selector.as_ref()) else { continue };
        let pods = pods_by_namespace
            .get(namespace)
            .map(|pods| {
                pods.iter()
                    .copied()
                    .filter(|pod| workload::selects(&selector, &pod.metadata) && !workload::pod_is_terminated(pod))
                    .collect()
            })
            .unwrap_or_default();
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
        served.push(Served {
            service,
            namespace,
            name,
            uid: meta.uid.as_deref().unwrap_or(""),
            ports: spec.ports.as_deref().unwrap_or(&[]),
            publish_not_ready: spec.publish_not_ready_addresses == Some(true),
            cluster_ip_none: cluster_ip == "None",
            ip_set: !cluster_ip.is_empty() && cluster_ip != "None",
            ipv6: spec.ip_families.as_ref().and_then(|f| f.first()).is_some_and(|f| f == "IPv6"),
            pods,
        });
    }
    served
}

/// Whether objects may be created in `namespace` (not while it terminates: the API refuses,
/// and the attempt would repeat every round).
fn accepts_creates(snapshot: &Snapshot, namespace: &str) -> bool {
    !snapshot.namespaces.iter().any(|ns| {
        ns.metadata.name.as_deref() == Some(namespace)
            && (ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"))
    })
}

/// The pod's IP of the given family (status.podIP first, then status.podIPs).
fn pod_ip(pod: &Pod, ipv6: bool) -> Option<&str> {
    let status = pod.status.as_ref()?;
    status
        .pod_ip
        .iter()
        .map(String::as_str)
        .chain(status.pod_ips.iter().flatten().map(|p| p.ip.as_str()))
        .find(|ip| ip.parse::<IpAddr>().is_ok_and(|addr| addr.is_ipv6() == ipv6))
}

/// A protocol as the server defaults it.
fn protocol(protocol: Option<&str>) -> String {
    protocol.filter(|p| !p.is_empty()).unwrap_or("TCP").to_string()
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_string)
}

/// The port number `port` reaches on `pod`: its targetPort (the port itself when unset), or
/// the container port of that name and protocol (None when the pod has none such; restartable
/// init containers, i.e. sidecars, count as upstream counts them).
fn resolve_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let name = match &port.target_port {
        None | Some(IntOrString::Int(0)) => return Some(port.port),
        Some(IntOrString::Int(number)) => return Some(*number),
        Some(IntOrString::String(name)) if name.is_empty() => return Some(port.port),
        Some(IntOrString::String(name)) => name,
    };
    let wanted = protocol(port.protocol.as_deref());
    let spec = pod.spec.as_ref()?;
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name.as_str()) && protocol(p.protocol.as_deref()) == wanted)
        .map(|p| p.container_port)
}

/// An ObjectReference, normalized (empty fields are absent), ordered so lists of them sort
/// deterministically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    api_version: Option<String>,
    resource_version: Option<String>,
    field_path: Option<String>,
}

impl Reference {
    fn to_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        Self {
            kind: Some("Pod".to_string()),
            namespace: non_empty(meta.namespace.as_deref()),
            name: non_empty(meta.name.as_deref()),
            uid: non_empty(meta.uid.as_deref()),
            api_version: None,
            resource_version: None,
            field_path: None,
        }
    }

    fn from_object(r: &ObjectReference) -> Self {
        Self {
            kind: non_empty(r.kind.as_deref()),
            namespace: non_empty(r.namespace.as_deref()),
            name: non_empty(r.name.as_deref()),
            uid: non_empty(r.uid.as_deref()),
            api_version: non_empty(r.api_version.as_deref()),
            resource_version: non_empty(r.resource_version.as_deref()),
            field_path: non_empty(r.field_path.as_deref()),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        let fields = [
            ("apiVersion", &self.api_version),
            ("fieldPath", &self.field_path),
            ("kind", &self.kind),
            ("name", &self.name),
            ("namespace", &self.namespace),
            ("resourceVersion", &self.resource_version),
            ("uid", &self.uid),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                m.insert(key.to_string(), json!(v));
            }
        }
        Value::Object(m)
    }
}

/// The merge patch of `metadata.labels` that turns `existing` into `desired` (labels not wanted
/// are removed), or None when they are equal.
fn label_patch(existing: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> Option<Value> {
    if existing == desired {
        return None;
    }
    let mut patch = Map::new();
    for key in existing.keys().filter(|k| !desired.contains_key(*k)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, value) in desired {
        if existing.get(key) != Some(value) {
            patch.insert(key.clone(), json!(value));
        }
    }
    Some(Value::Object(patch))
}

// ---------------------------------------------------------------------------------------------
// Endpoints.

/// One address of an Endpoints subset. `order` (the parsed IP) comes first so addresses sort
/// numerically; `pod_uid` makes two pods of one IP two addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Address {
    order: Option<IpAddr>,
    ip: String,
    pod_uid: String,
    hostname: Option<String>,
    node_name: Option<String>,
    target: Option<Reference>,
}

impl Address {
    fn from_object(a: &EndpointAddress) -> Self {
        let target = a.target_ref.as_ref().map(Reference::from_object);
        Self {
            order: a.ip.parse().ok(),
            ip: a.ip.clone(),
            pod_uid: target.as_ref().and_then(|t| t.uid.clone()).unwrap_or_default(),
            hostname: non_empty(a.hostname.as_deref()),
            node_name: non_empty(a.node_name.as_deref()),
            target,
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ip".to_string(), json!(self.ip));
        if let Some(hostname) = &self.hostname {
            m.insert("hostname".to_string(), json!(hostname));
        }
        if let Some(node) = &self.node_name {
            m.insert("nodeName".to_string(), json!(node));
        }
        if let Some(target) = &self.target {
            m.insert("targetRef".to_string(), target.to_json());
        }
        Value::Object(m)
    }
}

/// One port of an Endpoints subset, as the server stores it (protocol always set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: Option<String>,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

impl Port {
    fn from_object(p: &EndpointPort) -> Self {
        Self {
            name: non_empty(p.name.as_deref()),
            port: p.port,
            protocol: protocol(p.protocol.as_deref()),
            app_protocol: non_empty(p.app_protocol.as_deref()),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(name) = &self.name {
            m.insert("name".to_string(), json!(name));
        }
        m.insert("port".to_string(), json!(self.port));
        m.insert("protocol".to_string(), json!(self.protocol));
        if let Some(app) = &self.app_protocol {
            m.insert("appProtocol".to_string(), json!(app));
        }
        Value::Object(m)
    }
}

/// A subset with each list sorted: the canonical form both the wanted and the stored subsets are
/// brought to before they are compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Subset {
    ports: Vec<Port>,
    addresses: Vec<Address>,
    not_ready: Vec<Address>,
}

impl Subset {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.addresses.is_empty() {
            m.insert("addresses".to_string(), self.addresses.iter().map(Address::to_json).collect());
        }
        if !self.not_ready.is_empty() {
            m.insert("notReadyAddresses".to_string(), self.not_ready.iter().map(Address::to_json).collect());
        }
        if !self.ports.is_empty() {
            m.insert("ports".to_string(), self.ports.iter().map(Port::to_json).collect());
        }
        Value::Object(m)
    }
}

/// The subsets a Service wants, repacked and sorted.
fn desired_subsets(served: &Served<'_>) -> Vec<Subset> {
    // Per port (None: a headless Service without ports), each address and whether it is ready.
    let mut by_port: BTreeMap<Option<Port>, BTreeMap<Address, bool>> = BTreeMap::new();
    for pod in &served.pods {
        if pod.metadata.deletion_timestamp.is_some() && !served.publish_not_ready {
            continue;
        }
        let Some(ip) = pod_ip(pod, served.ipv6) else { continue };
        let target = Reference::to_pod(pod);
        let address = Address {
            order: ip.parse().ok(),
            ip: ip.to_string(),
            pod_uid: target.uid.clone().unwrap_or_default(),
            hostname: served.hostname_of(pod),
            node_name: non_empty(pod.spec.as_ref().and_then(|s| s.node_name.as_deref())),
            target: Some(target),
        };
        let ready = served.publish_not_ready || workload::pod_is_ready(pod);
        let mut offer = |port: Option<Port>| {
            // Not ready wins should one address be offered twice.
            let slot = by_port.entry(port).or_default().entry(address.clone()).or_insert(ready);
            *slot = *slot && ready;
        };
        if served.ports.is_empty() {
            if served.cluster_ip_none {
                offer(None);
            }
            continue;
        }
        for service_port in served.ports {
            let Some(number) = resolve_port(pod, service_port) else { continue };
            offer(Some(Port {
                name: non_empty(service_port.name.as_deref()),
                port: number,
                protocol: protocol(service_port.protocol.as_deref()),
                app_protocol: non_empty(service_port.app_protocol.as_deref()),
            }));
        }
    }
    // Ports offered by exactly the same addresses (with the same readiness) share a subset.
    let mut by_addresses: BTreeMap<Vec<(Address, bool)>, Vec<Port>> = BTreeMap::new();
    for (port, addresses) in by_port {
        by_addresses.entry(addresses.into_iter().collect()).or_default().extend(port);
    }
    let mut subsets: Vec<Subset> = by_addresses
        .into_iter()
        .map(|(addresses, mut ports)| {
            ports.sort();
            let (ready, not_ready): (Vec<_>, Vec<_>) = addresses.into_iter().partition(|(_, ready)| *ready);
            Subset {
                ports,
                addresses: ready.into_iter().map(|(a, _)| a).collect(),
                not_ready: not_ready.into_iter().map(|(a, _)| a).collect(),
            }
        })
        .collect();
    subsets.sort();
    subsets
}

/// A stored object's subsets in the canonical form (null subsets are none).
fn existing_subsets(endpoints: &Endpoints) -> Vec<Subset> {
    let sorted_addresses = |list: &Option<Vec<EndpointAddress>>| {
        let mut out: Vec<Address> = list.iter().flatten().map(Address::from_object).collect();
        out.sort();
        out
    };
    let mut subsets: Vec<Subset> = endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| {
            let mut ports: Vec<Port> = s.ports.iter().flatten().map(Port::from_object).collect();
            ports.sort();
            Subset {
                ports,
                addresses: sorted_addresses(&s.addresses),
                not_ready: sorted_addresses(&s.not_ready_addresses),
            }
        })
        .collect();
    subsets.sort();
    subsets
}

fn reconcile_endpoints(snapshot: &Snapshot, served: &[Served<'_>]) -> Vec<Action> {
    let existing: BTreeMap<(&str, &str), &Endpoints> = snapshot
        .endpoints
        .iter()
        .filter_map(|ep| Some(((ep.metadata.namespace.as_deref()?, ep.metadata.name.as_deref()?), &**ep)))
        .collect();
    let mut actions = Vec::new();
    for svc in served {
        let subsets = desired_subsets(svc);
        let labels = svc.labels();
        let subsets_json: Vec<Value> = subsets.iter().map(Subset::to_json).collect();
        match existing.get(&(svc.namespace, svc.name)) {
            None => {
                if accepts_creates(snapshot, svc.namespace) {
                    actions.push(Action::Create {
                        collection: path::core("endpoints", Some(svc.namespace), None),
                        object: json!({"apiVersion": "v1", "kind": "Endpoints",
                            "metadata": {"name": svc.name, "namespace": svc.namespace, "labels": labels},
                            "subsets": subsets_json}),
                    });
                }
            }
            // Going away; it is recreated once it is gone.
            Some(ep) if ep.metadata.deletion_timestamp.is_some() => {}
            Some(ep) => {
                let labels_patch = label_patch(&workload::labels(&ep.metadata), &labels);
                let subsets_differ = existing_subsets(ep) != subsets;
                if labels_patch.is_none() && !subsets_differ {
                    continue;
                }
                let mut patch = json!({"metadata": {"resourceVersion": ep.metadata.resource_version}});
                if let Some(labels) = labels_patch {
                    patch["metadata"]["labels"] = labels;
                }
                if subsets_differ {
                    patch["subsets"] = Value::Array(subsets_json);
                }
                actions.push(Action::MergePatch {
                    path: path::core("endpoints", Some(svc.namespace), Some(svc.name)),
                    patch,
                });
            }
        }
    }
    actions.extend(orphaned_endpoints(snapshot));
    actions
}

/// Deletes of Endpoints objects whose Service is gone, each carried out only if a live read
/// finds nothing at the Service's path (the cache may not show a new Service yet).
fn orphaned_endpoints(snapshot: &Snapshot) -> Vec<Action> {
    let services: std::collections::BTreeSet<(&str, &str)> = snapshot
        .services
        .iter()
        .filter_map(|s| Some((s.metadata.namespace.as_deref()?, s.metadata.name.as_deref()?)))
        .collect();
    let mut actions = Vec::new();
    for ep in &snapshot.endpoints {
        let meta = &ep.metadata;
        let (Some(namespace), Some(name), Some(uid)) =
            (meta.namespace.as_deref(), meta.name.as_deref(), meta.uid.as_deref())
        else {
            continue;
        };
        if services.contains(&(namespace, name))
            || meta.deletion_timestamp.is_some()
            || meta.annotations.as_ref().is_some_and(|a| a.contains_key(LEADER_ANNOTATION))
        {
            continue;
        }
        actions.push(Action::Verified {
            absent: vec![(path::core("services", Some(namespace), Some(name)), String::new())],
            action: Box::new(Action::delete(path::core("endpoints", Some(namespace), Some(name)), uid)),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde::de::DeserializeOwned;
    use skiff_api_types::defaults::apply_defaults;
    use skiff_api_types::validation::validate;

    use super::*;

    /// A tiny API server: objects by (resource, namespace, name), writes carried out as the real
    /// server would (defaults, validation, uid and resourceVersion), and a harness check that
    /// every patch changes something and every create is of a new name.
    pub(super) struct World {
        pub(super) objects: BTreeMap<(String, String, String), Value>,
        next: u64,
        /// Every write carried out, as `VERB resource/name`.
        pub(super) log: Vec<String>,
    }

    fn kind_of(resource: &str) -> (&'static str, &'static str) {
        match resource {
            "endpoints" => ("", "Endpoints"),
            "endpointslices" => ("discovery.k8s.io", "EndpointSlice"),
            "services" => ("", "Service"),
            "pods" => ("", "Pod"),
            "nodes" => ("", "Node"),
            "namespaces" => ("", "Namespace"),
            other => panic!("unexpected resource {other}"),
        }
    }

    /// (resource, namespace, name) of an API path.
    fn parse(path: &str) -> (String, String, Option<String>) {
        let parts: Vec<&str> = path.split('/').collect();
        let i = parts.iter().position(|p| *p == "namespaces").expect("namespaced path");
        (parts[i + 2].to_string(), parts[i + 1].to_string(), parts.get(i + 3).map(|s| s.to_string()))
    }

    fn merge(target: &mut Value, patch: &Value) {
        let Value::Object(patch) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(map) = target else { return };
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    fn checked(resource: &str, obj: &mut Value) {
        let (group, kind) = kind_of(resource);
        apply_defaults(group, kind, obj);
        let errors: Vec<String> = validate(group, kind, obj, None).iter().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{kind} {obj}: {errors:?}");
    }

    impl World {
        pub(super) fn new() -> Self {
            Self { objects: BTreeMap::new(), next: 0, log: Vec::new() }
        }

        /// Adds (or replaces) an object of `resource` as a user would create it; it gets uid
        /// `uid-<name>` unless it has one.
        pub(super) fn put(&mut self, resource: &str, mut obj: Value) -> &mut Self {
            let (group, kind) = kind_of(resource);
            apply_defaults(group, kind, &mut obj);
            let name = obj["metadata"]["name"].as_str().expect("fixture name").to_string();
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or("").to_string();
            if obj["metadata"]["uid"].is_null() {
                obj["metadata"]["uid"] = json!(format!("uid-{name}"));
            }
            self.next += 1;
            obj["metadata"]["resourceVersion"] = json!(self.next.to_string());
            self.objects.insert((resource.to_string(), ns, name), obj);
            self
        }

        pub(super) fn remove(&mut self, resource: &str, name: &str) {
            self.objects.remove(&(resource.to_string(), "default".to_string(), name.to_string())).expect("present");
        }

        pub(super) fn get(&self, resource: &str, name: &str) -> Option<&Value> {
            self.objects.get(&(resource.to_string(), "default".to_string(), name.to_string()))
        }

        pub(super) fn all(&self, resource: &str) -> Vec<&Value> {
            self.objects.iter().filter(|((r, _, _), _)| r == resource).map(|(_, v)| v).collect()
        }

        fn typed<T: DeserializeOwned>(&self, resource: &str) -> Vec<Arc<T>> {
            self.all(resource)
                .into_iter()
                .map(|v| Arc::new(serde_json::from_value(v.clone()).expect("typed")))
                .collect()
        }

        pub(super) fn snapshot(&self) -> Snapshot {
            let mut s = Snapshot::empty("2026-01-01T00:00:00Z".parse().expect("time"));
            s.services = self.typed("services");
            s.pods = self.typed("pods");
            s.endpoints = self.typed("endpoints");
            s.endpoint_slices = self.typed("endpointslices");
            s.nodes = self.typed("nodes");
            s.namespaces = self.typed("namespaces");
            s
        }

        pub(super) fn reconcile(&self) -> Vec<Action> {
            reconcile(&self.snapshot(), &Config::default())
        }

        pub(super) fn apply(&mut self, actions: &[Action]) {
            for action in actions {
                self.apply_one(action);
            }
        }

        fn apply_one(&mut self, action: &Action) {
            self.next += 1;
            let rv = self.next.to_string();
            match action {
                Action::Create { collection, object } => {
                    let (resource, ns, _) = parse(&format!("{collection}/x"));
                    let mut obj = object.clone();
                    if obj["metadata"]["name"].is_null() {
                        let prefix = obj["metadata"]["generateName"].as_str().expect("a name").to_string();
                        obj["metadata"]["name"] = json!(format!("{prefix}{:05}", self.next));
                    }
                    obj["metadata"]["uid"] = json!(format!("gen-{}", self.next));
                    obj["metadata"]["resourceVersion"] = json!(rv);
                    checked(&resource, &mut obj);
                    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
                    let key = (resource.clone(), ns, name.clone());
                    assert!(!self.objects.contains_key(&key), "create of an existing object {key:?}");
                    self.log.push(format!("create {resource}/{name}"));
                    self.objects.insert(key, obj);
                }
                Action::MergePatch { path, patch } => {
                    let (resource, ns, name) = parse(path);
                    let name = name.expect("named");
                    let key = (resource.clone(), ns, name.clone());
                    let old = self.objects.get(&key).expect("patch of a missing object").clone();
                    assert_eq!(patch["metadata"]["resourceVersion"], old["metadata"]["resourceVersion"], "stale patch");
                    let mut new = old.clone();
                    merge(&mut new, patch);
                    checked(&resource, &mut new);
                    assert_ne!(new, old, "patch {patch} changes nothing");
                    new["metadata"]["resourceVersion"] = json!(rv);
                    self.log.push(format!("patch {resource}/{name}"));
                    self.objects.insert(key, new);
                }
                Action::Delete { path, uid, .. } => {
                    let (resource, ns, name) = parse(path);
                    let name = name.expect("named");
                    let key = (resource.clone(), ns, name.clone());
                    let old = self.objects.get(&key).expect("delete of a missing object");
                    if let Some(uid) = uid {
                        assert_eq!(old["metadata"]["uid"].as_str(), Some(uid.as_str()), "precondition");
                    }
                    self.log.push(format!("delete {resource}/{name}"));
                    self.objects.remove(&key);
                }
                Action::Verified { absent, action } => {
                    for (path, uid) in absent {
                        let (resource, ns, name) = parse(path);
                        let found = self.objects.get(&(resource, ns, name.expect("named")));
                        if found.is_some_and(|f| uid.is_empty() || f["metadata"]["uid"].as_str() == Some(uid)) {
                            return;
                        }
                    }
                    self.apply_one(action);
                }
                Action::Event { .. } => {}
            }
        }

        /// Runs rounds until nothing is wanted; returns how many rounds wrote. A steady state
        /// must be reached within three rounds.
        pub(super) fn converge(&mut self) -> usize {
            for round in 0..4 {
                let actions = self.reconcile();
                if actions.is_empty() {
                    return round;
                }
                self.apply(&actions);
            }
            panic!("no steady state: still wants {:?}", self.reconcile());
        }
    }

    pub(super) fn service(name: &str, ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name, "tier": "front"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": ports}})
    }

    pub(super) fn web_service() -> Value {
        service("web", json!([{"name": "http", "port": 80, "targetPort": 8080}]))
    }

    pub(super) fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn address(name: &str, ip: &str) -> Value {
        json!({"ip": ip, "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": format!("uid-{name}")}})
    }

    fn endpoints_actions(actions: &[Action]) -> Vec<&Action> {
        actions
            .iter()
            .filter(|a| {
                let target = a.target();
                target.ends_with("/endpoints") || target.contains("/endpoints/")
            })
            .collect()
    }

    #[test]
    fn ready_and_not_ready_pods() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("b", "10.0.0.10", true));
        world.put("pods", pod("a", "10.0.0.9", true));
        world.put("pods", pod("c", "10.0.0.3", false));
        let mut other = pod("other", "10.0.0.4", true);
        other["metadata"]["labels"] = json!({"app": "db"});
        world.put("pods", other);
        let mut done = pod("done", "10.0.0.5", false);
        done["status"]["phase"] = json!("Succeeded");
        world.put("pods", done);
        let mut pending = pod("pending", "", false);
        pending["status"] = json!({"phase": "Pending"});
        world.put("pods", pending);
        let mut elsewhere = pod("elsewhere", "10.0.0.6", true);
        elsewhere["metadata"]["namespace"] = json!("other");
        world.put("pods", elsewhere);

        let actions = world.reconcile();
        let ep = endpoints_actions(&actions);
        assert_eq!(ep.len(), 1, "{actions:?}");
        let Action::Create { collection, object } = ep[0] else { panic!("not a create: {ep:?}") };
        assert_eq!(collection, "/api/v1/namespaces/default/endpoints");
        assert_eq!(
            object["metadata"],
            json!({"name": "web", "namespace": "default",
            "labels": {"app": "web", "tier": "front"}})
        );
        // Sorted numerically by IP; the port resolved and its protocol explicit.
        assert_eq!(
            object["subsets"],
            json!([{"addresses": [address("a", "10.0.0.9"), address("b", "10.0.0.10")],
                "notReadyAddresses": [address("c", "10.0.0.3")],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
        );
        assert_eq!(world.converge(), 1);
        assert_eq!(world.get("endpoints", "web").expect("created")["subsets"], object["subsets"]);

        // Readiness changes are patched, conditionally.
        world.put("pods", pod("c", "10.0.0.3", true));
        let actions = world.reconcile();
        let ep = endpoints_actions(&actions);
        let Action::MergePatch { path, patch } = ep[0] else { panic!("not a patch: {ep:?}") };
        assert_eq!(path, "/api/v1/namespaces/default/endpoints/web");
        assert!(patch["metadata"]["resourceVersion"].is_string());
        assert!(patch["metadata"].get("labels").is_none(), "labels unchanged: {patch}");
        assert_eq!(patch["subsets"][0]["addresses"].as_array().map(Vec::len), Some(3));
        assert!(patch["subsets"][0].get("notReadyAddresses").is_none());
        assert_eq!(world.converge(), 1);
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let mut world = World::new();
        world.put(
            "services",
            service(
                "web",
                json!([{"name": "http", "port": 80, "targetPort": "http"},
                    {"name": "metrics", "port": 9090}]),
            ),
        );
        world.put("pods", pod("a", "10.0.0.1", true));
        let mut b = pod("b", "10.0.0.2", true);
        b["spec"]["containers"][0]["ports"] = json!([{"name": "web", "containerPort": 8080}]);
        world.put("pods", b);
        // A port of that name but another protocol does not count.
        let mut c = pod("c", "10.0.0.3", true);
        c["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 53, "protocol": "UDP"}]);
        world.put("pods", c);
        // A sidecar's port counts.
        let mut d = pod("d", "10.0.0.4", true);
        d["spec"]["containers"][0]["ports"] = json!([]);
        d["spec"]["initContainers"] = json!([{"name": "side", "image": "envoy", "restartPolicy": "Always",
            "ports": [{"name": "http", "containerPort": 8443}]}]);
        world.put("pods", d);
        assert_eq!(world.converge(), 1);
        let subsets = &world.get("endpoints", "web").expect("created")["subsets"];
        // Ports offered by the same addresses share a subset.
        assert_eq!(
            *subsets,
            json!([
                {"addresses": [address("a", "10.0.0.1")],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
                {"addresses": [address("d", "10.0.0.4")],
                    "ports": [{"name": "http", "port": 8443, "protocol": "TCP"}]},
                {"addresses": [address("a", "10.0.0.1"), address("b", "10.0.0.2"), address("c", "10.0.0.3"),
                    address("d", "10.0.0.4")],
                    "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}]},
            ])
        );
    }

    #[test]
    fn a_port_no_pod_offers_gives_empty_subsets() {
        let mut world = World::new();
        world.put("services", service("web", json!([{"port": 80, "targetPort": "nope"}])));
        world.put("pods", pod("a", "10.0.0.1", true));
        let actions = world.reconcile();
        let Action::Create { object, .. } = endpoints_actions(&actions)[0] else { panic!("{actions:?}") };
        assert_eq!(object["subsets"], json!([]));
        assert_eq!(world.converge(), 1);
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready() {
        let mut world = World::new();
        let mut svc = web_service();
        svc["spec"]["publishNotReadyAddresses"] = json!(true);
        world.put("services", svc);
        world.put("pods", pod("a", "10.0.0.1", false));
        let mut leaving = pod("b", "10.0.0.2", true);
        leaving["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        world.put("pods", leaving);
        assert_eq!(world.converge(), 1);
        assert_eq!(
            world.get("endpoints", "web").expect("created")["subsets"],
            json!([{"addresses": [address("a", "10.0.0.1"), address("b", "10.0.0.2")],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
        );
    }

    #[test]
    fn terminating_pods_leave_endpoints() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        world.put("pods", pod("b", "10.0.0.2", true));
        assert_eq!(world.converge(), 1);
        let mut leaving = pod("b", "10.0.0.2", true);
        leaving["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        world.put("pods", leaving);
        assert_eq!(world.converge(), 1);
        assert_eq!(
            world.get("endpoints", "web").expect("kept")["subsets"],
            json!([{"addresses": [address("a", "10.0.0.1")],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
        );
    }

    #[test]
    fn pods_sharing_an_ip_stay_two_addresses() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "192.168.1.5", true));
        world.put("pods", pod("b", "192.168.1.5", true));
        assert_eq!(world.converge(), 1);
        assert_eq!(
            world.get("endpoints", "web").expect("created")["subsets"][0]["addresses"],
            json!([address("a", "192.168.1.5"), address("b", "192.168.1.5")])
        );
    }

    #[test]
    fn services_without_selector_or_external_name_are_left_alone() {
        let mut world = World::new();
        let mut manual = web_service();
        manual["spec"].as_object_mut().expect("spec").remove("selector");
        world.put("services", manual);
        let mut external = service("ext", json!([{"port": 80}]));
        external["spec"] = json!({"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}});
        world.put("services", external);
        world.put("pods", pod("a", "10.0.0.1", true));
        // Endpoints written by a user for them stay as they are.
        for name in ["web", "ext"] {
            world.put(
                "endpoints",
                json!({"metadata": {"name": name, "namespace": "default"},
                    "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}),
            );
        }
        assert_eq!(world.reconcile(), vec![]);
    }

    #[test]
    fn endpoints_of_a_deleted_service_go_but_leader_records_stay() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        world.put(
            "endpoints",
            json!({"metadata": {"name": "kube-scheduler", "namespace": "default",
                "annotations": {LEADER_ANNOTATION: "{\"holderIdentity\":\"x\"}"}}}),
        );
        world.remove("services", "web");
        let actions = endpoints_actions(&world.reconcile()).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(
            actions,
            vec![Action::Verified {
                absent: vec![("/api/v1/namespaces/default/services/web".to_string(), String::new())],
                action: Box::new(Action::Delete {
                    path: "/api/v1/namespaces/default/endpoints/web".to_string(),
                    uid: world.get("endpoints", "web").and_then(|e| e["metadata"]["uid"].as_str()).map(str::to_string),
                    propagation: None,
                    grace: None,
                }),
            }]
        );
        // A live read that finds the Service stops the delete.
        let mut stale = world.objects.clone();
        world.put("services", web_service());
        world.apply(&actions);
        assert!(world.get("endpoints", "web").is_some());
        std::mem::swap(&mut world.objects, &mut stale);
        world.apply(&actions);
        assert!(world.get("endpoints", "web").is_none());
        assert!(world.get("endpoints", "kube-scheduler").is_some());
        assert_eq!(world.converge(), 0);
    }

    #[test]
    fn stored_forms_the_server_defaults_or_reorders_need_no_write() {
        let mut world = World::new();
        world.put("services", service("web", json!([{"name": "a", "port": 80}, {"name": "b", "port": 81}])));
        world.put("pods", pod("x", "10.0.0.2", true));
        world.put("pods", pod("y", "10.0.0.1", true));
        // Written by someone else in another order, protocol left to the server's defaults.
        let mut ep = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "subsets": [{"addresses": [address("x", "10.0.0.2"), address("y", "10.0.0.1")],
                "ports": [{"name": "b", "port": 81}, {"name": "a", "port": 80}]}]});
        world.put("endpoints", ep.clone());
        assert!(endpoints_actions(&world.reconcile()).is_empty(), "{:?}", world.reconcile());
        // Null subsets are no subsets.
        world.remove("pods", "x");
        world.remove("pods", "y");
        ep["subsets"] = Value::Null;
        world.put("endpoints", ep);
        assert!(endpoints_actions(&world.reconcile()).is_empty(), "{:?}", world.reconcile());
    }

    #[test]
    fn label_changes_propagate() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        let mut svc = web_service();
        svc["metadata"]["labels"] = json!({"app": "web", "version": "2"});
        world.put("services", svc);
        let actions = world.reconcile();
        let ep = endpoints_actions(&actions);
        let Action::MergePatch { patch, .. } = ep[0] else { panic!("{actions:?}") };
        assert_eq!(patch["metadata"]["labels"], json!({"tier": null, "version": "2"}));
        assert!(patch.get("subsets").is_none());
        assert_eq!(world.converge(), 1);
        assert_eq!(
            world.get("endpoints", "web").expect("kept")["metadata"]["labels"],
            json!({"app": "web", "version": "2"})
        );
    }

    #[test]
    fn headless_services_without_ports_list_addresses() {
        let mut world = World::new();
        let mut svc = service("db", json!([]));
        svc["spec"]["clusterIP"] = json!("None");
        svc["spec"].as_object_mut().expect("spec").remove("ports");
        world.put("services", svc);
        let mut p = pod("db-0", "10.0.0.7", true);
        p["spec"]["hostname"] = json!("db-0");
        p["spec"]["subdomain"] = json!("db");
        world.put("pods", p);
        assert_eq!(world.converge(), 1);
        let ep = world.get("endpoints", "db").expect("created");
        assert_eq!(ep["metadata"]["labels"][HEADLESS_LABEL], json!(""));
        let mut want = address("db-0", "10.0.0.7");
        want["hostname"] = json!("db-0");
        assert_eq!(ep["subsets"], json!([{"addresses": [want]}]));
    }

    #[test]
    fn nothing_is_created_in_a_terminating_namespace() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        world.put(
            "namespaces",
            json!({"metadata": {"name": "default", "namespace": "default", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"phase": "Terminating"}}),
        );
        assert_eq!(world.reconcile(), vec![]);
    }
}
