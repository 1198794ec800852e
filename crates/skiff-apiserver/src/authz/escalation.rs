//! RBAC's escalation prevention: writing a Role or ClusterRole, or binding one, cannot grant
//! more than the writer already holds. A role write needs every permission its rules grant (in
//! the role's namespace, or cluster-wide for a ClusterRole) or the `escalate` verb on it; a
//! binding needs every permission of the role it refers to (in the binding's namespace, or
//! cluster-wide) or the `bind` verb on that role. Members of `system:masters` hold everything.
//!
//! The check runs on the object about to be stored, so creates, updates, patches and applies
//! are all covered. It reads the authorizer's RBAC snapshot and is pure from there.

use serde_json::Value;
use skiff_api_types::registry::Resource;

use super::rbac;
use super::rbac::Rule;
use super::Attributes;
use super::MASTERS;
use crate::error::ApiError;
use crate::objects;
use crate::state::ApiState;

const GROUP: &str = "rbac.authorization.k8s.io";

/// Refuses a role or binding `obj` that would grant its writer (the request's caller) more than
/// the writer holds.
pub fn check(state: &ApiState, r: &Resource, obj: &Value) -> Result<(), ApiError> {
    let Some(user) = state.caller.as_ref() else { return Ok(()) };
    if r.group != GROUP || user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    let snapshot = state
        .authorizer
        .rbac
        .now()
        .ok_or_else(|| ApiError::Unavailable("the RBAC cache has not synced yet; try again".into()))?;
    let namespace = objects::meta_str(obj, "namespace").unwrap_or("").to_string();
    let name = objects::name_of(obj).to_string();
    let allows = |a: &Attributes| snapshot.authorize(a).is_some();
    let verb_on = |verb: &str, resource: &str, name: &str| Attributes {
        user: user.clone(),
        verb: verb.into(),
        api_group: GROUP.into(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: namespace.clone(),
        name: name.into(),
        resource_request: true,
        path: String::new(),
    };
    let qualified = format!("{}.{GROUP} \"{name}\"", r.plural);
    match r.plural {
        "roles" | "clusterroles" => {
            let rules: Vec<Rule> = obj
                .get("rules")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Rule::from_value).collect())
                .unwrap_or_default();
            if allows(&verb_on("escalate", r.plural, &name)) || rbac::covers(allows, user, &namespace, &rules) {
                return Ok(());
            }
            Err(ApiError::Forbidden(format!(
                "{qualified} is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held",
                user.name, user.groups
            )))
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = obj.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
            let role = obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
            let role_resource = if kind == "Role" { "roles" } else { "clusterroles" };
            if allows(&verb_on("bind", role_resource, role)) {
                return Ok(());
            }
            match snapshot.rules_of_role(kind, role, &namespace) {
                Some(rules) if rbac::covers(allows, user, &namespace, rules) => Ok(()),
                Some(_) => Err(ApiError::Forbidden(format!(
                    "{qualified} is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held (through {kind} \"{role}\")",
                    user.name, user.groups
                ))),
                None => Err(ApiError::Forbidden(format!(
                    "{qualified} is forbidden: {kind} \"{role}\" does not exist, and binding it needs the bind verb on it"
                ))),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::UserInfo;
    use super::*;

    #[test]
    fn covering_is_checked_against_the_writers_own_rules() {
        let roles = vec![json!({"metadata": {"name": "cm-admin", "namespace": "a"}, "rules": [
            {"verbs": ["*"], "apiGroups": [""], "resources": ["configmaps"]},
            {"verbs": ["create"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"]}]})];
        let bindings =
            vec![json!({"metadata": {"name": "b", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "cm-admin"},
            "subjects": [{"kind": "User", "name": "jane"}]})];
        let s = rbac::Snapshot::build(
            &[json!({"metadata": {"name": "god"}, "rules": [
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]})],
            &roles,
            &[],
            &bindings,
        );
        let jane = UserInfo::new("jane", "", &[]);
        let allows = |a: &Attributes| s.authorize(a).is_some();
        let narrower = [Rule::from_value(&json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}))];
        assert!(rbac::covers(allows, &jane, "a", &narrower));
        assert!(!rbac::covers(allows, &jane, "b", &narrower), "not in another namespace");
        let god = s.rules_of_role("ClusterRole", "god", "a").expect("role");
        assert!(!rbac::covers(allows, &jane, "a", god), "binding god would escalate");
    }
}
