//! The resources skiff serves: one table that discovery, routing, storage keys, OpenAPI and
//! `kubectl api-resources` all read, so they can never disagree.

/// The verbs of a stored resource that supports everything.
pub const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Verbs of the namespace resource (upstream serves no deletecollection for it).
const NAMESPACE_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
/// Verbs of review-style resources that are answered, never stored.
const CREATE_ONLY: &[&str] = &["create"];
const GET_ONLY: &[&str] = &["get"];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const UPDATE_ONLY: &[&str] = &["update"];
/// A namespace's status, and `finalize`, through which the namespace controller removes the
/// `kubernetes` finalizer once the namespace is empty.
const NAMESPACE_SUBRESOURCES: &[Subresource] = &[
    status("", "v1", "Namespace"),
    Subresource { name: "finalize", group: "", version: "v1", kind: "Namespace", verbs: UPDATE_ONLY },
];

/// A subresource such as `status` or `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind the subresource answers with (`Scale` for `scale`, the parent's kind for `status`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// How objects of a resource come to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Objects are kept in the store.
    Stored,
    /// A request is answered from the request itself (access reviews); nothing is kept.
    Virtual,
}

/// One served resource at one group-version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment, e.g. `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    pub storage: Storage,
    /// `metadata.generation` is bumped when anything but metadata and status changes.
    pub tracks_generation: bool,
    /// The OpenAPI schema name of the kind.
    pub schema: &'static str,
    /// Another version of a resource stored elsewhere: objects live under that resource's keys,
    /// in its form, and are converted on the way in and out (`convert`). Both versions then see
    /// the same objects, as upstream serves one storage through several versions.
    pub stored_as: Option<StoredAs>,
}

/// The group and version whose form and keys a converted resource shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAs {
    pub group: &'static str,
    pub version: &'static str,
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }

    /// The store key prefix under which all objects of this resource live.
    pub fn key_prefix(&self) -> String {
        let group = self.stored_as.map_or(self.group, |stored| stored.group);
        format!("/registry/{}/{}/", storage_group(group), self.plural)
    }

    /// The store key prefix of this resource in one namespace (all of it when `namespace` is None).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether this resource has a `status` subresource (then the main resource ignores status
    /// changes, and `/status` ignores everything else).
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }
}

/// `group/version`, or just `version` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn storage_group(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group
    }
}

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource { name: "status", group, version, kind, verbs: GET_PATCH_UPDATE }
}

const fn scale() -> Subresource {
    Subresource { name: "scale", group: "autoscaling", version: "v1", kind: "Scale", verbs: GET_PATCH_UPDATE }
}

const POD_SUBRESOURCES: &[Subresource] = &[
    status("", "v1", "Pod"),
    Subresource { name: "binding", group: "", version: "v1", kind: "Binding", verbs: CREATE_ONLY },
    Subresource { name: "eviction", group: "policy", version: "v1", kind: "Eviction", verbs: CREATE_ONLY },
    // Served by the pod's node agent; the API server proxies it.
    Subresource { name: "log", group: "", version: "v1", kind: "Pod", verbs: GET_ONLY },
];

const SERVICE_ACCOUNT_SUBS: &[Subresource] = &[
    // TokenRequest: a signed, expiring token for the account, optionally bound to a pod or secret.
    Subresource {
        name: "token",
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenRequest",
        verbs: CREATE_ONLY,
    },
];

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, namespaced: $ns:expr,
     short: $short:expr, categories: $cat:expr, verbs: $verbs:expr, sub: $sub:expr, schema: $schema:expr
     $(, $field:ident : $value:expr)*) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            verbs: $verbs,
            subresources: $sub,
            schema: $schema,
            $($field: $value,)*
            ..BASE
        }
    };
}

/// Defaults of the optional fields of the table's entries.
const BASE: Resource = Resource {
    group: "",
    version: "",
    kind: "",
    plural: "",
    singular: "",
    namespaced: false,
    short_names: &[],
    categories: &[],
    verbs: &[],
    subresources: &[],
    storage: Storage::Stored,
    tracks_generation: false,
    schema: "",
    stored_as: None,
};

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Every resource skiff serves, grouped by group-version in discovery order.
pub static RESOURCES: &[Resource] = &[
    resource!("", "v1", "Namespace", "namespaces", "namespace", namespaced: false, short: &["ns"], categories: NONE,
        verbs: NAMESPACE_VERBS, sub: NAMESPACE_SUBRESOURCES, schema: "io.k8s.api.core.v1.Namespace"),
    resource!("", "v1", "Pod", "pods", "pod", namespaced: true, short: &["po"], categories: ALL,
        verbs: ALL_VERBS, sub: POD_SUBRESOURCES, schema: "io.k8s.api.core.v1.Pod"),
    resource!("", "v1", "Node", "nodes", "node", namespaced: false, short: &["no"], categories: NONE,
        verbs: ALL_VERBS, sub: &[status("", "v1", "Node")], schema: "io.k8s.api.core.v1.Node"),
    resource!("", "v1", "Service", "services", "service", namespaced: true, short: &["svc"], categories: ALL,
        verbs: &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        sub: &[status("", "v1", "Service")], schema: "io.k8s.api.core.v1.Service"),
    resource!("", "v1", "Endpoints", "endpoints", "endpoints", namespaced: true, short: &["ep"], categories: NONE,
        verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.core.v1.Endpoints"),
    resource!("", "v1", "ConfigMap", "configmaps", "configmap", namespaced: true, short: &["cm"], categories: NONE,
        verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.core.v1.ConfigMap"),
    resource!("", "v1", "Secret", "secrets", "secret", namespaced: true, short: NONE, categories: NONE,
        verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.core.v1.Secret"),
    resource!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", namespaced: true, short: &["sa"],
        categories: NONE, verbs: ALL_VERBS, sub: SERVICE_ACCOUNT_SUBS, schema: "io.k8s.api.core.v1.ServiceAccount"),
    resource!("", "v1", "Event", "events", "event", namespaced: true, short: &["ev"], categories: NONE,
        verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.core.v1.Event"),
    resource!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", namespaced: true, short: &["quota"],
        categories: NONE, verbs: ALL_VERBS, sub: &[status("", "v1", "ResourceQuota")],
        schema: "io.k8s.api.core.v1.ResourceQuota"),
    resource!("", "v1", "LimitRange", "limitranges", "limitrange", namespaced: true, short: &["limits"],
        categories: NONE, verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.core.v1.LimitRange"),
    resource!("apps", "v1", "Deployment", "deployments", "deployment", namespaced: true, short: &["deploy"],
        categories: ALL, verbs: ALL_VERBS, sub: &[status("apps", "v1", "Deployment"), scale()],
        schema: "io.k8s.api.apps.v1.Deployment", tracks_generation: true),
    resource!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", namespaced: true, short: &["rs"],
        categories: ALL, verbs: ALL_VERBS, sub: &[status("apps", "v1", "ReplicaSet"), scale()],
        schema: "io.k8s.api.apps.v1.ReplicaSet", tracks_generation: true),
    resource!("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview",
        namespaced: false, short: NONE, categories: NONE, verbs: CREATE_ONLY, sub: &[],
        schema: "io.k8s.api.authentication.v1.SelfSubjectReview", storage: Storage::Virtual),
    resource!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
        "selfsubjectaccessreview", namespaced: false, short: NONE, categories: NONE, verbs: CREATE_ONLY, sub: &[],
        schema: "io.k8s.api.authorization.v1.SelfSubjectAccessReview", storage: Storage::Virtual),
    resource!("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
        "selfsubjectrulesreview", namespaced: false, short: NONE, categories: NONE, verbs: CREATE_ONLY, sub: &[],
        schema: "io.k8s.api.authorization.v1.SelfSubjectRulesReview", storage: Storage::Virtual),
    resource!("coordination.k8s.io", "v1", "Lease", "leases", "lease", namespaced: true, short: NONE,
        categories: NONE, verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.coordination.v1.Lease"),
    resource!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", namespaced: true,
        short: NONE, categories: NONE, verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.discovery.v1.EndpointSlice"),
    resource!("events.k8s.io", "v1", "Event", "events", "event", namespaced: true, short: &["ev"], categories: NONE,
        verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.events.v1.Event",
        stored_as: Some(StoredAs { group: "", version: "v1" })),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", namespaced: false,
        short: NONE, categories: NONE, verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.rbac.v1.ClusterRole"),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
        "clusterrolebinding", namespaced: false, short: NONE, categories: NONE, verbs: ALL_VERBS, sub: &[],
        schema: "io.k8s.api.rbac.v1.ClusterRoleBinding"),
    resource!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", namespaced: true, short: NONE,
        categories: NONE, verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.rbac.v1.Role"),
    resource!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", namespaced: true,
        short: NONE, categories: NONE, verbs: ALL_VERBS, sub: &[], schema: "io.k8s.api.rbac.v1.RoleBinding"),
];

/// Looks a resource up by the URL segments of a request.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The served API groups (without the core group), in discovery order, each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources of one group-version.
pub fn resources_of<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for r in RESOURCES {
            assert!(!r.verbs.is_empty(), "{} has no verbs", r.plural);
            let dup = RESOURCES.iter().filter(|o| o.group == r.group && o.version == r.version && o.plural == r.plural);
            assert_eq!(dup.count(), 1, "{}/{} listed twice", r.group, r.plural);
            assert!(r.schema.ends_with(r.kind), "{} schema {} does not name its kind", r.plural, r.schema);
        }
    }

    #[test]
    fn keys_are_scoped() {
        let pods = find("", "v1", "pods").expect("pods served");
        assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
        assert_eq!(pods.list_prefix(Some("default")), "/registry/core/pods/default/");
        assert_eq!(pods.list_prefix(None), "/registry/core/pods/");
        let nodes = find("", "v1", "nodes").expect("nodes served");
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
        let deploy = find_kind("apps", "v1", "Deployment").expect("deployments served");
        assert_eq!(deploy.key(Some("a"), "b"), "/registry/apps/deployments/a/b");
        assert!(deploy.subresource("scale").is_some());
        assert!(groups().iter().any(|(g, v)| *g == "apps" && v == &vec!["v1"]));
    }
}
