//! The controller manager: while this server leads, it keeps list+watch caches of everything
//! the controllers read, runs every controller on a [`Snapshot`] of them, and carries out their
//! [`Action`]s through the API with the leadership's fencing token (`docs/fencing.md`).
//!
//! Rounds are serialized, and a round does not start until the caches show every write of the
//! previous round (each write's answer carries the resourceVersion it produced; the cache of
//! that collection must have seen at least that revision). This is what upstream's controllers
//! do with "expectations": without it a cache that lags one write behind makes the ReplicaSet
//! controller create the same missing pod twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::pod::Pod;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::json;
use serde_json::Value;
use skiff_client::Changes;
use skiff_client::Client;
use skiff_client::ClientError;
use skiff_client::Reflector;
use skiff_store::Store;

use crate::Action;
use crate::Config;
use crate::Reconcile;
use crate::Snapshot;

/// Every controller the manager runs, by the name its logs and metrics use.
///
/// A controller added here that acts on pods must act on none that `crate::routine` calls
/// routine, or the manager will leave out the rounds it needs; `routine`'s tests run this list.
pub const CONTROLLERS: &[(&str, Reconcile)] = &[
    ("serviceaccount", crate::serviceaccounts::reconcile),
    ("root-ca-cert-publisher", crate::rootca::reconcile),
    ("ipam", crate::ipam::reconcile),
    ("nodelifecycle", crate::nodelifecycle::reconcile),
    ("deployment", crate::deployment::reconcile),
    ("replicaset", crate::replicaset::reconcile),
    ("endpoints", crate::endpoints::reconcile),
    ("garbagecollector", crate::gc::reconcile),
    ("podgc", crate::podgc::reconcile),
];

/// How the manager runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The controllers' own settings.
    pub config: Config,
    /// The longest time between rounds when nothing changes (time-driven decisions, such as a
    /// node's grace period running out, are noticed this often).
    pub resync: Duration,
    /// How long a round waits for the caches to show its writes before it warns (it waits on).
    pub settle: Duration,
    /// Writes carried out at once.
    pub parallel_writes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config: Config::default(),
            resync: Duration::from_secs(1),
            settle: Duration::from_secs(5),
            parallel_writes: 16,
        }
    }
}

/// Runs the controllers until the task is dropped: only while this server leads, fenced.
pub async fn run(client: Client, leadership: Arc<dyn Store>, settings: Settings) {
    skiff_store::leadership::run_while_leading(leadership, Duration::from_millis(50), |token| {
        lead(client.clone(), token, settings.clone())
    })
    .await;
}

/// The caches, one per collection the controllers read.
struct Caches {
    namespaces: Reflector<k8s_openapi::api::core::v1::Namespace>,
    nodes: Reflector<k8s_openapi::api::core::v1::Node>,
    leases: Reflector<k8s_openapi::api::coordination::v1::Lease>,
    pods: Reflector<Pod>,
    services: Reflector<k8s_openapi::api::core::v1::Service>,
    endpoints: Reflector<k8s_openapi::api::core::v1::Endpoints>,
    endpoint_slices: Reflector<k8s_openapi::api::discovery::v1::EndpointSlice>,
    replica_sets: Reflector<k8s_openapi::api::apps::v1::ReplicaSet>,
    deployments: Reflector<k8s_openapi::api::apps::v1::Deployment>,
    service_accounts: Reflector<k8s_openapi::api::core::v1::ServiceAccount>,
    config_maps: Reflector<k8s_openapi::api::core::v1::ConfigMap>,
    secrets: Reflector<k8s_openapi::api::core::v1::Secret>,
}

impl Caches {
    fn start(client: &Client) -> Self {
        fn cache<T>(client: &Client, path: &str) -> Reflector<T>
        where
            T: DeserializeOwned + Clone + Send + Sync + 'static,
            T: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        {
            Reflector::start_typed(client.clone(), path, |object| object.metadata_mut().managed_fields = None)
        }
        Self {
            namespaces: cache(client, "/api/v1/namespaces"),
            nodes: cache(client, "/api/v1/nodes"),
            leases: cache(client, "/apis/coordination.k8s.io/v1/leases"),
            pods: cache(client, "/api/v1/pods"),
            services: cache(client, "/api/v1/services"),
            endpoints: cache(client, "/api/v1/endpoints"),
            endpoint_slices: cache(client, "/apis/discovery.k8s.io/v1/endpointslices"),
            replica_sets: cache(client, "/apis/apps/v1/replicasets"),
            deployments: cache(client, "/apis/apps/v1/deployments"),
            service_accounts: cache(client, "/api/v1/serviceaccounts"),
            config_maps: cache(client, "/api/v1/configmaps"),
            secrets: cache(client, "/api/v1/secrets"),
        }
    }

    fn synced(&self) -> bool {
        self.namespaces.synced()
            && self.nodes.synced()
            && self.leases.synced()
            && self.pods.synced()
            && self.services.synced()
            && self.endpoints.synced()
            && self.endpoint_slices.synced()
            && self.replica_sets.synced()
            && self.deployments.synced()
            && self.service_accounts.synced()
            && self.config_maps.synced()
            && self.secrets.synced()
    }

    /// Waits until any cache changes.
    async fn changed(&self) {
        tokio::select! {
            _ = self.namespaces.changed() => {}
            _ = self.nodes.changed() => {}
            _ = self.leases.changed() => {}
            _ = self.pods.changed() => {}
            _ = self.services.changed() => {}
            _ = self.endpoints.changed() => {}
            _ = self.endpoint_slices.changed() => {}
            _ = self.replica_sets.changed() => {}
            _ = self.deployments.changed() => {}
            _ = self.service_accounts.changed() => {}
            _ = self.config_maps.changed() => {}
            _ = self.secrets.changed() => {}
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            now: jiff::Timestamp::now(),
            namespaces: self.namespaces.shared(),
            nodes: self.nodes.shared(),
            leases: self.leases.shared(),
            pods: self.pods.shared(),
            services: self.services.shared(),
            endpoints: self.endpoints.shared(),
            endpoint_slices: self.endpoint_slices.shared(),
            replica_sets: self.replica_sets.shared(),
            deployments: self.deployments.shared(),
            service_accounts: self.service_accounts.shared(),
            config_maps: self.config_maps.shared(),
            secrets: self.secrets.shared(),
        }
    }

    /// The revisions every cache but the pods' has seen: when they are unchanged, only pods
    /// changed.
    fn revisions_but_pods(&self) -> [u64; 11] {
        [
            self.namespaces.revision(),
            self.nodes.revision(),
            self.leases.revision(),
            self.services.revision(),
            self.endpoints.revision(),
            self.endpoint_slices.revision(),
            self.replica_sets.revision(),
            self.deployments.revision(),
            self.service_accounts.revision(),
            self.config_maps.revision(),
            self.secrets.revision(),
        ]
    }

    /// Whether a round can be left out: since the last one, nothing changed but routine pods
    /// (`crate::routine`), which no controller acts on.
    fn only_routine_pods_changed(&self, pods: &Changes<Pod>, others_then: &[u64; 11]) -> bool {
        if self.revisions_but_pods() != *others_then {
            return false;
        }
        let selecting = crate::routine::selecting_namespaces(&self.replica_sets.shared(), &self.services.shared());
        crate::routine::only_routine(pods, &selecting)
    }

    /// The revision the cache of `resource` (a plural name) has seen, if it is cached.
    fn revision(&self, resource: &str) -> Option<u64> {
        Some(match resource {
            "namespaces" => self.namespaces.revision(),
            "nodes" => self.nodes.revision(),
            "leases" => self.leases.revision(),
            "pods" => self.pods.revision(),
            "services" => self.services.revision(),
            "endpoints" => self.endpoints.revision(),
            "endpointslices" => self.endpoint_slices.revision(),
            "replicasets" => self.replica_sets.revision(),
            "deployments" => self.deployments.revision(),
            "serviceaccounts" => self.service_accounts.revision(),
            "configmaps" => self.config_maps.revision(),
            "secrets" => self.secrets.revision(),
            _ => return None,
        })
    }
}

async fn lead(client: Client, token: u64, settings: Settings) {
    tracing::info!(term = token, "controllers active");
    let writer = client.fenced(token);
    let caches = Caches::start(&client);
    let rounds = rounds(&writer, &caches, &settings);
    let namespaces = crate::namespace::run(&client, &writer, &caches.namespaces);
    tokio::join!(rounds, namespaces);
}

/// The reconcile rounds of the snapshot controllers, until dropped.
async fn rounds(writer: &Client, caches: &Caches, settings: &Settings) {
    let mut pause = Duration::ZERO;
    // What the last round saw, to leave out rounds that could decide nothing new.
    let mut last_round = Instant::now();
    let mut others_then = [0; 11];
    let mut acted = true;
    loop {
        tokio::select! {
            _ = caches.changed() => {}
            _ = tokio::time::sleep(settings.resync) => {}
        }
        // Changes that arrive meanwhile are taken in by the round after the pause.
        tokio::time::sleep(pause).await;
        if !caches.synced() {
            continue;
        }
        // Taken before the snapshot: a pod that changes after this is taken in again next time.
        let pods = caches.pods.take_changes();
        // Time-driven decisions (a node's heartbeat overdue) and retries of failed writes still
        // get a round every `resync` and after every round that acted.
        let due = acted || last_round.elapsed() >= settings.resync;
        if !due && caches.only_routine_pods_changed(&pods, &others_then) {
            continue;
        }
        let started = Instant::now();
        last_round = started;
        others_then = caches.revisions_but_pods();
        let snapshot = caches.snapshot();
        let config = settings.config.clone();
        // Reconciling is CPU work over every cached object: on the blocking pool, so it never
        // holds up the runtime's workers (and Raft's heartbeats with them).
        let Ok(actions) = tokio::task::spawn_blocking(move || decide(&snapshot, &config)).await else {
            tracing::error!("a controller round failed to run");
            continue;
        };
        pause = round_pause(started.elapsed());
        acted = !actions.is_empty();
        if !acted {
            continue;
        }
        let written = carry_out(writer, actions, settings.parallel_writes).await;
        settle(caches, &written, settings.settle).await;
    }
}

/// How long the manager rests after a round whose snapshot and decisions took `spent`: a round
/// looks at every cached object, so while the cluster changes without pause (thousands of pods
/// being created or bound) rounds back to back would take a whole core from the API and the
/// scheduler. Resting seven times as long as the round keeps the controllers to an eighth of a
/// core however large the cluster; with a small cluster a round takes a millisecond and the rest
/// is unnoticeable. The cost is latency under load: a change waits at most one round and one
/// rest.
fn round_pause(spent: Duration) -> Duration {
    const REST_PER_WORK: u32 = 7;
    spent.saturating_mul(REST_PER_WORK).min(MAX_ROUND_PAUSE)
}

/// The longest rest between rounds, whatever a round cost.
const MAX_ROUND_PAUSE: Duration = Duration::from_millis(500);

/// Every controller's actions for one snapshot. A controller that panics (a bug) loses its
/// round, not the others'.
pub fn decide(snapshot: &Snapshot, config: &Config) -> Vec<(&'static str, Action)> {
    decide_with(CONTROLLERS, snapshot, config)
}

fn decide_with(
    controllers: &[(&'static str, Reconcile)],
    snapshot: &Snapshot,
    config: &Config,
) -> Vec<(&'static str, Action)> {
    let mut all = Vec::new();
    for (name, reconcile) in controllers {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reconcile(snapshot, config))) {
            Ok(actions) => all.extend(actions.into_iter().map(|a| (*name, a))),
            Err(_) => tracing::error!(controller = name, "controller panicked; its round is skipped"),
        }
    }
    all
}

/// A write the caches must show before the next round: the collection and the revision.
type Written = (String, u64);

/// Carries out the actions, up to `parallel` at once. Actions on one object keep their order
/// (a status patch before a delete of the same pod), since they are grouped per object.
async fn carry_out(client: &Client, actions: Vec<(&'static str, Action)>, parallel: usize) -> Vec<Written> {
    let mut per_object: BTreeMap<String, Vec<(&'static str, Action)>> = BTreeMap::new();
    for (name, action) in actions {
        let key = match &action {
            // Creates and events touch different objects each; they need no ordering.
            Action::Create { .. } | Action::Event { .. } => format!("{}#{}", action.target(), per_object.len()),
            _ => action.target().trim_end_matches("/status").to_string(),
        };
        per_object.entry(key).or_default().push((name, action));
    }
    // Built eagerly with owned clients: a lazily mapped stream of borrowing futures is not
    // `Send` for every lifetime, which `tokio::spawn` needs.
    let runs: Vec<_> = per_object.into_values().map(|group| run_group(client.clone(), group)).collect();
    futures::stream::iter(runs).buffer_unordered(parallel.max(1)).collect::<Vec<_>>().await.concat()
}

/// Carries out one object's actions in order.
async fn run_group(client: Client, group: Vec<(&'static str, Action)>) -> Vec<Written> {
    let mut written = Vec::new();
    for (controller, action) in group {
        match execute(&client, &action).await {
            Ok(Some(w)) => written.push(w),
            Ok(None) => {}
            // The object changed or went away since the snapshot: the next round looks again.
            Err(e) if e.is_conflict() || e.is_not_found() => {
                tracing::debug!(controller, target = %action.target(), "skipped: {e}")
            }
            Err(e) => tracing::warn!(controller, target = %action.target(), "write failed: {e}"),
        }
    }
    written
}

async fn execute(client: &Client, action: &Action) -> Result<Option<Written>, ClientError> {
    let answer: Value = match action {
        Action::Create { collection, object } => client.create(collection, object).await?,
        Action::MergePatch { path, patch } => client.patch_merge(path, patch).await?,
        Action::Delete { path, uid, propagation, grace } => {
            let mut options = json!({"apiVersion": "v1", "kind": "DeleteOptions"});
            if let Some(uid) = uid {
                options["preconditions"] = json!({"uid": uid});
            }
            if let Some(p) = propagation {
                options["propagationPolicy"] = json!(p);
            }
            if let Some(g) = grace {
                options["gracePeriodSeconds"] = json!(g);
            }
            client.delete(path, &options).await?
        }
        Action::Event { regarding, component, kind, reason, message } => {
            client.record_event(regarding, component, kind.as_str(), reason, message).await?;
            return Ok(None);
        }
        Action::Verified { absent, action } => {
            for (path, uid) in absent {
                match client.get::<Value>(path).await {
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                    Ok(found) => {
                        let found_uid = found.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
                        // An empty uid asks that nothing at all exist at the path.
                        if uid.is_empty() || found_uid == uid {
                            tracing::debug!(%path, "not carried out: it exists after all");
                            return Ok(None);
                        }
                    }
                }
            }
            return Box::pin(execute(client, action)).await;
        }
    };
    let revision =
        answer.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|rv| rv.parse::<u64>().ok());
    Ok(match (resource_of(&action.target()), revision) {
        (Some(resource), Some(rv)) => Some((resource.to_string(), rv)),
        _ => None,
    })
}

/// The plural resource an API path names (`/apis/apps/v1/namespaces/a/replicasets/b/status`
/// → `replicasets`).
fn resource_of(path: &str) -> Option<&str> {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next()? {
        "api" => {
            parts.next()?;
        }
        "apis" => {
            parts.next()?;
            parts.next()?;
        }
        _ => return None,
    }
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        ["namespaces", _, resource, ..] => Some(resource),
        [resource, ..] => Some(resource),
        [] => None,
    }
}

/// Waits until every cache shows the writes made to it, warning every `warn_after` while one
/// lags. It never goes on without them: a round decided on a cache that misses this round's
/// writes would repeat them (a second pod for the same replica, the same podCIDR for two
/// nodes). A cache whose watch broke lists again, and a list shows every earlier write, so the
/// wait ends unless this server stops leading, which drops the whole task.
async fn settle(caches: &Caches, written: &[Written], warn_after: Duration) {
    let mut warn_at = Instant::now() + warn_after;
    loop {
        let behind: Vec<&Written> =
            written.iter().filter(|(resource, rv)| caches.revision(resource).is_some_and(|seen| seen < *rv)).collect();
        if behind.is_empty() {
            return;
        }
        if Instant::now() >= warn_at {
            tracing::warn!(behind = ?behind, "the caches do not show this round's writes yet; the next round waits for them");
            warn_at = Instant::now() + warn_after;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_paths() {
        assert_eq!(resource_of("/api/v1/namespaces/a/pods/p/status"), Some("pods"));
        assert_eq!(resource_of("/api/v1/namespaces/a/pods"), Some("pods"));
        assert_eq!(resource_of("/api/v1/namespaces/a"), Some("namespaces"));
        assert_eq!(resource_of("/api/v1/nodes/n"), Some("nodes"));
        assert_eq!(resource_of("/apis/apps/v1/namespaces/a/replicasets/r"), Some("replicasets"));
        assert_eq!(resource_of("/apis/coordination.k8s.io/v1/leases"), Some("leases"));
        assert_eq!(resource_of("/healthz"), None);
    }

    fn broken(_: &Snapshot, _: &Config) -> Vec<Action> {
        panic!("a bug")
    }

    fn working(_: &Snapshot, _: &Config) -> Vec<Action> {
        vec![Action::Delete { path: "/api/v1/nodes/n".into(), uid: None, propagation: None, grace: None }]
    }

    #[test]
    fn rounds_rest_seven_times_their_cost_up_to_half_a_second() {
        assert_eq!(
            round_pause(Duration::from_micros(300)),
            Duration::from_micros(2100),
            "a small cluster barely waits"
        );
        assert_eq!(round_pause(Duration::from_millis(40)), Duration::from_millis(280));
        assert_eq!(round_pause(Duration::from_secs(2)), MAX_ROUND_PAUSE, "bounded however costly the round");
        assert_eq!(round_pause(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_panicking_controller_does_not_stop_the_others() {
        let snapshot = Snapshot::empty(jiff::Timestamp::UNIX_EPOCH);
        let config = Config::default();
        let actions = decide_with(&[("broken", broken), ("working", working)], &snapshot, &config);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].0, "working");
    }

    #[test]
    fn an_empty_cluster_wants_nothing() {
        let actions = decide(&Snapshot::empty(jiff::Timestamp::UNIX_EPOCH), &Config::default());
        assert!(actions.is_empty(), "{actions:?}");
    }
}
