//! A TCP fault-injection proxy for cutting a server off from its peers on
//! loopback.
//!
//! Put a [`FaultProxy`] in front of each server's peer port and give the
//! peers the proxy's address instead of the server's. While healed, every
//! accepted connection is forwarded byte-for-byte to `upstream`. While
//! partitioned:
//!
//! * every connection that existed when [`FaultProxy::partition`] was called
//!   is torn down (both sockets closed), so in-flight requests fail;
//! * new connections are accepted by the kernel (the listener stays bound, so
//!   the port cannot be stolen) but closed immediately, before any byte is
//!   forwarded, so clients see an EOF/reset rather than a silent hang.
//!
//! [`FaultProxy::heal`] restores forwarding for connections made afterwards;
//! torn-down connections stay dead and clients must reconnect. Partition and
//! the accept path take the same lock, so no connection accepted before a
//! partition can survive it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; see the module docs. Dropping it without
/// [`FaultProxy::shutdown`] also stops it (without waiting).
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    partitioned: AtomicBool,
    next_id: AtomicU64,
    /// Live connection tasks. Tasks remove themselves when they end.
    connections: Mutex<HashMap<u64, JoinHandle<()>>>,
}

impl Shared {
    fn take_connections(&self) -> Vec<JoinHandle<()>> {
        let mut connections = self.connections.lock();
        let tasks: Vec<_> = connections.drain().map(|(_, task)| task).collect();
        for task in &tasks {
            task.abort();
        }
        tasks
    }
}

impl FaultProxy {
    /// Listen on `listen` (e.g. 127.0.0.1:0) and forward every connection to `upstream`.
    ///
    /// Must be called within a tokio runtime. The upstream need not be up
    /// yet: it is dialled per connection, and a connection whose upstream
    /// refuses is closed.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            partitioned: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy { local_addr, shared, accept: Some(accept) })
    }

    /// The address clients should connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Blackhole: drop all existing connections and refuse/immediately close new ones until heal().
    pub fn partition(&self) {
        // Set the flag under the registry lock so that the accept loop either
        // registered its connection before (and it is aborted here) or sees
        // the flag.
        let registry = self.shared.connections.lock();
        self.shared.partitioned.store(true, Ordering::SeqCst);
        drop(registry);
        self.shared.take_connections();
    }

    /// Forward new connections again.
    pub fn heal(&self) {
        self.shared.partitioned.store(false, Ordering::SeqCst);
    }

    pub fn is_partitioned(&self) -> bool {
        self.shared.partitioned.load(Ordering::SeqCst)
    }

    /// Number of connections currently being forwarded.
    pub fn active_connections(&self) -> usize {
        self.shared.connections.lock().len()
    }

    /// Stop the proxy and all its connections. When it returns, the listener
    /// and every proxied socket are closed.
    pub async fn shutdown(mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // Cancelled (or, never, finished): either way the listener is gone.
            let _ = accept.await;
        }
        for task in self.shared.take_connections() {
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        self.shared.take_connections();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Typically out of file descriptors; back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let mut connections = shared.connections.lock();
        if shared.partitioned.load(Ordering::SeqCst) {
            drop(connections);
            drop(client);
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(forward(client, shared.clone(), id));
        connections.insert(id, task);
    }
}

async fn forward(mut client: TcpStream, shared: Arc<Shared>, id: u64) {
    if let Ok(mut upstream) = TcpStream::connect(shared.upstream).await {
        // Best effort: Raft traffic is latency-sensitive, but a failure here
        // only costs latency.
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        // Ends on EOF in both directions or on any error; the sockets are
        // closed when dropped below.
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
    shared.connections.lock().remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IO_TIMEOUT: Duration = Duration::from_secs(5);

    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// An echo server; returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(any_port()).await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `msg` and reads the same number of bytes back.
    async fn exchange(stream: &mut TcpStream, msg: &[u8]) -> Result<Vec<u8>, String> {
        let io = async {
            stream.write_all(msg).await?;
            let mut buf = vec![0u8; msg.len()];
            stream.read_exact(&mut buf).await?;
            Ok::<_, io::Error>(buf)
        };
        match tokio::time::timeout(IO_TIMEOUT, io).await {
            Ok(Ok(buf)) => Ok(buf),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    async fn connect(addr: SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.expect("connect to proxy")
    }

    /// Waits until the proxy's registry reaches `n` (tasks register and
    /// deregister asynchronously).
    async fn wait_for_connections(proxy: &FaultProxy, n: usize) {
        let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
        while proxy.active_connections() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "proxy has {} connections, expected {n}",
                proxy.active_connections()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn traffic_passes() {
        let proxy = FaultProxy::start(any_port(), echo_server().await).await.expect("start proxy");
        assert!(!proxy.is_partitioned());
        let mut a = connect(proxy.local_addr()).await;
        let mut b = connect(proxy.local_addr()).await;
        assert_eq!(exchange(&mut a, b"hello").await, Ok(b"hello".to_vec()));
        assert_eq!(exchange(&mut b, b"world").await, Ok(b"world".to_vec()));
        let big = vec![7u8; 256 * 1024];
        assert_eq!(exchange(&mut a, &big).await, Ok(big));
        wait_for_connections(&proxy, 2).await;
        drop(a);
        wait_for_connections(&proxy, 1).await;
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn partition_cuts_traffic_and_heal_restores_it() {
        let proxy = FaultProxy::start(any_port(), echo_server().await).await.expect("start proxy");
        let mut old = connect(proxy.local_addr()).await;
        assert_eq!(exchange(&mut old, b"before").await, Ok(b"before".to_vec()));

        proxy.partition();
        assert!(proxy.is_partitioned());
        assert_eq!(proxy.active_connections(), 0);
        // The existing connection is broken.
        let err = exchange(&mut old, b"during").await.expect_err("old connection survived");
        assert_ne!(err, "timed out", "connection hung instead of closing");
        // New connections get through the handshake but carry nothing.
        for _ in 0..3 {
            let mut new = connect(proxy.local_addr()).await;
            let err = exchange(&mut new, b"during").await.expect_err("new connection passed data");
            assert_ne!(err, "timed out", "connection hung instead of closing");
        }
        assert_eq!(proxy.active_connections(), 0);
        // Partitioning twice is harmless.
        proxy.partition();

        proxy.heal();
        assert!(!proxy.is_partitioned());
        // The old connection stays dead; a new one works.
        assert!(exchange(&mut old, b"after").await.is_err());
        let mut new = connect(proxy.local_addr()).await;
        assert_eq!(exchange(&mut new, b"after").await, Ok(b"after".to_vec()));
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn unreachable_upstream_closes_connection() {
        // Grab a free port and release it, so nothing listens there.
        let dead = {
            let l = TcpListener::bind(any_port()).await.expect("bind");
            l.local_addr().expect("addr")
        };
        let proxy = FaultProxy::start(any_port(), dead).await.expect("start proxy");
        let mut c = connect(proxy.local_addr()).await;
        assert!(exchange(&mut c, b"x").await.is_err());
        wait_for_connections(&proxy, 0).await;
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_closes_everything() {
        let proxy = FaultProxy::start(any_port(), echo_server().await).await.expect("start proxy");
        let addr = proxy.local_addr();
        let mut c = connect(addr).await;
        assert_eq!(exchange(&mut c, b"hi").await, Ok(b"hi".to_vec()));
        proxy.shutdown().await;
        assert!(exchange(&mut c, b"hi").await.is_err());
        assert!(TcpStream::connect(addr).await.is_err(), "listener still open");
    }
}
