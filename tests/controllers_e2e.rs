//! Controllers in real `skiff server` processes.

use std::time::Duration;
use std::time::Instant;

use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_testkit::cluster::skiff_binary;
use skiff_testkit::ClusterOptions;
use skiff_testkit::ProcessCluster;

async fn wait_for_account(api: &Client, ns: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(sa) = api.get::<Value>(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default")).await {
            return sa;
        }
        assert!(Instant::now() < deadline, "no default ServiceAccount in {ns}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every namespace gets a `default` ServiceAccount, gets it back when it is deleted, and new
/// namespaces still get one after the leader is killed.
#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_has_a_default_service_account_across_a_leader_kill() {
    let mut cluster = ProcessCluster::start(&skiff_binary(), ClusterOptions::default()).await.expect("cluster");
    let leader = cluster.wait_leader(Duration::from_secs(20)).await.expect("leader");
    let other = cluster.servers.iter().map(|s| s.id).find(|id| *id != leader).expect("a follower");
    let api = Client::new(&cluster.server(other).expect("server").api_addr);
    for ns in ["default", "kube-system"] {
        wait_for_account(&api, ns, Duration::from_secs(20)).await;
    }
    let _: Value = api
        .create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .await
        .expect("create namespace");
    let first = wait_for_account(&api, "team", Duration::from_secs(10)).await;
    let uid = first["metadata"]["uid"].as_str().expect("uid").to_string();
    let _: Value = api
        .create("/api/v1/namespaces/team/serviceaccounts", &json!({"metadata": {"name": "robot"}}))
        .await
        .expect("sa");
    delete(&api, "/api/v1/namespaces/team/serviceaccounts/default").await;
    let again = wait_for_account(&api, "team", Duration::from_secs(10)).await;
    assert_ne!(again["metadata"]["uid"].as_str(), Some(uid.as_str()), "a new account replaced the deleted one");

    cluster.kill(leader).expect("kill the leader");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "after-kill"}});
    let deadline = Instant::now() + Duration::from_secs(15);
    while api.create::<_, Value>("/api/v1/namespaces", &ns).await.is_err() {
        assert!(Instant::now() < deadline, "the namespace create was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_account(&api, "after-kill", Duration::from_secs(15)).await;
}

async fn delete(api: &Client, path: &str) {
    // The client has no DELETE helper yet; a raw request does.
    let addr = api.addr().to_string();
    let (code, body) = skiff_testkit::cluster::http_request(&addr, "DELETE", path, None, b"").await.expect("an answer");
    assert_eq!(code, 200, "{body}");
}
