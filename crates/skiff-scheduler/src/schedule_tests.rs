//! End-to-end tests of [`crate::schedule`] over small hand-built clusters.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::{schedule, schedule_all, Decision, Snapshot};

/// A Ready node with the given allocatable cpu/memory, room for 110 pods and
/// the usual hostname label; `extra` is merged into the top-level object.
fn node(name: &str, cpu: &str, memory: &str, labels: Value, spec: Value) -> Node {
    let mut all_labels = json!({"kubernetes.io/hostname": name});
    if let (Some(all), Some(more)) = (all_labels.as_object_mut(), labels.as_object()) {
        all.extend(more.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .expect("test fixture")
}

fn plain_node(name: &str) -> Node {
    node(name, "4", "8Gi", json!({}), json!({}))
}

fn zoned_node(name: &str, zone: &str) -> Node {
    node(name, "4", "8Gi", json!({"zone": zone}), json!({}))
}

/// A pod in `default` with one container requesting `cpu`/`memory`;
/// `spec` is merged into the pod spec.
fn pod(name: &str, labels: Value, cpu: &str, memory: &str, spec: Value) -> Pod {
    let mut full_spec = json!({
        "containers": [{"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]
    });
    if let (Some(full), Some(more)) = (full_spec.as_object_mut(), spec.as_object()) {
        full.extend(more.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": full_spec
    }))
    .expect("test fixture")
}

fn small_pod(name: &str) -> Pod {
    pod(name, json!({}), "100m", "128Mi", json!({}))
}

fn bound(mut pod: Pod, node: &str) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    pod
}

fn bound_node(decision: &Decision) -> &str {
    match decision {
        Decision::Bind { node, .. } => node,
        Decision::Unschedulable { message, .. } => panic!("expected a binding, got: {message}"),
    }
}

fn unschedulable(decision: Decision) -> (String, BTreeMap<String, usize>) {
    match decision {
        Decision::Unschedulable { message, reasons } => (message, reasons),
        Decision::Bind { node, .. } => panic!("expected unschedulable, got node {node}"),
    }
}

#[test]
fn message_counts_reasons_across_three_nodes_like_upstream() {
    let mut not_ready = node(
        "n1",
        "8",
        "8Gi",
        json!({}),
        json!({"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}),
    );
    if let Some(status) = not_ready.status.as_mut() {
        status.conditions =
            serde_json::from_value(json!([{"type": "Ready", "status": "False"}])).expect("test fixture");
    }
    let snapshot = Snapshot::of(
        vec![not_ready, node("n2", "1", "8Gi", json!({}), json!({})), node("n3", "500m", "8Gi", json!({}), json!({}))],
        vec![],
    );
    let (message, reasons) = unschedulable(schedule(&pod("p", json!({}), "2", "1Gi", json!({})), &snapshot));
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 Insufficient cpu."
    );
    assert_eq!(reasons.get("Insufficient cpu"), Some(&2));
    assert_eq!(reasons.get("node(s) had untolerated taint {node.kubernetes.io/not-ready: }"), Some(&1));
}

#[test]
fn every_resource_shortage_is_counted() {
    let snapshot = Snapshot::of(vec![node("a", "1", "1Gi", json!({}), json!({}))], vec![]);
    let (message, _) = unschedulable(schedule(&pod("p", json!({}), "2", "2Gi", json!({})), &snapshot));
    assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
}

#[test]
fn zero_nodes_gives_a_clear_message() {
    let (message, reasons) = unschedulable(schedule(&small_pod("p"), &Snapshot::default()));
    assert_eq!(message, "0/0 nodes are available: no nodes registered.");
    assert!(reasons.is_empty());
}

#[test]
fn unparseable_pod_quantity_is_unschedulable_not_a_panic() {
    let snapshot = Snapshot::of(vec![plain_node("a")], vec![]);
    let (message, reasons) = unschedulable(schedule(&pod("p", json!({}), "1 core", "1Gi", json!({})), &snapshot));
    assert_eq!(
        message,
        "pod has an invalid resource quantity: container \"app\" requests cpu: quantity \"1 core\" has unknown suffix \" core\""
    );
    assert!(reasons.is_empty());
}

#[test]
fn node_with_unparseable_allocatable_is_skipped() {
    let broken = node("a", "lots", "8Gi", json!({}), json!({}));
    let snapshot = Snapshot::of(vec![broken, plain_node("b")], vec![]);
    assert_eq!(bound_node(&schedule(&small_pod("p"), &snapshot)), "b");

    let only_broken = Snapshot::of(vec![node("a", "4", "many", json!({}), json!({}))], vec![]);
    let (message, _) = unschedulable(schedule(&small_pod("p"), &only_broken));
    assert_eq!(message, "0/1 nodes are available: 1 node(s) had invalid allocatable resources.");
}

#[test]
fn bound_pods_consume_capacity_but_finished_pods_do_not() {
    let big = bound(pod("big", json!({}), "3500m", "1Gi", json!({})), "a");
    let snapshot = Snapshot::of(vec![plain_node("a")], vec![big.clone()]);
    let (message, _) = unschedulable(schedule(&pod("p", json!({}), "1", "1Gi", json!({})), &snapshot));
    assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");

    let mut finished = big;
    finished.status = serde_json::from_value(json!({"phase": "Succeeded"})).expect("test fixture");
    let snapshot = Snapshot::of(vec![plain_node("a")], vec![finished]);
    assert_eq!(bound_node(&schedule(&pod("p", json!({}), "1", "1Gi", json!({})), &snapshot)), "a");
}

#[test]
fn pod_count_limit_is_enforced() {
    let mut tiny = plain_node("a");
    if let Some(alloc) = tiny.status.as_mut().and_then(|s| s.allocatable.as_mut()) {
        alloc.insert("pods".to_string(), k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".to_string()));
    }
    let snapshot = Snapshot::of(vec![tiny], vec![bound(small_pod("existing"), "a")]);
    let (message, _) = unschedulable(schedule(&small_pod("p"), &snapshot));
    assert_eq!(message, "0/1 nodes are available: 1 Too many pods.");
}

#[test]
fn init_container_peak_decides_fit() {
    let snapshot = Snapshot::of(vec![node("a", "1", "8Gi", json!({}), json!({}))], vec![]);
    let heavy_init = pod(
        "p",
        json!({}),
        "100m",
        "64Mi",
        json!({"initContainers": [{"name": "migrate", "resources": {"requests": {"cpu": "2"}}}]}),
    );
    let (message, _) = unschedulable(schedule(&heavy_init, &snapshot));
    assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");

    // An init container within capacity fits even though init + app would not.
    let light_init = pod(
        "p",
        json!({}),
        "600m",
        "64Mi",
        json!({"initContainers": [{"name": "migrate", "resources": {"requests": {"cpu": "900m"}}}]}),
    );
    assert_eq!(bound_node(&schedule(&light_init, &snapshot)), "a");
}

#[test]
fn prefers_the_emptier_node() {
    let snapshot = Snapshot::of(
        vec![plain_node("busy"), plain_node("idle")],
        vec![bound(pod("hog", json!({}), "3", "6Gi", json!({})), "busy")],
    );
    assert_eq!(bound_node(&schedule(&small_pod("p"), &snapshot)), "idle");
}

#[test]
fn request_less_pods_still_count_when_scoring() {
    // Pods without requests use the non-zero defaults, so two of them make a node look busier.
    let no_requests = |name: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c"}]}}))
            .expect("test fixture")
    };
    let snapshot = Snapshot::of(
        vec![plain_node("a"), plain_node("b")],
        vec![bound(no_requests("x"), "a"), bound(no_requests("y"), "a")],
    );
    assert_eq!(bound_node(&schedule(&no_requests("p"), &snapshot)), "b");
}

#[test]
fn balanced_allocation_prefers_even_usage() {
    // Both nodes have the same average free share; only "even" uses cpu and memory alike.
    let snapshot = Snapshot::of(
        vec![node("even", "4", "4Gi", json!({}), json!({})), node("skewed", "4", "4Gi", json!({}), json!({}))],
        vec![
            bound(pod("x", json!({}), "2", "0", json!({})), "skewed"),
            bound(pod("y", json!({}), "1", "1Gi", json!({})), "even"),
        ],
    );
    assert_eq!(bound_node(&schedule(&pod("p", json!({}), "0", "0", json!({})), &snapshot)), "even");
}

#[test]
fn preferred_node_affinity_beats_emptiness() {
    let snapshot = Snapshot::of(
        vec![
            node("ssd", "4", "8Gi", json!({"disk": "ssd"}), json!({})),
            node("hdd", "4", "8Gi", json!({"disk": "hdd"}), json!({})),
        ],
        vec![bound(pod("hog", json!({}), "2", "4Gi", json!({})), "ssd")],
    );
    let p = pod(
        "p",
        json!({}),
        "100m",
        "128Mi",
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
        ]}}}),
    );
    assert_eq!(bound_node(&schedule(&p, &snapshot)), "ssd");
    assert_eq!(bound_node(&schedule(&small_pod("q"), &snapshot)), "hdd");
}

#[test]
fn ties_are_broken_the_same_whatever_the_node_order_and_spread_over_pods() {
    let forward = Snapshot::of(vec![plain_node("a"), plain_node("b"), plain_node("c")], vec![]);
    let backward = Snapshot::of(vec![plain_node("c"), plain_node("b"), plain_node("a")], vec![]);
    let mut chosen = std::collections::BTreeSet::new();
    for i in 0..30 {
        let p = small_pod(&format!("p{i}"));
        let first = schedule(&p, &forward);
        assert_eq!(schedule(&p, &backward), first, "the order of nodes does not matter");
        chosen.insert(bound_node(&first).to_string());
    }
    assert_eq!(chosen.len(), 3, "equal nodes share the pods: {chosen:?}");
}

#[test]
fn prefer_no_schedule_taint_steers_away_without_blocking() {
    let soft = node("a", "4", "8Gi", json!({}), json!({"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]}));
    let snapshot = Snapshot::of(vec![soft.clone(), plain_node("b")], vec![]);
    assert_eq!(bound_node(&schedule(&small_pod("p"), &snapshot)), "b");
    let only_soft = Snapshot::of(vec![soft], vec![]);
    assert_eq!(bound_node(&schedule(&small_pod("p"), &only_soft)), "a");
}

#[test]
fn not_ready_and_cordoned_nodes_are_rejected() {
    let mut not_ready = plain_node("a");
    if let Some(status) = not_ready.status.as_mut() {
        status.conditions =
            serde_json::from_value(json!([{"type": "Ready", "status": "False"}])).expect("test fixture");
    }
    let cordoned = node("b", "4", "8Gi", json!({}), json!({"unschedulable": true}));
    let snapshot = Snapshot::of(vec![not_ready, cordoned], vec![]);
    let (message, _) = unschedulable(schedule(&small_pod("p"), &snapshot));
    assert_eq!(message, "0/2 nodes are available: 1 node(s) had condition NotReady, 1 node(s) were unschedulable.");

    let mut with_ready = snapshot.clone();
    with_ready.nodes.push(Arc::new(plain_node("c")));
    assert_eq!(bound_node(&schedule(&small_pod("p"), &with_ready)), "c");
}

#[test]
fn pinned_pod_only_fits_its_node() {
    let snapshot = Snapshot::of(vec![plain_node("a"), plain_node("b")], vec![]);
    let pinned = pod("p", json!({}), "100m", "1Mi", json!({"nodeName": "b"}));
    assert_eq!(bound_node(&schedule(&pinned, &snapshot)), "b");
}

#[test]
fn host_port_conflicts_exclude_the_node() {
    let with_port = |name: &str| {
        pod(
            name,
            json!({}),
            "100m",
            "1Mi",
            json!({"containers": [
                {"name": "web", "ports": [{"containerPort": 80, "hostPort": 8080}]}
            ]}),
        )
    };
    let snapshot = Snapshot::of(vec![plain_node("a"), plain_node("b")], vec![bound(with_port("old"), "a")]);
    assert_eq!(bound_node(&schedule(&with_port("new"), &snapshot)), "b");

    let single = Snapshot::of(vec![plain_node("a")], vec![bound(with_port("old"), "a")]);
    let (message, _) = unschedulable(schedule(&with_port("new"), &single));
    assert_eq!(message, "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.");

    // A copy of the incoming pod in the snapshot never conflicts with itself.
    let itself = Snapshot::of(vec![plain_node("a")], vec![bound(with_port("new"), "a")]);
    assert_eq!(bound_node(&schedule(&with_port("new"), &itself)), "a");
}

fn required_affinity(kind: &str, labels: Value, topology_key: &str) -> Value {
    json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels}, "topologyKey": topology_key}
    ]}}})
}

#[test]
fn required_pod_affinity_follows_matching_pods_into_their_zone() {
    let snapshot = Snapshot::of(
        vec![zoned_node("a1", "a"), zoned_node("b1", "b"), zoned_node("b2", "b")],
        vec![bound(pod("cache", json!({"app": "cache"}), "100m", "1Mi", json!({})), "b1")],
    );
    let spec = required_affinity("podAffinity", json!({"app": "cache"}), "zone");
    let p = pod("web", json!({"app": "web"}), "100m", "1Mi", spec.clone());
    // b2 is emptier than b1 and shares its zone.
    assert_eq!(bound_node(&schedule(&p, &snapshot)), "b2");

    let no_zone_b = Snapshot::of(
        vec![zoned_node("a1", "a"), plain_node("x")],
        vec![bound(pod("cache", json!({"app": "cache"}), "100m", "1Mi", json!({})), "x")],
    );
    let (message, reasons) = unschedulable(schedule(&p, &no_zone_b));
    assert_eq!(message, "0/2 nodes are available: 2 node(s) didn't match pod affinity rules.");
    assert_eq!(reasons.len(), 1);
}

#[test]
fn first_pod_of_a_self_affine_group_may_go_anywhere() {
    let snapshot = Snapshot::of(vec![zoned_node("a1", "a")], vec![]);
    let spec = required_affinity("podAffinity", json!({"app": "web"}), "zone");
    let self_affine = pod("web-0", json!({"app": "web"}), "100m", "1Mi", spec.clone());
    assert_eq!(bound_node(&schedule(&self_affine, &snapshot)), "a1");

    // The exception needs the pod to match its own term.
    let other = pod("api-0", json!({"app": "api"}), "100m", "1Mi", spec);
    let (message, _) = unschedulable(schedule(&other, &snapshot));
    assert_eq!(message, "0/1 nodes are available: 1 node(s) didn't match pod affinity rules.");
}

#[test]
fn required_anti_affinity_keeps_replicas_apart() {
    let spec = required_affinity("podAntiAffinity", json!({"app": "db"}), "kubernetes.io/hostname");
    let replica = |name: &str| pod(name, json!({"app": "db"}), "100m", "1Mi", spec.clone());
    let snapshot = Snapshot::of(vec![plain_node("a"), plain_node("b")], vec![bound(replica("db-0"), "a")]);
    assert_eq!(bound_node(&schedule(&replica("db-1"), &snapshot)), "b");

    let full = Snapshot::of(
        vec![plain_node("a"), plain_node("b")],
        vec![bound(replica("db-0"), "a"), bound(replica("db-1"), "b")],
    );
    let (message, _) = unschedulable(schedule(&replica("db-2"), &full));
    assert_eq!(message, "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.");
}

#[test]
fn existing_pods_anti_affinity_is_symmetric() {
    // The loner refuses web pods; a web pod without rules of its own must still keep away.
    let loner_spec = required_affinity("podAntiAffinity", json!({"app": "web"}), "kubernetes.io/hostname");
    let loner = bound(pod("loner", json!({"app": "loner"}), "100m", "1Mi", loner_spec), "a");
    let web = pod("web", json!({"app": "web"}), "100m", "1Mi", json!({}));

    let two = Snapshot::of(vec![plain_node("a"), plain_node("b")], vec![loner.clone()]);
    assert_eq!(bound_node(&schedule(&web, &two)), "b");

    let one = Snapshot::of(vec![plain_node("a")], vec![loner]);
    let (message, _) = unschedulable(schedule(&web, &one));
    assert_eq!(message, "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.");
}

#[test]
fn affinity_terms_default_to_the_pods_own_namespace() {
    let spec = required_affinity("podAntiAffinity", json!({"app": "db"}), "kubernetes.io/hostname");
    let mut elsewhere = bound(pod("db-other", json!({"app": "db"}), "100m", "1Mi", json!({})), "a");
    elsewhere.metadata.namespace = Some("other".to_string());
    let snapshot = Snapshot::of(vec![plain_node("a")], vec![elsewhere]);
    let p = pod("db-1", json!({"app": "db"}), "100m", "1Mi", spec);
    assert_eq!(bound_node(&schedule(&p, &snapshot)), "a");

    // An empty namespaceSelector widens the term to every namespace.
    let all_namespaces = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "namespaceSelector": {}, "topologyKey": "kubernetes.io/hostname"}
    ]}}});
    let wide = pod("db-2", json!({"app": "db"}), "100m", "1Mi", all_namespaces);
    assert!(matches!(schedule(&wide, &snapshot), Decision::Unschedulable { .. }));
}

#[test]
fn preferred_pod_anti_affinity_spreads_replicas() {
    let spec = json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}}
    ]}}});
    // Zone a holds a web replica; its node is otherwise the emptier one.
    let snapshot = Snapshot::of(
        vec![zoned_node("a1", "a"), zoned_node("b1", "b")],
        vec![
            bound(pod("web-0", json!({"app": "web"}), "100m", "1Mi", json!({})), "a1"),
            bound(pod("batch", json!({}), "1", "2Gi", json!({})), "b1"),
        ],
    );
    let p = pod("web-1", json!({"app": "web"}), "100m", "1Mi", spec);
    assert_eq!(bound_node(&schedule(&p, &snapshot)), "b1");
}

#[test]
fn preferred_pod_affinity_attracts() {
    let spec = json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}}
    ]}}});
    let snapshot = Snapshot::of(
        vec![zoned_node("a1", "a"), zoned_node("b1", "b")],
        vec![bound(pod("cache", json!({"app": "cache"}), "1", "2Gi", json!({})), "b1")],
    );
    let p = pod("web", json!({"app": "web"}), "100m", "1Mi", spec);
    assert_eq!(bound_node(&schedule(&p, &snapshot)), "b1");
}

fn spread(max_skew: i32, when: &str, extra: Value) -> Value {
    let mut constraint = json!({
        "maxSkew": max_skew,
        "topologyKey": "zone",
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}}
    });
    if let (Some(c), Some(more)) = (constraint.as_object_mut(), extra.as_object()) {
        c.extend(more.clone());
    }
    json!({"topologySpreadConstraints": [constraint]})
}

fn web(name: &str, spec: Value) -> Pod {
    pod(name, json!({"app": "web"}), "100m", "1Mi", spec)
}

#[test]
fn topology_spread_enforces_max_skew() {
    let snapshot = Snapshot::of(
        vec![zoned_node("a1", "a"), zoned_node("a2", "a"), zoned_node("b1", "b")],
        vec![bound(web("w0", json!({})), "a1"), bound(web("w1", json!({})), "a2")],
    );
    let p = web("w2", spread(1, "DoNotSchedule", json!({})));
    assert_eq!(bound_node(&schedule(&p, &snapshot)), "b1");

    // With zone b full, zone a would reach skew 3 - 0 > 1.
    let mut b_full = snapshot.clone();
    b_full.nodes[2] = Arc::new(node("b1", "50m", "8Gi", json!({"zone": "b"}), json!({})));
    let (message, _) = unschedulable(schedule(&p, &b_full));
    assert_eq!(
        message,
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match pod topology spread constraints."
    );

    // A larger maxSkew tolerates the imbalance.
    let relaxed = web("w2", spread(3, "DoNotSchedule", json!({})));
    assert!(matches!(schedule(&relaxed, &b_full), Decision::Bind { .. }));
}

#[test]
fn topology_spread_requires_the_topology_label() {
    let snapshot = Snapshot::of(vec![plain_node("x")], vec![]);
    let (message, _) = unschedulable(schedule(&web("w", spread(1, "DoNotSchedule", json!({}))), &snapshot));
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label)."
    );
}

#[test]
fn topology_spread_min_domains_treats_missing_domains_as_empty() {
    let snapshot = Snapshot::of(vec![zoned_node("a1", "a")], vec![bound(web("w0", json!({})), "a1")]);
    // One domain only: the skew is measured against itself and stays 1.
    assert!(matches!(schedule(&web("w1", spread(1, "DoNotSchedule", json!({}))), &snapshot), Decision::Bind { .. }));
    // Demanding two domains makes the missing one count as zero: skew 2 > 1.
    let p = web("w1", spread(1, "DoNotSchedule", json!({"minDomains": 2})));
    assert!(matches!(schedule(&p, &snapshot), Decision::Unschedulable { .. }));
}

#[test]
fn topology_spread_ignores_nodes_the_pod_cannot_use() {
    // Zone c is empty but excluded by the nodeSelector, so it must not hold the minimum at 0.
    let snapshot = Snapshot::of(
        vec![
            node("a1", "4", "8Gi", json!({"zone": "a", "pool": "web"}), json!({})),
            node("b1", "4", "8Gi", json!({"zone": "b", "pool": "web"}), json!({})),
            zoned_node("c1", "c"),
        ],
        vec![bound(web("w0", json!({})), "a1"), bound(web("w1", json!({})), "b1")],
    );
    let mut spec = spread(1, "DoNotSchedule", json!({}));
    if let Some(obj) = spec.as_object_mut() {
        obj.insert("nodeSelector".to_string(), json!({"pool": "web"}));
    }
    assert!(matches!(schedule(&web("w2", spec), &snapshot), Decision::Bind { .. }));
}

#[test]
fn schedule_anyway_spread_prefers_the_emptier_domain() {
    // Equal load on both nodes; only the number of matching pods differs, and
    // the better node sorts last so a tie-break cannot be what picks it.
    let other = |name: &str| pod(name, json!({"app": "other"}), "100m", "1Mi", json!({}));
    let snapshot = Snapshot::of(
        vec![zoned_node("a1", "a"), zoned_node("b1", "b")],
        vec![
            bound(web("w0", json!({})), "a1"),
            bound(web("w1", json!({})), "a1"),
            bound(other("o0"), "a1"),
            bound(web("w2", json!({})), "b1"),
            bound(other("o1"), "b1"),
            bound(other("o2"), "b1"),
        ],
    );
    // A pod the tie-break alone would put on a1 goes to b1 once it asks to spread.
    let name = (0..100)
        .map(|i| format!("w{}", i + 3))
        .find(|name| bound_node(&schedule(&web(name, json!({})), &snapshot)) == "a1")
        .expect("some pod ties towards a1");
    assert_eq!(bound_node(&schedule(&web(&name, spread(1, "ScheduleAnyway", json!({}))), &snapshot)), "b1");
}

#[test]
fn namespace_selector_on_the_name_label_is_understood() {
    let mut db = bound(pod("db", json!({"app": "db"}), "100m", "1Mi", json!({})), "a");
    db.metadata.namespace = Some("data".to_string());
    let snapshot = Snapshot::of(vec![plain_node("a"), plain_node("b")], vec![db]);
    let term = |namespace: &str| {
        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "db"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "topologyKey": "kubernetes.io/hostname"
        }]}}})
    };
    assert_eq!(bound_node(&schedule(&pod("web", json!({}), "100m", "1Mi", term("data")), &snapshot)), "a");
    assert!(matches!(
        schedule(&pod("web", json!({}), "100m", "1Mi", term("elsewhere")), &snapshot),
        Decision::Unschedulable { .. }
    ));
}

#[test]
fn a_pass_counts_the_pods_it_placed_before() {
    let snapshot = Snapshot::of(
        vec![node("a", "1", "8Gi", json!({}), json!({})), node("b", "1", "8Gi", json!({}), json!({}))],
        vec![],
    );
    let pending: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), json!({}), "600m", "1Mi", json!({}))).collect();
    let decisions = schedule_all(&pending, &snapshot);
    let placed: Vec<&str> = decisions.iter().take(2).map(bound_node).collect();
    assert!(placed.contains(&"a") && placed.contains(&"b"), "one each: {placed:?}");
    assert!(
        matches!(&decisions[2], Decision::Unschedulable { message, .. } if message == "0/2 nodes are available: 2 Insufficient cpu."),
        "{:?}",
        decisions[2]
    );
    // One at a time, against the same snapshot, each pod would have fit.
    assert!(pending.iter().all(|p| matches!(schedule(p, &snapshot), Decision::Bind { .. })));
}

#[test]
fn large_clusters_are_sampled_and_every_node_gets_its_turn() {
    assert_eq!(crate::feasible_nodes_to_find(3), 3);
    assert_eq!(crate::feasible_nodes_to_find(100), 100);
    assert_eq!(crate::feasible_nodes_to_find(1_000), 420);
    assert_eq!(crate::feasible_nodes_to_find(5_000), 500);
    assert_eq!(crate::feasible_nodes_to_find(200), 100);
    // 200 equal nodes, each with room for one pod: a pass of 200 pods fills every node once,
    // although each decision looks at only 100 of them.
    let nodes: Vec<Node> = (0..200).map(|i| node(&format!("n{i:03}"), "1", "8Gi", json!({}), json!({}))).collect();
    let snapshot = Snapshot::of(nodes, vec![]);
    let pending: Vec<Pod> = (0..200).map(|i| pod(&format!("p{i}"), json!({}), "600m", "1Mi", json!({}))).collect();
    let decisions = schedule_all(&pending, &snapshot);
    let used: std::collections::BTreeSet<&str> = decisions.iter().map(bound_node).collect();
    assert_eq!(used.len(), 200, "every node got exactly one pod");
    // One more pod fits nowhere, and the message counts the whole cluster.
    let extra = [pod("late", json!({}), "600m", "1Mi", json!({}))];
    let mut all = pending.clone();
    all.extend(extra);
    let decisions = schedule_all(&all, &snapshot);
    assert!(
        matches!(&decisions[200], Decision::Unschedulable { message, .. }
        if message == "0/200 nodes are available: 200 Insufficient cpu."),
        "{:?}",
        decisions[200]
    );
}
