//! One look at the whole runtime per second instead of one per pod: the relister lists every
//! sandbox and container of the node (two CRI calls), and wakes the workers of the pods whose
//! runtime state changed (upstream's "pod lifecycle event generator"). A worker with nothing to
//! watch for (no probes, no pending retry) then sleeps until its pod, or its containers, change.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::Hasher as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio::sync::Notify;

use crate::cri::Cri;
use crate::cri::LABEL_POD_UID;

/// How often the runtime is listed.
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// A fingerprint of each pod's sandboxes and containers (ids and states), by pod uid.
pub fn fingerprints(sandboxes: &[cri::PodSandbox], containers: &[cri::Container]) -> BTreeMap<String, u64> {
    let mut parts: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for s in sandboxes {
        if let Some(uid) = s.labels.get(LABEL_POD_UID) {
            parts.entry(uid.clone()).or_default().push((s.id.clone(), s.state));
        }
    }
    for c in containers {
        if let Some(uid) = c.labels.get(LABEL_POD_UID) {
            parts.entry(uid.clone()).or_default().push((c.id.clone(), c.state + 10));
        }
    }
    parts
        .into_iter()
        .map(|(uid, mut items)| {
            items.sort();
            let mut hasher = fnv::FnvHasher::default();
            for (id, state) in items {
                hasher.write(id.as_bytes());
                hasher.write_i32(state);
            }
            (uid, hasher.finish())
        })
        .collect()
}

/// The uids whose fingerprint differs between two listings (appeared, changed or vanished).
pub fn changed(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    let mut out: Vec<String> =
        after.iter().filter(|(uid, fp)| before.get(*uid) != Some(fp)).map(|(u, _)| u.clone()).collect();
    out.extend(before.keys().filter(|uid| !after.contains_key(*uid)).cloned());
    out
}

/// Workers register here to be woken when their pod's runtime state changes.
#[derive(Default)]
pub struct Relister {
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Relister {
    /// The notification a worker of `uid` waits on (a change before the wait still counts).
    pub fn register(&self, uid: &str) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.entry(uid.to_string()).or_default().clone()
    }

    pub fn unregister(&self, uid: &str) {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }

    /// Lists the runtime every [`RELIST_PERIOD`] and wakes the workers of changed pods.
    pub async fn run(self: Arc<Self>, mut cri: Cri) {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            tokio::time::sleep(RELIST_PERIOD).await;
            let (Ok(sandboxes), Ok(containers)) = (cri.list_sandboxes(None).await, cri.list_containers(None).await)
            else {
                continue;
            };
            let now = fingerprints(&sandboxes, &containers);
            let wake = changed(&last, &now);
            if !wake.is_empty() {
                let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
                for uid in &wake {
                    if let Some(waker) = wakers.get(uid) {
                        waker.notify_one();
                    }
                }
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn container(id: &str, uid: &str, state: cri::ContainerState) -> cri::Container {
        cri::Container {
            id: id.into(),
            state: state as i32,
            labels: HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())]),
            ..Default::default()
        }
    }

    #[test]
    fn only_pods_whose_containers_changed_are_woken() {
        let running = cri::ContainerState::ContainerRunning;
        let before = fingerprints(&[], &[container("a1", "pod-a", running), container("b1", "pod-b", running)]);
        let exited = cri::ContainerState::ContainerExited;
        let after = fingerprints(&[], &[container("a1", "pod-a", exited), container("b1", "pod-b", running)]);
        assert_eq!(changed(&before, &after), vec!["pod-a".to_string()]);
        let gone = fingerprints(&[], &[container("a1", "pod-a", exited)]);
        assert_eq!(changed(&after, &gone), vec!["pod-b".to_string()]);
        assert!(changed(&gone, &gone).is_empty());
    }
}
