//! `skiff local up|down`: a cluster of real server processes on this machine, for trying skiff
//! out and for development (like `kind create cluster`).

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use serde::Deserialize;
use serde::Serialize;

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
    let mut entries = Vec::new();
    for id in 1..=servers {
        let api = format!("127.0.0.1:{}", free_port()?);
        let raft = format!("127.0.0.1:{}", free_port()?);
        entries.push(ServerEntry {
            id,
            pid: 0,
            api,
            raft,
            data_dir: dir.join(format!("server-{id}")),
            log: dir.join(format!("server-{id}.log")),
        });
    }
    let peers = entries.iter().map(|e| format!("{}={}", e.id, e.raft)).collect::<Vec<_>>().join(",");
    for e in &mut entries {
        let log = fs::File::create(&e.log)?;
        let child = std::process::Command::new(&exe)
            .args(["server", "--id", &e.id.to_string(), "--peers", &peers, "--api-listen", &e.api])
            .arg("--data-dir")
            .arg(&e.data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting server {}", e.id))?;
        e.pid = child.id();
    }
    let mut file = ClusterFile { servers: entries, agents: Vec::new(), registry_pid: None };
    fs::write(&state, serde_json::to_vec_pretty(&file)?)?;
    write_kubeconfig(dir, &file.servers[0].api)?;

    let deadline = Instant::now() + Duration::from_secs(60);
    for e in &file.servers {
        loop {
            if http_status(&e.api, "/readyz").await == Some(200) {
                break;
            }
            if Instant::now() > deadline {
                bail!("server {} did not become ready within 60 s; see {}", e.id, e.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if agents > 0 {
        start_agents(dir, &exe, &mut file, agents)?;
        fs::write(&state, serde_json::to_vec_pretty(&file)?)?;
        let servers: Vec<String> = file.servers.iter().map(|e| e.api.clone()).collect();
        let api = skiff_client::Client::with_servers(&servers, None)?;
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
        println!("  server {}: api http://{}  raft {}  log {}", e.id, e.api, e.raft, e.log.display());
    }
    for a in &file.agents {
        println!("  agent {}: data {}  log {}", a.name, a.data_dir.display(), a.log.display());
    }
    println!("  kubeconfig: {}", dir.join("kubeconfig").display());
    println!(
        "  members:    skiff member list --server {}",
        file.servers.iter().map(|e| e.raft.as_str()).collect::<Vec<_>>().join(",")
    );
    Ok(())
}

/// The images a local cluster's agents run, served by a registry on 127.0.0.1. `docker.io`
/// resolves to it, so the seeds' manifest (`image: nginx`) works without the internet: its
/// `library/nginx:latest` is a small busybox web server built here, an offline stand-in.
fn start_agents(dir: &Path, exe: &Path, file: &mut ClusterFile, agents: u64) -> anyhow::Result<()> {
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
        let args = vec![
            "agent".to_string(),
            "--server".into(),
            servers.clone(),
            "--node-name".into(),
            name.clone(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into_owned(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()?),
            "--sandbox-image".into(),
            pause.reference.clone(),
            "--registry-mirror".into(),
            mirror.clone(),
            "--bridge".into(),
            format!("skiff{}", n - 1),
        ];
        let out = fs::File::create(&log)?;
        let child = std::process::Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting agent {name}"))?;
        file.agents.push(AgentEntry { name, pid: child.id(), args, data_dir, log });
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

fn write_kubeconfig(dir: &Path, api: &str) -> anyhow::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff-local\n  cluster:\n    server: http://{api}\ncontexts:\n- name: skiff-local\n  context:\n    cluster: skiff-local\n    user: skiff-admin\ncurrent-context: skiff-local\nusers:\n- name: skiff-admin\n  user: {{}}\n"
    );
    fs::write(dir.join("kubeconfig"), text)?;
    Ok(())
}

/// A minimal HTTP/1.1 GET on loopback; `None` when the server does not answer.
pub async fn http_status(addr: &str, path: &str) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
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
