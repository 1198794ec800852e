//! Namespace deletion, as upstream's namespace controller.
//!
//! Every namespace is created with `kubernetes` in `spec.finalizers`, so deleting it only marks
//! it (`deletionTimestamp`, phase `Terminating`) and the API refuses new objects in it. While
//! this server leads, the controller then deletes everything in such a namespace through the
//! API, one collection per namespaced resource that discovery lists: pods gracefully, so the
//! namespace waits until their nodes have stopped them, and objects with finalizers wait for
//! whoever holds them. Once a look finds nothing left, it removes `kubernetes` through
//! `namespaces/finalize`, and the API server deletes the namespace. Until then the namespace's
//! status carries upstream's conditions (`NamespaceContentRemaining`,
//! `NamespaceFinalizersRemaining`, ...), so `kubectl describe namespace` says what it waits for.
//!
//! Unlike the other controllers this one is not a function of the manager's snapshot: a
//! namespace can hold any resource the API serves, most of which the manager does not cache.
//! What it decides (which collections, which conditions, the finalize body) are the pure
//! functions below; [`run`] does the reading and writing, its writes fenced like every
//! controller's.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientError;
use skiff_client::Reflector;

/// The finalizer this controller owns in a namespace's `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// How often the namespaces cache is looked at for namespaces being deleted.
const POLL: Duration = Duration::from_millis(250);
/// How long a namespace that still has content waits before it is looked at again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a discovery answer is used before it is asked again.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// A namespaced collection the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResource {
    /// `/api/v1` or `/apis/GROUP/VERSION`.
    pub base: String,
    /// Empty for the core group.
    pub group: String,
    pub plural: String,
    /// Whether the collection answers DELETE; otherwise objects are deleted one by one.
    pub delete_collection: bool,
}

impl ApiResource {
    /// The collection's path in namespace `ns`.
    pub fn collection(&self, ns: &str) -> String {
        format!("{}/namespaces/{ns}/{}", self.base, self.plural)
    }

    /// Upstream's group-resource spelling: `pods`, `deployments.apps`.
    pub fn label(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The namespaced resources of one discovery document (an `APIResourceList`) at `base` that can
/// be listed and deleted; subresources are left out.
pub fn namespaced_resources(base: &str, group: &str, list: &Value) -> Vec<ApiResource> {
    let Some(resources) = list.get("resources").and_then(Value::as_array) else { return Vec::new() };
    resources
        .iter()
        .filter(|r| r.get("namespaced").and_then(Value::as_bool) == Some(true))
        .filter_map(|r| {
            let plural = r.get("name").and_then(Value::as_str).filter(|n| !n.contains('/'))?;
            let verbs: Vec<&str> =
                r.get("verbs").and_then(Value::as_array).map(|v| v.iter().filter_map(Value::as_str).collect())?;
            (verbs.contains(&"list") && verbs.contains(&"delete")).then(|| ApiResource {
                base: base.to_string(),
                group: group.to_string(),
                plural: plural.to_string(),
                delete_collection: verbs.contains(&"deletecollection"),
            })
        })
        .collect()
}

/// The `(base, group)` of every group's preferred version in an `APIGroupList`.
pub fn preferred_versions(groups: &Value) -> Vec<(String, String)> {
    let Some(groups) = groups.get("groups").and_then(Value::as_array) else { return Vec::new() };
    groups
        .iter()
        .filter_map(|g| {
            let name = g.get("name").and_then(Value::as_str)?;
            let version = g.pointer("/preferredVersion/groupVersion").and_then(Value::as_str)?;
            Some((format!("/apis/{version}"), name.to_string()))
        })
        .collect()
}

/// Whether the namespace is being deleted and waits for this controller.
pub fn waits_for_us(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// What one look found still in a namespace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Objects left, per resource label.
    pub objects: BTreeMap<String, usize>,
    /// Objects left that carry finalizers, per finalizer.
    pub finalizers: BTreeMap<String, usize>,
    /// Resources whose objects this look could not list or delete, with the error.
    pub failures: Vec<String>,
}

impl Contents {
    /// Counts the objects of `resource` found in the namespace.
    pub fn count(&mut self, resource: &ApiResource, items: &[Value]) {
        if items.is_empty() {
            return;
        }
        *self.objects.entry(resource.label()).or_default() += items.len();
        for item in items {
            let finalizers = item.pointer("/metadata/finalizers").and_then(Value::as_array);
            for f in finalizers.into_iter().flatten().filter_map(Value::as_str) {
                *self.finalizers.entry(f.to_string()).or_default() += 1;
            }
        }
    }

    /// Whether the namespace may be finalized: nothing left and nothing failed.
    pub fn empty(&self) -> bool {
        self.objects.is_empty() && self.failures.is_empty()
    }
}

/// The conditions a namespace with `contents` left should carry (upstream's types, reasons and
/// messages), keeping the transition time of any condition whose status is unchanged; `None`
/// when `current` already says the same.
pub fn conditions(contents: &Contents, current: &[Value], now: &str) -> Option<Vec<Value>> {
    let counts = |m: &BTreeMap<String, usize>, what: &str| {
        m.iter().map(|(name, n)| format!("{name} {what} {n} resource instances")).collect::<Vec<_>>().join(", ")
    };
    let content_failure = if contents.failures.is_empty() {
        ("False", "ContentDeleted", "All content successfully deleted, may be waiting on finalization".to_string())
    } else {
        (
            "True",
            "ContentDeletionFailed",
            format!("Failed to delete all resource types: {}", contents.failures.join("; ")),
        )
    };
    let remaining = if contents.objects.is_empty() {
        ("False", "ContentRemoved", "All content successfully removed".to_string())
    } else {
        ("True", "SomeResourcesRemain", format!("Some resources are remaining: {}", counts(&contents.objects, "has")))
    };
    let finalizers = if contents.finalizers.is_empty() {
        ("False", "ContentHasNoFinalizers", "All content-preserving finalizers finished".to_string())
    } else {
        (
            "True",
            "SomeFinalizersRemain",
            format!("Some content in the namespace has finalizers remaining: {}", counts(&contents.finalizers, "in")),
        )
    };
    let wanted = [
        (
            "NamespaceDeletionDiscoveryFailure",
            ("False", "ResourcesDiscovered", "All resources successfully discovered".to_string()),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            ("False", "ParsedGroupVersions", "All legacy kube types successfully parsed".to_string()),
        ),
        ("NamespaceDeletionContentFailure", content_failure),
        ("NamespaceContentRemaining", remaining),
        ("NamespaceFinalizersRemaining", finalizers),
    ];
    let same = |c: &Value, kind: &str, status: &str| c["type"] == kind && c["status"] == status;
    let unchanged = wanted.iter().all(|(kind, (status, reason, message))| {
        current.iter().any(|c| same(c, kind, status) && c["reason"] == *reason && c["message"] == *message)
    });
    if unchanged {
        return None;
    }
    Some(
        wanted
            .iter()
            .map(|(kind, (status, reason, message))| {
                let since = current
                    .iter()
                    .find(|c| same(c, kind, status))
                    .and_then(|c| c.get("lastTransitionTime").cloned())
                    .unwrap_or_else(|| json!(now));
                json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
            })
            .collect(),
    )
}

/// The body of the `namespaces/finalize` write: the namespace without our finalizer, with its
/// resourceVersion, so a namespace that changed meanwhile is looked at again.
pub fn finalize_body(ns: &Namespace) -> Value {
    let finalizers: Vec<&str> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .map(|f| f.iter().map(String::as_str).filter(|f| *f != FINALIZER).collect())
        .unwrap_or_default();
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns.metadata.name, "resourceVersion": ns.metadata.resource_version},
        "spec": {"finalizers": finalizers}})
}

/// Runs until dropped (the manager drops it with its leadership): empties and finalizes every
/// namespace being deleted. `reader` lists and discovers; `writer` carries the fencing token.
pub async fn run(reader: &Client, writer: &Client, namespaces: &Reflector<Namespace>) {
    let mut discovered: Option<(Instant, Vec<ApiResource>)> = None;
    let mut not_before: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(POLL).await;
        if !namespaces.synced() {
            continue;
        }
        let now = Instant::now();
        let pending: Vec<_> = namespaces.shared().into_iter().filter(|ns| waits_for_us(ns)).collect();
        not_before.retain(|uid, _| pending.iter().any(|ns| ns.metadata.uid.as_deref() == Some(uid.as_str())));
        let due: Vec<_> = pending
            .into_iter()
            .filter(|ns| not_before.get(ns.metadata.uid.as_deref().unwrap_or("")).is_none_or(|t| now >= *t))
            .collect();
        if due.is_empty() {
            continue;
        }
        if discovered.as_ref().is_none_or(|(at, _)| at.elapsed() > DISCOVERY_TTL) {
            match discover(reader).await {
                Ok(resources) => discovered = Some((Instant::now(), resources)),
                Err(e) => {
                    tracing::warn!("namespace controller: discovery failed: {e}");
                    continue;
                }
            }
        }
        let Some((_, resources)) = &discovered else { continue };
        for ns in due {
            let name = ns.metadata.name.clone().unwrap_or_default();
            match empty_and_finalize(reader, writer, resources, &ns).await {
                Ok(true) => tracing::info!(namespace = %name, "namespace emptied and finalized"),
                Ok(false) => {}
                Err(e) => tracing::debug!(namespace = %name, "namespace deletion goes on later: {e}"),
            }
            not_before.insert(ns.metadata.uid.clone().unwrap_or_default(), Instant::now() + RETRY);
        }
    }
}

/// Every namespaced resource the API serves, from its discovery documents.
async fn discover(client: &Client) -> Result<Vec<ApiResource>, ClientError> {
    let core: Value = client.get("/api/v1").await?;
    let mut resources = namespaced_resources("/api/v1", "", &core);
    let groups: Value = client.get("/apis").await?;
    for (base, group) in preferred_versions(&groups) {
        let list: Value = client.get(&base).await?;
        resources.extend(namespaced_resources(&base, &group, &list));
    }
    Ok(resources)
}

/// One look at a namespace being deleted: deletes what is in it, and finalizes it if nothing
/// was. Answers whether it was finalized.
async fn empty_and_finalize(
    reader: &Client,
    writer: &Client,
    resources: &[ApiResource],
    ns: &Namespace,
) -> Result<bool, ClientError> {
    let name = ns.metadata.name.as_deref().unwrap_or_default();
    let mut contents = Contents::default();
    for resource in resources {
        let path = resource.collection(name);
        let items = match reader.list::<Value>(&path).await {
            Ok(list) => list.items,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                contents.failures.push(format!("{}: {e}", resource.label()));
                continue;
            }
        };
        if items.iter().all(|o| o.pointer("/metadata/deletionTimestamp").is_some()) {
            contents.count(resource, &items);
            continue;
        }
        if let Err(e) = delete_all(writer, resource, &path, &items).await {
            contents.failures.push(format!("{}: {e}", resource.label()));
        }
        // What the deletes left: objects waiting for finalizers or a graceful end.
        match reader.list::<Value>(&path).await {
            Ok(left) => contents.count(resource, &left.items),
            Err(e) if e.is_not_found() => {}
            Err(e) => contents.failures.push(format!("{}: {e}", resource.label())),
        }
    }
    if contents.empty() {
        let finalize = format!("/api/v1/namespaces/{name}/finalize");
        let _: Value = writer.update(&finalize, &finalize_body(ns)).await?;
        return Ok(true);
    }
    let current: Vec<Value> = ns
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Some(conditions) = conditions(&contents, &current, &now) {
        let patch = json!({"status": {"conditions": conditions}});
        let _: Value = writer.patch_merge(&format!("/api/v1/namespaces/{name}/status"), &patch).await?;
    }
    Ok(false)
}

/// Deletes every object of one resource in the namespace: the collection at once where the API
/// allows it, else one by one. Objects already gone or changed meanwhile are the next look's.
async fn delete_all(writer: &Client, resource: &ApiResource, path: &str, items: &[Value]) -> Result<(), ClientError> {
    let options = json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"});
    let ignore = |e: ClientError| if e.is_not_found() || e.is_conflict() { Ok(()) } else { Err(e) };
    if resource.delete_collection {
        return writer.delete::<Value>(path, &options).await.map(|_| ()).or_else(ignore);
    }
    for item in items.iter().filter(|o| o.pointer("/metadata/deletionTimestamp").is_none()) {
        let Some(object) = item.pointer("/metadata/name").and_then(Value::as_str) else { continue };
        writer.delete::<Value>(&format!("{path}/{object}"), &options).await.map(|_| ()).or_else(ignore)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(value: Value) -> Namespace {
        serde_json::from_value(value).expect("namespace fixture")
    }

    #[test]
    fn discovery_keeps_namespaced_listable_deletable_collections() {
        let core = json!({"resources": [
            {"name": "pods", "namespaced": true, "verbs": ["create", "delete", "deletecollection", "get", "list"]},
            {"name": "pods/status", "namespaced": true, "verbs": ["get", "patch", "update"]},
            {"name": "nodes", "namespaced": false, "verbs": ["delete", "deletecollection", "list"]},
            {"name": "bindings", "namespaced": true, "verbs": ["create"]},
            {"name": "services", "namespaced": true, "verbs": ["delete", "get", "list"]},
        ]});
        let found = namespaced_resources("/api/v1", "", &core);
        let names: Vec<(String, bool)> = found.iter().map(|r| (r.label(), r.delete_collection)).collect();
        assert_eq!(names, vec![("pods".to_string(), true), ("services".to_string(), false)]);
        assert_eq!(found[0].collection("team-a"), "/api/v1/namespaces/team-a/pods");

        let apps = json!({"resources": [{"name": "deployments", "namespaced": true, "verbs": ["delete", "deletecollection", "list"]}]});
        let deployments = namespaced_resources("/apis/apps/v1", "apps", &apps);
        assert_eq!(deployments[0].label(), "deployments.apps");
        assert_eq!(deployments[0].collection("x"), "/apis/apps/v1/namespaces/x/deployments");

        let groups = json!({"groups": [
            {"name": "apps", "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
            {"name": "broken"},
        ]});
        assert_eq!(preferred_versions(&groups), vec![("/apis/apps/v1".to_string(), "apps".to_string())]);
        assert!(namespaced_resources("/api/v1", "", &json!({"kind": "Status"})).is_empty(), "no resources, none kept");
    }

    #[test]
    fn only_deleted_namespaces_holding_our_finalizer_wait_for_us() {
        let live = namespace(json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}}));
        let deleted = namespace(json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": ["example.com/other", "kubernetes"]}}));
        let finalized = namespace(json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": ["example.com/other"]}}));
        assert!(!waits_for_us(&live));
        assert!(waits_for_us(&deleted));
        assert!(!waits_for_us(&finalized));
        assert_eq!(
            finalize_body(&namespace(json!({"metadata": {"name": "a", "resourceVersion": "7",
                "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"finalizers": ["example.com/other", "kubernetes"]}}))),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "resourceVersion": "7"},
                "spec": {"finalizers": ["example.com/other"]}}),
            "only our finalizer is removed, under a precondition"
        );
    }

    #[test]
    fn conditions_say_what_remains_and_stay_put_when_nothing_changed() {
        let pods = ApiResource {
            base: "/api/v1".into(),
            group: String::new(),
            plural: "pods".into(),
            delete_collection: true,
        };
        let deployments = ApiResource {
            base: "/apis/apps/v1".into(),
            group: "apps".into(),
            plural: "deployments".into(),
            delete_collection: true,
        };
        let mut contents = Contents::default();
        contents.count(&pods, &[json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "b"}})]);
        contents.count(&deployments, &[json!({"metadata": {"name": "d", "finalizers": ["example.com/hold"]}})]);
        contents.count(&deployments, &[]);
        assert!(!contents.empty());

        let first = conditions(&contents, &[], "2026-01-01T00:00:00Z").expect("new conditions");
        let by_type = |all: &[Value], kind: &str| all.iter().find(|c| c["type"] == kind).cloned().expect(kind);
        let remaining = by_type(&first, "NamespaceContentRemaining");
        assert_eq!(remaining["status"], "True");
        assert_eq!(
            remaining["message"],
            "Some resources are remaining: deployments.apps has 1 resource instances, pods has 2 resource instances"
        );
        let held = by_type(&first, "NamespaceFinalizersRemaining");
        assert_eq!(
            held["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
        );
        assert_eq!(by_type(&first, "NamespaceDeletionContentFailure")["status"], "False");

        assert_eq!(conditions(&contents, &first, "2026-01-01T00:00:09Z"), None, "unchanged: no write");

        // The pods went; the transition time of what did not change is kept.
        let mut fewer = Contents::default();
        fewer.count(&deployments, &[json!({"metadata": {"name": "d", "finalizers": ["example.com/hold"]}})]);
        fewer.failures.push("services: forbidden".into());
        let second = conditions(&fewer, &first, "2026-01-01T00:00:09Z").expect("changed");
        assert_eq!(by_type(&second, "NamespaceContentRemaining")["lastTransitionTime"], "2026-01-01T00:00:00Z");
        let failure = by_type(&second, "NamespaceDeletionContentFailure");
        assert_eq!(
            (failure["status"].as_str(), failure["lastTransitionTime"].as_str()),
            (Some("True"), Some("2026-01-01T00:00:09Z"))
        );
        assert!(!fewer.empty());
        assert!(Contents::default().empty());
    }
}
