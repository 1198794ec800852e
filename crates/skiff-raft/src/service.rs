//! The receiving side: gRPC services a server exposes on its Raft address.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use futures::StreamExt;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::VoteRequest;
use skiff_store::Consistency;
use skiff_store::ListOptions;
use skiff_store::Precondition;
use skiff_store::Record;
use skiff_store::Store;
use skiff_store::StoreError;
use skiff_store::Write;
use tokio::net::TcpListener;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::codec::decode;
use crate::codec::encode;
use crate::command::Command;
use crate::network::AppendReply;
use crate::network::MAX_MESSAGE;
use crate::node::ProposeError;
use crate::node::RaftNode;
use crate::pb;
use crate::pb::cluster_server::Cluster;
use crate::pb::cluster_server::ClusterServer;
use crate::pb::kv_server::Kv;
use crate::pb::kv_server::KvServer;
use crate::pb::raft_transport_server::RaftTransport;
use crate::pb::raft_transport_server::RaftTransportServer;
use crate::replication::replication_server::Replication;
use crate::replication::replication_server::ReplicationServer;
use crate::Snapshot;
use crate::SnapshotMeta;
use crate::TypeConfig;
use crate::Vote;

/// Serves Raft, Kv and Cluster on `listener` until the task is aborted: over mutual TLS when the
/// node's configuration has [`crate::tls::PeerTls`], else in plain text.
pub async fn serve(node: Arc<RaftNode>, listener: TcpListener) {
    let tls = node.config().tls.clone();
    let svc = Service { node };
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(crate::network::STREAM_WINDOW)
        .initial_connection_window_size(crate::network::CONNECTION_WINDOW)
        .max_frame_size(crate::network::MAX_FRAME)
        .add_service(
            RaftTransportServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            ReplicationServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            KvServer::new(svc.clone()).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            ClusterServer::new(svc).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE),
        );
    let result = match tls {
        Some(tls) => router.serve_with_incoming(crate::tls::TlsIncoming::new(listener, tls)).await,
        None => {
            // `Server::tcp_nodelay` only applies to listeners tonic binds itself; small Raft
            // messages must not wait for Nagle's algorithm.
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
                conn.inspect(|s| {
                    if let Err(e) = s.set_nodelay(true) {
                        tracing::warn!("TCP_NODELAY: {e}");
                    }
                })
            });
            router.serve_with_incoming(incoming).await
        }
    };
    if let Err(e) = result {
        tracing::error!("gRPC server stopped: {e}");
    }
}

/// Who sent a request, for the log: the certificate's user and groups on a TLS port.
fn caller<T>(request: &Request<T>) -> String {
    match request.extensions().get::<crate::tls::PeerInfo>() {
        Some(crate::tls::PeerInfo { identity: Some(id), remote }) => {
            format!("{} {:?} from {}", id.common_name, id.groups, remote.map(|r| r.to_string()).unwrap_or_default())
        }
        _ => request.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "unknown".into()),
    }
}

#[derive(Clone)]
struct Service {
    node: Arc<RaftNode>,
}

impl Service {
    /// A write from a client, fenced when the client sent a token.
    async fn write(&self, fence: Option<u64>, write: Write) -> Result<Record, StoreError> {
        match (fence, write) {
            (Some(fence), write) => self.node.write_fenced(fence, write).await,
            (None, Write::Create { key, value, uid }) => self.node.create(&key, value, &uid).await,
            (None, Write::Update { key, value, precondition }) => self.node.update(&key, value, precondition).await,
            (None, Write::Delete { key, precondition }) => self.node.delete(&key, precondition).await,
        }
    }
}

fn payload<T: serde::Serialize>(value: &T) -> Result<Response<pb::Payload>, Status> {
    let data = encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(pb::Payload { data }))
}

fn bad_payload(e: std::io::Error) -> Status {
    Status::invalid_argument(format!("undecodable payload: {e}"))
}

type AppendStream = Pin<Box<dyn Stream<Item = Result<AppendReply, Status>> + Send>>;

#[tonic::async_trait]
impl Replication for Service {
    type AppendStream = AppendStream;

    async fn append(
        &self,
        request: Request<tonic::Streaming<AppendEntriesRequest<TypeConfig>>>,
    ) -> Result<Response<AppendStream>, Status> {
        // A transport error or an undecodable request ends the input; openraft then sees the
        // stream close and starts a new one.
        let requests = request
            .into_inner()
            .take_while(|r| std::future::ready(r.is_ok()))
            .filter_map(|r| std::future::ready(r.ok()));
        let replies = self.node.raft.stream_append(requests).map(|item| Ok(item.map_err(|fatal| fatal.to_string())));
        Ok(Response::new(Box::pin(replies)))
    }
}

#[tonic::async_trait]
impl RaftTransport for Service {
    async fn append_entries(&self, request: Request<pb::Payload>) -> Result<Response<pb::Payload>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = decode(&request.into_inner().data).map_err(bad_payload)?;
        let result = self.node.raft.append_entries(req).await.map_err(|e| e.to_string());
        payload(&result)
    }

    async fn vote(&self, request: Request<pb::Payload>) -> Result<Response<pb::Payload>, Status> {
        let req: VoteRequest<TypeConfig> = decode(&request.into_inner().data).map_err(bad_payload)?;
        let result = self.node.raft.vote(req).await.map_err(|e| e.to_string());
        payload(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<tonic::Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::Payload>, Status> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (vote, meta): (Vote, SnapshotMeta) = decode(&first.header).map_err(bad_payload)?;
        let mut data = first.data;
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
        }
        let snapshot = Snapshot { meta, snapshot: std::io::Cursor::new(data) };
        let result = self.node.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string());
        payload(&result)
    }
}

type PayloadStream = Pin<Box<dyn Stream<Item = Result<pb::Payload, Status>> + Send>>;
type WatchReply = PayloadStream;

fn precondition(p: Option<pb::Precondition>) -> Precondition {
    p.map(|p| Precondition { revision: p.revision, uid: p.uid }).unwrap_or_default()
}

fn consistency(linearizable: bool) -> Consistency {
    if linearizable {
        Consistency::Linearizable
    } else {
        Consistency::Local
    }
}

#[tonic::async_trait]
impl Kv for Service {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Payload>, Status> {
        let r = request.into_inner();
        payload(&self.node.get(&r.key, consistency(r.linearizable)).await)
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::Payload>, Status> {
        let r = request.into_inner();
        let options = ListOptions {
            limit: (r.limit > 0).then_some(r.limit as usize),
            continue_after: (!r.continue_after.is_empty()).then_some(r.continue_after),
            consistency: consistency(r.linearizable),
        };
        payload(&self.node.list(&r.prefix, options).await)
    }

    async fn create(&self, request: Request<pb::CreateRequest>) -> Result<Response<pb::Payload>, Status> {
        let r = request.into_inner();
        let write = Write::Create { key: r.key, value: r.value, uid: r.uid };
        payload(&self.write(r.fence, write).await)
    }

    async fn update(&self, request: Request<pb::UpdateRequest>) -> Result<Response<pb::Payload>, Status> {
        let r = request.into_inner();
        let write = Write::Update { key: r.key, value: r.value, precondition: precondition(r.precondition) };
        payload(&self.write(r.fence, write).await)
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::Payload>, Status> {
        let r = request.into_inner();
        let write = Write::Delete { key: r.key, precondition: precondition(r.precondition) };
        payload(&self.write(r.fence, write).await)
    }

    type WatchStream = WatchReply;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchReply>, Status> {
        let r = request.into_inner();
        let stream: WatchReply = match self.node.watch(&r.prefix, r.after).await {
            Ok(s) => Box::pin(s.map(|item| {
                let data = encode(&item).map_err(|e| Status::internal(e.to_string()))?;
                Ok(pb::Payload { data })
            })),
            Err(e) => {
                let data = encode(&Err::<skiff_store::WatchItem, StoreError>(e))
                    .map_err(|e| Status::internal(e.to_string()))?;
                Box::pin(futures::stream::iter([Ok(pb::Payload { data })]))
            }
        };
        Ok(Response::new(stream))
    }

    async fn current_revision(&self, request: Request<pb::RevisionRequest>) -> Result<Response<pb::Payload>, Status> {
        let r = request.into_inner();
        payload(&self.node.current_revision(consistency(r.linearizable)).await)
    }
}

fn to_pb_members(members: Vec<crate::node::MemberInfo>) -> Vec<pb::Member> {
    members.into_iter().map(|m| pb::Member { id: m.id, addr: m.addr, voter: m.voter }).collect()
}

#[tonic::async_trait]
impl Cluster for Service {
    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusReply>, Status> {
        let s = self.node.status().await;
        Ok(Response::new(pb::StatusReply {
            id: s.id,
            initialized: s.initialized,
            role: s.role,
            term: s.term,
            applied: s.applied,
            committed: s.committed,
            leader: s.leader,
            members: to_pb_members(s.members),
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let who = caller(&request);
        let r = request.into_inner();
        tracing::info!(id = r.id, addr = %r.addr, by = %who, "add member requested");
        if r.addr.is_empty() {
            return Err(Status::invalid_argument("addr is required"));
        }
        let members = self.node.add_member(r.id, r.addr).await.map_err(Status::failed_precondition)?;
        Ok(Response::new(pb::MembershipReply { members: to_pb_members(members) }))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let who = caller(&request);
        let r = request.into_inner();
        tracing::info!(id = r.id, by = %who, "remove member requested");
        let members = self.node.remove_member(r.id).await.map_err(Status::failed_precondition)?;
        Ok(Response::new(pb::MembershipReply { members: to_pb_members(members) }))
    }

    async fn read_index(
        &self,
        _request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexReply>, Status> {
        match self.node.local_read_index().await {
            Ok(index) => Ok(Response::new(pb::ReadIndexReply { index })),
            Err(ProposeError::NotLeader) => Err(Status::failed_precondition("not the leader")),
            Err(ProposeError::Failed(e)) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn propose(&self, request: Request<pb::Payload>) -> Result<Response<pb::Payload>, Status> {
        let timeout = self.node.config().request_timeout;
        let cmd: Command = decode(&request.into_inner().data).map_err(bad_payload)?;
        match self.node.propose_local(cmd, timeout).await {
            Ok(result) => payload(&result),
            Err(ProposeError::NotLeader) => Err(Status::failed_precondition("not the leader")),
            Err(ProposeError::Failed(StoreError::Timeout(m))) => Err(Status::deadline_exceeded(m)),
            Err(ProposeError::Failed(e)) => Err(Status::unavailable(e.to_string())),
        }
    }
}
