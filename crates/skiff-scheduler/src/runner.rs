//! The loop around the decision core: while this server leads, find pods waiting for a node,
//! decide with [`crate::schedule`], and bind them through the API's `pods/binding`. This is the
//! only module of the crate that does I/O.
//!
//! Every write carries the leadership's fencing token (`docs/fencing.md`), so a scheduler that
//! was deposed while paused cannot bind anything when it wakes. Between passes the loop asks the
//! store for the token again; a pass with a token that has ended fails its writes with 409 and
//! the next pass finds no token.
//!
//! Nodes and pods come from caches kept by list and watch ([`skiff_client::Reflector`]) on
//! every server, so a pass reads no more than what changed since the last list. A pass runs
//! when either cache changes, and at least every `retry` otherwise, so a pod left unschedulable
//! is looked at again when anything changes and periodically. A pod's `FailedScheduling` event
//! and `PodScheduled=False` condition are written once per distinct message, not on every pass.
//!
//! A pass decides for every waiting pod first, each decision counting the pods placed before it
//! (upstream's "assume"), then binds them all concurrently: one `pods/binding` write (which also
//! sets `PodScheduled=True`) per pod, and one `Scheduled` event written beside it. A pod that fits nowhere waits
//! before it is tried again, as upstream's queue makes it: until the cluster changes (a node, or
//! the set of bound pods) and its back-off (1 s, doubling to 10 s) has passed, or at most 5
//! minutes.

use std::collections::HashMap;
use std::hash::Hash;
use std::hash::Hasher;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use futures::StreamExt;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientError;
use skiff_client::Reflector;
use skiff_store::Store;

use crate::Decision;
use crate::Snapshot;

/// The scheduler names pods may ask for in `spec.schedulerName` (empty means the default).
pub const SCHEDULER_NAMES: &[&str] = &["default-scheduler", "skiff"];

/// What the loop needs: the API to act through, and the store to ask whether this server leads.
pub struct Runner {
    pub client: Client,
    pub leadership: Arc<dyn Store>,
    /// The longest wait between passes when nothing changes (leadership is checked as often).
    pub retry: Duration,
}

impl Runner {
    /// Runs until the task is dropped: waits for leadership, schedules while it lasts.
    pub async fn run(self) {
        let leadership = self.leadership.clone();
        skiff_store::leadership::run_while_leading(leadership, LEADERSHIP_POLL, |term| self.lead(term)).await;
    }

    /// Schedules while the leadership of `term` lasts. The caches exist only here, so followers
    /// pay nothing for them; pods are not watched while there is no node to put them on.
    async fn lead(&self, term: u64) {
        tracing::info!(term, "scheduler active");
        let client = self.client.fenced(term);
        // Nobody here reads managedFields, and dropped they no longer take cache memory.
        let nodes =
            Reflector::<Node>::start_typed(self.client.clone(), "/api/v1/nodes", |n| n.metadata.managed_fields = None);
        let mut pods: Option<Reflector<Pod>> = None;
        let mut announced: HashMap<String, String> = HashMap::new();
        let mut backoff: HashMap<String, Backoff> = HashMap::new();
        loop {
            match &pods {
                Some(pods) => tokio::select! {
                    _ = nodes.changed() => {}
                    _ = pods.changed() => {}
                    _ = tokio::time::sleep(self.retry) => {}
                },
                None => tokio::select! {
                    _ = nodes.changed() => {}
                    _ = tokio::time::sleep(LEADERSHIP_POLL) => {}
                },
            }
            let node_list = nodes.shared();
            if node_list.is_empty() {
                continue;
            }
            let pods = pods.get_or_insert_with(|| {
                Reflector::start_typed(self.client.clone(), "/api/v1/pods", |p| p.metadata.managed_fields = None)
            });
            if !nodes.synced() || !pods.synced() {
                continue;
            }
            let snapshot = Snapshot { nodes: node_list, pods: pods.shared() };
            let cluster = fingerprint(nodes.revision(), &snapshot);
            if let Err(e) = pass(&client, snapshot, &mut announced, &mut backoff, cluster).await {
                tracing::debug!(term, "scheduling pass: {e}");
            }
        }
    }
}

/// How often a server that does not lead checks whether it does now.
const LEADERSHIP_POLL: Duration = Duration::from_millis(50);

fn waiting(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let ours = spec.scheduler_name.as_deref().is_none_or(|name| name.is_empty() || SCHEDULER_NAMES.contains(&name));
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    ours && spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, "Succeeded" | "Failed")
}

/// When a pod that fit nowhere is tried again.
struct Backoff {
    /// Failed attempts so far.
    attempts: u32,
    /// The earliest next attempt.
    until: Instant,
    /// The latest next attempt, even if nothing changes.
    at_most: Instant,
    /// The cluster as it was at the failure (see [`fingerprint`]).
    cluster: u64,
}

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_UNSCHEDULABLE_WAIT: Duration = Duration::from_secs(300);
/// Bindings carried out at once (64 bound 1 000-1 050 pods/s in the 1 000-node benchmark, 128
/// bound 1 215-1 249/s: more writes share each Raft batch).
const PARALLEL_BINDS: usize = 128;
/// Pods decided per pass; the rest wait for the next pass, so bindings start flowing early.
const MAX_DECISIONS_PER_PASS: usize = 1_000;

impl Backoff {
    fn after_failure(previous: Option<&Backoff>, cluster: u64, now: Instant) -> Self {
        let attempts = previous.map_or(1, |b| b.attempts.saturating_add(1));
        let wait = INITIAL_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(4)).min(MAX_BACKOFF);
        Self { attempts, until: now + wait, at_most: now + MAX_UNSCHEDULABLE_WAIT, cluster }
    }

    fn ready(&self, cluster: u64, now: Instant) -> bool {
        now >= self.at_most || (now >= self.until && cluster != self.cluster)
    }
}

/// What a waiting pod's fit depends on, in one number (FNV: this runs over every pod each pass): the nodes' revision and which pods are
/// bound where. When it changes, pods that fit nowhere may fit now.
fn fingerprint(nodes_revision: u64, snapshot: &Snapshot) -> u64 {
    let mut bound: u64 = 0;
    for pod in &snapshot.pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
        if node.is_empty() {
            continue;
        }
        let mut h = fnv::FnvHasher::default();
        (pod.metadata.uid.as_deref(), node).hash(&mut h);
        bound ^= h.finish();
    }
    let mut h = fnv::FnvHasher::default();
    (nodes_revision, bound).hash(&mut h);
    h.finish()
}

/// One look at the cluster: every waiting pod, oldest first, is placed or explained; then the
/// placements are bound concurrently.
async fn pass(
    client: &Client,
    snapshot: Snapshot,
    announced: &mut HashMap<String, String>,
    backoff: &mut HashMap<String, Backoff>,
    cluster: u64,
) -> Result<(), ClientError> {
    let mut pending: Vec<Arc<Pod>> = snapshot.pods.iter().filter(|p| waiting(p)).cloned().collect();
    backoff.retain(|uid, _| pending.iter().any(|p| p.metadata.uid.as_deref() == Some(uid)));
    if pending.is_empty() {
        return Ok(());
    }
    let now = Instant::now();
    pending.retain(|p| backoff.get(p.metadata.uid.as_deref().unwrap_or("")).is_none_or(|b| b.ready(cluster, now)));
    pending.sort_by(|a, b| {
        (a.metadata.creation_timestamp.as_ref().map(|t| t.0), &a.metadata.name)
            .cmp(&(b.metadata.creation_timestamp.as_ref().map(|t| t.0), &b.metadata.name))
    });
    pending.truncate(MAX_DECISIONS_PER_PASS);
    // Deciding is CPU work proportional to pending pods × nodes: it runs on the blocking pool,
    // so the runtime's workers (Raft heartbeats among them) are never held up by it.
    let (pending, decisions) = tokio::task::spawn_blocking(move || {
        let decisions = crate::schedule_all(&pending, &snapshot);
        (pending, decisions)
    })
    .await
    .map_err(|e| ClientError::Transport(format!("scheduling pass: {e}")))?;
    let mut placed: Vec<(Arc<Pod>, String)> = Vec::new();
    for (pod, decision) in pending.into_iter().zip(decisions) {
        let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else { continue };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match decision {
            Decision::Bind { node, .. } => placed.push((pod, node)),
            Decision::Unschedulable { message, reasons } => {
                let next = Backoff::after_failure(backoff.get(&uid), cluster, now);
                backoff.insert(uid.clone(), next);
                // No node examined (none registered): nothing worth announcing yet.
                if (reasons.is_empty() && message.starts_with("0/0 ")) || announced.get(&uid) == Some(&message) {
                    continue;
                }
                announce_unschedulable(client, &pod, &ns, &name, &message).await?;
                announced.insert(uid, message);
            }
        }
    }
    // Built eagerly, each future owning what it needs, so the pass stays `Send`.
    let binds: Vec<_> = placed.into_iter().map(|(pod, node)| bind_and_announce(client.clone(), pod, node)).collect();
    let outcomes: Vec<Result<String, ClientError>> =
        futures::stream::iter(binds).buffer_unordered(PARALLEL_BINDS).collect().await;
    let mut failure = None;
    for outcome in outcomes {
        match outcome {
            Ok(uid) => {
                announced.remove(&uid);
            }
            // Someone bound it meanwhile (or our leadership ended): the next pass sees.
            Err(e) if e.is_conflict() || e.is_not_found() => {}
            Err(e) => failure = Some(e),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Binds one pod and records its `Scheduled` event; answers the pod's uid.
async fn bind_and_announce(client: Client, pod: Arc<Pod>, node: String) -> Result<String, ClientError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    bind(&client, &ns, &name, &node).await?;
    tracing::info!(pod = %format!("{ns}/{name}"), %node, "bound");
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    // The event is written on the side, as upstream's event broadcaster does: the next binding
    // does not wait for it.
    let message = format!("Successfully assigned {ns}/{name} to {node}");
    tokio::spawn(async move { event(&client, &pod, "Normal", "Scheduled", &message).await });
    Ok(uid)
}

async fn bind(client: &Client, ns: &str, name: &str, node: &str) -> Result<(), ClientError> {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    // The binding sets PodScheduled=True too, as upstream's does.
    let _: Value = client.create(&format!("/api/v1/namespaces/{ns}/pods/{name}/binding"), &binding).await?;
    Ok(())
}

async fn announce_unschedulable(
    client: &Client,
    pod: &Pod,
    ns: &str,
    name: &str,
    message: &str,
) -> Result<(), ClientError> {
    let condition = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": message, "lastTransitionTime": now()}]}});
    let patched: Result<Value, _> =
        client.patch_strategic(&format!("/api/v1/namespaces/{ns}/pods/{name}/status"), &condition).await;
    match patched {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    }
    event(client, pod, "Warning", "FailedScheduling", message).await;
    Ok(())
}

/// Records a core/v1 Event about `pod`; losing one is not worth failing the pass for.
async fn event(client: &Client, pod: &Pod, kind: &str, reason: &str, message: &str) {
    let regarding = json!({"apiVersion": "v1", "kind": "Pod", "namespace": pod.metadata.namespace,
        "name": pod.metadata.name, "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version});
    if let Err(e) = client.record_event(&regarding, "default-scheduler", kind, reason, message).await {
        tracing::debug!(pod = ?pod.metadata.name, reason, "event not recorded: {e}");
    }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds_and_waits_for_a_change() {
        let t0 = Instant::now();
        let first = Backoff::after_failure(None, 7, t0);
        assert_eq!(first.until - t0, Duration::from_secs(1));
        assert!(!first.ready(8, t0), "the back-off is honoured even after a change");
        assert!(!first.ready(7, t0 + Duration::from_secs(2)), "nothing changed");
        assert!(first.ready(8, t0 + Duration::from_secs(1)), "changed and backed off");
        assert!(first.ready(7, t0 + MAX_UNSCHEDULABLE_WAIT), "tried again at the latest after five minutes");
        let mut b = first;
        let mut waits = Vec::new();
        for _ in 0..6 {
            b = Backoff::after_failure(Some(&b), 7, t0);
            waits.push((b.until - t0).as_secs());
        }
        assert_eq!(waits, vec![2, 4, 8, 10, 10, 10]);
    }

    #[test]
    fn the_fingerprint_follows_nodes_and_bound_pods() {
        let pod = |uid: &str, node: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"uid": uid}, "spec": {"containers": [], "nodeName": node}}))
                .expect("fixture")
        };
        let snapshot = |pods: Vec<Pod>| Snapshot::of(Vec::new(), pods);
        let base = fingerprint(5, &snapshot(vec![pod("a", "n1"), pod("b", "")]));
        assert_eq!(base, fingerprint(5, &snapshot(vec![pod("b", ""), pod("a", "n1")])), "order does not matter");
        assert_ne!(base, fingerprint(6, &snapshot(vec![pod("a", "n1"), pod("b", "")])), "a node changed");
        assert_ne!(base, fingerprint(5, &snapshot(vec![pod("a", "n1"), pod("b", "n2")])), "a pod was bound");
        assert_ne!(base, fingerprint(5, &snapshot(vec![pod("b", "")])), "a bound pod went away");
    }
}
