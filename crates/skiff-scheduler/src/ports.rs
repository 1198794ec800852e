//! Host port conflicts between the incoming pod and pods already on a node.

use k8s_openapi::api::core::v1::Pod;

/// Reason for a node where a requested host port is taken.
pub(crate) const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

/// The address meaning "every interface"; it conflicts with any other address.
const ANY_ADDRESS: &str = "0.0.0.0";

/// One host port a pod binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    ip: String,
    protocol: String,
    port: i32,
}

impl HostPort {
    fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == ANY_ADDRESS || other.ip == ANY_ADDRESS || self.ip == other.ip)
    }
}

/// The host ports a pod binds: those of its containers and of its sidecar
/// (restartable) init containers, which keep running beside them. Ports of
/// ordinary init containers are ignored because they exit before the app runs.
pub(crate) fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                ip: p.host_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| ANY_ADDRESS.to_string()),
                protocol: p.protocol.clone().filter(|proto| !proto.is_empty()).unwrap_or_else(|| "TCP".to_string()),
                port,
            })
        })
        .collect()
}

/// Filter: whether any wanted host port is already bound on the node by `existing` pods.
pub(crate) fn conflict<'a>(wanted: &[HostPort], existing: impl IntoIterator<Item = &'a Pod>) -> Option<&'static str> {
    if wanted.is_empty() {
        return None;
    }
    let taken: Vec<HostPort> = existing.into_iter().flat_map(host_ports).collect();
    let clash = wanted.iter().any(|w| taken.iter().any(|t| w.conflicts_with(t)));
    clash.then_some(REASON_PORTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ports: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "ports": ports}]}}),
        )
        .expect("test fixture")
    }

    #[test]
    fn same_port_and_protocol_conflicts() {
        let wanted = host_ports(&pod(json!([{"containerPort": 80, "hostPort": 8080}])));
        let existing = pod(json!([{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]));
        assert_eq!(conflict(&wanted, [&existing]), Some(REASON_PORTS));
    }

    #[test]
    fn different_protocol_or_port_does_not_conflict() {
        let wanted = host_ports(&pod(json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}])));
        let tcp = pod(json!([{"containerPort": 53, "hostPort": 53}]));
        let other_port = pod(json!([{"containerPort": 54, "hostPort": 54, "protocol": "UDP"}]));
        let no_host_port = pod(json!([{"containerPort": 53, "protocol": "UDP"}]));
        assert_eq!(conflict(&wanted, [&tcp, &other_port, &no_host_port]), None);
    }

    #[test]
    fn host_ip_overlap_rules() {
        let specific = host_ports(&pod(json!([{"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.1"}])));
        let other_ip = pod(json!([{"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.2"}]));
        let same_ip = pod(json!([{"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.1"}]));
        let wildcard = pod(json!([{"containerPort": 80, "hostPort": 80, "hostIP": ""}]));
        assert_eq!(conflict(&specific, [&other_ip]), None);
        assert_eq!(conflict(&specific, [&same_ip]), Some(REASON_PORTS));
        assert_eq!(conflict(&specific, [&wildcard]), Some(REASON_PORTS));
    }

    #[test]
    fn pods_without_host_ports_never_conflict() {
        let wanted = host_ports(&pod(json!([{"containerPort": 80}])));
        assert!(wanted.is_empty());
        let existing = pod(json!([{"containerPort": 80, "hostPort": 80}]));
        assert_eq!(conflict(&wanted, [&existing]), None);
    }
}
