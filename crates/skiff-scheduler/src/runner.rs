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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientError;
use skiff_client::Reflector;
use skiff_store::Store;

use crate::schedule;
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
        let nodes = Reflector::<Node>::start(self.client.clone(), "/api/v1/nodes");
        let mut pods: Option<Reflector<Pod>> = None;
        let mut announced: HashMap<String, String> = HashMap::new();
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
            let node_list = nodes.snapshot();
            if node_list.is_empty() {
                continue;
            }
            let pods = pods.get_or_insert_with(|| Reflector::start(self.client.clone(), "/api/v1/pods"));
            if !nodes.synced() || !pods.synced() {
                continue;
            }
            let snapshot = Snapshot { nodes: node_list, pods: pods.snapshot() };
            if let Err(e) = pass(&client, snapshot, &mut announced).await {
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

/// One look at the cluster: every waiting pod, oldest first, is bound or explained.
async fn pass(
    client: &Client,
    mut snapshot: Snapshot,
    announced: &mut HashMap<String, String>,
) -> Result<(), ClientError> {
    let mut pending: Vec<Pod> = snapshot.pods.iter().filter(|p| waiting(p)).cloned().collect();
    if pending.is_empty() {
        return Ok(());
    }
    pending.sort_by(|a, b| {
        (a.metadata.creation_timestamp.as_ref().map(|t| t.0), &a.metadata.name)
            .cmp(&(b.metadata.creation_timestamp.as_ref().map(|t| t.0), &b.metadata.name))
    });
    for pod in pending {
        let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else { continue };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match schedule(&pod, &snapshot) {
            Decision::Bind { node, .. } => match bind(client, &ns, &name, &node).await {
                Ok(()) => {
                    announced.remove(&uid);
                    if let Some(bound) = snapshot.pods.iter_mut().find(|p| p.metadata.uid.as_deref() == Some(&uid)) {
                        if let Some(spec) = bound.spec.as_mut() {
                            spec.node_name = Some(node.clone());
                        }
                    }
                    let message = format!("Successfully assigned {ns}/{name} to {node}");
                    event(client, &pod, "Normal", "Scheduled", &message).await;
                    tracing::info!(pod = %format!("{ns}/{name}"), %node, "bound");
                }
                // Someone bound it meanwhile (or our leadership ended): the next pass sees.
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(e),
            },
            Decision::Unschedulable { message, .. } => {
                if snapshot.nodes.is_empty() || announced.get(&uid) == Some(&message) {
                    continue;
                }
                announce_unschedulable(client, &pod, &ns, &name, &message).await?;
                announced.insert(uid, message);
            }
        }
    }
    Ok(())
}

async fn bind(client: &Client, ns: &str, name: &str, node: &str) -> Result<(), ClientError> {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let _: Value = client.create(&format!("/api/v1/namespaces/{ns}/pods/{name}/binding"), &binding).await?;
    let condition = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True",
        "lastTransitionTime": now()}]}});
    let _: Value = client.patch_strategic(&format!("/api/v1/namespaces/{ns}/pods/{name}/status"), &condition).await?;
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
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let stamp = now();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let body = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
            "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version},
        "reason": reason, "message": message, "type": kind, "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": "default-scheduler"},
        "reportingComponent": "default-scheduler", "reportingInstance": "skiff"});
    let created: Result<Value, _> = client.create(&format!("/api/v1/namespaces/{ns}/events"), &body).await;
    if let Err(e) = created {
        tracing::debug!(pod = %format!("{ns}/{name}"), reason, "event not recorded: {e}");
    }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
