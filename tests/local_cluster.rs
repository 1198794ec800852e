//! `skiff local up` / `skiff local down` and `skiff member list`, as a user runs them.

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

#[test]
fn local_up_lists_members_and_down_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("local");
    let d = d.to_str().expect("utf8");
    let (ok, out, err) = skiff(&["local", "up", "--dir", d, "--servers", "3"]);
    assert!(ok, "local up failed: {out}\n{err}");
    assert!(out.contains("skiff local cluster is up: 3 servers and 1 agent"), "{out}");
    let state = std::fs::read_to_string(format!("{d}/cluster.json")).expect("cluster.json");
    let pids = pids(&state);
    assert_eq!(pids.len(), 3);
    assert!(std::path::Path::new(&format!("{d}/kubeconfig")).exists(), "kubeconfig written");

    // A second `up` on the same dir refuses instead of starting a second cluster.
    let (ok, _, err) = skiff(&["local", "up", "--dir", d]);
    assert!(!ok && err.contains("already holds a cluster"), "{err}");

    let v: serde_json::Value = serde_json::from_str(&state).expect("json");
    let servers: Vec<String> =
        v["servers"].as_array().expect("servers").iter().filter_map(|s| s["raft"].as_str().map(String::from)).collect();
    let (ok, out, err) = skiff(&["member", "list", "--server", &servers.join(","), "-o", "json"]);
    assert!(ok, "member list failed: {err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("member list json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows.iter().filter(|r| r["role"] == "leader").count(), 1, "exactly one leader: {out}");
    assert!(rows.iter().all(|r| r["voter"] == true), "{out}");
    let (ok, table, _) = skiff(&["member", "list", "--server", &servers[0]]);
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
