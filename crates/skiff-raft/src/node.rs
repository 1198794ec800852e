//! One skiff server: its Raft instance, its gRPC services, and the [`Store`] it offers to the
//! layers above.
//!
//! # How a server joins a cluster
//!
//! Every server starts the same way, with the full peer list. A server whose data dir has no Raft
//! state asks its peers for their status: if any peer is already initialised, it waits to be
//! replicated to (or added with `skiff member add`); if it and the uninitialised peers it reaches
//! form a majority, it initialises the cluster with the full peer list. Servers that initialise
//! concurrently write the identical first entry, so the cluster is created exactly once.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::async_runtime::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::BasicNode;
use openraft::ChangeMembers;
use openraft::Config;
use openraft::ReadPolicy;
use openraft::ServerState;
use parking_lot::Mutex;
use skiff_store::validate_key;
use skiff_store::Consistency;
use skiff_store::ListOptions;
use skiff_store::ListPage;
use skiff_store::Precondition;
use skiff_store::Record;
use skiff_store::Revision;
use skiff_store::Store;
use skiff_store::StoreError;
use skiff_store::WatchStream;
use tokio::net::TcpListener;
use tonic::transport::Channel;

use crate::codec::decode;
use crate::codec::encode;
use crate::command::Command;
use crate::command::CommandResult;
use crate::datadir;
use crate::log_store::LogStore;
use crate::network::channel_with;
use crate::network::NetworkFactory;
use crate::pb;
use crate::pb::cluster_client::ClusterClient;
use crate::service;
use crate::state_machine::StateMachine;
use crate::state_machine::StateReader;
use crate::tls::PeerTls;
use crate::Raft;
use crate::RaftStoreError;

/// How a server is started.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    pub data_dir: PathBuf,
    /// Every server of the cluster (including this one): id → Raft address (host:port).
    pub peers: BTreeMap<u64, String>,
    /// Where this server's Raft/admin gRPC listens.
    pub raft_listen: SocketAddr,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and compact the log) after this many applied entries.
    pub snapshot_logs: u64,
    /// Entries kept in the log behind the latest snapshot.
    pub logs_after_snapshot: u64,
    /// Events kept in memory for watches.
    pub watch_window: usize,
    /// Key prefixes whose objects are also kept in memory, for reads that happen on every
    /// write (see [`crate::resident`]).
    pub resident_prefixes: Vec<String>,
    /// How long a write or linearizable read may wait for a leader before failing.
    pub request_timeout: Duration,
    /// Mutual TLS on the Raft port and to peers; `None` speaks plain text.
    pub tls: Option<PeerTls>,
}

impl NodeConfig {
    pub fn new(id: u64, data_dir: PathBuf, peers: BTreeMap<u64, String>, raft_listen: SocketAddr) -> Self {
        Self {
            id,
            data_dir,
            peers,
            raft_listen,
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            snapshot_logs: 100_000,
            logs_after_snapshot: 5_000,
            watch_window: 100_000,
            resident_prefixes: Vec::new(),
            request_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// A running server.
pub struct RaftNode {
    pub id: u64,
    pub raft: Raft,
    reader: StateReader,
    config: NodeConfig,
    peer_channels: Mutex<HashMap<String, Channel>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A server's view of the cluster, as `skiff member list` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub initialized: bool,
    pub role: String,
    pub term: u64,
    pub applied: u64,
    pub committed: u64,
    pub leader: Option<u64>,
    pub members: Vec<MemberInfo>,
    /// On a leader: milliseconds since a quorum last acknowledged it.
    pub quorum_ack_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    pub addr: String,
    pub voter: bool,
}

/// How often [`RaftNode::stopped`] looks at Raft's state.
const STOP_POLL: Duration = Duration::from_millis(200);

fn unavailable(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(msg.to_string())
}

impl RaftNode {
    /// Opens the data dir, starts Raft and the gRPC server, and begins bootstrapping.
    pub async fn start(config: NodeConfig) -> Result<Arc<RaftNode>, RaftStoreError> {
        if !config.peers.contains_key(&config.id) {
            return Err(RaftStoreError::Config(format!("--peers does not list this server's --id {}", config.id)));
        }
        let dir = datadir::open(&config.data_dir, config.id)?;
        let log = LogStore::open(dir.db.clone(), &dir.log_path())
            .map_err(|e| RaftStoreError::Storage(e.to_string()))?
            .with_own_id(config.id);
        let sm = StateMachine::open(
            dir.db.clone(),
            dir.snapshot_path(),
            config.watch_window,
            config.resident_prefixes.clone(),
        )
        .map_err(|e| RaftStoreError::Storage(e.to_string()))?;
        check_peers_against_membership(&config, sm.membership())?;
        let reader = sm.reader();

        let raft_config = Config {
            cluster_name: "skiff".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
            max_in_snapshot_log_to_keep: config.logs_after_snapshot,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftStoreError::Config(e.to_string()))?;

        let listener = TcpListener::bind(config.raft_listen)
            .await
            .map_err(|e| RaftStoreError::Network(format!("cannot listen on {}: {e}", config.raft_listen)))?;
        let network =
            NetworkFactory { local: source_ip(&config), tls: config.tls.as_ref().map(PeerTls::client_config) };
        let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| RaftStoreError::Raft(e.to_string()))?;
        let node = Arc::new(RaftNode {
            id: config.id,
            raft,
            reader,
            config,
            peer_channels: Mutex::new(HashMap::new()),
            server: Mutex::new(None),
        });
        let handle = tokio::spawn(service::serve(node.clone(), listener));
        *node.server.lock() = Some(handle);
        tokio::spawn(node.clone().bootstrap());
        Ok(node)
    }

    /// Stops Raft and the gRPC server.
    pub async fn shutdown(&self) {
        if let Some(h) = self.server.lock().take() {
            h.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }

    /// Resolves when Raft has stopped, with the reason (a storage failure, for example).
    ///
    /// Polled rather than woken by every metrics change: the metrics change with every write, and
    /// waking a task for each was a percent of a busy leader's CPU.
    pub async fn stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow_watched().running_state {
                return e.to_string();
            }
            if let Some(Err(_)) = futures::FutureExt::now_or_never(metrics.changed()) {
                return "raft stopped".to_string();
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    fn local_ip(&self) -> Option<std::net::IpAddr> {
        source_ip(&self.config)
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The revision this server has applied.
    pub fn applied(&self) -> Revision {
        self.reader.window.head()
    }

    /// The oldest revision a watch may start from here.
    pub fn watch_floor(&self) -> Revision {
        self.reader.window.floor()
    }

    async fn bootstrap(self: Arc<Self>) {
        loop {
            match self.raft.is_initialized().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!("raft stopped before it was initialized: {e}");
                    return;
                }
            }
            let mut reachable_uninitialized = 1; // this server
            let mut someone_initialized = None;
            for (id, addr) in &self.config.peers {
                if *id == self.id {
                    continue;
                }
                let Ok(mut client) = self.cluster_client(addr) else { continue };
                let mut req = tonic::Request::new(pb::StatusRequest {});
                req.set_timeout(Duration::from_millis(500));
                match client.status(req).await {
                    Ok(reply) if reply.get_ref().initialized => someone_initialized = Some(*id),
                    Ok(_) => reachable_uninitialized += 1,
                    Err(_) => {}
                }
            }
            if let Some(peer) = someone_initialized {
                tracing::info!(peer, "the cluster exists; waiting to be replicated to or added as a member");
            } else if reachable_uninitialized * 2 > self.config.peers.len() {
                let members: BTreeMap<u64, BasicNode> =
                    self.config.peers.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
                match self.raft.initialize(members).await {
                    Ok(()) => tracing::info!("initialized the cluster with {:?}", self.config.peers),
                    Err(e) => tracing::info!("initialize: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn cluster_client(&self, addr: &str) -> Result<ClusterClient<Channel>, StoreError> {
        let mut channels = self.peer_channels.lock();
        let ch = match channels.get(addr) {
            Some(ch) => ch.clone(),
            None => {
                let tls = self.config.tls.as_ref().map(PeerTls::client_config);
                let ch = channel_with(addr, self.local_ip(), tls.as_ref())
                    .map_err(|e| unavailable(format!("bad address {addr}: {e}")))?;
                channels.insert(addr.to_string(), ch.clone());
                ch
            }
        };
        Ok(ClusterClient::new(ch)
            .max_decoding_message_size(crate::network::MAX_MESSAGE)
            .max_encoding_message_size(crate::network::MAX_MESSAGE))
    }

    /// The current leader's id and address, if known.
    fn leader(&self) -> Option<(u64, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// Proposes a write on the leader (here or, forwarded, there) and returns its result.
    #[tracing::instrument(level = "debug", skip_all, fields(op = %cmd))]
    pub async fn propose(&self, cmd: Command) -> Result<Record, StoreError> {
        let started = std::time::Instant::now();
        let result = self.propose_inner(cmd).await;
        crate::metrics::record_write(&result, started.elapsed());
        if let Err(e) = &result {
            tracing::debug!(error = %e, "write failed");
        }
        result
    }

    async fn propose_inner(&self, cmd: Command) -> Result<Record, StoreError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(StoreError::Timeout("no leader accepted the write in time".into()));
            }
            match self.leader() {
                Some((leader, _)) if leader == self.id => match self.propose_local(cmd.clone(), remaining).await {
                    Err(ProposeError::NotLeader) => {}
                    Err(ProposeError::Failed(e)) => return Err(e),
                    Ok(r) => return r.0,
                },
                Some((_, addr)) => match self.propose_remote(&addr, &cmd, remaining).await {
                    Err(ProposeError::NotLeader) => {}
                    Err(ProposeError::Failed(e)) => return Err(e),
                    Ok(r) => return r.0,
                },
                None => {}
            }
            // Nothing was appended anywhere: safe to try again once a leader is known.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `cmd` through this server's Raft, which must be the leader.
    pub(crate) async fn propose_local(&self, cmd: Command, timeout: Duration) -> Result<CommandResult, ProposeError> {
        match tokio::time::timeout(timeout, self.raft.client_write(cmd)).await {
            Err(_) => Err(ProposeError::Failed(StoreError::Timeout("the write was not committed in time".into()))),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => match e.api_error() {
                Some(ClientWriteError::ForwardToLeader(_)) => Err(ProposeError::NotLeader),
                Some(other) => Err(ProposeError::Failed(unavailable(other))),
                None => Err(ProposeError::Failed(unavailable(e))),
            },
        }
    }

    async fn propose_remote(
        &self,
        addr: &str,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<CommandResult, ProposeError> {
        let mut client = self.cluster_client(addr).map_err(ProposeError::Failed)?;
        let data = encode(cmd).map_err(|e| ProposeError::Failed(StoreError::Internal(e.to_string())))?;
        let mut req = tonic::Request::new(pb::Payload { data });
        req.set_timeout(timeout);
        match client.propose(req).await {
            Ok(reply) => {
                decode(&reply.into_inner().data).map_err(|e| ProposeError::Failed(StoreError::Internal(e.to_string())))
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => Err(ProposeError::NotLeader),
            // The old leader is gone; wait for the new one.
            Err(s) if crate::network::never_sent(&s) => Err(ProposeError::NotLeader),
            // The request may have reached the leader: the outcome is unknown.
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => {
                Err(ProposeError::Failed(StoreError::Timeout(s.message().to_string())))
            }
            Err(s) => Err(ProposeError::Failed(unavailable(format!("leader at {addr}: {}", s.message())))),
        }
    }

    /// Leader only: confirms leadership with a quorum and returns the index a linearizable read
    /// must observe.
    pub(crate) async fn local_read_index(&self) -> Result<u64, ProposeError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => Ok(read.index()),
            Err(e) if e.forward_to_leader().is_some() => Err(ProposeError::NotLeader),
            Err(e) => Err(ProposeError::Failed(unavailable(e))),
        }
    }

    /// Waits until this server has applied everything committed before the call (read-index).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let result = self.read_barrier_inner().await;
        crate::metrics::READ_BARRIER.observe(started.elapsed());
        result
    }

    async fn read_barrier_inner(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(StoreError::Unavailable("no leader confirmed a read index in time".into()));
            }
            let index = match self.leader() {
                Some((leader, _)) if leader == self.id => {
                    match tokio::time::timeout(remaining, self.local_read_index()).await {
                        Ok(Ok(index)) => Some(index),
                        Ok(Err(ProposeError::NotLeader)) => None,
                        Ok(Err(ProposeError::Failed(e))) => return Err(e),
                        Err(_) => return Err(unavailable("leadership not confirmed by a quorum in time")),
                    }
                }
                Some((_, addr)) => {
                    let mut client = self.cluster_client(&addr)?;
                    let mut req = tonic::Request::new(pb::ReadIndexRequest {});
                    req.set_timeout(remaining);
                    match client.read_index(req).await {
                        Ok(r) => Some(r.into_inner().index),
                        Err(s) if s.code() == tonic::Code::FailedPrecondition || crate::network::never_sent(&s) => None,
                        Err(s) => {
                            return Err(unavailable(format!("read index from leader at {addr}: {}", s.message())))
                        }
                    }
                }
                None => None,
            };
            if let Some(index) = index {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                return self.reader.window.wait_applied(index, remaining).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// This server's view of the cluster.
    pub async fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberInfo { id: *id, addr: node.addr.clone(), voter: voters.contains(id) })
            .collect();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        NodeStatus {
            id: self.id,
            initialized: m.last_log_index.is_some() || m.last_applied.is_some(),
            role: role.into(),
            term: m.current_term,
            applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            committed: m.local_committed.map(|l| l.index).unwrap_or(0),
            leader: m.current_leader,
            members,
            quorum_ack_ms: m.last_quorum_acked.as_ref().map(|t| t.elapsed().as_millis() as u64),
        }
    }

    /// Adds a server: first as a learner (waiting until it has caught up), then as a voter.
    /// Runs on the leader; other servers forward.
    pub async fn add_member(&self, id: u64, addr: String) -> Result<Vec<MemberInfo>, String> {
        if !self.raft.is_leader() {
            let (_, leader_addr) = self.leader().ok_or("no leader")?;
            let mut client = self.cluster_client(&leader_addr).map_err(|e| e.to_string())?;
            let reply =
                client.add_member(pb::AddMemberRequest { id, addr }).await.map_err(|s| s.message().to_string())?;
            return Ok(members_from_pb(reply.into_inner().members));
        }
        self.raft.add_learner(id, BasicNode { addr }, true).await.map_err(|e| e.to_string())?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.status().await.members)
    }

    /// Removes a server (voter or learner) from the cluster. Runs on the leader.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<MemberInfo>, String> {
        if !self.raft.is_leader() {
            let (_, leader_addr) = self.leader().ok_or("no leader")?;
            let mut client = self.cluster_client(&leader_addr).map_err(|e| e.to_string())?;
            let reply =
                client.remove_member(pb::RemoveMemberRequest { id }).await.map_err(|s| s.message().to_string())?;
            return Ok(members_from_pb(reply.into_inner().members));
        }
        let status = self.status().await;
        let Some(member) = status.members.iter().find(|m| m.id == id) else {
            return Err(format!("server {id} is not a member"));
        };
        let change = if member.voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft.change_membership(change, false).await.map_err(|e| e.to_string())?;
        Ok(self.status().await.members)
    }
}

pub(crate) fn members_from_pb(members: Vec<pb::Member>) -> Vec<MemberInfo> {
    members.into_iter().map(|m| MemberInfo { id: m.id, addr: m.addr, voter: m.voter }).collect()
}

/// Peer connections leave from the listening address unless that is a wildcard.
fn source_ip(config: &NodeConfig) -> Option<std::net::IpAddr> {
    let ip = config.raft_listen.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Why a proposal did not produce a result.
#[derive(Debug)]
pub(crate) enum ProposeError {
    /// This server is not the leader; nothing was appended, so retrying elsewhere is safe.
    NotLeader,
    /// Failed; see [`StoreError::is_indeterminate`] for whether it may have been applied.
    Failed(StoreError),
}

/// Refuses to start when `--peers` gives a different address to a server the stored membership
/// knows, or when this server has state but is no longer a member.
fn check_peers_against_membership(config: &NodeConfig, stored: &crate::StoredMembership) -> Result<(), RaftStoreError> {
    let membership = stored.membership();
    let known: BTreeMap<u64, String> = membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
    if known.is_empty() {
        return Ok(());
    }
    for (id, addr) in &config.peers {
        if let Some(stored_addr) = known.get(id) {
            if stored_addr != addr {
                return Err(RaftStoreError::PeerMismatch(format!(
                    "--peers says server {id} is at {addr}, the cluster's membership says {stored_addr}; \
                     fix --peers (see `skiff member list`) rather than starting with a conflicting view"
                )));
            }
        }
    }
    if !known.contains_key(&config.id) {
        return Err(RaftStoreError::PeerMismatch(format!(
            "this data dir belongs to server {} which was removed from the cluster (members: {:?}); \
             wipe the data dir and add it again with `skiff member add`",
            config.id,
            known.keys().collect::<Vec<_>>()
        )));
    }
    let listed: BTreeSet<&u64> = config.peers.keys().collect();
    let stored_ids: BTreeSet<&u64> = known.keys().collect();
    if listed != stored_ids {
        tracing::warn!(?listed, ?stored_ids, "--peers differs from the stored membership; the stored membership wins");
    }
    Ok(())
}

/// The replicated store, as the layers above see it.
#[async_trait]
impl Store for RaftNode {
    async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Record>, StoreError> {
        validate_key(key)?;
        if consistency == Consistency::Linearizable {
            self.read_barrier().await?;
        }
        self.reader.get(key)
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        if options.consistency == Consistency::Linearizable {
            self.read_barrier().await?;
        }
        // Read the revision first: a watch from it may repeat changes the page already shows, but
        // can never miss one.
        let revision = self.reader.window.head();
        let limit = options.limit.unwrap_or(usize::MAX);
        let (items, more) = self.reader.list(prefix, options.continue_after.as_deref(), limit)?;
        let continue_after = if more { items.last().map(|r| r.key.clone()) } else { None };
        Ok(ListPage { items, revision, continue_after })
    }

    async fn create(&self, key: &str, value: Vec<u8>, uid: &str) -> Result<Record, StoreError> {
        validate_key(key)?;
        self.propose(Command::Create { key: key.into(), value: value.into(), uid: uid.into() }).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, precondition: Precondition) -> Result<Record, StoreError> {
        validate_key(key)?;
        self.propose(Command::Update { key: key.into(), value: value.into(), precondition }).await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Record, StoreError> {
        validate_key(key)?;
        self.propose(Command::Delete { key: key.into(), precondition }).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.reader.window.watch(prefix, after)
    }

    async fn current_revision(&self, consistency: Consistency) -> Result<Revision, StoreError> {
        if consistency == Consistency::Linearizable {
            self.read_barrier().await?;
        }
        Ok(self.reader.window.head())
    }

    /// The term while this server is the Raft leader: the leader appends every entry with its
    /// term, which is what the state machine compares a fenced write's token with.
    async fn fence_token(&self) -> Result<Option<u64>, StoreError> {
        let m = self.raft.metrics().borrow_watched().clone();
        Ok((m.state == ServerState::Leader).then_some(m.current_term))
    }

    async fn write_fenced(&self, fence: u64, write: skiff_store::Write) -> Result<Record, StoreError> {
        validate_key(write.key())?;
        self.propose(Command::Fenced { term: fence, inner: Box::new(write.into()) }).await
    }
}
