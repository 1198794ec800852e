//! Access reviews and `SelfSubjectReview`: answered from the request's user and the authorizer,
//! never stored. `kubectl auth can-i` asks SelfSubjectAccessReview, `kubectl auth can-i --list`
//! SelfSubjectRulesReview and `kubectl auth whoami` SelfSubjectReview.

use serde_json::json;
use serde_json::Value;
use skiff_api_types::registry::Resource;

use crate::authz::rbac::Rule;
use crate::authz::Attributes;
use crate::authz::Decision;
use crate::authz::UserInfo;
use crate::authz::MASTERS;
use crate::error::ApiError;
use crate::state::ApiState;

/// The answer to a review `obj` of kind `r.kind` asked by `user` (`None` when authentication is
/// off: then everything is allowed, and the answers say so).
pub async fn answer(
    state: &ApiState,
    user: Option<&UserInfo>,
    r: &Resource,
    mut obj: Value,
) -> Result<Value, ApiError> {
    let status = match r.kind {
        "SelfSubjectAccessReview" => {
            let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
            let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
            let path = spec.get("nonResourceAttributes").filter(|v| v.is_object());
            if resource.is_some() == path.is_some() {
                return Err(ApiError::invalid(r.group, r.kind, "", vec![crate::error::Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                    field: "spec.resourceAttributes".into(),
                }]));
            }
            match user {
                None => json!({"allowed": true, "reason": "authorization is off on this server"}),
                Some(user) => {
                    let a = review_attributes(user, resource, path);
                    match state.authorizer.decide(state, &a).await {
                        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
                        Decision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
                    }
                }
            }
        }
        "SelfSubjectRulesReview" => {
            let namespace = obj.pointer("/spec/namespace").and_then(Value::as_str).unwrap_or("").to_string();
            rules_review(state, user, &namespace).await
        }
        "SelfSubjectReview" => {
            let info = match user {
                Some(u) => json!({"username": u.name, "uid": u.uid, "groups": u.groups}),
                None => json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]}),
            };
            json!({"userInfo": info})
        }
        _ => return Err(ApiError::MethodNotAllowed),
    };
    obj["status"] = status;
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("creationTimestamp".into(), Value::Null);
    }
    Ok(obj)
}

fn review_attributes(user: &UserInfo, resource: Option<&Value>, path: Option<&Value>) -> Attributes {
    let text = |v: Option<&Value>, field: &str| -> String {
        v.and_then(|v| v.get(field)).and_then(Value::as_str).unwrap_or("").to_string()
    };
    match resource {
        Some(_) => Attributes {
            user: user.clone(),
            verb: text(resource, "verb"),
            api_group: text(resource, "group"),
            resource: text(resource, "resource"),
            subresource: text(resource, "subresource"),
            namespace: text(resource, "namespace"),
            name: text(resource, "name"),
            resource_request: true,
            path: String::new(),
        },
        None => Attributes::non_resource(user.clone(), &text(path, "verb"), &text(path, "path")),
    }
}

async fn rules_review(state: &ApiState, user: Option<&UserInfo>, namespace: &str) -> Value {
    let everything = || {
        json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false})
    };
    let Some(user) = user else { return everything() };
    if user.groups.iter().any(|g| g == MASTERS) {
        return everything();
    }
    let Some(snapshot) = state.authorizer.rbac.snapshot().await else {
        return json!({"resourceRules": [], "nonResourceRules": [], "incomplete": true,
            "evaluationError": "the RBAC cache has not synced yet"});
    };
    let rules = snapshot.rules_for(user, namespace);
    let (paths, resources): (Vec<&Rule>, Vec<&Rule>) = rules.iter().partition(|r| !r.non_resource_urls.is_empty());
    // The node authorizer's answers depend on the objects asked about; they cannot be listed.
    let node = crate::authz::node::node_name(user).is_some();
    let mut status = json!({
        "resourceRules": resources.iter().map(|r| r.to_value()).collect::<Vec<_>>(),
        "nonResourceRules": paths.iter().map(|r| r.to_value()).collect::<Vec<_>>(),
        "incomplete": node,
    });
    if node {
        status["evaluationError"] = "node authorizer rules depend on the pods bound to the node".into();
    }
    status
}
