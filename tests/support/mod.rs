//! What the real-process tests share: the installed kubectl against a test cluster, waiting for
//! a condition, and simulated nodes (Node objects and Lease heartbeats written by the test; no
//! containers).
#![allow(dead_code)] // each test crate uses a different part

pub mod agent;

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use serde_json::json;
use serde_json::Value;
use skiff_client::Client;

pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
}

/// What a kubectl run printed.
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(dir: &Path, api_addr: &str) -> Self {
        let kubeconfig = dir.join(format!("kubeconfig-{}", api_addr.replace([':', '.'], "-")));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{api_addr}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        );
        std::fs::write(&kubeconfig, text).expect("write kubeconfig");
        Self { kubeconfig, cache: dir.join("kube-cache") }
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(&self.cache).args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("kubectl output");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok, "kubectl {args:?} failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
        out.stdout
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_stdin(args, Some(stdin));
        assert!(out.ok, "kubectl {args:?} failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
        out.stdout
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.ok, "kubectl {args:?} unexpectedly succeeded: {}", out.stdout);
        out.stderr
    }

    pub fn fails_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with_stdin(args, Some(stdin));
        assert!(!out.ok, "kubectl {args:?} unexpectedly succeeded: {}", out.stdout);
        out.stderr
    }
}

/// A three-server TLS cluster with its PKI (`skiff_testkit::tls::start`).
pub async fn tls_cluster(dir: &Path) -> (skiff_testkit::ProcessCluster, skiff_pki::Pki) {
    skiff_testkit::tls::start(dir, Vec::new()).await.expect("a TLS cluster")
}

/// [`tls_cluster`] and kubectl with an admin kubeconfig (user `admin` in `system:masters`).
pub async fn tls_cluster_with_admin(dir: &Path) -> (skiff_testkit::ProcessCluster, Kubectl) {
    let (cluster, pki) = tls_cluster(dir).await;
    let admin = pki.issue_client("admin", &["system:masters".to_string()], Duration::from_secs(86_400)).expect("cert");
    let url = format!("https://{}", cluster.servers[0].api_addr);
    let kubeconfig = dir.join("admin.kubeconfig");
    std::fs::write(&kubeconfig, skiff_pki::kubeconfig("skiff", &url, pki.ca_pem(), "admin", &admin))
        .expect("kubeconfig");
    (cluster, Kubectl { kubeconfig, cache: dir.join("cache-admin") })
}

pub fn assert_has(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
}

pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn add_node(api: &Client, name: &str, cpu: &str) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
    let _: Value = api.create("/api/v1/nodes", &node).await.expect("create node");
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated",
            "lastHeartbeatTime": now()}]}});
    let _: Value = api.patch_strategic(&format!("/api/v1/nodes/{name}/status"), &status).await.expect("node status");
    renew_lease(api, name).await.expect("node lease");
}

/// The API's time format, whole seconds.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Creates or renews the node's Lease in `kube-node-lease`, as an agent's heartbeat does.
pub async fn renew_lease(api: &Client, node: &str) -> Result<(), skiff_client::ClientError> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}");
    let renew = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string();
    match api.patch_merge::<Value>(&path, &json!({"spec": {"renewTime": renew}})).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": renew}});
            api.create::<_, Value>("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", &lease).await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A simulated node's heartbeat: its Lease renewed every `every` through whichever of `servers`
/// answers, until dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub fn start(servers: Vec<Client>, node: &str, every: Duration) -> Self {
        let node = node.to_string();
        Self(tokio::spawn(async move {
            let mut next = 0;
            loop {
                for _ in 0..servers.len() {
                    next = (next + 1) % servers.len();
                    if renew_lease(&servers[next], &node).await.is_ok() {
                        break;
                    }
                }
                tokio::time::sleep(every).await;
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Simulated nodes: each has a Node object, a Lease heartbeat, and a stand-in kubelet that
/// reports the pods bound to it Running and Ready with an IP, and finishes their graceful
/// deletion, as an agent would. `stop` silences a node (heartbeat and kubelet), as a crash
/// would. No containers run.
pub struct SimNodes {
    servers: Vec<Client>,
    live: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Heartbeat>>>,
    kubelet: tokio::task::JoinHandle<()>,
}

impl SimNodes {
    pub fn start(servers: Vec<Client>) -> Self {
        let live: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Heartbeat>>> =
            Default::default();
        let kubelet = tokio::spawn(run_kubelet(servers.clone(), live.clone()));
        Self { servers, live, kubelet }
    }

    /// Registers a Ready node with `cpu` cores and starts its heartbeat and kubelet.
    pub async fn add(&self, name: &str, cpu: &str) {
        let api = self.any().await;
        add_node(&api, name, cpu).await;
        let beat = Heartbeat::start(self.servers.clone(), name, Duration::from_secs(1));
        self.live.lock().insert(name.to_string(), beat);
    }

    /// The node stops renewing its Lease and its kubelet stops acting.
    pub fn stop(&self, name: &str) {
        self.live.lock().remove(name);
    }

    /// A client of a server that answers.
    pub async fn any(&self) -> Client {
        any_server(&self.servers).await
    }
}

impl Drop for SimNodes {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

/// A client of the first server in `servers` that answers `/readyz`.
pub async fn any_server(servers: &[Client]) -> Client {
    eventually("a server that answers", Duration::from_secs(30), || async {
        for api in servers {
            if api.get::<Value>("/api/v1/namespaces/default").await.is_ok() {
                return Some(api.clone());
            }
        }
        None
    })
    .await
}

async fn run_kubelet(
    servers: Vec<Client>,
    live: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Heartbeat>>>,
) {
    let mut next_ip: u32 = 0;
    let mut ips: std::collections::BTreeMap<String, String> = Default::default();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let api = any_server(&servers).await;
        let Ok(pods) = api.list::<Value>("/api/v1/pods").await else { continue };
        for pod in pods.items {
            let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if node.is_empty() || !live.lock().contains_key(node) {
                continue;
            }
            let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
            let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                let options = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
                let _ = api.delete::<Value>(&path, &options).await;
                continue;
            }
            let ready = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            if ready || pod.pointer("/status/phase").and_then(Value::as_str) == Some("Failed") {
                continue;
            }
            let ip = ips
                .entry(uid)
                .or_insert_with(|| {
                    next_ip += 1;
                    format!("10.250.{}.{}", next_ip / 250, next_ip % 250 + 1)
                })
                .clone();
            let t = now();
            let condition = |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": t});
            let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "hostIP": "127.0.0.1", "startTime": t,
                "conditions": [condition("PodScheduled"), condition("Initialized"), condition("ContainersReady"),
                    condition("Ready")]}});
            let _ = api.patch_merge::<Value>(&format!("{path}/status"), &status).await;
        }
    }
}
