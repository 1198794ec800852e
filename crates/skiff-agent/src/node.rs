//! The agent's Node: what the host offers, and the heartbeat that keeps the node alive in the
//! control plane's eyes (a Lease in `kube-node-lease` renewed every 10 s, status at least every
//! minute and whenever readiness changes).
//!
//! The builders here are pure; [`read_host`] is the only function that looks at the machine.

use serde_json::json;
use serde_json::Value;

/// Lease renewals, and how long the control plane trusts one (upstream's defaults).
pub const LEASE_RENEW_SECONDS: u64 = 10;
pub const LEASE_DURATION_SECONDS: u64 = 40;
/// Status is posted at least this often even when nothing changed.
pub const STATUS_REFRESH_SECONDS: u64 = 60;
/// Upstream's default pod capacity per node.
pub const MAX_PODS: u32 = 110;

/// What the host offers and says about itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostFacts {
    pub hostname: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    /// Kubernetes' name for the architecture (`amd64`, `arm64`).
    pub arch: String,
}

/// Reads the facts from `/proc` and `/etc`; anything missing stays empty rather than failing.
pub fn read_host() -> HostFacts {
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
    let memory_bytes = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0);
    let os_image = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    HostFacts {
        hostname: read("/proc/sys/kernel/hostname"),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_bytes,
        kernel: read("/proc/sys/kernel/osrelease"),
        os_image,
        machine_id: read("/etc/machine-id"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        arch: arch.to_string(),
    }
}

/// The name of the interface the default IPv4 route leaves through, from `/proc/net/route`
/// (columns: interface, destination, gateway, flags, ...; the default route's destination is 0).
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() > 2 && cols[1] == "00000000").then(|| cols[0].to_string())
    })
}

/// The host's primary IPv4 address: the first address of the default route's interface, read
/// with `ip`. `None` when there is no default route (the caller falls back to loopback).
pub async fn primary_ipv4() -> Option<String> {
    let iface = default_route_interface(&std::fs::read_to_string("/proc/net/route").ok()?)?;
    let out =
        tokio::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", &iface]).output().await.ok()?;
    // "2: eth0    inet 192.0.2.2/24 brd ... scope global eth0 ..."
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
}

/// How this node is configured, beyond the host.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    /// The address the control plane and other nodes reach this node at.
    pub internal_ip: String,
    /// The agent's own HTTPS port (logs, exec, port-forward).
    pub port: u16,
    /// `containerd://1.6.20`, from the runtime.
    pub runtime_version: String,
    pub labels: Vec<(String, String)>,
}

/// The Node as first registered.
pub fn node_object(id: &NodeIdentity, host: &HostFacts) -> Value {
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("kubernetes.io/hostname", id.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", host.arch.as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", host.arch.as_str()),
    ] {
        labels.insert(k.into(), v.into());
    }
    for (k, v) in &id.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": id.name, "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {}})
}

/// Why the node is or is not ready to run pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl Readiness {
    pub fn ready() -> Self {
        Self { ready: true, reason: "KubeletReady".into(), message: "skiff agent is posting ready status".into() }
    }
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self { ready: false, reason: "KubeletNotReady".into(), message: message.into() }
    }
}

/// The node's status as the agent reports it. `since` is when readiness last changed (the
/// conditions' lastTransitionTime), `now` the heartbeat.
pub fn node_status(id: &NodeIdentity, host: &HostFacts, readiness: &Readiness, since: &str, now: &str) -> Value {
    let resources = json!({
        "cpu": host.cpus.to_string(),
        "memory": format!("{}Ki", host.memory_bytes / 1024),
        "pods": MAX_PODS.to_string(),
    });
    let pressure = |kind: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": "False", "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": since})
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            pressure("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            pressure("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            pressure("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            {"type": "Ready", "status": if readiness.ready { "True" } else { "False" },
             "reason": readiness.reason, "message": readiness.message,
             "lastHeartbeatTime": now, "lastTransitionTime": since},
        ],
        "addresses": [
            {"type": "InternalIP", "address": id.internal_ip},
            {"type": "Hostname", "address": id.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": id.port}},
        "nodeInfo": {
            "machineID": host.machine_id,
            "systemUUID": host.machine_id,
            "bootID": host.boot_id,
            "kernelVersion": host.kernel,
            "osImage": host.os_image,
            "containerRuntimeVersion": id.runtime_version,
            "kubeletVersion": crate::KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": host.arch,
        },
    })
}

/// The node's Lease, renewed at `renew` (microsecond time), owned by the Node so it goes with it.
pub fn lease_object(node: &str, node_uid: &str, renew: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": renew}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> NodeIdentity {
        NodeIdentity {
            name: "worker-1".into(),
            internal_ip: "10.0.0.7".into(),
            port: 10250,
            runtime_version: "containerd://1.6.20".into(),
            labels: vec![("zone".into(), "a".into())],
        }
    }

    fn host() -> HostFacts {
        HostFacts { cpus: 2, memory_bytes: 8 << 30, arch: "amd64".into(), ..Default::default() }
    }

    #[test]
    fn the_node_carries_the_well_known_labels_and_the_operators_own() {
        let node = node_object(&id(), &host());
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "worker-1");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(node["metadata"]["labels"]["zone"], "a");
    }

    #[test]
    fn status_reports_capacity_addresses_and_readiness() {
        let status = node_status(&id(), &host(), &Readiness::not_ready("network plugin not ready"), "t0", "t1");
        assert_eq!(status["capacity"]["cpu"], "2");
        assert_eq!(status["capacity"]["memory"], "8388608Ki");
        assert_eq!(status["allocatable"]["pods"], "110");
        let ready = &status["conditions"][3];
        assert_eq!((ready["type"].as_str(), ready["status"].as_str()), (Some("Ready"), Some("False")));
        assert_eq!(ready["message"], "network plugin not ready");
        assert_eq!(status["addresses"][0]["address"], "10.0.0.7");
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(status["nodeInfo"]["containerRuntimeVersion"], "containerd://1.6.20");
    }

    #[test]
    fn the_lease_is_owned_by_its_node() {
        let lease = lease_object("worker-1", "u-1", "2026-12-05T10:00:00.000000Z");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    }

    #[test]
    fn the_default_route_names_its_interface() {
        let table =
            "Iface\tDestination\tGateway \tFlags\nbr0\t0000F40A\t00000000\t0001\neth0\t00000000\t010200C0\t0003\n";
        assert_eq!(default_route_interface(table), Some("eth0".to_string()));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }

    #[test]
    fn the_host_is_read_without_failing() {
        let facts = read_host();
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0, "MemTotal from /proc/meminfo");
    }
}
