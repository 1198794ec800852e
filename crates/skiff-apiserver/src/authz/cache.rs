//! Every API server's own view of the cluster's RBAC objects: listed once, then kept current by
//! a watch of the store, and rebuilt into an [`rbac::Snapshot`] on every change.
//!
//! Like upstream's informer-fed authorizer, the view may trail a just-written binding by the time
//! the watch takes to deliver it (milliseconds). Until the first list has been read, requests
//! wait for it a few seconds and are then refused, never allowed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::RwLock;
use serde_json::Value;
use skiff_api_types::registry;
use skiff_store::EventKind;
use skiff_store::ListOptions;
use skiff_store::StoreError;
use skiff_store::WatchItem;
use tokio::sync::Notify;

use super::rbac;
use crate::state::ApiState;

/// How long a request waits for the first sync before it is refused.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(5);

/// The latest RBAC snapshot (`None` until the first list).
#[derive(Debug, Default)]
pub struct RbacCache {
    current: RwLock<Option<Arc<rbac::Snapshot>>>,
    synced: Notify,
}

impl RbacCache {
    /// The current snapshot, waiting a little for the first one.
    pub async fn snapshot(&self) -> Option<Arc<rbac::Snapshot>> {
        let deadline = tokio::time::Instant::now() + FIRST_SYNC_WAIT;
        loop {
            let notified = self.synced.notified();
            if let Some(s) = self.current.read().clone() {
                return Some(s);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// The current snapshot, without waiting.
    pub fn now(&self) -> Option<Arc<rbac::Snapshot>> {
        self.current.read().clone()
    }

    fn set(&self, snapshot: rbac::Snapshot) {
        *self.current.write() = Some(Arc::new(snapshot));
        self.synced.notify_waiters();
    }
}

/// The four RBAC resources, by plural.
const KINDS: [&str; 4] = ["clusterroles", "roles", "clusterrolebindings", "rolebindings"];

/// The store prefix all RBAC objects live under.
fn group_prefix() -> Option<String> {
    let roles = registry::find("rbac.authorization.k8s.io", "v1", "roles")?;
    roles.key_prefix().strip_suffix("roles/").map(str::to_string)
}

/// Keeps `state.authorizer.rbac` current for as long as the server runs.
pub async fn run(state: Arc<ApiState>) {
    let Some(prefix) = group_prefix() else {
        tracing::error!("no RBAC resources in the registry; every non-admin request will be refused");
        return;
    };
    loop {
        if let Err(e) = follow(&state, &prefix).await {
            tracing::debug!("RBAC cache: {e}; listing again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn follow(state: &ApiState, prefix: &str) -> Result<(), StoreError> {
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let page = state.store.list(prefix, ListOptions::default()).await?;
    for record in page.items {
        if let Ok(v) = serde_json::from_slice(&record.value) {
            objects.insert(record.key, v);
        }
    }
    state.authorizer.rbac.set(build(prefix, &objects));
    let mut watch = state.store.watch(prefix, page.revision).await?;
    while let Some(item) = watch.next().await {
        let WatchItem::Event(event) = item? else { continue };
        let key = event.record.key;
        match event.kind {
            EventKind::Deleted => {
                objects.remove(&key);
            }
            EventKind::Created | EventKind::Updated => match serde_json::from_slice(&event.record.value) {
                Ok(v) => {
                    objects.insert(key, v);
                }
                Err(_) => {
                    objects.remove(&key);
                }
            },
        }
        state.authorizer.rbac.set(build(prefix, &objects));
    }
    Err(StoreError::Internal("the RBAC watch ended".into()))
}

fn build(prefix: &str, objects: &BTreeMap<String, Value>) -> rbac::Snapshot {
    let mut by_kind: BTreeMap<&str, Vec<Value>> = KINDS.iter().map(|k| (*k, Vec::new())).collect();
    for (key, value) in objects {
        let kind = key.strip_prefix(prefix).and_then(|rest| rest.split('/').next()).unwrap_or("");
        if let Some(list) = by_kind.get_mut(kind) {
            list.push(value.clone());
        }
    }
    let get = |k: &str| by_kind.get(k).map(Vec::as_slice).unwrap_or_default();
    rbac::Snapshot::build(get("clusterroles"), get("roles"), get("clusterrolebindings"), get("rolebindings"))
}
