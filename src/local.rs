//! `skiff local up|down`: a cluster of real server processes on this machine, for trying skiff
//! out and for development (like `kind create cluster`).
//!
//! Everything speaks TLS, with certificates from a cluster PKI in `DIR/pki` (created by `up`, or
//! reused when it is already there): each server's serving certificate and Raft peer certificate
//! (group `skiff:peers`), the identity the API servers present to agents (`system:skiff-apiserver`,
//! group `system:masters`), each agent's serving certificate and its client identity
//! (`system:node:NAME`, group `system:nodes`), and the admin identity (`skiff-admin`, group
//! `system:masters`) as `DIR/kubeconfig` and as `DIR/pki/admin.crt` for `skiff member`. Secrets
//! are encrypted at rest with the PKI's `encryption.keys`.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use serde::Deserialize;
use serde::Serialize;
use skiff_client::ClientTls;
use skiff_pki::Issued;
use skiff_pki::Pki;

/// How long the certificates `up` issues are valid.
const CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The admin identity of the kubeconfig `up` writes.
const ADMIN_USER: &str = "skiff-admin";
const MASTERS: &str = "system:masters";
/// The identity the API servers present to agents (logs, exec, attach, port-forward).
const APISERVER_USER: &str = "system:skiff-apiserver";
const CLUSTER_NAME: &str = "skiff-local";

#[derive(Args, Debug)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub command: LocalCommand,
}

#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Start a local cluster in DIR and return once it is ready.
    Up {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        servers: u64,
        /// Worker agents, each with its own containerd (needs root, containerd, runc, the CNI
        /// plugins, docker-registry, skopeo and busybox-static: `scripts/deps.sh`).
        #[arg(long, default_value_t = 1)]
        agents: u64,
    },
    /// Stop the cluster in DIR and remove what it created.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Serialize, Deserialize)]
struct ClusterFile {
    servers: Vec<ServerEntry>,
    #[serde(default)]
    agents: Vec<AgentEntry>,
    /// The local registry's process (images for the agents), if any.
    #[serde(default)]
    registry_pid: Option<u32>,
    /// The PKI the cluster's certificates come from.
    #[serde(default)]
    pki: Option<PkiEntry>,
}

#[derive(Serialize, Deserialize)]
struct PkiEntry {
    dir: PathBuf,
    /// `up` created the CA (rather than finding one), so `down` removes the whole directory.
    created: bool,
    /// The stems of the certificates `up` issued into it (`STEM.crt`, `STEM.key`).
    issued: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct AgentEntry {
    name: String,
    pid: u32,
    /// The arguments it was started with; `--reset` added to them tears it down.
    args: Vec<String>,
    data_dir: PathBuf,
    log: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct ServerEntry {
    id: u64,
    pid: u32,
    api: String,
    raft: String,
    data_dir: PathBuf,
    log: PathBuf,
}

pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    match args.command {
        LocalCommand::Up { dir, servers, agents } => up(&dir, servers, agents).await,
        LocalCommand::Down { dir } => down(&dir),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn up(dir: &Path, servers: u64, agents: u64) -> anyhow::Result<()> {
    if servers == 0 {
        bail!("--servers must be at least 1");
    }
    let state = dir.join("cluster.json");
    if state.exists() {
        bail!("{} already holds a cluster; run `skiff local down --dir {}` first", dir.display(), dir.display());
    }
    fs::create_dir_all(dir)?;
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    let mut pki = LocalPki::init(&dir.join("pki"))?;
    let apiserver = pki.client("apiserver-client", APISERVER_USER, &[MASTERS])?;
    // The admin identity: in the kubeconfig, and as files for `skiff member`.
    let admin = pki
        .pki
        .issue_client(ADMIN_USER, &[MASTERS.to_string()], CERT_VALIDITY)
        .context("issuing the admin certificate")?;
    let admin_files = pki.write(&admin, "admin")?;
    let admin_tls = ClientTls {
        ca_pem: pki.pki.ca_pem().as_bytes().to_vec(),
        cert_pem: admin.cert_pem.as_bytes().to_vec(),
        key_pem: admin.key_pem.as_bytes().to_vec(),
    };
    let mut entries = Vec::new();
    for id in 1..=servers {
        let ip = "127.0.0.1";
        let api = format!("{ip}:{}", free_port()?);
        let raft = format!("{ip}:{}", free_port()?);
        let name = format!("skiff-server-{id}");
        let sans = [ip, "127.0.0.1", "localhost", &name];
        let serving = pki.server(&format!("server-{id}"), &name, &sans)?;
        let peer = pki.peer(&format!("peer-{id}"), &name, &sans)?;
        entries.push((
            ServerEntry {
                id,
                pid: 0,
                api,
                raft,
                data_dir: dir.join(format!("server-{id}")),
                log: dir.join(format!("server-{id}.log")),
            },
            ServerTls {
                serving,
                client_ca: pki.ca(),
                apiserver: apiserver.clone(),
                peer,
                encryption_keys: pki.pki.dir().join(skiff_pki::ENCRYPTION_KEYS),
                pki_dir: pki.pki.dir().to_path_buf(),
            },
        ));
    }
    let peers = entries.iter().map(|(e, _)| format!("{}={}", e.id, e.raft)).collect::<Vec<_>>().join(",");
    // Recorded before anything starts, so `down` cleans up after an `up` that fails part way.
    let mut file = ClusterFile { servers: Vec::new(), agents: Vec::new(), registry_pid: None, pki: Some(pki.entry()) };
    fs::write(&state, serde_json::to_vec_pretty(&file)?)?;
    let mut spawned = Ok(());
    for (mut e, tls) in entries {
        match spawn(&exe, &server_args(&e, &peers, &tls), &e.log).with_context(|| format!("starting server {}", e.id)) {
            Ok(pid) => e.pid = pid,
            Err(err) => {
                spawned = Err(err);
                break;
            }
        }
        file.servers.push(e);
    }
    fs::write(&state, serde_json::to_vec_pretty(&file)?)?;
    spawned?;
    let api = format!("https://{}", file.servers[0].api);
    write_private(
        &dir.join("kubeconfig"),
        &skiff_pki::kubeconfig(CLUSTER_NAME, &api, pki.pki.ca_pem(), ADMIN_USER, &admin),
    )?;

    let tls_config = Arc::new(admin_tls.rustls_config()?);
    let deadline = Instant::now() + Duration::from_secs(60);
    for e in &file.servers {
        loop {
            if https_status(&e.api, "/readyz", &tls_config).await == Some(200) {
                break;
            }
            if Instant::now() > deadline {
                bail!("server {} did not become ready within 60 s; see {}", e.id, e.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if agents > 0 {
        let started = start_agents(dir, &exe, &mut file, &mut pki, agents);
        file.pki = Some(pki.entry());
        fs::write(&state, serde_json::to_vec_pretty(&file)?)?;
        started?;
        let servers: Vec<String> = file.servers.iter().map(|e| e.api.clone()).collect();
        let api = skiff_client::Client::with_servers(&servers, Some(&admin_tls))?;
        for a in &file.agents {
            wait_node_ready(&api, &a.name, &a.log).await?;
        }
    }
    let agents_text = match file.agents.len() {
        1 => "1 agent".to_string(),
        n => format!("{n} agents"),
    };
    println!("skiff local cluster is up: {} servers and {agents_text}", file.servers.len());
    for e in &file.servers {
        println!("  server {}: api https://{}  raft {}  log {}", e.id, e.api, e.raft, e.log.display());
    }
    for a in &file.agents {
        println!("  agent {}: data {}  log {}", a.name, a.data_dir.display(), a.log.display());
    }
    println!("  kubeconfig: {} (admin: {ADMIN_USER}, group {MASTERS})", dir.join("kubeconfig").display());
    println!("  pki:        {} (cluster CA ca.crt, the certificates issued for this cluster)", pki.pki.dir().display());
    println!(
        "  members:    skiff member list --server {} --ca-file {} --cert-file {} --key-file {}",
        file.servers.iter().map(|e| e.raft.as_str()).collect::<Vec<_>>().join(","),
        pki.ca().display(),
        admin_files.cert.display(),
        admin_files.key.display()
    );
    Ok(())
}

/// Starts `exe ARGS` in its own process group, output to `log`; returns its pid.
fn spawn(exe: &Path, args: &[impl AsRef<std::ffi::OsStr>], log: &Path) -> anyhow::Result<u32> {
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = std::process::Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// A certificate and key written into the PKI directory.
#[derive(Clone)]
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

/// The cluster PKI of a local cluster, and the certificates `up` issued from it.
struct LocalPki {
    pki: Pki,
    created: bool,
    issued: Vec<String>,
}

impl LocalPki {
    /// Creates the CA in `dir`, or loads the one already there.
    fn init(dir: &Path) -> anyhow::Result<Self> {
        let created = !dir.join(skiff_pki::CA_CERT).exists();
        let pki = Pki::init(dir).with_context(|| format!("initialising the cluster PKI in {}", dir.display()))?;
        Ok(Self { pki, created, issued: Vec::new() })
    }

    fn ca(&self) -> PathBuf {
        self.pki.dir().join(skiff_pki::CA_CERT)
    }

    /// A serving certificate (also valid as a client one) written as `STEM.crt`/`STEM.key`.
    fn server(&mut self, stem: &str, name: &str, sans: &[&str]) -> anyhow::Result<CertFiles> {
        let issued = self
            .pki
            .issue_server(name, &dedup(sans), CERT_VALIDITY)
            .with_context(|| format!("issuing a serving certificate for {name}"))?;
        self.write(&issued, stem)
    }

    /// A peer certificate for the Raft port (group `skiff:peers`) written as `STEM.crt`/`STEM.key`.
    fn peer(&mut self, stem: &str, name: &str, sans: &[&str]) -> anyhow::Result<CertFiles> {
        let issued = self
            .pki
            .issue_peer(name, &dedup(sans), CERT_VALIDITY)
            .with_context(|| format!("issuing a peer certificate for {name}"))?;
        self.write(&issued, stem)
    }

    /// A client certificate for `user` in `groups` written as `STEM.crt`/`STEM.key`.
    fn client(&mut self, stem: &str, user: &str, groups: &[&str]) -> anyhow::Result<CertFiles> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let issued = self
            .pki
            .issue_client(user, &groups, CERT_VALIDITY)
            .with_context(|| format!("issuing a client certificate for {user}"))?;
        self.write(&issued, stem)
    }

    fn write(&mut self, issued: &Issued, stem: &str) -> anyhow::Result<CertFiles> {
        let dir = self.pki.dir();
        issued.write(dir, stem).with_context(|| format!("writing {stem}.crt and {stem}.key into {}", dir.display()))?;
        if !self.issued.iter().any(|s| s == stem) {
            self.issued.push(stem.to_string());
        }
        Ok(CertFiles { cert: dir.join(format!("{stem}.crt")), key: dir.join(format!("{stem}.key")) })
    }

    fn entry(&self) -> PkiEntry {
        PkiEntry { dir: self.pki.dir().to_path_buf(), created: self.created, issued: self.issued.clone() }
    }
}

/// `sans` without repeats, in order.
fn dedup(sans: &[&str]) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for san in sans {
        if !unique.iter().any(|u| u == san) {
            unique.push(san.to_string());
        }
    }
    unique
}

/// The certificates and keys a server starts with.
struct ServerTls {
    /// The API port's serving certificate.
    serving: CertFiles,
    /// The cluster CA: client certificates (users, agents) must chain to it.
    client_ca: PathBuf,
    /// What the API server presents to agents (`system:skiff-apiserver`, `system:masters`).
    apiserver: CertFiles,
    /// The Raft port's certificate (group `skiff:peers`); peers must chain to the cluster CA.
    peer: CertFiles,
    /// The keys Secrets are encrypted with at rest (the PKI's `encryption.keys`).
    encryption_keys: PathBuf,
    /// The PKI directory (its `sa.key` and `sa.pub` sign and verify service-account tokens).
    pki_dir: PathBuf,
}

/// The command line of server `e`: every flag a local server gets is set here.
fn server_args(e: &ServerEntry, peers: &str, tls: &ServerTls) -> Vec<OsString> {
    let mut args = CommandLine::default();
    args.flag("server");
    args.pair("--id", e.id.to_string());
    args.pair("--peers", peers);
    args.pair("--api-listen", &e.api);
    args.pair("--data-dir", &e.data_dir);
    args.pair("--tls-cert-file", &tls.serving.cert);
    args.pair("--tls-private-key-file", &tls.serving.key);
    args.pair("--client-ca-file", &tls.client_ca);
    args.pair("--component-cert-file", &tls.apiserver.cert);
    args.pair("--component-key-file", &tls.apiserver.key);
    // Mutual TLS between the servers (and for `skiff member`) on the Raft port.
    args.pair("--peer-cert-file", &tls.peer.cert);
    args.pair("--peer-key-file", &tls.peer.key);
    args.pair("--peer-trusted-ca-file", &tls.client_ca);
    args.pair("--encryption-key-file", &tls.encryption_keys);
    args.pair("--service-account-signing-key-file", tls.pki_dir.join(skiff_pki::SA_KEY));
    args.pair("--service-account-key-file", tls.pki_dir.join(skiff_pki::SA_PUB));
    args.0
}

/// A command line being built.
#[derive(Default)]
struct CommandLine(Vec<OsString>);

impl CommandLine {
    fn flag(&mut self, name: &str) {
        self.0.push(name.into());
    }

    fn pair(&mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) {
        self.0.push(name.into());
        self.0.push(value.as_ref().to_owned());
    }
}

/// The images a local cluster's agents run, served by a registry on 127.0.0.1. `docker.io`
/// resolves to it, so the seeds' manifest (`image: nginx`) works without the internet: its
/// `library/nginx:latest` is a small busybox web server built here, an offline stand-in.
fn start_agents(dir: &Path, exe: &Path, file: &mut ClusterFile, pki: &mut LocalPki, agents: u64) -> anyhow::Result<()> {
    let registry = skiff_oci::Registry::start(&dir.join("registry")).context("starting the local registry")?;
    let scratch = dir.join("images");
    let pause = skiff_oci::pause_image()?;
    let pause = registry.push_spec(&pause, "skiff/pause:1", &scratch).context("pushing the sandbox image")?;
    let web = skiff_oci::web_image("<h1>Welcome to skiff</h1>\n<p>Served by a busybox stand-in for nginx.</p>\n")?;
    registry.push_spec(&web, "library/nginx:latest", &scratch).context("pushing the nginx stand-in")?;
    let busybox = skiff_oci::ImageSpec::busybox()?;
    registry.push_spec(&busybox, "library/busybox:latest", &scratch).context("pushing busybox")?;
    let mirror = format!("docker.io=http://{}", registry.addr());
    file.registry_pid = Some(registry.detach());
    let servers = file.servers.iter().map(|e| e.api.clone()).collect::<Vec<_>>().join(",");
    for n in 1..=agents {
        let name = format!("skiff-local-{n}");
        let data_dir = dir.join(format!("agent-{n}"));
        let log = dir.join(format!("agent-{n}.log"));
        let node_ip = "127.0.0.1";
        let serving = pki.server(&format!("agent-{n}-serving"), &name, &[node_ip, "127.0.0.1", "localhost", &name])?;
        let client = pki.client(&format!("agent-{n}-client"), &format!("system:node:{name}"), &["system:nodes"])?;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let ca = path(&pki.ca());
        let args = vec![
            "agent".to_string(),
            "--server".into(),
            servers.clone(),
            "--node-name".into(),
            name.clone(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into_owned(),
            "--node-ip".into(),
            node_ip.into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()?),
            "--sandbox-image".into(),
            pause.reference.clone(),
            "--registry-mirror".into(),
            mirror.clone(),
            "--bridge".into(),
            format!("skiff{}", n - 1),
            // To the API: trust the cluster CA, authenticate as system:node:NAME.
            "--ca-file".into(),
            ca.clone(),
            "--cert-file".into(),
            path(&client.cert),
            "--key-file".into(),
            path(&client.key),
            // Its own endpoint (logs, exec, port-forward): TLS, API servers' certificates only.
            "--tls-cert-file".into(),
            path(&serving.cert),
            "--tls-private-key-file".into(),
            path(&serving.key),
            "--client-ca-file".into(),
            ca.clone(),
        ];
        let pid = spawn(exe, &args, &log).with_context(|| format!("starting agent {name}"))?;
        file.agents.push(AgentEntry { name, pid, args, data_dir, log });
    }
    Ok(())
}

async fn wait_node_ready(api: &skiff_client::Client, name: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(node) = api.get::<serde_json::Value>(&format!("/api/v1/nodes/{name}")).await {
            let ready = node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node {name} did not become Ready within 120 s; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `text` to `path` readable by the owner only (mode 0600 from the start), replacing
/// the file atomically.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A minimal HTTP/1.1 GET over TLS on loopback; `None` when the server does not answer.
async fn https_status(addr: &str, path: &str, tls: &Arc<rustls::ClientConfig>) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let fut = async {
        let mut s = skiff_client::tunnel::connect(addr, Some(tls)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .ok()?;
        // The status line is all we need; servers may close without a TLS close_notify.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), fut).await.ok().flatten()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false)
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill").args([sig, &pid.to_string()]).stderr(Stdio::null()).status();
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let state = dir.join("cluster.json");
    let text = match fs::read(&state) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no cluster in {}", dir.display());
            return Ok(());
        }
        Err(e) => return Err(e).context("reading cluster.json"),
    };
    let file: ClusterFile = serde_json::from_slice(&text).context("cluster.json is corrupt")?;
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    for a in &file.agents {
        if fs::read(format!("/proc/{}/cmdline", a.pid))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*a.data_dir.to_string_lossy()))
        {
            signal(a.pid, "-TERM");
        }
        // Stops its pods and its containerd, removes the bridge, routes, mounts and data.
        let status = std::process::Command::new(&exe).args(&a.args).arg("--reset").stdin(Stdio::null()).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("agent {}: reset did not finish cleanly; see {}", a.name, a.log.display());
        }
        let _ = fs::remove_file(&a.log);
    }
    if let Some(pid) = file.registry_pid {
        if fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("registry")) {
            signal(pid, "-TERM");
        }
        let _ = fs::remove_dir_all(dir.join("registry"));
        let _ = fs::remove_dir_all(dir.join("images"));
    }
    for e in &file.servers {
        if is_our_server(e) {
            signal(e.pid, "-TERM");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for e in &file.servers {
        while is_our_server(e) && pid_alive(e.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_our_server(e) && pid_alive(e.pid) {
            signal(e.pid, "-KILL");
        }
    }
    for e in &file.servers {
        let _ = fs::remove_dir_all(&e.data_dir);
        let _ = fs::remove_file(&e.log);
    }
    let _ = fs::remove_file(dir.join("kubeconfig"));
    // Last: the agents' resets above read their certificates.
    if let Some(pki) = &file.pki {
        if pki.created {
            let _ = fs::remove_dir_all(&pki.dir);
        } else {
            for stem in &pki.issued {
                let _ = fs::remove_file(pki.dir.join(format!("{stem}.crt")));
                let _ = fs::remove_file(pki.dir.join(format!("{stem}.key")));
            }
        }
    }
    fs::remove_file(&state)?;
    println!("skiff local cluster in {} is down", dir.display());
    Ok(())
}

/// Only signal a pid that still runs a skiff server of this cluster (pids get reused).
fn is_our_server(e: &ServerEntry) -> bool {
    fs::read(format!("/proc/{}/cmdline", e.pid))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("server") && c.contains(&*e.data_dir.to_string_lossy())
        })
        .unwrap_or(false)
}
