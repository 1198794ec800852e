//! Mutual TLS on the Raft port, with real `skiff server` processes and a cluster PKI made by
//! `skiff_pki`: a cluster whose servers hold peer certificates elects a leader, replicates and
//! survives a leader kill; clients without a cluster certificate in an admitted group (plain
//! text, another CA, a node's certificate, no certificate) are refused and change nothing; a
//! server with another CA's certificate, impersonating a member or trying to join, cannot vote or
//! disturb the cluster; and a replaced peer certificate is served without a restart.

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use skiff_pki::Pki;
use skiff_raft::node::NodeStatus;
use skiff_raft::tls::TlsFiles;
use skiff_raft::RemoteStore;
use skiff_store::Consistency;
use skiff_store::Store;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;
use support::eventually;

mod support;

const DAY: Duration = Duration::from_secs(86_400);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_skiff"))
}

/// Writes `issued` as `dir/stem.crt` and `dir/stem.key` and returns them with `ca` as the trust.
fn files(dir: &Path, stem: &str, issued: &skiff_pki::Issued, ca: &Path) -> TlsFiles {
    issued.write(dir, stem).expect("write certificate");
    TlsFiles { ca: ca.to_path_buf(), cert: dir.join(format!("{stem}.crt")), key: dir.join(format!("{stem}.key")) }
}

/// The serial number of the certificate the Raft port at `addr` presents to a client holding
/// `client`'s certificate (empty when the handshake fails).
fn served_serial(addr: &str, client: &TlsFiles) -> String {
    let script = format!(
        "echo | openssl s_client -connect {addr} -CAfile {} -cert {} -key {} 2>/dev/null | openssl x509 -noout -serial",
        client.ca.display(),
        client.cert.display(),
        client.key.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The cluster's state as the admitted admin client sees it: the linearizable revision, and the
/// leader and term every running server reports.
async fn cluster_state(cluster: &ProcessCluster) -> (u64, Vec<(u64, Option<u64>, u64)>) {
    let revision = cluster.client().current_revision(Consistency::Linearizable).await.expect("revision");
    let mut views = Vec::new();
    for s in &cluster.servers {
        if cluster.is_running(s.id) {
            let st: NodeStatus = cluster.status(s.id).await.expect("status");
            views.push((st.id, st.leader, st.term));
        }
    }
    (revision, views)
}

/// Tries to write and to read status through `client`; both must fail, and the cluster must be
/// exactly as before.
async fn assert_refused(cluster: &ProcessCluster, what: &str, client: RemoteStore) {
    let before = cluster_state(cluster).await;
    let key = format!("tls/refused-{}", what.replace(' ', "-"));
    let write = client.create(&key, b"no".to_vec(), "u").await;
    assert!(write.is_err(), "{what}: a write was accepted: {write:?}");
    let status = client.status_of(0).await;
    assert!(status.is_err(), "{what}: status was served: {status:?}");
    let read = client.get("tls/a", Consistency::Local).await;
    assert!(read.is_err(), "{what}: a read was served: {read:?}");
    println!("{what}: refused ({})", write.err().map(|e| e.to_string()).unwrap_or_default());
    let after = cluster_state(cluster).await;
    assert_eq!(before, after, "{what}: the cluster changed");
    let stored = cluster.client().get(&key, Consistency::Linearizable).await.expect("read");
    assert!(stored.is_none(), "{what}: the refused write is stored");
}

/// A `skiff server` process outside the cluster's control, killed when dropped.
struct Rogue {
    child: Child,
}

impl Rogue {
    fn start(id: u64, peers: &str, data_dir: &Path, api: &str, tls: &TlsFiles, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(bin())
            .args(["server", "--id", &id.to_string(), "--peers", peers, "--api-listen", api])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--peer-cert-file")
            .arg(&tls.cert)
            .arg("--peer-key-file")
            .arg(&tls.key)
            .arg("--peer-trusted-ca-file")
            .arg(&tls.ca)
            .env("SKIFF_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rogue server");
        Self { child }
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_port_requires_cluster_peer_or_admin_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::init(d.join("pki")).expect("pki");
    let ca = d.join("pki").join(skiff_pki::CA_CERT);
    let masters = [skiff_pki::MASTERS_GROUP.to_string()];
    // Server i listens on 127.0.0.{10+i} (the test kit's layout); its peer certificate names it.
    let ip = |id: u64| format!("127.0.0.{}", 10 + id);
    let mut server_args = std::collections::BTreeMap::new();
    let mut peer_files = std::collections::BTreeMap::new();
    for id in 1..=3u64 {
        let peer = pki.issue_peer(&format!("skiff-{id}"), &[ip(id)], DAY).expect("peer cert");
        let f = files(d, &format!("peer-{id}"), &peer, &ca);
        server_args.insert(
            id,
            vec![
                "--peer-cert-file".to_string(),
                f.cert.display().to_string(),
                "--peer-key-file".to_string(),
                f.key.display().to_string(),
            ],
        );
        peer_files.insert(id, f);
    }
    let admin = files(d, "admin", &pki.issue_client("admin", &masters, DAY).expect("admin cert"), &ca);
    let options = ClusterOptions {
        extra_args: vec!["--peer-trusted-ca-file".into(), ca.display().to_string()],
        server_args,
        raft_tls: Some(admin.clone()),
        ..ClusterOptions::default()
    };
    let mut cluster = ProcessCluster::start(&bin(), options).await.expect("a cluster with peer mTLS");

    // Elects, replicates to every server, survives a leader kill.
    let leader = cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let a = cluster.client().create("tls/a", b"1".to_vec(), "u").await.expect("write");
    for s in &cluster.servers {
        cluster.wait_applied(s.id, a.revision, Duration::from_secs(10)).await.expect("replicated");
        let local = cluster.client_for(s.id).expect("client").get("tls/a", Consistency::Local).await.expect("read");
        assert_eq!(local.map(|r| r.value.to_vec()), Some(b"1".to_vec()), "server {}", s.id);
    }
    cluster.kill(leader).expect("kill leader");
    let _new_leader = eventually("a new leader over TLS", Duration::from_secs(20), || async {
        cluster.leader().await.filter(|l| *l != leader)
    })
    .await;
    let b = cluster.client().create("tls/b", b"2".to_vec(), "u").await.expect("write after failover");
    cluster.start_server(leader).expect("restart");
    cluster.wait_applied(leader, b.revision, Duration::from_secs(30)).await.expect("old leader catches up");
    cluster.wait_ready(Duration::from_secs(30)).await.expect("ready");
    let leader = cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    println!("replicated over mutual TLS; leader {leader}");

    // `skiff member list` with the admin certificate works; without TLS flags it does not.
    let first = cluster.server(1).expect("server").raft_addr.clone();
    let member = |tls: bool| {
        let mut cmd = Command::new(bin());
        cmd.args(["member", "list", "-o", "json", "--server", &first]).env("RUST_BACKTRACE", "0");
        if tls {
            cmd.arg("--ca-file").arg(&ca).arg("--cert-file").arg(&admin.cert).arg("--key-file").arg(&admin.key);
        }
        cmd.output().expect("skiff member")
    };
    let listed = member(true);
    assert!(listed.status.success(), "member list: {}", String::from_utf8_lossy(&listed.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");
    assert!(!member(false).status.success(), "member list in plain text succeeded");

    // (a) plain text, (b) another CA, (c) a cluster certificate of a group the port does not
    // admit, (d) no certificate at all: refused, and nothing changes.
    let endpoints = vec![first.clone()];
    let timeout = Duration::from_secs(3);
    assert_refused(&cluster, "plain text", RemoteStore::new(endpoints.clone(), timeout).expect("client")).await;

    let other = Pki::init(d.join("other-pki")).expect("other pki");
    let other_ca = d.join("other-pki").join(skiff_pki::CA_CERT);
    let stranger = files(d, "stranger", &other.issue_client("admin", &masters, DAY).expect("cert"), &ca);
    let client = RemoteStore::with_tls(endpoints.clone(), timeout, &stranger).expect("client");
    assert_refused(&cluster, "another CA", client).await;

    let nodes = ["system:nodes".to_string()];
    let node = files(d, "node", &pki.issue_client("system:node:x", &nodes, DAY).expect("node cert"), &ca);
    let client = RemoteStore::with_tls(endpoints.clone(), timeout, &node).expect("client");
    assert_refused(&cluster, "a node certificate", client).await;
    let api = files(d, "api", &pki.issue_server("api", &[ip(1)], DAY).expect("serving cert"), &ca);
    let client = RemoteStore::with_tls(endpoints.clone(), timeout, &api).expect("client");
    assert_refused(&cluster, "an API serving certificate", client).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in skiff_pki::reload::read_certs(&ca).expect("ca") {
        roots.add(cert).expect("root");
    }
    let mut anonymous = rustls::ClientConfig::builder_with_provider(skiff_client::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];
    let client = RemoteStore::with_tls_config(endpoints.clone(), timeout, Arc::new(anonymous)).expect("client");
    assert_refused(&cluster, "no certificate", client).await;

    // (e) Servers holding another CA's peer certificates: one impersonates a member (a copy of
    // that member's data dir, at its address, so it campaigns for votes), one tries to join as a
    // new server. Neither gets a vote or a connection; the leader and the term stay.
    let victim = cluster.servers.iter().map(|s| s.id).find(|id| *id != leader).expect("a follower");
    cluster.kill(victim).expect("kill follower");
    let victim_slot = cluster.server(victim).expect("server");
    let (victim_ip, victim_api, victim_data) =
        (victim_slot.ip.clone(), victim_slot.api_addr.clone(), victim_slot.data_dir.clone());
    let rogue_data = d.join("rogue-data");
    let copied = Command::new("cp").arg("-a").arg(&victim_data).arg(&rogue_data).status().expect("cp");
    assert!(copied.success(), "copy the data dir");
    let newcomer_port =
        std::net::TcpListener::bind(format!("{}:0", ip(4))).and_then(|l| l.local_addr()).expect("a free port").port();
    let peers: Vec<String> = cluster.servers.iter().map(|s| format!("{}={}", s.id, s.raft_addr)).collect();
    let before = cluster_state(&cluster).await;
    let rogue_peer = files(d, "rogue", &other.issue_peer("rogue", &[victim_ip], DAY).expect("cert"), &other_ca);
    let newcomer_peer = files(d, "newcomer", &other.issue_peer("new", &[ip(4)], DAY).expect("cert"), &other_ca);
    let impostor =
        Rogue::start(victim, &peers.join(","), &rogue_data, &victim_api, &rogue_peer, &d.join("impostor.log"));
    let newcomer_raft = format!("{}:{newcomer_port}", ip(4));
    let newcomer_peers = format!("{},4={newcomer_raft}", peers.join(","));
    let newcomer = Rogue::start(
        4,
        &newcomer_peers,
        &d.join("newcomer-data"),
        &format!("{}:0", ip(4)),
        &newcomer_peer,
        &d.join("newcomer.log"),
    );
    // Many election timeouts (150-300 ms).
    tokio::time::sleep(Duration::from_secs(5)).await;
    // What they think, asked with their own CA.
    let other_admin = files(d, "other-admin", &other.issue_client("admin", &masters, DAY).expect("cert"), &other_ca);
    let victim_raft = cluster.server(victim).expect("server").raft_addr.clone();
    let impostor_view = RemoteStore::with_tls(vec![victim_raft], timeout, &other_admin)
        .expect("client")
        .status_of(0)
        .await
        .expect("the impostor answers its own CA's admin");
    let newcomer_view = RemoteStore::with_tls(vec![newcomer_raft], timeout, &other_admin)
        .expect("client")
        .status_of(0)
        .await
        .expect("the newcomer answers its own CA's admin");
    println!("impostor: {impostor_view:?}\nnewcomer: {newcomer_view:?}");
    let cluster_term = before.1.first().map(|v| v.2).expect("a view");
    assert_ne!(impostor_view.role, "leader", "the impostor won an election");
    assert!(impostor_view.term > cluster_term, "the impostor never campaigned: {impostor_view:?}");
    assert!(!newcomer_view.initialized, "the newcomer joined something: {newcomer_view:?}");
    let after = cluster_state(&cluster).await;
    assert_eq!(before, after, "servers with another CA's certificates changed the cluster");
    let members = cluster.status(leader).await.expect("status").members;
    assert_eq!(members.len(), 3, "{members:?}");
    drop(impostor);
    drop(newcomer);
    // The real member comes back and catches up.
    let c = cluster.client().create("tls/c", b"3".to_vec(), "u").await.expect("write");
    cluster.start_server(victim).expect("restart the member");
    cluster.wait_applied(victim, c.revision, Duration::from_secs(30)).await.expect("the member catches up");

    // A new peer certificate in the same files is used without a restart.
    let reloaded = cluster.servers.iter().map(|s| s.id).find(|id| *id != leader).expect("a follower");
    let addr = cluster.server(reloaded).expect("server").raft_addr.clone();
    let before = served_serial(&addr, &admin);
    assert!(before.starts_with("serial="), "{before:?}");
    pki.issue_peer(&format!("skiff-{reloaded}"), &[ip(reloaded)], DAY)
        .expect("new peer cert")
        .write(d, &format!("peer-{reloaded}"))
        .expect("write");
    let after = eventually("the new peer certificate to be served", Duration::from_secs(15), || async {
        let now = served_serial(&addr, &admin);
        (now.starts_with("serial=") && now != before).then_some(now)
    })
    .await;
    println!("peer certificate of server {reloaded} reloaded: {before} -> {after}");
    let expected = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&peer_files[&reloaded].cert)
        .output()
        .expect("openssl");
    assert_eq!(after, String::from_utf8_lossy(&expected.stdout).trim());
    // The server still replicates and serves over new connections.
    let e = cluster.client().create("tls/e", b"5".to_vec(), "u").await.expect("write after reload");
    cluster.wait_applied(reloaded, e.revision, Duration::from_secs(10)).await.expect("replicated after reload");
    let fresh = cluster.client_for(reloaded).expect("client");
    assert!(fresh.get("tls/e", Consistency::Linearizable).await.expect("read").is_some());
}
