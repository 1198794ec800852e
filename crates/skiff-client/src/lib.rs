//! The Kubernetes API client skiff's own components (scheduler, controllers, the agent) use:
//! JSON over HTTP/1.1 to a server's API address, list and watch, and the fencing header.
//!
//! A client made with [`Client::with_servers`] knows every server: when one cannot be reached
//! the next request goes to the next server, so an agent keeps working while a server is down.
//! It never resends a request itself (a create that timed out may have happened); callers that
//! loop anyway (reflectors, heartbeats) simply reach the next server on their next try.
//!
//! It talks to the API like any other client, so every write passes the same validation and
//! admission as kubectl's. A client made with [`Client::fenced`] sends `X-Skiff-Fence` with every
//! request: the store then refuses its writes once the leadership that token names has ended
//! (`docs/fencing.md`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

pub mod tunnel;

/// The header that carries a fencing token (the API server's `FENCE_HEADER`).
pub const FENCE_HEADER: &str = "x-skiff-fence";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be sent or the answer could not be read (server down, timeout).
    #[error("{0}")]
    Transport(String),
    /// The server answered with a Kubernetes `Status` failure.
    #[error("{code} {reason}: {message}")]
    Status { code: u16, reason: String, message: String },
    /// The answer was not what the request expects.
    #[error("undecodable answer: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { code: 404, .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ClientError::Status { code: 409, .. })
    }
}

/// One line of a watch stream.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: Value,
}

/// A list answer: the items and the list's resourceVersion (where a watch resumes).
#[derive(Debug, Clone)]
pub struct List<T> {
    pub items: Vec<T>,
    pub resource_version: String,
}

/// The TLS primitives skiff uses, clients and servers alike: ring's. rustls marks this provider
/// deprecated for lacking post-quantum key exchange; the alternative (aws-lc-rs) needs a C/CMake
/// build this project avoids. Switching later is one line here.
///
/// Key exchange prefers X25519, as Go's TLS (kubectl, client-go) does. rustls' ring provider
/// lists P-384 first, and ring's P-384 is generic code: with it, the ephemeral key and the shared
/// secret were a third of an API server's CPU when every request opened a connection. P-256 and
/// P-384 stay for peers that offer nothing else.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

/// What a TLS client trusts and presents, as PEM.
#[derive(Clone)]
pub struct ClientTls {
    /// The CA the server's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// The client certificate (the identity the server authenticates).
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl ClientTls {
    /// The rustls configuration: trust the CA, present the certificate.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| ClientError::Transport(format!("TLS {what}: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            roots.add(cert.map_err(|e| bad("CA", &e))?).map_err(|e| bad("CA", &e))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("versions", &e))?
            .with_root_certificates(roots);
        if self.cert_pem.is_empty() {
            return Ok(builder.with_no_client_auth());
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad("client certificate", &e))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| bad("client key", &e))?;
        builder.with_client_auth_cert(chain, key).map_err(|e| bad("client certificate", &e))
    }

    /// Trust `ca_pem` and present no certificate (the identity then comes from a bearer token).
    pub fn ca_only(ca_pem: Vec<u8>) -> Self {
        Self { ca_pem, cert_pem: Vec::new(), key_pem: Vec::new() }
    }

    /// Reads the three PEM files.
    pub fn from_files(ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self { ca_pem: std::fs::read(ca)?, cert_pem: std::fs::read(cert)?, key_pem: std::fs::read(key)? })
    }
}

/// A client of one API server, or of the first of several that answers.
#[derive(Clone)]
pub struct Client {
    /// `http://host:port` or `https://host:port`, one per server; never empty.
    bases: Arc<[String]>,
    /// Index into `bases` of the server requests go to now.
    current: Arc<std::sync::atomic::AtomicUsize>,
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    fence: Option<u64>,
    /// Sent as `Authorization: Bearer ...`.
    bearer: Option<Arc<str>>,
    timeout: Duration,
}

impl Client {
    /// A client of the server at `addr` (`host:port`), in plain HTTP.
    pub fn new(addr: &str) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());
        match tls {
            Ok(tls) => Self::build(vec![format!("http://{addr}")], tls),
            // The ring provider always supports the default versions; this arm is never taken.
            Err(e) => unreachable!("rustls defaults: {e}"),
        }
    }

    /// A client of the server at `addr` (`host:port`) over TLS: the server's certificate must
    /// chain to `tls.ca_pem` and name the host of `addr`; the client presents `tls`'s
    /// certificate (its identity: CN the user, O the groups).
    pub fn with_tls(addr: &str, tls: &ClientTls) -> Result<Self, ClientError> {
        Self::with_servers(&[addr.to_string()], Some(tls))
    }

    /// A client of every server in `addrs` (`host:port`), over TLS when `tls` is given: requests
    /// go to one server until it cannot be reached, then to the next.
    pub fn with_servers(addrs: &[String], tls: Option<&ClientTls>) -> Result<Self, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::Transport("no API server addresses".into()));
        }
        let Some(tls) = tls else {
            let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Transport(format!("TLS versions: {e}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            return Ok(Self::build(addrs.iter().map(|a| format!("http://{a}")).collect(), config));
        };
        let config = tls.rustls_config()?;
        Ok(Self::build(addrs.iter().map(|a| format!("https://{a}")).collect(), config))
    }

    fn build(bases: Vec<String>, tls: rustls::ClientConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        Self {
            bases: bases.into(),
            current: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            http,
            fence: None,
            bearer: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// The `host:port` this client talks to now.
    pub fn addr(&self) -> &str {
        self.base().1.trim_start_matches("http://").trim_start_matches("https://")
    }

    /// The server requests go to now, and its index.
    fn base(&self) -> (usize, &str) {
        let i = self.current.load(std::sync::atomic::Ordering::Acquire) % self.bases.len();
        (i, &self.bases[i])
    }

    /// The server at index `failed` did not answer: move on to the next one, unless another
    /// request already did.
    fn fail_over(&self, failed: usize) {
        let next = (failed + 1) % self.bases.len();
        let _ = self.current.compare_exchange(
            failed,
            next,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
    }

    /// This client authenticating every request with the bearer token `token`.
    pub fn with_bearer(&self, token: &str) -> Self {
        Self { bearer: Some(token.into()), ..self.clone() }
    }

    /// This client with every request carrying `fence` (a leadership's fencing token).
    pub fn fenced(&self, fence: u64) -> Self {
        Self { fence: Some(fence), ..self.clone() }
    }

    async fn send(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<Bytes, ClientError> {
        let (server, base) = self.base();
        let answer = self.send_to(base, method, path, content_type, body).await;
        if matches!(answer, Err(ClientError::Transport(_))) {
            self.fail_over(server);
        }
        answer
    }

    async fn send_to(
        &self,
        base: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Bytes, ClientError> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("accept", "application/json")
            .header("content-type", content_type);
        if let Some(fence) = self.fence {
            request = request.header(FENCE_HEADER, fence.to_string());
        }
        if let Some(token) = &self.bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(format!("bad request: {e}")))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| ClientError::Transport(e.to_string()))?;
            let code = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|e| ClientError::Transport(e.to_string()))?;
            Ok::<_, ClientError>((code, body.to_bytes()))
        };
        let (code, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Transport(format!("{method} {path}: no answer in {:?}", self.timeout)))??;
        if (200..300).contains(&code) {
            return Ok(body);
        }
        let status: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = |field: &str| status.get(field).and_then(Value::as_str).unwrap_or("").to_string();
        Err(ClientError::Status { code, reason: text("reason"), message: text("message") })
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ClientError> {
        serde_json::to_vec(value).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Records a core/v1 Event about `regarding` (an ObjectReference: apiVersion, kind,
    /// namespace, name, uid) as `component`, the way upstream's components report what they did.
    /// `kind` is `Normal` or `Warning`. Events of cluster-scoped objects go to `default`.
    pub async fn record_event(
        &self,
        regarding: &Value,
        component: &str,
        kind: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ClientError> {
        let ns = regarding["namespace"].as_str().filter(|ns| !ns.is_empty()).unwrap_or("default");
        let name = regarding["name"].as_str().unwrap_or("unknown");
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let event = serde_json::json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", now.as_nanosecond()), "namespace": ns},
            "involvedObject": regarding, "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": component},
            "reportingComponent": component, "reportingInstance": "skiff"});
        let _: Value = self.create(&format!("/api/v1/namespaces/{ns}/events"), &event).await?;
        Ok(())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(&self.send("GET", path, "application/json", Vec::new()).await?)
    }

    /// Lists `path` (a collection, optionally with a query).
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<List<T>, ClientError> {
        #[derive(Deserialize)]
        struct Answer<T> {
            items: Vec<T>,
            metadata: ListMeta,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct ListMeta {
            resource_version: String,
        }
        let answer: Answer<T> = Self::decode(&self.send("GET", path, "application/json", Vec::new()).await?)?;
        Ok(List { items: answer.items, resource_version: answer.metadata.resource_version })
    }

    pub async fn create<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        Self::decode(&self.send("POST", path, "application/json", Self::encode(body)?).await?)
    }

    /// A strategic merge patch (what kubectl sends by default).
    pub async fn patch_strategic<T: DeserializeOwned>(&self, path: &str, patch: &Value) -> Result<T, ClientError> {
        let body = Self::encode(patch)?;
        Self::decode(&self.send("PATCH", path, "application/strategic-merge-patch+json", body).await?)
    }

    /// Replaces the object at `path` with `body` (PUT).
    pub async fn update<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let body = Self::encode(body)?;
        Self::decode(&self.send("PUT", path, "application/json", body).await?)
    }

    /// A JSON merge patch (RFC 7386).
    pub async fn patch_merge<T: DeserializeOwned>(&self, path: &str, patch: &Value) -> Result<T, ClientError> {
        let body = Self::encode(patch)?;
        Self::decode(&self.send("PATCH", path, "application/merge-patch+json", body).await?)
    }

    /// Deletes the object at `path` with these DeleteOptions (`preconditions`,
    /// `propagationPolicy`, `gracePeriodSeconds`...); the answer is the object as deleted or
    /// as marked for deletion.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str, options: &Value) -> Result<T, ClientError> {
        Self::decode(&self.send("DELETE", path, "application/json", Self::encode(options)?).await?)
    }

    /// Watches `path` from `resource_version`: each item is one event, in order; the stream ends
    /// when the server closes it.
    pub async fn watch(
        &self,
        path: &str,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent, ClientError>>, ClientError> {
        use futures::StreamExt;
        let lines = self.watch_lines(path, resource_version).await?;
        Ok(lines.map(|line| line.and_then(|line| Self::decode::<WatchEvent>(&line))))
    }

    /// Watches `path` from `resource_version`, each item one undecoded line of the stream (one
    /// event), for callers that decode straight into their own types.
    pub async fn watch_lines(
        &self,
        path: &str,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, ClientError>>, ClientError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (server, base) = self.base();
        let uri = format!("{base}{path}{sep}watch=true&resourceVersion={resource_version}&allowWatchBookmarks=true");
        let mut request = hyper::Request::builder().method("GET").uri(uri).header("accept", "application/json");
        if let Some(fence) = self.fence {
            request = request.header(FENCE_HEADER, fence.to_string());
        }
        if let Some(token) = &self.bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request =
            request.body(Full::new(Bytes::new())).map_err(|e| ClientError::Transport(format!("bad request: {e}")))?;
        let response = match tokio::time::timeout(self.timeout, self.http.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.fail_over(server);
                return Err(ClientError::Transport(e.to_string()));
            }
            Err(_) => {
                self.fail_over(server);
                return Err(ClientError::Transport(format!("watch {path}: no answer")));
            }
        };
        let code = response.status().as_u16();
        if code != 200 {
            return Err(ClientError::Status { code, reason: String::new(), message: format!("watch {path}") });
        }
        let body = response.into_body();
        Ok(futures::stream::unfold((body, Lines::default()), |(mut body, mut lines)| async move {
            loop {
                if let Some(line) = lines.next_line() {
                    return Some((Ok(line), (body, lines)));
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            lines.push(&data);
                        }
                    }
                    Some(Err(e)) => {
                        return Some((Err(ClientError::Transport(e.to_string())), (body, Lines::default())))
                    }
                    None => return None,
                }
            }
        }))
    }
}

/// Splits a watch stream's bytes into its lines (one event each, blank lines skipped). A chunk
/// can hold many events when the reader falls behind: a line is split off the front without
/// moving the rest, and each byte is searched for the newline once.
#[derive(Default)]
struct Lines {
    buf: bytes::BytesMut,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
}

impl Lines {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn next_line(&mut self) -> Option<Vec<u8>> {
        while let Some(at) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let line = self.buf.split_to(self.scanned + at + 1);
            self.scanned = 0;
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line.to_vec());
            }
        }
        self.scanned = self.buf.len();
        None
    }
}

/// A local copy of one collection, kept current by a list and then a watch, relisting whenever
/// the watch ends or reports an error (what client-go calls a reflector). Readers take a
/// snapshot; [`Reflector::changed`] wakes them when something arrived.
pub struct Reflector<T> {
    items: Arc<Mutex<BTreeMap<String, Arc<T>>>>,
    changes: Arc<Mutex<Changes<T>>>,
    revision: Arc<std::sync::atomic::AtomicU64>,
    changed: Arc<Notify>,
    synced: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Reflector<T> {
    /// Starts reflecting the collection at `path` (e.g. `/api/v1/pods`).
    pub fn start(client: Client, path: &str) -> Self {
        Self::start_with(client, path, |_| {})
    }

    /// [`Reflector::start`], passing every object through `prepare` before it is cached: what
    /// client-go calls a transform, e.g. dropping `managedFields`, which no controller reads and
    /// which dropped from the controllers' caches halved the leader's memory growth while pods
    /// were created (docs/benchmarks.md).
    pub fn start_with(client: Client, path: &str, prepare: fn(&mut T)) -> Self {
        Self::start_inner(client, path, prepare, None)
    }

    /// [`Reflector::start_with`] for a Kubernetes type: each watch line is decoded once,
    /// straight into `T`, the key and revision read from the decoded `metadata`, instead of a
    /// first pass for the event's type, key and revision and a second into `T` (the first pass
    /// alone was a third of the pod cache's cost while pods were created).
    pub fn start_typed(client: Client, path: &str, prepare: fn(&mut T)) -> Self
    where
        T: k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        Self::start_inner(client, path, prepare, Some(<T as k8s_openapi::Metadata>::metadata))
    }

    fn start_inner(client: Client, path: &str, prepare: fn(&mut T), identify: Option<Identify<T>>) -> Self {
        let items: Arc<Mutex<BTreeMap<String, Arc<T>>>> = Arc::new(Mutex::new(BTreeMap::new()));
        let changes = Arc::new(Mutex::new(Changes::Any));
        let changed = Arc::new(Notify::new());
        let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let revision = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cache = Cache {
            items: items.clone(),
            changes: changes.clone(),
            changed: changed.clone(),
            synced: synced.clone(),
            revision: revision.clone(),
        };
        let task = tokio::spawn(reflect(client, path.to_string(), cache, Transform { prepare, identify }));
        Self { items, changes, revision, changed, synced, task }
    }

    /// The newest resourceVersion this cache has seen (from a list, an event or a bookmark):
    /// every write to the collection at or before it is reflected in the snapshot.
    pub fn revision(&self) -> u64 {
        self.revision.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The objects as last seen, shared rather than copied.
    pub fn shared(&self) -> Vec<Arc<T>> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect()
    }

    /// What changed since the last call (everything, before the first): a reader that only
    /// needs to act on some changes can tell whether any arrived without looking at every object.
    pub fn take_changes(&self) -> Changes<T> {
        std::mem::replace(&mut *self.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()), Changes::none())
    }

    /// Whether the first list has arrived (before that, the snapshot is empty, not "nothing").
    pub fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The objects as last seen, in key order (`namespace/name`).
    pub fn snapshot(&self) -> Vec<T> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).values().map(|item| T::clone(item)).collect()
    }

    /// Waits until something changed since the last call (a change before the call counts).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

impl<T> Drop for Reflector<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_of(obj: &Value) -> String {
    let meta = &obj["metadata"];
    format!("{}/{}", meta["namespace"].as_str().unwrap_or(""), meta["name"].as_str().unwrap_or(""))
}

/// What changed in a [`Reflector`]'s cache since [`Reflector::take_changes`] was last called.
#[derive(Debug)]
pub enum Changes<T> {
    /// Only these objects were added or modified, each as it is now, oldest change first.
    Upserted(Vec<Arc<T>>),
    /// Anything: an object was deleted, the collection was listed again, or more objects
    /// changed than are kept one by one ([`MAX_TRACKED_CHANGES`]).
    Any,
}

impl<T> Changes<T> {
    fn none() -> Self {
        Self::Upserted(Vec::new())
    }

    fn upserted(&mut self, object: &Arc<T>) {
        match self {
            Self::Upserted(objects) if objects.len() < MAX_TRACKED_CHANGES => objects.push(object.clone()),
            _ => *self = Self::Any,
        }
    }
}

/// The most upserts [`Changes`] names one by one; a reader that takes them less often learns
/// only that anything changed.
pub const MAX_TRACKED_CHANGES: usize = 16_384;

/// What a reflector's task shares with its [`Reflector`].
struct Cache<T> {
    items: Arc<Mutex<BTreeMap<String, Arc<T>>>>,
    changes: Arc<Mutex<Changes<T>>>,
    changed: Arc<Notify>,
    synced: Arc<std::sync::atomic::AtomicBool>,
    revision: Arc<std::sync::atomic::AtomicU64>,
}

/// The objects and the record of their changes move together: a reader that skips work because
/// [`Changes`] names only some upserts must never miss a delete or a relist.
impl<T> Cache<T> {
    fn changes(&self) -> std::sync::MutexGuard<'_, Changes<T>> {
        self.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn items(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<T>>> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh list in place of everything held.
    fn replace(&self, fresh: BTreeMap<String, Arc<T>>) {
        *self.items() = fresh;
        *self.changes() = Changes::Any;
    }

    fn upsert(&self, key: String, object: T) {
        let object = Arc::new(object);
        self.items().insert(key, object.clone());
        self.changes().upserted(&object);
    }

    fn remove(&self, key: &str) {
        self.items().remove(key);
        *self.changes() = Changes::Any;
    }
}

/// Reads a typed object's metadata, for its key and revision.
type Identify<T> = fn(&T) -> &ObjectMeta;

/// What a reflector does to each decoded object: `prepare` transforms it before it is cached;
/// `identify`, when the type has one, lets a watch line be decoded in a single pass.
struct Transform<T> {
    prepare: fn(&mut T),
    identify: Option<Identify<T>>,
}

impl<T> Clone for Transform<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Transform<T> {}

/// A whole watch event decoded into the cache's type.
#[derive(Deserialize)]
struct TypedEvent<T> {
    #[serde(rename = "type")]
    kind: String,
    object: T,
}

/// What a reflector reads of every watch event before deciding what to do with it.
#[derive(Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: HeadObject,
}

#[derive(Deserialize, Default)]
struct HeadObject {
    #[serde(default)]
    metadata: HeadMeta,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct HeadMeta {
    namespace: Option<String>,
    name: Option<String>,
    resource_version: Option<String>,
}

/// An added or modified object, decoded into the cache's type.
#[derive(Deserialize)]
struct EventBody<T> {
    object: T,
}

/// What one watch line means for a cache.
#[derive(Debug, PartialEq)]
enum CacheEvent<T> {
    Upsert {
        key: String,
        rv: u64,
        object: T,
    },
    Delete {
        key: String,
        rv: u64,
    },
    Bookmark {
        rv: u64,
    },
    /// An object that does not decode as `T`: left out, as a list would leave it out.
    Skip,
    /// An ERROR event (e.g. 410 Gone) or a line that is not an event: start over from a list.
    Relist,
}

/// Reads one watch line. The object is decoded straight into `T`, after a light first pass for
/// the type, key and revision: going through a `serde_json::Value` first cost twice as much for
/// every event. An upserted object has been through `prepare`, the cache's transform.
///
/// With an `identify`, the line is first decoded in one pass, the key and revision read from the
/// decoded object; a line that does not decode so (an ERROR event's Status, say) takes the two
/// passes, which say what it is.
fn parse_event<T: DeserializeOwned>(line: &[u8], transform: Transform<T>) -> CacheEvent<T> {
    let Transform { prepare, identify } = transform;
    if let Some(identify) = identify {
        if let Ok(TypedEvent { kind, mut object }) = serde_json::from_slice::<TypedEvent<T>>(line) {
            let meta = identify(&object);
            let key =
                [meta.namespace.as_deref().unwrap_or_default(), "/", meta.name.as_deref().unwrap_or_default()].concat();
            let rv = meta.resource_version.as_deref().and_then(|rv| rv.parse().ok()).unwrap_or(0);
            match kind.as_str() {
                "ADDED" | "MODIFIED" => {
                    prepare(&mut object);
                    return CacheEvent::Upsert { key, rv, object };
                }
                "DELETED" => return CacheEvent::Delete { key, rv },
                "BOOKMARK" => return CacheEvent::Bookmark { rv },
                _ => {}
            }
        }
    }
    let Ok(head) = serde_json::from_slice::<EventHead>(line) else { return CacheEvent::Relist };
    let meta = head.object.metadata;
    let key = format!("{}/{}", meta.namespace.unwrap_or_default(), meta.name.unwrap_or_default());
    let rv = meta.resource_version.and_then(|rv| rv.parse().ok()).unwrap_or(0);
    match head.kind.as_str() {
        "ADDED" | "MODIFIED" => match serde_json::from_slice::<EventBody<T>>(line) {
            Ok(EventBody { mut object }) => {
                prepare(&mut object);
                CacheEvent::Upsert { key, rv, object }
            }
            Err(_) => CacheEvent::Skip,
        },
        "DELETED" => CacheEvent::Delete { key, rv },
        "BOOKMARK" => CacheEvent::Bookmark { rv },
        _ => CacheEvent::Relist,
    }
}

async fn reflect<T: DeserializeOwned>(client: Client, path: String, cache: Cache<T>, transform: Transform<T>) {
    use futures::StreamExt;
    let seen = |rv: u64| cache.revision.fetch_max(rv, std::sync::atomic::Ordering::AcqRel);
    loop {
        let list = match client.list::<Value>(&path).await {
            Ok(list) => list,
            Err(e) => {
                tracing::debug!(%path, "list for the cache: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let fresh: BTreeMap<String, Arc<T>> = list
            .items
            .into_iter()
            .filter_map(|obj| {
                let key = key_of(&obj);
                let mut typed: T = serde_json::from_value(obj).ok()?;
                (transform.prepare)(&mut typed);
                Some((key, Arc::new(typed)))
            })
            .collect();
        cache.replace(fresh);
        seen(list.resource_version.parse().unwrap_or(0));
        cache.synced.store(true, std::sync::atomic::Ordering::Release);
        cache.changed.notify_one();
        let stream = match client.watch_lines(&path, &list.resource_version).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%path, "watch for the cache: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(line) = stream.next().await {
            let Ok(line) = line else { break };
            let rv = match parse_event::<T>(&line, transform) {
                CacheEvent::Upsert { key, rv, object } => {
                    cache.upsert(key, object);
                    rv
                }
                CacheEvent::Delete { key, rv } => {
                    cache.remove(&key);
                    rv
                }
                CacheEvent::Bookmark { rv } => {
                    seen(rv);
                    continue;
                }
                CacheEvent::Skip => continue,
                CacheEvent::Relist => break,
            };
            // After the change is in the map, so a reader that sees the revision sees the change.
            seen(rv);
            cache.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod crypto_tests {
    #[test]
    fn key_exchange_prefers_x25519_and_keeps_the_nist_curves() {
        let names: Vec<_> = super::crypto_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(names, [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1, rustls::NamedGroup::secp384r1]);
    }
}

#[cfg(test)]
mod cache_event_tests {
    use super::*;

    #[test]
    fn watch_bytes_split_into_lines_however_they_arrive() {
        let stream = b"{\"a\":1}\n\n  \n{\"b\":2}\n{\"c\":3}\n";
        for chunk in [1, 2, 5, stream.len()] {
            let mut lines = Lines::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                lines.push(piece);
                while let Some(line) = lines.next_line() {
                    got.push(String::from_utf8(line).expect("utf-8"));
                }
            }
            assert_eq!(got, ["{\"a\":1}\n", "{\"b\":2}\n", "{\"c\":3}\n"], "chunks of {chunk}");
        }
        let mut lines = Lines::default();
        lines.push(b"{\"partial\":");
        assert_eq!(lines.next_line(), None, "no line before its newline");
        lines.push(b"true}\n");
        assert_eq!(lines.next_line().as_deref(), Some(&b"{\"partial\":true}\n"[..]));
    }

    #[test]
    fn a_cache_records_upserts_and_turns_deletes_and_lists_into_anything() {
        let (items, changes) = (Arc::new(Mutex::new(BTreeMap::new())), Arc::new(Mutex::new(Changes::none())));
        let cache = Cache {
            items: items.clone(),
            changes: changes.clone(),
            changed: Arc::new(Notify::new()),
            synced: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            revision: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let take = || std::mem::replace(&mut *changes.lock().expect("lock"), Changes::none());
        cache.upsert("a/p".into(), 1u8);
        cache.upsert("a/q".into(), 2u8);
        assert!(matches!(take(), Changes::Upserted(v) if v.iter().map(|o| **o).collect::<Vec<_>>() == [1, 2]));
        assert_eq!(items.lock().expect("lock").len(), 2);
        cache.upsert("a/r".into(), 3u8);
        cache.remove("a/p");
        assert!(matches!(take(), Changes::Any), "a delete is never routine");
        assert!(!items.lock().expect("lock").contains_key("a/p"));
        cache.replace(BTreeMap::from([("a/s".to_string(), Arc::new(4u8))]));
        assert!(matches!(take(), Changes::Any), "nor is a relist");
        assert!(matches!(take(), Changes::Upserted(v) if v.is_empty()), "taken means nothing is left");
    }

    #[test]
    fn changes_name_upserts_until_there_are_too_many() {
        let mut changes = Changes::none();
        let object = Arc::new(1u8);
        changes.upserted(&object);
        assert!(matches!(&changes, Changes::Upserted(objects) if objects.len() == 1));
        for _ in 1..MAX_TRACKED_CHANGES {
            changes.upserted(&object);
        }
        assert!(matches!(&changes, Changes::Upserted(objects) if objects.len() == MAX_TRACKED_CHANGES));
        changes.upserted(&object);
        assert!(matches!(changes, Changes::Any), "one more than is kept is just 'anything'");
        changes.upserted(&object);
        assert!(matches!(changes, Changes::Any), "and stays so until taken");
    }

    /// A typed object, standing in for a Kubernetes type.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Pod {
        metadata: ObjectMeta,
        #[serde(default)]
        spec: Option<PodSpec>,
    }

    fn identify_pod(pod: &Pod) -> &ObjectMeta {
        &pod.metadata
    }

    /// The event of `line` as the two-pass and the one-pass decodings see it, which must agree.
    fn parse<T: DeserializeOwned + PartialEq + std::fmt::Debug>(
        line: &[u8],
        prepare: fn(&mut T),
        identify: Identify<T>,
    ) -> CacheEvent<T> {
        let two = parse_event(line, Transform { prepare, identify: None });
        let one = parse_event(line, Transform { prepare, identify: Some(identify) });
        assert_eq!(one, two, "{}", String::from_utf8_lossy(line));
        one
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct PodSpec {
        containers: Vec<Value>,
    }

    #[test]
    fn watch_lines_become_cache_events() {
        let line = br#"{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"a","resourceVersion":"42"},"spec":{"containers":[]}}}"#;
        match parse(line, |_: &mut Pod| {}, identify_pod) {
            CacheEvent::Upsert { key, rv, object } => {
                assert_eq!((key.as_str(), rv), ("a/web", 42));
                assert_eq!(object.metadata.name.as_deref(), Some("web"), "decoded into the cache's type");
                assert_eq!(object.spec, Some(PodSpec { containers: Vec::new() }));
            }
            other => panic!("expected an upsert, got {other:?}"),
        }
        let node = br#"{"type":"DELETED","object":{"kind":"Node","metadata":{"name":"n1","namespace":null,"resourceVersion":"7"}}}"#;
        assert_eq!(
            parse_event(node, Transform { prepare: |_: &mut Value| {}, identify: None }),
            CacheEvent::Delete { key: "/n1".into(), rv: 7 },
            "cluster-scoped, null namespace"
        );
        let bookmark =
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"99"}}}"#;
        assert_eq!(parse(bookmark, |_: &mut Pod| {}, identify_pod), CacheEvent::Bookmark { rv: 99 });
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"code":410}}"#;
        assert_eq!(parse(gone, |_: &mut Pod| {}, identify_pod), CacheEvent::Relist);
        assert_eq!(parse(b"not json", |_: &mut Pod| {}, identify_pod), CacheEvent::Relist);
        let wrong = br#"{"type":"ADDED","object":{"metadata":{"name":"x","resourceVersion":"3"},"spec":"not a spec"}}"#;
        assert_eq!(parse(wrong, |_: &mut Pod| {}, identify_pod), CacheEvent::Skip);
    }

    #[test]
    fn kubernetes_types_are_decoded_in_one_pass_as_in_two() {
        use k8s_openapi::api::core::v1::Pod as KubePod;
        use k8s_openapi::Metadata;
        let added = br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"a","resourceVersion":"8","managedFields":[{"manager":"m","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},"spec":{"containers":[{"name":"c","image":"i"}]}}}"#;
        match parse(added, |pod: &mut KubePod| pod.metadata.managed_fields = None, KubePod::metadata) {
            CacheEvent::Upsert { key, rv, object } => {
                assert_eq!((key.as_str(), rv), ("a/web", 8));
                assert_eq!(object.metadata.managed_fields, None, "the transform ran");
            }
            other => panic!("expected an upsert, got {other:?}"),
        }
        let deleted = br#"{"type":"DELETED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"a","resourceVersion":"9"}}}"#;
        assert_eq!(
            parse(deleted, |_: &mut KubePod| {}, KubePod::metadata),
            CacheEvent::Delete { key: "a/web".into(), rv: 9 }
        );
        let bookmark =
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"99"}}}"#;
        assert_eq!(parse(bookmark, |_: &mut KubePod| {}, KubePod::metadata), CacheEvent::Bookmark { rv: 99 });
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"code":410}}"#;
        assert_eq!(parse(gone, |_: &mut KubePod| {}, KubePod::metadata), CacheEvent::Relist);
    }

    #[test]
    fn an_upserted_object_goes_through_the_caches_transform() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"web","namespace":"a","resourceVersion":"5"},"spec":{"containers":[]}}}"#;
        match parse(line, |pod: &mut Pod| pod.spec = None, identify_pod) {
            CacheEvent::Upsert { object, .. } => assert_eq!(object.spec, None, "the transform ran"),
            other => panic!("expected an upsert, got {other:?}"),
        }
    }
}
