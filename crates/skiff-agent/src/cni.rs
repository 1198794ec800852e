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
