//! The Kubernetes REST API of skiff, served by every server over any [`skiff_store::Store`].
//!
//! Requests are routed by hand rather than through a route table: Kubernetes paths overlap
//! (`/api/v1/namespaces/NAME/status` and `/api/v1/namespaces/NS/pods`), and the registry, not
//! the router, knows which segment is a resource.

mod admission;
pub mod authn;
pub mod authz;
mod body;
mod crud;
mod discovery;
pub mod error;
mod fields;
pub mod metrics;
mod namespaces;
mod objects;
mod output;
mod pod_log;
mod pod_stream;
mod request;
mod reviews;
pub mod service_ips;
pub mod serviceaccount;
mod state;
mod watch;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Router;
/// Where namespaces are stored (kept resident in memory by the server).
pub use namespaces::KEY_PREFIX as NAMESPACES_KEY_PREFIX;
pub use state::ApiConfig;
pub use state::ApiState;

use crate::error::ApiError;
use crate::request::Query;

/// The API routes, to merge with the server's health and metrics routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Background work every API server does: the system namespaces, the `kubernetes` Service and
/// the bootstrap RBAC roles, and keeping the RBAC cache current.
pub fn spawn_background(state: Arc<ApiState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(namespaces::run(state.clone()), authz::cache::run(state));
    })
}

async fn dispatch(State(state): State<Arc<ApiState>>, request: axum::extract::Request) -> Response {
    let (mut parts, body) = request.into_parts();
    // exec, attach and port-forward switch protocols and are tunnelled to the pod's agent.
    if let Some(response) = pod_stream::intercept(&state, &mut parts).await {
        return response;
    }
    let user = parts.extensions.get::<authn::UserInfo>().cloned();
    let state = match &user {
        Some(user) => state.for_caller(user.clone()),
        None => state,
    };
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let path = uri.path().to_string();
    let started = std::time::Instant::now();
    let labels = metrics::RequestLabels::of(&method, &uri, &headers);
    let inflight = metrics::Inflight::start(&labels);
    let result = route(state, &method, &uri, &headers, body, user.as_ref()).await;
    drop(inflight);
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let code = response.status().as_u16();
    // A watch is counted when its stream starts; its lifetime shows in the watch gauge.
    metrics::observe(&labels, code, started.elapsed());
    tracing::debug!(%method, %path, code, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    response
}

async fn route(
    state: Arc<ApiState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    user: Option<&authn::UserInfo>,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let q = Query::parse(uri.query());
    let state = match fence_of(headers)? {
        Some(fence) => state.fenced(fence),
        None => state,
    };
    if method == Method::GET {
        if let Some(resp) = discovery_route(&state, path, headers) {
            return Ok(resp);
        }
    }
    let Some(p) = request::parse_path(path)? else {
        return Err(ApiError::NoRoute);
    };
    let r = p.resource;
    let verb_ok = |verb: &str| -> Result<(), ApiError> {
        let allowed = match p.subresource.as_deref() {
            None => r.has_verb(verb),
            Some(sub) => r.subresource(sub).is_some_and(|s| s.verbs.contains(&verb)),
        };
        if allowed {
            Ok(())
        } else if p.subresource.is_some() && r.subresource(p.subresource.as_deref().unwrap_or("")).is_none() {
            Err(ApiError::NoRoute)
        } else {
            Err(ApiError::MethodNotAllowed)
        }
    };
    let raw = body::read(body).await?;
    match (method.clone(), p.name.clone()) {
        (Method::GET, None) if q.flag("watch") => {
            verb_ok("watch")?;
            watch::serve(state, p, q, headers.clone()).await
        }
        (Method::GET, None) => {
            verb_ok("list")?;
            crud::list(&state, &p, &q, headers).await
        }
        (Method::GET, Some(name)) if p.subresource.as_deref() == Some("log") => {
            verb_ok("get")?;
            pod_log::serve(&state, &p, &name, &q, uri.query().unwrap_or("")).await
        }
        (Method::GET, Some(name)) => {
            verb_ok("get")?;
            crud::get(&state, &p, &name, &q, headers).await
        }
        (Method::POST, None) => {
            verb_ok("create")?;
            crud::create(&state, &p, &q, headers, &raw, user).await
        }
        (Method::POST, Some(name)) if p.subresource.as_deref() == Some("binding") => {
            verb_ok("create")?;
            bind_pod(&state, &p, &name, &q, headers, &raw).await
        }
        (Method::POST, Some(name)) if p.subresource.as_deref() == Some("token") => {
            verb_ok("create")?;
            token_request(&state, &p, &name, headers, &raw).await
        }
        (Method::PUT, Some(name)) => {
            verb_ok("update")?;
            crud::update(&state, &p, &name, &q, headers, &raw).await
        }
        (Method::PATCH, Some(name)) => {
            verb_ok("patch")?;
            crud::patch(&state, &p, &name, &q, headers, &raw).await
        }
        (Method::DELETE, Some(name)) if p.subresource.is_none() => {
            verb_ok("delete")?;
            crud::delete(&state, &p, &name, &q, &raw).await
        }
        (Method::DELETE, None) => {
            verb_ok("deletecollection")?;
            crud::delete_collection(&state, &p, &q, &raw).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The header a leader-only component (scheduler, controllers) sends with the fencing token of
/// its leadership; every write of the request is then refused once that leadership has ended.
pub const FENCE_HEADER: &str = "x-skiff-fence";

fn fence_of(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(FENCE_HEADER) else { return Ok(None) };
    let fence = value.to_str().ok().and_then(|v| v.trim().parse().ok());
    fence.map(Some).ok_or_else(|| {
        ApiError::BadRequest(format!("the {FENCE_HEADER} header must be a Raft term (an unsigned integer)"))
    })
}

/// `POST serviceaccounts/NAME/token`: a signed token for the account.
async fn token_request(
    state: &ApiState,
    p: &request::ResourcePath,
    name: &str,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, ApiError> {
    let Some(issuer) = &state.config.service_accounts else {
        return Err(ApiError::Unavailable(
            "this server has no service-account signing key (--service-account-signing-key-file)".into(),
        ));
    };
    let request = body::decode_object(headers, raw)?;
    let namespace = p.namespace.as_deref().unwrap_or("default");
    let node = state.caller.as_ref().and_then(authz::node::node_name);
    let answer = serviceaccount::token_request(issuer, state.store.as_ref(), namespace, name, request, node).await?;
    Ok(output::json_with(StatusCode::CREATED, "application/json", &answer))
}

/// `POST pods/NAME/binding`: sets `spec.nodeName` once (a second binding is a conflict).
async fn bind_pod(
    state: &ApiState,
    p: &request::ResourcePath,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, ApiError> {
    let binding = body::decode_object(headers, raw)?;
    let node = binding.pointer("/target/name").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![error::Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let manager = q.get("fieldManager").unwrap_or("scheduler").to_string();
    crud::write_with_retries(state, p, name, q, &manager, |current| {
        let bound = current.pointer("/spec/nodeName").and_then(serde_json::Value::as_str).unwrap_or("");
        if !bound.is_empty() {
            return Err(ApiError::Conflict {
                kind: "pods".into(),
                name: name.into(),
                message: format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""),
                causes: Vec::new(),
            });
        }
        if objects::meta_str(current, "deletionTimestamp").is_some() {
            return Err(ApiError::Conflict {
                kind: "pods".into(),
                name: name.into(),
                message: format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is being deleted, cannot be assigned to a host"),
                causes: Vec::new(),
            });
        }
        let mut new = current.clone();
        new["spec"]["nodeName"] = node.clone().into();
        // As upstream's binding does: the pod is scheduled from this write on, not from a
        // second status write a scheduler may never get to.
        let scheduled = serde_json::json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": objects::now()});
        let mut conditions: Vec<serde_json::Value> = new
            .pointer("/status/conditions")
            .and_then(serde_json::Value::as_array)
            .map(|c| c.iter().filter(|c| c["type"] != "PodScheduled").cloned().collect())
            .unwrap_or_default();
        conditions.insert(0, scheduled);
        new["status"]["conditions"] = serde_json::Value::Array(conditions);
        Ok(new)
    })
    .await?;
    let status =
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(output::json_with(StatusCode::CREATED, "application/json", &status))
}

fn discovery_route(state: &ApiState, path: &str, headers: &HeaderMap) -> Option<Response> {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Some(discovery::json_response(&discovery::version())),
        ["api"] => Some(discovery::core(headers)),
        ["apis"] => Some(discovery::groups(headers)),
        ["api", version] => Some(found(discovery::resource_list("", version))),
        ["apis", group] => Some(found(discovery::group(group))),
        ["apis", group, version] => Some(found(discovery::resource_list(group, version))),
        ["openapi", "v3"] => Some(openapi_index(state)),
        ["openapi", "v3", rest @ ..] => Some(openapi_doc(state, &rest.join("/"))),
        ["openapi", "v2"] => Some(ApiError::NoRoute.into_response()),
        _ => None,
    }
}

fn found(doc: Option<serde_json::Value>) -> Response {
    match doc {
        Some(d) => discovery::json_response(&d),
        None => ApiError::NoRoute.into_response(),
    }
}

fn openapi_index(state: &ApiState) -> Response {
    let mut paths = serde_json::Map::new();
    for (path, doc) in state.openapi.iter() {
        paths.insert(
            path.clone(),
            serde_json::json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
        );
    }
    discovery::json_response(&serde_json::json!({"paths": paths}))
}

fn openapi_doc(state: &ApiState, path: &str) -> Response {
    match state.openapi.get(path) {
        Some(doc) => (
            [("content-type", "application/json"), ("cache-control", "public, immutable"), ("etag", doc.hash.as_str())],
            doc.body.clone(),
        )
            .into_response(),
        None => ApiError::NoRoute.into_response(),
    }
}
