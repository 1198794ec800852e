//! A container's environment (`env`, `envFrom`, `valueFrom`) and `$(VAR)` expansion, resolved
//! from the pod and the ConfigMaps and Secrets it names, which the worker fetches first.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// ConfigMaps and Secrets of the pod's namespace, by name, as fetched for one sync. A name that
/// is absent was not found.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, Value>,
    pub secrets: BTreeMap<String, Value>,
    /// The node's allocatable resources (`cpu`, `memory`), which a `resourceFieldRef` to a limit
    /// the container does not set reports, as upstream's does.
    pub node_allocatable: BTreeMap<String, String>,
    /// Service-account tokens for the pod's projected `serviceAccountToken` sources, by
    /// [`super::volumes::token_key`].
    pub tokens: BTreeMap<String, String>,
}

impl Sources {
    /// The value of `key` in the named ConfigMap (`data`, or `binaryData` as text).
    pub fn config_map_key(&self, name: &str, key: &str) -> Option<String> {
        let cm = self.config_maps.get(name)?;
        if let Some(v) = cm["data"][key].as_str() {
            return Some(v.to_string());
        }
        decode(cm["binaryData"][key].as_str()?)
    }

    /// The decoded value of `key` in the named Secret (`data`, or `stringData` if not merged).
    pub fn secret_key(&self, name: &str, key: &str) -> Option<String> {
        let s = self.secrets.get(name)?;
        if let Some(v) = s["data"][key].as_str() {
            return decode(v);
        }
        s["stringData"][key].as_str().map(str::to_string)
    }

    /// Every key of the named object's data, decoded.
    fn all(&self, secret: bool, name: &str) -> Option<Vec<(String, String)>> {
        let obj = if secret { self.secrets.get(name)? } else { self.config_maps.get(name)? };
        let mut out = Vec::new();
        for field in ["data", "binaryData", "stringData"] {
            if let Some(map) = obj[field].as_object() {
                for (k, v) in map {
                    let text = v.as_str().unwrap_or("");
                    let value = if field == "stringData" || (field == "data" && !secret) {
                        Some(text.to_string())
                    } else {
                        decode(text)
                    };
                    if let Some(value) = value {
                        out.push((k.clone(), value));
                    }
                }
            }
        }
        Some(out)
    }
}

fn decode(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The ConfigMaps (false) and Secrets (true) a pod refers to in env, envFrom, volumes and
/// image pull secrets, by name.
pub fn referenced(pod: &Value) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut add = |secret: bool, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            if !out.iter().any(|(s, n)| *s == secret && n == name) {
                out.push((secret, name.to_string()));
            }
        }
    };
    for field in ["initContainers", "containers"] {
        for c in super::containers(pod, field) {
            for e in c["env"].as_array().into_iter().flatten() {
                add(false, e.pointer("/valueFrom/configMapKeyRef/name").and_then(Value::as_str));
                add(true, e.pointer("/valueFrom/secretKeyRef/name").and_then(Value::as_str));
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                add(false, e.pointer("/configMapRef/name").and_then(Value::as_str));
                add(true, e.pointer("/secretRef/name").and_then(Value::as_str));
            }
        }
    }
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        add(false, v.pointer("/configMap/name").and_then(Value::as_str));
        add(true, v.pointer("/secret/secretName").and_then(Value::as_str));
        for source in v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            add(false, source.pointer("/configMap/name").and_then(Value::as_str));
            add(true, source.pointer("/secret/name").and_then(Value::as_str));
        }
    }
    for s in pod.pointer("/spec/imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
        add(true, s["name"].as_str());
    }
    out
}

/// A container's environment, in order, or why it cannot be built (the container then waits with
/// `CreateContainerConfigError`, as upstream's does).
pub fn resolve(pod: &Value, container: &Value, sources: &Sources) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = env.iter_mut().find(|(name, _)| *name == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let (secret, r) = match (from.get("configMapRef"), from.get("secretRef")) {
            (Some(r), _) => (false, r),
            (None, Some(r)) => (true, r),
            _ => continue,
        };
        let name = r["name"].as_str().unwrap_or("");
        match sources.all(secret, name) {
            Some(pairs) => {
                for (k, v) in pairs {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
            None if r["optional"].as_bool() == Some(true) => {}
            None => return Err(format!("{} \"{name}\" not found", if secret { "secret" } else { "configmap" })),
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        let value = if let Some(v) = e["value"].as_str() {
            Some(expand(v, &env))
        } else if let Some(from) = e.get("valueFrom") {
            value_from(pod, container, from, sources)?
        } else {
            Some(String::new())
        };
        if let Some(value) = value {
            set(&mut env, name.to_string(), value);
        }
    }
    Ok(env)
}

/// One `valueFrom`; `None` when an optional source is missing (the variable is then unset).
fn value_from(pod: &Value, container: &Value, from: &Value, sources: &Sources) -> Result<Option<String>, String> {
    if let Some(field) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
        return field_value(pod, field).map(Some).ok_or_else(|| format!("unsupported fieldPath: {field}"));
    }
    if let Some(r) = from.get("resourceFieldRef") {
        return resource_value(pod, container, r, sources).map(Some);
    }
    for (secret, field) in [(false, "configMapKeyRef"), (true, "secretKeyRef")] {
        if let Some(r) = from.get(field) {
            let (name, key) = (r["name"].as_str().unwrap_or(""), r["key"].as_str().unwrap_or(""));
            let value = if secret { sources.secret_key(name, key) } else { sources.config_map_key(name, key) };
            return match value {
                Some(v) => Ok(Some(v)),
                None if r["optional"].as_bool() == Some(true) => Ok(None),
                None if (if secret {
                    sources.secrets.contains_key(name)
                } else {
                    sources.config_maps.contains_key(name)
                }) =>
                {
                    Err(format!("couldn't find key {key} in {} {}/{name}", kind(secret), super::meta(pod, "namespace")))
                }
                None => Err(format!("{} \"{name}\" not found", kind(secret))),
            };
        }
    }
    Ok(Some(String::new()))
}

fn kind(secret: bool) -> &'static str {
    if secret {
        "Secret"
    } else {
        "ConfigMap"
    }
}

/// The downward API's fields (env `fieldRef` and downwardAPI volume items).
pub fn field_value(pod: &Value, path: &str) -> Option<String> {
    let text = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let map_entry = |field: &str, rest: &str| {
        let key = rest.strip_prefix("['")?.strip_suffix("']")?;
        Some(pod["metadata"][field][key].as_str().unwrap_or("").to_string())
    };
    match path {
        "metadata.name" => Some(text("/metadata/name")),
        "metadata.namespace" => Some(text("/metadata/namespace")),
        "metadata.uid" => Some(text("/metadata/uid")),
        "spec.nodeName" => Some(text("/spec/nodeName")),
        "spec.serviceAccountName" => Some(text("/spec/serviceAccountName")),
        "status.hostIP" => Some(text("/status/hostIP")),
        "status.podIP" => Some(text("/status/podIP")),
        "status.hostIPs" | "status.podIPs" => {
            let list = if path == "status.podIPs" { "/status/podIPs" } else { "/status/hostIPs" };
            let ips: Vec<&str> = pod
                .pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str())
                .collect();
            Some(ips.join(","))
        }
        "metadata.labels" | "metadata.annotations" => {
            let field = path.trim_start_matches("metadata.");
            let mut lines: Vec<String> = pod["metadata"][field]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
                .collect();
            lines.sort();
            Some(lines.join("\n"))
        }
        _ => {
            if let Some(rest) = path.strip_prefix("metadata.labels") {
                return map_entry("labels", rest);
            }
            if let Some(rest) = path.strip_prefix("metadata.annotations") {
                return map_entry("annotations", rest);
            }
            None
        }
    }
}

/// `resourceFieldRef`: a limit or request of a container, divided by the divisor and rounded up.
/// A missing limit reports the node's allocatable.
fn resource_value(pod: &Value, container: &Value, r: &Value, sources: &Sources) -> Result<String, String> {
    let target = match r["containerName"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => super::containers(pod, "containers")
            .iter()
            .chain(super::containers(pod, "initContainers"))
            .find(|c| super::name_of(c) == name)
            .ok_or_else(|| format!("container {name} not found"))?,
        None => container,
    };
    let resource = r["resource"].as_str().unwrap_or("");
    let (section, name) = resource.split_once('.').ok_or_else(|| format!("unsupported resource: {resource}"))?;
    let quantity = match target["resources"][section][name].as_str() {
        Some(q) => q,
        None if section == "limits" => sources.node_allocatable.get(name).map(String::as_str).unwrap_or("0"),
        None => "0",
    };
    let value = skiff_api_types::validation::parse_quantity(quantity)?;
    let divisor = match r["divisor"].as_str() {
        Some(d) => skiff_api_types::validation::parse_quantity(d)?,
        None => 1000,
    };
    if divisor <= 0 {
        return Err(format!("divisor {:?} must be positive", r["divisor"]));
    }
    // Both are milli-units; round up as upstream's ceiling division does.
    Ok(((value + divisor - 1) / divisor).to_string())
}

/// `$(VAR)` expansion against the variables defined so far: an undefined reference stays as
/// written, `$$` escapes a `$`.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Registry credentials for `image` from the pod's `kubernetes.io/dockerconfigjson` (or legacy
/// `dockercfg`) pull secrets: (username, password, auth, server).
pub fn registry_auth(image: &str, pull_secrets: &[Value]) -> Option<(String, String, String, String)> {
    let host = image_registry(image);
    for secret in pull_secrets {
        let (field, nested) = if secret["data"][".dockerconfigjson"].is_string() {
            (".dockerconfigjson", true)
        } else if secret["data"][".dockercfg"].is_string() {
            (".dockercfg", false)
        } else {
            continue;
        };
        let Some(text) = secret["data"][field].as_str().and_then(decode) else { continue };
        let Ok(config) = serde_json::from_str::<Value>(&text) else { continue };
        let auths = if nested { &config["auths"] } else { &config };
        for (server, entry) in auths.as_object().into_iter().flatten() {
            let server_host = server.trim_start_matches("https://").trim_start_matches("http://");
            let server_host = server_host.split('/').next().unwrap_or("");
            let matches = server_host == host || (host == "docker.io" && server_host == "index.docker.io");
            if matches {
                let text = |f: &str| entry[f].as_str().unwrap_or("").to_string();
                return Some((text("username"), text("password"), text("auth"), server.clone()));
            }
        }
    }
    None
}

/// The registry host an image reference pulls from (`docker.io` when it names none).
pub fn image_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert("settings".into(), json!({"data": {"mode": "fast", "level": "3"}}));
        s.secrets.insert("creds".into(), json!({"data": {"password": "aHVudGVyMg=="}}));
        s
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app",
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]},
            "status": {"podIP": "10.244.0.9", "hostIP": "10.0.0.1"}})
    }

    #[test]
    fn env_resolves_every_kind_of_source_in_order() {
        let container = json!({"name": "app",
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "GREETING", "value": "hello"},
            {"name": "MESSAGE", "value": "$(GREETING) from $(POD_NAME) $$(GREETING)"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": true}}},
        ]});
        let env = resolve(&pod(), &container, &sources()).expect("resolves");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_mode"), Some("fast"));
        assert_eq!(get("MESSAGE"), Some("hello from $(POD_NAME) $(GREETING)"), "only earlier variables expand");
        assert_eq!(get("POD_NAME"), Some("web"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("POD_IP"), Some("10.244.0.9"));
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("PASSWORD"), Some("hunter2"));
        assert_eq!(get("CPU"), Some("1"), "500m rounds up to one core");
        assert_eq!(get("MEM_MI"), Some("64"));
        assert_eq!(get("MAYBE"), None);
    }

    #[test]
    fn a_missing_required_source_is_a_config_error() {
        let container = json!({"name": "app",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]});
        assert_eq!(resolve(&pod(), &container, &sources()), Err("ConfigMap \"nope\" not found".to_string()));
        let container = json!({"name": "app",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nokey"}}}]});
        assert!(resolve(&pod(), &container, &sources()).is_err_and(|e| e.contains("couldn't find key nokey")));
    }

    #[test]
    fn references_are_collected_once_each() {
        let p = json!({"spec": {"containers": [{"name": "a",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "s"}}, {"configMapRef": {"name": "cm"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "s"}}, {"name": "w", "configMap": {"name": "other"}}],
            "imagePullSecrets": [{"name": "regcred"}]}});
        assert_eq!(
            referenced(&p),
            vec![(false, "cm".into()), (true, "s".into()), (false, "other".into()), (true, "regcred".into())]
        );
    }

    #[test]
    fn pull_secrets_match_the_images_registry() {
        let config = json!({"auths": {"127.0.0.1:5000": {"username": "u", "password": "p", "auth": "dTpw"}}});
        let encoded = base64::engine::general_purpose::STANDARD.encode(config.to_string());
        let secret = json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": encoded}});
        let auth = registry_auth("127.0.0.1:5000/team/app:1", std::slice::from_ref(&secret));
        assert_eq!(auth.map(|a| (a.0, a.1)), Some(("u".to_string(), "p".to_string())));
        assert!(registry_auth("nginx", &[secret]).is_none());
        assert_eq!(image_registry("nginx:1.25"), "docker.io");
        assert_eq!(image_registry("localhost/x"), "localhost");
    }
}
