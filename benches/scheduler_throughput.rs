//! Scheduler throughput (issue 6): how many pending pods per second the scheduler inside
//! `skiff server` binds, end to end through the API and the Raft store, with 1 000 and 5 000
//! simulated nodes and 10 000 pods.
//!
//! Each case starts a fresh three-server cluster, registers the nodes through the API (spread
//! over the three servers, 48 requests in flight): a Node object, then a status with capacity and
//! allocatable (cpu 32, memory 256Gi, pods 110) and a Ready condition. The nodes send no
//! heartbeats afterwards, so the servers run with `--node-monitor-grace-period 3600`: otherwise
//! the node lifecycle controller would mark them Unknown and taint them 40 s into a long run.
//! They also run with `--cluster-cidr 10.0.0.0/8`, because the default /16 holds only 256 node
//! /24s and the other nodes would each get a CIDRNotAvailable write, which no real cluster of
//! that size is configured to do. The bench waits until the node IPAM controller has given every
//! node its podCIDR, so those writes are over before the clock starts.
//!
//! The timed interval runs from the first pod create to the moment the last pod is seen bound
//! (`spec.nodeName` set) by a watch on a follower. Pods (cpu 10m, memory 16Mi) are created as
//! fast as the API takes them, 64 in flight over the three servers, while the leader's scheduler
//! binds them. Printed per case: the create rate (what the API accepted), the end-to-end bind
//! rate, the bind rate from the moment the last create returned (the scheduler alone, once the
//! API is no longer busy with creates), progress every 10 s, and the CPU each process used during
//! the timed interval, so the reader can tell whether the API or the scheduler is the limit.
//!
//! The goal and upstream's number are reference points, not measured in this run: the goal is at
//! least 1 000 pods/s at 1 000 nodes; upstream Kubernetes' scheduler_perf CI threshold is 680
//! pods/s at 5 000 nodes, on much larger machines. There is no upstream scheduler to run here.
//!
//! `cargo test --workspace --bench scheduler_throughput -- [--quick] [--nodes 1000,5000] [--pods 10000]
//! [--timeout SECS]` (see docs/benchmarks.md). `--quick` is 200 nodes and 2 000 pods; a case
//! that has not finished after `--timeout` seconds (900 by default) reports what was bound so far.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientError;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;

const NAMESPACE: &str = "sched-bench";
const NODE_CONCURRENCY: usize = 48;
const POD_CONCURRENCY: usize = 64;
const PODS_PER_NODE: usize = 110;
const GOAL: f64 = 1000.0;
const UPSTREAM_THRESHOLD: f64 = 680.0;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

struct Args {
    nodes: Vec<usize>,
    pods: usize,
    timeout: Duration,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let nodes = value("--nodes")
        .map(|v| v.split(',').map(|n| n.trim().parse().expect("--nodes takes numbers, e.g. 1000,5000")).collect())
        .unwrap_or_else(|| if quick { vec![200] } else { vec![1000, 5000] });
    let pods =
        value("--pods").map(|v| v.parse().expect("--pods takes a number")).unwrap_or(if quick { 2000 } else { 10_000 });
    let timeout = value("--timeout").map(|v| v.parse().expect("--timeout takes seconds")).unwrap_or(900);
    Args { nodes, pods, timeout: Duration::from_secs(timeout) }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "scheduler throughput: {cores} cores, cases {:?} nodes x {} pods, time limit {} s per case",
        args.nodes,
        args.pods,
        args.timeout.as_secs()
    );
    let mut lines = Vec::new();
    for &nodes in &args.nodes {
        assert!(
            nodes * PODS_PER_NODE >= args.pods,
            "{nodes} nodes of {PODS_PER_NODE} pods cannot hold {} pods",
            args.pods
        );
        // Each case gets its own cluster (dropped at the end of run_case), so the second does
        // not inherit the first one's pods, events and watch window.
        let outcome = run_case(nodes, args.pods, args.timeout).await;
        println!("{}", outcome.line);
        lines.push(outcome.line);
    }
    println!("\nsummary (goal and upstream threshold are reference numbers, not measured in this run):");
    for line in lines {
        println!("  {line}");
    }
}

struct Outcome {
    line: String,
}

async fn run_case(nodes: usize, pods: usize, timeout: Duration) -> Outcome {
    println!("\n== {nodes} nodes, {pods} pods");
    let options = ClusterOptions {
        extra_args: vec![
            "--node-monitor-grace-period".into(),
            "3600".into(),
            "--cluster-cidr".into(),
            "10.0.0.0/8".into(),
        ],
        ..Default::default()
    };
    let cluster = ProcessCluster::start(&skiff_binary(), options).await.expect("start a 3-server cluster");
    let leader = cluster.wait_leader(Duration::from_secs(60)).await.expect("a leader");
    let servers: Vec<(u64, Client)> = cluster.servers.iter().map(|s| (s.id, Client::new(&s.api_addr))).collect();
    let clients: Vec<Client> = servers.iter().map(|(_, c)| c.clone()).collect();
    let follower = servers.iter().find(|(id, _)| *id != leader).map(|(_, c)| c.clone()).expect("a follower");
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients[0].get::<Value>("/api/v1/namespaces/default").await.is_err() {
        assert!(Instant::now() < deadline, "no default namespace after 60 s; logs in {}", cluster.dir().display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    retry("create the namespace", || clients[0].create::<_, Value>("/api/v1/namespaces", &namespace)).await;

    let started = Instant::now();
    futures::stream::iter(0..nodes)
        .map(|i| add_node(clients[i % clients.len()].clone(), i))
        .buffer_unordered(NODE_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let registered = started.elapsed();
    let with_cidr = wait_for_pod_cidrs(&follower, nodes, Duration::from_secs(180)).await;
    println!(
        "  {nodes} nodes registered in {:.1} s ({:.0}/s); {with_cidr} with a podCIDR after {:.1} s; Raft term {}",
        registered.as_secs_f64(),
        nodes as f64 / registered.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        term(&cluster).await
    );

    let pods_path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let before = follower.list::<Value>(&pods_path).await.expect("list the empty namespace");
    let bound = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Instant>();
    let tracker = tokio::spawn(track_bindings(
        follower.clone(),
        pods_path.clone(),
        before.resource_version,
        pods,
        bound.clone(),
        done_tx,
    ));

    let pids: Vec<(u64, Option<u32>)> = cluster.servers.iter().map(|s| (s.id, server_pid(&s.api_addr))).collect();
    let leader = cluster.leader().await.unwrap_or(leader);
    let cpu_before = cpu_seconds(&pids);
    let term_before = term(&cluster).await;
    let created = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    // When the last create returned, and how many pods were bound by then.
    let created_at: Arc<parking_lot::Mutex<Option<(Instant, usize)>>> = Default::default();
    let creates = {
        let (clients, created, created_at, bound) =
            (clients.clone(), created.clone(), created_at.clone(), bound.clone());
        let pods_path = pods_path.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..pods)
                .map(|i| {
                    let api = clients[i % clients.len()].clone();
                    let (path, created) = (pods_path.clone(), created.clone());
                    async move {
                        let pod = pod_json(i);
                        retry("create a pod", || api.create::<_, Value>(&path, &pod)).await;
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .buffer_unordered(POD_CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
            *created_at.lock() = Some((Instant::now(), bound.load(Ordering::Relaxed)));
        })
    };
    let limit = t0 + timeout;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut last_bound = 0;
    let finished = loop {
        tokio::select! {
            done = &mut done_rx => break done.ok(),
            _ = tick.tick() => {
                let now = bound.load(Ordering::Relaxed);
                let at = t0.elapsed().as_secs_f64();
                // The API's own count, in case the watch fell behind; its answer also ends the
                // case if the watch missed the end.
                let pending = pending(&follower, &pods_path).await;
                let made = created.load(Ordering::Relaxed);
                println!(
                    "  {at:>4.0} s: created {made:>6}, bound {now:>6} ({:.0}/s over the last {} s); the API: {} pending, Raft term {}",
                    (now - last_bound) as f64 / PROGRESS_EVERY.as_secs_f64(),
                    PROGRESS_EVERY.as_secs(),
                    pending.map_or("?".into(), |n| n.to_string()),
                    term(&cluster).await
                );
                last_bound = now;
                if made == pods && pending == Some(0) {
                    println!("  the watch had seen {now} bound when a LIST found none pending; the case ends now");
                    bound.store(pods, Ordering::Relaxed);
                    break Some(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(limit.into()) => break None,
        }
    };
    let cpu_after = cpu_seconds(&pids);
    let term_after = term(&cluster).await;
    let leader_after = cluster.leader().await;
    let end = finished.unwrap_or_else(Instant::now);
    let elapsed = end.duration_since(t0).as_secs_f64();
    let done = bound.load(Ordering::Relaxed);
    tracker.abort();
    creates.abort();
    let created_at = *created_at.lock();
    let accepted = created.load(Ordering::Relaxed);

    let create_rate = match created_at {
        Some((at, _)) => accepted as f64 / at.duration_since(t0).as_secs_f64(),
        None => accepted as f64 / elapsed,
    };
    let rate = done as f64 / elapsed;
    let after_creates = created_at.filter(|(at, _)| end > *at).map(|(at, bound_then)| {
        let secs = end.duration_since(at).as_secs_f64();
        (bound_then, (done - bound_then) as f64 / secs, secs)
    });
    match (created_at, after_creates) {
        (Some((at, _)), Some((bound_then, rate_after, secs))) => println!(
            "  creates done after {:.1} s with {bound_then} bound; then {} more in {secs:.1} s ({}/s)",
            at.duration_since(t0).as_secs_f64(),
            done - bound_then,
            thousands(rate_after)
        ),
        _ => println!("  creates had not finished when the case ended"),
    }
    report_cpu(&pids, leader, &cpu_before, &cpu_after, elapsed);
    println!(
        "  Raft term {term_before} at the first create, {term_after} at the end (leader then: {}); each new term is an election",
        leader_after.map_or("none agreed".into(), |l| format!("server {l}"))
    );
    if finished.is_some() {
        check_placement(&follower, &pods_path, pods).await;
    }

    let ratios = format!(
        "{:.2}x the {}/s goal; {:.2}x upstream's {}/s CI threshold at 5 000 nodes",
        rate / GOAL,
        thousands(GOAL),
        rate / UPSTREAM_THRESHOLD,
        thousands(UPSTREAM_THRESHOLD)
    );
    let line = match finished {
        Some(_) => format!(
            "scheduler: {nodes} nodes, {pods} pods: created {}/s, bound end to end {}/s ({ratios})",
            thousands(create_rate),
            thousands(rate)
        ),
        None => format!(
            "scheduler: {nodes} nodes, {pods} pods: created {}/s, STOPPED at the {} s limit with {done} of {pods} bound, {}/s ({ratios})",
            thousands(create_rate),
            timeout.as_secs(),
            thousands(rate)
        ),
    };
    drop(cluster);
    Outcome { line }
}

/// A simulated node: registered, then given a status, as a kubelet does.
async fn add_node(api: Client, i: usize) {
    let name = node_name(i);
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}});
    retry("create a node", || api.create::<_, Value>("/api/v1/nodes", &node)).await;
    let heartbeat = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resources = json!({"cpu": "32", "memory": "256Gi", "pods": PODS_PER_NODE.to_string()});
    let status = json!({"status": {"capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated",
            "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]}});
    let path = format!("/api/v1/nodes/{name}/status");
    retry("set a node's status", || api.patch_strategic::<Value>(&path, &status)).await;
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

fn pod_json(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:05}"), "namespace": NAMESPACE, "labels": {"app": "sched-bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
}

/// Retries what a busy cluster may refuse for a moment (timeouts, 429, 5xx); a create that
/// timed out but went through answers AlreadyExists on the retry, which counts as done.
async fn retry<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, ClientError>>,
{
    for attempt in 1..=20u64 {
        match f().await {
            Ok(_) => return,
            Err(ClientError::Status { code: 409, reason, .. }) if reason == "AlreadyExists" => return,
            Err(e) if attempt < 20 && is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(_) => true,
        ClientError::Status { code, .. } => *code == 429 || *code >= 500,
        ClientError::Decode(_) => false,
    }
}

/// Waits until the node IPAM controller has written every node's podCIDR (or `limit` passes);
/// returns how many have one.
async fn wait_for_pod_cidrs(api: &Client, nodes: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let with_cidr = match api.list::<Value>("/api/v1/nodes").await {
            Ok(list) => list.items.iter().filter(|n| n.pointer("/spec/podCIDR").is_some()).count(),
            Err(_) => 0,
        };
        if with_cidr >= nodes || Instant::now() > deadline {
            return with_cidr;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Counts pods with `spec.nodeName` set, by a watch (relisting when it ends), and reports the
/// moment all `total` are bound. A watch rather than polling a LIST, so that looking costs the
/// servers little and the moment is exact to the watch's delivery delay.
async fn track_bindings(
    api: Client,
    path: String,
    mut revision: String,
    total: usize,
    count: Arc<AtomicUsize>,
    done: tokio::sync::oneshot::Sender<Instant>,
) {
    let mut bound: HashSet<String> = HashSet::new();
    loop {
        if let Ok(events) = api.watch(&path, &revision).await {
            let mut events = std::pin::pin!(events);
            while let Some(Ok(event)) = events.next().await {
                if event.kind == "ERROR" {
                    break;
                }
                if let Some(rv) = event.object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                    revision = rv.to_string();
                }
                if event.kind == "BOOKMARK" || node_of(&event.object).is_empty() {
                    continue;
                }
                if let Some(name) = event.object.pointer("/metadata/name").and_then(Value::as_str) {
                    bound.insert(name.to_string());
                }
                count.store(bound.len(), Ordering::Relaxed);
                if bound.len() >= total {
                    let _ = done.send(Instant::now());
                    return;
                }
            }
        }
        // The watch ended or was refused: start again from a full list.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(list) = api.list::<Value>(&path).await else { continue };
        bound = list
            .items
            .iter()
            .filter(|p| !node_of(p).is_empty())
            .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
            .collect();
        count.store(bound.len(), Ordering::Relaxed);
        if bound.len() >= total {
            let _ = done.send(Instant::now());
            return;
        }
        revision = list.resource_version;
    }
}

/// How many pods the API says have no node yet (`None` when it does not answer).
async fn pending(api: &Client, path: &str) -> Option<usize> {
    api.list::<Value>(&format!("{path}?fieldSelector=spec.nodeName%3D")).await.ok().map(|l| l.items.len())
}

/// The highest Raft term any running server reports.
async fn term(cluster: &ProcessCluster) -> u64 {
    let mut highest = 0;
    for s in &cluster.servers {
        if let Some(status) = cluster.status(s.id).await {
            highest = highest.max(status.term);
        }
    }
    highest
}

fn node_of(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("")
}

/// After the clock stopped: the API agrees nothing is left pending, and no node holds more pods
/// than it allows.
async fn check_placement(api: &Client, path: &str, pods: usize) {
    let pending = api
        .list::<Value>(&format!("{path}?fieldSelector=spec.nodeName%3D"))
        .await
        .expect("list pending pods")
        .items
        .len();
    assert_eq!(pending, 0, "the watch saw every pod bound, but a LIST still finds {pending} pending");
    let all = api.list::<Value>(path).await.expect("list pods").items;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in &all {
        *per_node.entry(node_of(pod)).or_default() += 1;
    }
    let fullest = per_node.values().copied().max().unwrap_or(0);
    println!(
        "  placement: {} pods on {} nodes, at most {fullest} on one node, none pending",
        all.len(),
        per_node.len()
    );
    assert_eq!(all.len(), pods, "every pod created exists once");
    assert!(fullest <= PODS_PER_NODE, "a node holds {fullest} pods, more than its {PODS_PER_NODE}");
}

/// The process serving `api_addr` (the testkit keeps its children private).
fn server_pid(api_addr: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.windows(2).any(|w| w[0] == b"--api-listen" && w[1] == api_addr.as_bytes()).then_some(pid)
    })
}

/// User plus system CPU seconds of each server and of this process.
fn cpu_seconds(pids: &[(u64, Option<u32>)]) -> Vec<Option<f64>> {
    let of = |stat: &str| -> Option<f64> {
        // Fields after the command name, which may hold spaces: state is the first, utime the
        // 12th, both times in USER_HZ ticks, 100 a second on Linux.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    };
    let read = |path: String| std::fs::read_to_string(path).ok().and_then(|s| of(&s));
    let mut out: Vec<Option<f64>> =
        pids.iter().map(|(_, pid)| pid.and_then(|pid| read(format!("/proc/{pid}/stat")))).collect();
    out.push(read("/proc/self/stat".into()));
    out
}

fn report_cpu(pids: &[(u64, Option<u32>)], leader: u64, before: &[Option<f64>], after: &[Option<f64>], wall: f64) {
    let used = |i: usize| match (before.get(i).copied().flatten(), after.get(i).copied().flatten()) {
        (Some(b), Some(a)) => format!("{:.1} s", a - b),
        _ => "?".into(),
    };
    let servers: Vec<String> = pids
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            format!("server {id}{} {}", if *id == leader { " (leader at the start)" } else { "" }, used(i))
        })
        .collect();
    println!(
        "  CPU in the timed {wall:.1} s (the machine has {:.0} core-seconds): {}, bench client {}",
        wall * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64,
        servers.join(", "),
        used(pids.len())
    );
}

/// `12345.6` as `12 346`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
