//! Just enough of an HTTP client to talk to the local registry: plain GETs to 127.0.0.1.
//!
//! Requests are HTTP/1.0 with `Connection: close` so the server neither keeps the connection open
//! nor answers with chunked encoding, and the response ends where the stream does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub(crate) struct Response {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub(crate) fn get(addr: &str, path: &str, accept: &[&str], timeout: Duration) -> std::io::Result<Response> {
    let socket: SocketAddr =
        addr.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&socket, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    for media_type in accept {
        request.push_str(&format!("Accept: {media_type}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("malformed response: {what}"));
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(&format!("status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response { status, headers, body: raw[head_end + 4..].to_vec() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_status_headers_and_body() -> std::io::Result<()> {
        let r = super::parse(b"HTTP/1.0 200 OK\r\nDocker-Content-Digest: sha256:ab\r\nX: a:b\r\n\r\n{}")?;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("docker-content-digest"), Some("sha256:ab"));
        assert_eq!(r.header("x"), Some("a:b"));
        assert_eq!(r.body, b"{}");
        assert!(super::parse(b"HTTP/1.0 200 OK\r\n").is_err());
        Ok(())
    }
}
