//! The sending side of Raft replication over gRPC.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use openraft::base::BoxFuture;
use openraft::base::BoxStream;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::v2::RaftNetworkV2;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendResult;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::AnyError;
use openraft::BasicNode;
use openraft::OptionalSend;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::codec::decode;
use crate::codec::encode;
use crate::pb;
use crate::pb::raft_transport_client::RaftTransportClient;
use crate::replication::replication_client::ReplicationClient;
use crate::tls::TlsConnector;
use crate::Snapshot;
use crate::SnapshotData;
use crate::TypeConfig;
use crate::Vote;

/// Bytes per snapshot chunk on the wire.
const SNAPSHOT_CHUNK: usize = 1 << 20;
/// gRPC message limit between servers (snapshot chunks and large append batches).
pub const MAX_MESSAGE: usize = 256 << 20;

/// A lazily connecting channel to `addr` (host:port), from `local` when given (servers connect
/// from the address they listen on, so a peer's traffic is identifiable on the network).
pub fn channel(addr: &str, local: Option<IpAddr>) -> Result<Channel, tonic::transport::Error> {
    channel_with(addr, local, None)
}

/// The HTTP/2 flow-control window of each stream between peers, both ways. With HTTP/2's
/// default of 64 KiB, a batch of appended entries (often hundreds of KiB) went a window at a
/// time, each waiting for the receiver's window update.
pub const STREAM_WINDOW: u32 = 4 << 20;

/// The HTTP/2 flow-control window of each connection between peers, shared by its streams.
pub const CONNECTION_WINDOW: u32 = 8 << 20;

/// The largest HTTP/2 frame a server here accepts. At HTTP/2's default of 16 KiB a batch of
/// entries left as one write per 16 KiB frame (most of a leader's system calls under load),
/// and arrived as as many reads and buffer allocations.
pub const MAX_FRAME: u32 = 1 << 20;

/// [`channel`], over TLS with `tls` when given (a Raft port with mutual TLS, see [`crate::tls`]).
pub fn channel_with(
    addr: &str,
    local: Option<IpAddr>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Channel, tonic::transport::Error> {
    // Plain HTTP/2 as far as tonic knows; with TLS it runs inside the connector's TLS stream.
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .local_address(local)
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    Ok(match tls {
        Some(config) => endpoint.connect_with_connector_lazy(TlsConnector { config: config.clone(), local }),
        None => endpoint.connect_lazy(),
    })
}

/// One unary RPC of the transport, as a function of a client and a request.
type Call = fn(
    RaftTransportClient<Channel>,
    tonic::Request<pb::Payload>,
) -> futures::future::BoxFuture<'static, Result<tonic::Response<pb::Payload>, tonic::Status>>;

/// Creates one [`PeerClient`] per target server.
#[derive(Clone, Default)]
pub struct NetworkFactory {
    /// Source address for connections to peers.
    pub local: Option<IpAddr>,
    /// Mutual TLS to peers, when the Raft port uses it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let channel = channel_with(&node.addr, self.local, self.tls.as_ref()).ok();
        let replication = channel.clone().map(|c| {
            ReplicationClient::new(c).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
        });
        PeerClient { target, client: channel.map(transport), replication }
    }
}

fn transport(c: Channel) -> RaftTransportClient<Channel> {
    RaftTransportClient::new(c).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
}

/// What a follower answers to each request of a replication stream: the result, or why the
/// follower cannot go on.
pub type AppendReply = Result<StreamAppendResult<TypeConfig>, String>;

/// The connection to one peer.
pub struct PeerClient {
    target: u64,
    client: Option<RaftTransportClient<Channel>>,
    replication: Option<ReplicationClient<Channel>>,
}

fn unreachable(msg: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::new(&AnyError::error(msg.to_string()))
}

fn status_to_rpc(target: u64, s: tonic::Status) -> RPCError<TypeConfig> {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(unreachable(format!("server {target}: {}", s.message())))
        }
        _ => RPCError::Network(NetworkError::new(&AnyError::error(format!("server {target}: {s}")))),
    }
}

impl PeerClient {
    fn client(&self) -> Result<RaftTransportClient<Channel>, Unreachable<TypeConfig>> {
        self.client.clone().ok_or_else(|| unreachable(format!("server {}: bad address", self.target)))
    }

    fn replication(&self) -> Result<ReplicationClient<Channel>, Unreachable<TypeConfig>> {
        self.replication.clone().ok_or_else(|| unreachable(format!("server {}: bad address", self.target)))
    }

    async fn call<Req, Resp>(&self, req: &Req, option: &RPCOption, which: Call) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let client = self.client()?;
        let data = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(pb::Payload { data });
        request.set_timeout(option.hard_ttl());
        let reply = which(client, request).await.map_err(|s| status_to_rpc(self.target, s))?;
        let result: Result<Resp, String> =
            decode(&reply.into_inner().data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::Network(NetworkError::new(&AnyError::error(e))))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&rpc, &option, |mut c, r| Box::pin(async move { c.append_entries(r).await })).await
    }

    /// Keeps many append-entries requests in flight on one gRPC stream (openraft's default sends
    /// one at a time and waits for each answer).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        _option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        let target = self.target;
        Box::pin(async move {
            let mut client = self.replication()?;
            let replies = client.append(input).await.map_err(|s| status_to_rpc(target, s))?.into_inner();
            let results = replies.map(move |item| {
                let result = item.map_err(|s| status_to_rpc(target, s))?;
                result.map_err(|e| RPCError::Network(NetworkError::new(&AnyError::error(e))))
            });
            let boxed: BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>> = Box::pin(results);
            Ok(boxed)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&rpc, &option, |mut c, r| Box::pin(async move { c.vote(r).await })).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client()?;
        let header =
            encode(&(vote, snapshot.meta.clone())).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let data = snapshot.snapshot.into_inner();
        let mut chunks = vec![pb::SnapshotChunk { header, data: Vec::new() }];
        chunks.extend(data.chunks(SNAPSHOT_CHUNK).map(|c| pb::SnapshotChunk { header: Vec::new(), data: c.to_vec() }));
        let mut request = tonic::Request::new(futures::stream::iter(chunks));
        request.set_timeout(option.hard_ttl().max(Duration::from_secs(60)));
        let target = self.target;
        let send = async move {
            let reply = client.install_snapshot(request).await.map_err(|s| match status_to_rpc(target, s) {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                other => StreamingError::Network(NetworkError::new(&AnyError::error(other.to_string()))),
            })?;
            let result: Result<SnapshotResponse<TypeConfig>, String> =
                decode(&reply.into_inner().data).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
            result.map_err(|e| StreamingError::Network(NetworkError::new(&AnyError::error(e))))
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = send => r,
        }
    }
}

/// The status's message followed by the errors that caused it (a TLS alert, a refused
/// connection), which tonic keeps out of the message.
pub fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        let cause = e.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = e.source();
    }
    text
}

/// True when the request certainly never reached the server: the TCP connection was refused, so
/// retrying it elsewhere cannot apply it twice.
pub fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut text = status.message().to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        text.push_str(&e.to_string());
        source = e.source();
    }
    text.contains("Connection refused") || text.contains("tcp connect error")
}
