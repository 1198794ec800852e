//! [`RemoteStore`]: the [`Store`] of a cluster, reached over gRPC from another process.
//!
//! Requests go to one server at a time; when it cannot be reached the client moves to the next.
//! Reads are retried on another server. Writes are not: a write whose server failed mid-request
//! may have been applied, so it is reported as [`StoreError::Unavailable`] (indeterminate) and
//! the caller decides.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use skiff_store::Consistency;
use skiff_store::ListOptions;
use skiff_store::ListPage;
use skiff_store::Precondition;
use skiff_store::Record;
use skiff_store::Revision;
use skiff_store::Store;
use skiff_store::StoreError;
use skiff_store::WatchItem;
use skiff_store::WatchStream;
use skiff_store::Write;
use tonic::transport::Channel;

use crate::codec::decode;
use crate::network::channel_with;
use crate::network::describe;
use crate::network::never_sent;
use crate::network::MAX_MESSAGE;
use crate::node::members_from_pb;
use crate::node::MemberInfo;
use crate::node::NodeStatus;
use crate::pb;
use crate::pb::cluster_client::ClusterClient;
use crate::pb::kv_client::KvClient;
use crate::tls::client_tls;
use crate::tls::TlsFiles;

/// A client of the servers at `endpoints` (their Raft addresses).
pub struct RemoteStore {
    endpoints: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    timeout: Duration,
}

fn transport_error(endpoint: &str, s: tonic::Status) -> StoreError {
    match s.code() {
        tonic::Code::DeadlineExceeded => StoreError::Timeout(format!("{endpoint}: {}", s.message())),
        _ => StoreError::Unavailable(format!("{endpoint}: {}", describe(&s))),
    }
}

impl RemoteStore {
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Self, StoreError> {
        Self::connect(endpoints, timeout, None)
    }

    /// A client of servers whose Raft ports use mutual TLS: it trusts the CA in `files`, checks
    /// that each server presents a peer certificate for the address dialled, and presents the
    /// certificate in `files` (which must be in the group `system:masters` or `skiff:peers`).
    pub fn with_tls(endpoints: Vec<String>, timeout: Duration, files: &TlsFiles) -> Result<Self, StoreError> {
        let config = client_tls(files).map_err(|e| StoreError::Invalid(format!("Raft port TLS: {e}")))?;
        Self::with_tls_config(endpoints, timeout, config)
    }

    /// [`Self::with_tls`] with a configuration already loaded (see [`crate::tls::client_tls`]).
    pub fn with_tls_config(
        endpoints: Vec<String>,
        timeout: Duration,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, StoreError> {
        Self::connect(endpoints, timeout, Some(config))
    }

    fn connect(
        endpoints: Vec<String>,
        timeout: Duration,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Invalid("no server endpoints".into()));
        }
        let channels = endpoints
            .iter()
            .map(|e| {
                channel_with(e, None, tls.as_ref())
                    .map_err(|err| StoreError::Invalid(format!("bad endpoint {e}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { endpoints, channels, current: AtomicUsize::new(0), timeout })
    }

    /// Pins the client to one server (index into the endpoint list).
    pub fn prefer(&self, index: usize) {
        self.current.store(index % self.endpoints.len(), Ordering::Relaxed);
    }

    fn pick(&self) -> (usize, KvClient<Channel>) {
        let i = self.current.load(Ordering::Relaxed) % self.channels.len();
        (i, kv(self.channels[i].clone()))
    }

    fn rotate(&self, from: usize) {
        let _ =
            self.current.compare_exchange(from, (from + 1) % self.channels.len(), Ordering::Relaxed, Ordering::Relaxed);
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    fn decode_reply<T: serde::de::DeserializeOwned>(reply: tonic::Response<pb::Payload>) -> Result<T, StoreError> {
        let result: Result<T, StoreError> =
            decode(&reply.into_inner().data).map_err(|e| StoreError::Internal(e.to_string()))?;
        result
    }

    /// Sends one request, moving on to the next server only while the request certainly never
    /// left (the connection was refused); any other transport failure is returned, and for a
    /// write it is indeterminate. Returns the reply and the index of the server that gave it.
    async fn send_once<R, F, Fut>(&self, f: F) -> Result<(usize, R), StoreError>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut attempts = 0;
        loop {
            let i = self.current.load(Ordering::Relaxed) % self.channels.len();
            match f(self.channels[i].clone()).await {
                Ok(reply) => return Ok((i, reply.into_inner())),
                Err(s) => {
                    self.rotate(i);
                    attempts += 1;
                    if !never_sent(&s) || attempts >= self.channels.len() {
                        return Err(transport_error(&self.endpoints[i], s));
                    }
                }
            }
        }
    }

    /// A write through [`Self::send_once`]; a server that answers "unavailable" is left for the
    /// next call.
    async fn write<F, Fut>(&self, f: F) -> Result<Record, StoreError>
    where
        F: Fn(KvClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<pb::Payload>, tonic::Status>>,
    {
        let (i, payload) = self.send_once(|ch| f(kv(ch))).await?;
        let result: Result<Record, StoreError> =
            decode(&payload.data).map_err(|e| StoreError::Internal(e.to_string()))?;
        if matches!(result, Err(StoreError::Unavailable(_))) {
            self.rotate(i);
        }
        result
    }

    /// A read: retried on each server once.
    async fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(KvClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<pb::Payload>, tonic::Status>>,
    {
        let mut last = StoreError::Unavailable("no servers".into());
        for _ in 0..self.channels.len() {
            let (i, client) = self.pick();
            match f(client).await {
                Ok(reply) => match Self::decode_reply::<T>(reply) {
                    Err(e @ StoreError::Unavailable(_)) | Err(e @ StoreError::Timeout(_)) => {
                        self.rotate(i);
                        last = e;
                    }
                    other => return other,
                },
                Err(s) => {
                    self.rotate(i);
                    last = transport_error(&self.endpoints[i], s);
                }
            }
        }
        Err(last)
    }

    /// The status of the server at endpoint `index`.
    pub async fn status_of(&self, index: usize) -> Result<NodeStatus, StoreError> {
        let ch = self.channels.get(index).ok_or_else(|| StoreError::Invalid(format!("no endpoint {index}")))?;
        let reply = ClusterClient::new(ch.clone())
            .status(self.request(pb::StatusRequest {}))
            .await
            .map_err(|s| transport_error(&self.endpoints[index], s))?
            .into_inner();
        Ok(NodeStatus {
            id: reply.id,
            initialized: reply.initialized,
            role: reply.role,
            term: reply.term,
            applied: reply.applied,
            committed: reply.committed,
            leader: reply.leader,
            members: members_from_pb(reply.members),
            quorum_ack_ms: None,
        })
    }

    /// A membership call through [`Self::send_once`].
    async fn admin<F, Fut>(&self, f: F) -> Result<Vec<MemberInfo>, StoreError>
    where
        F: Fn(ClusterClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<pb::MembershipReply>, tonic::Status>>,
    {
        let (_, reply) = self.send_once(|ch| f(ClusterClient::new(ch))).await?;
        Ok(members_from_pb(reply.members))
    }

    /// Adds server `id` at `addr` (via any server; it is forwarded to the leader). Waits until
    /// the new server has caught up as a learner and was promoted.
    pub async fn add_member(&self, id: u64, addr: &str) -> Result<Vec<MemberInfo>, StoreError> {
        self.admin(|mut c| {
            let mut req = tonic::Request::new(pb::AddMemberRequest { id, addr: addr.to_string() });
            req.set_timeout(Duration::from_secs(300));
            async move { c.add_member(req).await }
        })
        .await
    }

    /// Removes server `id` (via any server; it is forwarded to the leader).
    pub async fn remove_member(&self, id: u64) -> Result<Vec<MemberInfo>, StoreError> {
        self.admin(|mut c| {
            let req = self.request(pb::RemoveMemberRequest { id });
            async move { c.remove_member(req).await }
        })
        .await
    }
}

fn kv(ch: Channel) -> KvClient<Channel> {
    KvClient::new(ch).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
}

fn pb_precondition(p: Precondition) -> Option<pb::Precondition> {
    Some(pb::Precondition { revision: p.revision, uid: p.uid })
}

#[async_trait]
impl Store for RemoteStore {
    async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Record>, StoreError> {
        let linearizable = consistency == Consistency::Linearizable;
        self.read(|mut c| {
            let req = self.request(pb::GetRequest { key: key.to_string(), linearizable });
            async move { c.get(req).await }
        })
        .await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let linearizable = options.consistency == Consistency::Linearizable;
        self.read(|mut c| {
            let req = self.request(pb::ListRequest {
                prefix: prefix.to_string(),
                limit: options.limit.unwrap_or(0) as u64,
                continue_after: options.continue_after.clone().unwrap_or_default(),
                linearizable,
            });
            async move { c.list(req).await }
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>, uid: &str) -> Result<Record, StoreError> {
        let req = pb::CreateRequest { key: key.to_string(), value, uid: uid.to_string(), fence: None };
        self.write(|mut c| {
            let req = self.request(req.clone());
            async move { c.create(req).await }
        })
        .await
    }

    async fn update(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Record, StoreError> {
        let req =
            pb::UpdateRequest { key: key.to_string(), value, precondition: pb_precondition(precondition), fence: None };
        self.write(|mut c| {
            let req = self.request(req.clone());
            async move { c.update(req).await }
        })
        .await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Record, StoreError> {
        let req = pb::DeleteRequest { key: key.to_string(), precondition: pb_precondition(precondition), fence: None };
        self.write(|mut c| {
            let req = self.request(req.clone());
            async move { c.delete(req).await }
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let (i, mut client) = self.pick();
        let req = tonic::Request::new(pb::WatchRequest { prefix: prefix.to_string(), after });
        let stream = match client.watch(req).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                self.rotate(i);
                return Err(transport_error(&self.endpoints[i], s));
            }
        };
        let endpoint = self.endpoints[i].clone();
        Ok(Box::pin(stream.map(move |item| {
            match item {
                Ok(p) => decode::<Result<WatchItem, StoreError>>(&p.data)
                    .map_err(|e| StoreError::Internal(e.to_string()))
                    .and_then(|r| r),
                Err(s) => Err(transport_error(&endpoint, s)),
            }
        })))
    }

    async fn current_revision(&self, consistency: Consistency) -> Result<Revision, StoreError> {
        let linearizable = consistency == Consistency::Linearizable;
        self.read(|mut c| {
            let req = self.request(pb::RevisionRequest { linearizable });
            async move { c.current_revision(req).await }
        })
        .await
    }

    /// A client holds no leadership of its own; it gets the token of the cluster's current
    /// leader, as the first of its servers that knows a leader reports it (`None` while none
    /// does). For tests and tools: a component that must act only while it leads uses the
    /// token of its own server's `RaftNode`.
    async fn fence_token(&self) -> Result<Option<u64>, StoreError> {
        for index in 0..self.endpoints.len() {
            // A follower that knows a leader is in that leader's term.
            if let Ok(status) = self.status_of(index).await {
                if status.leader.is_some() {
                    return Ok(Some(status.term));
                }
            }
        }
        Ok(None)
    }

    async fn write_fenced(&self, fence: u64, write: Write) -> Result<Record, StoreError> {
        match write {
            Write::Create { key, value, uid } => {
                let req = pb::CreateRequest { key, value, uid, fence: Some(fence) };
                self.write(|mut c| {
                    let req = self.request(req.clone());
                    async move { c.create(req).await }
                })
                .await
            }
            Write::Update { key, value, precondition } => {
                let req =
                    pb::UpdateRequest { key, value, precondition: pb_precondition(precondition), fence: Some(fence) };
                self.write(|mut c| {
                    let req = self.request(req.clone());
                    async move { c.update(req).await }
                })
                .await
            }
            Write::Delete { key, precondition } => {
                let req = pb::DeleteRequest { key, precondition: pb_precondition(precondition), fence: Some(fence) };
                self.write(|mut c| {
                    let req = self.request(req.clone());
                    async move { c.delete(req).await }
                })
                .await
            }
        }
    }
}
