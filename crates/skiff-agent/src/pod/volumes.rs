//! A pod's volumes on the node: emptyDir, configMap, secret, downwardAPI and projected volumes
//! are directories under the pod's own directory, written before its containers start;
//! hostPath volumes are the host's paths. Each container then gets bind mounts of them.
//!
//! A projected `serviceAccountToken` source is a token for the pod's service account, bound to
//! the pod, that the worker requests through the TokenRequest API and renews at 80% of its
//! lifetime; the file is replaced in place, so running containers see the new token.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use base64::Engine as _;
use k8s_cri::v1 as cri;
use serde_json::Value;

use super::env::Sources;

/// A file of a volume: its path inside the volume, contents and mode.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What one volume is on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Volume {
    /// A directory the agent owns, with these files written into it (none for emptyDir).
    Managed { files: Vec<VolumeFile> },
    /// A path of the host; `create` when the volume's type asks for it to be created.
    Host { path: PathBuf, create: bool },
}

/// The pod's volumes by name, or why one cannot be set up (a `FailedMount` event; the
/// containers wait).
pub fn volumes(pod: &Value, sources: &Sources) -> Result<BTreeMap<String, Volume>, String> {
    let mut out = BTreeMap::new();
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = v["name"].as_str() else { continue };
        let volume = if v.get("emptyDir").is_some() {
            Volume::Managed { files: Vec::new() }
        } else if let Some(host) = v.get("hostPath") {
            let kind = host["type"].as_str().unwrap_or("");
            Volume::Host {
                path: PathBuf::from(host["path"].as_str().unwrap_or("/")),
                create: matches!(kind, "DirectoryOrCreate"),
            }
        } else if let Some(cm) = v.get("configMap") {
            Volume::Managed { files: object_files(false, cm, "name", sources, mode_of(cm))? }
        } else if let Some(secret) = v.get("secret") {
            Volume::Managed { files: object_files(true, secret, "secretName", sources, mode_of(secret))? }
        } else if let Some(downward) = v.get("downwardAPI") {
            Volume::Managed { files: downward_files(pod, downward, mode_of(downward))? }
        } else if let Some(projected) = v.get("projected") {
            let mode = mode_of(projected);
            let mut files = Vec::new();
            for source in projected["sources"].as_array().into_iter().flatten() {
                if let Some(cm) = source.get("configMap") {
                    files.extend(object_files(false, cm, "name", sources, mode)?);
                } else if let Some(secret) = source.get("secret") {
                    files.extend(object_files(true, secret, "name", sources, mode)?);
                } else if let Some(downward) = source.get("downwardAPI") {
                    files.extend(downward_files(pod, downward, mode)?);
                } else if let Some(token) = source.get("serviceAccountToken") {
                    let request = TokenSpec::of(token);
                    let data = sources
                        .tokens
                        .get(&request.key())
                        .ok_or_else(|| format!("volume {name:?}: no service account token issued yet"))?;
                    let path = safe_path(token["path"].as_str().unwrap_or(""))?;
                    files.push(VolumeFile { path, data: data.as_bytes().to_vec(), mode });
                }
            }
            Volume::Managed { files }
        } else {
            return Err(format!("volume {name:?}: this volume type is not supported by skiff's agent"));
        };
        out.insert(name.to_string(), volume);
    }
    Ok(out)
}

/// What a projected `serviceAccountToken` source asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// `None`: the API server's own audiences.
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

impl TokenSpec {
    fn of(source: &Value) -> Self {
        Self {
            audience: source["audience"].as_str().filter(|a| !a.is_empty()).map(str::to_string),
            expiration_seconds: source["expirationSeconds"].as_i64().unwrap_or(3600),
        }
    }

    /// The key the token is kept under (one token serves every source asking the same).
    pub fn key(&self) -> String {
        format!("{}|{}", self.audience.as_deref().unwrap_or(""), self.expiration_seconds)
    }
}

/// The tokens the pod's projected volumes need, without duplicates.
pub fn token_specs(pod: &Value) -> Vec<TokenSpec> {
    let mut out: Vec<TokenSpec> = Vec::new();
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        for source in v["projected"]["sources"].as_array().into_iter().flatten() {
            if let Some(token) = source.get("serviceAccountToken") {
                let spec = TokenSpec::of(token);
                if !out.contains(&spec) {
                    out.push(spec);
                }
            }
        }
    }
    out
}

fn mode_of(source: &Value) -> u32 {
    source["defaultMode"].as_u64().map(|m| m as u32).unwrap_or(0o644)
}

/// The files of a configMap or secret volume (all keys, or the listed `items`).
fn object_files(
    secret: bool,
    source: &Value,
    name_field: &str,
    sources: &Sources,
    mode: u32,
) -> Result<Vec<VolumeFile>, String> {
    let name = source[name_field].as_str().unwrap_or("");
    let optional = source["optional"].as_bool() == Some(true);
    let obj = if secret { sources.secrets.get(name) } else { sources.config_maps.get(name) };
    let Some(obj) = obj else {
        return if optional {
            Ok(Vec::new())
        } else {
            Err(format!("{} \"{name}\" not found", if secret { "secret" } else { "configmap" }))
        };
    };
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let text = v.as_str().unwrap_or("");
        let bytes = if secret { b64(text) } else { Some(text.as_bytes().to_vec()) };
        data.extend(bytes.map(|b| (k.clone(), b)));
    }
    for (k, v) in obj["binaryData"].as_object().into_iter().flatten() {
        data.extend(v.as_str().and_then(b64).map(|b| (k.clone(), b)));
    }
    let mut files = Vec::new();
    match source["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or("");
                let Some(bytes) = data.get(key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("configmap or secret {name:?} has no key {key:?}"));
                };
                let path = item["path"].as_str().unwrap_or(key);
                let mode = item["mode"].as_u64().map(|m| m as u32).unwrap_or(mode);
                files.push(VolumeFile { path: safe_path(path)?, data: bytes.clone(), mode });
            }
        }
        None => {
            for (key, bytes) in data {
                files.push(VolumeFile { path: safe_path(&key)?, data: bytes, mode });
            }
        }
    }
    Ok(files)
}

fn downward_files(pod: &Value, source: &Value, mode: u32) -> Result<Vec<VolumeFile>, String> {
    let mut files = Vec::new();
    for item in source["items"].as_array().into_iter().flatten() {
        let path = safe_path(item["path"].as_str().unwrap_or(""))?;
        let mode = item["mode"].as_u64().map(|m| m as u32).unwrap_or(mode);
        let value = if let Some(field) = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
            super::env::field_value(pod, field).ok_or_else(|| format!("unsupported fieldPath {field}"))?
        } else {
            return Err(format!("downwardAPI item {path:?}: only fieldRef is supported"));
        };
        files.push(VolumeFile { path, data: value.into_bytes(), mode });
    }
    Ok(files)
}

/// A relative path that stays inside the volume.
fn safe_path(path: &str) -> Result<String, String> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|part| part == "..") {
        return Err(format!("volume file path {path:?} must be relative and must not contain '..'"));
    }
    Ok(path.to_string())
}

/// Writes the pod's managed volumes under `pod_dir/volumes/NAME` and returns every volume's
/// host path. Files are rewritten on every sync, so a changed ConfigMap reaches the pod.
pub fn materialize(pod_dir: &Path, volumes: &BTreeMap<String, Volume>) -> std::io::Result<BTreeMap<String, PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = BTreeMap::new();
    for (name, volume) in volumes {
        match volume {
            Volume::Host { path, create } => {
                if *create {
                    std::fs::create_dir_all(path)?;
                }
                paths.insert(name.clone(), path.clone());
            }
            Volume::Managed { files } => {
                let dir = pod_dir.join("volumes").join(name);
                std::fs::create_dir_all(&dir)?;
                for file in files {
                    let target = dir.join(&file.path);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    if std::fs::read(&target).ok().as_deref() != Some(file.data.as_slice()) {
                        let tmp = target.with_extension("skiff-tmp");
                        std::fs::write(&tmp, &file.data)?;
                        std::fs::rename(&tmp, &target)?;
                    }
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
                }
                paths.insert(name.clone(), dir);
            }
        }
    }
    Ok(paths)
}

/// The container's bind mounts: its volumeMounts (with subPath) and the termination-message file.
pub fn container_mounts(
    container: &Value,
    volume_paths: &BTreeMap<String, PathBuf>,
    termination_file: Option<&Path>,
) -> Result<Vec<cri::Mount>, String> {
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("");
        let base = volume_paths.get(name).ok_or_else(|| format!("volumeMount {name:?}: no such volume"))?;
        let host = match m["subPath"].as_str().filter(|s| !s.is_empty()) {
            Some(sub) => base.join(safe_path(sub)?),
            None => base.clone(),
        };
        mounts.push(cri::Mount {
            container_path: m["mountPath"].as_str().unwrap_or("").to_string(),
            host_path: host.to_string_lossy().into_owned(),
            readonly: m["readOnly"].as_bool().unwrap_or(false),
            ..Default::default()
        });
    }
    if let Some(file) = termination_file {
        mounts.push(cri::Mount {
            container_path: container["terminationMessagePath"].as_str().unwrap_or("/dev/termination-log").to_string(),
            host_path: file.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod token_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn projected_tokens_are_written_from_the_issued_ones() {
        let pod = json!({"metadata": {"namespace": "ns"}, "spec": {"volumes": [{"name": "api", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"serviceAccountToken": {"path": "vault", "audience": "vault"}},
            {"serviceAccountToken": {"path": "again", "expirationSeconds": 3607}}]}}]}});
        let specs = token_specs(&pod);
        assert_eq!(specs.len(), 2, "equal requests share one token");
        let mut sources = Sources::default();
        assert!(volumes(&pod, &sources).is_err(), "no token yet: the volume cannot be set up");
        for spec in &specs {
            sources.tokens.insert(spec.key(), format!("jwt-for-{}", spec.audience.as_deref().unwrap_or("api")));
        }
        let Some(Volume::Managed { files }) = volumes(&pod, &sources).expect("volumes").remove("api") else {
            panic!("a managed volume");
        };
        let file = |p: &str| files.iter().find(|f| f.path == p).map(|f| String::from_utf8_lossy(&f.data).to_string());
        assert_eq!(file("token").as_deref(), Some("jwt-for-api"));
        assert_eq!(file("again").as_deref(), Some("jwt-for-api"));
        assert_eq!(file("vault").as_deref(), Some("jwt-for-vault"));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert("site".into(), json!({"data": {"index.html": "<h1>hi</h1>", "other": "x"}}));
        s.secrets.insert("tls".into(), json!({"data": {"key": "c2VjcmV0"}}));
        s
    }

    #[test]
    fn config_maps_secrets_and_downward_api_become_files() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"volumes": [
            {"name": "site", "configMap": {"name": "site", "items": [{"key": "index.html", "path": "www/index.html"}]}},
            {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400}},
            {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/tmp/skiff-host", "type": "DirectoryOrCreate"}},
        ]}});
        let v = volumes(&pod, &sources()).expect("volumes");
        assert_eq!(
            v["site"],
            Volume::Managed {
                files: vec![VolumeFile { path: "www/index.html".into(), data: b"<h1>hi</h1>".to_vec(), mode: 0o644 }]
            }
        );
        assert_eq!(
            v["tls"],
            Volume::Managed { files: vec![VolumeFile { path: "key".into(), data: b"secret".to_vec(), mode: 0o400 }] }
        );
        assert_eq!(
            v["info"],
            Volume::Managed { files: vec![VolumeFile { path: "name".into(), data: b"web".to_vec(), mode: 0o644 }] }
        );
        assert_eq!(v["scratch"], Volume::Managed { files: vec![] });
        assert_eq!(v["host"], Volume::Host { path: "/tmp/skiff-host".into(), create: true });
    }

    #[test]
    fn a_missing_config_map_fails_the_mount_unless_optional() {
        let pod = |optional: bool| json!({"spec": {"volumes": [{"name": "c", "configMap": {"name": "absent", "optional": optional}}]}});
        assert!(volumes(&pod(false), &sources()).is_err_and(|e| e.contains("\"absent\" not found")));
        assert!(volumes(&pod(true), &sources()).is_ok());
    }

    #[test]
    fn paths_cannot_escape_the_volume() {
        let pod = json!({"spec": {"volumes": [{"name": "c",
            "configMap": {"name": "site", "items": [{"key": "other", "path": "../../etc/passwd"}]}}]}});
        assert!(volumes(&pod, &sources()).is_err());
    }

    #[test]
    fn volumes_are_written_and_mounted_with_sub_paths() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut v = BTreeMap::new();
        v.insert(
            "site".to_string(),
            Volume::Managed { files: vec![VolumeFile { path: "a/b.txt".into(), data: b"B".to_vec(), mode: 0o600 }] },
        );
        let paths = materialize(dir.path(), &v)?;
        assert_eq!(std::fs::read(dir.path().join("volumes/site/a/b.txt"))?, b"B");
        let container = json!({"volumeMounts": [{"name": "site", "mountPath": "/data", "readOnly": true},
            {"name": "site", "mountPath": "/b", "subPath": "a"}]});
        let mounts = container_mounts(&container, &paths, Some(Path::new("/t/term"))).expect("mounts");
        assert_eq!(mounts.len(), 3);
        assert!(mounts[0].readonly);
        assert!(mounts[1].host_path.ends_with("volumes/site/a"));
        assert_eq!(mounts[2].container_path, "/dev/termination-log");
        let missing = json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]});
        assert!(container_mounts(&missing, &paths, None).is_err());
        Ok(())
    }
}
