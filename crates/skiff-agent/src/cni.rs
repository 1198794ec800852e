//! The pod network's CNI configuration: a bridge on this node with host-local addresses from
//! the node's podCIDR, and port mappings for `hostPort`. The runtime reads it from the
//! configuration directory and calls the plugins for every sandbox; the loopback interface is
//! set up by the runtime itself.

use std::path::Path;
use std::path::PathBuf;

use serde_json::json;
use serde_json::Value;

/// The network's name, which the runtime and host-local key their state by.
pub const NETWORK_NAME: &str = "skiff";

/// What goes into the node's network configuration.
#[derive(Debug, Clone)]
pub struct CniSettings {
    /// The Linux bridge the pods' veths join (its address is the pods' gateway).
    pub bridge: String,
    /// The node's podCIDR, from the control plane's IPAM.
    pub pod_cidr: String,
    /// Where host-local records which addresses it gave out.
    pub ipam_dir: PathBuf,
}

/// The `.conflist` for the node.
pub fn conflist(settings: &CniSettings) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": settings.bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": settings.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": settings.ipam_dir,
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
}

/// The pods' gateway (the bridge's address) for a podCIDR: the range's first address, and the
/// prefix length. `None` for a range that is not IPv4 or leaves no room for pods.
pub fn gateway(pod_cidr: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (ip, len) = pod_cidr.split_once('/')?;
    let (ip, len): (std::net::Ipv4Addr, u8) = (ip.parse().ok()?, len.parse().ok()?);
    if len > 30 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((std::net::Ipv4Addr::from((u32::from(ip) & mask) + 1), len))
}

/// Creates the bridge with its gateway address if it is not there yet, so node services (the
/// agent's DNS) can listen on it before the first pod; the bridge plugin adopts it.
pub async fn ensure_bridge(bridge: &str, pod_cidr: &str) -> Result<std::net::Ipv4Addr, String> {
    let (gw, len) = gateway(pod_cidr).ok_or_else(|| format!("podCIDR {pod_cidr:?} is not a usable IPv4 range"))?;
    let ip = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("ip").args(&args).output().await.map_err(|e| format!("ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    let exists = tokio::process::Command::new("ip")
        .args(["link", "show", bridge])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !exists {
        ip(vec!["link".into(), "add".into(), bridge.into(), "type".into(), "bridge".into()]).await?;
    }
    ip(vec!["addr".into(), "replace".into(), format!("{gw}/{len}"), "dev".into(), bridge.into()]).await?;
    ip(vec!["link".into(), "set".into(), bridge.into(), "up".into()]).await?;
    Ok(gw)
}

/// Writes the configuration into `conf_dir` (atomically: the runtime watches the directory and
/// must never read half a file). Returns whether it changed.
pub fn write_conflist(conf_dir: &Path, settings: &CniSettings) -> std::io::Result<bool> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(&settings.ipam_dir)?;
    let path = conf_dir.join(format!("10-{NETWORK_NAME}.conflist"));
    let body = serde_json::to_vec_pretty(&conflist(settings)).map_err(std::io::Error::other)?;
    if std::fs::read(&path).ok().as_deref() == Some(body.as_slice()) {
        return Ok(false);
    }
    let tmp = conf_dir.join(format!(".10-{NETWORK_NAME}.conflist.tmp"));
    std::fs::write(&tmp, &body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_puts_pods_on_the_bridge_with_addresses_from_the_pod_cidr() {
        let settings =
            CniSettings { bridge: "skiff0".into(), pod_cidr: "10.244.3.0/24".into(), ipam_dir: "/d/ipam".into() };
        let c = conflist(&settings);
        assert_eq!(c["plugins"][0]["type"], "bridge");
        assert_eq!(c["plugins"][0]["bridge"], "skiff0");
        assert_eq!(c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(c["plugins"][1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn the_gateway_is_the_ranges_first_address() {
        assert_eq!(gateway("10.244.3.0/24"), Some(("10.244.3.1".parse().expect("ip"), 24)));
        assert_eq!(gateway("10.244.3.77/24"), Some(("10.244.3.1".parse().expect("ip"), 24)));
        assert_eq!(gateway("fd00::/64"), None);
        assert_eq!(gateway("10.0.0.0/31"), None);
    }

    #[test]
    fn writing_twice_reports_no_change() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let settings = CniSettings {
            bridge: "skiff0".into(),
            pod_cidr: "10.244.3.0/24".into(),
            ipam_dir: dir.path().join("ipam"),
        };
        assert!(write_conflist(&dir.path().join("net.d"), &settings)?);
        assert!(!write_conflist(&dir.path().join("net.d"), &settings)?);
        let changed = CniSettings { pod_cidr: "10.244.4.0/24".into(), ..settings };
        assert!(write_conflist(&dir.path().join("net.d"), &changed)?);
        Ok(())
    }
}
