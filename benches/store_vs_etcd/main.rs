//! Side-by-side throughput and latency of skiff's replicated store and etcd.
//!
//! Both run as three members on loopback, with data on the same disk, in the same run. The
//! workload writes new keys (skiff: create; etcd: put) with 256 B and 2 KiB values from 1, 64
//! and 256 concurrent clients, all sent to the leader, and reports throughput, p50 and p99
//! latency and the ratio skiff/etcd. It also measures the disk's fdatasync latency with fio.
//!
//! The same run then measures the Kubernetes API on that cluster (see `api.rs`): pod creates
//! over HTTP against raw store creates and etcd puts of the same size, create latency at a
//! steady rate, LIST of 10 000 pods, watch delivery to 1 000 watchers, and server memory.
//!
//! `cargo test --workspace --bench store_vs_etcd -- [--quick] [--api-only] [--seconds N] [--sizes 256,2048]
//! [--clients 1,64,256] [--http-creates-only]` (see docs/benchmarks.md).

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use skiff_store::Store;
use skiff_testkit::cluster::http_get;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;

mod api;

const CONNS: usize = 16;

pub struct Sample {
    pub ops: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Sample {
    pub fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Sample {
    lat.sort();
    let pick = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
    Sample { ops: lat.len(), elapsed, p50: pick(0.5), p99: pick(0.99) }
}

/// Runs `clients` loops for `secs`, each calling `op(client, seq)`; returns latencies.
pub async fn drive<F, Fut>(clients: usize, secs: f64, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let (lat, elapsed) = drive_raw(clients, secs, op).await;
    summarize(lat, elapsed)
}

/// [`drive`], returning the successful operations' latencies and the time taken.
pub async fn drive_raw<F, Fut>(clients: usize, secs: f64, op: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seq = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(c, seq).await {
                    lat.push(t.elapsed());
                }
                seq += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    (all, start.elapsed())
}

struct Etcd {
    children: Vec<Child>,
    endpoints: Vec<String>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn start_etcd(base: &Path) -> std::io::Result<Etcd> {
    let peer: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial = (0..3).map(|i| format!("e{i}=http://127.0.0.1:{}", peer[i])).collect::<Vec<_>>().join(",");
    let mut children = Vec::new();
    for i in 0..3 {
        let log = std::fs::File::create(base.join(format!("etcd-{i}.log")))?;
        children.push(
            Command::new("etcd")
                .args(["--name", &format!("e{i}")])
                .arg("--data-dir")
                .arg(base.join(format!("etcd-{i}")))
                .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", client[i])])
                .args(["--advertise-client-urls", &format!("http://127.0.0.1:{}", client[i])])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", peer[i])])
                .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", peer[i])])
                .args([
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "skiff-bench",
                ])
                .stdout(log.try_clone()?)
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()?,
        );
    }
    Ok(Etcd { children, endpoints: client.iter().map(|p| format!("http://127.0.0.1:{p}")).collect() })
}

async fn etcd_leader(endpoints: &[String]) -> Option<String> {
    for _ in 0..200 {
        for ep in endpoints {
            if let Ok(mut c) = etcd_client::Client::connect([ep.as_str()], None).await {
                if let Ok(s) = c.status().await {
                    let me = s.header().map(|h| h.member_id()).unwrap_or(0);
                    if s.leader() != 0 && s.leader() == me {
                        return Some(ep.clone());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn fsync_latency(dir: &Path, quick: bool) -> Option<(f64, f64)> {
    let out = Command::new("fio")
        .args(["--rw=write", "--ioengine=sync", "--fdatasync=1", "--bs=2300", "--name=fsync", "--output-format=json"])
        .arg(format!("--size={}", if quick { "4m" } else { "22m" }))
        .arg(format!("--directory={}", dir.display()))
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let pct = &v["jobs"][0]["sync"]["lat_ns"]["percentile"];
    let ms = |k: &str| pct[k].as_f64().map(|ns| ns / 1e6);
    Some((ms("50.000000")?, ms("99.000000")?))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let secs: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1.5 } else { 8.0 });
    let list = |flag: &str, default: &[usize]| -> Vec<usize> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| default.to_vec())
    };
    // `--api-only` skips the store matrix and measures only the Kubernetes API section.
    let api_only = args.iter().any(|a| a == "--api-only");
    let sizes = if api_only { Vec::new() } else { list("--sizes", &[256, 2048]) };
    let client_counts = list("--clients", &[1, 64, 256]);
    let base: PathBuf = std::env::var("SKIFF_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let work = tempfile::Builder::new().prefix("skiff-bench-").tempdir_in(&base).expect("bench dir");

    match fsync_latency(work.path(), quick) {
        Some((p50, p99)) => println!("disk fdatasync (fio, bs=2300): p50 {p50:.2} ms, p99 {p99:.2} ms"),
        None => println!("disk fdatasync: fio not available"),
    }

    // SKIFF_BIN runs the servers from another build (A/B runs); by default, this build's.
    let bin = std::env::var_os("SKIFF_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff")), PathBuf::from);
    let skiff = ProcessCluster::start(&bin, ClusterOptions::default()).await.expect("skiff cluster");
    let leader = skiff.wait_leader(Duration::from_secs(30)).await.expect("skiff leader");
    let leader_srv = skiff.server(leader).expect("leader");
    let leader_raft = leader_srv.raft_addr.clone();
    let leader_api = leader_srv.api_addr.clone();
    let skiff_clients: Arc<Vec<skiff_raft::RemoteStore>> = Arc::new(
        (0..CONNS)
            .map(|_| skiff_raft::RemoteStore::new(vec![leader_raft.clone()], Duration::from_secs(10)).expect("client"))
            .collect(),
    );

    let etcd = start_etcd(work.path()).expect("start etcd (Debian package etcd-server)");
    let etcd_ep = etcd_leader(&etcd.endpoints).await.expect("etcd leader");
    let mut etcd_clients = Vec::new();
    for _ in 0..CONNS {
        etcd_clients
            .push(etcd_client::Client::connect([etcd_ep.as_str()], None).await.expect("etcd client").kv_client());
    }
    let etcd_clients = Arc::new(etcd_clients);

    println!("\n{:<6} {:>7} {:>6} {:>10} {:>9} {:>9}", "system", "clients", "value", "ops/s", "p50 ms", "p99 ms");
    let mut summary = Vec::new();
    for &size in &sizes {
        for &clients in &client_counts {
            let value = Arc::new(vec![b'v'; size]);
            let before = http_get(&leader_api, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
            let v = value.clone();
            let sc = skiff_clients.clone();
            let s = drive(clients, secs, move |c, seq| {
                let sc = sc.clone();
                let v = v.clone();
                async move {
                    sc[c % CONNS].create(&format!("bench/{size}/{clients}/{c}/{seq}"), v.to_vec(), "u").await.is_ok()
                }
            })
            .await;
            let after = http_get(&leader_api, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
            let fsyncs = metric(&after, "skiff_log_fsyncs_total") - metric(&before, "skiff_log_fsyncs_total");
            let entries = metric(&after, "skiff_log_entries_total") - metric(&before, "skiff_log_entries_total");
            let v = value.clone();
            let ec = etcd_clients.clone();
            let e = drive(clients, secs, move |c, seq| {
                let mut kv = ec[c % CONNS].clone();
                let v = v.clone();
                async move { kv.put(format!("bench/{size}/{clients}/{c}/{seq}"), v.to_vec(), None).await.is_ok() }
            })
            .await;
            for (name, x) in [("skiff", &s), ("etcd", &e)] {
                println!(
                    "{:<6} {:>7} {:>6} {:>10.0} {:>9.2} {:>9.2}",
                    name,
                    clients,
                    size,
                    x.throughput(),
                    x.p50.as_secs_f64() * 1e3,
                    x.p99.as_secs_f64() * 1e3
                );
            }
            let per_fsync = if fsyncs > 0.0 { entries / fsyncs } else { 0.0 };
            summary.push(format!(
                "clients {clients:>3}, value {size:>4} B: throughput skiff/etcd {:.2}x, p50 skiff/etcd {:.2}x, p99 skiff/etcd {:.2}x, skiff leader entries per fsync {per_fsync:.1}",
                s.throughput() / e.throughput().max(1e-9),
                s.p50.as_secs_f64() / e.p50.as_secs_f64().max(1e-9),
                s.p99.as_secs_f64() / e.p99.as_secs_f64().max(1e-9),
            ));
            assert!(s.ops > 0 && e.ops > 0, "both systems must complete operations");
        }
    }
    println!("\nratios (same run, same disk, {secs} s per cell):");
    for line in summary {
        println!("  {line}");
    }
    if args.iter().any(|a| a == "--http-creates-only") {
        // For profiling: nothing but pod creates over HTTP, for the whole `--seconds`.
        api::http_creates_only(&skiff, leader, secs).await;
    } else {
        api::run(&skiff, leader, &skiff_clients, &etcd_clients, secs, quick).await;
    }
    drop(etcd);
    drop(skiff);
}
