//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount, and
//! gets it back if it is deleted, as upstream's controller-manager ensures.

use std::collections::BTreeSet;

use serde_json::json;

use crate::action::path;
use crate::Action;
use crate::Config;
use crate::Snapshot;

/// The account every namespace gets.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Creates the `default` ServiceAccount of every active (not terminating) namespace that lacks one.
pub fn reconcile(snapshot: &Snapshot, _config: &Config) -> Vec<Action> {
    let have: BTreeSet<&str> = snapshot
        .service_accounts
        .iter()
        .filter(|sa| sa.metadata.name.as_deref() == Some(DEFAULT_ACCOUNT))
        .filter_map(|sa| sa.metadata.namespace.as_deref())
        .collect();
    snapshot
        .namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        .filter_map(|ns| ns.metadata.name.as_deref())
        .filter(|name| !have.contains(name))
        .map(|ns| Action::Create {
            collection: path::core("serviceaccounts", Some(ns), None),
            object: json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_ACCOUNT, "namespace": ns}}),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::core::v1::ServiceAccount;

    use super::*;

    fn namespace(name: &str, terminating: bool) -> Arc<Namespace> {
        let mut ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("fixture");
        if terminating {
            ns.status = serde_json::from_value(json!({"phase": "Terminating"})).ok();
        }
        Arc::new(ns)
    }

    fn account(ns: &str, name: &str) -> Arc<ServiceAccount> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).expect("fixture"))
    }

    fn wanted(namespaces: Vec<Arc<Namespace>>, accounts: Vec<Arc<ServiceAccount>>) -> Vec<String> {
        let mut snapshot = Snapshot::empty(jiff::Timestamp::UNIX_EPOCH);
        snapshot.namespaces = namespaces;
        snapshot.service_accounts = accounts;
        reconcile(&snapshot, &Config::default()).into_iter().map(|a| a.target()).collect()
    }

    #[test]
    fn active_namespaces_without_a_default_account_need_one() {
        let namespaces =
            vec![namespace("a", false), namespace("b", false), namespace("c", false), namespace("gone", true)];
        let accounts = vec![account("a", "default"), account("b", "robot"), account("c", "default")];
        assert_eq!(wanted(namespaces.clone(), accounts.clone()), vec!["/api/v1/namespaces/b/serviceaccounts"]);
        assert!(wanted(namespaces[..1].to_vec(), accounts.clone()).is_empty());
        // A `default` account in another namespace does not count.
        assert_eq!(wanted(vec![namespace("d", false)], accounts), vec!["/api/v1/namespaces/d/serviceaccounts"]);
    }
}
