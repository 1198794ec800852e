//! The ClusterRoles and ClusterRoleBindings every cluster starts with: the user-facing
//! `cluster-admin`, `admin`, `edit` and `view` (the last three aggregated from the
//! `system:aggregate-to-*` roles, so a ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-edit`
//! extends `edit` and `admin`), what every authenticated user may do (`system:basic-user`,
//! `system:discovery`, `system:public-info-viewer`), metrics readers (`system:monitoring`), and
//! skiff's own components, each with what it uses.
//!
//! They are created when missing and left alone when present, so an operator's edits survive a
//! restart; deleting one restores the default at the next start.

use serde_json::json;
use serde_json::Value;

const AGGREGATE: &str = "rbac.authorization.k8s.io/aggregate-to-";
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ: &[&str] = &["get", "list", "watch"];

/// The scheduler's user name.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The controllers' user name.
pub const CONTROLLERS_USER: &str = "system:kube-controller-manager";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn paths(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    let mut all = serde_json::Map::new();
    all.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for (k, v) in labels {
        all.insert((*k).to_string(), (*v).into());
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": all,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], selects: &str) -> Value {
    let mut r = role(name, labels, Vec::new());
    r["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE}{selects}"): "true"}}]});
    r
}

fn binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, name)| json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

/// The bootstrap ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let to = |levels: &[&str]| -> Vec<(String, String)> {
        levels.iter().map(|l| (format!("{AGGREGATE}{l}"), "true".to_string())).collect()
    };
    let view_labels = to(&["admin", "edit", "view"]);
    let edit_labels = to(&["admin", "edit"]);
    let admin_labels = to(&["admin"]);
    let workloads = [
        "deployments",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
        "daemonsets",
    ];
    fn labels(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    vec![
        role("cluster-admin", &[], vec![rule(&["*"], &["*"], &["*"]), paths(&["*"], &["*"])]),
        aggregated("admin", &[], "admin"),
        aggregated("edit", &labels(&admin_labels), "edit"),
        aggregated("view", &labels(&edit_labels), "view"),
        role(
            "system:aggregate-to-view",
            &labels(&view_labels),
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "pods/log",
                        "pods/status",
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "replicationcontrollers/status",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "bindings",
                        "events",
                        "limitranges",
                        "resourcequotas",
                        "resourcequotas/status",
                        "namespaces",
                        "namespaces/status",
                    ],
                ),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                        "daemonsets",
                        "daemonsets/status",
                        "controllerrevisions",
                    ],
                ),
                rule(READ, &["batch"], &["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
                rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
                rule(READ, &["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"]),
                rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(READ, &["events.k8s.io"], &["events"]),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &labels(&edit_labels),
            vec![
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
                ),
                rule(&["create"], &[""], &["pods/eviction", "serviceaccounts/token"]),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(WRITE, &["apps"], &workloads),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["networking.k8s.io"], &["ingresses", "networkpolicies"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(WRITE, &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
        role(
            "system:aggregate-to-admin",
            &labels(&admin_labels),
            vec![
                rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
                rule(
                    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                ),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![paths(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![paths(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
        role("system:monitoring", &[], vec![paths(&["get"], &["/metrics", "/livez", "/readyz", "/healthz"])]),
        role(
            "system:kube-scheduler",
            &[],
            vec![
                rule(READ, &[""], &["pods", "nodes", "namespaces", "services"]),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["create", "patch", "update"], &["", "events.k8s.io"], &["events"]),
            ],
        ),
        // The garbage collector deletes whatever an owner no longer needs, so (as upstream's
        // garbage collector role) the controllers read, update and delete every resource; they
        // create only the objects they manage.
        role(
            "system:kube-controller-manager",
            &[],
            vec![
                rule(&["get", "list", "watch", "update", "patch", "delete", "deletecollection"], &["*"], &["*"]),
                rule(
                    &["create"],
                    &[""],
                    &["pods", "pods/eviction", "events", "endpoints", "serviceaccounts", "configmaps"],
                ),
                rule(&["create"], &["apps"], &["replicasets"]),
                rule(&["create"], &["discovery.k8s.io"], &["endpointslices"]),
                rule(&["create"], &["events.k8s.io"], &["events"]),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
            ],
        ),
    ]
}

/// The bootstrap ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &[("Group", super::MASTERS)]),
        binding("system:basic-user", "system:basic-user", &[("Group", "system:authenticated")]),
        binding("system:discovery", "system:discovery", &[("Group", "system:authenticated")]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[("Group", "system:authenticated"), ("Group", "system:unauthenticated")],
        ),
        binding("system:monitoring", "system:monitoring", &[("Group", "system:monitoring")]),
        binding("system:kube-scheduler", "system:kube-scheduler", &[("User", SCHEDULER_USER)]),
        binding("system:kube-controller-manager", "system:kube-controller-manager", &[("User", CONTROLLERS_USER)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::rbac::Snapshot;
    use super::super::Attributes;
    use super::super::UserInfo;
    use super::*;

    fn can(s: &Snapshot, user: &UserInfo, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        s.authorize(&Attributes {
            user: user.clone(),
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: ns.into(),
            name: String::new(),
            resource_request: true,
            path: String::new(),
        })
        .is_some()
    }

    #[test]
    fn default_roles_grant_what_their_names_say() {
        let mut bindings = cluster_role_bindings();
        let role_binding = |name: &str, role: &str, user: &str| {
            json!({"metadata": {"name": name, "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": user}]})
        };
        bindings.push(json!({"metadata": {"name": "v"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "viewer"}]}));
        let rbs = vec![role_binding("e", "edit", "editor"), role_binding("a", "admin", "owner")];
        let s = Snapshot::build(&cluster_roles(), &[], &bindings, &rbs);
        let viewer = UserInfo::new("viewer", "", &[]);
        let editor = UserInfo::new("editor", "", &[]);
        let owner = UserInfo::new("owner", "", &[]);
        let nobody = UserInfo::new("nobody", "", &[]);
        assert!(can(&s, &viewer, "list", "", "pods", "x"));
        assert!(can(&s, &viewer, "get", "apps", "deployments", "x"));
        assert!(!can(&s, &viewer, "get", "", "secrets", "x"), "view does not read secrets");
        assert!(!can(&s, &viewer, "create", "", "pods", "x"));
        assert!(can(&s, &editor, "create", "", "pods", "team"));
        assert!(can(&s, &editor, "get", "", "secrets", "team"));
        assert!(can(&s, &editor, "create", "", "pods/exec", "team"));
        assert!(can(&s, &editor, "list", "", "pods", "team"), "edit includes view");
        assert!(!can(&s, &editor, "create", "", "pods", "other"), "only in the binding's namespace");
        assert!(!can(&s, &editor, "create", "rbac.authorization.k8s.io", "rolebindings", "team"));
        assert!(can(&s, &owner, "create", "rbac.authorization.k8s.io", "rolebindings", "team"));
        assert!(can(&s, &owner, "delete", "apps", "deployments", "team"), "admin includes edit");
        assert!(!can(&s, &owner, "list", "", "nodes", ""));
        assert!(!can(&s, &nobody, "list", "", "pods", "x"));
        let authenticated = UserInfo::new("nobody", "", &[]);
        assert!(can(&s, &authenticated, "create", "authorization.k8s.io", "selfsubjectaccessreviews", ""));
        let scheduler = UserInfo::new(SCHEDULER_USER, "", &[]);
        assert!(can(&s, &scheduler, "create", "", "pods/binding", "x"));
        assert!(!can(&s, &scheduler, "delete", "", "pods", "x"));
        assert!(!can(&s, &scheduler, "get", "", "secrets", "x"));
        let controllers = UserInfo::new(CONTROLLERS_USER, "", &[]);
        assert!(can(&s, &controllers, "create", "apps", "replicasets", "x"));
        assert!(can(&s, &controllers, "delete", "", "pods", "x"));
        assert!(!can(&s, &controllers, "create", "", "secrets", "x"));
        assert!(!can(&s, &controllers, "create", "rbac.authorization.k8s.io", "clusterrolebindings", ""));
    }
}
