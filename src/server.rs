//! `skiff server`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use anyhow::Context;
use clap::Args;
use skiff_apiserver::authz::bootstrap::CONTROLLERS_USER;
use skiff_apiserver::authz::bootstrap::SCHEDULER_USER;
use skiff_raft::NodeConfig;
use skiff_raft::RaftNode;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// This server's id (a positive integer, unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// Where this server keeps its Raft log and state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Every server of the cluster, this one included: `1=HOST:PORT,2=HOST:PORT,...` (Raft addresses).
    #[arg(long)]
    pub peers: String,
    /// The API address (health, metrics; the Kubernetes API).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_listen: SocketAddr,
    /// The Raft/admin gRPC address; defaults to this server's address in --peers.
    #[arg(long)]
    pub raft_listen: Option<SocketAddr>,
    /// Raft heartbeat interval.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Raft election timeout range, `MIN-MAX` milliseconds.
    #[arg(long, default_value = "150-300")]
    pub election_timeout_ms: String,
    /// Snapshot the state and compact the log after this many entries.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_logs: u64,
    /// Log entries kept behind the latest snapshot.
    #[arg(long, default_value_t = 5_000)]
    pub logs_after_snapshot: u64,
    /// Changes kept in memory for watches to resume from.
    #[arg(long, default_value_t = 100_000)]
    pub watch_window: usize,
    /// The range Service cluster IPs are allocated from (the first address is the `kubernetes` Service's).
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// The range of Service node ports, `MIN-MAX`.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The range each node's podCIDR is carved from (empty: no node IPAM).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Seconds a node may go without a heartbeat (Lease renewal or status) before it is marked
    /// Unknown and tainted unreachable. Upstream's default is 40.
    #[arg(long, default_value_t = 40)]
    pub node_monitor_grace_period: u64,
    /// Seconds a pod that does not say otherwise stays on a not-ready or unreachable node
    /// before it is evicted (upstream's default tolerationSeconds, 300).
    #[arg(long, default_value_t = 300)]
    pub default_toleration_seconds: u64,
    /// Terminated pods kept before the oldest are deleted.
    #[arg(long, default_value_t = 12_500)]
    pub terminated_pod_gc_threshold: usize,
    /// The API port's serving certificate (PEM, with its chain); with `--tls-private-key-file`
    /// the port speaks only TLS. Reloaded when the file changes.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// The CA that signs client certificates (x509 authentication: CN the user, O the groups).
    /// With it, every request but health and version must authenticate.
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens, upstream's format: `token,user,uid[,"group1,group2"]` per line.
    #[arg(long, requires = "client_ca_file")]
    pub token_auth_file: Option<PathBuf>,
    /// The client certificate and key this server presents to node agents when it proxies logs,
    /// exec, attach and port-forward (agents require group `system:masters`).
    /// The key service-account tokens are signed with (the PKI's `sa.key`); enables the
    /// TokenRequest API (`kubectl create token`).
    #[arg(long, requires = "service_account_key_file")]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// The public key service-account tokens are verified with (the PKI's `sa.pub`).
    #[arg(long, requires = "service_account_signing_key_file")]
    pub service_account_key_file: Option<PathBuf>,
    /// The `iss` of the tokens this server issues and accepts.
    #[arg(long, default_value = skiff_apiserver::serviceaccount::DEFAULT_ISSUER)]
    pub service_account_issuer: String,
    /// Audiences a token must name to authenticate here (comma-separated; default: the issuer).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    #[arg(long, requires = "component_key_file")]
    pub component_cert_file: Option<PathBuf>,
    #[arg(long, requires = "component_cert_file")]
    pub component_key_file: Option<PathBuf>,
    /// This server's peer certificate (PEM; `skiff pki peer`, O=skiff:peers, a SAN for its
    /// address in --peers). With --peer-key-file and --peer-trusted-ca-file the Raft port speaks
    /// only mutual TLS: it admits clients whose certificate chains to that CA and is in the group
    /// skiff:peers or system:masters, and this server presents the certificate to its peers.
    /// Certificate and key are reloaded when their files change.
    #[arg(long, requires_all = ["peer_key_file", "peer_trusted_ca_file"])]
    pub peer_cert_file: Option<PathBuf>,
    /// The peer certificate's private key (PEM).
    #[arg(long, requires_all = ["peer_cert_file", "peer_trusted_ca_file"])]
    pub peer_key_file: Option<PathBuf>,
    /// The CA peer certificates (and admin clients' certificates) must chain to.
    #[arg(long, requires_all = ["peer_cert_file", "peer_key_file"])]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Encrypt Secrets at rest with the keys in this file (`encryption.keys` of the PKI
    /// directory: `NAME:BASE64` lines, the first encrypts, all decrypt; followed for changes).
    /// The same file on every server. See docs/encryption.md.
    #[arg(long)]
    pub encryption_key_file: Option<PathBuf>,
}

impl ServerArgs {
    fn controller_settings(&self) -> skiff_controllers::manager::Settings {
        skiff_controllers::manager::Settings {
            config: skiff_controllers::Config {
                node_monitor_grace: Duration::from_secs(self.node_monitor_grace_period),
                default_toleration: Duration::from_secs(self.default_toleration_seconds),
                cluster_cidr: Some(self.cluster_cidr.clone()).filter(|c| !c.is_empty()),
                node_cidr_mask: self.node_cidr_mask_size,
                terminated_pod_threshold: self.terminated_pod_gc_threshold,
                // The CA that signs the serving certificates is the one clients in pods trust.
                root_ca: self.client_ca_file.as_ref().and_then(|ca| std::fs::read_to_string(ca).ok()),
            },
            ..Default::default()
        }
    }
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').with_context(|| format!("peer `{part}` is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("peer id `{id}` is not a number"))?;
        if id == 0 {
            bail!("peer ids start at 1");
        }
        let addr = addr.trim();
        if addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            bail!("peer {id} address `{addr}` is not HOST:PORT");
        }
        if peers.insert(id, addr.to_string()).is_some() {
            bail!("peer {id} is listed twice");
        }
    }
    if peers.is_empty() {
        bail!("--peers is empty");
    }
    Ok(peers)
}

fn parse_range(s: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = s.split_once('-').context("--election-timeout-ms is MIN-MAX")?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || b <= a {
        bail!("--election-timeout-ms needs 0 < MIN < MAX");
    }
    Ok((a, b))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let peers = parse_peers(&args.peers)?;
    let own = peers.get(&args.id).with_context(|| format!("--peers does not list --id {}", args.id))?;
    let raft_listen = match args.raft_listen {
        Some(a) => a,
        None => tokio::net::lookup_host(own)
            .await
            .with_context(|| format!("resolving {own}"))?
            .next()
            .with_context(|| format!("{own} resolves to nothing"))?,
    };
    let (emin, emax) = parse_range(&args.election_timeout_ms)?;
    let ports = args
        .service_node_port_range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
        .context("--service-node-port-range is MIN-MAX")?;
    let service_network = skiff_apiserver::service_ips::ServiceNetwork::parse_cidr(&args.service_cidr, ports)
        .map_err(|e| anyhow::anyhow!("--service-cidr/--service-node-port-range: {e}"))?;
    let mut config = NodeConfig::new(args.id, args.data_dir.clone(), peers, raft_listen);
    config.heartbeat_ms = args.heartbeat_ms;
    config.election_timeout_min_ms = emin;
    config.election_timeout_max_ms = emax;
    config.snapshot_logs = args.snapshot_logs;
    config.logs_after_snapshot = args.logs_after_snapshot;
    config.watch_window = args.watch_window;
    // Every create reads the namespace it goes into.
    config.resident_prefixes = vec![skiff_apiserver::NAMESPACES_KEY_PREFIX.to_string()];
    if let (Some(cert), Some(key), Some(ca)) = (&args.peer_cert_file, &args.peer_key_file, &args.peer_trusted_ca_file) {
        let files = skiff_raft::tls::TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
        config.tls = Some(skiff_raft::tls::PeerTls::load(&files).context("loading the Raft port's TLS files")?);
    }

    let node = RaftNode::start(config).await.context("starting the server")?;
    tracing::info!(id = args.id, %raft_listen, api = %args.api_listen, "skiff server started");
    let api = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.api_listen))?;
    let store: Arc<dyn skiff_store::Store> = node.clone();
    let store = match &args.encryption_key_file {
        Some(path) => crate::encryption::wrap(store, path).context("--encryption-key-file")?,
        None => store,
    };
    let agent_tls = agent_tls(&args)?;
    let service_accounts = match (&args.service_account_signing_key_file, &args.service_account_key_file) {
        (Some(signing), Some(public)) => Some(Arc::new(skiff_apiserver::serviceaccount::TokenIssuer::from_files(
            signing,
            public,
            &args.service_account_issuer,
            args.api_audiences.clone(),
        )?)),
        _ => None,
    };
    let api_state = skiff_apiserver::ApiState::new(
        store.clone(),
        skiff_apiserver::ApiConfig { service_network, agent_tls, service_accounts: service_accounts.clone() },
    );
    let background = skiff_apiserver::spawn_background(api_state.clone());
    // The scheduler acts only while this server leads, through its own API port like any client.
    let local_api = match args.api_listen.ip().is_unspecified() {
        true => SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), args.api_listen.port()),
        false => args.api_listen,
    };
    let tls = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: args.client_ca_file.clone() })
        }
        _ => None,
    };
    let mut tokens = match &args.token_auth_file {
        Some(path) => skiff_apiserver::authn::parse_token_file(path)?,
        None => Default::default(),
    };
    // The scheduler and the controllers reach this server's API as their own users, with tokens
    // that live only in this process's memory, and are authorized by RBAC like any client.
    let scheduler_client = component_client(tls.as_ref(), &local_api.to_string(), &mut tokens, SCHEDULER_USER)?;
    let controllers_client = component_client(tls.as_ref(), &local_api.to_string(), &mut tokens, CONTROLLERS_USER)?;
    let mut auth = skiff_apiserver::authn::Authenticator::new(args.client_ca_file.is_some(), tokens);
    if let Some(issuer) = service_accounts {
        auth = auth.with_service_accounts(issuer, store);
    }
    let auth = Arc::new(auth);
    let tls_config = tls.as_ref().map(crate::tls::server_config).transpose()?;
    let controllers =
        tokio::spawn(skiff_controllers::manager::run(controllers_client, node.clone(), args.controller_settings()));
    let scheduler = tokio::spawn(
        skiff_scheduler::runner::Runner {
            client: scheduler_client,
            leadership: node.clone(),
            retry: std::time::Duration::from_millis(500),
        }
        .run(),
    );
    let http = tokio::spawn(crate::http::serve(node.clone(), api_state, api, tls_config, auth));

    let stopped = node.stopped();
    let result = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
        reason = stopped => {
            tracing::error!(%reason, "raft stopped with a fatal error; exiting so the committed state is never served stale");
            Err(anyhow::anyhow!("raft stopped: {reason}"))
        }
    };
    http.abort();
    background.abort();
    scheduler.abort();
    controllers.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await;
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::signal;
    use tokio::signal::unix::SignalKind;
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The client a leader-only component (`user`) reaches this server's API with. Over TLS it trusts
/// the cluster CA and authenticates with a random bearer token registered in `tokens` for `user`;
/// the token never leaves this process.
fn component_client(
    tls: Option<&crate::tls::TlsFiles>,
    local_api: &str,
    tokens: &mut std::collections::HashMap<String, skiff_apiserver::authn::UserInfo>,
    user: &str,
) -> anyhow::Result<skiff_client::Client> {
    let Some(tls) = tls else {
        return Ok(skiff_client::Client::new(local_api));
    };
    let ca = tls.client_ca.as_ref().context("--tls-cert-file needs --client-ca-file for the components' identity")?;
    let ca_pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let token: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::thread_rng().gen();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    tokens.insert(token.clone(), skiff_apiserver::authn::UserInfo::new(user, "", &[]));
    // The serving certificate names this server's addresses, so the host we connect to is one.
    Ok(skiff_client::Client::with_tls(local_api, &skiff_client::ClientTls::ca_only(ca_pem))?.with_bearer(&token))
}

/// With TLS on, the API server reaches node agents over TLS too, presenting the components'
/// certificate (group `system:masters`, which agents require) and trusting the cluster CA. The
/// certificate follows its files, so it is rotated without a restart.
fn agent_tls(args: &ServerArgs) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    let (Some(ca), Some(cert), Some(key)) = (&args.client_ca_file, &args.component_cert_file, &args.component_key_file)
    else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    for der in skiff_pki::reload::read_certs(ca)? {
        roots.add(der).with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
    }
    let resolver = Arc::new(skiff_pki::reload::ReloadingCert::load(cert, key)?);
    crate::tls::watch(resolver.clone());
    let config = rustls::ClientConfig::builder_with_provider(skiff_client::crypto_provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver);
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject_bad_input() {
        let p = parse_peers("1=127.0.0.1:1,2=localhost:2").expect("valid");
        assert_eq!(p.len(), 2);
        assert!(parse_peers("").is_err());
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("0=a:1").is_err());
        assert!(parse_peers("1=nohost").is_err());
        assert!(parse_range("300-600").is_ok());
        assert!(parse_range("600-300").is_err());
    }
}
