//! The conformance suite: behaviour every [`Store`] implementation must show.
//!
//! Call [`run_all`] from a test of the implementation with a fresh key prefix. Every case works
//! under its own sub-prefix, so one store (for example a running three-server cluster) can serve
//! the whole suite. Failures panic with a message naming the case.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::Consistency;
use crate::EventKind;
use crate::ListOptions;
use crate::Precondition;
use crate::Store;
use crate::StoreError;
use crate::WatchItem;
use crate::WatchStream;
use crate::Write;

const WATCH_WAIT: Duration = Duration::from_secs(10);

/// Runs every case against `store`, keys under `prefix`.
pub async fn run_all<S: Store + ?Sized>(store: &S, prefix: &str) {
    create_then_get(store, &format!("{prefix}/create-get/")).await;
    create_existing_is_rejected(store, &format!("{prefix}/create-existing/")).await;
    missing_key(store, &format!("{prefix}/missing/")).await;
    update_with_revision(store, &format!("{prefix}/update/")).await;
    delete_with_preconditions(store, &format!("{prefix}/delete/")).await;
    revisions_increase(store, &format!("{prefix}/revisions/")).await;
    list_prefix_and_pages(store, &format!("{prefix}/list/")).await;
    watch_delivers_changes_in_order(store, &format!("{prefix}/watch/")).await;
    fenced_writes_need_the_current_leadership(store, &format!("{prefix}/fenced/")).await;
    invalid_input(store).await;
}

/// Cases that need `'static` access from several tasks.
pub async fn run_concurrent<S: Store>(store: Arc<S>, prefix: &str) {
    concurrent_cas_has_one_winner(store.clone(), &format!("{prefix}/cas-race/")).await;
    watch_sees_every_acknowledged_write(store, &format!("{prefix}/watch-all/")).await;
}

async fn create_then_get<S: Store + ?Sized>(s: &S, p: &str) {
    let key = format!("{p}a");
    let rec = s.create(&key, b"v1".to_vec(), "uid-1").await.expect("create");
    assert_eq!(rec.key, key, "create returns the key");
    assert_eq!(rec.value, &b"v1"[..], "create returns the value");
    assert!(rec.revision > 0, "create assigns a revision");
    assert_eq!(rec.create_revision, rec.revision, "create_revision of a new object");
    assert_eq!(rec.uid, "uid-1");
    let got = s.get(&key, Consistency::Linearizable).await.expect("get").expect("present");
    assert_eq!(got, rec, "linearizable get returns what create returned");
    let local = wait_local(s, &key, rec.revision).await;
    assert_eq!(local, rec, "local get converges to the same record");
}

async fn wait_local<S: Store + ?Sized>(s: &S, key: &str, revision: u64) -> crate::Record {
    let deadline = tokio::time::Instant::now() + WATCH_WAIT;
    loop {
        if let Some(r) = s.get(key, Consistency::Local).await.expect("local get") {
            if r.revision >= revision {
                return r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "local read of {key} never reached revision {revision}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_existing_is_rejected<S: Store + ?Sized>(s: &S, p: &str) {
    let key = format!("{p}a");
    let first = s.create(&key, b"one".to_vec(), "u1").await.expect("create");
    let err = s.create(&key, b"two".to_vec(), "u2").await.expect_err("second create must fail");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "got {err:?}");
    let got = s.get(&key, Consistency::Linearizable).await.expect("get").expect("present");
    assert_eq!(got, first, "a rejected create changes nothing");
}

async fn missing_key<S: Store + ?Sized>(s: &S, p: &str) {
    let key = format!("{p}nothing");
    assert_eq!(s.get(&key, Consistency::Linearizable).await.expect("get"), None);
    let err = s.update(&key, vec![], Precondition::none()).await.expect_err("update of a missing key");
    assert!(matches!(err, StoreError::NotFound { .. }), "got {err:?}");
    let err = s.delete(&key, Precondition::none()).await.expect_err("delete of a missing key");
    assert!(matches!(err, StoreError::NotFound { .. }), "got {err:?}");
}

async fn update_with_revision<S: Store + ?Sized>(s: &S, p: &str) {
    let key = format!("{p}a");
    let v1 = s.create(&key, b"1".to_vec(), "u").await.expect("create");
    let v2 = s.update(&key, b"2".to_vec(), Precondition::revision(v1.revision)).await.expect("cas update");
    assert!(v2.revision > v1.revision, "update moves the revision forward");
    assert_eq!(v2.create_revision, v1.create_revision, "update keeps create_revision");
    assert_eq!(v2.uid, v1.uid, "update keeps the uid");
    let err = s.update(&key, b"3".to_vec(), Precondition::revision(v1.revision)).await.expect_err("stale revision");
    assert!(matches!(err, StoreError::Conflict { .. }), "got {err:?}");
    let got = s.get(&key, Consistency::Linearizable).await.expect("get").expect("present");
    assert_eq!(got, v2, "a conflicting update changes nothing");
    let v3 = s.update(&key, b"3".to_vec(), Precondition::none()).await.expect("unconditional update");
    assert!(v3.revision > v2.revision);
    assert_eq!(v3.value, &b"3"[..]);
}

async fn delete_with_preconditions<S: Store + ?Sized>(s: &S, p: &str) {
    let key = format!("{p}a");
    let v1 = s.create(&key, b"x".to_vec(), "uid-a").await.expect("create");
    let wrong_uid = Precondition { revision: None, uid: Some("uid-b".into()) };
    let err = s.delete(&key, wrong_uid).await.expect_err("wrong uid");
    assert!(matches!(err, StoreError::Conflict { .. }), "got {err:?}");
    let err = s.delete(&key, Precondition::revision(v1.revision + 1000)).await.expect_err("wrong revision");
    assert!(matches!(err, StoreError::Conflict { .. }), "got {err:?}");
    assert!(s.get(&key, Consistency::Linearizable).await.expect("get").is_some(), "failed deletes change nothing");
    let right = Precondition { revision: Some(v1.revision), uid: Some("uid-a".into()) };
    let gone = s.delete(&key, right).await.expect("delete");
    assert!(gone.revision > v1.revision, "a delete gets its own revision");
    assert_eq!(gone.value, &b"x"[..], "delete returns the last value");
    assert_eq!(s.get(&key, Consistency::Linearizable).await.expect("get"), None);
    let again = s.create(&key, b"y".to_vec(), "uid-c").await.expect("re-create after delete");
    assert!(again.create_revision > gone.revision, "a new incarnation has a new create_revision");
}

async fn revisions_increase<S: Store + ?Sized>(s: &S, p: &str) {
    let mut last = s.current_revision(Consistency::Linearizable).await.expect("current revision");
    for i in 0..10 {
        let r = s.create(&format!("{p}{i}"), vec![i], "u").await.expect("create");
        assert!(r.revision > last, "revision {} after {last}", r.revision);
        last = r.revision;
    }
    let now = s.current_revision(Consistency::Linearizable).await.expect("current revision");
    assert!(now >= last, "current revision {now} is behind an acknowledged write {last}");
}

async fn list_prefix_and_pages<S: Store + ?Sized>(s: &S, p: &str) {
    let dir = format!("{p}items/");
    for name in ["e", "a", "c", "b", "d"] {
        s.create(&format!("{dir}{name}"), name.as_bytes().to_vec(), "u").await.expect("create");
    }
    s.create(&format!("{p}items-other"), vec![], "u").await.expect("create sibling");
    let all = s.list(&dir, ListOptions::default()).await.expect("list");
    let keys: Vec<_> = all.items.iter().map(|r| r.key.trim_start_matches(&dir).to_string()).collect();
    assert_eq!(keys, ["a", "b", "c", "d", "e"], "list is in key order and respects the prefix");
    assert!(all.continue_after.is_none());
    let max_rev = all.items.iter().map(|r| r.revision).max().unwrap_or(0);
    assert!(all.revision >= max_rev, "list revision covers its items");

    let mut seen = Vec::new();
    let mut options = ListOptions { limit: Some(2), ..ListOptions::default() };
    let mut pages = 0;
    loop {
        let page = s.list(&dir, options.clone()).await.expect("page");
        assert!(page.items.len() <= 2, "limit is honoured");
        pages += 1;
        seen.extend(page.items.iter().map(|r| r.key.clone()));
        match page.continue_after {
            Some(c) => options.continue_after = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert_eq!(pages, 3, "5 items in pages of 2");
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 5, "every item exactly once across pages: {seen:?}");
    let local = s.list(&dir, ListOptions { consistency: Consistency::Local, ..ListOptions::default() }).await;
    assert!(local.is_ok(), "local list works");
}

async fn next_event(w: &mut WatchStream) -> crate::Event {
    loop {
        match tokio::time::timeout(WATCH_WAIT, w.next()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => return e,
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            other => panic!("expected a watch event, got {other:?}"),
        }
    }
}

async fn watch_delivers_changes_in_order<S: Store + ?Sized>(s: &S, p: &str) {
    let start = s.current_revision(Consistency::Linearizable).await.expect("revision");
    let key = format!("{p}k");
    let c = s.create(&key, b"1".to_vec(), "u").await.expect("create");
    let u = s.update(&key, b"2".to_vec(), Precondition::revision(c.revision)).await.expect("update");
    let outside = format!("{}-outside", p.trim_end_matches('/'));
    s.create(&outside, vec![], "u").await.expect("create outside the prefix");
    let d = s.delete(&key, Precondition::none()).await.expect("delete");

    // Replay from before the changes.
    let mut w = s.watch(p, start).await.expect("watch");
    let e1 = next_event(&mut w).await;
    assert_eq!((e1.kind, e1.revision(), e1.record.value.as_ref()), (EventKind::Created, c.revision, &b"1"[..]));
    let e2 = next_event(&mut w).await;
    assert_eq!((e2.kind, e2.revision(), e2.record.value.as_ref()), (EventKind::Updated, u.revision, &b"2"[..]));
    let e3 = next_event(&mut w).await;
    assert_eq!((e3.kind, e3.revision()), (EventKind::Deleted, d.revision));

    // Resume from the middle: only later events.
    let mut w2 = s.watch(p, u.revision).await.expect("watch from middle");
    assert_eq!(next_event(&mut w2).await.revision(), d.revision);

    // Live events after the watch starts.
    let c2 = s.create(&key, b"3".to_vec(), "u2").await.expect("create again");
    assert_eq!(next_event(&mut w).await.revision(), c2.revision);
    assert_eq!(next_event(&mut w2).await.revision(), c2.revision);
}

async fn fenced_writes_need_the_current_leadership<S: Store + ?Sized>(s: &S, p: &str) {
    let token = s.fence_token().await.expect("fence token").expect("the store under test has a leadership");
    let key = format!("{p}k");
    let create = |key: &str| Write::Create { key: key.to_string(), value: b"1".to_vec(), uid: "u".into() };
    let created = s.write_fenced(token, create(&key)).await.expect("fenced create with the current token");
    let update = |revision| Write::Update {
        key: key.clone(),
        value: b"2".to_vec(),
        precondition: Precondition::revision(revision),
    };
    let updated = s.write_fenced(token, update(created.revision)).await.expect("fenced update");
    // Any other leadership's token changes nothing, whatever the write.
    let other = format!("{p}other");
    for stale in [token + 1, token.wrapping_sub(1)] {
        let err = s.write_fenced(stale, update(updated.revision)).await.expect_err("stale token");
        assert!(matches!(err, StoreError::Fenced { .. }), "got {err:?}");
        let err = s.write_fenced(stale, create(&other)).await.expect_err("stale token");
        assert!(matches!(err, StoreError::Fenced { .. }), "got {err:?}");
        let err = s
            .write_fenced(stale, Write::Delete { key: key.clone(), precondition: Precondition::none() })
            .await
            .expect_err("stale token");
        assert!(matches!(err, StoreError::Fenced { .. }), "got {err:?}");
    }
    assert!(s.get(&other, Consistency::Linearizable).await.expect("get").is_none(), "a fenced-off create was written");
    let current = s.get(&key, Consistency::Linearizable).await.expect("get").expect("present");
    assert_eq!((current.revision, current.value.as_ref()), (updated.revision, &b"2"[..]));
    // The usual rules still hold under a fence.
    let err = s.write_fenced(token, update(created.revision)).await.expect_err("stale revision");
    assert!(matches!(err, StoreError::Conflict { .. }), "got {err:?}");
    let err = s.write_fenced(token, create(&key)).await.expect_err("existing key");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "got {err:?}");
    s.write_fenced(token, Write::Delete { key: key.clone(), precondition: Precondition::revision(updated.revision) })
        .await
        .expect("fenced delete");
    assert!(s.get(&key, Consistency::Linearizable).await.expect("get").is_none());
}

async fn invalid_input<S: Store + ?Sized>(s: &S) {
    let err = s.create("", vec![], "u").await.expect_err("empty key");
    assert!(matches!(err, StoreError::Invalid(_)), "got {err:?}");
}

async fn concurrent_cas_has_one_winner<S: Store>(s: Arc<S>, p: &str) {
    let key = format!("{p}k");
    let base = s.create(&key, b"0".to_vec(), "u").await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let s = s.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move { s.update(&key, vec![i], Precondition::revision(base.revision)).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one compare-and-swap wins");
}

async fn watch_sees_every_acknowledged_write<S: Store>(s: Arc<S>, p: &str) {
    let start = s.current_revision(Consistency::Linearizable).await.expect("revision");
    let mut w = s.watch(p, start).await.expect("watch");
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        let p = p.to_string();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..25 {
                let r = s.create(&format!("{p}{t}-{i}"), vec![], "u").await.expect("create");
                revs.push(r.revision);
            }
            revs
        }));
    }
    let mut acked = BTreeSet::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    let mut seen = Vec::new();
    while seen.len() < acked.len() {
        seen.push(next_event(&mut w).await.revision());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "watch events are strictly ordered: {seen:?}");
    let seen_set: BTreeSet<_> = seen.into_iter().collect();
    assert_eq!(seen_set, acked, "watch delivered exactly the acknowledged writes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    #[tokio::test]
    async fn mem_store_passes_concurrent_cases() {
        run_concurrent(Arc::new(MemStore::new()), "c").await;
    }
}
