//! The agent's own endpoint, which the API servers reach at the Node's InternalIP and daemon
//! port: container logs, and exec, attach and port-forward. A SPDY/3.1 upgrade is tunnelled
//! unchanged to the runtime's streaming server (containerd answers SPDY/3.1 with kubectl's
//! stream protocols); a WebSocket upgrade (what kubectl offers first) is answered here and
//! bridged to a SPDY session with the runtime (see [`crate::websocket`]).
//!
//! With TLS configured the endpoint requires a client certificate from the cluster CA whose
//! groups include `system:masters` (the API servers' component identity): a user's certificate
//! from the same CA is refused, so nobody reaches a container's shell around the API server's
//! authorization.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use skiff_pki::reload::ReloadingCert;

use skiff_client::tunnel;

use crate::cri::Cri;
use crate::cri::StreamIo;
use crate::cri::LABEL_CONTAINER_NAME;
use crate::cri::LABEL_POD_NAME;
use crate::cri::LABEL_POD_NAMESPACE;
use crate::logs::text;
use crate::logs::Body;

/// The group a caller's certificate must carry.
pub const CALLER_GROUP: &str = "system:masters";

/// The endpoint's certificate and the CA its callers' certificates must chain to.
#[derive(Debug, Clone)]
pub struct ServingTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// The rustls configuration for [`ServingTls`]: client certificates required, the serving
/// certificate reloaded when its files change (checked every 2 s; call within a tokio runtime).
pub fn tls_config(files: &ServingTls) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&files.client_ca)?) {
        roots.add(cert.map_err(|e| format!("client CA: {e}"))?).map_err(|e| format!("client CA: {e}"))?;
    }
    let provider = skiff_client::crypto_provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let resolver = Arc::new(ReloadingCert::load(&files.cert, &files.key).map_err(|e| e.to_string())?);
    let watched = resolver.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            match watched.reload_if_changed() {
                Ok(true) => tracing::info!(cert = %watched.cert_path().display(), "serving certificate reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "serving certificate not reloaded"),
            }
        }
    });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}

/// Whether a verified client certificate carries [`CALLER_GROUP`].
fn allowed_caller(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, parsed)| {
        parsed.subject().iter_organization().any(|o| o.as_str().is_ok_and(|o| o == CALLER_GROUP))
    })
}

/// Starts serving on `listen`, over TLS when `tls` is given.
pub async fn serve(
    listen: SocketAddr,
    logs_dir: PathBuf,
    cri: Cri,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let (dir, cri, acceptor) = (logs_dir.clone(), cri.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => connection(stream, dir, cri, true).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => {
                            let allowed =
                                tls.get_ref().1.peer_certificates().and_then(|c| c.first()).is_some_and(allowed_caller);
                            if !allowed {
                                tracing::warn!(%peer, "refused a caller without the {CALLER_GROUP} group");
                            }
                            connection(tls, dir, cri, allowed).await
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    },
                }
            });
        }
    }))
}

async fn connection<S>(stream: S, dir: PathBuf, cri: Cri, allowed: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (dir, cri) = (dir.clone(), cri.clone());
        async move {
            if !allowed {
                return Ok::<_, std::convert::Infallible>(text(403, format!("only {CALLER_GROUP} may call the agent")));
            }
            Ok(route(&dir, cri, req).await)
        }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades().await;
}

async fn route(dir: &std::path::Path, cri: Cri, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Body> {
    let path = req.uri().path().trim_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["containerLogs", ..] => crate::logs::answer(dir, req.uri()),
        [kind @ ("exec" | "attach"), namespace, pod, container] => {
            let kind = kind.to_string();
            let target = Target::Container {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            stream(cri, req, &kind, target).await
        }
        ["portforward", namespace, pod] => {
            let target = Target::Sandbox { namespace: namespace.to_string(), pod: pod.to_string() };
            stream(cri, req, "portforward", target).await
        }
        _ => text(404, format!("no such endpoint: /{path}")),
    }
}

enum Target {
    Container { namespace: String, pod: String, container: String },
    Sandbox { namespace: String, pod: String },
}

/// kubectl's query: the command (repeated `command=`) and which streams to open.
fn stream_query(query: &str) -> (Vec<String>, StreamIo) {
    let mut command = Vec::new();
    let mut io = StreamIo::default();
    for (k, v) in crate::logs::form_pairs(query) {
        let on = v == "true" || v == "1";
        match k.as_str() {
            "command" => command.push(v),
            "stdin" => io.stdin = on,
            "stdout" => io.stdout = on,
            "stderr" => io.stderr = on,
            "tty" => io.tty = on,
            _ => {}
        }
    }
    (command, io)
}

async fn stream(
    mut cri: Cri,
    mut req: hyper::Request<hyper::body::Incoming>,
    kind: &str,
    target: Target,
) -> hyper::Response<Body> {
    let (command, io) = stream_query(req.uri().query().unwrap_or(""));
    let url = match &target {
        Target::Container { namespace, pod, container } => {
            let id = match find_container(&mut cri, namespace, pod, container).await {
                Some(id) => id,
                None => {
                    return text(
                        404,
                        format!("container {container:?} of pod {namespace}/{pod} is not running on this node"),
                    )
                }
            };
            if kind == "exec" {
                if command.is_empty() {
                    return text(400, "exec needs a command".into());
                }
                cri.exec(&id, command, io).await
            } else {
                cri.attach(&id, io).await
            }
        }
        Target::Sandbox { namespace, pod } => {
            let sandboxes = cri.list_sandboxes(None).await.unwrap_or_default();
            let ready = k8s_cri::v1::PodSandboxState::SandboxReady as i32;
            let found = sandboxes.iter().find(|s| {
                s.state == ready
                    && s.labels.get(LABEL_POD_NAMESPACE) == Some(namespace)
                    && s.labels.get(LABEL_POD_NAME) == Some(pod)
            });
            match found {
                Some(s) => cri.port_forward(&s.id).await,
                None => return text(404, format!("pod {namespace}/{pod} has no running sandbox on this node")),
            }
        }
    };
    let url = match url {
        Ok(url) => url,
        Err(e) => return text(500, e.to_string()),
    };
    let Some((addr, path)) = split_url(&url) else {
        return text(500, format!("the runtime gave an unusable streaming URL: {url}"));
    };
    if is_websocket(req.headers()) {
        return websocket(req, kind, io, &addr, &path).await;
    }
    let n = crate::websocket::SPDY_SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    tracing::info!(sessions = n, "{kind} over SPDY/3.1, tunnelled unchanged");
    let mut forwarded = Vec::new();
    for name in tunnel::FORWARDED_HEADERS {
        for value in req.headers().get_all(*name) {
            if let Ok(v) = value.to_str() {
                forwarded.push((name.to_string(), v.to_string()));
            }
        }
    }
    let (upstream, mut response) = match open_runtime_stream(&addr, req.method().as_str(), &path, &forwarded).await {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    for (k, v) in &upstream.headers {
        if matches!(k.as_str(), "connection" | "upgrade" | "x-stream-protocol-version") {
            if let (Ok(name), Ok(value)) =
                (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_str(v))
            {
                response.headers_mut().append(name, value);
            }
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            tunnel::splice(hyper_util::rt::TokioIo::new(upgraded), upstream).await;
        }
    });
    response
}

/// Opens the runtime's streaming server over SPDY/3.1, and builds the 101 for kubectl (its
/// upgrade headers still to add). An unreachable server or a refusal is already kubectl's
/// answer: 502, or the runtime's own status and message.
async fn open_runtime_stream(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<(tunnel::Upstream, hyper::Response<Body>), hyper::Response<Body>> {
    let upstream = tunnel::open(addr, None, method, path, headers)
        .await
        .map_err(|e| text(502, format!("the runtime's streaming server at {addr}: {e}")))?;
    if upstream.status != 101 {
        let body = String::from_utf8_lossy(&upstream.body).trim().to_string();
        return Err(text(upstream.status, body));
    }
    let mut response = hyper::Response::new(text(101, String::new()).into_body());
    *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    Ok((upstream, response))
}

fn is_websocket(headers: &hyper::HeaderMap) -> bool {
    headers.get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Answers kubectl's WebSocket offer: the runtime's streaming server is reached over SPDY/3.1
/// first (so a refusal is still an HTTP answer), then the agent switches protocols and bridges
/// the two (see [`crate::websocket`]).
async fn websocket(
    mut req: hyper::Request<hyper::body::Incoming>,
    kind: &str,
    io: StreamIo,
    addr: &str,
    path: &str,
) -> hyper::Response<Body> {
    use crate::websocket::EXEC_PROTOCOL;
    use crate::websocket::PORTFORWARD_PROTOCOL;
    let (protocol, stream_protocol) = if kind == "portforward" {
        (PORTFORWARD_PROTOCOL, "portforward.k8s.io")
    } else {
        (EXEC_PROTOCOL, "v4.channel.k8s.io")
    };
    if !crate::websocket::offers(req.headers(), protocol) {
        return text(400, format!("{kind} over WebSocket needs the subprotocol {protocol}"));
    }
    let Some(key) = req.headers().get("sec-websocket-key").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return text(400, "a WebSocket upgrade needs Sec-WebSocket-Key".into());
    };
    let headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", stream_protocol)]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let (upstream, mut response) = match open_runtime_stream(addr, "POST", path, &headers).await {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    for (k, v) in [
        ("upgrade", "websocket".to_string()),
        ("connection", "Upgrade".to_string()),
        ("sec-websocket-accept", crate::websocket::accept_key(&key)),
        ("sec-websocket-protocol", protocol.to_string()),
    ] {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, value);
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let port_forward = kind == "portforward";
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(upgraded), role, None)
                .await;
        let (leftover, stream) = upstream.into_parts();
        if port_forward {
            crate::websocket::port_forward(ws, leftover, stream).await;
        } else {
            crate::websocket::exec(ws, leftover, stream, io).await;
        }
    });
    response
}

/// The running instance of a pod's container.
async fn find_container(cri: &mut Cri, namespace: &str, pod: &str, container: &str) -> Option<String> {
    let running = k8s_cri::v1::ContainerState::ContainerRunning as i32;
    cri.list_containers(None)
        .await
        .ok()?
        .into_iter()
        .filter(|c| {
            c.state == running
                && c.labels.get(LABEL_POD_NAMESPACE).map(String::as_str) == Some(namespace)
                && c.labels.get(LABEL_POD_NAME).map(String::as_str) == Some(pod)
                && c.labels.get(LABEL_CONTAINER_NAME).map(String::as_str) == Some(container)
        })
        .max_by_key(|c| c.created_at)
        .map(|c| c.id)
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((addr.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_exec_query_gives_the_command_and_streams() {
        let (command, io) =
            stream_query("command=sh&command=-c&command=exit%203&container=app&stdout=true&stderr=true");
        assert_eq!(command, vec!["sh", "-c", "exit 3"]);
        assert!(io.stdout && io.stderr && !io.stdin && !io.tty);
    }

    #[test]
    fn streaming_urls_split_into_address_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:34567/exec/abcDEF"),
            Some(("127.0.0.1:34567".to_string(), "/exec/abcDEF".to_string()))
        );
        assert_eq!(split_url("https://x/y"), None);
    }
}
