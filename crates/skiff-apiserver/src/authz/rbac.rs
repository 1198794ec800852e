//! Role-based access control, decided over a snapshot of the cluster's Roles, ClusterRoles and
//! their bindings. Pure: the snapshot is built from objects and asked questions; nothing here
//! reads the store.
//!
//! The rules are upstream's: a request is allowed when some binding that names the user (as a
//! `User`, one of its `Group`s, or the `ServiceAccount` it is) refers to a role with a rule that
//! covers the request's verb, API group, resource (`resource/subresource` for subresources,
//! `*/subresource` matching any resource's) and name, or its path for non-resource requests
//! (`/apis/*` matches by prefix). RoleBindings grant only inside their namespace; a
//! ClusterRoleBinding grants everywhere. An aggregated ClusterRole's rules are the rules of every
//! ClusterRole its `aggregationRule` selects. There are no deny rules.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;
use skiff_api_types::selector::LabelSelector;

use super::Attributes;
use super::UserInfo;

/// One `PolicyRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    pub fn from_value(v: &Value) -> Self {
        let list = |field: &str| -> Vec<String> {
            v.get(field)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        Self {
            verbs: list("verbs"),
            api_groups: list("apiGroups"),
            resources: list("resources"),
            resource_names: list("resourceNames"),
            non_resource_urls: list("nonResourceURLs"),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut rule = serde_json::Map::new();
        rule.insert("verbs".into(), self.verbs.clone().into());
        if self.non_resource_urls.is_empty() {
            rule.insert("apiGroups".into(), self.api_groups.clone().into());
            rule.insert("resources".into(), self.resources.clone().into());
            if !self.resource_names.is_empty() {
                rule.insert("resourceNames".into(), self.resource_names.clone().into());
            }
        } else {
            rule.insert("nonResourceURLs".into(), self.non_resource_urls.clone().into());
        }
        Value::Object(rule)
    }

    /// Whether this rule allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| u == "*" || *u == a.path || prefix_match(u, &a.path));
        }
        has(&self.api_groups, &a.api_group)
            && self.resources.iter().any(|r| resource_matches(r, &a.resource, &a.subresource))
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }
}

fn has(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

fn prefix_match(pattern: &str, path: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

fn resource_matches(rule: &str, resource: &str, subresource: &str) -> bool {
    if rule == "*" {
        return true;
    }
    if subresource.is_empty() {
        return rule == resource;
    }
    rule.split_once('/').is_some_and(|(r, s)| s == subresource && (r == resource || r == "*"))
}

/// A binding's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
}

impl Subject {
    fn from_value(v: &Value, binding_namespace: &str) -> Option<Self> {
        let name = v.get("name").and_then(Value::as_str)?.to_string();
        match v.get("kind").and_then(Value::as_str)? {
            "User" => Some(Subject::User(name)),
            "Group" => Some(Subject::Group(name)),
            "ServiceAccount" => {
                let ns =
                    v.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
                Some(Subject::User(format!("system:serviceaccount:{ns}:{name}")))
            }
            _ => None,
        }
    }

    fn names(&self, user: &UserInfo) -> bool {
        match self {
            Subject::User(name) => *name == user.name,
            Subject::Group(group) => user.groups.iter().any(|g| g == group),
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    name: String,
    /// `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    /// `(kind, name)`: kind `Role` or `ClusterRole`.
    role: (String, String),
    subjects: Vec<Subject>,
}

/// The RBAC objects of the cluster, ready to answer questions.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    cluster_roles: BTreeMap<String, Vec<Rule>>,
    /// `(namespace, name)` → rules.
    roles: BTreeMap<(String, String), Vec<Rule>>,
    bindings: Vec<Binding>,
}

/// Where an allow came from, for the audit log and SelfSubjectAccessReview's `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub binding: String,
    pub role: String,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RBAC: allowed by {} of {}", self.binding, self.role)
    }
}

impl Snapshot {
    /// Builds the snapshot from the stored objects. Objects that do not parse are skipped (the
    /// API validated them on the way in; a malformed one grants nothing).
    pub fn build(cluster_roles: &[Value], roles: &[Value], cluster_bindings: &[Value], bindings: &[Value]) -> Self {
        let mut snapshot = Snapshot::default();
        let direct: BTreeMap<String, (&Value, Vec<Rule>)> =
            cluster_roles.iter().filter_map(|r| Some((meta(r, "name")?.to_string(), (r, rules_of(r))))).collect();
        for (name, (role, own)) in &direct {
            let mut rules = own.clone();
            if let Some(selectors) = role.pointer("/aggregationRule/clusterRoleSelectors").and_then(Value::as_array) {
                let selectors: Vec<LabelSelector> =
                    selectors.iter().filter_map(|s| LabelSelector::from_object(s).ok()).collect();
                for (other, (other_role, other_rules)) in &direct {
                    if other != name && selectors.iter().any(|s| s.matches_object(other_role)) {
                        for rule in other_rules {
                            if !rules.contains(rule) {
                                rules.push(rule.clone());
                            }
                        }
                    }
                }
            }
            snapshot.cluster_roles.insert(name.clone(), rules);
        }
        for role in roles {
            if let (Some(ns), Some(name)) = (meta(role, "namespace"), meta(role, "name")) {
                snapshot.roles.insert((ns.to_string(), name.to_string()), rules_of(role));
            }
        }
        for (objects, cluster) in [(cluster_bindings, true), (bindings, false)] {
            for b in objects {
                let Some(name) = meta(b, "name") else { continue };
                let namespace = if cluster { None } else { meta(b, "namespace").map(str::to_string) };
                if !cluster && namespace.is_none() {
                    continue;
                }
                let kind = b.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
                let role = b.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
                if kind != "ClusterRole" && (cluster || kind != "Role") {
                    continue;
                }
                let ns = namespace.clone().unwrap_or_default();
                let subjects = b
                    .get("subjects")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(|s| Subject::from_value(s, &ns)).collect())
                    .unwrap_or_default();
                snapshot.bindings.push(Binding {
                    name: name.to_string(),
                    namespace,
                    role: (kind.to_string(), role.to_string()),
                    subjects,
                });
            }
        }
        snapshot
    }

    fn role_rules(&self, binding: &Binding) -> &[Rule] {
        let (kind, name) = &binding.role;
        let rules = match (kind.as_str(), &binding.namespace) {
            ("Role", Some(ns)) => self.roles.get(&(ns.clone(), name.clone())),
            _ => self.cluster_roles.get(name),
        };
        rules.map(Vec::as_slice).unwrap_or_default()
    }

    /// The bindings that apply to `user` in `namespace` (ClusterRoleBindings always; RoleBindings
    /// only of that namespace).
    fn applicable<'a>(&'a self, user: &'a UserInfo, namespace: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        self.bindings.iter().filter(move |b| {
            b.namespace.as_deref().is_none_or(|ns| !namespace.is_empty() && ns == namespace)
                && b.subjects.iter().any(|s| s.names(user))
        })
    }

    /// The binding and role that allow the request, if one does.
    pub fn authorize(&self, a: &Attributes) -> Option<Grant> {
        self.applicable(&a.user, &a.namespace).find_map(|b| {
            self.role_rules(b).iter().any(|r| r.allows(a)).then(|| Grant {
                binding: match &b.namespace {
                    Some(ns) => format!("RoleBinding \"{}/{}\"", ns, b.name),
                    None => format!("ClusterRoleBinding \"{}\"", b.name),
                },
                role: format!("{} \"{}\"", b.role.0, b.role.1),
            })
        })
    }

    /// Every rule that applies to `user` in `namespace` (empty: cluster-wide only), deduplicated,
    /// as SelfSubjectRulesReview reports them.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for b in self.applicable(user, namespace) {
            for rule in self.role_rules(b) {
                if seen.insert(format!("{rule:?}")) {
                    out.push(rule.clone());
                }
            }
        }
        out
    }

    /// The rules of the role a binding refers to (`kind` `Role` in `namespace`, or `ClusterRole`);
    /// `None` when that role does not exist (yet).
    pub fn rules_of_role(&self, kind: &str, name: &str, namespace: &str) -> Option<&[Rule]> {
        match kind {
            "Role" => self.roles.get(&(namespace.to_string(), name.to_string())).map(Vec::as_slice),
            _ => self.cluster_roles.get(name).map(Vec::as_slice),
        }
    }
}

/// Whether `user` (through `authorize`) holds every permission `rules` grant in `namespace`:
/// the escalation check for writing a role or a binding. Each rule is split into single
/// verb × group × resource × name (or verb × path) permissions and each must be allowed; a
/// wildcard in the rule is checked as the literal `*`, so only a holder of the wildcard covers it.
pub fn covers(authorize: impl Fn(&Attributes) -> bool, user: &UserInfo, namespace: &str, rules: &[Rule]) -> bool {
    rules.iter().all(|rule| {
        let names: Vec<String> =
            if rule.resource_names.is_empty() { vec![String::new()] } else { rule.resource_names.clone() };
        rule.verbs.iter().all(|verb| {
            if !rule.non_resource_urls.is_empty() {
                return rule
                    .non_resource_urls
                    .iter()
                    .all(|path| authorize(&Attributes::non_resource(user.clone(), verb, path.trim_end_matches('*'))));
            }
            rule.api_groups.iter().all(|group| {
                rule.resources.iter().all(|resource| {
                    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
                    names.iter().all(|name| {
                        authorize(&Attributes {
                            user: user.clone(),
                            verb: verb.clone(),
                            api_group: group.clone(),
                            resource: resource.to_string(),
                            subresource: subresource.to_string(),
                            namespace: namespace.to_string(),
                            name: name.clone(),
                            resource_request: true,
                            path: String::new(),
                        })
                    })
                })
            })
        })
    })
}

fn meta<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn rules_of(obj: &Value) -> Vec<Rule> {
    obj.get("rules").and_then(Value::as_array).map(|r| r.iter().map(Rule::from_value).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name, "", &groups.iter().map(|g| g.to_string()).collect::<Vec<_>>())
    }

    fn req(user: &UserInfo, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes {
            user: user.clone(),
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: ns.into(),
            name: name.into(),
            resource_request: true,
            path: String::new(),
        }
    }

    fn snapshot() -> Snapshot {
        let cluster_roles = vec![
            json!({"metadata": {"name": "reader"}, "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]},
                {"verbs": ["get"], "nonResourceURLs": ["/apis/*", "/version"]}]}),
            json!({"metadata": {"name": "scaler"}, "rules": [
                {"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}]}),
            json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"to-agg": "true"}}]}, "rules": []}),
            json!({"metadata": {"name": "part", "labels": {"to-agg": "true"}}, "rules": [
                {"verbs": ["delete"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}]}),
        ];
        let roles = vec![json!({"metadata": {"name": "cm", "namespace": "a"}, "rules": [
            {"verbs": ["*"], "apiGroups": [""], "resources": ["configmaps"]}]})];
        let crbs = vec![
            json!({"metadata": {"name": "readers"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "Group", "name": "team"}]}),
            json!({"metadata": {"name": "aggs"}, "roleRef": {"kind": "ClusterRole", "name": "agg"},
                "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "a"}]}),
        ];
        let rbs = vec![
            json!({"metadata": {"name": "cm-jane", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "cm"},
                "subjects": [{"kind": "User", "name": "jane"}]}),
            json!({"metadata": {"name": "scale-jane", "namespace": "b"}, "roleRef": {"kind": "ClusterRole", "name": "scaler"},
                "subjects": [{"kind": "User", "name": "jane"}]}),
        ];
        Snapshot::build(&cluster_roles, &roles, &crbs, &rbs)
    }

    #[test]
    fn bindings_grant_by_user_group_and_service_account() {
        let s = snapshot();
        let jane = user("jane", &[]);
        let team = user("bob", &["team"]);
        let robot = user("system:serviceaccount:a:robot", &["system:serviceaccounts"]);
        assert!(s.authorize(&req(&jane, "create", "", "configmaps", "a", "")).is_some());
        assert!(
            s.authorize(&req(&jane, "create", "", "configmaps", "b", "")).is_none(),
            "a RoleBinding is per namespace"
        );
        assert!(s.authorize(&req(&jane, "create", "", "configmaps", "", "")).is_none(), "not cluster-wide");
        assert!(s.authorize(&req(&team, "list", "", "pods", "x", "")).is_some());
        assert!(s.authorize(&req(&team, "list", "", "pods", "", "")).is_some(), "a ClusterRoleBinding is everywhere");
        assert!(s.authorize(&req(&team, "get", "", "pods/log", "x", "p")).is_some());
        assert!(s.authorize(&req(&team, "get", "", "pods/exec", "x", "p")).is_none());
        assert!(s.authorize(&req(&team, "delete", "", "pods", "x", "p")).is_none());
        assert!(s.authorize(&req(&robot, "delete", "", "secrets", "x", "s1")).is_some(), "aggregated rule");
        assert!(s.authorize(&req(&robot, "delete", "", "secrets", "x", "s2")).is_none(), "resourceNames");
        assert!(s.authorize(&req(&robot, "delete", "", "secrets", "x", "")).is_none(), "collection vs named rule");
        assert!(s.authorize(&req(&jane, "update", "apps", "deployments/scale", "b", "d")).is_some(), "*/scale");
        assert!(s.authorize(&req(&jane, "update", "apps", "deployments", "b", "d")).is_none());
        let path = |p: &str| Attributes::non_resource(team.clone(), "get", p);
        assert!(s.authorize(&path("/apis/apps/v1")).is_some());
        assert!(s.authorize(&path("/version")).is_some());
        assert!(s.authorize(&path("/api")).is_none());
        assert!(s.authorize(&Attributes::non_resource(team.clone(), "post", "/version")).is_none());
    }

    #[test]
    fn rules_for_a_user_are_the_union_of_its_bindings() {
        let s = snapshot();
        let jane = user("jane", &[]);
        assert_eq!(s.rules_for(&jane, "a").len(), 1);
        assert_eq!(s.rules_for(&jane, "b").len(), 1);
        assert!(s.rules_for(&jane, "c").is_empty());
        assert_eq!(s.rules_for(&user("x", &["team"]), "c").len(), 2);
    }

    #[test]
    fn covering_requires_every_split_permission() {
        let s = snapshot();
        let team = user("bob", &["team"]);
        let check = |a: &Attributes| s.authorize(a).is_some();
        let narrower = vec![Rule::from_value(&json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}))];
        assert!(covers(check, &team, "x", &narrower));
        let wider =
            vec![Rule::from_value(&json!({"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}))];
        assert!(!covers(check, &team, "x", &wider));
        let wildcard = vec![Rule::from_value(&json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]}))];
        assert!(!covers(check, &team, "x", &wildcard));
    }
}
