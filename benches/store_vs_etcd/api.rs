//! The Kubernetes API on the cluster the store benchmark just measured, in the same run:
//!
//! * pod creates over HTTP (2 KiB JSON, 64 clients) against raw store creates and etcd puts of
//!   the same size and concurrency (goal: at least 1.0x etcd);
//! * create latency at a steady 20 creates/s (goal: p99 at most 50 ms);
//! * LIST of 10 000 pods (goal: at most 1 s);
//! * watch delivery with 1 000 concurrent watchers (goal: p99 at most 100 ms);
//! * the leader's resident memory with 10 000 pods stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use parking_lot::Mutex;
use skiff_store::Store;
use skiff_testkit::ProcessCluster;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::BufReader;
use tokio::net::TcpStream;

use crate::drive_raw;
use crate::summarize;
use crate::Sample;
use crate::CONNS;

const NAMESPACE: &str = "bench";
const POD_BYTES: usize = 2048;

/// A keep-alive HTTP/1.1 connection (the server answers with Content-Length).
struct Conn {
    addr: String,
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self { addr: addr.to_string(), stream: BufReader::new(s) })
    }

    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        // One write, as buffered HTTP clients (Go's net/http, hyper) send a small request: two
        // would cost the server a second wake-up and read per request that no real client causes.
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut len = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        self.stream.read_exact(&mut buf).await?;
        Ok((code, buf))
    }
}

/// A pod whose JSON is about `POD_BYTES` long (the padding is an annotation).
fn pod_json(name: &str) -> Vec<u8> {
    let base = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "load"}, "annotations": {"pad": ""}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1.0", "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    });
    let pad = POD_BYTES.saturating_sub(base.to_string().len());
    let mut pod = base;
    pod["metadata"]["annotations"]["pad"] = "x".repeat(pad).into();
    pod.to_string().into_bytes()
}

/// Latencies and time spent over several rounds of one kind of operation.
#[derive(Default)]
struct Totals {
    lat: Vec<Duration>,
    elapsed: Duration,
}

impl Totals {
    fn add(&mut self, (lat, elapsed): (Vec<Duration>, Duration)) {
        self.lat.extend(lat);
        self.elapsed += elapsed;
    }

    fn sample(self) -> Sample {
        summarize(self.lat, self.elapsed)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Resident memory of the process serving `api_addr`, from /proc.
fn rss_mib(api_addr: &str) -> Option<f64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" server ") && cmdline.contains(api_addr) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let kb: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            return Some(kb / 1024.0);
        }
    }
    None
}

/// CPU seconds (user and system) used so far by the servers of `cluster`, from /proc: with two
/// cores shared by everything, the CPU a create costs moves less between runs than throughput.
fn servers_cpu_secs(cluster: &ProcessCluster) -> f64 {
    let addrs: Vec<&str> = cluster.servers.iter().map(|s| s.api_addr.as_str()).collect();
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(" server ") || !addrs.iter().any(|a| cmdline.contains(a)) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    }
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// Every server's (seconds spent in log syncs, syncs) so far.
async fn log_syncs(cluster: &ProcessCluster) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for server in &cluster.servers {
        let text = skiff_testkit::cluster::http_get(&server.api_addr, "/metrics").await.map(|(_, b)| b);
        let text = text.unwrap_or_default();
        let m = |name: &str| crate::metric(&text, name);
        out.push((m("skiff_log_sync_duration_seconds_sum{}"), m("skiff_log_sync_duration_seconds_count{}")));
    }
    out
}

async fn create_pods(api: &str, prefix: &str, clients: usize, secs: f64) -> Sample {
    let (lat, elapsed) = create_pods_raw(api, prefix, clients, secs).await;
    summarize(lat, elapsed)
}

async fn create_pods_raw(api: &str, prefix: &str, clients: usize, secs: f64) -> (Vec<Duration>, Duration) {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Arc::new(tokio::sync::Mutex::new(Conn::open(api).await.expect("connect to the API"))));
    }
    let conns = Arc::new(conns);
    let prefix = prefix.to_string();
    drive_raw(clients, secs, move |c, seq| {
        let conns = conns.clone();
        let name = format!("{prefix}-{c}-{seq}");
        async move {
            let mut conn = conns[c].lock().await;
            let body = pod_json(&name);
            matches!(conn.request("POST", &format!("/api/v1/namespaces/{NAMESPACE}/pods"), &body).await, Ok((201, _)))
        }
    })
    .await
}

async fn count_pods(api: &str) -> usize {
    let Ok(mut conn) = Conn::open(api).await else { return 0 };
    let Ok((_, body)) = conn.request("GET", &format!("/api/v1/namespaces/{NAMESPACE}/pods"), b"").await else {
        return 0;
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .unwrap_or(0)
}

async fn create_namespace(api: &str) {
    let mut setup = Conn::open(api).await.expect("connect to the API");
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}).to_string();
    let (code, body) = setup.request("POST", "/api/v1/namespaces", ns.as_bytes()).await.expect("create namespace");
    assert!(code == 201 || code == 409, "namespace create: {code} {}", String::from_utf8_lossy(&body));
}

/// Only pod creates over HTTP (64 clients) for `secs`: a steady load to profile the servers under.
pub async fn http_creates_only(cluster: &ProcessCluster, leader: u64, secs: f64) {
    let api = cluster.server(leader).expect("leader").api_addr.clone();
    create_namespace(&api).await;
    println!("\nHTTP pod creates only, leader {leader} at {api}, {secs} s");
    let cpu = servers_cpu_secs(cluster);
    let syncs = log_syncs(cluster).await;
    let s = create_pods(&api, "load", 64, secs).await;
    let cpu = servers_cpu_secs(cluster) - cpu;
    let syncs: Vec<String> = log_syncs(cluster)
        .await
        .iter()
        .zip(&syncs)
        .zip(&cluster.servers)
        .map(|(((sum, n), (sum0, n0)), server)| {
            let role = if server.id == leader { "leader" } else { "follower" };
            format!("{role} {:.2}", (sum - sum0) * 1e3 / (n - n0).max(1.0))
        })
        .collect();
    println!(
        "pod create (HTTP): {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, servers' CPU {:.3} ms per create, log sync mean {} ms",
        s.throughput(),
        ms(s.p50),
        ms(s.p99),
        cpu * 1e3 / s.ops.max(1) as f64,
        syncs.join(", ")
    );
}

pub async fn run(
    cluster: &ProcessCluster,
    leader: u64,
    store_clients: &Arc<Vec<skiff_raft::RemoteStore>>,
    etcd_clients: &Arc<Vec<etcd_client::KvClient>>,
    secs: f64,
    quick: bool,
) {
    let api = cluster.server(leader).expect("leader").api_addr.clone();
    create_namespace(&api).await;

    println!("\nKubernetes API (leader {leader}, {} B pod JSON)", pod_json("x").len());
    // 1. creates over HTTP vs raw store creates vs etcd puts, same size and concurrency. The
    // three alternate in short rounds so that the machine's drift (two cores shared by everything,
    // a virtual disk) falls on all of them alike.
    let clients = 64;
    let rounds = 3;
    let value = Arc::new(pod_json("raw"));
    let (mut http, mut raw, mut etcd) = (Totals::default(), Totals::default(), Totals::default());
    let (mut http_cpu, mut raw_cpu) = (0.0, 0.0);
    for round in 0..rounds {
        let slice = secs / rounds as f64;
        let cpu = servers_cpu_secs(cluster);
        http.add(create_pods_raw(&api, &format!("load{round}"), clients, slice).await);
        http_cpu += servers_cpu_secs(cluster) - cpu;
        let cpu = servers_cpu_secs(cluster);
        let sc = store_clients.clone();
        let v = value.clone();
        raw.add(
            drive_raw(clients, slice, move |c, seq| {
                let sc = sc.clone();
                let v = v.clone();
                async move {
                    sc[c % CONNS].create(&format!("apibench/raw/{round}/{c}/{seq}"), v.to_vec(), "u").await.is_ok()
                }
            })
            .await,
        );
        raw_cpu += servers_cpu_secs(cluster) - cpu;
        let ec = etcd_clients.clone();
        let v = value.clone();
        etcd.add(
            drive_raw(clients, slice, move |c, seq| {
                let mut kv = ec[c % CONNS].clone();
                let v = v.clone();
                async move { kv.put(format!("apibench/{round}/{c}/{seq}"), v.to_vec(), None).await.is_ok() }
            })
            .await,
        );
    }
    let (http, raw, etcd) = (http.sample(), raw.sample(), etcd.sample());
    println!("{:<22} {:>10} {:>9} {:>9}", "64 clients, 2 KiB", "ops/s", "p50 ms", "p99 ms");
    for (name, s) in [("pod create (HTTP)", &http), ("store create (gRPC)", &raw), ("etcd put", &etcd)] {
        println!("{:<22} {:>10.0} {:>9.2} {:>9.2}", name, s.throughput(), ms(s.p50), ms(s.p99));
    }
    assert!(http.ops > 0, "pod creates must succeed");
    let per_op = |cpu: f64, s: &Sample| cpu * 1e3 / s.ops.max(1) as f64;
    println!(
        "servers' CPU per operation: pod create {:.3} ms, store create {:.3} ms",
        per_op(http_cpu, &http),
        per_op(raw_cpu, &raw)
    );

    // 2. steady 20 creates/s
    let steady_secs = if quick { 3.0 } else { 10.0 };
    let mut conn = Conn::open(&api).await.expect("connect");
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut next = start;
    let mut i = 0;
    while start.elapsed().as_secs_f64() < steady_secs {
        tokio::time::sleep_until(next.into()).await;
        let t = Instant::now();
        let (code, _) = conn
            .request("POST", &format!("/api/v1/namespaces/{NAMESPACE}/pods"), &pod_json(&format!("steady-{i}")))
            .await
            .expect("create");
        if code == 201 {
            lat.push(t.elapsed());
        }
        i += 1;
        next += Duration::from_millis(50);
    }
    let steady = summarize(lat, start.elapsed());

    // 3. LIST of 10 000 pods
    let target = 10_000;
    let mut have = count_pods(&api).await;
    let mut round = 0;
    while have < target {
        // Fill up with more creates (64 clients) until the namespace holds the target.
        create_pods(&api, &format!("fill{round}"), 64, ((target - have) as f64 / 1500.0).max(0.5)).await;
        round += 1;
        have = count_pods(&api).await;
    }
    let mut list_times = Vec::new();
    let mut items = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let (code, body) =
            conn.request("GET", &format!("/api/v1/namespaces/{NAMESPACE}/pods"), b"").await.expect("list");
        list_times.push(t.elapsed());
        assert_eq!(code, 200);
        items = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["items"].as_array().map(Vec::len))
            .unwrap_or(0);
    }
    list_times.sort();
    let list_p50 = list_times[list_times.len() / 2];

    // 4. watch delivery to 1 000 watchers spread over every server
    let watchers = if quick { 300 } else { 1000 };
    let watch_lat = watch_delivery(cluster, &api, watchers, if quick { 40 } else { 100 }).await;

    // 5. memory with the pods stored
    let rss = rss_mib(&api);

    println!("\nAPI results:");
    println!(
        "  pod create over HTTP, 64 clients: {:.0}/s = {:.2}x raw store creates, {:.2}x etcd puts (goal >= 1.0x etcd)",
        http.throughput(),
        http.throughput() / raw.throughput().max(1e-9),
        http.throughput() / etcd.throughput().max(1e-9)
    );
    println!(
        "  create at a steady 20/s: p50 {:.1} ms, p99 {:.1} ms over {} creates (goal p99 <= 50 ms)",
        ms(steady.p50),
        ms(steady.p99),
        steady.ops
    );
    println!("  LIST of {items} pods: {:.0} ms (median of 3; goal <= 1000 ms)", ms(list_p50));
    match watch_lat {
        Some(w) => println!(
            "  watch delivery, {watchers} watchers: p50 {:.1} ms, p99 {:.1} ms over {} deliveries (goal p99 <= 100 ms)",
            ms(w.p50),
            ms(w.p99),
            w.ops
        ),
        None => println!("  watch delivery: no events arrived"),
    }
    match rss {
        Some(m) => println!("  leader RSS with {items} pods stored: {m:.0} MiB"),
        None => println!("  leader RSS: not found"),
    }
}

/// Opens `watchers` watches (round-robin over the servers), creates `events` pods at 50/s,
/// and measures the time from each create's start to its ADDED event at each watcher.
async fn watch_delivery(cluster: &ProcessCluster, api: &str, watchers: usize, events: usize) -> Option<Sample> {
    let addrs: Vec<String> = cluster.servers.iter().map(|s| s.api_addr.clone()).collect();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut conn = Conn::open(api).await.ok()?;
    let (_, body) = conn.request("GET", &format!("/api/v1/namespaces/{NAMESPACE}/pods?limit=1"), b"").await.ok()?;
    let rv =
        serde_json::from_slice::<serde_json::Value>(&body).ok()?["metadata"]["resourceVersion"].as_str()?.to_string();
    let mut tasks = Vec::new();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    for i in 0..watchers {
        let addr = addrs[i % addrs.len()].clone();
        let sent = sent.clone();
        let tx = tx.clone();
        let rv = rv.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else { return };
            let req = format!(
                "GET /api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={rv} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            );
            if s.write_all(req.as_bytes()).await.is_err() {
                return;
            }
            ready.add_permits(1);
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Chunk-size lines and headers carry no name; event lines carry the pod's.
                let Some(pos) = line.find("\"name\":\"wave-") else { continue };
                let rest = &line[pos + 8..];
                let Some(end) = rest.find('"') else { continue };
                let name = &rest[..end];
                let at = Instant::now();
                if let Some(t0) = sent.lock().get(name) {
                    let _ = tx.send(at - *t0);
                }
            }
        }));
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(30), ready.acquire_many(watchers as u32)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..events {
        let name = format!("wave-{i}");
        let body = pod_json(&name);
        sent.lock().insert(name, Instant::now());
        let _ = conn.request("POST", &format!("/api/v1/namespaces/{NAMESPACE}/pods"), &body).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while lat.len() < watchers * events {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) => lat.push(d),
            _ => break,
        }
    }
    for t in tasks {
        t.abort();
    }
    if lat.is_empty() {
        return None;
    }
    Some(summarize(lat, Duration::from_secs(1)))
}
