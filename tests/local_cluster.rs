//! `skiff local up` / `skiff local down` and `skiff member list`, as a user runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_skiff"))
}

fn skiff(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run skiff");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pids(cluster_json: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(cluster_json).expect("cluster.json");
    v["servers"].as_array().expect("servers").iter().filter_map(|s| s["pid"].as_u64()).collect()
}

/// Brings the local cluster down when the test ends before its own `local down` (a failed
/// assertion), so no servers, agent, containerd or bridge outlive it and disturb later tests.
struct DownOnDrop(String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if std::path::Path::new(&format!("{}/cluster.json", self.0)).exists() {
            let _ = skiff(&["local", "down", "--dir", &self.0]);
        }
    }
}

#[test]
fn local_up_lists_members_and_down_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("local");
    let d = d.to_str().expect("utf8");
    let _down = DownOnDrop(d.to_string());
    let (ok, out, err) = skiff(&["local", "up", "--dir", d, "--servers", "3"]);
    assert!(ok, "local up failed: {out}\n{err}");
    assert!(out.contains("skiff local cluster is up: 3 servers and 1 agent"), "{out}");
    let state = std::fs::read_to_string(format!("{d}/cluster.json")).expect("cluster.json");
    let pids = pids(&state);
    assert_eq!(pids.len(), 3);
    assert!(std::path::Path::new(&format!("{d}/kubeconfig")).exists(), "kubeconfig written");
    let kubeconfig = std::fs::read_to_string(format!("{d}/kubeconfig")).expect("kubeconfig");
    assert!(kubeconfig.contains("server: \"https://127.0.0.1:"), "an https server URL: {kubeconfig}");
    assert!(kubeconfig.contains("client-certificate-data:"), "admin credentials embedded");
    let mode = std::fs::metadata(format!("{d}/kubeconfig")).expect("kubeconfig").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the admin kubeconfig is readable by its owner only");
    assert!(std::path::Path::new(&format!("{d}/pki/ca.crt")).exists(), "the cluster CA is in DIR/pki");

    // Nothing speaks plain HTTP, and anonymous callers get health and version only.
    let v: serde_json::Value = serde_json::from_str(&state).expect("json");
    for server in v["servers"].as_array().expect("servers") {
        let api = server["api"].as_str().expect("api address");
        let (code, body) = curl(&[&format!("http://{api}/api/v1/pods")]);
        assert_eq!(code, 400, "plain HTTP to {api}: {body}");
        assert!(body.contains("Client sent an HTTP request to an HTTPS server."), "{body}");
        assert_eq!(curl(&["-k", &format!("https://{api}/api/v1/pods")]).0, 401, "anonymous list of pods on {api}");
        assert_eq!(curl(&["-k", &format!("https://{api}/livez")]).0, 200, "anonymous /livez on {api}");
    }

    // A second `up` on the same dir refuses instead of starting a second cluster.
    let (ok, _, err) = skiff(&["local", "up", "--dir", d]);
    assert!(!ok && err.contains("already holds a cluster"), "{err}");

    let servers: Vec<String> =
        v["servers"].as_array().expect("servers").iter().filter_map(|s| s["raft"].as_str().map(String::from)).collect();
    // The Raft port speaks only mutual TLS: `skiff member` needs the admin certificate.
    let pki = format!("{d}/pki");
    let (ca, cert, key) = (format!("{pki}/ca.crt"), format!("{pki}/admin.crt"), format!("{pki}/admin.key"));
    let creds = ["--ca-file", &ca, "--cert-file", &cert, "--key-file", &key];
    let (ok, out, err) = skiff(&["member", "list", "--server", &servers[0]]);
    assert!(!ok, "member list without a certificate is refused: {out}\n{err}");
    let (ok, out, err) =
        skiff(&[&["member", "list", "--server", &servers.join(","), "-o", "json"][..], &creds].concat());
    assert!(ok, "member list failed: {err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("member list json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows.iter().filter(|r| r["role"] == "leader").count(), 1, "exactly one leader: {out}");
    assert!(rows.iter().all(|r| r["voter"] == true), "{out}");
    let (ok, table, _) = skiff(&[&["member", "list", "--server", &servers[0]][..], &creds].concat());
    assert!(ok && table.starts_with("ID") && table.contains("leader"), "{table}");

    // The seeds' story, as the README tells it: the manifest unchanged (`image: nginx`, served
    // by the local registry's offline stand-in), Running with an IP that answers.
    let kubectl = |args: &[&str]| {
        let out = Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(format!("{d}/kubeconfig"))
            .args(args)
            .output()
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pod.yaml");
    let (ok, out, err) = kubectl(&["apply", "-f", manifest]);
    assert!(ok, "apply: {out}\n{err}");
    let (ok, out, err) = kubectl(&["wait", "--for=condition=Ready", "pod/nginx", "--timeout=120s"]);
    assert!(ok, "nginx never Ready: {out}\n{err}");
    let (ok, ip, err) = kubectl(&["get", "pod", "nginx", "-o", "jsonpath={.status.podIP}"]);
    assert!(ok && ip.starts_with("10.244."), "pod IP {ip:?}: {err}");
    let (_, wide, _) = kubectl(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains("Running") && wide.contains(&ip) && wide.contains("skiff-local-1"), "{wide}");
    let page = http_get(&ip);
    assert!(page.contains("Welcome to skiff"), "{page}");
    // Through the API servers to the agent's TLS endpoint, with the API servers' identity.
    let (ok, out, err) = kubectl(&["logs", "nginx"]);
    assert!(ok, "logs: {out}\n{err}");
    let (ok, out, err) = kubectl(&["exec", "nginx", "--", "ls", "/"]);
    assert!(ok && out.contains("bin"), "exec: {out}\n{err}");
    // The pod got its service account's credentials where in-cluster clients look for them: a
    // token the agent requested (bound to the pod), the cluster CA and its namespace.
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let (ok, namespace, err) = kubectl(&["exec", "nginx", "--", "cat", &format!("{sa}/namespace")]);
    assert!(ok && namespace == "default", "namespace file {namespace:?}: {err}");
    let (ok, ca, err) = kubectl(&["exec", "nginx", "--", "cat", &format!("{sa}/ca.crt")]);
    let cluster_ca = std::fs::read_to_string(format!("{d}/pki/ca.crt")).expect("ca");
    assert!(ok && ca == cluster_ca, "ca.crt is the cluster CA: {err}");
    let (ok, token, err) = kubectl(&["exec", "nginx", "--", "cat", &format!("{sa}/token")]);
    assert!(ok && token.split('.').count() == 3, "a JWT: {token:?} {err}");
    // The token authenticates as the pod's service account.
    let api = format!("https://{}", v["servers"][0]["api"].as_str().expect("api address"));
    let review = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    let (code, body) = curl(&[
        "--cacert",
        &format!("{d}/pki/ca.crt"),
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        review,
        &format!("{api}/apis/authentication.k8s.io/v1/selfsubjectreviews"),
    ]);
    assert_eq!(code, 201, "{body}");
    assert!(body.contains("system:serviceaccount:default:default"), "{body}");

    let (ok, out, err) = skiff(&["local", "down", "--dir", d]);
    assert!(ok, "local down failed: {out}\n{err}");
    let links = Command::new("ip").args(["link", "show", "skiff0"]).output().expect("ip");
    assert!(!links.status.success(), "the agent's bridge is removed");
    assert!(!std::path::Path::new(&format!("{d}/agent-1")).exists(), "the agent's data is removed");
    for pid in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
        assert!(!alive, "server process {pid} still running after down");
    }
    assert!(!std::path::Path::new(&format!("{d}/cluster.json")).exists());
    assert!(!std::path::Path::new(&format!("{d}/server-1")).exists(), "data dirs removed");
    assert!(!std::path::Path::new(&format!("{d}/pki")).exists(), "the PKI `up` created is removed");
    assert!(!std::path::Path::new(&format!("{d}/kubeconfig")).exists(), "the kubeconfig is removed");
}

/// `curl -s` with `args`: the HTTP status (0 when there was no HTTP answer) and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn http_get(ip: &str) -> String {
    use std::io::Read;
    use std::io::Write;
    let addr: std::net::SocketAddr = format!("{ip}:80").parse().expect("address");
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(3)));
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}
