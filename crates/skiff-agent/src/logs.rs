//! Container logs: the runtime writes each container's output to a file in the CRI log format
//! (`TIMESTAMP STREAM TAG TEXT`, one line each, `P` for a partial line and `F` for its end); the
//! agent serves them at `/containerLogs/NAMESPACE/POD/CONTAINER`, which the API server proxies
//! `pods/log` to, with kubectl's options (follow, tailLines, timestamps, previous, sinceSeconds,
//! sinceTime, limitBytes).

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use http_body_util::StreamBody;
use hyper::body::Frame;

/// What a log request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    /// Only lines at or after this moment (nanoseconds since the epoch).
    pub since_ns: Option<i128>,
}

impl LogOptions {
    /// Parses kubectl's query parameters; an invalid value is an error message.
    pub fn from_query(query: &str, now_ns: i128) -> Result<Self, String> {
        let mut o = LogOptions::default();
        for (k, v) in form_pairs(query) {
            let number = |v: &str| v.parse::<i64>().map_err(|_| format!("{k}: {v:?} is not a number"));
            match k.as_str() {
                "follow" => o.follow = v == "true",
                "previous" => o.previous = v == "true",
                "timestamps" => o.timestamps = v == "true",
                "tailLines" => o.tail_lines = Some(number(&v)?.max(0) as usize),
                "limitBytes" => {
                    let n = number(&v)?;
                    if n <= 0 {
                        return Err("limitBytes must be positive".into());
                    }
                    o.limit_bytes = Some(n as usize);
                }
                "sinceSeconds" => {
                    let n = number(&v)?;
                    if n <= 0 {
                        return Err("sinceSeconds must be positive".into());
                    }
                    o.since_ns = Some(now_ns - n as i128 * 1_000_000_000);
                }
                "sinceTime" => {
                    let t: jiff::Timestamp = v.parse().map_err(|e| format!("sinceTime {v:?}: {e}"))?;
                    o.since_ns = Some(t.as_nanosecond());
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    /// `false` for a partial line (the text continues in the next record).
    pub full: bool,
    pub text: &'a str,
}

pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some(LogLine { timestamp, stream, full: !tag.contains('P'), text })
}

/// Renders CRI log content as kubectl shows it, applying since, tail, timestamps and limit.
pub fn render(content: &str, o: &LogOptions) -> Vec<u8> {
    // Whole logical lines first (partials joined), so tailLines counts what users see.
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut pending: Option<(String, String)> = None;
    for raw in content.lines() {
        let Some(l) = parse_line(raw) else { continue };
        if let Some(since) = o.since_ns {
            let at = l.timestamp.parse::<jiff::Timestamp>().map(|t| t.as_nanosecond()).unwrap_or(0);
            if at < since {
                continue;
            }
        }
        let entry = pending.get_or_insert_with(|| (l.timestamp.to_string(), String::new()));
        entry.1.push_str(l.text);
        if l.full {
            if let Some(done) = pending.take() {
                lines.push(done);
            }
        }
    }
    let start = o.tail_lines.map(|n| lines.len().saturating_sub(n)).unwrap_or(0);
    let mut out = Vec::new();
    for (ts, text) in &lines[start..] {
        if o.timestamps {
            out.extend_from_slice(ts.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    }
    if let Some(limit) = o.limit_bytes {
        out.truncate(limit);
    }
    out
}

/// The log file of a container: the newest attempt, or the one before with `previous`.
pub fn log_file(logs_dir: &Path, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<PathBuf> {
    let prefix = format!("{namespace}_{pod}_");
    let pod_dir = std::fs::read_dir(logs_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path();
    let mut attempts: Vec<(u32, PathBuf)> = std::fs::read_dir(pod_dir.join(container))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name.strip_suffix(".log")?.parse().ok()?, e.path()))
        })
        .collect();
    attempts.sort();
    let pick = if previous { attempts.len().checked_sub(2)? } else { attempts.len().checked_sub(1)? };
    attempts.into_iter().nth(pick).map(|(_, p)| p)
}

pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn text(code: u16, message: String) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(message)).map_err(|never| match never {}).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// Answers `/containerLogs/NAMESPACE/POD/CONTAINER`.
pub fn answer(dir: &Path, uri: &hyper::Uri) -> hyper::Response<Body> {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let ["containerLogs", namespace, pod, container] = parts.as_slice() else {
        return text(404, format!("no such endpoint: {}", uri.path()));
    };
    let now = jiff::Timestamp::now().as_nanosecond();
    let options = match LogOptions::from_query(uri.query().unwrap_or(""), now) {
        Ok(o) => o,
        Err(e) => return text(400, e),
    };
    let Some(file) = log_file(dir, namespace, pod, container, options.previous) else {
        let what = if options.previous { "previous terminated container" } else { "container" };
        return text(404, format!("{what} \"{container}\" in pod \"{pod}\" has no logs on this node"));
    };
    let content = match std::fs::read_to_string(&file) {
        Ok(c) => c,
        Err(e) => return text(500, format!("reading {}: {e}", file.display())),
    };
    let first = render(&content, &options);
    if !options.follow {
        return text(200, String::from_utf8_lossy(&first).into_owned());
    }
    // Follow: what is there now, then whatever is appended, until the client goes away.
    let offset = content.len() as u64;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(follow(file, offset, options, first, tx));
    let stream = tokio_stream_from(rx);
    let mut response = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
    response
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn follow(
    file: PathBuf,
    mut offset: u64,
    options: LogOptions,
    first: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncSeekExt;
    let mut sent = first.len();
    if !first.is_empty() && tx.send(Ok(Frame::data(Bytes::from(first)))).await.is_err() {
        return;
    }
    let later = LogOptions { tail_lines: None, since_ns: None, limit_bytes: None, ..options.clone() };
    let mut carry = String::new();
    loop {
        if options.limit_bytes.is_some_and(|limit| sent >= limit) || tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(mut f) = tokio::fs::File::open(&file).await else { return };
        if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).await.is_err() || buf.is_empty() {
            continue;
        }
        offset += buf.len() as u64;
        carry.push_str(&String::from_utf8_lossy(&buf));
        // Only complete records; a record cut mid-write waits for its end.
        let Some(end) = carry.rfind('\n') else { continue };
        let complete: String = carry.drain(..=end).collect();
        let mut out = render(&complete, &later);
        if let Some(limit) = options.limit_bytes {
            out.truncate(limit.saturating_sub(sent));
        }
        sent += out.len();
        if !out.is_empty() && tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-12-05T10:00:00.000000001Z stdout F one\n\
        2026-12-05T10:00:01.000000000Z stderr P tw\n\
        2026-12-05T10:00:01.500000000Z stderr F o\n\
        2026-12-05T10:00:02.000000000Z stdout F three\n";

    #[test]
    fn partial_records_join_into_one_line() {
        assert_eq!(render(LOG, &LogOptions::default()), b"one\ntwo\nthree\n");
    }

    #[test]
    fn tail_timestamps_since_and_limit_apply() {
        let tail = LogOptions { tail_lines: Some(1), timestamps: true, ..Default::default() };
        assert_eq!(render(LOG, &tail), b"2026-12-05T10:00:02.000000000Z three\n");
        let since_ns = "2026-12-05T10:00:01Z".parse::<jiff::Timestamp>().map(|t| t.as_nanosecond()).ok();
        let since = LogOptions { since_ns, ..Default::default() };
        assert_eq!(render(LOG, &since), b"two\nthree\n");
        let limit = LogOptions { limit_bytes: Some(5), ..Default::default() };
        assert_eq!(render(LOG, &limit), b"one\nt");
    }

    #[test]
    fn query_parameters_are_parsed_and_checked() {
        let o = LogOptions::from_query("follow=true&tailLines=10&timestamps=true&sinceSeconds=60", 100_000_000_000)
            .expect("valid");
        assert!(o.follow && o.timestamps);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(o.since_ns, Some(40_000_000_000));
        assert!(LogOptions::from_query("limitBytes=0", 0).is_err());
        assert!(LogOptions::from_query("tailLines=x", 0).is_err());
        let t = LogOptions::from_query("sinceTime=2026-12-05T10%3A00%3A01Z", 0).expect("valid");
        assert!(t.since_ns.is_some());
    }

    #[test]
    fn the_newest_attempt_or_the_previous_one_is_read() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let c = dir.path().join("default_web_uid1/app");
        std::fs::create_dir_all(&c)?;
        for n in [0, 1, 2] {
            std::fs::write(c.join(format!("{n}.log")), LOG)?;
        }
        assert_eq!(log_file(dir.path(), "default", "web", "app", false), Some(c.join("2.log")));
        assert_eq!(log_file(dir.path(), "default", "web", "app", true), Some(c.join("1.log")));
        assert_eq!(log_file(dir.path(), "default", "other", "app", false), None);
        Ok(())
    }
}
