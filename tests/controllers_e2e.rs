//! Controllers in real `skiff server` processes.

use std::time::Duration;
use std::time::Instant;

use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;
use support::eventually;
use support::Kubectl;
use support::SimNodes;

mod support;

async fn wait_for_account(api: &Client, ns: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(sa) = api.get::<Value>(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default")).await {
            return sa;
        }
        assert!(Instant::now() < deadline, "no default ServiceAccount in {ns}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every namespace gets a `default` ServiceAccount, gets it back when it is deleted, and new
/// namespaces still get one after the leader is killed.
#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_has_a_default_service_account_across_a_leader_kill() {
    let mut cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    let leader = cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let other = cluster.servers.iter().map(|s| s.id).find(|id| *id != leader).expect("a follower");
    let api = Client::new(&cluster.server(other).expect("server").api_addr);
    for ns in ["default", "kube-system"] {
        wait_for_account(&api, ns, Duration::from_secs(20)).await;
    }
    let _: Value = api
        .create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .await
        .expect("create namespace");
    let first = wait_for_account(&api, "team", Duration::from_secs(10)).await;
    let uid = first["metadata"]["uid"].as_str().expect("uid").to_string();
    let _: Value = api
        .create("/api/v1/namespaces/team/serviceaccounts", &json!({"metadata": {"name": "robot"}}))
        .await
        .expect("sa");
    delete(&api, "/api/v1/namespaces/team/serviceaccounts/default").await;
    let again = wait_for_account(&api, "team", Duration::from_secs(10)).await;
    assert_ne!(again["metadata"]["uid"].as_str(), Some(uid.as_str()), "a new account replaced the deleted one");

    cluster.kill(leader).expect("kill the leader");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "after-kill"}});
    let deadline = Instant::now() + Duration::from_secs(15);
    while api.create::<_, Value>("/api/v1/namespaces", &ns).await.is_err() {
        assert!(Instant::now() < deadline, "the namespace create was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_account(&api, "after-kill", Duration::from_secs(15)).await;
}

async fn delete(api: &Client, path: &str) {
    // The client has no DELETE helper yet; a raw request does.
    let addr = api.addr().to_string();
    let (code, body) = skiff_testkit::cluster::http_request(&addr, "DELETE", path, None, b"").await.expect("an answer");
    assert_eq!(code, 200, "{body}");
}

/// Pods of `namespace` with `selector` that count towards replicas (not finished, not deleting).
async fn active_pods(api: &Client, namespace: &str, selector: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/{namespace}/pods?labelSelector={selector}");
    let pods = api.list::<Value>(&path).await.map(|l| l.items).unwrap_or_default();
    pods.into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")))
        .collect()
}

async fn replica_sets(api: &Client, selector: &str) -> Vec<Value> {
    let path = format!("/apis/apps/v1/namespaces/default/replicasets?labelSelector={selector}");
    api.list::<Value>(&path).await.map(|l| l.items).unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn cluster_options() -> ClusterOptions {
    ClusterOptions {
        // Short node grace and toleration so a silent node is noticed and emptied within seconds.
        extra_args: ["--node-monitor-grace-period", "3", "--default-toleration-seconds", "2"]
            .map(String::from)
            .to_vec(),
        ..ClusterOptions::default()
    }
}

/// The controllers end to end with simulated nodes and the real kubectl: IPAM, a deployment's
/// rollout, image update, rollback and scale (`kubectl rollout status` as the judge), endpoints
/// and slices for a Service, a node that goes silent (Unknown, tainted, its pods evicted and
/// replaced, then force-removed with the node), and the garbage collector's three cascades.
#[tokio::test(flavor = "multi_thread")]
async fn deployments_services_nodes_and_cascades_with_the_real_kubectl() {
    let cluster = ProcessCluster::start(&skiff_binary(), cluster_options()).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let clients: Vec<Client> = cluster.servers.iter().map(|s| Client::new(&s.api_addr)).collect();
    let nodes = SimNodes::start(clients.clone());
    let api = nodes.any().await;
    for name in ["n1", "n2", "n3"] {
        nodes.add(name, "8").await;
    }
    let k = Kubectl::new(cluster.dir(), api.addr());

    // Node IPAM: a distinct /24 of the cluster CIDR each.
    let cidrs = eventually("a podCIDR on every node", Duration::from_secs(15), || async {
        let nodes = api.list::<Value>("/api/v1/nodes").await.ok()?.items;
        let cidrs: Vec<String> = nodes.iter().map(|n| str_at(n, "/spec/podCIDR").to_string()).collect();
        cidrs.iter().all(|c| !c.is_empty()).then_some(cidrs)
    })
    .await;
    let distinct: std::collections::BTreeSet<&String> = cidrs.iter().collect();
    assert_eq!(distinct.len(), 3, "{cidrs:?}");
    assert!(cidrs.iter().all(|c| c.starts_with("10.244.") && c.ends_with("/24")), "{cidrs:?}");

    // A deployment rolls out: one ReplicaSet, three pods, all bound.
    support::assert_has(&k.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]), "created");
    let rolled = k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    support::assert_has(&rolled, "successfully rolled out");
    let pods = active_pods(&api, "default", "app%3Dweb").await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| !str_at(p, "/spec/nodeName").is_empty()), "all bound");
    let sets = replica_sets(&api, "app%3Dweb").await;
    assert_eq!(sets.len(), 1);
    let first_rs = str_at(&sets[0], "/metadata/name").to_string();
    let hash = str_at(&sets[0], "/metadata/labels/pod-template-hash").to_string();
    assert_eq!(first_rs, format!("web-{hash}"));
    assert!(pods.iter().all(|p| str_at(p, "/metadata/ownerReferences/0/name") == first_rs));

    // A new image rolls out through a second ReplicaSet; undo brings back the first one.
    k.ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    support::assert_has(&k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]), "successfully rolled out");
    let pods = active_pods(&api, "default", "app%3Dweb").await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| str_at(p, "/spec/containers/0/image") == "nginx:1.28"), "{pods:?}");
    assert_eq!(replica_sets(&api, "app%3Dweb").await.len(), 2);
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    support::assert_has(&history, "1 ");
    support::assert_has(&history, "2 ");
    k.ok(&["rollout", "undo", "deployment/web"]);
    support::assert_has(&k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]), "successfully rolled out");
    let pods = active_pods(&api, "default", "app%3Dweb").await;
    assert!(pods.iter().all(|p| str_at(p, "/spec/containers/0/image") == "nginx:1.27"), "{pods:?}");
    assert!(
        pods.iter().all(|p| str_at(p, "/metadata/ownerReferences/0/name") == first_rs),
        "the first RS again: {}",
        k.ok(&["get", "rs", "-o", "yaml"])
    );
    let revision =
        k.ok(&["get", "rs", &first_rs, "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"]);
    assert_eq!(revision, "3");

    // Scale, and a Service gets endpoints and a slice for every ready pod.
    k.ok(&["scale", "deployment/web", "--replicas=5"]);
    support::assert_has(&k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]), "successfully rolled out");
    assert_eq!(active_pods(&api, "default", "app%3Dweb").await.len(), 5);
    k.ok(&["expose", "deployment", "web", "--port=80"]);
    eventually("five endpoint addresses", Duration::from_secs(15), || async {
        let ep: Value = api.get("/api/v1/namespaces/default/endpoints/web").await.ok()?;
        let n = ep.pointer("/subsets/0/addresses").and_then(Value::as_array).map_or(0, Vec::len);
        (n == 5).then_some(())
    })
    .await;
    let slices = eventually("an endpoint slice", Duration::from_secs(15), || async {
        let path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb";
        let slices = api.list::<Value>(path).await.ok()?.items;
        let n: usize = slices.iter().map(|s| s["endpoints"].as_array().map_or(0, Vec::len)).sum();
        (n == 5).then_some(slices)
    })
    .await;
    assert_eq!(str_at(&slices[0], "/metadata/ownerReferences/0/kind"), "Service");
    support::assert_has(&k.ok(&["get", "endpoints", "web"]), ":80");

    // A node goes silent: Unknown and tainted, its pods evicted and replaced elsewhere.
    let on_n3 =
        active_pods(&api, "default", "app%3Dweb").await.iter().filter(|p| str_at(p, "/spec/nodeName") == "n3").count();
    nodes.stop("n3");
    let node = eventually("n3 to be unreachable", Duration::from_secs(20), || async {
        let node: Value = api.get("/api/v1/nodes/n3").await.ok()?;
        let taints = node.pointer("/spec/taints").map(Value::to_string).unwrap_or_default();
        taints.contains("node.kubernetes.io/unreachable").then_some(node)
    })
    .await;
    let ready = node["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
    assert_eq!(ready.map(|c| c["status"].clone()), Some(json!("Unknown")));
    eventually("the pods of n3 to be replaced", Duration::from_secs(30), || async {
        let pods = active_pods(&api, "default", "app%3Dweb").await;
        (pods.len() == 5 && pods.iter().all(|p| !matches!(str_at(p, "/spec/nodeName"), "" | "n3"))).then_some(())
    })
    .await;
    println!("{on_n3} pods on the silent node were replaced");
    k.ok(&["delete", "node", "n3"]);
    eventually("the pods of the deleted node to be removed", Duration::from_secs(20), || async {
        let pods = api.list::<Value>("/api/v1/namespaces/default/pods").await.ok()?.items;
        pods.iter().all(|p| str_at(p, "/spec/nodeName") != "n3").then_some(())
    })
    .await;

    // Cascades: background (kubectl's default), orphan, foreground.
    let events = k.ok(&["get", "events", "--field-selector", "involvedObject.name=web"]);
    support::assert_has(&events, "ScalingReplicaSet");
    k.ok(&["delete", "deployment", "web"]);
    eventually("the deployment's sets and pods to be collected", Duration::from_secs(30), || async {
        let sets = replica_sets(&api, "app%3Dweb").await;
        let pods = api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").await.ok()?.items;
        (sets.is_empty() && pods.is_empty()).then_some(())
    })
    .await;

    let solo = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: solo}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: solo}}\n  template:\n    metadata: {labels: {app: solo}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    k.ok_stdin(&["apply", "-f", "-"], solo);
    eventually("two solo pods", Duration::from_secs(15), || async {
        (active_pods(&api, "default", "app%3Dsolo").await.len() == 2).then_some(())
    })
    .await;
    k.ok(&["delete", "rs", "solo", "--cascade=orphan"]);
    let orphans = eventually("the solo set gone, its pods orphaned", Duration::from_secs(20), || async {
        if api.get::<Value>("/apis/apps/v1/namespaces/default/replicasets/solo").await.is_ok() {
            return None;
        }
        let pods = active_pods(&api, "default", "app%3Dsolo").await;
        pods.iter().all(|p| p.pointer("/metadata/ownerReferences/0").is_none()).then_some(pods)
    })
    .await;
    assert_eq!(orphans.len(), 2, "orphaned pods stay");

    k.ok(&["create", "deployment", "fg", "--image=busybox", "--replicas=2"]);
    k.ok(&["rollout", "status", "deployment/fg", "--timeout=60s"]);
    k.ok(&["delete", "deployment", "fg", "--cascade=foreground", "--wait=false"]);
    eventually("the foreground deletion to finish", Duration::from_secs(30), || async {
        let gone = api.get::<Value>("/apis/apps/v1/namespaces/default/deployments/fg").await.is_err();
        let sets = replica_sets(&api, "app%3Dfg").await;
        let pods = api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dfg").await.ok()?.items;
        (gone && sets.is_empty() && pods.is_empty()).then_some(())
    })
    .await;
}

async fn create_deployment(api: &Client, name: &str, replicas: i64) {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/app:1",
                    "resources": {"requests": {"cpu": "10m"}}}]}}}});
    let _: Value = api.create("/apis/apps/v1/namespaces/default/deployments", &deployment).await.expect("deployment");
}

/// Scales the deployment through `api`, retrying while the cluster elects a leader.
async fn scale(api: &Client, name: &str, replicas: i64) {
    let path = format!("/apis/apps/v1/namespaces/default/deployments/{name}");
    eventually("the scale to be accepted", Duration::from_secs(15), || async {
        api.patch_merge::<Value>(&path, &json!({"spec": {"replicas": replicas}})).await.ok().map(|_| ())
    })
    .await;
}

/// The spec.replicas of the deployment's only ReplicaSet.
async fn set_replicas(api: &Client, app: &str) -> Option<i64> {
    let sets = replica_sets(api, &format!("app%3D{app}")).await;
    sets.first()?.pointer("/spec/replicas")?.as_i64()
}

/// After the dust settles: every ReplicaSet has exactly its replicas of active pods, and no pod
/// was bound twice (one `Scheduled` event each).
async fn assert_converged(api: &Client, app: &str, replicas: usize) {
    eventually("the deployment to converge", Duration::from_secs(30), || async {
        let sets = replica_sets(api, &format!("app%3D{app}")).await;
        let pods = active_pods(api, "default", &format!("app%3D{app}")).await;
        let bound = pods.iter().filter(|p| !str_at(p, "/spec/nodeName").is_empty()).count();
        let want: i64 = sets.iter().filter_map(|s| s.pointer("/spec/replicas").and_then(Value::as_i64)).sum();
        (want == replicas as i64 && pods.len() == replicas && bound == replicas).then_some(())
    })
    .await;
    for set in replica_sets(api, &format!("app%3D{app}")).await {
        let uid = str_at(&set, "/metadata/uid");
        let owned = active_pods(api, "default", &format!("app%3D{app}"))
            .await
            .iter()
            .filter(|p| str_at(p, "/metadata/ownerReferences/0/uid") == uid)
            .count();
        assert_eq!(Some(owned as i64), set.pointer("/spec/replicas").and_then(Value::as_i64), "{set}");
    }
    let events = api.list::<Value>("/api/v1/namespaces/default/events").await.expect("events").items;
    let mut bindings: std::collections::BTreeMap<String, usize> = Default::default();
    for e in events.iter().filter(|e| e["reason"] == "Scheduled") {
        *bindings.entry(str_at(e, "/involvedObject/uid").to_string()).or_default() += 1;
    }
    let twice: Vec<_> = bindings.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "pods bound more than once: {twice:?}");
}

/// Issue 6's failover measurement, controllers half: the leader is SIGKILLed `SKIFF_CTRL_KILLS`
/// times (20 by default) while a deployment is scaled up by one after each kill. Reported: the
/// time from the kill to the new leader's deployment controller scaling the ReplicaSet (its
/// first action) and to the ReplicaSet controller's new pod. Afterwards every ReplicaSet has
/// exactly its replicas and no pod was bound twice.
#[tokio::test(flavor = "multi_thread")]
async fn controllers_move_to_the_next_leader_after_each_kill() {
    let kills: i64 = std::env::var("SKIFF_CTRL_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let clients: Vec<(u64, Client)> = cluster.servers.iter().map(|s| (s.id, Client::new(&s.api_addr))).collect();
    let nodes = SimNodes::start(clients.iter().map(|(_, c)| c.clone()).collect());
    nodes.add("n1", "64").await;
    nodes.add("n2", "64").await;
    let api = nodes.any().await;
    create_deployment(&api, "scaled", 1).await;
    assert_converged(&api, "scaled", 1).await;

    let (mut to_scale, mut to_pod) = (Vec::new(), Vec::new());
    for round in 0..kills {
        let leader = cluster.wait_leader(Duration::from_secs(30)).await.expect("leader");
        let (_, api) = clients.iter().find(|(id, _)| *id != leader).expect("a survivor");
        let replicas = round + 2;
        let killed_at = Instant::now();
        cluster.kill(leader).expect("kill the leader");
        scale(api, "scaled", replicas).await;
        eventually("the ReplicaSet to be scaled", Duration::from_secs(15), || async {
            (set_replicas(api, "scaled").await == Some(replicas)).then_some(())
        })
        .await;
        to_scale.push(killed_at.elapsed());
        eventually("the new pod", Duration::from_secs(15), || async {
            (active_pods(api, "default", "app%3Dscaled").await.len() as i64 == replicas).then_some(())
        })
        .await;
        to_pod.push(killed_at.elapsed());
        cluster.start_server(leader).expect("restart");
        cluster.wait_ready(Duration::from_secs(30)).await.expect("restarted server ready");
    }
    for (what, took) in [("ReplicaSet scaled", &mut to_scale), ("pod created", &mut to_pod)] {
        took.sort();
        let pick = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "controllers failover over {kills} leader kills, kill to {what}: p50 {} ms, p99 {} ms, max {} ms",
            pick(0.5).as_millis(),
            pick(0.99).as_millis(),
            took.last().map(Duration::as_millis).unwrap_or_default()
        );
    }
    let api = nodes.any().await;
    assert_converged(&api, "scaled", kills as usize + 1).await;
}

/// Issue 6's fencing scenario, controllers half: the leader is SIGSTOPped; the deployment is
/// scaled down and the new leader's controllers delete the surplus; the old leader resumes with
/// caches that still show the old replicas. Whatever it tries is fenced: the pod count stays
/// exactly what the deployment asks.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leaders_controllers_change_nothing_after_it_resumes() {
    let mut cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    let old = cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let survivors: Vec<Client> =
        cluster.servers.iter().filter(|s| s.id != old).map(|s| Client::new(&s.api_addr)).collect();
    let nodes = SimNodes::start(survivors);
    nodes.add("n1", "64").await;
    nodes.add("n2", "64").await;
    let api = nodes.any().await;
    create_deployment(&api, "fenced", 6).await;
    assert_converged(&api, "fenced", 6).await;

    let old_addr = cluster.server(old).expect("server").api_addr.clone();
    let term = metric(&old_addr, "skiff_raft_term ").await.expect("the leader's term");
    cluster.signal(old, "-STOP").expect("SIGSTOP");
    scale(&api, "fenced", 2).await;
    assert_converged(&api, "fenced", 2).await;
    let fenced = |outcome: &str| format!("skiff_fenced_writes_total{{term=\"{term}\",outcome=\"{outcome}\"}} ");
    let accepted_before = metric(api.addr(), &fenced("accepted")).await.unwrap_or(0);
    let refused_before = metric(api.addr(), &fenced("refused")).await.unwrap_or(0);
    let before: Vec<String> = active_pods(&api, "default", "app%3Dfenced")
        .await
        .iter()
        .map(|p| str_at(p, "/metadata/uid").to_string())
        .collect();
    cluster.signal(old, "-CONT").expect("SIGCONT");
    // Give the resumed server time to act on what it saw before the pause.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<String> = active_pods(&api, "default", "app%3Dfenced")
        .await
        .iter()
        .map(|p| str_at(p, "/metadata/uid").to_string())
        .collect();
    assert_eq!(before, after, "the resumed leader changed the pods");
    assert_converged(&api, "fenced", 2).await;
    // The store's own history: nothing the old leadership sent after the pause got through.
    let accepted_after = metric(api.addr(), &fenced("accepted")).await.unwrap_or(0);
    let refused_after = metric(api.addr(), &fenced("refused")).await.unwrap_or(0);
    println!(
        "term {term}: {} writes accepted before the pause, {} after it; {} refused after it",
        accepted_before,
        accepted_after - accepted_before,
        refused_after - refused_before
    );
    assert_eq!(accepted_after, accepted_before, "a deposed leadership's write was accepted");
}

/// A counter or gauge from a server's `/metrics`: the value on the line starting with `prefix`.
async fn metric(addr: &str, prefix: &str) -> Option<u64> {
    let (_, text) = skiff_testkit::cluster::http_get(addr, "/metrics").await?;
    text.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.trim().parse::<f64>().ok()).map(|v| v as u64)
}

/// A namespace is created with the `kubernetes` finalizer; once deleted, the namespace
/// controller deletes its content, says in upstream's conditions what it waits for (content with
/// a finalizer), and finalizes it once that is gone; then the namespace goes.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminating_namespace_says_what_it_waits_for() {
    let cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let clients: Vec<Client> = cluster.servers.iter().map(|s| Client::new(&s.api_addr)).collect();
    let api = support::any_server(&clients).await;
    let created: Value = api
        .create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "held"}}))
        .await
        .expect("namespace");
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]), "created with the controller's finalizer");
    // spec.finalizers changes only through namespaces/finalize.
    let replaced: Value = api
        .update(
            "/api/v1/namespaces/held",
            &json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "held"}, "spec": {"finalizers": []}}),
        )
        .await
        .expect("update");
    assert_eq!(replaced["spec"]["finalizers"], json!(["kubernetes"]), "a plain update keeps spec.finalizers");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let _: Value = api.create("/apis/apps/v1/namespaces/held/deployments", &deployment).await.expect("deployment");
    let held = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "keep", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}});
    let _: Value = api.create("/api/v1/namespaces/held/configmaps", &held).await.expect("configmap");
    let _: Value =
        api.create("/api/v1/namespaces/held/configmaps", &json!({"metadata": {"name": "free"}})).await.expect("cm");
    let _: Value = api.delete("/api/v1/namespaces/held", &json!({})).await.expect("delete namespace");
    let ns = eventually("the finalizer condition", Duration::from_secs(20), || async {
        let ns: Value = api.get("/api/v1/namespaces/held").await.ok()?;
        let conditions = ns.pointer("/status/conditions")?.as_array()?.clone();
        conditions.iter().any(|c| c["type"] == "NamespaceFinalizersRemaining").then_some(ns)
    })
    .await;
    assert_eq!(str_at(&ns, "/status/phase"), "Terminating");
    let late =
        api.create::<Value, Value>("/api/v1/namespaces/held/configmaps", &json!({"metadata": {"name": "late"}})).await;
    match late {
        Err(skiff_client::ClientError::Status { code: 403, message, .. }) => {
            assert!(message.contains("because it is being terminated"), "{message}")
        }
        other => panic!("a create into a terminating namespace must be forbidden: {other:?}"),
    }
    let conditions = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let find = |kind: &str| conditions.iter().find(|c| c["type"] == kind).cloned().unwrap_or_default();
    assert_eq!(
        find("NamespaceFinalizersRemaining")["message"],
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(
        find("NamespaceContentRemaining")["message"],
        "Some resources are remaining: configmaps has 1 resource instances"
    );
    assert!(
        api.get::<Value>("/api/v1/namespaces/held/configmaps/free").await.is_err(),
        "content without finalizers is gone"
    );
    for gone in [
        "/apis/apps/v1/namespaces/held/deployments",
        "/apis/apps/v1/namespaces/held/replicasets",
        "/api/v1/namespaces/held/pods",
    ] {
        let left = eventually("the namespace's workloads to go", Duration::from_secs(20), || async {
            let list: skiff_client::List<Value> = api.list(gone).await.ok()?;
            list.items.is_empty().then_some(list.items.len())
        })
        .await;
        assert_eq!(left, 0, "{gone}");
    }
    let _: Value = api
        .patch_merge("/api/v1/namespaces/held/configmaps/keep", &json!({"metadata": {"finalizers": null}}))
        .await
        .expect("patch");
    eventually("the namespace to go", Duration::from_secs(30), || async {
        api.get::<Value>("/api/v1/namespaces/held").await.err().filter(|e| e.is_not_found()).map(|_| ())
    })
    .await;
}
