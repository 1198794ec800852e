//! Routes to the other nodes' pods: every node's podCIDR is reached through that node's
//! InternalIP. Each agent keeps these routes on its own host, so pods on different nodes reach
//! each other by pod IP over a plain L2 network without an overlay.
//!
//! The routes carry their own protocol number, so an agent that restarts finds the routes it
//! installed before and removes those whose node is gone.

use serde_json::Value;

/// The routing protocol number the agent's routes are tagged with (`ip route ... proto N`);
/// outside the range the kernel and routing daemons use.
pub const ROUTE_PROTO: &str = "199";

/// One route: the node's pod range through the node's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRoute {
    pub cidr: String,
    pub via: String,
}

/// The routes this node needs: one per other node that has a podCIDR and a routable
/// InternalIP. Nodes sharing this node's address (several agents on one host) need none.
pub fn desired(nodes: &[Value], self_name: &str, self_ip: &str) -> Vec<PodRoute> {
    let mut out: Vec<PodRoute> = nodes
        .iter()
        .filter(|n| n["metadata"]["name"].as_str() != Some(self_name))
        .filter_map(|n| {
            let cidr = n["spec"]["podCIDR"].as_str().filter(|c| !c.is_empty())?;
            let via =
                n["status"]["addresses"].as_array()?.iter().find(|a| a["type"] == "InternalIP")?["address"].as_str()?;
            let routable = via != self_ip
                && via.parse::<std::net::IpAddr>().is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified());
            routable.then(|| PodRoute { cidr: cidr.to_string(), via: via.to_string() })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The routes this agent installed, from `ip route show proto 199` output.
pub fn parse_installed(text: &str) -> Vec<PodRoute> {
    let mut out: Vec<PodRoute> = text
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let cidr = words.first()?;
            let via = words.iter().position(|w| *w == "via").and_then(|i| words.get(i + 1))?;
            Some(PodRoute { cidr: cidr.to_string(), via: via.to_string() })
        })
        .collect();
    out.sort();
    out
}

/// Brings the host's tagged routes to `want`: adds or replaces what is missing, deletes what is
/// no longer wanted. Failures are logged and retried on the next pass.
pub async fn sync(want: &[PodRoute]) {
    let have = match tokio::process::Command::new("ip").args(["route", "show", "proto", ROUTE_PROTO]).output().await {
        Ok(out) if out.status.success() => parse_installed(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr), "listing routes failed");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot run ip");
            return;
        }
    };
    for route in want.iter().filter(|r| !have.contains(r)) {
        let args = ["route", "replace", &route.cidr, "via", &route.via, "proto", ROUTE_PROTO];
        run_ip(&args).await;
        tracing::info!(cidr = %route.cidr, via = %route.via, "route to a node's pods");
    }
    for route in have.iter().filter(|r| !want.iter().any(|w| w.cidr == r.cidr)) {
        run_ip(&["route", "del", &route.cidr, "proto", ROUTE_PROTO]).await;
        tracing::info!(cidr = %route.cidr, "route to a removed node's pods deleted");
    }
}

async fn run_ip(args: &[&str]) {
    match tokio::process::Command::new("ip").args(args).output().await {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(?args, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "ip failed"),
        Err(e) => tracing::warn!(?args, error = %e, "cannot run ip"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, cidr: &str, ip: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    }

    #[test]
    fn every_other_node_with_a_range_and_an_address_gets_a_route() {
        let nodes = vec![
            node("a", "10.244.0.0/24", "10.0.0.2"),
            node("b", "10.244.1.0/24", "10.0.0.3"),
            node("c", "", "10.0.0.4"),
            node("d", "10.244.3.0/24", "127.0.0.1"),
            node("e", "10.244.4.0/24", "10.0.0.2"),
        ];
        assert_eq!(
            desired(&nodes, "a", "10.0.0.2"),
            vec![PodRoute { cidr: "10.244.1.0/24".into(), via: "10.0.0.3".into() }]
        );
    }

    #[test]
    fn installed_routes_are_read_back() {
        let text = "10.244.1.0/24 via 10.0.0.3 dev eth0 proto 199 \n10.244.2.0/24 via 10.0.0.4 dev eth0 proto 199\n";
        assert_eq!(
            parse_installed(text),
            vec![
                PodRoute { cidr: "10.244.1.0/24".into(), via: "10.0.0.3".into() },
                PodRoute { cidr: "10.244.2.0/24".into(), via: "10.0.0.4".into() },
            ]
        );
    }
}
