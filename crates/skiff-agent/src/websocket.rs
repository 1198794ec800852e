//! The WebSocket side of exec, attach and port-forward (what kubectl tries first).
//!
//! - exec and attach speak `v5.channel.k8s.io`: every binary message starts with a channel byte
//!   (0 stdin, 1 stdout, 2 stderr, 3 the final Status as JSON, 4 terminal resize, 255 close of
//!   a channel). The agent translates it to a SPDY/3.1 session with the runtime's streaming
//!   server (stream protocol `v4.channel.k8s.io`, one SPDY stream per channel).
//! - port-forward speaks `SPDY/3.1+portforward.k8s.io`: the binary messages carry kubectl's own
//!   SPDY session, which goes byte for byte to the runtime's port-forward server.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use futures::SinkExt;
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::cri::StreamIo;
use crate::spdy;
use crate::spdy::Frame;

/// The exec/attach channel protocol.
pub const EXEC_PROTOCOL: &str = "v5.channel.k8s.io";
/// Port-forward: SPDY/3.1 inside WebSocket binary messages.
pub const PORTFORWARD_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Sessions served, per protocol: WebSocket exec/attach, WebSocket port-forward, and upgrades
/// tunnelled unchanged (SPDY).
pub static EXEC_SESSIONS: AtomicU64 = AtomicU64::new(0);
pub static PORTFORWARD_SESSIONS: AtomicU64 = AtomicU64::new(0);
pub static SPDY_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// The Status sent when the runtime reported none.
const SUCCESS: &[u8] = br#"{"metadata":{},"status":"Success"}"#;

/// The largest DATA frame the agent sends.
const CHUNK: usize = 32 * 1024;

/// Whether the comma-separated, possibly repeated, `Sec-WebSocket-Protocol` offers `protocol`.
pub fn offers(headers: &hyper::HeaderMap, protocol: &str) -> bool {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol)
}

/// The value of `Sec-WebSocket-Accept` for the client's key.
pub fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes())
}

/// The SPDY stream ids of one exec/attach session (0 when the stream is not opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Streams {
    error: u32,
    stdin: u32,
    stdout: u32,
    stderr: u32,
    resize: u32,
}

impl Streams {
    /// The streams kubectl's SPDY client opens for `io`, in its order: error first, then stdin,
    /// stdout, stderr (not with a tty) and resize (only with a tty).
    fn plan(io: &StreamIo) -> (Streams, Vec<(u32, &'static str)>) {
        let mut s = Streams::default();
        let mut order = Vec::new();
        let mut next = 1;
        let mut open = |slot: &mut u32, kind: &'static str| {
            *slot = next;
            order.push((next, kind));
            next += 2;
        };
        open(&mut s.error, "error");
        if io.stdin {
            open(&mut s.stdin, "stdin");
        }
        if io.stdout {
            open(&mut s.stdout, "stdout");
        }
        if io.stderr && !io.tty {
            open(&mut s.stderr, "stderr");
        }
        if io.tty {
            open(&mut s.resize, "resize");
        }
        (s, order)
    }
}

/// What a message from kubectl asks of the SPDY session.
#[derive(Debug, PartialEq, Eq)]
enum Inbound<'a> {
    Stdin(&'a [u8]),
    Resize(&'a [u8]),
    CloseStdin,
    Ignore,
}

fn inbound(message: &[u8]) -> Inbound<'_> {
    match message.split_first() {
        Some((0, data)) => Inbound::Stdin(data),
        Some((4, data)) => Inbound::Resize(data),
        Some((255, [0, ..])) => Inbound::CloseStdin,
        _ => Inbound::Ignore,
    }
}

/// The frames that carry one message from kubectl to the runtime.
fn translate(message: &[u8], streams: &Streams, stdin_open: &mut bool) -> Vec<Frame> {
    match inbound(message) {
        Inbound::Stdin(bytes) if *stdin_open => {
            bytes.chunks(CHUNK).map(|c| Frame::Data { stream: streams.stdin, fin: false, data: c.to_vec() }).collect()
        }
        Inbound::Resize(bytes) if streams.resize != 0 => {
            tracing::debug!(size = %String::from_utf8_lossy(bytes).trim(), "terminal resized");
            vec![Frame::Data { stream: streams.resize, fin: false, data: bytes.to_vec() }]
        }
        Inbound::CloseStdin if *stdin_open => {
            *stdin_open = false;
            vec![Frame::Data { stream: streams.stdin, fin: true, data: Vec::new() }]
        }
        _ => Vec::new(),
    }
}

fn channel(ch: u8, data: &[u8]) -> Message {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(ch);
    out.extend_from_slice(data);
    Message::Binary(out.into())
}

type Upstream = Box<dyn skiff_client::tunnel::Stream>;

async fn send(
    up: &mut tokio::io::WriteHalf<Upstream>,
    enc: &mut spdy::Encoder,
    frames: &[Frame],
) -> Result<(), String> {
    let mut bytes = Vec::new();
    for f in frames {
        enc.encode(f, &mut bytes).map_err(|e| e.to_string())?;
    }
    up.write_all(&bytes).await.map_err(|e| e.to_string())?;
    up.flush().await.map_err(|e| e.to_string())
}

/// Bridges kubectl's v5 WebSocket with a SPDY/3.1 session (already upgraded: `leftover` holds
/// bytes that came with the 101) to the runtime's exec/attach server.
pub async fn exec<W>(mut ws: WebSocketStream<W>, leftover: Vec<u8>, upstream: Upstream, io: StreamIo)
where
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let n = EXEC_SESSIONS.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(sessions = n, "exec/attach over WebSocket {EXEC_PROTOCOL}, bridged to SPDY/3.1");
    let (mut rd, mut wr) = tokio::io::split(upstream);
    let mut enc = match spdy::Encoder::new() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "SPDY encoder");
            return;
        }
    };
    let (streams, order) = Streams::plan(&io);
    tracing::debug!(?io, ?streams, "WebSocket session streams");
    let syns: Vec<Frame> = order
        .iter()
        .map(|(id, kind)| Frame::SynStream {
            stream: *id,
            associated: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: vec![("streamtype".to_string(), kind.to_string())],
        })
        .collect();
    // With a terminal, kubectl's first message is its size: waiting for it before the streams
    // exist puts it in the resize stream before the process starts, so the process is born
    // knowing its window size (as it is when kubectl speaks SPDY itself).
    let mut early = Vec::new();
    if streams.resize != 0 {
        let deadline = tokio::time::sleep(std::time::Duration::from_millis(500));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                message = ws.next() => match message {
                    Some(Ok(Message::Binary(data))) => {
                        let resize = data.first() == Some(&4);
                        early.push(data);
                        if resize {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    let mut stdin_open = streams.stdin != 0;
    // The runtime's SPDY server drops DATA on a stream it has not replied to yet, so data waits
    // until every stream is answered (kubectl's own SPDY client waits for each reply too).
    let mut pending = Vec::new();
    let mut replied = std::collections::HashSet::new();
    for data in &early {
        pending.extend(translate(data, &streams, &mut stdin_open));
    }
    if let Err(e) = send(&mut wr, &mut enc, &syns).await {
        tracing::debug!(error = %e, "opening the runtime's streams");
        let _ = ws.close(None).await;
        return;
    }
    // Frames from the runtime, decoded on their own task.
    let (tx, mut frames) = tokio::sync::mpsc::channel::<Frame>(64);
    let reader = tokio::spawn(async move {
        let mut dec = spdy::Decoder::new();
        let mut buf = leftover;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            loop {
                match dec.decode(&buf) {
                    Ok(Some((frame, used))) => {
                        buf.drain(..used);
                        if tx.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "the runtime's SPDY session");
                        return;
                    }
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let mut status = Vec::new();
    let (mut error_done, mut stdout_done, mut stderr_done) = (false, streams.stdout == 0, streams.stderr == 0);
    let client_gone = loop {
        if error_done && stdout_done && stderr_done {
            break false;
        }
        tokio::select! {
            message = ws.next() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break true,
                    Some(Ok(_)) => continue,
                };
                let frames = translate(&data, &streams, &mut stdin_open);
                if replied.len() < order.len() {
                    pending.extend(frames);
                } else if !frames.is_empty() && send(&mut wr, &mut enc, &frames).await.is_err() {
                    break false;
                }
            }
            frame = frames.recv() => {
                let Some(frame) = frame else { break false };
                match frame {
                    Frame::Data { stream, fin, data } => {
                        let ch = if stream == streams.stdout {
                            stdout_done |= fin;
                            1
                        } else if stream == streams.stderr {
                            stderr_done |= fin;
                            2
                        } else {
                            if stream == streams.error {
                                status.extend_from_slice(&data);
                                error_done |= fin;
                            }
                            continue;
                        };
                        if !data.is_empty() && ws.send(channel(ch, &data)).await.is_err() {
                            break true;
                        }
                    }
                    Frame::SynReply { stream, .. } => {
                        let was_waiting = replied.len() < order.len();
                        if order.iter().any(|(id, _)| *id == stream) {
                            replied.insert(stream);
                        }
                        if was_waiting && replied.len() == order.len() {
                            let frames = std::mem::take(&mut pending);
                            if !frames.is_empty() && send(&mut wr, &mut enc, &frames).await.is_err() {
                                break false;
                            }
                        }
                    }
                    Frame::RstStream { stream, .. } => {
                        stdout_done |= stream == streams.stdout;
                        stderr_done |= stream == streams.stderr;
                        error_done |= stream == streams.error;
                    }
                    Frame::Ping { id } if send(&mut wr, &mut enc, &[Frame::Ping { id }]).await.is_err() => break false,
                    Frame::GoAway { .. } => break false,
                    _ => {}
                }
            }
        }
    };
    // Whatever else the runtime sent before it went away (the Status usually comes last).
    if !client_gone {
        while let Ok(Some(frame)) = tokio::time::timeout(std::time::Duration::from_millis(200), frames.recv()).await {
            match frame {
                Frame::Data { stream, data, .. } if stream == streams.error => status.extend_from_slice(&data),
                Frame::Data { stream, data, .. } if !data.is_empty() && stream == streams.stdout => {
                    let _ = ws.send(channel(1, &data)).await;
                }
                Frame::Data { stream, data, .. } if !data.is_empty() && stream == streams.stderr => {
                    let _ = ws.send(channel(2, &data)).await;
                }
                _ => {}
            }
        }
    }
    let _ = send(&mut wr, &mut enc, &[Frame::GoAway { last_good: 0, status: 0 }]).await;
    let _ = wr.shutdown().await;
    reader.abort();
    if client_gone {
        return;
    }
    let status = if status.iter().all(u8::is_ascii_whitespace) { SUCCESS.to_vec() } else { status };
    let _ = ws.send(channel(3, &status)).await;
    close(ws).await;
}

/// Sends a normal Close and waits briefly for the client's.
async fn close<W>(mut ws: WebSocketStream<W>)
where
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(2), async { while let Some(Ok(_)) = ws.next().await {} })
            .await;
}

/// Relays kubectl's SPDY bytes (in binary messages) to and from the runtime's port-forward
/// server.
pub async fn port_forward<W>(mut ws: WebSocketStream<W>, leftover: Vec<u8>, mut upstream: Upstream)
where
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let n = PORTFORWARD_SESSIONS.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(sessions = n, "port-forward over WebSocket {PORTFORWARD_PROTOCOL}, relayed");
    if !leftover.is_empty() && ws.send(Message::Binary(leftover.into())).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let client_gone = loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if upstream.write_all(&data).await.is_err() || upstream.flush().await.is_err() {
                        break false;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break true,
                Some(Ok(_)) => {}
            },
            read = upstream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break false,
                Ok(n) => {
                    if ws.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        break true;
                    }
                }
            },
        }
    };
    let _ = upstream.shutdown().await;
    if !client_gone {
        close(ws).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_follow_kubectls_order() {
        let io = StreamIo { stdin: true, stdout: true, stderr: true, tty: false };
        let (s, order) = Streams::plan(&io);
        assert_eq!(order, vec![(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")]);
        assert_eq!(s.resize, 0);
        let tty = StreamIo { stdin: true, stdout: true, stderr: true, tty: true };
        let (s, order) = Streams::plan(&tty);
        assert_eq!(order, vec![(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")]);
        assert_eq!((s.stderr, s.resize), (0, 7));
    }

    #[test]
    fn channels_map_to_streams() {
        assert_eq!(inbound(&[0, b'h', b'i']), Inbound::Stdin(b"hi"));
        assert_eq!(inbound(b"\x04{\"Width\":80}"), Inbound::Resize(b"{\"Width\":80}"));
        assert_eq!(inbound(&[255, 0]), Inbound::CloseStdin);
        assert_eq!(inbound(&[255, 1]), Inbound::Ignore);
        assert_eq!(inbound(&[]), Inbound::Ignore);
    }

    #[test]
    fn offered_protocols_are_found_in_lists() {
        let mut h = hyper::HeaderMap::new();
        h.append(
            "sec-websocket-protocol",
            hyper::header::HeaderValue::from_static("v4.channel.k8s.io, v5.channel.k8s.io"),
        );
        assert!(offers(&h, EXEC_PROTOCOL));
        assert!(!offers(&h, PORTFORWARD_PROTOCOL));
        // RFC 6455's example.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    /// A fake runtime streaming server and a WebSocket client around the bridge: stdin reaches
    /// the stdin stream and its close becomes FIN, stdout comes back on channel 1 and the Status
    /// on channel 3, then a normal close.
    #[tokio::test]
    async fn exec_bridges_websocket_channels_and_spdy_streams() {
        use tokio_tungstenite::tungstenite::protocol::Role;
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let (agent_side, runtime_side) = tokio::io::duplex(1 << 16);
        let io = StreamIo { stdin: true, stdout: true, stderr: true, tty: false };
        let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let bridge = tokio::spawn(exec(server, Vec::new(), Box::new(agent_side), io));
        let runtime = tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(runtime_side);
            let (mut dec, mut enc) = (spdy::Decoder::new(), spdy::Encoder::new().expect("encoder"));
            let (mut buf, mut chunk, mut stdin, mut kinds) = (Vec::new(), vec![0u8; 4096], Vec::new(), Vec::new());
            loop {
                while let Some((frame, used)) = dec.decode(&buf).expect("decode") {
                    buf.drain(..used);
                    match frame {
                        Frame::SynStream { stream, headers, .. } => {
                            kinds.push((stream, headers[0].1.clone()));
                            let mut out = Vec::new();
                            enc.encode(&Frame::SynReply { stream, fin: false, headers: Vec::new() }, &mut out)
                                .expect("encode");
                            wr.write_all(&out).await.expect("write");
                        }
                        Frame::Data { stream: 3, fin, data } => {
                            stdin.extend_from_slice(&data);
                            if fin {
                                let mut out = Vec::new();
                                for f in [
                                    Frame::Data { stream: 5, fin: false, data: stdin.clone() },
                                    Frame::Data { stream: 1, fin: false, data: SUCCESS.to_vec() },
                                ] {
                                    enc.encode(&f, &mut out).expect("encode");
                                }
                                wr.write_all(&out).await.expect("write");
                                return kinds;
                            }
                        }
                        _ => {}
                    }
                }
                let n = rd.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the bridge closed early");
                buf.extend_from_slice(&chunk[..n]);
            }
        });
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        client.send(channel(0, b"piped ")).await.expect("send");
        client.send(channel(0, b"input")).await.expect("send");
        client.send(Message::Binary(vec![255, 0].into())).await.expect("send");
        let kinds = runtime.await.expect("runtime");
        assert_eq!(kinds, vec![(1, "error".into()), (3, "stdin".into()), (5, "stdout".into()), (7, "stderr".into())]);
        let mut got = Vec::new();
        while let Some(Ok(message)) = client.next().await {
            got.push(message);
        }
        assert_eq!(got[0], channel(1, b"piped input"));
        assert_eq!(got[1], channel(3, SUCCESS));
        assert!(matches!(&got[2], Message::Close(Some(f)) if f.code == CloseCode::Normal), "{got:?}");
        bridge.await.expect("bridge");
    }
}
