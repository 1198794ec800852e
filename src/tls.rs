//! TLS on the API port, with rustls: HTTP/1.1 and HTTP/2 by ALPN (upgrades for watch, exec and
//! port-forward still work over HTTP/1.1), the serving certificate reloaded from disk when its
//! files change, and client certificates verified against the cluster CA when one is given.
//! A verified client certificate becomes the request's [`UserInfo`] (CN the user, each O a
//! group). A client that speaks plain HTTP to the port gets one line telling it so, as Go's
//! servers answer, and the connection is closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use skiff_apiserver::authn::UserInfo;
use skiff_pki::reload::ReloadingCert;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

/// The files TLS is served from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA client certificates must chain to; without it no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

/// How often the serving certificate's files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The rustls configuration for the API port. The certificate it serves follows the files.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = skiff_client::crypto_provider();
    let resolver = Arc::new(ReloadingCert::load(&files.cert, &files.key)?);
    watch(resolver.clone());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in skiff_pki::reload::read_certs(ca)? {
                roots.add(cert).with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
            // Anonymous clients still get through TLS; the authenticator decides what they may
            // reach (health and version only).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Checks a certificate's files (the serving one, or the one presented to agents) every
/// [`RELOAD_CHECK`] and swaps in a renewed one.
pub fn watch(cert: Arc<ReloadingCert>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            match cert.reload_if_changed() {
                Ok(true) => tracing::info!(cert = %cert.cert_path().display(), "certificate reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(cert = %cert.cert_path().display(), "certificate not reloaded: {e}"),
            }
        }
    });
}

/// The user a verified client certificate names: CN the user, each O a group.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups: Vec<String> = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Some(UserInfo::new(&user, "", &groups))
}

/// What a plain-HTTP client is told before the connection closes.
const PLAINTEXT_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `app` over TLS on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router, config: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let mut tcp = tcp;
            let mut first = [0u8; 1];
            if matches!(tcp.peek(&mut first).await, Ok(1)) && first[0] != TLS_HANDSHAKE {
                let _ = tcp.write_all(PLAINTEXT_ANSWER).await;
                let _ = tcp.shutdown().await;
                return;
            }
            let stream = match acceptor.accept(tcp).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!("TLS handshake: {e}");
                    return;
                }
            };
            let user = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(identity_of);
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                if let Some(user) = &user {
                    request.extensions_mut().insert(user.clone());
                }
                app.clone().oneshot(request)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                tracing::debug!("TLS connection: {e}");
            }
        });
    }
}
