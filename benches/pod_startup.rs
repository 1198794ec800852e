//! Pod start-up latency (issue 7): how long a pod takes from its create to Running on a real
//! node, against the floor the container runtime itself sets, measured in the same run.
//!
//! The shape is upstream's node-throughput test: pods created at a steady rate (20 at 5 pods/s
//! by default) onto one node, a real `skiff agent` driving its own containerd, with the image
//! already on the node. A warm-up pod with the same image runs and is deleted first, so the image
//! (and the pause image) are pulled before the clock starts; the measured pods say
//! `imagePullPolicy: IfNotPresent`, and their "already present" Pulled events are counted to show
//! no pull happened.
//!
//! Every moment is taken by this process's monotonic clock, at the moment the bench saw it:
//! the POST's return (the pod's creation), then the first event on a WATCH of the namespace's
//! pods (started before the first create) that shows the pod bound (`spec.nodeName`), its
//! sandbox up (condition PodReadyToStartContainers=True or a pod IP), and it Running (phase
//! Running and the container's state running). The agent reports a pod's status once per sync,
//! so the sandbox and Running moments may arrive in one event; containerd's own timestamps for
//! each pod (sandbox created, container created and started) are printed alongside, on the same
//! clock, to show where the time between bound and Running goes.
//!
//! The floor: after the skiff pods are deleted, the bench talks to the same agent's containerd
//! over CRI with the agent's own request builders and times RunPodSandbox + CreateContainer +
//! StartContainer for as many sandboxes at the same rate, then stops and removes them (they lack
//! the pod-uid label, so the agent's orphan collector leaves them to the bench). The printed ratio
//! is skiff's p50 over the floor's p50.
//!
//! `cargo test --workspace --bench pod_startup -- [--quick] [--pods N] [--rate R] [--timeout SECS]`
//! (see docs/benchmarks.md). `--quick` is 5 pods. Needs root, containerd, runc, the CNI plugins,
//! docker-registry, skopeo and busybox-static (scripts/deps.sh). The whole run, set-up included,
//! fails with a message after `--timeout` seconds (180 by default).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::json;
use serde_json::Value;
use skiff_agent::cri::Cri;
use skiff_agent::cri::LABEL_POD_UID;
use skiff_agent::pod::spec;
use skiff_client::Client;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;

// The bench needs the agent and the images, not every helper the tests use.
#[allow(dead_code)]
#[path = "../tests/support/agent.rs"]
mod agent;

const NAMESPACE: &str = "pod-startup";
const NODE: &str = "bench-node";
const BRIDGE: &str = "skiffbench0";
const GOAL_P99_MS: i64 = 1000;
const UPSTREAM_SLO_MS: i64 = 5000;

struct Args {
    pods: usize,
    rate: f64,
    timeout: Duration,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let pods = value("--pods").map(|v| v.parse().expect("--pods takes a number")).unwrap_or(if quick { 5 } else { 20 });
    let rate: f64 = value("--rate").map(|v| v.parse().expect("--rate takes pods per second")).unwrap_or(5.0);
    assert!(pods > 0 && rate > 0.0, "--pods and --rate must be positive");
    let timeout = value("--timeout").map(|v| v.parse().expect("--timeout takes seconds")).unwrap_or(180);
    Args { pods, rate, timeout: Duration::from_secs(timeout) }
}

/// What the bench is doing, for the message when the time limit strikes.
type Phase = Arc<Mutex<String>>;

fn enter(phase: &Phase, what: impl Into<String>) {
    let what = what.into();
    println!("  .. {what}");
    *phase.lock() = what;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "pod start-up: {cores} cores, {} pods at {}/s on one node, time limit {} s",
        args.pods,
        args.rate,
        args.timeout.as_secs()
    );
    let deadline = Instant::now() + args.timeout;
    let phase: Phase = Arc::new(Mutex::new("starting".into()));
    // A set-up cut short is dropped inside the timeout, which stops whatever it had started.
    let Ok(setup) = tokio::time::timeout(args.timeout, Setup::start(&phase)).await else {
        panic!(
            "pod start-up: not finished within the {} s limit, still {}",
            args.timeout.as_secs(),
            phase.lock().as_str()
        );
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, measure(&setup, &args, &phase)).await {
        Ok(report) => {
            drop(setup);
            println!("\n{report}");
        }
        Err(_) => {
            let tail = setup.agent.log_tail();
            let mut setup = setup;
            // Calls the killed agent had in flight still finish in containerd; the reset (on
            // drop) removes what they create only if it lists the sandboxes after them.
            setup.agent.kill();
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(setup);
            panic!(
                "pod start-up: not finished within the {} s limit, still {}; the agent's log ended with:\n{tail}",
                args.timeout.as_secs(),
                phase.lock().as_str()
            );
        }
    }
}

struct Setup {
    // Dropped in this order: the agent's reset runs while the cluster and registry still exist.
    agent: agent::Agent,
    api: Client,
    images: agent::Images,
    _cluster: ProcessCluster,
}

impl Setup {
    async fn start(phase: &Phase) -> Setup {
        enter(phase, "starting a 3-server cluster");
        let cluster =
            ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("start a 3-server cluster");
        cluster.wait_leader(Duration::from_secs(30)).await.expect("a leader");
        enter(phase, "building the images and starting the registry");
        let images = agent::Images::start(cluster.dir());
        let servers: Vec<String> = cluster.servers.iter().map(|s| s.api_addr.clone()).collect();
        let api = Client::with_servers(&servers, None).expect("a client of the cluster");
        enter(phase, "starting the agent and waiting for its node to be Ready");
        let agent = agent::Agent::start(cluster.dir(), NODE, &servers, &images.pause, BRIDGE);
        let setup = Setup { agent, api, images, _cluster: cluster };
        let ready = |node: &Value| {
            node.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|all| all.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        };
        let limit = Instant::now() + Duration::from_secs(90);
        loop {
            if setup.api.get::<Value>(&format!("/api/v1/nodes/{NODE}")).await.is_ok_and(|n| ready(&n)) {
                break;
            }
            assert!(
                Instant::now() < limit,
                "node {NODE} not Ready after 90 s; the agent's log ended with:\n{}",
                setup.agent.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        setup
    }
}

/// The moments one pod was seen at, by the watcher.
#[derive(Default, Clone)]
struct Seen {
    uid: String,
    added: Option<Instant>,
    scheduled: Option<Instant>,
    sandbox: Option<Instant>,
    running: Option<Instant>,
}

/// One measured pod: when its POST was sent and returned, and what the watcher saw.
struct SkiffPod {
    name: String,
    sent: Instant,
    created: Instant,
    seen: Seen,
}

/// One raw CRI start: before RunPodSandbox, and after each of the three calls returned; and
/// containerd's timestamps of it, to show where they fall within the calls.
struct RawStart {
    name: String,
    stamps: Option<Stamps>,
    begin: Instant,
    sandbox: Instant,
    created: Instant,
    started: Instant,
}

async fn measure(setup: &Setup, args: &Args, phase: &Phase) -> String {
    let api = &setup.api;
    let pods_path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let image = setup.images.busybox.clone();
    enter(phase, format!("creating namespace {NAMESPACE}"));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let mut attempt = 0;
    while let Err(e) = api.create::<_, Value>("/api/v1/namespaces", &namespace).await {
        attempt += 1;
        assert!(attempt < 50, "create namespace {NAMESPACE}: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    enter(phase, "warm-up: pulling the image with one pod, then deleting it");
    let warm = Instant::now();
    api.create::<_, Value>(&pods_path, &pod_json("warm-up", &image)).await.expect("create the warm-up pod");
    wait_until(api, &format!("{pods_path}/warm-up"), |p| p.is_some_and(is_running)).await;
    delete_pods(api, &pods_path, &["warm-up".to_string()]).await;
    wait_until(api, &format!("{pods_path}/warm-up"), |p| p.is_none()).await;
    println!("  warm-up pod ran and was deleted in {} ms", warm.elapsed().as_millis());

    let (skiff, restarts) = run_skiff_pods(api, &pods_path, &image, args, phase).await;
    // The agent's events, and containerd's own timestamps, of the measured pods.
    let events = api.list::<Value>(&format!("/api/v1/namespaces/{NAMESPACE}/events")).await.expect("list events");
    let measured = |e: &Value| skiff.iter().any(|p| e.pointer("/involvedObject/name") == Some(&json!(p.name)));
    let count = |reason: &str, text: &str| {
        events
            .items
            .iter()
            .filter(|e| measured(e) && e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text)))
            .count()
    };
    let (present, pulling) = (count("Pulled", "already present"), count("Pulling", ""));
    let socket = setup.agent.data_dir.join("containerd").join("containerd.sock");
    let mut cri = Cri::connect(&socket, Duration::from_secs(10)).await.expect("connect to the agent's containerd");
    let runtime = cri.version().await.unwrap_or_else(|e| format!("? ({e})"));
    let stamps = runtime_stamps(&mut cri, &skiff).await;

    enter(phase, format!("deleting the {} pods and waiting until they are gone", skiff.len()));
    let names: Vec<String> = skiff.iter().map(|p| p.name.clone()).collect();
    delete_pods(api, &pods_path, &names).await;
    wait_until(api, &pods_path, |list| list.as_ref().is_some_and(|l| l["items"].as_array().is_some_and(Vec::is_empty)))
        .await;

    let raw = run_raw(&cri, setup, &image, args, phase).await;
    report(&skiff, restarts, &stamps, &raw, present, pulling, &runtime, args)
}

fn pod_json(name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "pod-startup"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "sleep", "image": image,
            "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}})
}

fn is_scheduled(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty())
}

fn has_sandbox(pod: &Value) -> bool {
    let ready_to_start = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|all| all.iter().any(|c| c["type"] == "PodReadyToStartContainers" && c["status"] == "True"));
    ready_to_start || pod.pointer("/status/podIP").and_then(Value::as_str).is_some_and(|ip| !ip.is_empty())
}

fn is_running(pod: &Value) -> bool {
    pod.pointer("/status/phase") == Some(&json!("Running"))
        && pod.pointer("/status/containerStatuses/0/state/running").is_some_and(Value::is_object)
}

/// Polls `path` until `done` holds for it (`None`: not found). The run's time limit bounds it.
async fn wait_until(api: &Client, path: &str, done: impl Fn(Option<&Value>) -> bool) {
    loop {
        match api.get::<Value>(path).await {
            Ok(v) if done(Some(&v)) => return,
            Err(e) if e.is_not_found() && done(None) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn delete_pods(api: &Client, pods_path: &str, names: &[String]) {
    for name in names {
        match api.delete::<Value>(&format!("{pods_path}/{name}"), &json!({})).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => panic!("delete pod {name}: {e}"),
        }
    }
}

/// Creates the pods at the rate while a watch records what happens to them; returns them once
/// all are Running, with how often the watch had to be restarted.
async fn run_skiff_pods(
    api: &Client,
    pods_path: &str,
    image: &str,
    args: &Args,
    phase: &Phase,
) -> (Vec<SkiffPod>, usize) {
    let before = api.list::<Value>(pods_path).await.expect("list the namespace's pods");
    let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Default::default();
    let restarts = Arc::new(Mutex::new(0usize));
    // Aborted when dropped: a run cut short by the time limit leaves no watch behind.
    let mut watcher = tokio::task::JoinSet::new();
    watcher.spawn(watch_pods(
        api.clone(),
        pods_path.to_string(),
        before.resource_version,
        seen.clone(),
        restarts.clone(),
    ));

    enter(phase, format!("creating {} pods at {}/s", args.pods, args.rate));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = tokio::time::Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..args.pods {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (api, path, name) = (api.clone(), pods_path.to_string(), format!("pod-{i:03}"));
        let pod = pod_json(&name, image);
        // Each create runs on its own so a slow answer does not hold back the next one's turn.
        creates.spawn(async move {
            let sent = Instant::now();
            let result = api.create::<_, Value>(&path, &pod).await;
            (name, sent, Instant::now(), result.map(|_| ()).map_err(|e| e.to_string()))
        });
    }
    let mut made = Vec::new();
    while let Some(create) = creates.join_next().await {
        let (name, sent, created, result) = create.expect("a create task");
        if let Err(e) = result {
            panic!("create pod {name}: {e}");
        }
        made.push((name, sent, created));
    }
    made.sort_by(|a, b| a.0.cmp(&b.0));

    loop {
        let running = {
            let seen = seen.lock();
            made.iter().filter(|(name, _, _)| seen.get(name).is_some_and(|s| s.running.is_some())).count()
        };
        if running == made.len() {
            break;
        }
        *phase.lock() = format!("waiting for the pods to run: {running} of {} Running", made.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort_all();
    let seen = seen.lock();
    let pods = made
        .into_iter()
        .map(|(name, sent, created)| {
            let s = seen.get(&name).cloned().unwrap_or_default();
            SkiffPod { name, sent, created, seen: s }
        })
        .collect();
    let restarts = *restarts.lock();
    (pods, restarts)
}

/// Records, per pod, the first moment an event showed each step. A watch that ends is resumed
/// from the last revision; one the server refuses is replaced by a list (what it shows counts as
/// seen at the list, later than it happened: the restarts are reported).
async fn watch_pods(
    api: Client,
    path: String,
    mut revision: String,
    seen: Arc<Mutex<BTreeMap<String, Seen>>>,
    restarts: Arc<Mutex<usize>>,
) {
    loop {
        let mut refused = true;
        if let Ok(events) = api.watch(&path, &revision).await {
            refused = false;
            let mut events = std::pin::pin!(events);
            while let Some(Ok(event)) = events.next().await {
                let now = Instant::now();
                if event.kind == "ERROR" {
                    refused = true;
                    break;
                }
                if let Some(rv) = event.object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                    revision = rv.to_string();
                }
                if event.kind != "BOOKMARK" && event.kind != "DELETED" {
                    note(&seen, &event.object, now);
                }
            }
        }
        *restarts.lock() += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if refused {
            if let Ok(list) = api.list::<Value>(&path).await {
                let now = Instant::now();
                for pod in &list.items {
                    note(&seen, pod, now);
                }
                revision = list.resource_version;
            }
        }
    }
}

fn note(seen: &Mutex<BTreeMap<String, Seen>>, pod: &Value, now: Instant) {
    let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else { return };
    let mut seen = seen.lock();
    let s = seen.entry(name.to_string()).or_default();
    if s.uid.is_empty() {
        s.uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    }
    s.added.get_or_insert(now);
    if is_scheduled(pod) {
        s.scheduled.get_or_insert(now);
    }
    if has_sandbox(pod) {
        s.sandbox.get_or_insert(now);
    }
    if is_running(pod) {
        s.running.get_or_insert(now);
    }
}

/// containerd's record of a pod: sandbox created, container created, container started
/// (nanoseconds since the epoch).
#[derive(Default, Clone, Copy)]
struct Stamps {
    sandbox: i64,
    created: i64,
    started: i64,
}

async fn runtime_stamps(cri: &mut Cri, pods: &[SkiffPod]) -> Vec<Option<Stamps>> {
    let mut out = Vec::new();
    for p in pods {
        let sandbox = cri.list_sandboxes(Some(&p.seen.uid)).await.ok().and_then(|s| s.first().map(|s| s.created_at));
        let container = cri.list_containers(Some(&p.seen.uid)).await.ok().and_then(|c| c.first().cloned());
        let status = match &container {
            Some(c) => cri.container_status(&c.id).await.ok().flatten(),
            None => None,
        };
        out.push(match (sandbox, container, status) {
            (Some(sandbox), Some(c), Some(status)) => {
                Some(Stamps { sandbox, created: c.created_at, started: status.started_at })
            }
            _ => None,
        });
    }
    out
}

/// The floor: the agent's own CRI requests for the same pod, sent straight to its containerd.
async fn run_raw(cri: &Cri, setup: &Setup, image: &str, args: &Args, phase: &Phase) -> Vec<RawStart> {
    enter(phase, format!("raw CRI: {} sandboxes at {}/s on the agent's containerd", args.pods, args.rate));
    let dns = spec::DnsSettings::from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let logs = setup.agent.data_dir.join("logs");
    let mut requests = Vec::new();
    for i in 0..args.pods {
        let name = format!("raw-{i:03}");
        let mut pod = pod_json(&name, image);
        pod["metadata"]["uid"] = json!(name);
        let log_dir = spec::log_directory(&logs, &pod);
        std::fs::create_dir_all(&log_dir).expect("create a raw sandbox's log directory");
        let mut sandbox = spec::sandbox_config(&pod, 0, &log_dir, &dns);
        // Without the uid label the agent's orphan collector, which runs every 10 s, does not
        // see these sandboxes and cannot tear one down in the middle of its start.
        sandbox.labels.remove(LABEL_POD_UID);
        let container = spec::container_config(&pod, &pod["spec"]["containers"][0], 0, &[], Vec::new());
        requests.push((sandbox, container));
    }

    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = tokio::time::Instant::now();
    // Aborted when dropped, so a run cut short stops creating sandboxes before the agent's reset
    // lists what to remove.
    let mut starts = tokio::task::JoinSet::new();
    for (i, (sandbox, container)) in requests.into_iter().enumerate() {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let mut cri = cri.clone();
        let name = format!("raw-{i:03}");
        starts.spawn(async move {
            let begin = Instant::now();
            let id = cri.run_pod_sandbox(sandbox.clone()).await.map_err(|e| e.to_string())?;
            let after_sandbox = Instant::now();
            let container = cri.create_container(&id, container, sandbox).await.map_err(|e| e.to_string())?;
            let created = Instant::now();
            cri.start_container(&container).await.map_err(|e| e.to_string())?;
            let started = Instant::now();
            Ok::<_, String>(RawStart { name, stamps: None, begin, sandbox: after_sandbox, created, started })
        });
    }
    let mut results = Vec::new();
    while let Some(s) = starts.join_next().await {
        results.push(s.map_err(|e| e.to_string()).and_then(|r| r));
    }

    enter(phase, "raw CRI: stopping and removing the sandboxes");
    let failures: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    let stamps = remove_raw_sandboxes(cri).await;
    let _ = std::fs::remove_dir_all(&logs);
    assert!(failures.is_empty(), "raw CRI starts failed: {failures:?}");
    results.into_iter().filter_map(Result::ok).map(|r| RawStart { stamps: stamps.get(&r.name).copied(), ..r }).collect()
}

/// Finds the raw sandboxes by their metadata (they carry no uid label) and removes them with
/// their containers, including any a failed start left behind; returns containerd's timestamps
/// of each, by pod name.
async fn remove_raw_sandboxes(cri: &Cri) -> BTreeMap<String, Stamps> {
    let mut cri = cri.clone();
    let sandboxes = cri.list_sandboxes(None).await.expect("list sandboxes");
    let raw: Vec<(String, String, i64)> = sandboxes
        .into_iter()
        .filter_map(|s| {
            let m = s.metadata.as_ref().filter(|m| m.uid.starts_with("raw-"))?;
            Some((s.id.clone(), m.name.clone(), s.created_at))
        })
        .collect();
    let containers = cri.list_containers(None).await.expect("list containers");
    let mut stamps = BTreeMap::new();
    for (id, name, sandbox_created) in &raw {
        for c in containers.iter().filter(|c| &c.pod_sandbox_id == id) {
            if let Ok(Some(status)) = cri.container_status(&c.id).await {
                let s = Stamps { sandbox: *sandbox_created, created: c.created_at, started: status.started_at };
                stamps.insert(name.clone(), s);
            }
        }
    }
    for (id, _, _) in &raw {
        cri.stop_pod_sandbox(id).await.expect("stop a raw sandbox");
        for c in containers.iter().filter(|c| &c.pod_sandbox_id == id) {
            cri.remove_container(&c.id).await.expect("remove a raw container");
        }
        cri.remove_pod_sandbox(id).await.expect("remove a raw sandbox");
    }
    let left = cri
        .list_sandboxes(None)
        .await
        .expect("list sandboxes")
        .iter()
        .filter(|s| s.metadata.as_ref().is_some_and(|m| m.uid.starts_with("raw-")))
        .count();
    assert_eq!(left, 0, "raw sandboxes left after removing them");
    println!("  removed {} raw sandboxes", raw.len());
    stamps
}

fn ms(from: Instant, to: Instant) -> i64 {
    if to >= from {
        to.duration_since(from).as_millis() as i64
    } else {
        -(from.duration_since(to).as_millis() as i64)
    }
}

/// Nearest rank: with 20 samples p99 is the largest.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn row(out: &mut String, label: &str, mut values: Vec<i64>) -> (i64, i64) {
    values.sort_unstable();
    let (p50, p99, max) = (percentile(&values, 0.5), percentile(&values, 0.99), values.last().copied().unwrap_or(0));
    out.push_str(&format!("{label:<56} {p50:>7} {p99:>7} {max:>7}\n"));
    (p50, p99)
}

#[allow(clippy::too_many_arguments)]
fn report(
    pods: &[SkiffPod],
    restarts: usize,
    stamps: &[Option<Stamps>],
    raw: &[RawStart],
    present: usize,
    pulling: usize,
    runtime: &str,
    args: &Args,
) -> String {
    let each = |f: &dyn Fn(&SkiffPod) -> Option<i64>| pods.iter().filter_map(f).collect::<Vec<i64>>();
    let mut out = format!(
        "skiff: {} pods at {}/s on one node ({runtime}), ms by the bench's clock (n={})\n{:<56} {:>7} {:>7} {:>7}\n",
        pods.len(),
        args.rate,
        pods.len(),
        "",
        "p50",
        "p99",
        "max"
    );
    let (p50, p99) =
        row(&mut out, "total: POST returned -> Running seen", each(&|p| Some(ms(p.created, p.seen.running?))));
    row(&mut out, "total: first watch event -> Running seen", each(&|p| Some(ms(p.seen.added?, p.seen.running?))));
    row(&mut out, "  (POST round trip)", each(&|p| Some(ms(p.sent, p.created))));
    row(&mut out, "scheduling: POST returned -> nodeName seen", each(&|p| Some(ms(p.created, p.seen.scheduled?))));
    row(
        &mut out,
        "sandbox: nodeName seen -> podIP/ReadyToStart seen",
        each(&|p| Some(ms(p.seen.scheduled?, p.seen.sandbox?))),
    );
    row(
        &mut out,
        "container start: sandbox seen -> Running seen",
        each(&|p| Some(ms(p.seen.sandbox?, p.seen.running?))),
    );

    // containerd's timestamps are wall-clock nanoseconds; the watcher's moments are mapped onto
    // the wall clock through one pair of readings taken now.
    let (now, wall) = (Instant::now(), SystemTime::now());
    let wall_ms = wall.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let on_wall = |t: Instant| wall_ms - ms(t, now);
    let with_stamps: Vec<(&SkiffPod, Stamps)> =
        pods.iter().zip(stamps).filter_map(|(p, s)| s.map(|s| (p, s))).collect();
    let by_runtime = |f: &dyn Fn(&SkiffPod, Stamps) -> Option<i64>| {
        with_stamps.iter().filter_map(|(p, s)| f(p, *s)).collect::<Vec<i64>>()
    };
    out.push_str(&format!(
        "\nthe same pods by containerd's timestamps (n={}; the raw table shows where they fall within the calls)\n",
        with_stamps.len()
    ));
    row(
        &mut out,
        "nodeName seen -> containerd sandbox created",
        by_runtime(&|p, s| Some(s.sandbox / 1_000_000 - on_wall(p.seen.scheduled?))),
    );
    row(
        &mut out,
        "sandbox created -> container created",
        by_runtime(&|_, s| Some((s.created - s.sandbox) / 1_000_000)),
    );
    row(&mut out, "container created -> started", by_runtime(&|_, s| Some((s.started - s.created) / 1_000_000)));
    row(
        &mut out,
        "container started -> Running seen",
        by_runtime(&|p, s| Some(on_wall(p.seen.running?) - s.started / 1_000_000)),
    );

    out.push_str(&format!(
        "\nraw CRI floor: {} sandboxes at {}/s on the same containerd (n={})\n",
        raw.len(),
        args.rate,
        raw.len()
    ));
    let raws = |f: &dyn Fn(&RawStart) -> i64| raw.iter().map(f).collect::<Vec<i64>>();
    row(&mut out, "RunPodSandbox", raws(&|r| ms(r.begin, r.sandbox)));
    row(&mut out, "CreateContainer", raws(&|r| ms(r.sandbox, r.created)));
    row(&mut out, "StartContainer", raws(&|r| ms(r.created, r.started)));
    let (raw_p50, raw_p99) =
        row(&mut out, "total: RunPodSandbox + CreateContainer + StartContainer", raws(&|r| ms(r.begin, r.started)));
    let raw_stamps = |f: &dyn Fn(&RawStart, Stamps) -> i64| {
        raw.iter().filter_map(|r| r.stamps.map(|s| f(r, s))).collect::<Vec<i64>>()
    };
    row(
        &mut out,
        "  RunPodSandbox began -> containerd sandbox created",
        raw_stamps(&|r, s| s.sandbox / 1_000_000 - on_wall(r.begin)),
    );
    row(
        &mut out,
        "  containerd sandbox created -> RunPodSandbox returned",
        raw_stamps(&|r, s| on_wall(r.sandbox) - s.sandbox / 1_000_000),
    );
    row(
        &mut out,
        "  CreateContainer began -> containerd container created",
        raw_stamps(&|r, s| s.created / 1_000_000 - on_wall(r.sandbox)),
    );
    row(
        &mut out,
        "  StartContainer began -> containerd container started",
        raw_stamps(&|r, s| s.started / 1_000_000 - on_wall(r.created)),
    );

    out.push_str(&format!(
        "\nimage: {present} of {} pods had a Pulled \"already present\" event, {pulling} a Pulling event\n",
        pods.len()
    ));
    if restarts > 0 {
        out.push_str(&format!(
            "note: the watch was restarted {restarts} times; moments seen after a restart are late\n"
        ));
    }
    out.push_str(&format!("raw CRI floor p99 {raw_p99} ms\n"));
    let ratio = if raw_p50 > 0 { p50 as f64 / raw_p50 as f64 } else { f64::NAN };
    out.push_str(&format!(
        "pod startup: p50 {p50} ms, p99 {p99} ms (goal p99 <= {GOAL_P99_MS} ms; upstream SLO {UPSTREAM_SLO_MS} ms) ; raw CRI floor p50 {raw_p50} ms ; skiff/raw ratio {ratio:.2}"
    ));
    out
}
