//! Forwarding an HTTP upgrade (`exec`, `attach`, `port-forward`) one hop further: the request's
//! upgrade headers go to the next server as they came, and once that server switches protocols
//! both connections are spliced byte for byte. Neither hop parses the streaming protocol, so
//! whatever the runtime's streaming server speaks (SPDY/3.1 with kubectl's stream protocol
//! versions) reaches kubectl unchanged.

use std::io;
use std::time::Duration;

use std::sync::Arc;

use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A connection to the next hop, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Connects to `addr` (`ip:port`), over TLS when `tls` is given: the server's certificate must
/// name the IP address, and the client presents the configuration's certificate.
pub async fn connect(addr: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> io::Result<Box<dyn Stream>> {
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}")))??;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else { return Ok(Box::new(stream)) };
    let host = addr.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).unwrap_or(addr);
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let stream = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {addr}")))??;
    Ok(Box::new(stream))
}

/// The headers of an upgrade request that the next hop needs.
pub const FORWARDED_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "x-stream-protocol-version",
    "sec-websocket-protocol",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// The most a response head may take.
const HEAD_LIMIT: usize = 64 * 1024;

/// The next hop's answer to an upgrade request.
pub struct Upstream {
    pub status: u16,
    /// Response headers, in order (name lowercased).
    pub headers: Vec<(String, String)>,
    /// For a refusal, the body (up to what arrived with the head).
    pub body: Vec<u8>,
    /// Bytes after the head that already belong to the upgraded stream.
    leftover: Vec<u8>,
    stream: Box<dyn Stream>,
}

impl Upstream {
    /// The upgraded connection, for a caller that speaks the protocol itself: the bytes that
    /// came with the head, and the stream.
    pub fn into_parts(self) -> (Vec<u8>, Box<dyn Stream>) {
        (self.leftover, self.stream)
    }
}

/// Sends `method path` with `headers` to `addr` (`host:port`, over TLS when `tls` is given) and
/// reads the answer's head.
pub async fn open(
    addr: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> io::Result<Upstream> {
    let mut stream = connect(addr, tls).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("header {k} is not forwardable")));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > HEAD_LIMIT {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {addr}")))??;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{addr} closed the connection")));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = buf[end..].to_vec();
    let (body, leftover) = if status == 101 { (Vec::new(), rest) } else { (rest, Vec::new()) };
    Ok(Upstream { status, headers, body, leftover, stream })
}

/// Splices the client's upgraded connection with the next hop until either side closes.
pub async fn splice<T>(client: T, upstream: Upstream)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Upstream { leftover, mut stream, .. } = upstream;
    let mut client = client;
    if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut stream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upgrade_is_forwarded_and_spliced() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await?;
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\nearly").await?;
            let mut echo = [0u8; 4];
            s.read_exact(&mut echo).await?;
            s.write_all(&echo).await?;
            Ok::<_, io::Error>(request)
        });
        let headers = vec![("Upgrade".to_string(), "SPDY/3.1".to_string())];
        let up = open(&addr, None, "POST", "/exec/abc", &headers).await?;
        assert_eq!(up.status, 101);
        assert!(up.headers.iter().any(|(k, v)| k == "x-stream-protocol-version" && v == "v4.channel.k8s.io"));
        let (mut near, far) = tokio::io::duplex(1024);
        let spliced = tokio::spawn(splice(far, up));
        let mut early = [0u8; 5];
        near.read_exact(&mut early).await?;
        assert_eq!(&early, b"early", "bytes that came with the head are not lost");
        near.write_all(b"ping").await?;
        let mut pong = [0u8; 4];
        near.read_exact(&mut pong).await?;
        assert_eq!(&pong, b"ping");
        let request = server.await.map_err(io::Error::other)??;
        assert!(request.starts_with("POST /exec/abc HTTP/1.1\r\n") && request.contains("Upgrade: SPDY/3.1"));
        drop(near);
        let _ = spliced.await;
        Ok(())
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_body() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await?;
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nno such").await?;
            Ok::<_, io::Error>(())
        });
        let up = open(&addr, None, "GET", "/exec/x", &[]).await?;
        assert_eq!((up.status, up.body.as_slice()), (404, b"no such".as_slice()));
        Ok(())
    }
}
