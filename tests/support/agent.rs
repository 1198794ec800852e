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
    pub data_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Agent {
    pub fn start(dir: &Path, name: &str, servers: &[String], sandbox_image: &str, bridge: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
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
            "127.0.0.1".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--sandbox-image".into(),
            sandbox_image.into(),
            "--bridge".into(),
            bridge.into(),
        ];
        let mut agent =
            Self { name: name.into(), log: dir.join(format!("agent-{name}.log")), data_dir, args, child: None };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("agent log");
        let child = Command::new(skiff_testkit::cluster::skiff_binary())
            .args(&self.args)
            .env("SKIFF_LOG", "info,skiff_agent=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start skiff agent");
        self.child = Some(child);
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
        let _ = Command::new(skiff_testkit::cluster::skiff_binary())
            .args(&reset)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
