//! Wiring: register the Node, start (or reach) the runtime, write the network configuration,
//! keep the heartbeat going, and keep one worker per pod bound to this node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientTls;
use skiff_client::Reflector;
use tokio::sync::watch;

use crate::cni;
use crate::containerd;
use crate::cri::Cri;
use crate::node;
use crate::node::Readiness;
use crate::pod;

/// How the agent is set up (the `skiff agent` flags).
#[derive(Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// API servers (`host:port`); the agent moves to the next when one stops answering.
    pub servers: Vec<String>,
    pub tls: Option<ClientTls>,
    pub data_dir: PathBuf,
    /// A runtime socket to use instead of starting containerd.
    pub cri_socket: Option<PathBuf>,
    pub containerd_bin: PathBuf,
    pub sandbox_image: String,
    pub cni_bin_dir: PathBuf,
    pub bridge: String,
    /// The node's address (InternalIP, hostIP of its pods).
    pub node_ip: String,
    /// The podCIDR to use if the control plane assigns none.
    pub pod_cidr: Option<String>,
    /// Where the agent serves logs and streams (the Node's daemon endpoint).
    pub listen: std::net::SocketAddr,
    /// TLS for that endpoint (callers need a `system:masters` certificate of the CA).
    pub serving_tls: Option<crate::server::ServingTls>,
    pub labels: Vec<(String, String)>,
    pub mirrors: Vec<(String, Vec<String>)>,
    pub insecure_registries: Vec<String>,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
}

impl AgentConfig {
    fn containerd_paths(&self) -> containerd::ContainerdPaths {
        containerd::ContainerdPaths::new(&self.data_dir.join("containerd"))
    }
    fn cni_conf_dir(&self) -> PathBuf {
        self.data_dir.join("cni").join("net.d")
    }
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("API: {0}")]
    Api(#[from] skiff_client::ClientError),
    #[error("container runtime: {0}")]
    Runtime(#[from] crate::cri::CriError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Config(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Io { what, source }
}

/// Runs the agent until `shutdown` resolves. Pods keep running when it returns.
pub async fn run(config: AgentConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    let api = Client::with_servers(&config.servers, config.tls.as_ref())?;
    std::fs::create_dir_all(&config.data_dir).map_err(io(format!("creating {}", config.data_dir.display())))?;
    let host = node::read_host();
    let readiness = Arc::new(std::sync::Mutex::new(Readiness::not_ready("container runtime is starting")));
    let identity = Arc::new(std::sync::Mutex::new(node::NodeIdentity {
        name: config.node_name.clone(),
        internal_ip: config.node_ip.clone(),
        port: config.listen.port(),
        runtime_version: String::new(),
        labels: config.labels.clone(),
    }));

    let node_uid = register(&api, &identity_now(&identity), &host).await;
    let heartbeat = tokio::spawn(heartbeat(api.clone(), identity.clone(), host.clone(), readiness.clone(), node_uid));

    let pod_cidr = wait_for_pod_cidr(&api, &config).await;
    let cni_settings = cni::CniSettings {
        bridge: config.bridge.clone(),
        pod_cidr: pod_cidr.clone(),
        ipam_dir: config.data_dir.join("cni/ipam"),
    };
    cni::write_conflist(&config.cni_conf_dir(), &cni_settings).map_err(io("writing the CNI configuration"))?;
    tracing::info!(node = %config.node_name, %pod_cidr, "pod network configured");

    let managed = match &config.cri_socket {
        Some(_) => None,
        None => Some(start_containerd(&config).await.map_err(io("starting containerd"))?),
    };
    let socket = config.cri_socket.clone().unwrap_or_else(|| config.containerd_paths().socket());
    let mut cri = Cri::connect(&socket, Duration::from_secs(60)).await?;
    let version = cri.version().await?;
    identity.lock().unwrap_or_else(|p| p.into_inner()).runtime_version = version.clone();
    tracing::info!(runtime = %version, socket = %socket.display(), "container runtime reachable");

    // Node-local cluster DNS on the bridge's address, unless the cluster names its own.
    let records = Arc::new(std::sync::RwLock::new(crate::dns::Records::default()));
    let host_dns =
        pod::spec::DnsSettings::from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut cluster_dns = config.cluster_dns.clone();
    let mut dns_task = None;
    if cluster_dns.is_empty() {
        match start_dns(&config, &pod_cidr, &host_dns, records.clone()).await {
            Ok((ip, task)) => {
                tracing::info!(%ip, "cluster DNS for this node's pods");
                cluster_dns = vec![ip.to_string()];
                dns_task = Some(task);
            }
            Err(e) => tracing::warn!(error = %e, "no node-local DNS; ClusterFirst pods get the node's resolver"),
        }
    }
    let shared = Arc::new(pod::worker::Shared {
        api: api.clone(),
        cri: cri.clone(),
        node_name: config.node_name.clone(),
        host_ip: config.node_ip.clone(),
        pods_dir: config.data_dir.join("pods"),
        logs_dir: config.data_dir.join("logs"),
        dns: pod::spec::DnsSettings { cluster_dns, cluster_domain: config.cluster_domain.clone(), ..host_dns },
        relister: Arc::new(pod::relist::Relister::default()),
        node_allocatable: BTreeMap::from([
            ("cpu".to_string(), host.cpus.to_string()),
            ("memory".to_string(), host.memory_bytes.to_string()),
        ]),
    });
    let serving = match &config.serving_tls {
        Some(files) => Some(crate::server::tls_config(files).map_err(AgentError::Config)?),
        None => None,
    };
    let logs = crate::server::serve(config.listen, shared.logs_dir.clone(), cri.clone(), serving)
        .await
        .map_err(io(format!("listening on {}", config.listen)))?;

    let relister = tokio::spawn(shared.relister.clone().run(cri.clone()));
    let result = tokio::select! {
        r = supervise(shared, cri, readiness, records) => r,
        _ = shutdown => Ok(()),
    };
    logs.abort();
    relister.abort();
    if let Some(task) = dns_task {
        task.abort();
    }
    heartbeat.abort();
    if let Some(managed) = managed {
        managed.shutdown().await;
    }
    result
}

/// The bridge (with the pods' gateway address) and a DNS server on it.
async fn start_dns(
    config: &AgentConfig,
    pod_cidr: &str,
    host_dns: &pod::spec::DnsSettings,
    records: Arc<std::sync::RwLock<crate::dns::Records>>,
) -> Result<(std::net::Ipv4Addr, tokio::task::JoinHandle<()>), String> {
    let gw = cni::ensure_bridge(&config.bridge, pod_cidr).await?;
    let upstream: Vec<std::net::SocketAddr> = host_dns
        .host_servers
        .iter()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect();
    let task = crate::dns::serve(std::net::SocketAddr::new(gw.into(), 53), records, upstream)
        .await
        .map_err(|e| format!("DNS on {gw}:53: {e}"))?;
    Ok((gw, task))
}

fn identity_now(identity: &std::sync::Mutex<node::NodeIdentity>) -> node::NodeIdentity {
    identity.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

async fn start_containerd(config: &AgentConfig) -> std::io::Result<containerd::ManagedContainerd> {
    let settings = containerd::ContainerdSettings {
        sandbox_image: config.sandbox_image.clone(),
        cni_bin_dir: config.cni_bin_dir.clone(),
        cni_conf_dir: config.cni_conf_dir(),
        mirrors: config.mirrors.clone(),
        insecure_registries: config.insecure_registries.clone(),
    };
    containerd::ManagedContainerd::start(&config.containerd_bin, config.containerd_paths(), &settings).await
}

/// Creates the Node (or finds it registered before) and returns its uid. Retries until a
/// server answers.
async fn register(api: &Client, identity: &node::NodeIdentity, host: &node::HostFacts) -> String {
    let path = format!("/api/v1/nodes/{}", identity.name);
    loop {
        let created: Result<Value, _> = api.create("/api/v1/nodes", &node::node_object(identity, host)).await;
        let node = match created {
            Ok(node) => Ok(node),
            Err(e) if e.is_conflict() => api.get::<Value>(&path).await,
            Err(e) => Err(e),
        };
        match node {
            Ok(node) => {
                tracing::info!(node = %identity.name, "node registered");
                return node["metadata"]["uid"].as_str().unwrap_or("").to_string();
            }
            Err(e) => {
                tracing::warn!(error = %e, "registering the node; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The node's podCIDR from the control plane (or the configured one), waiting until assigned.
async fn wait_for_pod_cidr(api: &Client, config: &AgentConfig) -> String {
    if let Some(cidr) = &config.pod_cidr {
        return cidr.clone();
    }
    let path = format!("/api/v1/nodes/{}", config.node_name);
    let mut waited = 0u32;
    loop {
        if let Ok(node) = api.get::<Value>(&path).await {
            if let Some(cidr) = node["spec"]["podCIDR"].as_str().filter(|c| !c.is_empty()) {
                return cidr.to_string();
            }
        }
        waited += 1;
        if waited.is_multiple_of(30) {
            tracing::warn!(node = %config.node_name, "no podCIDR assigned yet (is the cluster's --cluster-cidr set?)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Lease every 10 s; status when readiness changes and at least every minute.
async fn heartbeat(
    api: Client,
    identity: Arc<std::sync::Mutex<node::NodeIdentity>>,
    host: node::HostFacts,
    readiness: Arc<std::sync::Mutex<Readiness>>,
    node_uid: String,
) {
    let name = identity_now(&identity).name;
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
    let status_path = format!("/api/v1/nodes/{name}/status");
    let mut posted: Option<(Readiness, String)> = None;
    let mut since = now_rfc3339();
    let mut last_status = tokio::time::Instant::now();
    let mut last_lease: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if last_lease.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(node::LEASE_RENEW_SECONDS)) {
            let renew = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string();
            let renewed = match api.patch_merge::<Value>(&lease_path, &json!({"spec": {"renewTime": renew}})).await {
                Err(e) if e.is_not_found() => api
                    .create::<_, Value>(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                        &node::lease_object(&name, &node_uid, &renew),
                    )
                    .await
                    .map(|_| ()),
                other => other.map(|_| ()),
            };
            match renewed {
                Ok(()) => last_lease = Some(now),
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
        }
        let ready = readiness.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let id = identity_now(&identity);
        let changed = posted.as_ref().is_none_or(|(r, v)| *r != ready || *v != id.runtime_version);
        if changed || now.duration_since(last_status) >= Duration::from_secs(node::STATUS_REFRESH_SECONDS) {
            if posted.as_ref().is_some_and(|(r, _)| r.ready != ready.ready) {
                since = now_rfc3339();
            }
            let status = node::node_status(&id, &host, &ready, &since, &now_rfc3339());
            match api.patch_strategic::<Value>(&status_path, &json!({"status": status})).await {
                Ok(_) => {
                    posted = Some((ready, id.runtime_version));
                    last_status = now;
                }
                Err(e) => tracing::warn!(error = %e, "node status update failed"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One worker per pod bound here; pods that leave (deleted, or bound elsewhere) are torn down,
/// and sandboxes of pods the API no longer has are removed once the pod list is known.
async fn supervise(
    shared: Arc<pod::worker::Shared>,
    mut cri: Cri,
    readiness: Arc<std::sync::Mutex<Readiness>>,
    records: Arc<std::sync::RwLock<crate::dns::Records>>,
) -> Result<(), AgentError> {
    let selector = format!("spec.nodeName%3D{}", shared.node_name);
    let pods: Reflector<Value> =
        Reflector::start(shared.api.clone(), &format!("/api/v1/pods?fieldSelector={selector}"));
    struct Running {
        pod: watch::Sender<Option<Arc<Value>>>,
        task: tokio::task::JoinHandle<()>,
        revision: String,
    }
    let mut workers: BTreeMap<String, Running> = BTreeMap::new();
    let mut last_gc = tokio::time::Instant::now();
    let nodes: Reflector<Value> = Reflector::start(shared.api.clone(), "/api/v1/nodes");
    let mut routed_at = 0u64;
    let mut last_routes = tokio::time::Instant::now();
    let services: Reflector<Value> = Reflector::start(shared.api.clone(), "/api/v1/services");
    let endpoints: Reflector<Value> = Reflector::start(shared.api.clone(), "/api/v1/endpoints");
    let mut proxied: Option<String> = None;
    let mut proxied_at = (0u64, 0u64);
    let mut last_proxy = tokio::time::Instant::now();
    loop {
        // Services and Endpoints are rebuilt into DNS records and proxy rules only when either
        // collection moved (pod changes wake this loop far more often), and the rules are
        // rewritten every minute in case something flushed them.
        let service_revisions = (services.revision(), endpoints.revision());
        let due = proxied.is_none() || last_proxy.elapsed() >= Duration::from_secs(60);
        if services.synced() && endpoints.synced() && (service_revisions != proxied_at || due) {
            proxied_at = service_revisions;
            last_proxy = tokio::time::Instant::now();
            let (service_list, endpoint_list) = (services.snapshot(), endpoints.snapshot());
            let fresh = crate::dns::Records::build(&shared.dns.cluster_domain, &service_list, &endpoint_list);
            if let Ok(mut current) = records.write() {
                *current = fresh;
            }
            let text = crate::proxy::rules(&service_list, &endpoint_list);
            if proxied.as_deref() != Some(text.as_str()) || due {
                match crate::proxy::sync(&text).await {
                    Ok(()) => proxied = Some(text),
                    Err(e) => {
                        proxied = None;
                        tracing::warn!(error = %e, "service rules not applied; retrying");
                    }
                }
            }
        }
        if nodes.synced() && (nodes.revision() != routed_at || last_routes.elapsed() >= Duration::from_secs(30)) {
            routed_at = nodes.revision();
            last_routes = tokio::time::Instant::now();
            let want = crate::routes::desired(&nodes.snapshot(), &shared.node_name, &shared.host_ip);
            crate::routes::sync(&want).await;
        }
        // Runtime and network health decide the node's readiness.
        let state = match cri.status().await {
            Ok(conditions) => {
                let failing: Vec<String> = conditions
                    .iter()
                    .filter(|(_, ok, _)| !ok)
                    .map(|(kind, _, message)| format!("{kind}=false: {message}"))
                    .collect();
                if failing.is_empty() {
                    Readiness::ready()
                } else {
                    Readiness::not_ready(format!("container runtime not ready: {}", failing.join("; ")))
                }
            }
            Err(e) => Readiness::not_ready(format!("container runtime is down: {e}")),
        };
        *readiness.lock().unwrap_or_else(|p| p.into_inner()) = state;

        if pods.synced() {
            let mut seen = std::collections::BTreeSet::new();
            for p in pods.shared() {
                let uid = pod::meta(&p, "uid").to_string();
                let revision = pod::meta(&p, "resourceVersion").to_string();
                seen.insert(uid.clone());
                let finished = workers.get(&uid).is_some_and(|w| w.task.is_finished());
                match workers.get_mut(&uid) {
                    Some(w) if !finished => {
                        if w.revision != revision {
                            w.revision = revision;
                            let _ = w.pod.send(Some(p.clone()));
                        }
                    }
                    _ => {
                        let (tx, rx) = watch::channel(Some(p.clone()));
                        let task = tokio::spawn(pod::worker::run(shared.clone(), uid.clone(), rx));
                        workers.insert(uid, Running { pod: tx, task, revision });
                    }
                }
            }
            let gone: Vec<String> = workers.keys().filter(|uid| !seen.contains(*uid)).cloned().collect();
            for uid in gone {
                if let Some(w) = workers.remove(&uid) {
                    // The worker tears the pod down and ends.
                    let _ = w.pod.send(None);
                    tokio::spawn(async move {
                        let _ = w.task.await;
                    });
                }
            }
            if last_gc.elapsed() >= Duration::from_secs(10) {
                last_gc = tokio::time::Instant::now();
                collect_orphans(&shared, &mut cri, &seen).await;
            }
        }
        tokio::select! {
            _ = pods.changed() => {}
            _ = nodes.changed() => {}
            _ = services.changed() => {}
            _ = endpoints.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Removes sandboxes whose pod the API does not have (deleted while the agent was down).
async fn collect_orphans(shared: &pod::worker::Shared, cri: &mut Cri, known: &std::collections::BTreeSet<String>) {
    let Ok(sandboxes) = cri.list_sandboxes(None).await else { return };
    for s in sandboxes {
        let Some(uid) = s.labels.get(crate::cri::LABEL_POD_UID) else { continue };
        if !known.contains(uid) {
            tracing::info!(%uid, "removing the sandbox of a pod the API no longer has");
            pod::worker::teardown(shared, uid).await;
        }
    }
}

/// Stops everything this agent's runtime runs and removes what the agent created: pods and
/// their network, containerd, the bridge, mounts under the data directory, the directory.
pub async fn reset(config: &AgentConfig) -> Result<(), AgentError> {
    let socket = config.cri_socket.clone().unwrap_or_else(|| config.containerd_paths().socket());
    let managed = if config.cri_socket.is_none() && config.containerd_paths().config().exists() {
        Some(start_containerd(config).await.map_err(io("starting containerd"))?)
    } else {
        None
    };
    match Cri::connect(&socket, Duration::from_secs(20)).await {
        Ok(mut cri) => {
            // A sandbox a killed agent asked for may still be in the making when the first pass
            // lists; later passes catch it.
            for pass in 0..3 {
                let containers = cri.list_containers(None).await.unwrap_or_default();
                let sandboxes = cri.list_sandboxes(None).await.unwrap_or_default();
                if pass > 0 && containers.is_empty() && sandboxes.is_empty() {
                    break;
                }
                for c in containers {
                    let _ = cri.stop_container(&c.id, Duration::from_secs(1)).await;
                    let _ = cri.remove_container(&c.id).await;
                }
                for s in sandboxes {
                    let _ = cri.stop_pod_sandbox(&s.id).await;
                    let _ = cri.remove_pod_sandbox(&s.id).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "runtime unreachable; removing what can be removed"),
    }
    if let Some(managed) = managed {
        managed.shutdown().await;
    }
    unmount_under(&config.data_dir).await;
    let _ = tokio::process::Command::new("ip").args(["link", "delete", &config.bridge]).status().await;
    let _ =
        tokio::process::Command::new("ip").args(["route", "flush", "proto", crate::routes::ROUTE_PROTO]).status().await;
    crate::proxy::remove().await;
    match std::fs::remove_dir_all(&config.data_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::Io { what: format!("removing {}", config.data_dir.display()), source: e }),
    }
}

/// Unmounts every mount below `dir`, deepest first (overlay roots, shm, netns bind mounts).
async fn unmount_under(dir: &std::path::Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else { return };
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| std::path::Path::new(p).starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = tokio::process::Command::new("umount").args(["-l", &p]).status().await;
    }
}
