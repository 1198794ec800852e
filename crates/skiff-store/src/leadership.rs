//! Running leader-only work: a task that exists exactly while this process holds the store's
//! leadership ([`Store::fence_token`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::Store;

/// Runs `lead(token)` each time this process gains the leadership, and cancels it (drops the
/// future) within `poll` of the token changing or going away. Never returns.
///
/// Cancellation is prompt but not the safety net: `lead` must still send `token` with every
/// write ([`Store::write_fenced`], or the API's `X-Skiff-Fence` header), so that whatever it
/// does after its leadership ended, before being cancelled, is refused by the store.
pub async fn run_while_leading<F, Fut>(store: Arc<dyn Store>, poll: Duration, mut lead: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if let Ok(Some(token)) = store.fence_token().await {
            let ended = async {
                loop {
                    tokio::time::sleep(poll).await;
                    if store.fence_token().await.ok().flatten() != Some(token) {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = lead(token) => {}
                _ = ended => tracing::info!(token, "leadership ended; leader-only work stopped"),
            }
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::MemStore;

    #[tokio::test]
    async fn work_runs_with_each_leadership_and_stops_when_it_ends() {
        let store = Arc::new(MemStore::new());
        let started = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicU64::new(0));
        let (s, r) = (started.clone(), running.clone());
        let task = tokio::spawn(run_while_leading(store.clone(), Duration::from_millis(5), move |token| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.store(token, Ordering::SeqCst);
                r.store(token, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1, "started with the first leadership");
        store.step_down();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(started.load(Ordering::SeqCst), 2, "restarted with the next leadership's token");
        task.abort();
    }
}
