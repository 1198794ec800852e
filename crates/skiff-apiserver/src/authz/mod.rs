//! Authorization: who may do what. A request becomes [`Attributes`] (user, verb, group,
//! resource, subresource, namespace, name — or a non-resource path), and the [`Authorizer`]
//! answers with three authorizers in upstream's order:
//!
//! 1. members of `system:masters` may do everything (so an admin is never locked out by RBAC
//!    objects, and works before the RBAC cache has synced);
//! 2. the node authorizer ([`node`]) decides for agents (`system:node:NAME` in `system:nodes`):
//!    their own Node and Lease, pods bound to them, and only the secrets and configmaps those
//!    pods use;
//! 3. RBAC ([`rbac`]) over a cache of the cluster's roles and bindings ([`cache`]), with the
//!    bootstrap roles and bindings ([`bootstrap`]) every cluster has.
//!
//! Anything none of them allows is denied (403) with upstream's message.

pub mod bootstrap;
pub mod cache;
pub mod escalation;
pub mod impersonate;
pub mod node;
pub mod rbac;

use std::sync::Arc;

use axum::extract::Request;
use axum::extract::State;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;

pub use crate::authn::UserInfo;
use crate::error::ApiError;
use crate::request;
use crate::request::Query;
use crate::state::ApiState;

/// The group whose members may do everything.
pub const MASTERS: &str = "system:masters";

/// What a request asks to do, as authorizers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// another verb a rule may name (`impersonate`, `bind`, `escalate`); for non-resource
    /// requests the lowercase HTTP method.
    pub verb: String,
    pub api_group: String,
    /// The resource's plural name.
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped resources and requests across all namespaces.
    pub namespace: String,
    /// Empty for collections (list, watch, create, deletecollection).
    pub name: String,
    pub resource_request: bool,
    /// The URL path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// A request for a path that is not a resource (`/version`, `/apis`, `/openapi/v3`).
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.to_string(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            resource_request: false,
            path: path.to_string(),
        }
    }

    /// The attributes of an HTTP request, read the way upstream's request-info resolver reads
    /// them: GET is `get` on a name, `list` on a collection and `watch` with `watch=true`; POST
    /// `create`, PUT `update`, PATCH `patch`, DELETE `delete` or `deletecollection`. A path that
    /// names no served resource is a non-resource request.
    pub fn of_request(user: UserInfo, method: &Method, path: &str, query: Option<&str>) -> Self {
        let p = match request::parse_path(path) {
            Ok(Some(p)) => p,
            _ => {
                let verb = if *method == Method::HEAD { "get".to_string() } else { method.as_str().to_lowercase() };
                return Self::non_resource(user, &verb, path);
            }
        };
        let has_name = p.name.is_some();
        let verb = match *method {
            Method::GET | Method::HEAD if !has_name && Query::parse(query).flag("watch") => "watch",
            Method::GET | Method::HEAD if has_name => "get",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if has_name => "delete",
            Method::DELETE => "deletecollection",
            _ => "unknown",
        };
        let resource = p.resource;
        // As upstream: a namespace object is "in" itself, so a RoleBinding in namespace N may
        // grant reading namespace N.
        let namespace = match (&p.namespace, resource.plural, &p.name) {
            (Some(ns), _, _) => ns.clone(),
            (None, "namespaces", Some(name)) => name.clone(),
            _ => String::new(),
        };
        Self {
            user,
            verb: verb.to_string(),
            api_group: resource.group.to_string(),
            resource: resource.plural.to_string(),
            subresource: p.subresource.unwrap_or_default(),
            namespace,
            name: p.name.unwrap_or_default(),
            resource_request: true,
            path: path.to_string(),
        }
    }

    /// `resource` or `resource/subresource`.
    pub fn full_resource(&self) -> String {
        match self.subresource.as_str() {
            "" => self.resource.clone(),
            sub => format!("{}/{sub}", self.resource),
        }
    }

    /// Upstream's Forbidden message: `pods "web" is forbidden: User "jane" cannot delete
    /// resource "pods" in API group "" in the namespace "default"`, plus the reason if any.
    pub fn forbidden_message(&self, reason: &str) -> String {
        let user = &self.user.name;
        let mut message = if self.resource_request {
            let qualified = match self.api_group.as_str() {
                "" => self.full_resource(),
                group => format!("{}.{group}", self.full_resource()),
            };
            let subject = match self.name.as_str() {
                "" => qualified,
                name => format!("{qualified} \"{name}\""),
            };
            let scope = match self.namespace.as_str() {
                "" => "at the cluster scope".to_string(),
                ns => format!("in the namespace \"{ns}\""),
            };
            format!(
                "{subject} is forbidden: User \"{user}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
                self.verb,
                self.full_resource(),
                self.api_group
            )
        } else {
            format!("forbidden: User \"{user}\" cannot {} path \"{}\"", self.verb, self.path)
        };
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        message
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and why.
    Allow(String),
    /// Not allowed by this authorizer; the next one decides. The reason (possibly empty) goes
    /// into the Forbidden message if nothing allows it.
    NoOpinion(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// The authorizer of one API server.
#[derive(Debug, Default)]
pub struct Authorizer {
    /// RBAC's view of the cluster's roles and bindings.
    pub rbac: cache::RbacCache,
}

impl Authorizer {
    /// Whether `a` is allowed, with the reason either way.
    pub async fn decide(&self, state: &ApiState, a: &Attributes) -> Decision {
        if a.user.groups.iter().any(|g| g == MASTERS) {
            return Decision::Allow(format!("member of {MASTERS}"));
        }
        let node_reason = match node::node_name(&a.user) {
            Some(node) => match node::authorize(state, node, a).await {
                Decision::Allow(why) => return Decision::Allow(why),
                Decision::NoOpinion(why) => why,
            },
            None => String::new(),
        };
        match self.rbac.snapshot().await {
            Some(snapshot) => match snapshot.authorize(a) {
                Some(grant) => Decision::Allow(grant.to_string()),
                None => Decision::NoOpinion(node_reason),
            },
            None => Decision::NoOpinion("the RBAC cache has not synced yet; try again".into()),
        }
    }

    /// `Ok` when `a` is allowed, else upstream's 403.
    pub async fn require(&self, state: &ApiState, a: &Attributes) -> Result<(), ApiError> {
        match self.decide(state, a).await {
            Decision::Allow(_) => Ok(()),
            Decision::NoOpinion(reason) => {
                tracing::debug!(user = %a.user.name, verb = %a.verb, resource = %a.full_resource(),
                    namespace = %a.namespace, name = %a.name, path = %a.path, %reason, "forbidden");
                Err(ApiError::Forbidden(a.forbidden_message(&reason)))
            }
        }
    }
}

/// The middleware after authentication: resolves impersonation, then lets the request on only
/// if the (effective) user may make it; the effective user replaces the caller in the request's
/// extensions. Requests without a user (authentication off, or an anonymous request to a public
/// path) pass untouched.
pub async fn middleware(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<UserInfo>().cloned() else {
        return next.run(request).await;
    };
    let user = if impersonate::requested(request.headers()) {
        match impersonate::resolve(&state.authorizer, &state, &caller, request.headers()).await {
            Ok(user) => user,
            Err(e) => return e.into_response(),
        }
    } else {
        caller
    };
    let a = Attributes::of_request(user.clone(), request.method(), request.uri().path(), request.uri().query());
    if let Err(e) = state.authorizer.require(&state, &a).await {
        return e.into_response();
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserInfo {
        UserInfo::new("jane", "", &[])
    }

    #[test]
    fn requests_map_to_upstreams_verbs() {
        let a = |m: Method, path: &str, q: Option<&str>| Attributes::of_request(user(), &m, path, q);
        assert_eq!(a(Method::GET, "/api/v1/namespaces/d/pods", None).verb, "list");
        assert_eq!(a(Method::GET, "/api/v1/namespaces/d/pods", Some("watch=true")).verb, "watch");
        assert_eq!(a(Method::GET, "/api/v1/pods", Some("watch=1")).verb, "watch");
        let get = a(Method::GET, "/api/v1/namespaces/d/pods/web/log", None);
        assert_eq!((get.verb.as_str(), get.full_resource().as_str(), get.name.as_str()), ("get", "pods/log", "web"));
        assert_eq!(a(Method::POST, "/api/v1/namespaces/d/pods/web/exec", None).verb, "create");
        assert_eq!(a(Method::DELETE, "/api/v1/namespaces/d/pods", None).verb, "deletecollection");
        let ns = a(Method::GET, "/api/v1/namespaces/team", None);
        assert_eq!((ns.resource.as_str(), ns.namespace.as_str()), ("namespaces", "team"));
        let dep = a(Method::PATCH, "/apis/apps/v1/namespaces/d/deployments/web/scale", None);
        assert_eq!((dep.api_group.as_str(), dep.subresource.as_str()), ("apps", "scale"));
        let np = a(Method::GET, "/apis/apps/v1", None);
        assert!(!np.resource_request);
        assert_eq!(np.path, "/apis/apps/v1");
        assert!(!a(Method::GET, "/api/v1/widgets", None).resource_request);
    }

    #[test]
    fn forbidden_messages_read_like_upstreams() {
        let a = Attributes::of_request(user(), &Method::POST, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            a.forbidden_message(""),
            "pods is forbidden: User \"jane\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let a = Attributes::of_request(user(), &Method::GET, "/apis/apps/v1/namespaces/x/deployments/web", None);
        assert_eq!(
            a.forbidden_message(""),
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"x\""
        );
        let a = Attributes::of_request(user(), &Method::GET, "/api/v1/nodes", None);
        assert!(a.forbidden_message("").ends_with("in API group \"\" at the cluster scope"));
        let a = Attributes::of_request(user(), &Method::GET, "/apis", None);
        assert_eq!(a.forbidden_message(""), "forbidden: User \"jane\" cannot get path \"/apis\"");
    }
}
