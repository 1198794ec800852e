//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount, and
//! gets it back if it is deleted, as upstream's controller-manager ensures.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::Reflector;
use skiff_store::Store;

/// The account every namespace gets.
pub const DEFAULT_ACCOUNT: &str = "default";

/// The namespaces that should get a `default` ServiceAccount now: active (not being deleted) and
/// without one.
pub fn missing_default_accounts(namespaces: &[Namespace], accounts: &[ServiceAccount]) -> Vec<String> {
    let have: BTreeSet<&str> = accounts
        .iter()
        .filter(|sa| sa.metadata.name.as_deref() == Some(DEFAULT_ACCOUNT))
        .filter_map(|sa| sa.metadata.namespace.as_deref())
        .collect();
    namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        .filter_map(|ns| ns.metadata.name.as_deref())
        .filter(|name| !have.contains(name))
        .map(str::to_string)
        .collect()
}

/// Runs the controller until the task is dropped: only while this server leads, fenced.
pub async fn run(client: Client, leadership: Arc<dyn Store>, retry: Duration) {
    skiff_store::leadership::run_while_leading(leadership, Duration::from_millis(50), |token| {
        lead(client.clone(), token, retry)
    })
    .await;
}

async fn lead(client: Client, token: u64, retry: Duration) {
    let writer = client.fenced(token);
    let namespaces = Reflector::<Namespace>::start(client.clone(), "/api/v1/namespaces");
    let accounts = Reflector::<ServiceAccount>::start(client, "/api/v1/serviceaccounts");
    loop {
        tokio::select! {
            _ = namespaces.changed() => {}
            _ = accounts.changed() => {}
            _ = tokio::time::sleep(retry) => {}
        }
        if !namespaces.synced() || !accounts.synced() {
            continue;
        }
        for ns in missing_default_accounts(&namespaces.snapshot(), &accounts.snapshot()) {
            let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_ACCOUNT, "namespace": ns}});
            let created: Result<Value, _> =
                writer.create(&format!("/api/v1/namespaces/{ns}/serviceaccounts"), &account).await;
            match created {
                Ok(_) => tracing::info!(namespace = %ns, "created the default ServiceAccount"),
                // Already there (the cache lags), or the namespace is going away: nothing to do.
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => tracing::debug!(namespace = %ns, "default ServiceAccount: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str, terminating: bool) -> Namespace {
        let mut ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("fixture");
        if terminating {
            ns.status = serde_json::from_value(json!({"phase": "Terminating"})).ok();
        }
        ns
    }

    fn account(ns: &str, name: &str) -> ServiceAccount {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).expect("fixture")
    }

    #[test]
    fn active_namespaces_without_a_default_account_need_one() {
        let namespaces = [namespace("a", false), namespace("b", false), namespace("c", false), namespace("gone", true)];
        let accounts = [account("a", "default"), account("b", "robot"), account("c", "default")];
        assert_eq!(missing_default_accounts(&namespaces, &accounts), vec!["b".to_string()]);
        assert!(missing_default_accounts(&namespaces[..1], &accounts).is_empty());
        // A `default` account in another namespace does not count.
        assert_eq!(missing_default_accounts(&[namespace("d", false)], &accounts), vec!["d".to_string()]);
    }
}
