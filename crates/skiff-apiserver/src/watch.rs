//! Watches: newline-delimited JSON events over a chunked response, served from this server's
//! own applied log, resumable from any revision still in the window.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use futures::StreamExt;
use serde_json::json;
use serde_json::Value;
use skiff_api_types::registry::Resource;
use skiff_store::EventKind;
use skiff_store::ListOptions;
use skiff_store::StoreError;
use skiff_store::WatchItem;

use crate::crud::Selectors;
use crate::error::ApiError;
use crate::objects;
use crate::output;
use crate::request::shape;
use crate::request::Query;
use crate::request::ResourcePath;
use crate::request::Shape;
use crate::state::ApiState;

/// The most events that leave in one chunk.
const MAX_EVENTS_PER_CHUNK: usize = 64;

/// Events that are ready together leave together, in one chunk: one write here and one wake-up
/// of the reader per burst, not per event. A watcher of pods under thousands of creates a second
/// (the controllers' cache, on the leader itself) cost a system call on each end per event. An
/// event still leaves as soon as it is ready: nothing waits for a burst to fill.
fn coalesced(
    events: impl futures::Stream<Item = bytes::Bytes>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    events.ready_chunks(MAX_EVENTS_PER_CHUNK).map(|mut burst| {
        if burst.len() == 1 {
            return Ok(burst.pop().unwrap_or_default());
        }
        let mut joined = bytes::BytesMut::with_capacity(burst.iter().map(bytes::Bytes::len).sum());
        for event in &burst {
            joined.extend_from_slice(event);
        }
        Ok(joined.freeze())
    })
}

/// How events are rendered for this watcher.
struct Renderer {
    resource: &'static Resource,
    shape: Shape,
    include: output::IncludeObject,
}

impl Renderer {
    fn event(&self, kind: &str, obj: &Value) -> bytes::Bytes {
        let object = match self.shape {
            Shape::Object => obj.clone(),
            Shape::PartialMetadata => output::partial_metadata(obj),
            Shape::Table => {
                let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
                output::table(self.resource, std::slice::from_ref(obj), json!({"resourceVersion": rv}), self.include)
            }
        };
        line(&json!({"type": kind, "object": object}))
    }

    /// The event for a stored record without parsing it: a plain-object watch needs nothing but
    /// the stored bytes with the revision spliced in (see [`objects::read_json`]).
    fn event_of(&self, kind: &str, record: &skiff_store::Record) -> Result<bytes::Bytes, ApiError> {
        if self.shape != Shape::Object {
            return Ok(self.event(kind, &objects::read(self.resource, record)?));
        }
        let object = objects::read_json(self.resource, record)?;
        let mut out = Vec::with_capacity(object.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(&object);
        out.extend_from_slice(b"}\n");
        Ok(bytes::Bytes::from(out))
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> bytes::Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta});
        line(&json!({"type": "BOOKMARK", "object": obj}))
    }
}

fn line(v: &Value) -> bytes::Bytes {
    let mut s = v.to_string();
    s.push('\n');
    bytes::Bytes::from(s)
}

fn error_event(e: &ApiError) -> bytes::Bytes {
    line(&json!({"type": "ERROR", "object": e.status()}))
}

pub async fn serve(state: Arc<ApiState>, p: ResourcePath, q: Query, headers: HeaderMap) -> Result<Response, ApiError> {
    let r = p.resource;
    let sel = Selectors::from_query(r, &q)?;
    let renderer = Renderer { resource: r, shape: shape(&headers), include: output::IncludeObject::from_query(&q)? };
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = q.number("timeoutSeconds")?.filter(|t| *t > 0).map(|t| Duration::from_secs(t.unsigned_abs()));
    let send_initial = match q.get("sendInitialEvents") {
        Some("true") => true,
        Some("false") | None => matches!(q.get("resourceVersion"), None | Some("0")),
        Some(other) => {
            return Err(ApiError::BadRequest(format!("sendInitialEvents must be true or false, not {other:?}")))
        }
    };
    let prefix = r.list_prefix(p.namespace.as_deref());

    // Objects that currently match the selectors, so a change that makes one stop matching is
    // delivered as DELETED (and one that starts matching as ADDED), as upstream does.
    let mut matching: HashSet<String> = HashSet::new();
    let mut initial: Vec<bytes::Bytes> = Vec::new();
    let start = if send_initial {
        let consistency = if q.get("resourceVersion") == Some("0") {
            skiff_store::Consistency::Local
        } else {
            skiff_store::Consistency::Linearizable
        };
        let mut after = None;
        let mut revision = 0;
        loop {
            let page = state
                .store
                .list(&prefix, ListOptions { limit: Some(1000), continue_after: after.clone(), consistency })
                .await
                .map_err(|e| ApiError::from_store(e, r.plural, ""))?;
            if revision == 0 {
                revision = page.revision;
            }
            for rec in &page.items {
                if sel.is_empty() {
                    initial.push(renderer.event_of("ADDED", rec)?);
                    continue;
                }
                let obj = objects::read(r, rec)?;
                if sel.matches(r, &obj) {
                    matching.insert(rec.key.clone());
                    initial.push(renderer.event("ADDED", &obj));
                }
            }
            match page.continue_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if q.get("sendInitialEvents") == Some("true") && bookmarks {
            initial.push(renderer.bookmark(revision, true));
        }
        revision
    } else {
        let rv = q.get("resourceVersion").map(objects::parse_rv).transpose()?.unwrap_or(0);
        if !sel.is_empty() {
            // Seed the matching set from the current state; a watch resumes close to it. (An
            // object changed between the requested revision and now is judged by its state now.)
            let page = state
                .store
                .list(
                    &prefix,
                    ListOptions { limit: None, continue_after: None, consistency: skiff_store::Consistency::Local },
                )
                .await
                .map_err(|e| ApiError::from_store(e, r.plural, ""))?;
            for rec in &page.items {
                if objects::read(r, rec).is_ok_and(|o| sel.matches(r, &o)) {
                    matching.insert(rec.key.clone());
                }
            }
        }
        rv
    };

    let content_type = if renderer.shape == Shape::Table { output::TABLE_CONTENT_TYPE } else { "application/json" };
    let events = match state.store.watch(&prefix, start).await {
        Ok(events) => events,
        Err(StoreError::Expired { requested, oldest }) => {
            // Upstream answers an expired watch with 200 and one ERROR event carrying the 410.
            let body = error_event(&ApiError::Expired { requested, oldest });
            return Ok((StatusCode::OK, [("content-type", content_type)], body).into_response());
        }
        Err(e) => return Err(ApiError::from_store(e, r.plural, "")),
    };

    let stream = futures::stream::iter(initial);
    let live = events
        .map(move |item| match item {
            // Without selectors every event is delivered as it happened, and needs no parsing.
            Ok(WatchItem::Event(ev)) if sel.is_empty() => {
                let kind = match ev.kind {
                    EventKind::Created => "ADDED",
                    EventKind::Updated => "MODIFIED",
                    EventKind::Deleted => "DELETED",
                };
                Some(renderer.event_of(kind, &ev.record).unwrap_or_else(|e| error_event(&e)))
            }
            Ok(WatchItem::Event(ev)) => {
                let obj = match objects::read(r, &ev.record) {
                    Ok(o) => o,
                    Err(e) => return Some(error_event(&e)),
                };
                let key = ev.record.key.clone();
                let matches_now = ev.kind != EventKind::Deleted && sel.matches(r, &obj);
                let matched_before =
                    if sel.is_empty() { ev.kind != EventKind::Created } else { matching.contains(&key) };
                let kind = match (ev.kind, matched_before, matches_now) {
                    (EventKind::Deleted, true, _) => "DELETED",
                    (EventKind::Deleted, false, _) if sel.is_empty() => "DELETED",
                    // The matching set was seeded from the state at the watch's start, which may
                    // already lack an object deleted after the requested revision; the deleted
                    // record is the object as it last was, so it decides (as upstream's
                    // previous-object filter does). Without this, `kubectl delete` waiting with
                    // a name selector from just before the deletion waited forever.
                    (EventKind::Deleted, false, _) if sel.matches(r, &obj) => "DELETED",
                    (EventKind::Deleted, false, _) => return None,
                    (_, false, true) => "ADDED",
                    (_, true, true) => "MODIFIED",
                    (_, true, false) => "DELETED",
                    (_, false, false) => return None,
                };
                if !sel.is_empty() {
                    if kind == "DELETED" {
                        matching.remove(&key);
                    } else {
                        matching.insert(key);
                    }
                }
                Some(renderer.event(kind, &obj))
            }
            Ok(WatchItem::Progress(rev)) => bookmarks.then(|| renderer.bookmark(rev, false)),
            Err(StoreError::Expired { requested, oldest }) => {
                Some(error_event(&ApiError::Expired { requested, oldest }))
            }
            Err(e) => Some(error_event(&ApiError::from_store(e, "", ""))),
        })
        .filter_map(|b| async move { b });
    // The gauge lives as long as the body stream, so it falls when the client goes away.
    let open = crate::metrics::WatchGauge::open(r.group, r.version, r.plural);
    let all = coalesced(stream.chain(live)).inspect(move |_| {
        let _ = &open;
    });
    let body = match timeout {
        Some(t) => {
            let deadline = tokio::time::Instant::now() + t;
            Body::from_stream(all.take_until(tokio::time::sleep_until(deadline)))
        }
        None => Body::from_stream(all),
    };
    Ok((StatusCode::OK, [("content-type", content_type), ("cache-control", "no-cache, private")], body).into_response())
}

#[cfg(test)]
mod tests {
    use skiff_api_types::registry;
    use skiff_store::Record;

    use super::*;

    #[tokio::test]
    async fn events_ready_together_leave_in_one_chunk_and_none_waits() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<bytes::Bytes>();
        let mut chunks = Box::pin(coalesced(rx));
        for line in ["a\n", "b\n", "c\n"] {
            tx.unbounded_send(bytes::Bytes::from(line)).expect("send");
        }
        let first = chunks.next().await.expect("a chunk").expect("bytes");
        assert_eq!(&first[..], b"a\nb\nc\n");
        // A lone event is not held back for company.
        tx.unbounded_send(bytes::Bytes::from("d\n")).expect("send");
        let second = tokio::time::timeout(Duration::from_secs(5), chunks.next()).await.expect("not held back");
        assert_eq!(&second.expect("a chunk").expect("bytes")[..], b"d\n");
        // A long burst is cut into chunks of at most MAX_EVENTS_PER_CHUNK events, in order.
        let burst: Vec<String> = (0..MAX_EVENTS_PER_CHUNK + 5).map(|i| format!("{i}\n")).collect();
        for line in &burst {
            tx.unbounded_send(bytes::Bytes::from(line.clone())).expect("send");
        }
        drop(tx);
        let mut rest = Vec::new();
        while let Some(chunk) = chunks.next().await {
            rest.push(chunk.expect("bytes"));
        }
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].iter().filter(|b| **b == b'\n').count(), MAX_EVENTS_PER_CHUNK);
        assert_eq!(rest.concat(), burst.concat().into_bytes());
    }

    fn record(value: &Value) -> Record {
        Record {
            key: "/registry/core/pods/a/web".into(),
            value: serde_json::to_vec(value).expect("encode").into(),
            revision: 42,
            create_revision: 40,
            uid: "u1".into(),
        }
    }

    #[test]
    fn a_spliced_event_says_what_a_parsed_one_says() {
        let r = registry::find("", "v1", "pods").expect("pods");
        let renderer = Renderer { resource: r, shape: Shape::Object, include: output::IncludeObject::Object };
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "a", "labels": {"app": "x\"y"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let rec = record(&pod);
        for kind in ["ADDED", "MODIFIED", "DELETED"] {
            let spliced = renderer.event_of(kind, &rec).expect("spliced");
            assert!(spliced.ends_with(b"\n") && !spliced[..spliced.len() - 1].contains(&b'\n'), "one line");
            let parsed = renderer.event(kind, &objects::read(r, &rec).expect("read"));
            let a: Value = serde_json::from_slice(&spliced).expect("spliced is JSON");
            let b: Value = serde_json::from_slice(&parsed).expect("parsed is JSON");
            assert_eq!(a, b);
            assert_eq!(a["object"]["metadata"]["resourceVersion"], "42");
            assert_eq!(a["type"], kind);
        }
    }

    #[test]
    fn a_table_watch_still_renders_rows() {
        let r = registry::find("", "v1", "pods").expect("pods");
        let renderer = Renderer { resource: r, shape: Shape::Table, include: output::IncludeObject::None };
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let line = renderer.event_of("ADDED", &record(&pod)).expect("rendered");
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(v["object"]["kind"], "Table");
        assert_eq!(v["object"]["rows"][0]["cells"][0], "web");
    }
}
