//! The seeds' story on real parts: three `skiff server` processes, a `skiff agent` with its own
//! containerd (Debian's containerd, runc and CNI plugins), images pulled from a registry on
//! 127.0.0.1, and the installed kubectl.

use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use skiff_client::Client;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;
use support::agent::Agent;
use support::agent::Images;
use support::agent::WEB_BODY;
use support::Kubectl;

mod support;

struct Setup {
    // Dropped in order: agent (reset) before the cluster and the registry.
    agent: Agent,
    kubectl: Kubectl,
    api: Client,
    images: Images,
    _cluster: ProcessCluster,
}

/// Each test's cluster carves podCIDRs from its own range, so tests running side by side on one
/// host never put two bridges on one subnet.
fn cluster_cidr(cidr: &str) -> Vec<String> {
    vec!["--cluster-cidr".into(), cidr.into()]
}

async fn setup(node: &str, bridge: &str, cidr: &str) -> Setup {
    let options = ClusterOptions { extra_args: cluster_cidr(cidr), ..ClusterOptions::default() };
    let cluster = ProcessCluster::start(&skiff_binary(), options).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let images = Images::start(cluster.dir());
    let servers: Vec<String> = cluster.servers.iter().map(|s| s.api_addr.clone()).collect();
    let api = Client::with_servers(&servers, None).expect("client");
    let agent = Agent::start(cluster.dir(), node, &servers, &images.pause, bridge);
    let kubectl = Kubectl::new(cluster.dir(), &servers[0]);
    let ready = kubectl.run(&["wait", "--for=condition=Ready", &format!("node/{node}"), "--timeout=90s"]);
    assert!(ready.ok, "node never Ready: {}\n{}\nagent log:\n{}", ready.stdout, ready.stderr, agent.log_tail());
    Setup { agent, kubectl, api, images, _cluster: cluster }
}

fn apply(kubectl: &Kubectl, manifest: &str) {
    let out = kubectl.run_with_stdin(&["apply", "-f", "-"], Some(manifest));
    assert!(out.ok, "apply failed: {}\n{}", out.stdout, out.stderr);
}

async fn pod(api: &Client, name: &str) -> Value {
    api.get(&format!("/api/v1/namespaces/default/pods/{name}")).await.expect("pod")
}

/// Waits until `check` holds for the pod, returning it.
async fn pod_until(api: &Client, name: &str, timeout: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(p) = api.get::<Value>(&format!("/api/v1/namespaces/default/pods/{name}")).await {
            if check(&p) {
                return p;
            }
            assert!(Instant::now() < deadline, "pod {name}: {what} never happened; last status: {:#}", p["status"]);
        } else {
            assert!(Instant::now() < deadline, "pod {name}: {what} never happened (pod not found)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn http_get(ip: &str, port: u16) -> std::io::Result<String> {
    use std::io::Read;
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().map_err(std::io::Error::other)?,
        Duration::from_secs(3),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// What a raw WebSocket exec got: the answer's head, the channel messages (channel byte,
/// payload) and the close code.
type WebSocketExec = (String, Vec<(u8, Vec<u8>)>, Option<u16>);

/// `GET path` as kubectl's first try at exec (WebSocket, `v5.channel.k8s.io`), read until the
/// server closes.
fn websocket_exec(addr: &str, path: &str) -> std::io::Result<WebSocketExec> {
    use std::io::Read;
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut messages = Vec::new();
    if !head.starts_with("HTTP/1.1 101") {
        return Ok((head, messages, None));
    }
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h)?;
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut l = [0u8; 2];
            s.read_exact(&mut l)?;
            len = u16::from_be_bytes(l) as u64;
        } else if len == 127 {
            let mut l = [0u8; 8];
            s.read_exact(&mut l)?;
            len = u64::from_be_bytes(l);
        }
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload)?;
        match h[0] & 0x0f {
            0x8 => {
                // Answer the close (client frames are masked; an all-zero mask).
                let _ = s.write_all(&[0x88, 0x80, 0, 0, 0, 0]);
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                return Ok((head, messages, code));
            }
            0x2 => {
                if let Some((ch, data)) = payload.split_first() {
                    messages.push((*ch, data.to_vec()));
                }
            }
            _ => {}
        }
    }
}

fn container_status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

/// `kubectl apply` → scheduled → the agent runs it in containerd with a CNI address → Ready;
/// `get -o wide` shows the IP and node, the host reaches the web server at the pod IP,
/// `describe` shows the events, `logs` reads the container's output, and `delete` removes
/// it from the node.
#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_pod_runs_in_containerd_with_an_ip_and_kubectl_sees_it() {
    let s = setup("node-a", "skiffe2e0", "10.244.0.0/16").await;
    let started = Instant::now();
    apply(
        &s.kubectl,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: web\n    image: {}\n    ports:\n    - containerPort: 80\n    readinessProbe:\n      httpGet:\n        path: /\n        port: 80\n      periodSeconds: 1\n",
            s.images.web
        ),
    );
    let wait = s.kubectl.run(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"]);
    assert!(wait.ok, "pod never Ready: {}\n{}\nagent log:\n{}", wait.stdout, wait.stderr, s.agent.log_tail());
    println!("apply to Ready: {} ms", started.elapsed().as_millis());

    let wide = s.kubectl.run(&["get", "pods", "-o", "wide"]);
    assert!(wide.ok, "{}", wide.stderr);
    println!("{}", wide.stdout);
    let p = pod(&s.api, "web").await;
    let ip = p["status"]["podIP"].as_str().expect("a pod IP").to_string();
    assert!(ip.starts_with("10.244."), "the IP comes from the node's podCIDR: {ip}");
    let row = wide.stdout.lines().find(|l| l.starts_with("web ")).expect("a row for web");
    for expected in ["1/1", "Running", ip.as_str(), "node-a"] {
        assert!(row.contains(expected), "{expected:?} missing from {row:?}");
    }
    let answer = http_get(&ip, 80).expect("the web server answers at the pod IP");
    assert!(answer.starts_with("HTTP/1.") && answer.contains(WEB_BODY), "{answer}");
    let c = container_status(&p, "web");
    assert!(c["containerID"].as_str().is_some_and(|id| id.starts_with("containerd://")), "{c}");
    assert!(c["imageID"].as_str().is_some_and(|id| !id.is_empty()), "{c}");
    assert_eq!(p["status"]["hostIP"], "127.0.0.1");

    let describe = s.kubectl.run(&["describe", "pod", "web"]);
    assert!(describe.ok, "{}", describe.stderr);
    for event in ["Scheduled", "Pulling", "Pulled", "Created", "Started"] {
        assert!(describe.stdout.contains(event), "describe lacks the {event} event:\n{}", describe.stdout);
    }

    // Logs, through the API server's proxy to the agent.
    apply(
        &s.kubectl,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  word: hello\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: talk\n    image: {}\n    command: [\"sh\", \"-c\", \"echo $(WORD) from $(POD_NAME); i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done\"]\n    env:\n    - name: WORD\n      valueFrom:\n        configMapKeyRef: {{name: greeting, key: word}}\n    - name: POD_NAME\n      valueFrom:\n        fieldRef: {{fieldPath: metadata.name}}\n",
            s.images.busybox
        ),
    );
    let wait = s.kubectl.run(&["wait", "--for=condition=Ready", "pod/talker", "--timeout=60s"]);
    assert!(wait.ok, "talker never Ready: {}\nagent log:\n{}", wait.stderr, s.agent.log_tail());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logs = s.kubectl.run(&["logs", "talker"]);
    assert!(logs.ok, "{}", logs.stderr);
    assert!(logs.stdout.starts_with("hello from talker\ntick 1\n"), "{}", logs.stdout);
    let tail = s.kubectl.run(&["logs", "talker", "--tail=2"]);
    assert_eq!(tail.stdout.lines().count(), 2, "{}", tail.stdout);
    // Follow: lines written after the request arrive on the open stream.
    let mut follow = std::process::Command::new("/usr/bin/kubectl")
        .args(["--kubeconfig"])
        .arg(&s.kubectl.kubeconfig)
        .args(["logs", "-f", "talker", "--tail=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = follow.kill();
    let out = follow.wait_with_output().expect("follow output");
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(followed.lines().count() >= 5, "logs -f streamed new lines: {followed:?}");

    // exec: output, exit codes and stdin go through the API server and the agent to containerd.
    let exec = s.kubectl.run(&["exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(exec.stdout, "out\n", "{}", exec.stderr);
    assert!(exec.stderr.contains("err"), "{}", exec.stderr);
    let code = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubectl.kubeconfig)
        .args(["exec", "talker", "--", "sh", "-c", "exit 3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("kubectl exec");
    assert_eq!(code.code(), Some(3), "kubectl exec exits with the command's code");
    let piped =
        s.kubectl.run_with_stdin(&["exec", "-i", "talker", "--", "sh", "-c", "cat; echo done"], Some("piped input\n"));
    assert_eq!(piped.stdout, "piped input\ndone\n", "{}", piped.stderr);

    // attach: the running process's output, live.
    let mut attach = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubectl.kubeconfig)
        .args(["attach", "talker"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl attach");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = attach.kill();
    let out = attach.wait_with_output().expect("attach output");
    let attached = String::from_utf8_lossy(&out.stdout);
    assert!(
        attached.contains("tick"),
        "attach streamed the output: {attached:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // kubectl cp rides on exec with stdin (tar in the container).
    let local = s._cluster.dir().join("greeting.txt");
    std::fs::write(&local, "copied into the pod\n").expect("write a local file");
    let cp = s.kubectl.run(&["cp", local.to_str().expect("utf8"), "talker:/tmp/greeting.txt"]);
    assert!(cp.ok, "kubectl cp: {}", cp.stderr);
    let copied = s.kubectl.run(&["exec", "talker", "--", "cat", "/tmp/greeting.txt"]);
    assert_eq!(copied.stdout, "copied into the pod\n", "{}", copied.stderr);

    // kubectl's WebSocket offers were taken: the agent bridged them, nothing fell back to SPDY.
    let log = std::fs::read_to_string(&s.agent.log).unwrap_or_default();
    assert!(log.contains("exec/attach over WebSocket v5.channel.k8s.io"), "{}", s.agent.log_tail());
    assert!(!log.contains("over SPDY/3.1, tunnelled unchanged"), "{}", s.agent.log_tail());
    // The same by hand: a raw WebSocket exec to the API server.
    let addr = &s._cluster.servers[0].api_addr;
    let (head, messages, close) =
        websocket_exec(addr, "/api/v1/namespaces/default/pods/talker/exec?command=echo&command=hi&stdout=true")
            .expect("a WebSocket exec");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("sec-websocket-protocol: v5.channel.k8s.io"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "the accept key of RFC 6455's example: {head}");
    let stdout: Vec<u8> = messages.iter().filter(|(ch, _)| *ch == 1).flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(String::from_utf8_lossy(&stdout), "hi\n", "{messages:?}");
    let status = messages.iter().find(|(ch, _)| *ch == 3).expect("a Status on channel 3");
    let status: Value = serde_json::from_slice(&status.1).expect("Status JSON");
    assert_eq!(status["status"], "Success", "{status}");
    assert_eq!(close, Some(1000), "a normal close");

    // port-forward: real traffic from a local port to the pod's web server.
    let mut forward = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubectl.kubeconfig)
        .args(["port-forward", "pod/web", ":80"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let local_port = {
        use std::io::BufRead;
        let stdout = forward.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("port-forward prints its port");
        // kubectl reports every connection on stdout: keep reading, or it dies of a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        // "Forwarding from 127.0.0.1:PORT -> 80"
        line.split("127.0.0.1:").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|p| p.parse::<u16>().ok())
    };
    let local_port = local_port.expect("a forwarded port");
    let answers: Vec<std::io::Result<String>> = (0..3).map(|_| http_get("127.0.0.1", local_port)).collect();
    let _ = forward.kill();
    let out = forward.wait_with_output().expect("port-forward output");
    for answer in answers {
        let answer = answer.unwrap_or_else(|e| {
            panic!("no answer through the forwarded port: {e}\n{}", String::from_utf8_lossy(&out.stderr))
        });
        assert!(answer.contains(WEB_BODY), "{answer}");
    }
    let log = std::fs::read_to_string(&s.agent.log).unwrap_or_default();
    assert!(log.contains("port-forward over WebSocket SPDY/3.1+portforward.k8s.io"), "{}", s.agent.log_tail());
    // A terminal (under script(1)): the tty and its size reach the container over WebSocket (the
    // runtime applies the size once the process has started, hence the pause).
    let kubeconfig = s.kubectl.kubeconfig.to_str().expect("utf8");
    let tty = std::process::Command::new("/usr/bin/script")
        .args([
            "-qec",
            &format!(
                "stty cols 91 rows 27; kubectl --kubeconfig {kubeconfig} exec -it talker -- sh -c 'sleep 1; stty size'"
            ),
        ])
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped())
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(
        shown.contains("27 91"),
        "the terminal's size: {shown:?} {}\n{}",
        String::from_utf8_lossy(&tty.stderr),
        s.agent.log_tail()
    );

    // kubectl told not to try WebSocket still gets through over SPDY/3.1, tunnelled unchanged.
    let spdy = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubectl.kubeconfig)
        .args(["exec", "talker", "--", "sh", "-c", "echo over spdy"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .output()
        .expect("kubectl exec over SPDY");
    assert_eq!(String::from_utf8_lossy(&spdy.stdout), "over spdy\n", "{}", String::from_utf8_lossy(&spdy.stderr));
    let log = std::fs::read_to_string(&s.agent.log).unwrap_or_default();
    assert!(log.contains("exec over SPDY/3.1, tunnelled unchanged"), "{}", s.agent.log_tail());

    // Services: the agent's proxy rules take a ClusterIP (from the host and from a pod) and a
    // NodePort (on one of the node's addresses) to the pod.
    let exposed = s.kubectl.run(&["expose", "pod", "web", "--port=80", "--type=NodePort", "--name=web"]);
    assert!(exposed.ok, "{}", exposed.stderr);
    let service: Value = s.api.get("/api/v1/namespaces/default/services/web").await.expect("service");
    let cluster_ip = service["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
    let node_port = service["spec"]["ports"][0]["nodePort"].as_u64().expect("nodePort") as u16;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(&cluster_ip, 80).is_ok_and(|a| a.contains(WEB_BODY)) {
        assert!(
            Instant::now() < deadline,
            "ClusterIP {cluster_ip} never answered from the host\n{}",
            s.agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let through_service = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {cluster_ip} 80");
    let from_pod = s.kubectl.run(&["exec", "talker", "--", "sh", "-c", &through_service]);
    assert!(from_pod.stdout.contains(WEB_BODY), "ClusterIP from a pod: {} {}", from_pod.stdout, from_pod.stderr);
    let gateway = format!("{}.1", ip.rsplit_once('.').map(|(p, _)| p).unwrap_or(""));
    let answer = http_get(&gateway, node_port).expect("an answer on the NodePort");
    assert!(answer.contains(WEB_BODY), "NodePort {gateway}:{node_port}: {answer}");

    // Cluster DNS: the agent answers the Service's name on the node with its cluster IP.
    let looked_up = s.kubectl.run(&["exec", "talker", "--", "nslookup", "web.default.svc.cluster.local"]);
    assert!(looked_up.stdout.contains(&cluster_ip), "nslookup: {} {}", looked_up.stdout, looked_up.stderr);
    let resolv = s.kubectl.run(&["exec", "talker", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.stdout.contains("search default.svc.cluster.local"), "{}", resolv.stdout);
    let missing = s.kubectl.run(&["exec", "talker", "--", "nslookup", "nope.default.svc.cluster.local"]);
    assert!(!missing.ok, "an unknown service name does not resolve: {}", missing.stdout);

    // Deletion: the agent stops the containers and the sandbox, then completes the deletion.
    let deleted = Instant::now();
    let out = s.kubectl.run(&["delete", "pod", "web", "--wait=true", "--timeout=60s"]);
    assert!(out.ok, "{}", out.stderr);
    println!("delete to gone: {} ms", deleted.elapsed().as_millis());
    assert!(s.api.get::<Value>("/api/v1/namespaces/default/pods/web").await.is_err_and(|e| e.is_not_found()));
    assert!(http_get(&ip, 80).is_err(), "the pod's address is gone with its sandbox");
    drop(s);
    // The agent's reset took its service rules with it.
    let nat = std::process::Command::new("iptables").args(["-t", "nat", "-S"]).output().expect("iptables");
    assert!(!String::from_utf8_lossy(&nat.stdout).contains("SKIFF-"), "service rules left behind");
}

/// Restarts, back-off, probes, bad images and replicas on one node, and an agent restart that
/// leaves running containers alone.
#[tokio::test(flavor = "multi_thread")]
async fn containers_restart_probe_and_survive_an_agent_restart() {
    let mut s = setup("node-b", "skiffe2e1", "10.245.0.0/16").await;
    let busybox = s.images.busybox.clone();
    let missing = format!("{}/skiff/missing:1", s.images.registry.addr());
    apply(
        &s.kubectl,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crasher\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: crash\n    image: {busybox}\n    command: [\"sh\", \"-c\", \"echo boom; exit 3\"]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: unhealthy\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {busybox}\n    command: [\"sh\", \"-c\", \"touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600\"]\n    livenessProbe:\n      exec:\n        command: [\"cat\", \"/tmp/healthy\"]\n      periodSeconds: 1\n      failureThreshold: 2\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: badimage\nspec:\n  containers:\n  - name: app\n    image: {missing}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: sleepers\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: sleepers}}\n  template:\n    metadata:\n      labels: {{app: sleepers}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: sleep\n        image: {busybox}\n        command: [\"sleep\", \"3600\"]\n"
        ),
    );

    // A container that exits is restarted, then backs off; its last state shows the exit.
    let crasher = pod_until(&s.api, "crasher", Duration::from_secs(60), "a restart", |p| {
        container_status(p, "crash")["restartCount"].as_u64().is_some_and(|n| n >= 1)
    })
    .await;
    assert_eq!(
        container_status(&crasher, "crash")["lastState"]["terminated"]["exitCode"],
        3,
        "{:#}",
        crasher["status"]
    );
    pod_until(&s.api, "crasher", Duration::from_secs(30), "CrashLoopBackOff", |p| {
        container_status(p, "crash")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    let events = s.kubectl.run(&["get", "events", "--field-selector", "involvedObject.name=crasher"]);
    assert!(events.stdout.contains("BackOff"), "{}", events.stdout);
    let previous = s.kubectl.run(&["logs", "crasher", "--previous"]);
    assert_eq!(previous.stdout, "boom\n", "{}", previous.stderr);

    // A bad image: ErrImagePull, then ImagePullBackOff, with the registry's answer.
    let bad = pod_until(&s.api, "badimage", Duration::from_secs(60), "ImagePullBackOff", |p| {
        container_status(p, "app")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    let message = container_status(&bad, "app")["state"]["waiting"]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains("missing"), "the pull error names the image: {message}");
    let events = s.kubectl.run(&["get", "events", "--field-selector", "involvedObject.name=badimage"]);
    assert!(events.stdout.contains("ErrImagePull"), "{}", events.stdout);

    // A failing liveness probe restarts the container.
    let unhealthy = pod_until(&s.api, "unhealthy", Duration::from_secs(60), "a liveness restart", |p| {
        container_status(p, "app")["restartCount"].as_u64().is_some_and(|n| n >= 1)
    })
    .await;
    assert!(container_status(&unhealthy, "app")["lastState"]["terminated"].is_object());
    let events = s.kubectl.run(&["get", "events", "--field-selector", "involvedObject.name=unhealthy"]);
    assert!(
        events.stdout.contains("Unhealthy") && events.stdout.contains("Liveness probe failed"),
        "{}",
        events.stdout
    );

    // Three replicas run, each with its own address.
    let deadline = Instant::now() + Duration::from_secs(90);
    let ips = loop {
        let pods =
            s.api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dsleepers").await.expect("list");
        let running: Vec<&Value> = pods.items.iter().filter(|p| p["status"]["phase"] == "Running").collect();
        let mut ips: Vec<String> =
            running.iter().filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string)).collect();
        ips.sort();
        ips.dedup();
        if running.len() == 3 && ips.len() == 3 {
            break ips;
        }
        assert!(Instant::now() < deadline, "3 running replicas with distinct IPs; agent log:\n{}", s.agent.log_tail());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!("replica IPs: {ips:?}");

    // The agent restarts; running containers are not restarted.
    let before =
        s.api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dsleepers").await.expect("list");
    let ids_before: Vec<String> =
        before.items.iter().map(|p| container_status(p, "sleep")["containerID"].to_string()).collect();
    s.agent.restart();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ready = s.kubectl.run(&["wait", "--for=condition=Ready", "node/node-b", "--timeout=60s"]);
    assert!(ready.ok, "node not Ready after the agent restart:\n{}", s.agent.log_tail());
    let after =
        s.api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dsleepers").await.expect("list");
    for p in &after.items {
        assert_eq!(p["status"]["phase"], "Running", "{:#}", p["status"]);
        assert_eq!(container_status(p, "sleep")["restartCount"], 0, "{:#}", p["status"]);
        let id = container_status(p, "sleep")["containerID"].to_string();
        assert!(ids_before.contains(&id), "container {id} was replaced across the agent restart");
    }

    // containerd dies; the agent restarts it and the pods keep running, unrestarted.
    let pid = std::fs::read_to_string(s.agent.data_dir.join("containerd/containerd.pid")).expect("containerd pid");
    let killed = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_runtime =
        s.api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dsleepers").await.expect("list");
    for p in &after_runtime.items {
        assert_eq!(p["status"]["phase"], "Running", "{:#}", p["status"]);
        let id = container_status(p, "sleep")["containerID"].to_string();
        assert!(ids_before.contains(&id), "container {id} was replaced across a containerd restart");
    }

    // A pod that is not ready is not an endpoint of its Service until its probe passes; a pod
    // whose ConfigMap is missing says so. New pods start after the containerd restart.
    apply(
        &s.kubectl,
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: gated\nspec:\n  selector: {{app: gated}}\n  ports:\n  - port: 80\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: gated\n  labels: {{app: gated}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {busybox}\n    command: [\"sleep\", \"3600\"]\n    readinessProbe:\n      exec:\n        command: [\"cat\", \"/tmp/ready\"]\n      periodSeconds: 1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: misconfigured\nspec:\n  containers:\n  - name: app\n    image: {busybox}\n    command: [\"sleep\", \"3600\"]\n    env:\n    - name: X\n      valueFrom:\n        configMapKeyRef: {{name: absent, key: x}}\n"
        ),
    );
    let gated =
        pod_until(&s.api, "gated", Duration::from_secs(60), "Running", |p| p["status"]["phase"] == "Running").await;
    let gated_ip = gated["status"]["podIP"].as_str().expect("ip").to_string();
    let endpoints = |ready: bool| {
        let api = s.api.clone();
        let ip = gated_ip.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(ep) = api.get::<Value>("/api/v1/namespaces/default/endpoints/gated").await {
                    let listed = |field: &str| {
                        ep["subsets"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|s| s[field].as_array().into_iter().flatten().any(|a| a["ip"] == ip.as_str()))
                    };
                    if listed("addresses") == ready && listed("notReadyAddresses") != ready {
                        return;
                    }
                    assert!(Instant::now() < deadline, "endpoints never showed the pod as ready={ready}: {ep:#}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    endpoints(false).await;
    let touched = s.kubectl.run(&["exec", "gated", "--", "touch", "/tmp/ready"]);
    assert!(touched.ok, "{}", touched.stderr);
    endpoints(true).await;
    let bad = pod_until(&s.api, "misconfigured", Duration::from_secs(30), "CreateContainerConfigError", |p| {
        container_status(p, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    let message = container_status(&bad, "app")["state"]["waiting"]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains("absent"), "{message}");

    // A memory limit is enforced, and the kernel's OOM kill is reported as such.
    apply(
        &s.kubectl,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hungry\nspec:\n  restartPolicy: Never\n  containers:\n  - name: app\n    image: {busybox}\n    command: [\"sh\", \"-c\", \"x=$(head -c 200000000 /dev/zero | tr '\\\\000' x); echo survived\"]\n    resources:\n      limits: {{memory: 32Mi}}\n"
        ),
    );
    let hungry = pod_until(&s.api, "hungry", Duration::from_secs(60), "terminated", |p| {
        container_status(p, "app")["state"]["terminated"].is_object()
    })
    .await;
    let terminated = &container_status(&hungry, "app")["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{terminated:#}");
    assert_eq!(hungry["status"]["phase"], "Failed");

    // Lifecycle hooks: postStart after the start, preStop before the stop signal on deletion.
    let hooks = s._cluster.dir().join("hooks");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    apply(
        &s.kubectl,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hooked\nspec:\n  terminationGracePeriodSeconds: 5\n  volumes:\n  - name: host\n    hostPath: {{path: {}}}\n  containers:\n  - name: app\n    image: {busybox}\n    command: [\"sleep\", \"3600\"]\n    volumeMounts:\n    - {{name: host, mountPath: /host}}\n    lifecycle:\n      postStart:\n        exec:\n          command: [\"sh\", \"-c\", \"echo started > /host/post-start\"]\n      preStop:\n        exec:\n          command: [\"sh\", \"-c\", \"echo stopping > /host/pre-stop\"]\n",
            hooks.display()
        ),
    );
    pod_until(&s.api, "hooked", Duration::from_secs(60), "Running", |p| p["status"]["phase"] == "Running").await;
    assert_eq!(std::fs::read_to_string(hooks.join("post-start")).unwrap_or_default(), "started\n");
    assert!(!hooks.join("pre-stop").exists(), "preStop runs only when the pod stops");
    let out = s.kubectl.run(&["delete", "pod", "hooked", "--timeout=60s"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(hooks.join("pre-stop")).unwrap_or_default(), "stopping\n");

    // Deleting a replica gets it replaced.
    let victim = after.items[0]["metadata"]["name"].as_str().expect("name").to_string();
    let out = s.kubectl.run(&["delete", "pod", &victim, "--timeout=60s"]);
    assert!(out.ok, "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods =
            s.api.list::<Value>("/api/v1/namespaces/default/pods?labelSelector=app%3Dsleepers").await.expect("list");
        let running = pods
            .items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["name"] != victim.as_str())
            .count();
        if running == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the deleted replica was not replaced");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The server the agent talks to first dies: the agent moves on. Its Lease keeps being
    // renewed and a new pod still starts.
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-b";
    s._cluster.kill(1).expect("kill server 1");
    let renewed_before = loop {
        if let Ok(lease) = s.api.get::<Value>(lease_path).await {
            break lease["spec"]["renewTime"].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "after-failover"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": busybox, "command": ["sleep", "3600"]}]}});
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.api.create::<_, Value>("/api/v1/namespaces/default/pods", &pod).await.is_err() {
        assert!(Instant::now() < deadline, "no server took the pod after server 1 died");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pod_until(&s.api, "after-failover", Duration::from_secs(60), "Running after a server died", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let renewed = s.api.get::<Value>(lease_path).await.map(|l| l["spec"]["renewTime"].clone()).ok();
        if renewed.is_some_and(|r| r != renewed_before) {
            break;
        }
        assert!(Instant::now() < deadline, "the Lease was not renewed after server 1 died\n{}", s.agent.log_tail());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(s);
}

/// Two machines (network namespaces on a test LAN), each with its own agent, containerd,
/// bridge and podCIDR: the agents route each other's pod ranges, and a pod on one node reaches
/// a pod on the other by its pod IP.
#[tokio::test(flavor = "multi_thread")]
async fn pods_on_two_nodes_reach_each_other_by_pod_ip() {
    let cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let images = Images::start(cluster.dir());
    let mut lan = support::agent::Lan::create("skt-lan", "10.201.0");
    let ip_a = lan.machine("skt-a", 2);
    let ip_b = lan.machine("skt-b", 3);
    // The machines reach the servers and the registry through proxies on the LAN.
    let mut proxies = Vec::new();
    let mut lan_servers = Vec::new();
    for server in &cluster.servers {
        let upstream = server.api_addr.parse().expect("server address");
        let proxy =
            skiff_testkit::proxy::FaultProxy::start(format!("{}:0", lan.host_ip()).parse().expect("addr"), upstream)
                .await
                .expect("API proxy");
        lan_servers.push(proxy.local_addr().to_string());
        proxies.push(proxy);
    }
    let registry = images.registry.addr().to_string();
    let registry_proxy = skiff_testkit::proxy::FaultProxy::start(
        format!("{}:0", lan.host_ip()).parse().expect("addr"),
        registry.parse().expect("registry address"),
    )
    .await
    .expect("registry proxy");
    let mirror = format!("{registry}=http://{}", registry_proxy.local_addr());
    let place = |netns: &str, ip: &str| support::agent::Placement {
        netns: Some(netns.into()),
        node_ip: Some(ip.into()),
        mirrors: vec![mirror.clone()],
        extra_args: Vec::new(),
    };
    let agent_a =
        Agent::start_at(cluster.dir(), "node-x", &lan_servers, &images.pause, "skiff0", place("skt-a", &ip_a));
    let agent_b =
        Agent::start_at(cluster.dir(), "node-y", &lan_servers, &images.pause, "skiff0", place("skt-b", &ip_b));
    let servers: Vec<String> = cluster.servers.iter().map(|s| s.api_addr.clone()).collect();
    let api = Client::with_servers(&servers, None).expect("client");
    let kubectl = Kubectl::new(cluster.dir(), &servers[0]);
    for (node, agent) in [("node-x", &agent_a), ("node-y", &agent_b)] {
        let ready = kubectl.run(&["wait", "--for=condition=Ready", &format!("node/{node}"), "--timeout=90s"]);
        assert!(ready.ok, "{node} never Ready: {}\nagent log:\n{}", ready.stderr, agent.log_tail());
    }
    apply(
        &kubectl,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: server-x\nspec:\n  nodeName: node-x\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: client-y\nspec:\n  nodeName: node-y\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: sh\n    image: {}\n    command: [\"sleep\", \"3600\"]\n",
            images.web, images.busybox
        ),
    );
    for (p, agent) in [("server-x", &agent_a), ("client-y", &agent_b)] {
        let wait = kubectl.run(&["wait", "--for=condition=Ready", &format!("pod/{p}"), "--timeout=90s"]);
        assert!(wait.ok, "{p} never Ready: {}\nagent log:\n{}", wait.stderr, agent.log_tail());
    }
    let server = pod(&api, "server-x").await;
    let client = pod(&api, "client-y").await;
    let server_ip = server["status"]["podIP"].as_str().expect("server IP").to_string();
    let client_ip = client["status"]["podIP"].as_str().expect("client IP").to_string();
    let (node_x, node_y): (Value, Value) =
        (api.get("/api/v1/nodes/node-x").await.expect("node"), api.get("/api/v1/nodes/node-y").await.expect("node"));
    let (cidr_x, cidr_y) =
        (node_x["spec"]["podCIDR"].as_str().expect("cidr"), node_y["spec"]["podCIDR"].as_str().expect("cidr"));
    assert_ne!(cidr_x, cidr_y);
    println!("server-x {server_ip} in {cidr_x} on {ip_a}; client-y {client_ip} in {cidr_y} on {ip_b}");
    let prefix = |cidr: &str| cidr.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
    assert!(server_ip.starts_with(&prefix(cidr_x)) && client_ip.starts_with(&prefix(cidr_y)));

    // Each agent routes the other node's range through the other node's address.
    let routes =
        std::process::Command::new("ip").args(["-n", "skt-b", "route", "show", "proto", "199"]).output().expect("ip");
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(routes.contains(&format!("{cidr_x} via {ip_a}")), "node-y's routes: {routes}");

    // Pod to pod across nodes, by pod IP, through exec (API server → agent → containerd).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // busybox-static's wget needs glibc's NSS libraries, which the image lacks; nc does not.
        let request = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {server_ip} 80");
        let got = kubectl.run(&["exec", "client-y", "--", "sh", "-c", &request]);
        if got.stdout.starts_with("HTTP/1.") && got.stdout.contains(WEB_BODY) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client-y never reached server-x at {server_ip}: {} {}",
            got.stdout,
            got.stderr
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop((agent_a, agent_b));
    drop(lan);
}

/// With TLS on, the agent reaches the API with its own certificate, and its endpoint answers
/// only the API servers (group system:masters): kubectl's logs and exec work through them, a
/// user's certificate gets 403 from the agent, and no certificate gets no connection at all.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_speaks_tls_and_answers_only_the_api_servers() {
    const DAY: Duration = Duration::from_secs(86_400);
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = skiff_pki::Pki::init(dir.path().join("pki")).expect("pki");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let ips: Vec<String> = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.1"].map(String::from).to_vec();
    pki.issue_server("skiff-server", &ips, DAY).expect("serving cert").write(dir.path(), "server").expect("write");
    let masters = ["system:masters".to_string()];
    pki.issue_client("system:skiff-components", &masters, DAY)
        .expect("cert")
        .write(dir.path(), "components")
        .expect("write");
    let nodes = ["system:nodes".to_string()];
    pki.issue_client("system:node:node-t", &nodes, DAY).expect("cert").write(dir.path(), "node-client").expect("write");
    pki.issue_server("node-t", &["127.0.0.1".to_string()], DAY)
        .expect("cert")
        .write(dir.path(), "node-serving")
        .expect("write");
    let jane = pki.issue_client("jane", &["dev".to_string()], DAY).expect("cert");
    jane.write(dir.path(), "jane").expect("write");
    let ca = dir.path().join("pki").join(skiff_pki::CA_CERT).display().to_string();
    let options = ClusterOptions {
        extra_args: vec![
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-private-key-file".into(),
            file("server.key"),
            "--client-ca-file".into(),
            ca.clone(),
            "--component-cert-file".into(),
            file("components.crt"),
            "--component-key-file".into(),
            file("components.key"),
            "--cluster-cidr".into(),
            "10.246.0.0/16".into(),
        ],
        api_tls: true,
        ..ClusterOptions::default()
    };
    let cluster = ProcessCluster::start(&skiff_binary(), options).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let images = Images::start(cluster.dir());
    let servers: Vec<String> = cluster.servers.iter().map(|s| s.api_addr.clone()).collect();
    let placement = support::agent::Placement {
        extra_args: [
            "--ca-file",
            &ca,
            "--cert-file",
            &file("node-client.crt"),
            "--key-file",
            &file("node-client.key"),
            "--tls-cert-file",
            &file("node-serving.crt"),
            "--tls-private-key-file",
            &file("node-serving.key"),
            "--client-ca-file",
            &ca,
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    let agent = Agent::start_at(cluster.dir(), "node-t", &servers, &images.pause, "skiffe2e3", placement);
    let admin = pki.issue_client("admin", &masters, DAY).expect("admin cert");
    let config = skiff_pki::kubeconfig("skiff", &format!("https://{}", servers[0]), pki.ca_pem(), "admin", &admin);
    let kubeconfig = dir.path().join("admin.kubeconfig");
    std::fs::write(&kubeconfig, config).expect("kubeconfig");
    let kubectl = Kubectl { kubeconfig, cache: dir.path().join("cache") };
    let ready = kubectl.run(&["wait", "--for=condition=Ready", "node/node-t", "--timeout=90s"]);
    assert!(ready.ok, "node never Ready over TLS: {}\nagent log:\n{}", ready.stderr, agent.log_tail());
    apply(
        &kubectl,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {}\n    command: [\"sh\", \"-c\", \"echo hello over tls; sleep 3600\"]\n",
            images.busybox
        ),
    );
    let wait = kubectl.run(&["wait", "--for=condition=Ready", "pod/hello", "--timeout=90s"]);
    assert!(wait.ok, "pod never Ready: {}\nagent log:\n{}", wait.stderr, agent.log_tail());
    let logs = kubectl.run(&["logs", "hello"]);
    assert_eq!(logs.stdout, "hello over tls\n", "{}", logs.stderr);
    let exec = kubectl.run(&["exec", "hello", "--", "sh", "-c", "echo exec over tls"]);
    assert_eq!(exec.stdout, "exec over tls\n", "{}", exec.stderr);

    // Running a command is `create` on pods/exec even when kubectl asks with a WebSocket GET: a
    // user who may only `get` it is refused both ways.
    apply(
        &kubectl,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: exec-get\n  namespace: default\nrules:\n- apiGroups: [\"\"]\n  resources: [pods, pods/exec]\n  verbs: [get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: jane-exec-get\n  namespace: default\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: exec-get\nsubjects:\n- kind: User\n  name: jane\n",
    );
    let config = skiff_pki::kubeconfig("skiff", &format!("https://{}", servers[0]), pki.ca_pem(), "jane", &jane);
    let jane_config = dir.path().join("jane.kubeconfig");
    std::fs::write(&jane_config, config).expect("kubeconfig");
    let as_jane = Kubectl { kubeconfig: jane_config, cache: dir.path().join("cache-jane") };
    let deadline = Instant::now() + Duration::from_secs(20);
    while as_jane.run(&["auth", "can-i", "get", "pods", "--subresource=exec"]).stdout.trim() != "yes" {
        assert!(Instant::now() < deadline, "the binding never took effect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = as_jane.run(&["exec", "hello", "--", "echo", "should not run"]);
    assert!(!refused.ok && !refused.stdout.contains("should not run"), "{} {}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);

    // Straight to the agent: plain HTTP and no certificate get no answer; a user's certificate
    // from the cluster CA gets 403; the components' certificate gets the logs.
    let url = format!("https://{}/containerLogs/default/hello/app", agent.listen);
    let curl = |args: &[&str]| -> (u16, String) {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert", &ca])
            .args(args)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    };
    assert_eq!(curl(&[&url]).0, 0, "no client certificate, no connection");
    let plain = format!("http://{}/containerLogs/default/hello/app", agent.listen);
    assert_eq!(curl(&[&plain]).0, 0, "plain HTTP gets no answer");
    let (code, body) = curl(&["--cert", &file("jane.crt"), "--key", &file("jane.key"), &url]);
    assert_eq!(code, 403, "{body}");
    let (code, body) = curl(&["--cert", &file("components.crt"), "--key", &file("components.key"), &url]);
    assert_eq!((code, body.as_str()), (200, "hello over tls\n"));
    drop(agent);
}
