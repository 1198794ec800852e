//! `skiff agent`: the kubelet of a worker machine (crates/skiff-agent).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// API servers, `host:port` (or `http(s)://host:port`), comma-separated; the agent moves to
    /// the next one when a server stops answering.
    #[arg(long, value_delimiter = ',', required = true)]
    pub server: Vec<String>,
    /// This node's name (defaults to the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Where the agent keeps its containerd, network configuration, volumes and logs.
    #[arg(long, default_value = "/var/lib/skiff-agent")]
    pub data_dir: PathBuf,
    /// The node's address: the Node's InternalIP and its pods' hostIP (default: the address of
    /// the interface the default route leaves through, else 127.0.0.1).
    #[arg(long)]
    pub node_ip: Option<String>,
    /// Where the agent serves logs, exec, attach and port-forward to the API servers (default:
    /// the node's address, port 10250). With the TLS flags below only the API servers may call.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A CRI socket to use; without it the agent starts and supervises its own containerd.
    #[arg(long)]
    pub cri_socket: Option<PathBuf>,
    /// The containerd binary the agent starts.
    #[arg(long, default_value = "containerd")]
    pub containerd: PathBuf,
    /// The image of every pod's sandbox (its "pause" container).
    #[arg(long, default_value = "registry.k8s.io/pause:3.9")]
    pub sandbox_image: String,
    /// Where the CNI plugins are.
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    /// The bridge the node's pods attach to.
    #[arg(long, default_value = "skiff0")]
    pub bridge: String,
    /// This node's pod range, when the control plane does not assign one.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Labels for the Node, `key=value`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// Registry mirrors for containerd, `HOST=ENDPOINT` (e.g. `docker.io=http://127.0.0.1:5000`).
    #[arg(long, value_delimiter = ',')]
    pub registry_mirror: Vec<String>,
    /// Registries whose certificates are not verified.
    #[arg(long, value_delimiter = ',')]
    pub insecure_registry: Vec<String>,
    /// The cluster DNS server(s) for ClusterFirst pods (empty: pods get the node's resolver).
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<String>,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The CA that signs the API servers' certificates (TLS to the API).
    #[arg(long, requires_all = ["cert_file", "key_file"])]
    pub ca_file: Option<PathBuf>,
    /// The agent's client certificate (its identity, `system:node:NAME`) and key.
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The agent endpoint's serving certificate (its SANs must include --node-ip); with it the
    /// endpoint speaks only TLS and requires callers' client certificates.
    #[arg(long, requires_all = ["tls_private_key_file", "client_ca_file"])]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// The CA callers' certificates must chain to (and carry the system:masters group).
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// Stop every pod this agent runs, stop its containerd and remove what it created (bridge,
    /// mounts, the data directory), then exit.
    #[arg(long)]
    pub reset: bool,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let reset = args.reset;
    let config = config(args).await?;
    if reset {
        return Ok(skiff_agent::reset(&config).await?);
    }
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping; pods keep running");
    };
    skiff_agent::run(config, shutdown).await?;
    Ok(())
}

async fn config(args: AgentArgs) -> anyhow::Result<skiff_agent::AgentConfig> {
    let node_ip = match args.node_ip.clone() {
        Some(ip) => ip,
        None => skiff_agent::node::primary_ipv4().await.unwrap_or_else(|| "127.0.0.1".into()),
    };
    let node_name = match args.node_name {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .context("reading the host name (or pass --node-name)")?,
    };
    let tls = match (&args.ca_file, &args.cert_file, &args.key_file) {
        (Some(ca), Some(cert), Some(key)) => {
            Some(skiff_client::ClientTls::from_files(ca, cert, key).context("reading the agent's certificate")?)
        }
        _ => None,
    };
    let servers = args
        .server
        .iter()
        .map(|s| s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string())
        .collect();
    let pairs = |list: &[String], what: &str| -> anyhow::Result<Vec<(String, String)>> {
        list.iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .with_context(|| format!("{what} {kv:?} is not KEY=VALUE"))
            })
            .collect()
    };
    let mut mirrors: Vec<(String, Vec<String>)> = Vec::new();
    for (host, endpoint) in pairs(&args.registry_mirror, "--registry-mirror")? {
        match mirrors.iter_mut().find(|(h, _)| *h == host) {
            Some((_, endpoints)) => endpoints.push(endpoint),
            None => mirrors.push((host, vec![endpoint])),
        }
    }
    let listen = match args.listen {
        Some(listen) => listen,
        None => format!("{}:10250", bracketed(&node_ip))
            .parse()
            .with_context(|| format!("--node-ip {node_ip:?} is not an IP address"))?,
    };
    Ok(skiff_agent::AgentConfig {
        node_name,
        servers,
        tls,
        data_dir: args.data_dir,
        cri_socket: args.cri_socket,
        containerd_bin: args.containerd,
        sandbox_image: args.sandbox_image,
        cni_bin_dir: args.cni_bin_dir,
        bridge: args.bridge,
        node_ip,
        pod_cidr: args.pod_cidr,
        listen,
        serving_tls: match (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file) {
            (Some(cert), Some(key), Some(client_ca)) => Some(skiff_agent::server::ServingTls { cert, key, client_ca }),
            _ => None,
        },
        labels: pairs(&args.node_labels, "--node-labels")?,
        mirrors,
        insecure_registries: args.insecure_registry,
        cluster_dns: args.cluster_dns,
        cluster_domain: args.cluster_domain,
    })
}

fn bracketed(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}
