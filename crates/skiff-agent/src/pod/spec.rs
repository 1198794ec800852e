//! The CRI requests for a pod: its sandbox configuration and each container's, translated from
//! the Pod spec.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use serde_json::Value;

use super::meta;
use super::name_of;
use crate::cri::LABEL_CONTAINER_NAME;
use crate::cri::LABEL_POD_NAME;
use crate::cri::LABEL_POD_NAMESPACE;
use crate::cri::LABEL_POD_UID;

/// The node's DNS: the resolver configuration pods with `dnsPolicy: Default` get, and the
/// cluster's DNS server for `ClusterFirst` (none yet: those pods get the node's).
#[derive(Debug, Clone, Default)]
pub struct DnsSettings {
    pub host_servers: Vec<String>,
    pub host_searches: Vec<String>,
    pub host_options: Vec<String>,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
}

impl DnsSettings {
    /// Parses a `resolv.conf`.
    pub fn from_resolv_conf(text: &str) -> Self {
        let mut dns = DnsSettings { cluster_domain: "cluster.local".into(), ..Default::default() };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.host_servers.extend(words.next().map(str::to_string)),
                Some("search") => dns.host_searches = words.map(str::to_string).collect(),
                Some("options") => dns.host_options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        dns
    }
}

/// The directory a pod's container logs go to (upstream's layout under the agent's log root).
pub fn log_directory(root: &std::path::Path, pod: &Value) -> std::path::PathBuf {
    root.join(format!("{}_{}_{}", meta(pod, "namespace"), meta(pod, "name"), meta(pod, "uid")))
}

/// A container's log file, relative to the pod's log directory.
pub fn log_path(container: &str, attempt: u32) -> String {
    format!("{container}/{attempt}.log")
}

/// The sandbox configuration.
pub fn sandbox_config(
    pod: &Value,
    attempt: u32,
    log_dir: &std::path::Path,
    dns: &DnsSettings,
) -> cri::PodSandboxConfig {
    let spec = &pod["spec"];
    let host_network = spec["hostNetwork"].as_bool() == Some(true);
    let hostname = spec["hostname"].as_str().filter(|h| !h.is_empty()).unwrap_or(meta(pod, "name"));
    let mut port_mappings = Vec::new();
    for c in super::containers(pod, "containers") {
        for p in c["ports"].as_array().into_iter().flatten() {
            let host_port = p["hostPort"].as_i64().unwrap_or(0);
            if host_port <= 0 {
                continue;
            }
            port_mappings.push(cri::PortMapping {
                protocol: match p["protocol"].as_str() {
                    Some("UDP") => cri::Protocol::Udp as i32,
                    Some("SCTP") => cri::Protocol::Sctp as i32,
                    _ => cri::Protocol::Tcp as i32,
                },
                container_port: p["containerPort"].as_i64().unwrap_or(0) as i32,
                host_port: host_port as i32,
                host_ip: p["hostIP"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    let namespaces = cri::NamespaceOption {
        network: if host_network { cri::NamespaceMode::Node as i32 } else { cri::NamespaceMode::Pod as i32 },
        pid: if spec["hostPID"].as_bool() == Some(true) {
            cri::NamespaceMode::Node as i32
        } else if spec["shareProcessNamespace"].as_bool() == Some(true) {
            cri::NamespaceMode::Pod as i32
        } else {
            cri::NamespaceMode::Container as i32
        },
        ipc: if spec["hostIPC"].as_bool() == Some(true) {
            cri::NamespaceMode::Node as i32
        } else {
            cri::NamespaceMode::Pod as i32
        },
        ..Default::default()
    };
    let security = &spec["securityContext"];
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: meta(pod, "name").into(),
            uid: meta(pod, "uid").into(),
            namespace: meta(pod, "namespace").into(),
            attempt,
        }),
        hostname: if host_network { String::new() } else { truncate(hostname, 63) },
        log_directory: log_dir.to_string_lossy().into_owned(),
        dns_config: dns_config(pod, dns),
        port_mappings,
        labels: pod_labels(pod),
        annotations: string_map(&pod["metadata"]["annotations"]),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                run_as_user: security["runAsUser"].as_i64().map(|value| cri::Int64Value { value }),
                run_as_group: security["runAsGroup"].as_i64().map(|value| cri::Int64Value { value }),
                supplemental_groups: int_list(&security["supplementalGroups"]),
                ..Default::default()
            }),
            sysctls: security["sysctls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["value"].as_str()?.to_string())))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

fn dns_config(pod: &Value, dns: &DnsSettings) -> Option<cri::DnsConfig> {
    let spec = &pod["spec"];
    let policy = spec["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
    let host_network = spec["hostNetwork"].as_bool() == Some(true);
    let cluster_first = !dns.cluster_dns.is_empty()
        && (policy == "ClusterFirst" && !host_network || policy == "ClusterFirstWithHostNet");
    let mut config = match policy {
        "None" => cri::DnsConfig::default(),
        _ if cluster_first => {
            let ns = meta(pod, "namespace");
            let domain = &dns.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{domain}"), format!("svc.{domain}"), domain.clone()];
            searches.extend(dns.host_searches.iter().cloned());
            cri::DnsConfig { servers: dns.cluster_dns.clone(), searches, options: vec!["ndots:5".into()] }
        }
        _ => cri::DnsConfig {
            servers: dns.host_servers.clone(),
            searches: dns.host_searches.clone(),
            options: dns.host_options.clone(),
        },
    };
    let extra = &spec["dnsConfig"];
    config.servers.extend(strings(&extra["nameservers"]));
    config.searches.extend(strings(&extra["searches"]));
    for option in extra["options"].as_array().into_iter().flatten() {
        let Some(name) = option["name"].as_str() else { continue };
        config.options.retain(|o| o.split(':').next() != Some(name));
        config.options.push(match option["value"].as_str() {
            Some(v) => format!("{name}:{v}"),
            None => name.to_string(),
        });
    }
    Some(config)
}

/// The labels every sandbox and container of the pod carries (how the agent finds them again).
fn pod_labels(pod: &Value) -> HashMap<String, String> {
    let mut labels = string_map(&pod["metadata"]["labels"]);
    labels.insert(LABEL_POD_UID.into(), meta(pod, "uid").into());
    labels.insert(LABEL_POD_NAME.into(), meta(pod, "name").into());
    labels.insert(LABEL_POD_NAMESPACE.into(), meta(pod, "namespace").into());
    labels
}

fn string_map(v: &Value) -> HashMap<String, String> {
    v.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

fn int_list(v: &Value) -> Vec<i64> {
    v.as_array().into_iter().flatten().filter_map(Value::as_i64).collect()
}

/// Milli-units of a quantity in `resources.<section>.<name>`, if set and valid.
fn milli(container: &Value, section: &str, name: &str) -> Option<i128> {
    let q = container["resources"][section][name].as_str()?;
    skiff_api_types::validation::parse_quantity(q).ok()
}

/// CPU shares, quota and memory limit from requests and limits, as upstream's converts them.
pub fn linux_resources(container: &Value) -> cri::LinuxContainerResources {
    const PERIOD: i64 = 100_000;
    let cpu_request = milli(container, "requests", "cpu").or_else(|| milli(container, "limits", "cpu"));
    let shares = match cpu_request {
        Some(m) => ((m * 1024) / 1000).clamp(2, 262_144) as i64,
        None => 2,
    };
    let quota = milli(container, "limits", "cpu").map(|m| ((m * PERIOD as i128) / 1000).max(1000) as i64);
    let memory = milli(container, "limits", "memory").map(|m| (m / 1000) as i64).unwrap_or(0);
    cri::LinuxContainerResources {
        cpu_period: if quota.is_some() { PERIOD } else { 0 },
        cpu_quota: quota.unwrap_or(0),
        cpu_shares: shares,
        memory_limit_in_bytes: memory,
        ..Default::default()
    }
}

/// One container's configuration. `command` and `args` are already expanded against `env`.
pub fn container_config(
    pod: &Value,
    container: &Value,
    attempt: u32,
    env: &[(String, String)],
    mounts: Vec<cri::Mount>,
) -> cri::ContainerConfig {
    let name = name_of(container);
    let expand = |field: &str| -> Vec<String> {
        strings(&container[field]).iter().map(|s| super::env::expand(s, env)).collect()
    };
    let mut labels = HashMap::new();
    labels.insert(LABEL_POD_UID.to_string(), meta(pod, "uid").to_string());
    labels.insert(LABEL_POD_NAME.to_string(), meta(pod, "name").to_string());
    labels.insert(LABEL_POD_NAMESPACE.to_string(), meta(pod, "namespace").to_string());
    labels.insert(LABEL_CONTAINER_NAME.to_string(), name.to_string());
    let annotations = HashMap::from([
        ("io.kubernetes.container.restartCount".to_string(), attempt.to_string()),
        (
            "io.kubernetes.container.terminationMessagePath".to_string(),
            container["terminationMessagePath"].as_str().unwrap_or("/dev/termination-log").to_string(),
        ),
    ]);
    let pod_security = &pod["spec"]["securityContext"];
    let security = &container["securityContext"];
    let pick = |field: &str| security[field].as_i64().or_else(|| pod_security[field].as_i64());
    let capabilities = cri::Capability {
        add_capabilities: strings(&security["capabilities"]["add"]),
        drop_capabilities: strings(&security["capabilities"]["drop"]),
        ..Default::default()
    };
    let host_pid = pod["spec"]["hostPID"].as_bool() == Some(true);
    let shared_pid = pod["spec"]["shareProcessNamespace"].as_bool() == Some(true);
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.to_string(), attempt }),
        image: Some(crate::cri::image_spec(container["image"].as_str().unwrap_or(""))),
        command: expand("command"),
        args: expand("args"),
        working_dir: container["workingDir"].as_str().unwrap_or("").to_string(),
        envs: env.iter().map(|(key, value)| cri::KeyValue { key: key.clone(), value: value.clone() }).collect(),
        mounts,
        labels,
        annotations,
        log_path: log_path(name, attempt),
        stdin: container["stdin"].as_bool().unwrap_or(false),
        stdin_once: container["stdinOnce"].as_bool().unwrap_or(false),
        tty: container["tty"].as_bool().unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(container)),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities: Some(capabilities),
                privileged: security["privileged"].as_bool().unwrap_or(false),
                namespace_options: Some(cri::NamespaceOption {
                    network: if pod["spec"]["hostNetwork"].as_bool() == Some(true) {
                        cri::NamespaceMode::Node as i32
                    } else {
                        cri::NamespaceMode::Pod as i32
                    },
                    pid: if host_pid {
                        cri::NamespaceMode::Node as i32
                    } else if shared_pid {
                        cri::NamespaceMode::Pod as i32
                    } else {
                        cri::NamespaceMode::Container as i32
                    },
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                run_as_user: pick("runAsUser").map(|value| cri::Int64Value { value }),
                run_as_group: pick("runAsGroup").map(|value| cri::Int64Value { value }),
                readonly_rootfs: security["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
                supplemental_groups: int_list(&pod_security["supplementalGroups"]),
                no_new_privs: security["allowPrivilegeEscalation"].as_bool() == Some(false),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::pod;
    use super::*;

    #[test]
    fn the_sandbox_carries_identity_hostname_ports_and_dns() {
        let p = pod(json!({"containers": [{"name": "app", "image": "b",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}],
            "dnsPolicy": "Default", "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}));
        let dns = DnsSettings::from_resolv_conf("nameserver 10.0.0.2\nsearch example.org\noptions ndots:1 edns0\n");
        let c = sandbox_config(&p, 2, std::path::Path::new("/logs/default_web_uid-1"), &dns);
        let m = c.metadata.expect("metadata");
        assert_eq!((m.name.as_str(), m.uid.as_str(), m.namespace.as_str(), m.attempt), ("web", "uid-1", "default", 2));
        assert_eq!(c.hostname, "web");
        assert_eq!(c.log_directory, "/logs/default_web_uid-1");
        assert_eq!(c.port_mappings.len(), 1, "only ports with a hostPort are mapped");
        assert_eq!((c.port_mappings[0].container_port, c.port_mappings[0].host_port), (80, 8080));
        let d = c.dns_config.expect("dns");
        assert_eq!(d.servers, vec!["10.0.0.2"]);
        assert_eq!(d.options, vec!["edns0", "ndots:2"]);
        assert_eq!(c.labels.get(LABEL_POD_UID).map(String::as_str), Some("uid-1"));
        assert_eq!(c.labels.get("app").map(String::as_str), Some("web"));
    }

    #[test]
    fn cluster_first_pods_get_the_cluster_dns_when_there_is_one() {
        let p = pod(json!({"containers": []}));
        let dns = DnsSettings {
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        };
        let d = sandbox_config(&p, 0, std::path::Path::new("/l"), &dns).dns_config.expect("dns");
        assert_eq!(d.servers, vec!["10.96.0.10"]);
        assert_eq!(d.searches[0], "default.svc.cluster.local");
        assert_eq!(d.options, vec!["ndots:5"]);
    }

    #[test]
    fn resources_become_shares_quota_and_memory_limit() {
        let c = json!({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "128Mi"}}});
        let r = linux_resources(&c);
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes),
            (256, 100_000, 50_000, 128 << 20)
        );
        let best_effort = linux_resources(&json!({}));
        assert_eq!((best_effort.cpu_shares, best_effort.cpu_quota, best_effort.memory_limit_in_bytes), (2, 0, 0));
    }

    #[test]
    fn the_container_gets_expanded_arguments_labels_and_security_settings() {
        let p = pod(json!({"securityContext": {"runAsUser": 1000},
            "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c"], "args": ["echo $(GREETING)"],
                "workingDir": "/w", "securityContext": {"readOnlyRootFilesystem": true,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]}));
        let container = &p["spec"]["containers"][0];
        let env = vec![("GREETING".to_string(), "hi".to_string())];
        let c = container_config(&p, container, 3, &env, Vec::new());
        assert_eq!(c.args, vec!["echo hi"]);
        assert_eq!(c.command, vec!["sh", "-c"]);
        assert_eq!(c.log_path, "app/3.log");
        assert_eq!(c.metadata.map(|m| m.attempt), Some(3));
        assert_eq!(c.labels.get(LABEL_CONTAINER_NAME).map(String::as_str), Some("app"));
        let security = c.linux.and_then(|l| l.security_context).expect("security context");
        assert_eq!(security.run_as_user.map(|u| u.value), Some(1000), "the pod's runAsUser applies");
        assert!(security.readonly_rootfs);
        assert_eq!(security.capabilities.map(|c| c.drop_capabilities), Some(vec!["ALL".to_string()]));
    }
}
