//! A real `skiff agent` process (with its own containerd) and a registry on 127.0.0.1 holding
//! the images the tests run, built from Debian's busybox-static.

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;

/// The images a test pulls, by reference (`127.0.0.1:PORT/skiff/NAME:1`).
pub struct Images {
    pub registry: skiff_oci::Registry,
    pub pause: String,
    pub web: String,
    pub busybox: String,
}

/// What the web image answers on port 80.
pub const WEB_BODY: &str = "hello from a skiff pod\n";

impl Images {
    pub fn start(dir: &Path) -> Self {
        let registry = skiff_oci::Registry::start(&dir.join("registry")).expect("start the registry");
        let scratch = dir.join("images");
        let push = |spec: skiff_oci::ImageSpec, name: &str| {
            registry.push_spec(&spec, name, &scratch).expect("push an image").reference
        };
        let pause = push(skiff_oci::pause_image().expect("pause image"), "skiff/pause:1");
        let web = push(skiff_oci::web_image(WEB_BODY).expect("web image"), "skiff/web:1");
        let busybox = push(skiff_oci::ImageSpec::busybox().expect("busybox image"), "skiff/busybox:1");
        Self { registry, pause, web, busybox }
    }
}

/// One agent; stopped, and everything it created removed (`skiff agent --reset`), on drop.
pub struct Agent {
    pub name: String,
    /// The agent's endpoint (logs, exec, port-forward), `ip:port`.
    pub listen: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// `nsenter --net=...` when the agent runs in a simulated machine.
    prefix: Vec<String>,
    args: Vec<String>,
    child: Option<Child>,
}

/// Where an agent runs: the host (loopback addresses) or a simulated machine.
#[derive(Default)]
pub struct Placement {
    pub netns: Option<String>,
    /// The node's address (default 127.0.0.1).
    pub node_ip: Option<String>,
    /// `--registry-mirror` values.
    pub mirrors: Vec<String>,
    /// More `skiff agent` arguments (TLS files...).
    pub extra_args: Vec<String>,
}

impl Agent {
    pub fn start(dir: &Path, name: &str, servers: &[String], sandbox_image: &str, bridge: &str) -> Self {
        Self::start_at(dir, name, servers, sandbox_image, bridge, Placement::default())
    }

    pub fn start_at(
        dir: &Path,
        name: &str,
        servers: &[String],
        sandbox_image: &str,
        bridge: &str,
        placement: Placement,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let node_ip = placement.node_ip.unwrap_or_else(|| "127.0.0.1".into());
        let data_dir = dir.join(format!("agent-{name}"));
        let args = vec![
            "agent".to_string(),
            "--server".into(),
            servers.join(","),
            "--node-name".into(),
            name.into(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into_owned(),
            "--node-ip".into(),
            node_ip.clone(),
            "--listen".into(),
            format!("{node_ip}:{port}"),
            "--sandbox-image".into(),
            sandbox_image.into(),
            "--bridge".into(),
            bridge.into(),
        ];
        let mut args = args;
        for mirror in placement.mirrors {
            args.push("--registry-mirror".into());
            args.push(mirror);
        }
        args.extend(placement.extra_args);
        let prefix = match placement.netns {
            // nsenter joins only the network namespace; `ip netns exec` would also remount /sys,
            // hiding the cgroup mounts runc needs.
            Some(ns) => vec![format!("--net=/run/netns/{ns}"), "--".into()],
            None => Vec::new(),
        };
        let log = dir.join(format!("agent-{name}.log"));
        let listen = format!("{node_ip}:{port}");
        let mut agent = Self { name: name.into(), listen, log, data_dir, prefix, args, child: None };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("agent log");
        let child = self
            .command(&self.args)
            .env("SKIFF_LOG", "info,skiff_agent=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start skiff agent");
        self.child = Some(child);
    }

    fn command(&self, args: &[String]) -> Command {
        if self.prefix.is_empty() {
            let mut c = Command::new(skiff_testkit::cluster::skiff_binary());
            c.args(args);
            c
        } else {
            let mut c = Command::new("nsenter");
            c.args(&self.prefix).arg(skiff_testkit::cluster::skiff_binary()).args(args);
            c
        }
    }

    /// SIGKILL: the agent dies, its containerd and containers stay.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The agent's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // The managed containerd outlives a killed agent; reset stops it and removes the pods,
        // their network namespaces, the bridge and the mounts.
        let mut reset = self.args.clone();
        reset.push("--reset".into());
        let _ = self.command(&reset).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// A test LAN: a bridge on the host that simulated machines (network namespaces) join through
/// veth pairs, with the host at `PREFIX.1`. Removed, with its machines, on drop.
pub struct Lan {
    pub bridge: String,
    pub prefix: String,
    machines: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Lan {
    /// `prefix` is the first three octets, e.g. `10.201.0`.
    pub fn create(bridge: &str, prefix: &str) -> Self {
        let _ = Command::new("ip").args(["link", "delete", bridge]).output();
        ip(&["link", "add", bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{prefix}.1/24"), "dev", bridge]);
        ip(&["link", "set", bridge, "up"]);
        Self { bridge: bridge.into(), prefix: prefix.into(), machines: Vec::new() }
    }

    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// A machine (network namespace `name`) at `PREFIX.host`, with a default route to the host.
    pub fn machine(&mut self, name: &str, host: u8) -> String {
        let _ = Command::new("ip").args(["netns", "delete", name]).output();
        let outside = format!("{name}-h");
        let _ = Command::new("ip").args(["link", "delete", &outside]).output();
        ip(&["netns", "add", name]);
        self.machines.push(name.into());
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", name]);
        ip(&["link", "set", &outside, "master", &self.bridge, "up"]);
        let address = format!("{}.{host}", self.prefix);
        ip(&["-n", name, "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
        ip(&["-n", name, "link", "set", "eth0", "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&["-n", name, "route", "add", "default", "via", &self.host_ip()]);
        address
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in &self.machines {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
            let _ = Command::new("ip").args(["link", "delete", &format!("{name}-h")]).output();
        }
        let _ = Command::new("ip").args(["link", "delete", &self.bridge]).output();
    }
}
