//! The service proxy: ClusterIP and NodePort Services as iptables NAT rules on the node, from
//! Services and their Endpoints (what kube-proxy's iptables mode does).
//!
//! Connections to a Service's cluster IP and port (from the node or from its pods), or to a
//! NodePort on one of the node's addresses, are DNATed to one ready endpoint picked at random
//! with equal weight. A pod that reaches itself through its Service is masqueraded so the reply
//! comes back the same way. The rules live in chains of their own (`SKIFF-*`), rewritten whole
//! with `iptables-restore --noflush`, so other rules on the host are never touched.
//!
//! [`rules`] is pure; [`sync`] applies its output.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

const SERVICES: &str = "SKIFF-SERVICES";
const NODEPORTS: &str = "SKIFF-NODEPORTS";
const POSTROUTING: &str = "SKIFF-POSTROUTING";
const MARK_MASQ: &str = "SKIFF-MARK-MASQ";
/// The packet mark that asks for masquerading (kube-proxy uses the same bit).
const MASQ_BIT: &str = "0x4000/0x4000";

/// One ready endpoint of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Backend {
    ip: String,
    port: u16,
}

/// The nat table's rules for these Services and Endpoints, in `iptables-restore` format.
pub fn rules(services: &[Value], endpoints: &[Value]) -> String {
    let endpoints_by_key: BTreeMap<String, &Value> = endpoints.iter().map(|e| (object_key(e), e)).collect();
    let mut chains: Vec<String> = vec![SERVICES.into(), NODEPORTS.into(), POSTROUTING.into(), MARK_MASQ.into()];
    let mut body = String::new();
    let mut nodeports = String::new();
    let _ = writeln!(body, "-A {MARK_MASQ} -j MARK --set-xmark {MASQ_BIT}");
    let _ = writeln!(body, "-A {POSTROUTING} -m mark ! --mark {MASQ_BIT} -j RETURN");
    let _ = writeln!(body, "-A {POSTROUTING} -j MARK --set-xmark 0x4000/0x0");
    let _ = writeln!(body, "-A {POSTROUTING} -j MASQUERADE");
    let mut sorted: Vec<&Value> = services.iter().collect();
    sorted.sort_by_key(|s| object_key(s));
    for service in sorted {
        let key = object_key(service);
        let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap_or("");
        if cluster_ip.is_empty() || cluster_ip == "None" {
            continue;
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let protocol = port["protocol"].as_str().unwrap_or("TCP").to_ascii_lowercase();
            if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                continue;
            }
            let Some(service_port) = port["port"].as_u64() else { continue };
            let port_name = port["name"].as_str().unwrap_or("");
            let backends = backends(endpoints_by_key.get(&key).copied(), port_name, &protocol);
            let id = format!("{key}:{port_name}/{protocol}");
            let svc_chain = chain_name("SKIFF-SVC-", &id);
            chains.push(svc_chain.clone());
            let comment = format!("\"{key}:{port_name}\"");
            let _ = writeln!(
                body,
                "-A {SERVICES} -d {cluster_ip}/32 -p {protocol} -m {protocol} --dport {service_port} -m comment --comment {comment} -j {svc_chain}"
            );
            if let Some(node_port) = port["nodePort"].as_u64().filter(|p| *p > 0) {
                let _ = writeln!(
                    nodeports,
                    "-A {NODEPORTS} -p {protocol} -m {protocol} --dport {node_port} -m comment --comment {comment} -j {MARK_MASQ}"
                );
                let _ = writeln!(
                    nodeports,
                    "-A {NODEPORTS} -p {protocol} -m {protocol} --dport {node_port} -m comment --comment {comment} -j {svc_chain}"
                );
            }
            let n = backends.len();
            for (i, backend) in backends.iter().enumerate() {
                let sep_chain = chain_name("SKIFF-SEP-", &format!("{id}->{}:{}", backend.ip, backend.port));
                chains.push(sep_chain.clone());
                // Equal weights: the i-th of n rules takes 1/(n-i) of what reaches it.
                if i + 1 < n {
                    let probability = 1.0 / (n - i) as f64;
                    let _ = writeln!(
                        body,
                        "-A {svc_chain} -m statistic --mode random --probability {probability:.10} -j {sep_chain}"
                    );
                } else {
                    let _ = writeln!(body, "-A {svc_chain} -j {sep_chain}");
                }
                let _ = writeln!(body, "-A {sep_chain} -s {}/32 -j {MARK_MASQ}", backend.ip);
                let _ = writeln!(
                    body,
                    "-A {sep_chain} -p {protocol} -m {protocol} -j DNAT --to-destination {}:{}",
                    backend.ip, backend.port
                );
            }
        }
    }
    let _ = writeln!(body, "-A {SERVICES} -m addrtype --dst-type LOCAL -j {NODEPORTS}");
    let mut out = String::from("*nat\n");
    chains.sort();
    chains.dedup();
    for chain in &chains {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    out.push_str(&body);
    out.push_str(&nodeports);
    out.push_str("COMMIT\n");
    out
}

fn object_key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// Ready addresses of the Endpoints' subsets for the service port of that name and protocol.
fn backends(endpoints: Option<&Value>, port_name: &str, protocol: &str) -> Vec<Backend> {
    let mut out = Vec::new();
    for subset in endpoints.and_then(|e| e["subsets"].as_array()).into_iter().flatten() {
        let port = subset["ports"].as_array().into_iter().flatten().find(|p| {
            p["name"].as_str().unwrap_or("") == port_name
                && p["protocol"].as_str().unwrap_or("TCP").eq_ignore_ascii_case(protocol)
        });
        let Some(port) = port.and_then(|p| p["port"].as_u64()).and_then(|p| u16::try_from(p).ok()) else { continue };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = address["ip"].as_str() {
                out.push(Backend { ip: ip.to_string(), port });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A chain name from a stable hash of what it stands for (iptables allows 28 characters).
fn chain_name(prefix: &str, id: &str) -> String {
    use std::hash::Hasher as _;
    // FNV: stable across agents and restarts, so every node writes the same names.
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(id.as_bytes());
    let mut name = format!("{prefix}{:016X}", hasher.finish());
    name.truncate(28);
    name
}

/// The jumps from the built-in chains into skiff's.
const JUMPS: &[(&str, &str)] = &[("PREROUTING", SERVICES), ("OUTPUT", SERVICES), ("POSTROUTING", POSTROUTING)];

/// Writes the rules and makes sure the built-in chains jump to them. Returns an error message
/// when iptables refused; the caller retries on its next pass.
pub async fn sync(rules_text: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("iptables-restore: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(rules_text.as_bytes()).await.map_err(|e| format!("iptables-restore: {e}"))?;
    }
    let out = child.wait_with_output().await.map_err(|e| format!("iptables-restore: {e}"))?;
    if !out.status.success() {
        return Err(format!("iptables-restore: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    for (from, to) in JUMPS {
        let rule = ["-t", "nat", "-C", from, "-m", "comment", "--comment", "skiff services", "-j", to];
        let present =
            tokio::process::Command::new("iptables").args(rule).output().await.is_ok_and(|o| o.status.success());
        if !present {
            let mut insert: Vec<&str> = rule.to_vec();
            insert[2] = "-I";
            let out = tokio::process::Command::new("iptables")
                .args(&insert)
                .output()
                .await
                .map_err(|e| format!("iptables: {e}"))?;
            if !out.status.success() {
                return Err(format!("iptables {}: {}", insert.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
    }
    Ok(())
}

/// Removes skiff's jumps and chains (agent reset).
pub async fn remove() {
    for (from, to) in JUMPS {
        let rule = ["-t", "nat", "-D", from, "-m", "comment", "--comment", "skiff services", "-j", to];
        while tokio::process::Command::new("iptables").args(rule).output().await.is_ok_and(|o| o.status.success()) {}
    }
    let Ok(out) = tokio::process::Command::new("iptables-save").args(["-t", "nat"]).output().await else { return };
    let chains: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("SKIFF-"))
        .map(str::to_string)
        .collect();
    for chain in &chains {
        let _ = tokio::process::Command::new("iptables").args(["-t", "nat", "-F", chain]).output().await;
    }
    for chain in &chains {
        let _ = tokio::process::Command::new("iptables").args(["-t", "nat", "-X", chain]).output().await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service() -> Value {
        json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]}})
    }

    fn endpoints(ips: &[&str]) -> Value {
        let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        json!({"metadata": {"namespace": "default", "name": "web"},
            "subsets": [{"addresses": addresses, "notReadyAddresses": [{"ip": "10.244.0.99"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
    }

    #[test]
    fn a_cluster_ip_spreads_over_ready_endpoints_with_equal_weight() {
        let text = rules(&[service()], &[endpoints(&["10.244.0.5", "10.244.1.7", "10.244.2.9"])]);
        assert!(text.starts_with("*nat\n") && text.ends_with("COMMIT\n"));
        assert!(text.contains("-A SKIFF-SERVICES -d 10.96.0.20/32 -p tcp -m tcp --dport 80"), "{text}");
        assert!(text.contains("--probability 0.3333333333"), "{text}");
        assert!(text.contains("--probability 0.5000000000"), "{text}");
        for ip in ["10.244.0.5", "10.244.1.7", "10.244.2.9"] {
            assert!(text.contains(&format!("-j DNAT --to-destination {ip}:8080")), "{text}");
        }
        assert!(!text.contains("10.244.0.99"), "not-ready addresses get no traffic");
        assert!(text.contains("-A SKIFF-NODEPORTS -p tcp -m tcp --dport 30080"), "{text}");
    }

    #[test]
    fn headless_services_and_services_without_endpoints_get_no_backends() {
        let mut headless = service();
        headless["spec"]["clusterIP"] = json!("None");
        let text = rules(&[headless], &[endpoints(&["10.244.0.5"])]);
        assert!(!text.contains("DNAT"), "{text}");
        let text = rules(&[service()], &[]);
        assert!(text.contains("-d 10.96.0.20/32") && !text.contains("DNAT"), "{text}");
    }

    #[test]
    fn chain_names_are_stable_and_fit_iptables() {
        let a = chain_name("SKIFF-SVC-", "default/web:http/tcp");
        assert_eq!(a, chain_name("SKIFF-SVC-", "default/web:http/tcp"));
        assert_ne!(a, chain_name("SKIFF-SVC-", "default/web:https/tcp"));
        assert!(a.len() <= 28);
        let text = rules(&[service()], &[endpoints(&["10.244.0.5"])]);
        assert_eq!(text, rules(&[service()], &[endpoints(&["10.244.0.5"])]), "same input, same rules");
    }
}
