//! Impersonation (`kubectl --as NAME --as-group G`): a user allowed the `impersonate` verb acts
//! as another. Upstream's rules: `Impersonate-User` needs `impersonate` on `users` (or on
//! `serviceaccounts` in the account's namespace for `system:serviceaccount:NS:NAME`), each
//! `Impersonate-Group` on `groups`, `Impersonate-Uid` on `uids` and each `Impersonate-Extra-KEY`
//! on `userextras/KEY` (both in `authentication.k8s.io`), with the requested value as the name.
//! Groups, uid or extras without a user are a bad request. The impersonated user is in
//! `system:authenticated` (and a service account in its groups) like any authenticated user.

use axum::http::HeaderMap;

use super::Attributes;
use super::Authorizer;
use super::UserInfo;
use crate::error::ApiError;
use crate::state::ApiState;

pub const USER: &str = "impersonate-user";
pub const GROUP: &str = "impersonate-group";
pub const UID: &str = "impersonate-uid";
pub const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Whether the request asks to impersonate anyone.
pub fn requested(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k == USER || k == GROUP || k == UID || k.starts_with(EXTRA_PREFIX)
    })
}

/// The user `caller` acts as, after checking it may impersonate everything the headers ask for.
pub async fn resolve(
    authorizer: &Authorizer,
    state: &ApiState,
    caller: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let text = |name: &str| -> Result<Vec<String>, ApiError> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_string())
                    .map_err(|_| ApiError::BadRequest(format!("the {name} header is not valid text")))
            })
            .collect()
    };
    let users = text(USER)?;
    let groups = text(GROUP)?;
    let uids = text(UID)?;
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().strip_prefix(EXTRA_PREFIX)?.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let user = match users.as_slice() {
        [user] if !user.is_empty() => user.clone(),
        [] => {
            return Err(ApiError::BadRequest(format!(
                "requested impersonation of groups {groups:?}, a uid or extras without impersonating a user"
            )))
        }
        _ => return Err(ApiError::BadRequest("exactly one Impersonate-User header may be given".into())),
    };
    if uids.len() > 1 {
        return Err(ApiError::BadRequest("at most one Impersonate-Uid header may be given".into()));
    }
    let check = |resource: &str, group: &str, namespace: &str, name: &str| Attributes {
        user: caller.clone(),
        verb: "impersonate".into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: namespace.into(),
        name: name.into(),
        resource_request: true,
        path: String::new(),
    };
    let mut wanted = Vec::new();
    let mut implied_groups = Vec::new();
    match service_account(&user) {
        Some((ns, name)) => {
            wanted.push(check("serviceaccounts", "", ns, name));
            implied_groups = vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")];
        }
        None => wanted.push(check("users", "", "", &user)),
    }
    for group in &groups {
        wanted.push(check("groups", "", "", group));
    }
    for uid in &uids {
        wanted.push(check("uids", "authentication.k8s.io", "", uid));
    }
    for (key, value) in &extras {
        let mut a = check("userextras", "authentication.k8s.io", "", value);
        a.subresource = key.clone();
        wanted.push(a);
    }
    for a in &wanted {
        authorizer.require(state, a).await?;
    }
    let mut all_groups = groups;
    all_groups.extend(implied_groups);
    let uid = uids.into_iter().next().unwrap_or_default();
    Ok(if user == "system:anonymous" {
        UserInfo { name: user, uid, groups: all_groups }
    } else {
        UserInfo::new(&user, &uid, &all_groups)
    })
}

/// `(namespace, name)` of a service account user name.
pub fn service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names_parse() {
        assert_eq!(service_account("system:serviceaccount:default:robot"), Some(("default", "robot")));
        assert_eq!(service_account("system:serviceaccount:default"), None);
        assert_eq!(service_account("system:serviceaccount::x"), None);
        assert_eq!(service_account("jane"), None);
    }

    #[test]
    fn impersonation_headers_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!requested(&h));
        h.insert("impersonate-extra-scopes", "a".parse().expect("header"));
        assert!(requested(&h));
    }
}
