//! `GET pods/NAME/log`: the logs live on the pod's node, so the API server finds the node's
//! agent (its InternalIP and daemon endpoint port) and streams the agent's answer back.

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::Value;
use skiff_store::Consistency;

use crate::crud::load;
use crate::error::ApiError;
use crate::request::Query;
use crate::request::ResourcePath;
use crate::state::ApiState;

/// How long the agent may take to start answering.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    raw_query: &str,
) -> Result<Response, ApiError> {
    let (_, pod) = load(state, p, name, Consistency::Linearizable).await?;
    let container = container_of(&pod, name, q.get("container"))?;
    waiting_check(&pod, name, &container, q.flag("previous"))?;
    let (node_name, address) = agent_of(state, &pod).await?;
    // Everything but `container` passes through; the agent reads kubectl's options itself.
    let forwarded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form_urlencoded::parse(raw_query.as_bytes()).filter(|(k, _)| k != "container"))
        .finish();
    let namespace = p.namespace.as_deref().unwrap_or("default");
    let path = format!("/containerLogs/{namespace}/{name}/{container}?{forwarded}");
    let unreachable =
        |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("cannot reach the agent of node {node_name:?}: {e}"));
    let stream =
        skiff_client::tunnel::connect(&address, state.config.agent_tls.as_ref()).await.map_err(|e| unreachable(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, http_body_util::Empty<bytes::Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::get(&path)
        .header("host", address.as_str())
        .body(http_body_util::Empty::new())
        .map_err(|e| ApiError::Internal(format!("log request: {e}")))?;
    let response = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| ApiError::Timeout(format!("the agent of node {node_name:?} did not answer")))?
        .map_err(|e| unreachable(&e))?;
    let code = response.status();
    if !code.is_success() {
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_string();
        return Err(if code == StatusCode::NOT_FOUND {
            ApiError::BadRequest(message)
        } else {
            ApiError::Unavailable(format!("the agent of node {node_name:?} answered {code}: {message}"))
        });
    }
    let stream = response.into_body().into_data_stream();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The container asked for, or the only one; with several and none named, upstream's message.
pub(crate) fn container_of(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<&str> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| pod["spec"][f].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!("container {c} is not valid for pod {name}"))),
        None => {
            let app: Vec<&str> =
                pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            match app.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    app.join(" ")
                ))),
            }
        }
    }
}

/// Upstream answers 400 for a container that has not started yet, naming why it waits.
fn waiting_check(pod: &Value, name: &str, container: &str, previous: bool) -> Result<(), ApiError> {
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(format!("pod {name} is not scheduled to a node yet")));
    }
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|f| pod["status"][f].as_array().into_iter().flatten())
        .find(|s| s["name"] == container);
    let Some(status) = status else {
        return Err(ApiError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    if previous && status.pointer("/lastState/terminated").is_none() {
        return Err(ApiError::BadRequest(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    if let Some(reason) = status.pointer("/state/waiting/reason").and_then(Value::as_str) {
        if !previous && status.pointer("/lastState/terminated").is_none() {
            return Err(ApiError::BadRequest(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
            )));
        }
    }
    Ok(())
}

/// The pod's node and its agent's `IP:PORT`.
pub(crate) async fn agent_of(state: &ApiState, pod: &Value) -> Result<(String, String), ApiError> {
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").to_string();
    let nodes = ResourcePath {
        resource: skiff_api_types::registry::find("", "v1", "nodes")
            .ok_or_else(|| ApiError::Internal("nodes are not registered".into()))?,
        namespace: None,
        name: Some(node_name.clone()),
        subresource: None,
    };
    let (_, node) = load(state, &nodes, &node_name, Consistency::Local).await?;
    let address = agent_address(&node)
        .ok_or_else(|| ApiError::BadRequest(format!("node {node_name:?} has no InternalIP and agent port to reach")))?;
    Ok((node_name, address))
}

/// `IP:PORT` of the node's agent.
fn agent_address(node: &Value) -> Option<String> {
    let ip = node["status"]["addresses"].as_array()?.iter().find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_string();
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_u64)?;
    Some(if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_only_container_is_the_default_and_several_need_a_name() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(container_of(&one, "web", None).ok(), Some("app".to_string()));
        let two = json!({"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}], "initContainers": [{"name": "init"}]}});
        let err = container_of(&two, "web", None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("choose one of: [app sidecar]"), "{err}");
        assert_eq!(container_of(&two, "web", Some("init")).ok(), Some("init".to_string()));
        assert!(container_of(&two, "web", Some("nope")).is_err());
    }

    #[test]
    fn waiting_containers_and_unscheduled_pods_have_no_logs() {
        let pending = json!({"spec": {}});
        assert!(waiting_check(&pending, "web", "app", false).is_err());
        let creating = json!({"spec": {"nodeName": "n1"},
            "status": {"containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        let err = waiting_check(&creating, "web", "app", false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("is waiting to start: ContainerCreating"), "{err}");
        let running = json!({"spec": {"nodeName": "n1"},
            "status": {"containerStatuses": [{"name": "app", "state": {"running": {}}}]}});
        assert!(waiting_check(&running, "web", "app", false).is_ok());
        assert!(waiting_check(&running, "web", "app", true).is_err(), "no previous instance");
    }

    #[test]
    fn the_agent_is_reached_at_its_internal_ip_and_daemon_port() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"},
            {"type": "InternalIP", "address": "10.0.0.5"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(agent_address(&node), Some("10.0.0.5:10250".to_string()));
        assert_eq!(agent_address(&json!({"status": {}})), None);
    }
}
