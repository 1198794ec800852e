//! The EndpointSlice controller: every Service the Endpoints controller serves also gets IPv4
//! `discovery.k8s.io/v1` EndpointSlices, labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` (plus the Service's
//! labels and the headless label), controlled by the Service, as upstream 1.32 writes them.
//!
//! Every selected, non-terminal pod with an IPv4 address is one endpoint, pods being deleted
//! included: `ready` (serving and not terminating, or always with `publishNotReadyAddresses`),
//! `serving` (pod Ready), `terminating` (deletionTimestamp set), with nodeName, zone (the node's
//! `topology.kubernetes.io/zone`), hostname (as in Endpoints) and a Pod targetRef. Pods are grouped
//! by their resolved port list (a pod lacking a named port has a shorter list, as upstream) and
//! each group is cut into slices of at most 100 endpoints. A Service with no endpoints at all
//! gets one empty placeholder slice, as upstream.
//!
//! Existing slices are reused to keep writes few: an endpoint stays in the slice it is in while
//! its ports are the same, new endpoints fill slices already being rewritten, then any slice with
//! room, then slices whose port list is no longer wanted, and only then new slices
//! (`generateName: <service>-`). Emptied slices, slices of another address type and slices
//! labelled for the Service but not owned by it (a Service of the same name that was deleted and
//! recreated) are deleted (uid precondition). Slices are compared in a canonical form (sorted, server
//! defaults applied), so a steady cluster costs no writes. Slices of Services that are gone are
//! left to the garbage collector. Differences from upstream: IPv4 only (upstream writes a slice
//! family per Service IP family), no topology hints, no trigger-time annotation, and no
//! rebalancing of half-empty slices beyond what new endpoints fill.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::net::IpAddr;

use crate::pod::Pod;
use k8s_openapi::api::discovery::v1::Endpoint as SliceEndpoint;
use k8s_openapi::api::discovery::v1::EndpointPort as SlicePortObject;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;

use super::label_patch;
use super::non_empty;
use super::protocol;
use super::resolve_port;
use super::Reference;
use super::Served;
use crate::action::path;
use crate::workload;
use crate::Action;
use crate::Snapshot;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (upstream's).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The most endpoints this controller puts in one slice (upstream's `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const GROUP_VERSION: &str = "discovery.k8s.io/v1";

/// A slice port as the server stores it (`name` and `protocol` defaulted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: String,
    port: Option<i32>,
    protocol: String,
    app_protocol: Option<String>,
}

impl Port {
    fn from_object(p: &SlicePortObject) -> Self {
        Self {
            name: p.name.clone().unwrap_or_default(),
            port: p.port,
            protocol: protocol(p.protocol.as_deref()),
            app_protocol: non_empty(p.app_protocol.as_deref()),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".to_string(), json!(self.name));
        if let Some(port) = self.port {
            m.insert("port".to_string(), json!(port));
        }
        m.insert("protocol".to_string(), json!(self.protocol));
        if let Some(app) = &self.app_protocol {
            m.insert("appProtocol".to_string(), json!(app));
        }
        Value::Object(m)
    }
}

/// Identifies an endpoint across slices: its addresses and its pod.
type Key = (Option<IpAddr>, Vec<String>, String);

/// One endpoint in canonical form; the first three fields are its [`Key`], so endpoints sort by IP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    order: Option<IpAddr>,
    addresses: Vec<String>,
    pod_uid: String,
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
    hostname: Option<String>,
    node_name: Option<String>,
    zone: Option<String>,
    target: Option<Reference>,
    /// Fields this controller never writes (hints, deprecatedTopology), as JSON, so a slice
    /// holding them counts as different.
    foreign: Option<String>,
}

impl Endpoint {
    fn key(&self) -> Key {
        (self.order, self.addresses.clone(), self.pod_uid.clone())
    }

    fn from_object(e: &SliceEndpoint) -> Self {
        let target = e.target_ref.as_ref().map(Reference::from_object);
        let conditions = e.conditions.clone().unwrap_or_default();
        let foreign = (e.hints.is_some() || e.deprecated_topology.is_some())
            .then(|| json!({"hints": e.hints, "deprecatedTopology": e.deprecated_topology}).to_string());
        Self {
            order: e.addresses.first().and_then(|a| a.parse().ok()),
            addresses: e.addresses.clone(),
            pod_uid: target.as_ref().and_then(|t| t.uid.clone()).unwrap_or_default(),
            ready: conditions.ready,
            serving: conditions.serving,
            terminating: conditions.terminating,
            hostname: non_empty(e.hostname.as_deref()),
            node_name: non_empty(e.node_name.as_deref()),
            zone: non_empty(e.zone.as_deref()),
            target,
            foreign,
        }
    }

    fn to_json(&self) -> Value {
        let mut conditions = Map::new();
        for (key, value) in [("ready", self.ready), ("serving", self.serving), ("terminating", self.terminating)] {
            if let Some(v) = value {
                conditions.insert(key.to_string(), json!(v));
            }
        }
        let mut m = Map::new();
        m.insert("addresses".to_string(), json!(self.addresses));
        m.insert("conditions".to_string(), Value::Object(conditions));
        if let Some(hostname) = &self.hostname {
            m.insert("hostname".to_string(), json!(hostname));
        }
        if let Some(node) = &self.node_name {
            m.insert("nodeName".to_string(), json!(node));
        }
        if let Some(zone) = &self.zone {
            m.insert("zone".to_string(), json!(zone));
        }
        if let Some(target) = &self.target {
            m.insert("targetRef".to_string(), target.to_json());
        }
        Value::Object(m)
    }
}

/// A stored slice of a Service, in canonical form.
struct Existing<'a> {
    slice: &'a EndpointSlice,
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
}

impl<'a> Existing<'a> {
    fn new(slice: &'a EndpointSlice) -> Self {
        let mut ports: Vec<Port> = slice.ports.iter().flatten().map(Port::from_object).collect();
        ports.sort();
        let mut endpoints: Vec<Endpoint> = slice.endpoints.iter().map(Endpoint::from_object).collect();
        endpoints.sort();
        Self { slice, ports, endpoints }
    }
}

/// A slice as it should be: a stored one to keep (and patch if it differs) or a new one.
struct Plan<'e, 'a> {
    existing: Option<&'e Existing<'a>>,
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
    /// Already to be rewritten, so taking more endpoints costs no extra write.
    rewritten: bool,
}

/// The endpoints a Service wants, per resolved port list.
fn desired(svc: &Served<'_>, zones: &BTreeMap<&str, &str>) -> BTreeMap<Vec<Port>, BTreeMap<Key, Endpoint>> {
    let mut groups: BTreeMap<Vec<Port>, BTreeMap<Key, Endpoint>> = BTreeMap::new();
    for pod in &svc.pods {
        let Some(ip) = super::pod_ip(pod, false) else { continue };
        let endpoint = endpoint_of(svc, pod, ip, zones);
        let mut ports: Vec<Port> = svc
            .ports
            .iter()
            .filter_map(|sp| {
                Some(Port {
                    name: sp.name.clone().unwrap_or_default(),
                    port: Some(resolve_port(pod, sp)?),
                    protocol: protocol(sp.protocol.as_deref()),
                    app_protocol: non_empty(sp.app_protocol.as_deref()),
                })
            })
            .collect();
        ports.sort();
        groups.entry(ports).or_default().insert(endpoint.key(), endpoint);
    }
    groups
}

fn endpoint_of(svc: &Served<'_>, pod: &Pod, ip: &str, zones: &BTreeMap<&str, &str>) -> Endpoint {
    let serving = workload::pod_is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let node_name = non_empty(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()));
    let target = Reference::to_pod(pod);
    Endpoint {
        order: ip.parse().ok(),
        addresses: vec![ip.to_string()],
        pod_uid: target.uid.clone().unwrap_or_default(),
        // A terminating pod is never ready (for clients that know only `ready`), unless the
        // Service asks for every address.
        ready: Some(svc.publish_not_ready || (serving && !terminating)),
        serving: Some(serving),
        terminating: Some(terminating),
        hostname: svc.hostname_of(pod),
        zone: node_name.as_deref().and_then(|n| zones.get(n)).map(|z| z.to_string()),
        node_name,
        target: Some(target),
        foreign: None,
    }
}

/// The labels every slice of the Service carries.
fn slice_labels(svc: &Served<'_>) -> BTreeMap<String, String> {
    let mut labels = svc.labels();
    labels.insert(SERVICE_NAME_LABEL.to_string(), svc.name.to_string());
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels
}

/// Whether the slice is owned by the Service (any owner reference to it, as upstream checks).
fn owned_by(slice: &EndpointSlice, svc: &Served<'_>) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == svc.uid && r.kind == "Service" && r.api_version == "v1")
}

pub(super) fn reconcile(snapshot: &Snapshot, served: &[Served<'_>]) -> Vec<Action> {
    let mut managed: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &snapshot.endpoint_slices {
        let meta = &slice.metadata;
        let Some(labels) = meta.labels.as_ref() else { continue };
        let (Some(ns), Some(service)) = (meta.namespace.as_deref(), labels.get(SERVICE_NAME_LABEL)) else {
            continue;
        };
        if labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY) && meta.deletion_timestamp.is_none() {
            managed.entry((ns, service.as_str())).or_default().push(slice);
        }
    }
    let zones: BTreeMap<&str, &str> = snapshot
        .nodes
        .iter()
        .filter_map(|n| {
            let zone = n.metadata.labels.as_ref()?.get(ZONE_LABEL)?;
            Some((n.metadata.name.as_deref()?, zone.as_str()))
        })
        .collect();
    let mut actions = Vec::new();
    for svc in served {
        let mut slices = managed.remove(&(svc.namespace, svc.name)).unwrap_or_default();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        actions.extend(reconcile_service(snapshot, svc, &slices, &zones));
    }
    actions
}

fn reconcile_service(
    snapshot: &Snapshot,
    svc: &Served<'_>,
    slices: &[&EndpointSlice],
    zones: &BTreeMap<&str, &str>,
) -> Vec<Action> {
    let mut deletes: Vec<&EndpointSlice> = Vec::new();
    let mut existing: Vec<Existing<'_>> = Vec::new();
    for slice in slices {
        if slice.address_type == "IPv4" && owned_by(slice, svc) {
            existing.push(Existing::new(slice));
        } else {
            deletes.push(slice);
        }
    }
    let mut groups = desired(svc, zones);
    let placeholder = groups.values().all(BTreeMap::is_empty);
    if placeholder {
        groups = BTreeMap::from([(Vec::new(), BTreeMap::new())]);
    }

    // Endpoints stay where they are while their ports are the same.
    let mut plans: Vec<Plan<'_, '_>> = Vec::new();
    let mut spare: VecDeque<&Existing<'_>> = VecDeque::new();
    for ex in &existing {
        let Some(group) = groups.get_mut(&ex.ports) else {
            spare.push_back(ex);
            continue;
        };
        let mut plan = Plan { existing: Some(ex), ports: ex.ports.clone(), endpoints: Vec::new(), rewritten: false };
        for stored in &ex.endpoints {
            let wanted =
                (plan.endpoints.len() < MAX_ENDPOINTS_PER_SLICE).then(|| group.remove(&stored.key())).flatten();
            match wanted {
                Some(wanted) => {
                    plan.rewritten |= wanted != *stored;
                    plan.endpoints.push(wanted);
                }
                None => plan.rewritten = true,
            }
        }
        plans.push(plan);
    }

    // New endpoints fill slices being rewritten anyway, then any with room, then spare slices
    // (their port list is no longer wanted), then new ones.
    for (ports, rest) in groups {
        let mut rest: VecDeque<Endpoint> = rest.into_values().collect();
        for rewritten_pass in [true, false] {
            for plan in plans.iter_mut().filter(|p| p.ports == ports && p.rewritten == rewritten_pass) {
                let room = MAX_ENDPOINTS_PER_SLICE.saturating_sub(plan.endpoints.len()).min(rest.len());
                if room > 0 {
                    plan.endpoints.extend(rest.drain(..room));
                    plan.rewritten = true;
                }
            }
        }
        while !rest.is_empty() {
            let take = rest.len().min(MAX_ENDPOINTS_PER_SLICE);
            let endpoints = rest.drain(..take).collect();
            plans.push(Plan { existing: spare.pop_front(), ports: ports.clone(), endpoints, rewritten: true });
        }
    }

    if placeholder {
        // Exactly one empty slice: the first stored one of no ports, else a spare, else a new one.
        let mut kept = false;
        plans.retain(|p| {
            let keep = !kept;
            kept = true;
            if !keep {
                deletes.extend(p.existing.map(|e| e.slice));
            }
            keep
        });
        if plans.is_empty() {
            plans.push(Plan { existing: spare.pop_front(), ports: Vec::new(), endpoints: Vec::new(), rewritten: true });
        }
    } else {
        plans.retain(|p| {
            if p.endpoints.is_empty() {
                deletes.extend(p.existing.map(|e| e.slice));
            }
            !p.endpoints.is_empty()
        });
    }
    deletes.extend(spare.iter().map(|e| e.slice));

    let labels = slice_labels(svc);
    let mut actions = Vec::new();
    for mut plan in plans {
        plan.endpoints.sort();
        let ports_json: Vec<Value> = plan.ports.iter().map(Port::to_json).collect();
        let endpoints_json: Vec<Value> = plan.endpoints.iter().map(Endpoint::to_json).collect();
        let Some(ex) = plan.existing else {
            if super::accepts_creates(snapshot, svc.namespace) {
                actions.push(Action::Create {
                    collection: path::group(GROUP_VERSION, "endpointslices", Some(svc.namespace), None),
                    object: json!({"apiVersion": GROUP_VERSION, "kind": "EndpointSlice",
                        "metadata": {"generateName": format!("{}-", svc.name), "namespace": svc.namespace,
                            "labels": labels,
                            "ownerReferences": [workload::controller_ref("v1", "Service", &svc.service.metadata)]},
                        "addressType": "IPv4", "endpoints": endpoints_json, "ports": ports_json}),
                });
            }
            continue;
        };
        let meta = &ex.slice.metadata;
        let labels_patch = label_patch(&workload::labels(meta), &labels);
        let content_differs = plan.ports != ex.ports || plan.endpoints != ex.endpoints;
        if labels_patch.is_none() && !content_differs {
            continue;
        }
        let Some(name) = meta.name.as_deref() else { continue };
        let mut patch = json!({"metadata": {"resourceVersion": meta.resource_version}});
        if let Some(labels) = labels_patch {
            patch["metadata"]["labels"] = labels;
        }
        if content_differs {
            patch["endpoints"] = Value::Array(endpoints_json);
            patch["ports"] = Value::Array(ports_json);
        }
        actions.push(Action::MergePatch {
            path: path::group(GROUP_VERSION, "endpointslices", Some(svc.namespace), Some(name)),
            patch,
        });
    }
    for slice in deletes {
        let meta = &slice.metadata;
        let (Some(name), Some(uid)) = (meta.name.as_deref(), meta.uid.as_deref()) else { continue };
        actions
            .push(Action::delete(path::group(GROUP_VERSION, "endpointslices", Some(svc.namespace), Some(name)), uid));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::pod;
    use crate::endpoints::tests::service;
    use crate::endpoints::tests::web_service;
    use crate::endpoints::tests::World;

    fn slice_actions(actions: &[Action]) -> Vec<&Action> {
        actions.iter().filter(|a| a.target().contains("/endpointslices")).collect()
    }

    fn slices(world: &World) -> Vec<&Value> {
        world.all("endpointslices")
    }

    fn pod_names(slice: &Value) -> Vec<&str> {
        slice["endpoints"]
            .as_array()
            .map(|eps| eps.iter().filter_map(|e| e["targetRef"]["name"].as_str()).collect())
            .unwrap_or_default()
    }

    fn leaving(mut p: Value) -> Value {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        p
    }

    fn many_pods(world: &mut World, range: std::ops::Range<u32>) {
        for i in range {
            world.put("pods", pod(&format!("p{i:03}"), &format!("10.0.{}.{}", i / 200, i % 200 + 1), true));
        }
    }

    #[test]
    fn endpoints_carry_readiness_serving_and_terminating() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("nodes", json!({"metadata": {"name": "node-1", "labels": {ZONE_LABEL: "zone-a"}}}));
        world.put("pods", pod("a", "10.0.0.1", true));
        world.put("pods", pod("b", "10.0.0.2", false));
        world.put("pods", leaving(pod("c", "10.0.0.3", true)));
        world.put("pods", leaving(pod("d", "10.0.0.4", false)));
        let mut v6 = pod("v6", "fd00::1", true);
        v6["status"]["podIPs"] = json!([{"ip": "fd00::1"}]);
        world.put("pods", v6);
        let actions = world.reconcile();
        let wanted = slice_actions(&actions);
        assert_eq!(wanted.len(), 1, "{actions:?}");
        let Action::Create { collection, object } = wanted[0] else { panic!("not a create: {wanted:?}") };
        assert_eq!(collection, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices");
        assert_eq!(
            object["metadata"],
            json!({"generateName": "web-", "namespace": "default",
                "labels": {"app": "web", "tier": "front", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web",
                    "controller": true, "blockOwnerDeletion": true}]})
        );
        assert_eq!(object["addressType"], "IPv4");
        assert_eq!(object["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
        let endpoint = |name: &str, ip: &str, ready: bool, serving: bool, terminating: bool| {
            json!({"addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "nodeName": "node-1", "zone": "zone-a",
                "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": format!("uid-{name}")}})
        };
        assert_eq!(
            object["endpoints"],
            json!([
                endpoint("a", "10.0.0.1", true, true, false),
                endpoint("b", "10.0.0.2", false, false, false),
                endpoint("c", "10.0.0.3", false, true, true),
                endpoint("d", "10.0.0.4", false, false, true),
            ])
        );
        // Fed back (defaulted by the server), the slice wants nothing more.
        assert_eq!(world.converge(), 1);
        assert_eq!(slices(&world).len(), 1);

        // A pod turning ready is patched into the same slice, conditionally.
        world.put("pods", pod("b", "10.0.0.2", true));
        let actions = world.reconcile();
        let wanted = slice_actions(&actions);
        let Action::MergePatch { path, patch } = wanted[0] else { panic!("not a patch: {wanted:?}") };
        assert!(path.starts_with("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-"));
        assert!(patch["metadata"]["resourceVersion"].is_string());
        assert_eq!(patch["endpoints"][1]["conditions"], json!({"ready": true, "serving": true, "terminating": false}));
        assert_eq!(world.converge(), 1);
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_endpoint_ready() {
        let mut world = World::new();
        let mut svc = web_service();
        svc["spec"]["publishNotReadyAddresses"] = json!(true);
        world.put("services", svc);
        world.put("pods", pod("b", "10.0.0.2", false));
        world.put("pods", leaving(pod("c", "10.0.0.3", false)));
        assert_eq!(world.converge(), 1);
        let conditions: Vec<&Value> =
            slices(&world)[0]["endpoints"].as_array().expect("endpoints").iter().map(|e| &e["conditions"]).collect();
        assert_eq!(
            conditions,
            [
                &json!({"ready": true, "serving": false, "terminating": false}),
                &json!({"ready": true, "serving": false, "terminating": true})
            ]
        );
    }

    #[test]
    fn pods_are_grouped_by_their_resolved_ports() {
        let mut world = World::new();
        world.put(
            "services",
            service("web", json!([{"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 81}])),
        );
        world.put("pods", pod("a", "10.0.0.1", true));
        let mut b = pod("b", "10.0.0.2", true);
        b["spec"]["containers"][0]["ports"] = json!([]);
        world.put("pods", b);
        assert_eq!(world.converge(), 1);
        let mut found: Vec<(Value, Vec<&str>)> =
            slices(&world).iter().map(|s| (s["ports"].clone(), pod_names(s))).collect();
        found.sort_by_key(|(_, names)| names.clone());
        assert_eq!(
            found,
            vec![
                (
                    json!([{"name": "admin", "port": 81, "protocol": "TCP"},
                        {"name": "http", "port": 8080, "protocol": "TCP"}]),
                    vec!["a"]
                ),
                (json!([{"name": "admin", "port": 81, "protocol": "TCP"}]), vec!["b"]),
            ]
        );
        // b gains the port: it moves into a's slice and its own slice goes.
        world.put("pods", pod("b", "10.0.0.2", true));
        assert_eq!(world.converge(), 1);
        let left = slices(&world);
        assert_eq!(left.len(), 1);
        assert_eq!(pod_names(left[0]), ["a", "b"]);
        assert_eq!(world.log.iter().filter(|l| l.starts_with("create")).count(), 3, "{:?}", world.log);
    }

    #[test]
    fn unnamed_ports_are_stored_with_an_empty_name() {
        let mut world = World::new();
        world.put("services", service("web", json!([{"port": 80}])));
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        assert_eq!(slices(&world)[0]["ports"], json!([{"name": "", "port": 80, "protocol": "TCP"}]));
        // As another writer might have stored it: the server's defaults left out, endpoints reordered.
        world.put("pods", pod("b", "10.0.0.2", true));
        assert_eq!(world.converge(), 1);
        let mut stored = slices(&world)[0].clone();
        stored["ports"] = json!([{"port": 80}]);
        let endpoints = stored["endpoints"].as_array_mut().expect("endpoints");
        endpoints.reverse();
        world.put("endpointslices", stored);
        assert_eq!(slice_actions(&world.reconcile()), Vec::<&Action>::new());
    }

    #[test]
    fn more_than_a_hundred_pods_take_several_slices() {
        let mut world = World::new();
        world.put("services", web_service());
        many_pods(&mut world, 0..150);
        let actions = world.reconcile();
        let creates: Vec<usize> = slice_actions(&actions)
            .iter()
            .map(|a| match a {
                Action::Create { object, .. } => object["endpoints"].as_array().map_or(0, Vec::len),
                other => panic!("not a create: {other:?}"),
            })
            .collect();
        assert_eq!(creates, [100, 50]);
        assert_eq!(world.converge(), 1);
        assert_eq!(slices(&world).len(), 2);

        // The second slice's pods go: the emptied slice is deleted, the other left alone.
        for i in 100..150 {
            world.remove("pods", &format!("p{i:03}"));
        }
        let actions = world.reconcile();
        let wanted = slice_actions(&actions);
        let second = slices(&world)[1];
        assert_eq!(
            wanted,
            [&Action::Delete {
                path: format!(
                    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{}",
                    second["metadata"]["name"].as_str().expect("name")
                ),
                uid: second["metadata"]["uid"].as_str().map(str::to_string),
                propagation: None,
                grace: None,
            }]
        );
        assert_eq!(world.converge(), 1);

        // New pods fill the remaining slice before a new one is made.
        many_pods(&mut world, 100..130);
        world.remove("pods", "p000");
        assert_eq!(world.converge(), 1);
        let sizes: Vec<usize> = slices(&world).iter().map(|s| pod_names(s).len()).collect();
        assert_eq!(sizes, [100, 29]);
    }

    #[test]
    fn surplus_and_foreign_slices() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        let kept = slices(&world)[0].clone();
        // A duplicate of ours, one left by an earlier Service of the name, and one someone else manages.
        let mut surplus = kept.clone();
        surplus["metadata"]["name"] = json!("web-zzzzz");
        surplus["metadata"]["uid"] = json!("uid-surplus");
        world.put("endpointslices", surplus);
        let mut stale = kept.clone();
        stale["metadata"]["name"] = json!("web-old");
        stale["metadata"]["uid"] = json!("uid-stale");
        stale["metadata"]["ownerReferences"][0]["uid"] = json!("uid-earlier-web");
        world.put("endpointslices", stale);
        let mut foreign = kept.clone();
        foreign["metadata"]["name"] = json!("web-mine");
        foreign["metadata"]["uid"] = json!("uid-foreign");
        foreign["metadata"]["labels"][MANAGED_BY_LABEL] = json!("someone-else");
        world.put("endpointslices", foreign);
        let actions = world.reconcile();
        let delete = |name: &str, uid: &str| {
            Action::delete(format!("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{name}"), uid)
        };
        assert_eq!(slice_actions(&actions), [&delete("web-old", "uid-stale"), &delete("web-zzzzz", "uid-surplus")]);
        assert_eq!(world.converge(), 1);
        let names: Vec<&str> = slices(&world).iter().filter_map(|s| s["metadata"]["name"].as_str()).collect();
        assert_eq!(names, [kept["metadata"]["name"].as_str().expect("name"), "web-mine"]);
    }

    #[test]
    fn a_service_without_endpoints_has_one_placeholder_slice() {
        let mut world = World::new();
        world.put("services", web_service());
        let actions = world.reconcile();
        let Action::Create { object, .. } = slice_actions(&actions)[0] else { panic!("{actions:?}") };
        assert_eq!((&object["endpoints"], &object["ports"]), (&json!([]), &json!([])));
        assert_eq!(world.converge(), 1);
        // The placeholder is reused, not replaced, when a pod comes and when it goes.
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        world.remove("pods", "a");
        assert_eq!(world.converge(), 1);
        let left = slices(&world);
        assert_eq!(left.len(), 1);
        assert!(pod_names(left[0]).is_empty());
        assert_eq!(world.log.iter().filter(|l| l.starts_with("create endpointslices")).count(), 1, "{:?}", world.log);
    }

    #[test]
    fn label_changes_propagate() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        let mut svc = web_service();
        svc["metadata"]["labels"] = json!({"app": "web", "version": "2", SERVICE_NAME_LABEL: "spoof"});
        svc["spec"]["clusterIP"] = json!("None");
        world.put("services", svc);
        let actions = world.reconcile();
        let wanted = slice_actions(&actions);
        let Action::MergePatch { patch, .. } = wanted[0] else { panic!("{actions:?}") };
        assert_eq!(
            patch["metadata"]["labels"],
            json!({"tier": null, "version": "2", crate::endpoints::HEADLESS_LABEL: ""})
        );
        assert!(patch.get("endpoints").is_none());
        assert_eq!(world.converge(), 1);
    }

    #[test]
    fn slices_of_a_deleted_service_are_left_to_the_garbage_collector() {
        let mut world = World::new();
        world.put("services", web_service());
        world.put("pods", pod("a", "10.0.0.1", true));
        assert_eq!(world.converge(), 1);
        world.remove("services", "web");
        assert_eq!(slice_actions(&world.reconcile()), Vec::<&Action>::new());
    }
}
