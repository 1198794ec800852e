//! The root CA publisher: every active namespace has a `kube-root-ca.crt` ConfigMap holding the
//! cluster CA (`ca.crt`), which the `kube-api-access-*` volume puts into pods so that clients in
//! a pod can verify the API server. A ConfigMap whose CA differs (edited, or the CA rotated) is
//! put back.

use serde_json::json;

use crate::action::path;
use crate::Action;
use crate::Config;
use crate::Snapshot;

/// The ConfigMap every namespace gets.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key.
pub const CA_KEY: &str = "ca.crt";

pub fn reconcile(snapshot: &Snapshot, config: &Config) -> Vec<Action> {
    let Some(ca) = config.root_ca.as_deref() else { return Vec::new() };
    let mut actions = Vec::new();
    for ns in snapshot.namespaces.iter() {
        let Some(name) = ns.metadata.name.as_deref() else { continue };
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            continue;
        }
        let existing = snapshot.config_maps.iter().find(|cm| {
            cm.metadata.namespace.as_deref() == Some(name) && cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP)
        });
        match existing {
            None => actions.push(Action::Create {
                collection: path::core("configmaps", Some(name), None),
                object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": name,
                        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {CA_KEY: ca}}),
            }),
            Some(cm) if cm.data.as_ref().and_then(|d| d.get(CA_KEY)).map(String::as_str) != Some(ca) => {
                actions.push(Action::MergePatch {
                    path: path::core("configmaps", Some(name), Some(ROOT_CA_CONFIG_MAP)),
                    patch: json!({"data": {CA_KEY: ca}}),
                })
            }
            Some(_) => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn every_active_namespace_gets_the_current_ca() {
        let mut snapshot = Snapshot::empty(jiff::Timestamp::now());
        for (name, phase) in [("a", "Active"), ("b", "Active"), ("gone", "Terminating"), ("c", "Active")] {
            snapshot.namespaces.push(Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": phase}})).expect("ns"),
            ));
        }
        let cm = |ns: &str, ca: &str| {
            Arc::new(
                serde_json::from_value(
                    json!({"metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": ns}, "data": {CA_KEY: ca}}),
                )
                .expect("cm"),
            )
        };
        snapshot.config_maps = vec![cm("b", "PEM"), cm("c", "OLD")];
        let config = Config { root_ca: Some("PEM".into()), ..Config::default() };
        let actions = reconcile(&snapshot, &config);
        let targets: Vec<String> = actions.iter().map(|a| a.target().to_string()).collect();
        assert_eq!(
            targets,
            vec!["/api/v1/namespaces/a/configmaps", "/api/v1/namespaces/c/configmaps/kube-root-ca.crt"]
        );
        assert!(reconcile(&snapshot, &Config::default()).is_empty(), "no CA configured, nothing published");
    }
}
