//! Secrets encrypted at rest (`skiff server --encryption-key-file`), with real processes and the
//! installed kubectl: a Secret's value never appears in the bytes of any file under the data
//! dirs (Raft log, RocksDB state, snapshots), in raw or base64 form, while a ConfigMap's value
//! does (the control that proves the search can see stored values at all). Then the key is
//! rotated through the followed key file: old Secrets stay readable, a rewritten Secret is stored
//! under the new key, and once the old key is gone everything still reads, also after restarts.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_pki::EncryptionKey;
use skiff_pki::Pki;
use skiff_store::Consistency;
use skiff_store::Store;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;
use support::eventually;
use support::Kubectl;

mod support;

const SECRET_KEY: &str = "/registry/core/secrets/default/db-password";
const CONFIGMAP_KEY: &str = "/registry/core/configmaps/default/plain-config";

fn random_text() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect()
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// The files under `dirs` whose bytes contain `needle`. Also counts how many files were read.
fn grep(dirs: &[PathBuf], needle: &[u8]) -> (Vec<PathBuf>, usize) {
    let mut hits = Vec::new();
    let mut read = 0;
    for dir in dirs {
        for file in files_under(dir) {
            // A file may vanish under us (RocksDB compaction); a missing file holds nothing.
            let Ok(bytes) = std::fs::read(&file) else { continue };
            read += 1;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(file);
            }
        }
    }
    (hits, read)
}

fn write_key_file(path: &Path, keys: &[&EncryptionKey]) {
    use std::os::unix::fs::OpenOptionsExt;
    let text: String = keys.iter().map(|k| format!("{}\n", k.to_line())).collect();
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).expect("create key file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("write key file");
    file.sync_all().expect("sync key file");
    std::fs::rename(&tmp, path).expect("replace key file");
}

/// Waits until every server's log says the key file was reloaded `times` times.
async fn wait_reloaded(cluster: &ProcessCluster, times: usize) {
    for s in &cluster.servers {
        eventually(&format!("server {} to reload the key file", s.id), Duration::from_secs(30), || async {
            let log = std::fs::read_to_string(&s.log).unwrap_or_default();
            (log.matches("encryption keys reloaded").count() >= times).then_some(())
        })
        .await;
    }
}

fn wait_for_bootstrap(k: &Kubectl) {
    for _ in 0..100 {
        if k.run(&["get", "ns", "default", "-o", "name"]).ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the default namespace never appeared");
}

/// The secret's value as kubectl decodes it.
fn read_secret(k: &Kubectl) -> String {
    k.ok(&["get", "secret", "db-password", "-o", "go-template={{.data.password | base64decode}}"])
}

async fn raw_value(cluster: &ProcessCluster, key: &str) -> Vec<u8> {
    let store = cluster.client();
    store.get(key, Consistency::Linearizable).await.expect("raw read").expect("present").value.to_vec()
}

async fn restart_all(cluster: &mut ProcessCluster) {
    let ids: Vec<u64> = cluster.servers.iter().map(|s| s.id).collect();
    for id in &ids {
        cluster.kill(*id).expect("kill");
    }
    for id in &ids {
        cluster.start_server(*id).expect("start");
    }
    cluster.wait_ready(Duration::from_secs(60)).await.expect("ready after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_reach_the_data_dirs_and_keys_rotate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(dir.path().join("pki")).expect("pki");
    let key_file = pki.dir().join(skiff_pki::ENCRYPTION_KEYS);
    let key1 = skiff_pki::read_encryption_keys(&key_file).expect("init wrote a key file").remove(0);
    assert_eq!(key1.name, "key1");
    let options = ClusterOptions {
        extra_args: vec![
            "--encryption-key-file".into(),
            key_file.display().to_string(),
            // Small, so snapshots (DATA_DIR/snapshot) are written and searched too.
            "--snapshot-logs".into(),
            "40".into(),
            "--logs-after-snapshot".into(),
            "10".into(),
        ],
        ..ClusterOptions::default()
    };
    let mut cluster = ProcessCluster::start(&skiff_binary(), options).await.expect("cluster");
    cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let addr = cluster.server(1).expect("server").api_addr.clone();
    let k = Kubectl::new(dir.path(), &addr);
    wait_for_bootstrap(&k);
    let data_dirs: Vec<PathBuf> = cluster.servers.iter().map(|s| s.data_dir.clone()).collect();

    let secret = random_text();
    let config = random_text();
    k.ok(&["create", "secret", "generic", "db-password", &format!("--from-literal=password={secret}")]);
    k.ok(&["create", "configmap", "plain-config", &format!("--from-literal=value={config}")]);
    assert_eq!(read_secret(&k), secret, "kubectl reads the secret back");
    let secret_b64 = k.ok(&["get", "secret", "db-password", "-o", "jsonpath={.data.password}"]);
    assert!(!secret_b64.is_empty() && secret_b64 != secret);

    // What the store itself holds: ciphertext for the Secret, plain JSON for the ConfigMap.
    let stored = raw_value(&cluster, SECRET_KEY).await;
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "stored secret: {:?}", String::from_utf8_lossy(&stored));
    assert!(String::from_utf8_lossy(&raw_value(&cluster, CONFIGMAP_KEY).await).contains(&config));

    // Enough writes for every server to take a snapshot after the Secret was written.
    let api = Client::new(&addr);
    for i in 0..60 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("filler-{i}")},
            "data": {"n": i.to_string()}});
        let _: Value = api.create("/api/v1/namespaces/default/configmaps", &cm).await.expect("filler");
    }
    for d in &data_dirs {
        let snapshot = d.join("snapshot");
        eventually(&format!("a snapshot in {}", d.display()), Duration::from_secs(30), || async {
            snapshot.exists().then_some(())
        })
        .await;
    }
    // Restarting makes every server reopen (and replay) what it has on disk.
    restart_all(&mut cluster).await;
    wait_for_bootstrap(&k);
    assert_eq!(read_secret(&k), secret, "the secret reads back after a restart of every server");

    let (hits, files) = grep(&data_dirs, config.as_bytes());
    assert!(files > 10, "searched only {files} files");
    for d in &data_dirs {
        assert!(
            hits.iter().any(|h| h.starts_with(d)),
            "control: the ConfigMap value is not found under {}",
            d.display()
        );
    }
    assert!(hits.iter().any(|h| h.ends_with("snapshot")), "control: the ConfigMap value is in a snapshot: {hits:?}");
    for needle in [&secret, &secret_b64] {
        let (hits, _) = grep(&data_dirs, needle.as_bytes());
        assert!(hits.is_empty(), "the secret value {needle:?} is stored in plaintext in {hits:?}");
    }
    let (sealed, _) = grep(&data_dirs, b"k8s:enc:aesgcm:v1:key1:");
    assert!(!sealed.is_empty(), "no sealed value on disk at all");

    // Rotation, step 1: a new first key; the old one stays for reading.
    let key2 = EncryptionKey::generate("key2").expect("key");
    write_key_file(&key_file, &[&key2, &key1]);
    wait_reloaded(&cluster, 1).await;
    assert_eq!(read_secret(&k), secret, "written under key1, read with key2 first");
    // Step 2: rewrite every Secret, upstream's way (`kubectl replace` of the unchanged objects:
    // the API writes an unchanged Secret whose stored form is sealed with an older key); it is
    // now sealed with key2.
    let before = raw_value(&cluster, SECRET_KEY).await;
    assert!(before.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
    let all = k.ok(&["get", "secrets", "-A", "-o", "json"]);
    k.ok_stdin(&["replace", "--validate=false", "-f", "-"], &all);
    let stored = raw_value(&cluster, SECRET_KEY).await;
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key2:"), "after replace: {:?}", String::from_utf8_lossy(&stored));
    let (sealed, _) = grep(&data_dirs, b"k8s:enc:aesgcm:v1:key2:");
    assert!(!sealed.is_empty(), "the key2 ciphertext is on disk");
    // Step 3: drop the old key. Everything still reads, on every server, also after a restart.
    write_key_file(&key_file, &[&key2]);
    wait_reloaded(&cluster, 2).await;
    assert_eq!(read_secret(&k), secret, "readable with key2 alone");
    restart_all(&mut cluster).await;
    for s in &cluster.servers {
        let k = Kubectl::new(dir.path(), &s.api_addr);
        wait_for_bootstrap(&k);
        assert_eq!(read_secret(&k), secret, "server {} reads the rotated secret after a restart", s.id);
    }
    // The whole cluster directory: the data dirs again, and the servers' logs.
    for needle in [&secret, &secret_b64] {
        let (hits, _) = grep(&[cluster.dir().to_path_buf()], needle.as_bytes());
        assert!(hits.is_empty(), "after rotation the secret value {needle:?} is in plaintext in {hits:?}");
    }
}
