//! A cluster of real `skiff server` processes on loopback.
//!
//! Server `i` listens on `127.0.0.{10+i}` (its Raft port and API port), so its traffic to peers
//! carries its own source address and [`crate::netfault`] can cut single links. Everything the
//! cluster starts is killed when it is dropped, also when a test fails.

use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use skiff_raft::node::NodeStatus;
pub use skiff_raft::tls::TlsFiles;
use skiff_raft::RemoteStore;

/// Knobs passed to every server.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub servers: u64,
    /// Extra `skiff server` arguments, e.g. `["--snapshot-logs", "100"]`.
    pub extra_args: Vec<String>,
    /// Data dirs placed somewhere other than the cluster's temporary directory.
    pub data_dirs: std::collections::BTreeMap<u64, PathBuf>,
    /// The API ports speak only TLS (`extra_args` carry the certificate flags), so readiness
    /// is judged from the Raft status instead of a plain-HTTP `/readyz`.
    pub api_tls: bool,
    /// Arguments for one server only, after `extra_args` (e.g. its own `--peer-cert-file`).
    pub server_args: std::collections::BTreeMap<u64, Vec<String>>,
    /// The Raft ports speak mutual TLS (the servers' `--peer-*` flags are in `extra_args` or
    /// `server_args`): the cluster's clients ([`ProcessCluster::client`], `status`, `leader`, ...)
    /// trust this CA and present this certificate, which must be in `system:masters`.
    pub raft_tls: Option<TlsFiles>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            servers: 3,
            extra_args: Vec::new(),
            data_dirs: Default::default(),
            api_tls: false,
            server_args: Default::default(),
            raft_tls: None,
        }
    }
}

/// One server process slot (it may be stopped and started again).
pub struct ServerProcess {
    pub id: u64,
    pub ip: String,
    pub raft_addr: String,
    pub api_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

pub struct ProcessCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    peers: String,
    options: ClusterOptions,
    /// Loaded once from `options.raft_tls`.
    raft_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub servers: Vec<ServerProcess>,
}

/// Errors from driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Timeout(String),
    #[error("no server {0}")]
    NoSuchServer(u64),
    /// Making the cluster's certificates failed.
    #[error("cluster PKI: {0}")]
    Pki(String),
    #[error("Raft port TLS: {0}")]
    Tls(#[from] skiff_raft::tls::TlsError),
    #[error("client: {0}")]
    Client(#[from] skiff_store::StoreError),
}

/// The `skiff` binary built next to the running test executable.
pub fn skiff_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SKIFF_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_skiff") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/test-xxxx → target/<profile>/skiff
    exe.parent().and_then(Path::parent).map(|d| d.join("skiff")).unwrap_or_else(|| PathBuf::from("skiff"))
}

fn free_port(ip: &str) -> std::io::Result<u16> {
    Ok(TcpListener::bind(format!("{ip}:0"))?.local_addr()?.port())
}

impl ProcessCluster {
    /// Starts `options.servers` servers and waits until every one reports ready.
    pub async fn start(bin: &Path, options: ClusterOptions) -> Result<Self, ClusterError> {
        let dir = tempfile::Builder::new().prefix("skiff-cluster-").tempdir()?;
        let mut servers = Vec::new();
        for id in 1..=options.servers {
            let ip = format!("127.0.0.{}", 10 + id);
            let raft_addr = format!("{ip}:{}", free_port(&ip)?);
            let api_addr = format!("{ip}:{}", free_port(&ip)?);
            servers.push(ServerProcess {
                id,
                ip,
                raft_addr,
                api_addr,
                data_dir: options
                    .data_dirs
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| dir.path().join(format!("server-{id}"))),
                log: dir.path().join(format!("server-{id}.log")),
                child: None,
            });
        }
        let peers = servers.iter().map(|s| format!("{}={}", s.id, s.raft_addr)).collect::<Vec<_>>().join(",");
        let raft_tls = options.raft_tls.as_ref().map(skiff_raft::tls::client_tls).transpose()?;
        let mut cluster = Self { bin: bin.to_path_buf(), dir, peers, options, raft_tls, servers };
        for id in 1..=cluster.options.servers {
            cluster.start_server(id)?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn slot(&mut self, id: u64) -> Result<&mut ServerProcess, ClusterError> {
        self.servers.iter_mut().find(|s| s.id == id).ok_or(ClusterError::NoSuchServer(id))
    }

    pub fn server(&self, id: u64) -> Result<&ServerProcess, ClusterError> {
        self.servers.iter().find(|s| s.id == id).ok_or(ClusterError::NoSuchServer(id))
    }

    /// Starts (or restarts) server `id` on its data dir.
    pub fn start_server(&mut self, id: u64) -> Result<(), ClusterError> {
        let bin = self.bin.clone();
        let peers = self.peers.clone();
        let mut extra = self.options.extra_args.clone();
        extra.extend(self.options.server_args.get(&id).cloned().unwrap_or_default());
        let s = self.slot(id)?;
        if s.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&s.log)?;
        let child = Command::new(&bin)
            .args(["server", "--id", &id.to_string(), "--peers", &peers, "--api-listen", &s.api_addr])
            .arg("--data-dir")
            .arg(&s.data_dir)
            .args(&extra)
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info,openraft=warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        s.child = Some(child);
        Ok(())
    }

    /// SIGKILLs server `id` and reaps it.
    pub fn kill(&mut self, id: u64) -> Result<(), ClusterError> {
        let s = self.slot(id)?;
        if let Some(mut c) = s.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Sends SIGSTOP or SIGCONT to server `id`.
    pub fn signal(&mut self, id: u64, sig: &str) -> Result<(), ClusterError> {
        let s = self.slot(id)?;
        if let Some(c) = &s.child {
            Command::new("kill").args([sig, &c.id().to_string()]).status()?;
        }
        Ok(())
    }

    /// The exit status of server `id` if its process has ended by itself (it is then reaped).
    pub fn exited(&mut self, id: u64) -> Result<Option<std::process::ExitStatus>, ClusterError> {
        let s = self.slot(id)?;
        let status = match &mut s.child {
            Some(c) => c.try_wait()?,
            None => None,
        };
        if status.is_some() {
            s.child = None;
        }
        Ok(status)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.server(id).map(|s| s.child.is_some()).unwrap_or(false)
    }

    /// Removes server `id`'s data dir (it must be stopped).
    pub fn wipe(&mut self, id: u64) -> Result<(), ClusterError> {
        let s = self.slot(id)?;
        if s.data_dir.exists() {
            std::fs::remove_dir_all(&s.data_dir)?;
        }
        Ok(())
    }

    /// A client of the Raft ports at `endpoints`, over TLS when the cluster uses it.
    pub fn client_of(&self, endpoints: Vec<String>) -> Result<RemoteStore, ClusterError> {
        let timeout = Duration::from_secs(5);
        Ok(match &self.raft_tls {
            Some(config) => RemoteStore::with_tls_config(endpoints, timeout, config.clone())?,
            None => RemoteStore::new(endpoints, timeout)?,
        })
    }

    /// A client that may use every server.
    pub fn client(&self) -> RemoteStore {
        let eps = self.servers.iter().map(|s| s.raft_addr.clone()).collect();
        self.client_of(eps).unwrap_or_else(|e| panic!("client: {e}"))
    }

    /// A client bound to server `id` only.
    pub fn client_for(&self, id: u64) -> Result<RemoteStore, ClusterError> {
        let s = self.server(id)?;
        self.client_of(vec![s.raft_addr.clone()])
    }

    /// Server `id`'s own status, if it answers.
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let c = self.client_for(id).ok()?;
        tokio::time::timeout(Duration::from_secs(2), c.status_of(0)).await.ok()?.ok()
    }

    /// The leader a majority of running servers agree on, if any.
    pub async fn leader(&self) -> Option<u64> {
        let mut votes = std::collections::BTreeMap::new();
        for s in &self.servers {
            if s.child.is_none() {
                continue;
            }
            if let Some(st) = self.status(s.id).await {
                if st.role == "leader" {
                    *votes.entry(st.id).or_insert(0) += 1;
                } else if let Some(l) = st.leader {
                    *votes.entry(l).or_insert(0) += 1;
                }
            }
        }
        let majority = self.servers.len() / 2 + 1;
        votes.into_iter().find(|(_, n)| *n >= majority).map(|(id, _)| id)
    }

    /// Waits until a leader is agreed on.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<u64, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                return Ok(l);
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout(format!(
                    "no leader within {timeout:?}; logs in {}",
                    self.dir().display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running server's `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        for s in self.servers.iter().filter(|s| s.child.is_some()) {
            loop {
                let ready = if self.options.api_tls {
                    self.status(s.id).await.is_some_and(|st| st.leader.is_some())
                } else {
                    http_get(&s.api_addr, "/readyz").await.map(|(code, _)| code) == Some(200)
                };
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(ClusterError::Timeout(format!(
                        "server {} not ready within {timeout:?}; log: {}",
                        s.id,
                        s.log.display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Waits until server `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status(id).await {
                if s.applied >= index {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout(format!("server {id} did not apply {index} within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Keeps the data dirs and logs after the test (for a failure report).
    pub fn keep(self) -> PathBuf {
        let mut this = self;
        for s in &mut this.servers {
            if let Some(mut c) = s.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let dir = std::mem::replace(&mut this.dir, tempfile::TempDir::new().unwrap_or_else(|e| panic!("{e}")));
        dir.keep()
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut c) = s.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A minimal HTTP/1.1 GET; `(status, body)` or `None` when nothing answers.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path, None, &[]).await
}

/// A minimal HTTP/1.1 request with an optional Content-Type; `(status, body)` or `None` when
/// nothing answers within a few seconds.
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<(u16, String)> {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| ("Content-Type", ct)).into_iter().collect();
    http_request_with(addr, method, path, &headers, body).await
}

/// [`http_request`] with any headers.
pub async fn http_request_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).await.ok()?;
        // The server may answer (413) before reading all of a large body; a failed write is fine.
        let _ = s.write_all(body).await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((code, body))
    };
    tokio::time::timeout(Duration::from_secs(10), fut).await.ok().flatten()
}
