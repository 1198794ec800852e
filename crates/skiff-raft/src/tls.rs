//! Mutual TLS on the Raft port.
//!
//! With [`PeerTls`] a server's Raft port speaks only TLS 1.2 and 1.3 and requires a client
//! certificate that chains to the cluster CA **and** whose subject has the organization (group)
//! [`PEER_GROUP`] (another server) or [`MASTERS_GROUP`] (admin tools: `skiff member`, tests). A
//! certificate the cluster CA signed for anything else (an agent, a user) is refused during the
//! handshake, before a single request is read, so such a client cannot vote, replicate, propose
//! or read. When a server connects to a peer it presents the same certificate and checks the
//! peer's: signed by the CA, issued for the address dialled (a SAN), in [`PEER_GROUP`].
//!
//! The certificate and key are read again when their files change (checked every
//! [`RELOAD_CHECK`]); new connections, in both directions, use the new pair. Connections
//! already established keep theirs. The CA is read once, at startup.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::danger::ServerCertVerified;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::server::danger::ClientCertVerified;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::CertificateError;
use rustls::DigitallySignedStruct;
use rustls::DistinguishedName;
use rustls::SignatureScheme;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::ServerName;
use rustls_pki_types::UnixTime;
use skiff_pki::reload::LoadError;
use skiff_pki::reload::ReloadingCert;
pub use skiff_pki::MASTERS_GROUP;
pub use skiff_pki::PEER_GROUP;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::net::TcpListener;
use tokio::net::TcpSocket;
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::transport::server::Connected;

/// How often the certificate's files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The groups a client certificate must have one of to be let in.
const ADMITTED_GROUPS: &[&str] = &[PEER_GROUP, MASTERS_GROUP];
/// Only HTTP/2 (gRPC) is spoken on the port.
const ALPN_H2: &[u8] = b"h2";

/// Where the Raft port's TLS material lives (PEM files). Servers use their peer certificate;
/// tools use one in `system:masters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA: certificates of the other side must chain to it.
    pub ca: PathBuf,
    /// This side's certificate (with its chain, if any).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Why TLS for the Raft port could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The CA file holds no certificate rustls can use as a trust anchor.
    #[error("{}: not a usable CA certificate: {message}", path.display())]
    Ca { path: PathBuf, message: String },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A server's TLS for its Raft port: what it serves and requires, and how it connects to peers.
/// Cheap to clone; clones share the certificate, so a reload is seen by all.
#[derive(Debug, Clone)]
pub struct PeerTls {
    cert: Arc<ReloadingCert>,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl PeerTls {
    /// Loads the CA, the certificate and the key; an error here is a configuration error.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let cert = Arc::new(ReloadingCert::load(&files.cert, &files.key)?);
        let roots = roots(&files.ca)?;
        let provider = provider();
        let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(GroupClientVerifier { inner }))
            .with_cert_resolver(cert.clone());
        server.alpn_protocols = vec![ALPN_H2.to_vec()];
        let client = client_config(roots, cert.clone())?;
        Ok(Self { cert, server: Arc::new(server), client })
    }

    /// What the Raft port serves with.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// What connections to peers use.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }

    /// Reads the certificate and key again if their files changed: `Ok(true)` when new
    /// connections now use the new pair, `Err` when the files do not load (the old pair stays).
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        self.cert.reload_if_changed()
    }

    pub fn cert_path(&self) -> &Path {
        self.cert.cert_path()
    }

    /// Checks the files now (logging what happened).
    fn reload_and_log(&self) {
        match self.reload_if_changed() {
            Ok(true) => tracing::info!(cert = %self.cert_path().display(), "Raft port certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(cert = %self.cert_path().display(), "Raft port certificate not reloaded: {e}"),
        }
    }
}

/// A client configuration for tools (`skiff member`, tests): trusts the CA, presents the
/// certificate in `files` (which the Raft port admits if its group is [`MASTERS_GROUP`] or
/// [`PEER_GROUP`]), and requires the server to hold a peer certificate.
pub fn client_tls(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let cert = Arc::new(ReloadingCert::load(&files.cert, &files.key)?);
    client_config(roots(&files.ca)?, cert)
}

/// The TLS primitives of every skiff port, given explicitly so nothing depends on a process-wide
/// default provider being installed.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    skiff_client::crypto_provider()
}

fn roots(ca: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in skiff_pki::reload::read_certs(ca)? {
        roots.add(cert).map_err(|e| TlsError::Ca { path: ca.to_path_buf(), message: e.to_string() })?;
    }
    Ok(Arc::new(roots))
}

fn client_config(
    roots: Arc<rustls::RootCertStore>,
    cert: Arc<ReloadingCert>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::Config(format!("server certificate verifier: {e}")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerServerVerifier { inner }))
        .with_client_cert_resolver(cert);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// `Ok` when the certificate's subject has one of `groups` as an organization.
fn require_group(cert: &CertificateDer<'_>, groups: &[&str], side: &str) -> Result<(), rustls::Error> {
    let identity =
        skiff_pki::identity(cert.as_ref()).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if identity.groups.iter().any(|g| groups.contains(&g.as_str())) {
        return Ok(());
    }
    tracing::warn!(
        user = %identity.common_name,
        groups = ?identity.groups,
        "refused a Raft port {side} certificate: signed by the cluster CA but in none of the groups {groups:?}"
    );
    Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
}

/// The cluster CA's verdict, then the group rule.
#[derive(Debug)]
struct GroupClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for GroupClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        require_group(end_entity, ADMITTED_GROUPS, "client")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The usual checks (chain to the CA, name, validity), then: the Raft port belongs to a server,
/// so its certificate must be a peer certificate.
#[derive(Debug)]
struct PeerServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        require_group(end_entity, &[PEER_GROUP], "server")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a TLS connection to a peer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI has no host or port.
    #[error("bad address {0}")]
    Address(String),
    /// Resolving or connecting the TCP socket failed (worded as hyper's connector words it, so
    /// [`crate::network::never_sent`] recognises a refused connection).
    #[error("tcp connect error: {0}")]
    Tcp(io::Error),
    /// The TLS handshake failed (an unknown CA, a certificate not valid for the address, a
    /// certificate the peer refused).
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// Connects to peers: TCP from `local` (when given), then a TLS handshake with `config`. Used
/// as a tonic connector, so the channel's HTTP/2 runs inside the TLS stream.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    pub config: Arc<rustls::ClientConfig>,
    pub local: Option<IpAddr>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TokioIo<ClientStream>, ConnectError>> + Send>>;
type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<ClientStream>;
    type Error = ConnectError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (config, local) = (self.config.clone(), self.local);
        Box::pin(async move {
            let (host, port) = match (uri.host(), uri.port_u16()) {
                (Some(host), Some(port)) => (host.to_string(), port),
                _ => return Err(ConnectError::Address(uri.to_string())),
            };
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_string()).map_err(|_| ConnectError::Address(host.clone()))?;
            let addr = format!("{host}:{port}");
            let tcp = tcp_connect(&addr, local).await.map_err(ConnectError::Tcp)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|source| ConnectError::Tls { addr, source })?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// A TCP connection to `addr` (host:port), leaving from `local` when it is of the same family.
async fn tcp_connect(addr: &str, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = local.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        match socket.connect(target).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to no address"))))
}

/// Who is on the other end of an accepted Raft port connection; in each request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// From the verified client certificate.
    pub identity: Option<skiff_pki::Identity>,
}

/// An accepted, verified TLS connection, as tonic serves it.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        let (tcp, session) = self.0.get_ref();
        PeerInfo {
            remote: tcp.peer_addr().ok(),
            identity: session.peer_certificates().and_then(|c| c.first()).and_then(|c| skiff_pki::identity(c)),
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections of a TLS Raft port that passed the handshake, for
/// `Server::serve_with_incoming`. Handshakes run concurrently (a slow client holds up no one)
/// in a task that also reloads the certificate; dropping the stream stops that task and closes
/// the listener.
pub struct TlsIncoming {
    connections: tokio::sync::mpsc::Receiver<TlsConn>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    pub fn new(listener: TcpListener, tls: PeerTls) -> Self {
        let (tx, connections) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(listener, tls, tx));
        Self { connections, acceptor }
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Stream for TlsIncoming {
    type Item = Result<TlsConn, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|c| c.map(Ok))
    }
}

async fn accept_loop(listener: TcpListener, tls: PeerTls, tx: tokio::sync::mpsc::Sender<TlsConn>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let mut reload = tokio::time::interval(RELOAD_CHECK);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            _ = reload.tick() => {
                tls.reload_and_log();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("Raft port accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("TCP_NODELAY: {e}");
        }
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // Fails only once the server is gone.
                    let _ = tx.send(TlsConn(stream)).await;
                }
                Ok(Err(e)) => tracing::info!(%remote, "Raft port TLS handshake refused: {e}"),
                Err(_) => tracing::info!(%remote, "Raft port TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn write(dir: &Path, stem: &str, issued: &skiff_pki::Issued) -> (PathBuf, PathBuf) {
        issued.write(dir, stem).expect("write");
        (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")))
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM")
    }

    #[test]
    fn only_peer_and_masters_groups_are_admitted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = skiff_pki::Pki::init(dir.path().join("pki")).expect("pki");
        let peer = pki.issue_peer("s1", &["127.0.0.1".to_string()], DAY).expect("peer");
        let admin = pki.issue_client("admin", &[MASTERS_GROUP.to_string()], DAY).expect("admin");
        let node = pki.issue_client("system:node:x", &["system:nodes".to_string()], DAY).expect("node");
        let server = pki.issue_server("api", &["127.0.0.1".to_string()], DAY).expect("server");
        assert!(require_group(&der(&peer.cert_pem), ADMITTED_GROUPS, "client").is_ok());
        assert!(require_group(&der(&admin.cert_pem), ADMITTED_GROUPS, "client").is_ok());
        assert!(require_group(&der(&node.cert_pem), ADMITTED_GROUPS, "client").is_err());
        assert!(require_group(&der(&server.cert_pem), ADMITTED_GROUPS, "client").is_err());
        assert!(require_group(&der(&admin.cert_pem), &[PEER_GROUP], "server").is_err());
    }

    #[test]
    fn load_reports_the_file_at_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = skiff_pki::Pki::init(dir.path().join("pki")).expect("pki");
        let (cert, key) = write(dir.path(), "peer", &pki.issue_peer("s1", &["127.0.0.1".into()], DAY).expect("peer"));
        let ca = dir.path().join("pki").join(skiff_pki::CA_CERT);
        assert!(PeerTls::load(&TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() }).is_ok());
        let missing = dir.path().join("nope.crt");
        let err = PeerTls::load(&TlsFiles { ca: missing.clone(), cert, key }).expect_err("no CA");
        assert!(err.to_string().contains("nope.crt"), "{err}");
    }

    /// A real handshake over loopback, both ways: admitted identities get through, others fail.
    #[tokio::test]
    async fn handshakes_follow_the_group_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = skiff_pki::Pki::init(dir.path().join("pki")).expect("pki");
        let ca = dir.path().join("pki").join(skiff_pki::CA_CERT);
        let files = |stem: &str, issued: skiff_pki::Issued| {
            let (cert, key) = write(dir.path(), stem, &issued);
            TlsFiles { ca: ca.clone(), cert, key }
        };
        let server = PeerTls::load(&files("s", pki.issue_peer("s", &["127.0.0.1".into()], DAY).expect("peer")))
            .expect("server tls");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut incoming = TlsIncoming::new(listener, server);

        let try_client = |config: Arc<rustls::ClientConfig>| async move {
            let mut connector = TlsConnector { config, local: None };
            let uri: Uri = format!("http://{addr}").parse().expect("uri");
            let mut io = tower::Service::call(&mut connector, uri).await.map_err(|e| e.to_string())?;
            // TLS 1.3: the server judges the client certificate after the client considers the
            // handshake done; a refusal shows on the first read.
            use tokio::io::AsyncReadExt;
            use tokio::io::AsyncWriteExt;
            let stream = io.inner_mut();
            stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(0)) => Err("closed".to_string()),
                _ => Ok(()),
            }
        };

        let admin = files("admin", pki.issue_client("admin", &[MASTERS_GROUP.into()], DAY).expect("admin"));
        assert_eq!(try_client(client_tls(&admin).expect("admin tls")).await, Ok(()));
        use futures::StreamExt;
        let conn = incoming.next().await.expect("a connection").expect("ok");
        let identity = conn.connect_info().identity.expect("identity");
        assert_eq!(identity.common_name, "admin");

        let node = files("node", pki.issue_client("system:node:x", &["system:nodes".into()], DAY).expect("node"));
        let refused = try_client(client_tls(&node).expect("node tls")).await.expect_err("refused");
        assert!(refused.contains("AccessDenied") || refused.contains("access"), "{refused}");

        let other = skiff_pki::Pki::init(dir.path().join("other")).expect("other pki");
        let stranger = files("stranger", other.issue_client("admin", &[MASTERS_GROUP.into()], DAY).expect("cert"));
        assert!(try_client(client_tls(&stranger).expect("stranger tls")).await.is_err());

        // A server whose certificate is not a peer certificate is not trusted by clients.
        let api = files("api", pki.issue_server("api", &["127.0.0.1".into()], DAY).expect("server"));
        let impostor = PeerTls::load(&api).expect("impostor tls");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let impostor_addr = listener.local_addr().expect("addr");
        let _impostor = TlsIncoming::new(listener, impostor);
        let mut connector = TlsConnector { config: client_tls(&admin).expect("admin tls"), local: None };
        let uri: Uri = format!("http://{impostor_addr}").parse().expect("uri");
        let err = tower::Service::call(&mut connector, uri).await.expect_err("impostor refused");
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    }
}
