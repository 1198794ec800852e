//! A server whose resident prefixes are served from memory (see `skiff_raft::resident`) keeps
//! every promise of the `Store` contract for keys under them, across a restart too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use skiff_raft::node::NodeConfig;
use skiff_raft::node::RaftNode;
use skiff_store::Consistency;
use skiff_store::Store;

async fn start(dir: &std::path::Path, addr: std::net::SocketAddr) -> Arc<RaftNode> {
    let peers = BTreeMap::from([(1, addr.to_string())]);
    let mut config = NodeConfig::new(1, dir.join("data"), peers, addr);
    config.resident_prefixes = vec!["/resident/".into()];
    // A node just shut down in this process lets go of its database once its tasks have ended.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let node = loop {
        match RaftNode::start(config.clone()).await {
            Ok(node) => break node,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("start: {e}"),
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.current_revision(Consistency::Linearizable).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the single server never became leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_keys_keep_the_store_contract_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");

    let node = start(dir.path(), addr).await;
    skiff_store::conformance::run_all(node.as_ref(), "/resident/conf").await;
    skiff_store::conformance::run_concurrent(node.clone(), "/resident/conf").await;
    let kept = node.create("/resident/kept", b"k1".to_vec(), "uid-k").await.expect("create");
    let gone = node.create("/resident/gone", b"g1".to_vec(), "uid-g").await.expect("create");
    node.delete(&gone.key, skiff_store::Precondition::default()).await.expect("delete");
    node.shutdown().await;
    drop(node);

    // Reopened, the map is rebuilt from what was stored (and from the log's unflushed tail).
    let node = start(dir.path(), addr).await;
    let local = node.get("/resident/kept", Consistency::Local).await.expect("get");
    assert_eq!(local, Some(kept), "a resident key survives the restart unchanged");
    assert_eq!(
        node.get("/resident/gone", Consistency::Local).await.expect("get"),
        None,
        "and a deleted one stays gone"
    );
    node.shutdown().await;
}
