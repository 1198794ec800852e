//! `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks the request against
//! the pod, then tunnels the protocol upgrade to the pod's agent, which answers it. kubectl
//! first offers a WebSocket (`v5.channel.k8s.io` for exec and attach,
//! `SPDY/3.1+portforward.k8s.io` for port-forward), which the agent bridges to the runtime's
//! SPDY/3.1 streaming server; the SPDY/3.1 fallback goes through both hops unchanged.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use skiff_client::tunnel;
use skiff_store::Consistency;

use crate::crud::load;
use crate::error::ApiError;
use crate::request::Query;
use crate::request::ResourcePath;
use crate::state::ApiState;

/// The streaming subresources (each goes to the agent endpoint of the same name).
const STREAMS: &[&str] = &["exec", "attach", "portforward"];

/// Handles the request if it is one of the streaming subresources; `None` otherwise.
pub async fn intercept(state: &ApiState, parts: &mut Parts) -> Option<Response> {
    let segments: Vec<String> = parts.uri.path().trim_matches('/').split('/').map(str::to_string).collect();
    let ["api", "v1", "namespaces", namespace, "pods", name, sub] =
        segments.iter().map(String::as_str).collect::<Vec<_>>()[..]
    else {
        return None;
    };
    if !STREAMS.contains(&sub) {
        return None;
    }
    Some(match stream(state, parts, namespace, name, sub).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    })
}

async fn stream(
    state: &ApiState,
    parts: &mut Parts,
    namespace: &str,
    name: &str,
    sub: &str,
) -> Result<Response, ApiError> {
    let upgrade = header(parts, "upgrade").to_ascii_lowercase();
    if upgrade != "websocket" && !upgrade.starts_with("spdy/") {
        return Err(ApiError::BadRequest(format!("pods/{sub} needs a connection upgrade to WebSocket or SPDY/3.1")));
    }
    // A WebSocket upgrade is a GET, which the authorization middleware saw as `get`; running a
    // command is `create` on the subresource whichever way it is asked for.
    if parts.method == axum::http::Method::GET {
        if let Some(user) = parts.extensions.get::<crate::authn::UserInfo>() {
            let path = parts.uri.path().to_string();
            let a =
                crate::authz::Attributes::of_request(user.clone(), &axum::http::Method::POST, &path, parts.uri.query());
            state.authorizer.require(state, &a).await?;
        }
    }
    let pods = ResourcePath {
        resource: skiff_api_types::registry::find("", "v1", "pods")
            .ok_or_else(|| ApiError::Internal("pods are not registered".into()))?,
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        subresource: None,
    };
    let (_, pod) = load(state, &pods, name, Consistency::Linearizable).await?;
    let q = Query::parse(parts.uri.query());
    let target = if sub == "portforward" {
        format!("/portforward/{namespace}/{name}")
    } else {
        let container = crate::pod_log::container_of(&pod, name, q.get("container"))?;
        let running = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|f| pod["status"][f].as_array().into_iter().flatten())
            .any(|s| s["name"] == container.as_str() && s["state"]["running"].is_object());
        if !running {
            return Err(ApiError::BadRequest(format!(
                "unable to upgrade connection: container not found (\"{container}\")"
            )));
        }
        format!("/{sub}/{namespace}/{name}/{container}")
    };
    if pod["status"]["phase"] != "Running" {
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        return Err(ApiError::BadRequest(format!(
            "unable to upgrade connection: pod {name} is not running (phase {phase})"
        )));
    }
    let (node_name, address) = crate::pod_log::agent_of(state, &pod).await?;
    let path = match parts.uri.query() {
        Some(query) => format!("{target}?{query}"),
        None => target,
    };
    let forwarded = forwarded_headers(parts);
    let upstream = tunnel::open(&address, state.config.agent_tls.as_ref(), parts.method.as_str(), &path, &forwarded)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot reach the agent of node {node_name:?}: {e}")))?;
    if upstream.status != 101 {
        let message = String::from_utf8_lossy(&upstream.body).trim().to_string();
        return Err(ApiError::BadRequest(format!("unable to upgrade connection: {message}")));
    }
    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in &upstream.headers {
        if matches!(
            k.as_str(),
            "connection" | "upgrade" | "x-stream-protocol-version" | "sec-websocket-accept" | "sec-websocket-protocol"
        ) {
            if let Ok(value) = HeaderValue::from_str(v) {
                response = response.header(k.as_str(), value);
            }
        }
    }
    // hyper leaves the connection's pending upgrade in the request's extensions.
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::BadRequest("this connection cannot be upgraded (HTTP/2?)".into()))?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => tunnel::splice(hyper_util::rt::TokioIo::new(upgraded), upstream).await,
            Err(e) => tracing::debug!(error = %e, "the client never completed the upgrade"),
        }
    });
    response.body(Body::empty()).map_err(|e| ApiError::Internal(e.to_string()))
}

fn header(parts: &Parts, name: &str) -> String {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// The upgrade headers, each value of a repeated header separately.
fn forwarded_headers(parts: &Parts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in tunnel::FORWARDED_HEADERS {
        for value in parts.headers.get_all(*name) {
            if let Ok(v) = value.to_str() {
                out.push((name.to_string(), v.to_string()));
            }
        }
    }
    out
}
