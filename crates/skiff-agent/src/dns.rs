//! Node-local cluster DNS: the agent answers pods' queries for Services by name
//! (`NAME.NAMESPACE.svc.CLUSTER_DOMAIN` → the cluster IP, or a headless Service's ready
//! endpoints) on its bridge's address, and relays every other query to the node's resolvers.
//!
//! Only what service discovery needs is implemented: A queries over UDP, one question per
//! message. Other types for cluster names get an empty answer; unknown cluster names NXDOMAIN.
//! [`answer`] is pure; [`serve`] does the I/O.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use serde_json::Value;

/// Seconds a cluster answer may be cached (upstream's CoreDNS default).
const TTL: u32 = 5;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;

/// Cluster names (lowercase, no trailing dot) and their addresses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub domain: String,
    pub names: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl Records {
    /// The records for these Services and Endpoints.
    pub fn build(domain: &str, services: &[Value], endpoints: &[Value]) -> Self {
        let mut names: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        let key = |o: &Value| {
            (
                o["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        };
        let ready: BTreeMap<(String, String), Vec<Ipv4Addr>> = endpoints
            .iter()
            .map(|e| {
                let ips = e["subsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
                    .filter_map(|a| a["ip"].as_str()?.parse().ok())
                    .collect();
                (key(e), ips)
            })
            .collect();
        for s in services {
            let (ns, name) = key(s);
            let name_key = format!("{name}.{ns}.svc.{domain}").to_ascii_lowercase();
            let ips = match s["spec"]["clusterIP"].as_str() {
                Some("None") => ready.get(&(ns, name)).cloned().unwrap_or_default(),
                Some(ip) => ip.parse().ok().into_iter().collect(),
                None => Vec::new(),
            };
            names.insert(name_key, ips);
        }
        Self { domain: domain.to_ascii_lowercase(), names }
    }
}

/// A query's question: the name (lowercase, without the trailing dot), type and where it ends.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = query.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

/// The answer to `query` if it asks about the cluster domain; `None` to relay it upstream
/// (or when it is not a query skiff can read).
pub fn answer(query: &[u8], records: &Records) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(query)?;
    let in_domain = name == records.domain || name.ends_with(&format!(".{}", records.domain));
    if !in_domain {
        return None;
    }
    let found = records.names.get(&name);
    let ips: &[Ipv4Addr] = match (found, qtype) {
        (Some(ips), TYPE_A) => ips,
        _ => &[],
    };
    let mut out = Vec::with_capacity(end + ips.len() * 16);
    out.extend_from_slice(&query[0..2]); // id
    let recursion_desired = query[2] & 0x01;
    out.push(0x84 | recursion_desired); // response, authoritative
    let rcode = if found.is_none() { RCODE_NXDOMAIN } else { 0 };
    out.push(0x80 | rcode); // recursion available
    out.extend_from_slice(&1u16.to_be_bytes()); // questions
    out.extend_from_slice(&(ips.len() as u16).to_be_bytes()); // answers
    out.extend_from_slice(&[0, 0, 0, 0]); // authority, additional
    out.extend_from_slice(&query[12..end]);
    for ip in ips {
        out.extend_from_slice(&[0xc0, 0x0c]); // the name, pointing at the question
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// Serves DNS on `listen` (UDP) from `records`, relaying other names to `upstream`.
pub async fn serve(
    listen: SocketAddr,
    records: Arc<RwLock<Records>>,
    upstream: Vec<SocketAddr>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let socket = Arc::new(tokio::net::UdpSocket::bind(listen).await?);
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
            let query = buf[..n].to_vec();
            let local = records.read().ok().and_then(|r| answer(&query, &r));
            match local {
                Some(reply) => {
                    let _ = socket.send_to(&reply, from).await;
                }
                None => {
                    let (socket, upstream) = (socket.clone(), upstream.clone());
                    tokio::spawn(async move {
                        if let Some(reply) = relay(&query, &upstream).await {
                            let _ = socket.send_to(&reply, from).await;
                        }
                    });
                }
            }
        }
    }))
}

/// Asks the node's resolvers in turn; `None` when none answers in time.
async fn relay(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
        let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else { continue };
        if socket.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn records() -> Records {
        let services = vec![
            json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"clusterIP": "10.96.0.20"}}),
            json!({"metadata": {"namespace": "db", "name": "pg"}, "spec": {"clusterIP": "None"}}),
        ];
        let endpoints = vec![json!({"metadata": {"namespace": "db", "name": "pg"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.6"}]}]})];
        Records::build("cluster.local", &services, &endpoints)
    }

    #[test]
    fn a_service_name_answers_its_cluster_ip() {
        let reply = answer(&query("web.default.svc.cluster.local", TYPE_A), &records()).expect("a cluster name");
        assert_eq!(&reply[0..2], &[0x12, 0x34], "same id");
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([reply[6], reply[7]]), 1, "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[10, 96, 0, 20]);
    }

    #[test]
    fn a_headless_service_answers_its_ready_endpoints() {
        let reply = answer(&query("PG.db.svc.cluster.local", TYPE_A), &records()).expect("a cluster name");
        assert_eq!(u16::from_be_bytes([reply[6], reply[7]]), 2);
    }

    #[test]
    fn unknown_cluster_names_are_nxdomain_and_others_are_relayed() {
        let reply = answer(&query("nope.default.svc.cluster.local", TYPE_A), &records()).expect("a cluster name");
        assert_eq!(reply[3] & 0x0f, RCODE_NXDOMAIN);
        assert!(answer(&query("example.org", TYPE_A), &records()).is_none());
        let aaaa = answer(&query("web.default.svc.cluster.local", 28), &records()).expect("a cluster name");
        assert_eq!((aaaa[3] & 0x0f, u16::from_be_bytes([aaaa[6], aaaa[7]])), (0, 0), "no IPv6 address, no error");
        assert!(answer(&[1, 2, 3], &records()).is_none(), "garbage is not answered");
    }
}
