//! The API port: health, metrics and the Kubernetes API.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use skiff_raft::RaftNode;

pub async fn serve(
    node: Arc<RaftNode>,
    api: Arc<skiff_apiserver::ApiState>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Arc<skiff_apiserver::authn::Authenticator>,
) {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(node)
        .merge(skiff_apiserver::router(api.clone()))
        // Layers run outside in: authentication, then impersonation and authorization.
        .layer(axum::middleware::from_fn_with_state(api, skiff_apiserver::authz::middleware))
        .layer(axum::middleware::from_fn_with_state(auth, skiff_apiserver::authn::require));
    match tls {
        Some(config) => crate::tls::serve(listener, app, config).await,
        None => {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("API server stopped: {e}");
            }
        }
    }
}

async fn readyz(State(node): State<Arc<RaftNode>>) -> impl IntoResponse {
    let s = node.status().await;
    if !s.initialized {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: the cluster is not initialized yet\n".to_string());
    }
    let Some(leader) = s.leader else {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: no leader (no quorum reachable)\n".to_string());
    };
    if s.role == "leader" {
        // A leader that has not heard from a quorum recently may be deposed already.
        if s.quorum_ack_ms.is_none_or(|ms| ms > 2_000) && s.members.iter().filter(|m| m.voter).count() > 1 {
            return (StatusCode::SERVICE_UNAVAILABLE, "not ready: leader without a quorum\n".to_string());
        }
    }
    (StatusCode::OK, format!("ok: leader {leader}, applied {}\n", s.applied))
}

async fn metrics(State(node): State<Arc<RaftNode>>) -> impl IntoResponse {
    let s = node.status().await;
    let (fsyncs, appends, entries) = skiff_raft::log_store::metrics::snapshot();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    gauge("skiff_raft_term", "Current Raft term.", "gauge", s.term);
    gauge("skiff_raft_is_leader", "1 if this server is the Raft leader.", "gauge", u64::from(s.role == "leader"));
    gauge("skiff_raft_has_leader", "1 if this server knows a leader.", "gauge", u64::from(s.leader.is_some()));
    gauge("skiff_raft_applied_index", "Last log index applied to the state machine.", "gauge", s.applied);
    gauge("skiff_raft_committed_index", "Last committed log index known here.", "gauge", s.committed);
    gauge("skiff_raft_members", "Servers in the membership (voters and learners).", "gauge", s.members.len() as u64);
    gauge("skiff_store_watch_floor", "Oldest revision a watch can resume from.", "gauge", node.watch_floor());
    gauge("skiff_log_fsyncs_total", "Syncs of the log's segment files made for appends.", "counter", fsyncs);
    gauge("skiff_log_appends_total", "Log append calls.", "counter", appends);
    gauge("skiff_log_entries_total", "Log entries appended.", "counter", entries);
    out.push_str(&skiff_raft::metrics::render());
    out.push_str(&skiff_apiserver::metrics::render());
    ([("content-type", "text/plain; version=0.0.4")], out)
}
