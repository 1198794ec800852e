//! The window of recent changes that every server keeps in memory to serve watches.
//!
//! A store pushes each applied change here in revision order; watchers read from it by revision,
//! so a slow watcher never loses events: it either catches up from the window or, if the window
//! has moved past its position, ends with [`StoreError::Expired`] and must re-list.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::Event;
use crate::Revision;
use crate::StoreError;
use crate::WatchItem;

/// A watch: changes in revision order, and progress notes while idle.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem, StoreError>> + Send>>;

/// How long an idle watch waits before it reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Events handed to one watcher per read of the window.
const READ_BATCH: usize = 512;

struct Inner {
    events: VecDeque<Event>,
    /// Every event with a revision greater than `floor` is in `events`.
    floor: Revision,
    /// The highest revision applied (with or without an event).
    head: Revision,
}

/// A bounded, revision-ordered buffer of recent events with wake-ups for watchers.
pub struct EventWindow {
    inner: RwLock<Inner>,
    head_tx: watch::Sender<Revision>,
    capacity: usize,
}

impl EventWindow {
    /// A window that starts empty at `start` (events after `start` will be pushed) and keeps at
    /// most `capacity` events.
    pub fn new(start: Revision, capacity: usize) -> Arc<Self> {
        let (head_tx, _) = watch::channel(start);
        Arc::new(Self {
            inner: RwLock::new(Inner { events: VecDeque::new(), floor: start, head: start }),
            head_tx,
            capacity: capacity.max(1),
        })
    }

    /// Appends an applied change. Revisions must increase; an out-of-order event is a bug in the
    /// caller and is dropped with an error log rather than corrupting the order.
    pub fn push(&self, event: Event) {
        let rev = event.revision();
        {
            let mut inner = self.inner.write();
            if rev <= inner.head {
                tracing::error!(rev, head = inner.head, "event window: out-of-order event dropped");
                return;
            }
            inner.events.push_back(event);
            inner.head = rev;
            while inner.events.len() > self.capacity {
                if let Some(old) = inner.events.pop_front() {
                    inner.floor = old.revision();
                }
            }
        }
        self.head_tx.send_replace(rev);
    }

    /// Records that revisions up to `rev` were applied without a visible change.
    pub fn advance(&self, rev: Revision) {
        {
            let mut inner = self.inner.write();
            if rev <= inner.head {
                return;
            }
            inner.head = rev;
        }
        self.head_tx.send_replace(rev);
    }

    /// Forgets all history: the state jumped to `rev` (a snapshot was installed).
    pub fn reset(&self, rev: Revision) {
        {
            let mut inner = self.inner.write();
            inner.events.clear();
            inner.floor = rev;
            inner.head = rev;
        }
        self.head_tx.send_replace(rev);
    }

    /// The highest applied revision.
    pub fn head(&self) -> Revision {
        self.inner.read().head
    }

    /// Watches can start at any revision at or above this.
    pub fn floor(&self) -> Revision {
        self.inner.read().floor
    }

    /// Waits until revision `rev` has been applied here.
    pub async fn wait_applied(&self, rev: Revision, timeout: Duration) -> Result<(), StoreError> {
        let mut rx = self.head_tx.subscribe();
        let wait = rx.wait_for(|head| *head >= rev);
        let result = match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Unavailable("store is shutting down".into())),
            Err(_) => Err(StoreError::Timeout(format!("revision {rev} not applied locally within {timeout:?}"))),
        };
        result
    }

    /// Events under `prefix` with revision greater than `after` (at most `max`), and the revision
    /// up to which the window was scanned.
    fn read_after(&self, prefix: &str, after: Revision, max: usize) -> Result<(Vec<Event>, Revision), StoreError> {
        let inner = self.inner.read();
        if after < inner.floor {
            return Err(StoreError::Expired { requested: after, oldest: inner.floor });
        }
        let start = inner.events.partition_point(|e| e.revision() <= after);
        let mut out = Vec::new();
        for e in inner.events.range(start..) {
            if out.len() >= max {
                return Ok((out, e.revision() - 1));
            }
            if e.record.key.starts_with(prefix) {
                out.push(e.clone());
            }
        }
        Ok((out, inner.head.max(after)))
    }

    /// Streams events under `prefix` with revision greater than `after`.
    pub fn watch(self: &Arc<Self>, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // Fail fast if the start is already compacted.
        {
            let inner = self.inner.read();
            if after < inner.floor {
                return Err(StoreError::Expired { requested: after, oldest: inner.floor });
            }
        }
        let state = WatchState {
            window: self.clone(),
            rx: self.head_tx.subscribe(),
            prefix: prefix.to_string(),
            pos: after,
            reported: after,
            buffer: VecDeque::new(),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, WatchState::next)))
    }
}

struct WatchState {
    window: Arc<EventWindow>,
    rx: watch::Receiver<Revision>,
    prefix: String,
    /// Everything up to here has been read from the window.
    pos: Revision,
    /// The last revision reported through an event or progress item.
    reported: Revision,
    buffer: VecDeque<Event>,
    done: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchItem, StoreError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(e) = self.buffer.pop_front() {
                self.reported = e.revision();
                return Some((Ok(WatchItem::Event(e)), self));
            }
            // Mark the current head seen before reading, so a push after the read wakes us.
            self.rx.borrow_and_update();
            match self.window.read_after(&self.prefix, self.pos, READ_BATCH) {
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
                Ok((events, scanned)) => {
                    self.pos = scanned;
                    if !events.is_empty() {
                        self.buffer.extend(events);
                        continue;
                    }
                }
            }
            match tokio::time::timeout(PROGRESS_INTERVAL, self.rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return None,
                Err(_) => {
                    if self.pos > self.reported {
                        self.reported = self.pos;
                        let rev = self.pos;
                        return Some((Ok(WatchItem::Progress(rev)), self));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::EventKind;
    use crate::Record;

    fn ev(key: &str, rev: Revision) -> Event {
        Event {
            kind: EventKind::Created,
            record: Record {
                key: key.into(),
                value: bytes::Bytes::new(),
                revision: rev,
                create_revision: rev,
                uid: String::new(),
            },
        }
    }

    async fn next_event(s: &mut WatchStream) -> Event {
        loop {
            match s.next().await {
                Some(Ok(WatchItem::Event(e))) => return e,
                Some(Ok(WatchItem::Progress(_))) => continue,
                other => panic!("unexpected watch item {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn replays_history_then_follows_live_events() {
        let w = EventWindow::new(0, 100);
        w.push(ev("a/1", 1));
        w.push(ev("b/1", 2));
        w.push(ev("a/2", 4));
        let mut s = w.watch("a/", 0).expect("watch");
        assert_eq!(next_event(&mut s).await.revision(), 1);
        assert_eq!(next_event(&mut s).await.revision(), 4);
        w.push(ev("a/3", 7));
        assert_eq!(next_event(&mut s).await.revision(), 7);
    }

    #[tokio::test]
    async fn compacted_start_is_expired() {
        let w = EventWindow::new(0, 2);
        for r in 1..=5 {
            w.push(ev("k", r));
        }
        assert_eq!(w.floor(), 3);
        assert!(matches!(w.watch("", 1), Err(StoreError::Expired { requested: 1, oldest: 3 })));
        let mut s = w.watch("", 3).expect("watch at floor");
        assert_eq!(next_event(&mut s).await.revision(), 4);
    }

    #[tokio::test]
    async fn slow_watcher_overrun_by_compaction_gets_expired() {
        let w = EventWindow::new(0, 2);
        let mut s = w.watch("", 0).expect("watch");
        for r in 1..=10 {
            w.push(ev("k", r));
        }
        assert!(matches!(s.next().await, Some(Err(StoreError::Expired { .. }))));
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn idle_watch_reports_progress() {
        let w = EventWindow::new(0, 10);
        let mut s = w.watch("x/", 0).expect("watch");
        w.push(ev("y/1", 5));
        w.advance(9);
        match s.next().await {
            Some(Ok(WatchItem::Progress(r))) => assert_eq!(r, 9),
            other => panic!("expected progress, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reset_expires_positions_before_it() {
        let w = EventWindow::new(0, 10);
        w.push(ev("k", 1));
        w.reset(50);
        assert!(matches!(w.watch("", 1), Err(StoreError::Expired { .. })));
        assert!(w.watch("", 50).is_ok());
        assert_eq!(w.head(), 50);
    }

    #[tokio::test]
    async fn wait_applied_times_out_and_succeeds() {
        let w = EventWindow::new(0, 10);
        assert!(matches!(w.wait_applied(3, Duration::from_millis(20)).await, Err(StoreError::Timeout(_))));
        w.advance(3);
        assert!(w.wait_applied(3, Duration::from_millis(20)).await.is_ok());
    }
}
