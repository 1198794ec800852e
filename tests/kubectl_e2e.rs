//! The installed kubectl (`/usr/bin/kubectl`, which runs v1.32 because `/version` says so)
//! against a real 3-server cluster. The first half runs with all servers up; then the Raft
//! leader is SIGKILLed and the second half runs against a surviving server.

use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use skiff_testkit::cluster::http_request;
use skiff_testkit::cluster::http_request_with;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;
use support::assert_has;
use support::Kubectl;

mod support;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports:
    - containerPort: 80
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
spec:
  replicas: 2
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec:
      containers: [{name: c, image: nginx:1.27}]
";

fn first_half(k: &Kubectl) {
    // version and discovery
    let v = k.ok(&["version"]);
    assert_has(&v, "Server Version: v1.32");
    let resources = k.ok(&["api-resources"]);
    for line in ["pods ", "deployments ", "deploy ", "apps/v1", "leases", "endpointslices", "clusterroles"] {
        assert_has(&resources, line);
    }
    let versions = k.ok(&["api-versions"]);
    assert_has(&versions, "apps/v1");
    assert_has(&versions, "rbac.authorization.k8s.io/v1");
    assert_has(&k.ok(&["get", "ns"]), "kube-node-lease");

    // client-side apply: create, unchanged, changed
    assert_has(&k.ok_stdin(&["apply", "-f", "-"], POD), "pod/web created");
    assert_has(&k.ok_stdin(&["apply", "-f", "-"], POD), "pod/web unchanged");
    assert_has(&k.ok_stdin(&["apply", "-f", "-"], &POD.replace("1.27", "1.28")), "pod/web configured");
    let image = k.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.containers[0].image} {.spec.containers[0].ports[0].protocol}",
    ]);
    assert_eq!(image, "nginx:1.28 TCP", "apply kept the port and defaulted its protocol");

    // get in every output shape
    let table = k.ok(&["get", "pods"]);
    assert_has(&table, "NAME");
    assert_has(&table, "READY");
    assert_has(&table, "STATUS");
    assert_has(&table, "Pending");
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert_has(&wide, "NOMINATED NODE");
    let yaml = k.ok(&["get", "pod", "web", "-o", "yaml"]);
    assert_has(&yaml, "resourceVersion:");
    assert_has(&yaml, "uid:");
    assert_has(&yaml, "restartPolicy: Always");
    assert_has(&yaml, "terminationMessagePath: /dev/termination-log");
    let json: serde_json::Value = serde_json::from_str(&k.ok(&["get", "pod", "web", "-o", "json"])).expect("json");
    assert_eq!(json["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(json["status"]["phase"], "Pending");
    assert_eq!(k.ok(&["get", "pods", "-o", "name"]).trim(), "pod/web");
    assert_has(&k.ok(&["get", "pods", "-A"]), "default");
    assert_has(&k.ok(&["get", "pods", "-l", "tier=front"]), "web");
    assert!(!k.ok(&["get", "pods", "-l", "tier!=front"]).contains("web"));
    assert_has(&k.ok(&["get", "pods", "-l", "app in (web,api)"]), "web");
    assert_has(&k.ok(&["get", "pods", "--field-selector", "status.phase=Pending"]), "web");
    assert!(!k.ok(&["get", "pods", "--field-selector", "metadata.name=other"]).contains("web"));
    assert_has(&k.ok(&["get", "pods", "--show-labels"]), "app=web,tier=front");
    k.ok_stdin(&["apply", "-f", "-"], &POD.replace("name: web", "name: alpha"));
    let sorted = k.ok(&["get", "pods", "--sort-by=.metadata.name", "-o", "name"]);
    assert_eq!(sorted.lines().collect::<Vec<_>>(), vec!["pod/alpha", "pod/web"]);
    // One object per page: kubectl follows the continue tokens.
    let paged = k.ok(&["get", "pods", "--chunk-size=1", "-o", "name"]);
    assert_eq!(paged.lines().collect::<Vec<_>>(), vec!["pod/alpha", "pod/web"]);
    let paged_table = k.ok(&["get", "pods", "--chunk-size=1", "-l", "app=web"]);
    assert!(paged_table.contains("alpha") && paged_table.contains("web"), "{paged_table}");

    // get -w sees a change made while it watches
    let mut watch = Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .arg("--cache-dir")
        .arg(&k.cache)
        .args(["get", "pods", "-w", "--request-timeout=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_millis(1500));
    k.ok(&["label", "pod", "alpha", "watched=yes"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let watched = watch.wait_with_output().expect("watch output");
    let watched = String::from_utf8_lossy(&watched.stdout);
    assert!(watched.matches("alpha").count() >= 2, "the watch saw the initial row and the change:\n{watched}");

    // label, annotate, describe with events
    assert_has(&k.ok(&["label", "pod", "web", "env=prod"]), "pod/web labeled");
    assert_has(&k.ok(&["annotate", "pod", "web", "note=hello"]), "pod/web annotated");
    let uid = k.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: web.1, namespace: default}}\ninvolvedObject: {{kind: Pod, name: web, namespace: default, uid: {uid}}}\nreason: Tested\nmessage: an event for describe\ntype: Normal\ncount: 1\nsource: {{component: e2e}}\n"
    );
    k.ok_stdin(&["create", "-f", "-"], &event);
    let describe = k.ok(&["describe", "pod", "web"]);
    assert_has(&describe, "env=prod");
    assert_has(&describe, "note: hello");
    assert_has(&describe, "Port:         80/TCP");
    assert_has(&describe, "an event for describe");
    // events.k8s.io/v1 is another version of the same events: one written there shows up in the
    // core view (and so in describe), and the core event reads back in the new form.
    let new_event = format!(
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {{name: web.2, namespace: default}}\nregarding: {{kind: Pod, name: web, namespace: default, uid: {uid}}}\nreason: Reported\nnote: an event from the new group\ntype: Normal\naction: Test\nreportingController: e2e/controller\nreportingInstance: e2e-1\neventTime: \"2026-01-01T00:00:00.000000Z\"\n"
    );
    k.ok_stdin(&["create", "-f", "-"], &new_event);
    assert_eq!(
        k.ok(&["get", "events.v1.", "web.2", "-o", "jsonpath={.message}/{.involvedObject.name}"]).trim(),
        "an event from the new group/web"
    );
    assert_eq!(
        k.ok(&["get", "events.v1.events.k8s.io", "web.1", "-o", "jsonpath={.note}/{.regarding.name}/{.apiVersion}"])
            .trim(),
        "an event for describe/web/events.k8s.io/v1"
    );
    assert_has(&k.ok(&["describe", "pod", "web"]), "an event from the new group");

    // patch: strategic (default), merge, json
    k.ok(&["patch", "pod", "web", "-p", r#"{"spec":{"containers":[{"name":"nginx","image":"nginx:1.29"}]}}"#]);
    let after = k.ok(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.containers[0].image} {.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(after, "nginx:1.29 80", "a strategic patch merges containers by name");
    k.ok(&["patch", "pod", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"merged":"yes"}}}"#]);
    k.ok(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
    ]);
    let labels = k.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.labels.merged}{.metadata.labels.json}"]);
    assert_eq!(labels, "yesyes");

    // edit via replace
    let mut current: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pod", "web", "-o", "json"])).expect("pod json");
    current["metadata"]["labels"]["replaced"] = "yes".into();
    assert_has(&k.ok_stdin(&["replace", "-f", "-"], &current.to_string()), "pod/web replaced");
    // the same resourceVersion again is now stale: a conflict
    let stale = k.fails_stdin(&["replace", "-f", "-"], &current.to_string());
    assert_has(&stale, "Error from server (Conflict)");

    // server-side apply, conflicts and force
    assert_has(&k.ok_stdin(&["apply", "--server-side", "-f", "-"], DEPLOYMENT), "serverside-applied");
    k.ok(&["scale", "deployment", "ssa", "--replicas=3"]);
    let conflict =
        k.fails_stdin(&["apply", "--server-side", "-f", "-"], &DEPLOYMENT.replace("replicas: 2", "replicas: 4"));
    assert_has(&conflict, "conflict");
    assert_has(&conflict, ".spec.replicas");
    k.ok_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &DEPLOYMENT.replace("replicas: 2", "replicas: 4"),
    );
    assert_eq!(k.ok(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"]), "4");
    let deploy = k.ok(&["get", "deployments"]);
    assert_has(&deploy, "UP-TO-DATE");
    assert_has(&deploy, "ssa");
}

fn second_half(k: &Kubectl) {
    // the objects written before the kill are all there
    assert_has(&k.ok(&["get", "pods", "-o", "name"]), "pod/web");
    assert_eq!(k.ok(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"]), "4");

    // create generators (protobuf bodies)
    assert_has(
        &k.ok(&["create", "deployment", "nginx", "--image=nginx:1.27", "--replicas=2"]),
        "deployment.apps/nginx created",
    );
    let d: serde_json::Value = serde_json::from_str(&k.ok(&["get", "deploy", "nginx", "-o", "json"])).expect("json");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_has(&k.ok(&["create", "namespace", "team-a"]), "namespace/team-a created");
    assert_has(&k.ok(&["create", "configmap", "cfg", "--from-literal=a=b", "-n", "team-a"]), "configmap/cfg created");
    assert_has(
        &k.ok(&["create", "secret", "generic", "s1", "--from-literal=pw=x", "-n", "team-a"]),
        "secret/s1 created",
    );
    assert_eq!(k.ok(&["get", "secret", "s1", "-n", "team-a", "-o", "jsonpath={.data.pw}"]), "eA==");
    assert_has(&k.ok(&["create", "service", "clusterip", "svc1", "--tcp=80:8080"]), "service/svc1 created");
    assert_has(&k.ok(&["create", "serviceaccount", "robot"]), "serviceaccount/robot created");
    assert_has(&k.ok(&["expose", "deployment", "nginx", "--port=80", "--target-port=8080"]), "service/nginx exposed");
    let ip1 = k.ok(&["get", "svc", "svc1", "-o", "jsonpath={.spec.clusterIP}"]);
    let ip2 = k.ok(&["get", "svc", "nginx", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip1.starts_with("10.") && ip2.starts_with("10.") && ip1 != ip2, "distinct cluster IPs: {ip1} {ip2}");
    assert_has(&k.ok(&["get", "svc"]), "CLUSTER-IP");

    // scale, with and without --current-replicas
    assert_has(&k.ok(&["scale", "deployment", "nginx", "--replicas=3"]), "scaled");
    k.ok(&["scale", "deployment", "nginx", "--current-replicas=3", "--replicas=5"]);
    assert_eq!(k.ok(&["get", "deploy", "nginx", "-o", "jsonpath={.spec.replicas}"]), "5");
    k.fails(&["scale", "deployment", "nginx", "--current-replicas=1", "--replicas=2"]);

    // explain, cluster-info, auth
    let explain = k.ok(&["explain", "pods.spec.containers"]);
    assert_has(&explain, "FIELD: containers");
    assert_has(&explain, "image");
    assert_has(&k.ok(&["cluster-info"]), "Kubernetes control plane is running at");
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_has(&k.ok(&["auth", "whoami"]), "Username");

    // wait
    assert_has(&k.ok(&["wait", "--for=jsonpath={.status.phase}=Pending", "pod/web", "--timeout=10s"]), "condition met");

    // errors as users see them
    assert_has(&k.fails(&["get", "pod", "nope"]), "Error from server (NotFound): pods \"nope\" not found");
    assert_has(&k.fails(&["create", "namespace", "team-a"]), "Error from server (AlreadyExists)");
    let strict = k.fails_stdin(
        &["apply", "-f", "-"],
        &POD.replace("image: nginx:1.27", "image: nginx:1.27\n    imagePullPolicyy: Always"),
    );
    assert_has(&strict, "strict decoding error: unknown field \"spec.containers[0].imagePullPolicyy\"");
    let invalid = k.fails_stdin(&["apply", "-f", "-"], &POD.replace("name: web", "name: Bad_Name"));
    assert_has(&invalid, "Invalid");
    assert_has(&invalid, "metadata.name");
    assert_has(&k.fails(&["get", "pods", "-l", "app in (web"]), "BadRequest");
    assert_has(&k.fails(&["create", "configmap", "x", "-n", "missing-ns"]), "namespaces \"missing-ns\" not found");

    // delete: by name, -f, -l, --all, namespace with contents
    assert_has(&k.ok(&["delete", "pod", "alpha"]), "pod \"alpha\" deleted");
    assert_has(&k.ok_stdin(&["delete", "-f", "-"], POD), "pod \"web\" deleted");
    k.ok(&["run", "r1", "--image=busybox", "--labels=run=me"]);
    k.ok(&["run", "r2", "--image=busybox", "--labels=run=me"]);
    assert_has(&k.ok(&["delete", "pods", "-l", "run=me"]), "pod \"r2\" deleted");
    assert_has(&k.ok(&["delete", "deploy", "--all"]), "deployment.apps \"nginx\" deleted");
    assert_has(&k.ok(&["delete", "namespace", "team-a", "--timeout=60s"]), "namespace \"team-a\" deleted");
    assert!(!k.ok(&["get", "ns"]).contains("team-a"));
    assert!(k.ok(&["get", "pods", "-o", "name"]).trim().is_empty());
}

/// Raw requests kubectl cannot send: oversized bodies, unknown media types, garbage.
async fn raw_errors(addr: &str) {
    let big = vec![b' '; 4 * 1024 * 1024];
    let (code, body) =
        http_request(addr, "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), &big)
            .await
            .expect("answer");
    assert_eq!(code, 413, "{body}");
    assert_has(&body, "\"kind\":\"Status\"");
    let (code, body) = http_request(addr, "POST", "/api/v1/namespaces/default/configmaps", Some("text/csv"), b"a,b")
        .await
        .expect("answer");
    assert_eq!(code, 415, "{body}");
    let (code, body) =
        http_request(addr, "POST", "/api/v1/namespaces/default/configmaps", Some("application/json"), b"{not json")
            .await
            .expect("answer");
    assert_eq!(code, 400, "{body}");
    let (code, _) = http_request(
        addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/vnd.kubernetes.protobuf"),
        b"k8s\0\x0a\xff\xff",
    )
    .await
    .expect("answer");
    assert_eq!(code, 400);
    let (code, _) = http_request(addr, "GET", "/api/v1/namespaces/default/widgets", None, b"").await.expect("answer");
    assert_eq!(code, 404);
    // A key repeated inside one object is a strict decoding error, reported with its path.
    let repeated =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"},"data":{"k":"1","k":"2"}}"#;
    let path = "/api/v1/namespaces/default/configmaps?fieldValidation=Strict";
    let (code, body) = http_request(addr, "POST", path, Some("application/json"), repeated).await.expect("answer");
    assert_eq!(code, 400, "{body}");
    assert_has(&body, r#"duplicate field \"metadata.name\""#);
    assert_has(&body, r#"duplicate field \"data.k\""#);
    // nothing of the above was written
    let (_, list) =
        http_request(addr, "GET", "/api/v1/namespaces/default/configmaps", None, b"").await.expect("answer");
    assert_has(&list, "\"items\":[]");
    // A write fenced with the current Raft term goes through; one fenced with another term (a
    // leadership that ended, or never was) is a 409 and writes nothing.
    let (_, metrics) = http_request(addr, "GET", "/metrics", None, b"").await.expect("answer");
    let term = metrics
        .lines()
        .find_map(|l| l.strip_prefix("skiff_raft_term "))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .expect("the term is exported");
    let cm = |name: &str| format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#);
    let post = |fence: String, body: String| async move {
        let headers = [("Content-Type", "application/json"), ("X-Skiff-Fence", fence.as_str())];
        http_request_with(addr, "POST", "/api/v1/namespaces/default/configmaps", &headers, body.as_bytes())
            .await
            .expect("answer")
    };
    let (code, body) = post(term.to_string(), cm("fenced-current")).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = post((term + 7).to_string(), cm("fenced-stale")).await;
    assert_eq!(code, 409, "{body}");
    assert_has(&body, "no longer the leader");
    let (code, _) = post("soon".to_string(), cm("fenced-garbage")).await;
    assert_eq!(code, 400);
    let (code, _) = http_request(addr, "GET", "/api/v1/namespaces/default/configmaps/fenced-stale", None, b"")
        .await
        .expect("answer");
    assert_eq!(code, 404, "the stale-fenced create wrote nothing");
    let (code, _) = http_request(addr, "DELETE", "/api/v1/namespaces/default/configmaps/fenced-current", None, b"")
        .await
        .expect("answer");
    assert_eq!(code, 200);
    // A watch by name from before a deletion delivers it, even when the object is already gone
    // when the watch starts (what `kubectl delete --wait` relies on).
    let (code, created) = post(term.to_string(), cm("short-lived")).await;
    assert_eq!(code, 201, "{created}");
    let rv: String = created
        .split("\"resourceVersion\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a resourceVersion")
        .to_string();
    let (code, _) = http_request(addr, "DELETE", "/api/v1/namespaces/default/configmaps/short-lived", None, b"")
        .await
        .expect("answer");
    assert_eq!(code, 200);
    let watch = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dshort-lived&resourceVersion={rv}&timeoutSeconds=1"
    );
    let (code, events) = http_request(addr, "GET", &watch, None, b"").await.expect("answer");
    assert_eq!(code, 200);
    assert_has(&events, "\"type\":\"DELETED\"");
    // The refusals above are counted per verb, resource and code in the upstream metric names.
    let (_, metrics) = http_request(addr, "GET", "/metrics", None, b"").await.expect("answer");
    let configmaps =
        "verb=\"POST\",group=\"\",version=\"v1\",resource=\"configmaps\",subresource=\"\",scope=\"namespace\"";
    for code in [400, 413, 415] {
        assert_has(&metrics, &format!("apiserver_request_total{{{configmaps},code=\"{code}\"}}"));
    }
    assert_has(&metrics, &format!("apiserver_request_duration_seconds_count{{{configmaps}}}"));
    assert_has(&metrics, "apiserver_current_inflight_requests{request_kind=\"mutating\"} 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_a_three_server_cluster_through_a_leader_kill() {
    let mut cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    let leader = cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    // kubectl talks to a follower first, so the second half's server survives the kill.
    let survivor = cluster.servers.iter().find(|s| s.id != leader).expect("a follower").id;
    let addr = cluster.server(survivor).expect("server").api_addr.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kubectl::new(dir.path(), &addr);
    wait_for_bootstrap(&k);

    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| first_half(&k)));
    if let Err(e) = first {
        let kept = cluster.keep();
        eprintln!("cluster kept at {}", kept.display());
        std::panic::resume_unwind(e);
    }

    cluster.kill(leader).expect("kill leader");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cluster.leader().await.is_none_or(|l| l == leader) {
        assert!(std::time::Instant::now() < deadline, "no new leader after the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| second_half(&k)));
    if let Err(e) = second {
        let kept = cluster.keep();
        eprintln!("cluster kept at {}", kept.display());
        std::panic::resume_unwind(e);
    }
    raw_errors(&addr).await;
}

/// The same suite over TLS, as the admin kubeconfig `skiff kubeconfig` prints: every request
/// authenticated by a client certificate and authorized (the admin is in `system:masters`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubectl_suite_passes_over_tls_with_an_admin_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cluster, k) = support::tls_cluster_with_admin(dir.path()).await;
    wait_for_bootstrap(&k);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        first_half(&k);
        second_half(&k);
    }));
    if let Err(e) = result {
        let kept = cluster.keep();
        eprintln!("cluster kept at {}", kept.display());
        std::panic::resume_unwind(e);
    }
}

/// The system namespaces are written by the servers once a leader exists.
fn wait_for_bootstrap(k: &Kubectl) {
    for _ in 0..100 {
        let out = k.run(&["get", "ns", "default", "-o", "name"]);
        if out.ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the default namespace never appeared");
}
