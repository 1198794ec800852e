//! The Deployment controller: every Deployment runs its pod template through ReplicaSets it
//! owns, rolling from old templates to the current one as its strategy allows, and reports
//! progress in its status the way `kubectl rollout status|history|undo|pause|resume` and
//! `kubectl scale` expect of upstream Kubernetes 1.32.
//!
//! Per Deployment (not being deleted), in one round:
//! - orphan ReplicaSets it selects are adopted (owner reference, conditional on their
//!   resourceVersion) and nothing else is done for it until the next round;
//! - the "new" ReplicaSet is the oldest owned one whose template equals the Deployment's, the
//!   `pod-template-hash` label aside; if none exists (and the Deployment is not paused) it is
//!   created as `<deployment>-<hash>` (see [`pod_template_hash`]), or, when that name is taken by
//!   another ReplicaSet, `status.collisionCount` goes up (which changes the hash) instead;
//! - the new ReplicaSet's revision is one more than every old one's (so a rollback re-uses the
//!   old ReplicaSet under a new revision, remembered in `revision-history`), and the Deployment's
//!   revision annotation follows it;
//! - a scaling event (an active ReplicaSet's `desired-replicas` differs from `spec.replicas`)
//!   or a paused Deployment only resizes: a single active ReplicaSet (or the newest, if none is
//!   active) takes `spec.replicas`; several are scaled proportionally to their size, as
//!   upstream does: each gets `round(size * (replicas + maxSurge) / its max-replicas
//!   annotation) - size` of the change, capped by what is left, the largest ReplicaSet
//!   absorbing the remainder (newer first when growing, older first when shrinking);
//! - RollingUpdate grows the new ReplicaSet while the total stays within `replicas + maxSurge`,
//!   then shrinks old ones (unavailable pods first, oldest ReplicaSet first) while available
//!   pods stay at least `replicas - maxUnavailable`; Recreate shrinks every old ReplicaSet to 0
//!   and creates/grows the new one only once no pod of an old one is left running;
//! - old ReplicaSets beyond `revisionHistoryLimit` that have no pods are deleted, lowest
//!   revision first, once the rollout is complete (or while paused);
//! - the status (counts, Available, Progressing with its deadline, ReplicaFailure copied from a
//!   ReplicaSet) is written only when it differs from what the Deployment shows.
//!
//! Every ReplicaSet gets at most one write per round (resize and annotations merged), so the
//! resourceVersion precondition of each write holds. Differences from upstream: the hash is
//! computed over the template's canonical JSON, not Go's object dump, so names differ from a
//! real cluster's; upstream's separate status writes within one sync (paused/resumed, "created
//! new replica set") are folded into the round's single status write, so a `DeploymentResumed`
//! condition is only seen when nothing else replaces it in the same round; owned ReplicaSets
//! the selector no longer matches are not released; Recreate treats a pod being deleted as still
//! running (as upstream does), so it waits for the node to finish it; a scaling event during a
//! Recreate rollout with several active ReplicaSets is left to the rollout (upstream would stall).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;

use crate::action::path;
use crate::workload;
use crate::Action;
use crate::Config;
use crate::EventType;
use crate::Snapshot;

/// The component events are recorded as.
pub const COMPONENT: &str = "deployment-controller";
/// A ReplicaSet's (and its Deployment's) rollout revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions a re-used ReplicaSet had, comma-separated.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's `spec.replicas + maxSurge` when the ReplicaSet was last sized.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells the ReplicaSets (and pods) of one Deployment apart.
pub const HASH_LABEL: &str = "pod-template-hash";

const HASH_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Deployment annotations that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];
const DEFAULT_PROGRESS_DEADLINE: i32 = 600;
const DEFAULT_HISTORY_LIMIT: i32 = 10;
/// Keeps `revision-history` from growing without bound under repeated rollbacks.
const MAX_HISTORY_CHARS: usize = 2000;

const AVAILABLE: &str = "Available";
const PROGRESSING: &str = "Progressing";
const REPLICA_FAILURE: &str = "ReplicaFailure";
const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
const RS_UPDATED: &str = "ReplicaSetUpdated";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// The writes that move every Deployment towards its template and replicas.
pub fn reconcile(snapshot: &Snapshot, _config: &Config) -> Vec<Action> {
    snapshot.deployments.iter().flat_map(|d| sync(snapshot, d)).collect()
}

/// `value` with every object member that holds a zero value removed, recursively (array
/// elements are kept: their positions mean something).
fn without_zero_values(value: &Value) -> Value {
    fn is_zero(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            Value::Object(map) => map.is_empty(),
        }
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| (k.clone(), without_zero_values(v))).filter(|(_, v)| !is_zero(v)).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_zero_values).collect()),
        scalar => scalar.clone(),
    }
}

/// The name suffix of the ReplicaSet that runs `template` (a Deployment's `spec.template` as
/// JSON): FNV-1a (32 bits) of the template's canonical JSON (keys sorted), then of
/// `collision_count` (4 bytes, little-endian) if given, written in decimal with each digit
/// mapped into an alphabet without vowels (upstream's SafeEncodeString).
pub fn pod_template_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    canonical_json(template, &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    let extra = collision_count.map(i32::to_le_bytes);
    for byte in text.bytes().chain(extra.into_iter().flatten()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string().bytes().map(|b| char::from(HASH_ALPHABET[usize::from(b) % HASH_ALPHABET.len()])).collect()
}

/// JSON with object keys sorted, whatever order the map keeps them in (serde_json's
/// `preserve_order` feature could be switched on by any crate in the build).
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A template as compared between a Deployment and its ReplicaSets: without the hash label,
/// and with zero values (`""`, `false`, `0`, `null`, `{}`, `[]`) counted as absent, as
/// upstream's semantic equality of Go structs does. That matters because a template that came
/// in as protobuf carries Go's zero values explicitly (`stdin: false`), while the same template
/// written back by kubectl as JSON (`rollout undo`) leaves them out. The price, shared with
/// upstream for non-pointer fields: changing a field from absent to its zero value
/// (`automountServiceAccountToken: false`) is not a new template.
fn template_key(template: &Value) -> Value {
    let mut t = without_zero_values(template);
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(HASH_LABEL);
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
        if meta.is_empty() {
            if let Some(obj) = t.as_object_mut() {
                obj.remove("metadata");
            }
        }
    }
    t
}

/// What the Deployment's spec asks, with upstream's defaults filled in.
struct Settings<'a> {
    d: &'a Deployment,
    name: &'a str,
    ns: &'a str,
    replicas: i32,
    rolling: bool,
    max_surge: i32,
    max_unavailable: i32,
    paused: bool,
    min_ready: i32,
    /// None when the deadline is switched off (`progressDeadlineSeconds` = MaxInt32).
    deadline: Option<i32>,
    history_limit: usize,
    generation: i64,
    /// The deployment's status.replicas, the proportion base of a ReplicaSet without a
    /// max-replicas annotation.
    status_replicas: i32,
}

impl<'a> Settings<'a> {
    fn of(d: &'a Deployment, spec: &DeploymentSpec, name: &'a str, ns: &'a str) -> Self {
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let strategy = spec.strategy.as_ref();
        let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") != "Recreate";
        let rolling_update = strategy.and_then(|s| s.rolling_update.as_ref());
        let (max_surge, max_unavailable) = if rolling {
            fenceposts(
                rolling_update.and_then(|r| r.max_surge.as_ref()),
                rolling_update.and_then(|r| r.max_unavailable.as_ref()),
                replicas,
            )
        } else {
            (0, 0)
        };
        let max_unavailable = if replicas == 0 { 0 } else { max_unavailable.min(replicas) };
        let deadline = match spec.progress_deadline_seconds {
            None => Some(DEFAULT_PROGRESS_DEADLINE),
            Some(i32::MAX) => None,
            Some(n) => Some(n),
        };
        Settings {
            d,
            name,
            ns,
            replicas,
            rolling,
            max_surge,
            max_unavailable,
            paused: spec.paused.unwrap_or(false),
            min_ready: spec.min_ready_seconds.unwrap_or(0),
            deadline,
            history_limit: usize::try_from(spec.revision_history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT)).unwrap_or(0),
            generation: d.metadata.generation.unwrap_or(0),
            status_replicas: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        }
    }

    fn max_replicas(&self) -> i32 {
        self.replicas.saturating_add(self.max_surge)
    }

    fn rs_path(&self, name: &str) -> String {
        path::group("apps/v1", "replicasets", Some(self.ns), Some(name))
    }

    fn status_path(&self) -> String {
        format!("{}/status", path::group("apps/v1", "deployments", Some(self.ns), Some(self.name)))
    }
}

/// maxSurge and maxUnavailable of a rolling update of `replicas` (both default 25%; a
/// percentage rounds up for the surge and down for unavailability; both 0 would never move,
/// so unavailability becomes 1).
fn fenceposts(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let surge = scaled_value(surge, replicas, true).max(0);
    let unavailable = scaled_value(unavailable, replicas, false).max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn scaled_value(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    let percent = match value {
        Some(IntOrString::Int(n)) => return *n,
        // Validation rejects anything but "N%"; treat it like the default rather than stall.
        Some(IntOrString::String(s)) => s.strip_suffix('%').and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(25),
        None => 25,
    };
    let product = percent * i64::from(total);
    let value = if round_up { -(-product).div_euclid(100) } else { product.div_euclid(100) };
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// One ReplicaSet of a Deployment as this round sees it and wants it.
struct Rs<'a> {
    /// None for the ReplicaSet this round creates.
    obj: Option<&'a ReplicaSet>,
    /// The object to create (without spec.replicas and annotations, filled in at the end).
    create: Option<Value>,
    name: String,
    uid: String,
    created: Option<jiff::Timestamp>,
    revision: i64,
    /// spec.replicas in the snapshot.
    original: i32,
    /// spec.replicas this round wants.
    replicas: i32,
    status_replicas: i32,
    ready: i32,
    available: i32,
    annotations: BTreeMap<String, String>,
    changed_annotations: BTreeMap<String, String>,
    min_ready: i32,
    min_ready_changed: bool,
}

impl<'a> Rs<'a> {
    fn of(rs: &'a ReplicaSet) -> Self {
        let annotations = rs.metadata.annotations.clone().unwrap_or_default();
        let status = rs.status.as_ref();
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        Rs {
            obj: Some(rs),
            create: None,
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            revision: revision_of(&annotations),
            original: replicas,
            replicas,
            status_replicas: status.map(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            annotations,
            changed_annotations: BTreeMap::new(),
            min_ready: rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0),
            min_ready_changed: false,
        }
    }

    fn template(&self) -> Option<Value> {
        serde_json::to_value(self.obj?.spec.as_ref()?.template.as_ref()?).ok()
    }

    fn annotation_number(&self, key: &str) -> Option<i32> {
        self.annotations.get(key)?.parse().ok()
    }

    fn set_annotation(&mut self, key: &str, value: String) {
        if self.annotations.get(key) != Some(&value) {
            self.annotations.insert(key.to_string(), value.clone());
            self.changed_annotations.insert(key.to_string(), value);
        }
    }

    fn set_replica_annotations(&mut self, s: &Settings<'_>) {
        self.set_annotation(DESIRED_REPLICAS_ANNOTATION, s.replicas.to_string());
        self.set_annotation(MAX_REPLICAS_ANNOTATION, s.max_replicas().to_string());
    }

    /// Sizes the ReplicaSet to `to`, recording the Deployment's size in its annotations when
    /// the size changes (or always, with `annotate`). Whether the size changed.
    fn scale_to(&mut self, to: i32, s: &Settings<'_>, annotate: bool) -> bool {
        let changed = self.replicas != to;
        if changed || annotate {
            self.replicas = to;
            self.set_replica_annotations(s);
        }
        changed
    }

    fn being_deleted(&self) -> bool {
        self.obj.is_some_and(|rs| rs.metadata.deletion_timestamp.is_some())
    }

    fn order_key(&self) -> (Option<jiff::Timestamp>, &str) {
        (self.created, self.name.as_str())
    }
}

fn revision_of(annotations: &BTreeMap<String, String>) -> i64 {
    annotations.get(REVISION_ANNOTATION).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The Deployment status, with absent numbers as 0 (so comparisons ignore how they were
/// written).
#[derive(Debug, Clone, PartialEq, Default)]
struct Status {
    observed_generation: i64,
    replicas: i32,
    updated: i32,
    ready: i32,
    available: i32,
    unavailable: i32,
    collision_count: Option<i32>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    type_: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
    last_update: Option<jiff::Timestamp>,
    last_transition: Option<jiff::Timestamp>,
}

impl Condition {
    fn new(type_: &str, status: &str, reason: &str, message: String, now: jiff::Timestamp) -> Self {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_update: Some(now),
            last_transition: Some(now),
        }
    }

    fn reason_is(&self, reason: &str) -> bool {
        self.reason.as_deref() == Some(reason)
    }

    fn to_json(&self) -> Value {
        let mut c = json!({"type": self.type_, "status": self.status});
        if let Some(r) = &self.reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = &self.message {
            c["message"] = json!(m);
        }
        if let Some(t) = self.last_update {
            c["lastUpdateTime"] = json!(workload::timestamp(t));
        }
        if let Some(t) = self.last_transition {
            c["lastTransitionTime"] = json!(workload::timestamp(t));
        }
        c
    }
}

impl Status {
    fn of(status: Option<&DeploymentStatus>) -> Self {
        let Some(st) = status else {
            return Status::default();
        };
        Status {
            observed_generation: st.observed_generation.unwrap_or(0),
            replicas: st.replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            ready: st.ready_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            unavailable: st.unavailable_replicas.unwrap_or(0),
            collision_count: st.collision_count,
            conditions: st
                .conditions
                .iter()
                .flatten()
                .map(|c| Condition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update: c.last_update_time.as_ref().map(|t| t.0),
                    last_transition: c.last_transition_time.as_ref().map(|t| t.0),
                })
                .collect(),
        }
    }

    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    fn remove(&mut self, type_: &str) {
        self.conditions.retain(|c| c.type_ != type_);
    }

    /// Upstream's rule: a condition of the same status and reason is left as it is (message
    /// and times included); a new reason keeps the transition time if the status is the same.
    fn set(&mut self, mut condition: Condition) {
        if let Some(existing) = self.condition(&condition.type_) {
            if existing.status == condition.status && existing.reason == condition.reason {
                return;
            }
            if existing.status == condition.status {
                condition.last_transition = existing.last_transition;
            }
        }
        self.remove(&condition.type_);
        self.conditions.push(condition);
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "observedGeneration": self.observed_generation,
            "replicas": self.replicas,
            "updatedReplicas": self.updated,
            "readyReplicas": self.ready,
            "availableReplicas": self.available,
            "unavailableReplicas": self.unavailable,
            "conditions": self.conditions.iter().map(Condition::to_json).collect::<Vec<_>>(),
        });
        if let Some(c) = self.collision_count {
            v["collisionCount"] = json!(c);
        }
        v
    }
}

/// Whether the rollout is done by the numbers `status` shows (what `kubectl rollout status`
/// waits for).
fn complete(s: &Settings<'_>, status: &Status) -> bool {
    status.updated == s.replicas
        && status.replicas == s.replicas
        && status.available == s.replicas
        && status.observed_generation >= s.generation
}

fn sync(snapshot: &Snapshot, d: &Deployment) -> Vec<Action> {
    let meta = &d.metadata;
    if meta.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let (Some(name), Some(ns), Some(uid), Some(spec)) =
        (meta.name.as_deref(), meta.namespace.as_deref(), meta.uid.as_deref(), d.spec.as_ref())
    else {
        return Vec::new();
    };
    let Some(selector) = workload::workload_selector(Some(&spec.selector)) else {
        return Vec::new();
    };
    let in_namespace = || snapshot.replica_sets.iter().filter(move |rs| rs.metadata.namespace.as_deref() == Some(ns));
    let adoptions: Vec<Action> = in_namespace()
        .filter(|rs| workload::controller_of(&rs.metadata).is_none() && rs.metadata.deletion_timestamp.is_none())
        .filter(|rs| workload::selects(&selector, &rs.metadata))
        .filter_map(|rs| adopt(rs, meta, ns))
        .collect();
    if !adoptions.is_empty() {
        return adoptions;
    }
    let s = Settings::of(d, spec, name, ns);
    let Ok(template) = serde_json::to_value(&spec.template) else {
        return Vec::new();
    };
    let current = Status::of(d.status.as_ref());
    let now = jiff::Timestamp::from_second(snapshot.now.as_second()).unwrap_or(snapshot.now);

    let mut rss: Vec<Rs<'_>> =
        in_namespace().filter(|rs| workload::controlled_by(&rs.metadata, uid)).map(|rs| Rs::of(rs)).collect();
    rss.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    let wanted = template_key(&template);
    let mut new_idx = rss.iter().position(|rs| rs.template().map(|t| template_key(&t)).as_ref() == Some(&wanted));
    let new_revision =
        rss.iter().enumerate().filter(|(i, _)| Some(*i) != new_idx).map(|(_, rs)| rs.revision).max().unwrap_or(0) + 1;

    // The status this round starts from: upstream writes these condition changes before the
    // rest of its sync, and the rest compares against them.
    let mut base = current.clone();
    paused_condition(&s, &mut base, now);
    if let Some(i) = new_idx {
        sync_new_annotations(&mut rss[i], &s, new_revision);
        if s.deadline.is_some() && base.condition(PROGRESSING).is_none() {
            let message = format!("Found new replica set \"{}\"", rss[i].name);
            base.set(Condition::new(PROGRESSING, "True", FOUND_NEW_RS, message, now));
        }
    }

    let active = rss.iter().filter(|rs| rs.replicas > 0).count();
    let scaling_event = (s.rolling || active <= 1)
        && rss.iter().any(|rs| {
            rs.replicas > 0 && rs.annotation_number(DESIRED_REPLICAS_ANNOTATION).is_some_and(|n| n != s.replicas)
        });

    let mut actions = Vec::new();
    let mut deletes = Vec::new();
    let estimate_progress;
    if s.paused || scaling_event {
        scale_existing(&mut rss, new_idx, &s);
        if s.paused {
            deletes = cleanup(snapshot, &rss, new_idx, &s);
        }
        estimate_progress = false;
    } else if s.rolling {
        if new_idx.is_none() {
            let old_total: i32 = rss.iter().map(|rs| rs.replicas).sum();
            let initial = grown_size(&s, old_total, 0);
            match create_new(snapshot, &s, &template, new_revision, initial, &mut base, now) {
                Ok(rs) => {
                    rss.push(rs);
                    new_idx = Some(rss.len() - 1);
                }
                Err(collision) => return vec![collision],
            }
        }
        let mut scaled = false;
        if let Some(n) = new_idx {
            scaled = reconcile_new(&mut rss, n, &s) || reconcile_old(&mut rss, n, &s);
        }
        if !scaled && complete(&s, &current) {
            deletes = cleanup(snapshot, &rss, new_idx, &s);
        }
        estimate_progress = true;
    } else {
        let mut scaled = false;
        for (i, rs) in rss.iter_mut().enumerate() {
            if Some(i) != new_idx && rs.replicas > 0 {
                scaled |= rs.scale_to(0, &s, false);
            }
        }
        if !scaled && !old_pods_running(snapshot, &rss, new_idx, ns) {
            match new_idx {
                Some(n) => {
                    rss[n].scale_to(s.replicas, &s, false);
                }
                None => match create_new(snapshot, &s, &template, new_revision, s.replicas, &mut base, now) {
                    Ok(rs) => {
                        rss.push(rs);
                        new_idx = Some(rss.len() - 1);
                    }
                    Err(collision) => return vec![collision],
                },
            }
            if complete(&s, &current) {
                deletes = cleanup(snapshot, &rss, new_idx, &s);
            }
        }
        estimate_progress = true;
    }

    for rs in &rss {
        actions.extend(write_replica_set(rs, &s));
    }
    actions.extend(deletes);
    if let Some(revision) = new_idx.and_then(|i| rss[i].annotations.get(REVISION_ANNOTATION)) {
        let have = meta.annotations.as_ref().and_then(|a| a.get(REVISION_ANNOTATION));
        if have != Some(revision) {
            actions.push(Action::MergePatch {
                path: path::group("apps/v1", "deployments", Some(ns), Some(name)),
                patch: json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision},
                    "resourceVersion": meta.resource_version}}),
            });
        }
    }
    let new_rs = new_idx.map(|i| &rss[i]);
    let mut status = calculate_status(&s, &rss, new_rs, &base, now);
    if estimate_progress {
        rollout_progress(&s, &base, &mut status, &rss, new_rs, now);
    }
    if status != current {
        // Not conditional: only this controller writes the status, and the annotation patch
        // just above (same object, carried out first) would make a precondition fail.
        actions.push(Action::MergePatch { path: s.status_path(), patch: json!({"status": status.to_json()}) });
    }
    actions
}

fn adopt(rs: &ReplicaSet, owner: &ObjectMeta, ns: &str) -> Option<Action> {
    let name = rs.metadata.name.as_deref()?;
    let mut refs: Vec<Value> =
        rs.metadata.owner_references.iter().flatten().filter_map(|r| serde_json::to_value(r).ok()).collect();
    refs.push(workload::controller_ref("apps/v1", "Deployment", owner));
    Some(Action::MergePatch {
        path: path::group("apps/v1", "replicasets", Some(ns), Some(name)),
        patch: json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}}),
    })
}

/// The Progressing condition a pause or resume sets (unless the deadline already passed).
fn paused_condition(s: &Settings<'_>, status: &mut Status, now: jiff::Timestamp) {
    if s.deadline.is_none() {
        return;
    }
    let reason = status.condition(PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return;
    }
    let paused_shown = reason.as_deref() == Some(PAUSED);
    if s.paused && !paused_shown {
        status.set(Condition::new(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into(), now));
    } else if !s.paused && paused_shown {
        status.set(Condition::new(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into(), now));
    }
}

/// Brings an existing new ReplicaSet's annotations and minReadySeconds up to the Deployment:
/// its annotations, and a revision above every old ReplicaSet's.
fn sync_new_annotations(rs: &mut Rs<'_>, s: &Settings<'_>, new_revision: i64) {
    for (key, value) in s.d.metadata.annotations.iter().flatten() {
        if !NOT_COPIED.contains(&key.as_str()) {
            rs.set_annotation(key, value.clone());
        }
    }
    if rs.revision < new_revision {
        if let Some(old) = rs.annotations.get(REVISION_ANNOTATION).filter(|v| !v.is_empty()).cloned() {
            let history = match rs.annotations.get(REVISION_HISTORY_ANNOTATION).filter(|v| !v.is_empty()) {
                Some(h) => format!("{h},{old}"),
                None => old,
            };
            rs.set_annotation(REVISION_HISTORY_ANNOTATION, trim_history(&history));
        }
        rs.set_annotation(REVISION_ANNOTATION, new_revision.to_string());
        rs.revision = new_revision;
    }
    if rs.min_ready != s.min_ready {
        rs.min_ready = s.min_ready;
        rs.min_ready_changed = true;
    }
}

fn trim_history(history: &str) -> String {
    let mut h = history;
    while h.len() > MAX_HISTORY_CHARS {
        match h.split_once(',') {
            Some((_, rest)) => h = rest,
            None => break,
        }
    }
    h.to_string()
}

/// The new ReplicaSet to create, or the status patch that bumps `collisionCount` when its
/// name is taken by a ReplicaSet that is not it.
fn create_new<'a>(
    snapshot: &Snapshot,
    s: &Settings<'_>,
    template: &Value,
    revision: i64,
    replicas: i32,
    base: &mut Status,
    now: jiff::Timestamp,
) -> Result<Rs<'a>, Action> {
    let collision_count = s.d.status.as_ref().and_then(|st| st.collision_count);
    let hash = pod_template_hash(template, collision_count);
    let name = format!("{}-{hash}", s.name);
    let taken = snapshot
        .replica_sets
        .iter()
        .any(|rs| rs.metadata.namespace.as_deref() == Some(s.ns) && rs.metadata.name.as_deref() == Some(&name));
    if taken {
        return Err(Action::MergePatch {
            path: s.status_path(),
            patch: json!({"metadata": {"resourceVersion": s.d.metadata.resource_version},
                "status": {"collisionCount": collision_count.unwrap_or(0).saturating_add(1)}}),
        });
    }
    let mut pod_template = template.clone();
    if !pod_template.get("metadata").is_some_and(Value::is_object) {
        pod_template["metadata"] = json!({});
    }
    if !pod_template["metadata"].get("labels").is_some_and(Value::is_object) {
        pod_template["metadata"]["labels"] = json!({});
    }
    pod_template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let labels = pod_template["metadata"]["labels"].clone();
    let mut selector = serde_json::to_value(s.d.spec.as_ref().map(|spec| &spec.selector)).unwrap_or(Value::Null);
    if !selector.is_object() {
        selector = json!({});
    }
    if !selector.get("matchLabels").is_some_and(Value::is_object) {
        selector["matchLabels"] = json!({});
    }
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let object = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": s.ns, "labels": labels,
            "ownerReferences": [workload::controller_ref("apps/v1", "Deployment", &s.d.metadata)]},
        "spec": {"minReadySeconds": s.min_ready, "selector": selector, "template": pod_template},
    });
    let mut annotations: BTreeMap<String, String> =
        s.d.metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    annotations.insert(REVISION_ANNOTATION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS_ANNOTATION.into(), s.replicas.to_string());
    annotations.insert(MAX_REPLICAS_ANNOTATION.into(), s.max_replicas().to_string());
    if s.deadline.is_some() {
        let message = format!("Created new replica set \"{name}\"");
        base.set(Condition::new(PROGRESSING, "True", NEW_RS_CREATED, message, now));
    }
    Ok(Rs {
        obj: None,
        create: Some(object),
        name,
        uid: String::new(),
        created: Some(now),
        revision,
        original: 0,
        replicas,
        status_replicas: 0,
        ready: 0,
        available: 0,
        annotations,
        changed_annotations: BTreeMap::new(),
        min_ready: s.min_ready,
        min_ready_changed: false,
    })
}

/// The new ReplicaSet's size when it may grow while all ReplicaSets (`total` replicas, its own
/// `size` included) stay within replicas + maxSurge, but never beyond replicas.
fn grown_size(s: &Settings<'_>, total: i32, size: i32) -> i32 {
    if total >= s.max_replicas() {
        return size;
    }
    size + (s.max_replicas() - total).min(s.replicas - size)
}

/// Rolling update, first half: sizes the new ReplicaSet. Whether it changed.
fn reconcile_new(rss: &mut [Rs<'_>], n: usize, s: &Settings<'_>) -> bool {
    let size = rss[n].replicas;
    if size == s.replicas {
        return false;
    }
    if size > s.replicas {
        return rss[n].scale_to(s.replicas, s, false);
    }
    let total: i32 = rss.iter().map(|rs| rs.replicas).sum();
    let to = grown_size(s, total, size);
    rss[n].scale_to(to, s, false)
}

/// Rolling update, second half: shrinks old ReplicaSets, their unavailable pods first, as far
/// as availability allows. Whether any changed.
fn reconcile_old(rss: &mut [Rs<'_>], n: usize, s: &Settings<'_>) -> bool {
    let mut olds: Vec<usize> = (0..rss.len()).filter(|&i| i != n).collect();
    olds.sort_by(|&a, &b| rss[a].order_key().cmp(&rss[b].order_key()));
    let old_total: i32 = olds.iter().map(|&i| rss[i].replicas).sum();
    if old_total == 0 {
        return false;
    }
    let all_total: i32 = rss.iter().map(|rs| rs.replicas).sum();
    let min_available = s.replicas - s.max_unavailable;
    let new_unavailable = rss[n].replicas - rss[n].available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return false;
    }
    let mut scaled = false;
    // Unavailable pods first: they keep nobody served, and could block the rollout forever.
    let mut cleaned = 0;
    for &i in &olds {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = rss[i].replicas - rss[i].available;
        if rss[i].replicas == 0 || unhealthy <= 0 {
            continue;
        }
        let count = unhealthy.min(max_scaled_down - cleaned);
        let to = rss[i].replicas - count;
        scaled |= rss[i].scale_to(to, s, false);
        cleaned += count;
    }
    let available: i32 = rss.iter().map(|rs| rs.available).sum();
    if available > min_available {
        let wanted = available - min_available;
        let mut done = 0;
        for &i in &olds {
            if done >= wanted {
                break;
            }
            if rss[i].replicas == 0 {
                continue;
            }
            let count = rss[i].replicas.min(wanted - done);
            let to = rss[i].replicas - count;
            scaled |= rss[i].scale_to(to, s, false);
            done += count;
        }
    }
    scaled
}

/// Resizing without rolling (a scaling event, or a paused Deployment).
fn scale_existing(rss: &mut [Rs<'_>], new_idx: Option<usize>, s: &Settings<'_>) {
    let active: Vec<usize> = (0..rss.len()).filter(|&i| rss[i].replicas > 0).collect();
    let single = match active.as_slice() {
        [] => new_idx.or_else(|| (0..rss.len()).max_by(|&a, &b| rss[a].order_key().cmp(&rss[b].order_key()))),
        [only] => Some(*only),
        _ => None,
    };
    if active.len() <= 1 {
        if let Some(i) = single {
            // Annotated even at the right size, so a stale desired-replicas does not keep
            // signalling a scaling event (which would hold the rollout back for good).
            rss[i].scale_to(s.replicas, s, true);
        }
        return;
    }
    if let Some(n) = new_idx {
        let rs = &rss[n];
        let saturated = rs.annotation_number(DESIRED_REPLICAS_ANNOTATION) == Some(s.replicas)
            && rs.replicas == s.replicas
            && rs.available == s.replicas;
        if saturated {
            for &i in active.iter().filter(|&&i| i != n) {
                rss[i].scale_to(0, s, false);
            }
            return;
        }
    }
    if !s.rolling {
        return;
    }
    let total: i32 = active.iter().map(|&i| rss[i].replicas).sum();
    let allowed = if s.replicas > 0 { s.max_replicas() } else { 0 };
    let to_add = allowed - total;
    let mut order = active;
    // Largest first; among equals, newer first when growing and older first when shrinking.
    order.sort_by(|&a, &b| {
        let by_age = rss[a].order_key().cmp(&rss[b].order_key());
        rss[b].replicas.cmp(&rss[a].replicas).then(if to_add > 0 { by_age.reverse() } else { by_age })
    });
    let mut added = 0;
    let mut sizes = Vec::with_capacity(order.len());
    for &i in &order {
        let share = if to_add == 0 { 0 } else { proportion(&rss[i], s, to_add, added) };
        sizes.push(rss[i].replicas + share);
        added += share;
    }
    if let Some(first) = sizes.first_mut() {
        *first = (*first + to_add - added).max(0);
    }
    for (&i, size) in order.iter().zip(sizes) {
        rss[i].scale_to(size, s, true);
    }
}

/// The part of `to_add` (replicas to add, negative to remove) a ReplicaSet takes: in the
/// proportion of its size to the Deployment's max-replicas when it was last sized.
fn proportion(rs: &Rs<'_>, s: &Settings<'_>, to_add: i32, added: i32) -> i32 {
    if rs.replicas == 0 || to_add == added {
        return 0;
    }
    let fraction = if s.replicas == 0 {
        -rs.replicas
    } else {
        let before = rs.annotation_number(MAX_REPLICAS_ANNOTATION).filter(|&m| m > 0).unwrap_or(s.status_replicas);
        if before == 0 {
            0
        } else {
            let scaled = (f64::from(rs.replicas) * f64::from(s.max_replicas()) / f64::from(before)).round();
            // The float came from i32 arithmetic on sizes; saturate instead of wrapping.
            let scaled = if scaled >= f64::from(i32::MAX) { i32::MAX } else { scaled as i32 };
            scaled - rs.replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Whether any pod of an old ReplicaSet still runs (Recreate waits until none does). A pod
/// being deleted still runs until its node says it stopped.
fn old_pods_running(snapshot: &Snapshot, rss: &[Rs<'_>], new_idx: Option<usize>, ns: &str) -> bool {
    let olds: Vec<&Rs<'_>> = rss.iter().enumerate().filter(|(i, _)| Some(*i) != new_idx).map(|(_, rs)| rs).collect();
    if olds.iter().any(|rs| rs.status_replicas > 0) {
        return true;
    }
    snapshot
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .any(|p| !workload::pod_is_terminated(p) && olds.iter().any(|rs| workload::controlled_by(&p.metadata, &rs.uid)))
}

/// Deletes of old ReplicaSets beyond the revision history limit, lowest revision first; only
/// those with nothing left (no replicas wanted or counted, no active pod, status current).
fn cleanup(snapshot: &Snapshot, rss: &[Rs<'_>], new_idx: Option<usize>, s: &Settings<'_>) -> Vec<Action> {
    let mut olds: Vec<&Rs<'_>> = rss
        .iter()
        .enumerate()
        .filter(|(i, rs)| Some(*i) != new_idx && rs.obj.is_some() && !rs.being_deleted())
        .map(|(_, rs)| rs)
        .collect();
    let excess = olds.len().saturating_sub(s.history_limit);
    if excess == 0 {
        return Vec::new();
    }
    olds.sort_by(|a, b| (a.revision, a.order_key()).cmp(&(b.revision, b.order_key())));
    let mut deletes = Vec::new();
    for rs in olds.into_iter().take(excess) {
        let Some(obj) = rs.obj else { continue };
        let generation = obj.metadata.generation.unwrap_or(0);
        let observed = obj.status.as_ref().and_then(|st| st.observed_generation).unwrap_or(0);
        let has_pods = snapshot.pods.iter().any(|p| {
            p.metadata.namespace.as_deref() == Some(s.ns)
                && workload::pod_is_active(p)
                && workload::controlled_by(&p.metadata, &rs.uid)
        });
        if rs.status_replicas != 0 || rs.replicas != 0 || rs.original != 0 || generation > observed || has_pods {
            continue;
        }
        deletes.push(Action::Delete {
            path: s.rs_path(&rs.name),
            uid: Some(rs.uid.clone()),
            propagation: Some("Background"),
            grace: None,
        });
    }
    deletes
}

/// The Create or MergePatch (and the scaling event) a ReplicaSet needs, if any.
fn write_replica_set(rs: &Rs<'_>, s: &Settings<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let event = |from: i32, to: i32| {
        let direction = if to > from { "up" } else { "down" };
        Action::event(
            COMPONENT,
            "apps/v1",
            "Deployment",
            &s.d.metadata,
            EventType::Normal,
            "ScalingReplicaSet",
            format!("Scaled {direction} replica set {} from {from} to {to}", rs.name),
        )
    };
    if let Some(object) = &rs.create {
        let mut object = object.clone();
        object["spec"]["replicas"] = json!(rs.replicas);
        object["metadata"]["annotations"] = json!(rs.annotations);
        actions.push(Action::Create { collection: path::group("apps/v1", "replicasets", Some(s.ns), None), object });
        if rs.replicas > 0 {
            actions.push(event(0, rs.replicas));
        }
        return actions;
    }
    let Some(obj) = rs.obj else {
        return actions;
    };
    let resized = rs.replicas != rs.original;
    if !resized && rs.changed_annotations.is_empty() && !rs.min_ready_changed {
        return actions;
    }
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(obj.metadata.resource_version));
    if !rs.changed_annotations.is_empty() {
        metadata.insert("annotations".into(), json!(rs.changed_annotations));
    }
    let mut spec = Map::new();
    if resized {
        spec.insert("replicas".into(), json!(rs.replicas));
    }
    if rs.min_ready_changed {
        spec.insert("minReadySeconds".into(), json!(rs.min_ready));
    }
    let mut patch = json!({"metadata": metadata});
    if !spec.is_empty() {
        patch["spec"] = Value::Object(spec);
    }
    actions.push(Action::MergePatch { path: s.rs_path(&rs.name), patch });
    if resized {
        actions.push(event(rs.original, rs.replicas));
    }
    actions
}

/// The counts and the Available condition, from the ReplicaSets' statuses as the snapshot
/// shows them (this round's resizes show up in the next round).
fn calculate_status(
    s: &Settings<'_>,
    rss: &[Rs<'_>],
    new_rs: Option<&Rs<'_>>,
    base: &Status,
    now: jiff::Timestamp,
) -> Status {
    let mut status = base.clone();
    let spec_total: i32 = rss.iter().map(|rs| rs.original).sum();
    status.observed_generation = s.generation;
    status.replicas = rss.iter().map(|rs| rs.status_replicas).sum();
    status.updated = new_rs.map(|rs| rs.status_replicas).unwrap_or(0);
    status.ready = rss.iter().map(|rs| rs.ready).sum();
    status.available = rss.iter().map(|rs| rs.available).sum();
    status.unavailable = (spec_total - status.available).max(0);
    if status.available >= s.replicas - s.max_unavailable {
        let message = "Deployment has minimum availability.".to_string();
        status.set(Condition::new(AVAILABLE, "True", "MinimumReplicasAvailable", message, now));
    } else {
        let message = "Deployment does not have minimum availability.".to_string();
        status.set(Condition::new(AVAILABLE, "False", "MinimumReplicasUnavailable", message, now));
    }
    status
}

/// The Progressing condition of a rollout (complete, progressing, or out of time), and a
/// ReplicaSet's ReplicaFailure condition copied over.
fn rollout_progress(
    s: &Settings<'_>,
    base: &Status,
    status: &mut Status,
    rss: &[Rs<'_>],
    new_rs: Option<&Rs<'_>>,
    now: jiff::Timestamp,
) {
    let subject = match new_rs {
        Some(rs) => format!("ReplicaSet \"{}\"", rs.name),
        None => format!("Deployment \"{}\"", s.name),
    };
    match s.deadline {
        None => status.remove(PROGRESSING),
        Some(deadline) => {
            let current = base.condition(PROGRESSING);
            let done_before =
                status.replicas == status.updated && current.is_some_and(|c| c.reason_is(NEW_RS_AVAILABLE));
            if !done_before {
                if complete(s, status) {
                    let message = format!("{subject} has successfully progressed.");
                    status.set(Condition::new(PROGRESSING, "True", NEW_RS_AVAILABLE, message, now));
                } else if progressed(base, status) {
                    // Progress moves lastUpdateTime (the deadline counts from it) even when the
                    // reason stays the same, which the usual rule would not.
                    let message = format!("{subject} is progressing.");
                    let mut condition = Condition::new(PROGRESSING, "True", RS_UPDATED, message, now);
                    if let Some(c) = current.filter(|c| c.status == "True") {
                        condition.last_transition = c.last_transition;
                    }
                    status.remove(PROGRESSING);
                    status.conditions.push(condition);
                } else if timed_out(status, deadline, now) {
                    let message = format!("{subject} has timed out progressing.");
                    status.set(Condition::new(PROGRESSING, "False", TIMED_OUT, message, now));
                }
            }
        }
    }
    let failure = new_rs.into_iter().chain(rss.iter()).find_map(|rs| {
        rs.obj?.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == REPLICA_FAILURE).map(|c| Condition {
            type_: REPLICA_FAILURE.into(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update: c.last_transition_time.as_ref().map(|t| t.0),
            last_transition: c.last_transition_time.as_ref().map(|t| t.0),
        })
    });
    match failure {
        Some(condition) => status.set(condition),
        None => status.remove(REPLICA_FAILURE),
    }
}

/// Whether the numbers moved towards the goal since `before`.
fn progressed(before: &Status, after: &Status) -> bool {
    let old_before = before.replicas - before.updated;
    let old_after = after.replicas - after.updated;
    after.updated > before.updated
        || old_after < old_before
        || after.ready > before.ready
        || after.available > before.available
}

fn timed_out(status: &Status, deadline: i32, now: jiff::Timestamp) -> bool {
    let Some(condition) = status.condition(PROGRESSING) else {
        return false;
    };
    if condition.reason_is(NEW_RS_AVAILABLE) {
        return false;
    }
    if condition.reason_is(TIMED_OUT) {
        return true;
    }
    condition.last_update.is_some_and(|from| from + jiff::SignedDuration::from_secs(i64::from(deadline)) < now)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().expect("time")
    }

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    fn deployment(replicas: i32, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1,
                "resourceVersion": "10", "creationTimestamp": NOW},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": template(image)}})
    }

    fn hash_of(image: &str, collision: Option<i32>) -> String {
        let d: Deployment = serde_json::from_value(deployment(1, image)).expect("fixture");
        let t = serde_json::to_value(d.spec.expect("spec").template).expect("template");
        pod_template_hash(&t, collision)
    }

    /// A ReplicaSet of the deployment "web" running `image`, with its status caught up.
    fn replica_set(image: &str, revision: i64, replicas: i32, created: &str) -> Value {
        let hash = hash_of(image, None);
        let mut t = template(image);
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{hash}"), "namespace": "ns", "uid": format!("uid-{image}"),
                "generation": 1, "resourceVersion": "5", "creationTimestamp": created,
                "labels": t["metadata"]["labels"].clone(),
                "annotations": {REVISION_ANNOTATION: revision.to_string(),
                    DESIRED_REPLICAS_ANNOTATION: replicas.to_string(),
                    MAX_REPLICAS_ANNOTATION: (replicas + 1).to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "d-uid", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: hash}},
                "template": t},
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                "fullyLabeledReplicas": replicas, "observedGeneration": 1}})
    }

    fn merge(target: &mut Value, patch: &Value) {
        match patch {
            Value::Object(p) => {
                if !target.is_object() {
                    *target = json!({});
                }
                let Some(t) = target.as_object_mut() else { return };
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            other => *target = other.clone(),
        }
    }

    /// A cluster of one namespace that carries out the controller's writes.
    struct Cluster {
        now: jiff::Timestamp,
        deployments: Vec<Value>,
        replica_sets: Vec<Value>,
        pods: Vec<Value>,
        created: usize,
    }

    impl Cluster {
        fn new(deployment: Value, replica_sets: Vec<Value>) -> Self {
            Cluster { now: now(), deployments: vec![deployment], replica_sets, pods: Vec::new(), created: 0 }
        }

        fn snapshot(&self) -> Snapshot {
            let mut snapshot = Snapshot::empty(self.now);
            snapshot.deployments = self
                .deployments
                .iter()
                .map(|d| Arc::new(serde_json::from_value(d.clone()).expect("fixture")))
                .collect();
            snapshot.replica_sets = self
                .replica_sets
                .iter()
                .map(|rs| Arc::new(serde_json::from_value(rs.clone()).expect("fixture")))
                .collect();
            snapshot.pods =
                self.pods.iter().map(|p| Arc::new(serde_json::from_value(p.clone()).expect("fixture"))).collect();
            snapshot
        }

        fn reconcile(&self) -> Vec<Action> {
            reconcile(&self.snapshot(), &Config::default())
        }

        fn object(&mut self, path: &str) -> &mut Value {
            let path = path.trim_end_matches("/status");
            let (kind, name) = {
                let mut parts = path.rsplit('/');
                let name = parts.next().expect("name").to_string();
                (parts.next().expect("kind").to_string(), name)
            };
            let list = if kind == "deployments" { &mut self.deployments } else { &mut self.replica_sets };
            list.iter_mut().find(|o| o["metadata"]["name"] == json!(name)).expect("object exists")
        }

        fn apply(&mut self, actions: &[Action]) {
            for action in actions {
                match action {
                    Action::Create { collection, object } => {
                        assert_eq!(collection, "/apis/apps/v1/namespaces/ns/replicasets");
                        let mut object = object.clone();
                        self.created += 1;
                        object["metadata"]["uid"] = json!(format!("created-{}", self.created));
                        object["metadata"]["generation"] = json!(1);
                        object["metadata"]["resourceVersion"] = json!("1");
                        object["metadata"]["creationTimestamp"] = json!(workload::timestamp(self.now));
                        object["status"] = json!({"replicas": 0, "observedGeneration": 1});
                        self.replica_sets.push(object);
                    }
                    Action::MergePatch { path, patch } => merge(self.object(path), patch),
                    Action::Delete { path, .. } => {
                        let name = path.rsplit('/').next().expect("name");
                        self.replica_sets.retain(|rs| rs.metadata_name() != name);
                    }
                    Action::Event { .. } => {}
                    Action::Verified { .. } => panic!("unexpected {action:?}"),
                }
            }
        }

        /// Every ReplicaSet's pods are as many as it asks, and available at once.
        fn settle(&mut self) {
            for rs in &mut self.replica_sets {
                let n = rs["spec"]["replicas"].clone();
                rs["status"] = json!({"replicas": n, "readyReplicas": n, "availableReplicas": n,
                    "fullyLabeledReplicas": n, "observedGeneration": 1});
            }
        }

        /// Rounds (writes then a settled status) until the controller wants nothing.
        fn converge(&mut self) -> usize {
            for round in 0..30 {
                let actions = self.reconcile();
                if actions.is_empty() {
                    return round;
                }
                self.apply(&actions);
                self.settle();
                self.now += jiff::SignedDuration::from_secs(1);
            }
            panic!("no convergence");
        }

        fn set_image(&mut self, image: &str) {
            let d = &mut self.deployments[0];
            d["spec"]["template"] = template(image);
            let g = d["metadata"]["generation"].as_i64().expect("generation");
            d["metadata"]["generation"] = json!(g + 1);
        }

        fn set_replicas(&mut self, n: i32) {
            let d = &mut self.deployments[0];
            d["spec"]["replicas"] = json!(n);
            let g = d["metadata"]["generation"].as_i64().expect("generation");
            d["metadata"]["generation"] = json!(g + 1);
        }

        fn rs(&self, image: &str) -> &Value {
            let name = format!("web-{}", hash_of(image, None));
            self.replica_sets.iter().find(|rs| rs.metadata_name() == name).expect("replica set")
        }

        fn status(&self) -> &Value {
            &self.deployments[0]["status"]
        }

        fn condition(&self, type_: &str) -> Value {
            let conditions = self.status()["conditions"].as_array().cloned().unwrap_or_default();
            conditions.into_iter().find(|c| c["type"] == json!(type_)).unwrap_or(Value::Null)
        }

        /// What `kubectl rollout status` checks.
        fn rollout_done(&self) -> bool {
            let d = &self.deployments[0];
            let st = self.status();
            d["metadata"]["generation"].as_i64() <= st["observedGeneration"].as_i64()
                && st["updatedReplicas"] == d["spec"]["replicas"]
                && st["replicas"] == st["updatedReplicas"]
                && st["availableReplicas"] == st["updatedReplicas"]
        }
    }

    trait Named {
        fn metadata_name(&self) -> &str;
    }

    impl Named for Value {
        fn metadata_name(&self) -> &str {
            self["metadata"]["name"].as_str().unwrap_or("")
        }
    }

    fn events(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { reason, message, .. } => Some(format!("{reason}: {message}")),
                _ => None,
            })
            .collect()
    }

    fn status_patch(actions: &[Action]) -> Option<&Value> {
        actions.iter().find_map(|a| match a {
            Action::MergePatch { path, patch } if path.ends_with("/deployments/web/status") => Some(&patch["status"]),
            _ => None,
        })
    }

    fn rs_patches(actions: &[Action]) -> Vec<(&str, &Value)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::MergePatch { path, patch } if path.contains("/replicasets/") => {
                    Some((path.rsplit('/').next().unwrap_or(""), patch))
                }
                _ => None,
            })
            .collect()
    }

    fn creates(actions: &[Action]) -> Vec<&Value> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { object, .. } => Some(object),
                _ => None,
            })
            .collect()
    }

    fn condition_in<'v>(status: &'v Value, type_: &str) -> &'v Value {
        status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == json!(type_)))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn templates_equal_up_to_zero_values_and_the_hash_label() {
        let from_protobuf = json!({"metadata": {"labels": {"app": "web", HASH_LABEL: "abc"}, "name": "",
            "generation": 0}, "spec": {"containers": [{"name": "c", "image": "nginx", "stdin": false,
            "args": [], "resources": {}}], "hostNetwork": false}});
        let from_json = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "c", "image": "nginx"}]}});
        assert_eq!(template_key(&from_protobuf), template_key(&from_json));
        let changed = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "c", "image": "nginx", "stdin": true}]}});
        assert_ne!(template_key(&changed), template_key(&from_json));
    }

    #[test]
    fn hash_is_stable_canonical_and_changes_with_collisions() {
        let a = json!({"b": 1, "a": {"y": [1, "x"], "x": null}});
        let mut reordered = Map::new();
        reordered.insert("a".into(), json!({"x": null, "y": [1, "x"]}));
        reordered.insert("b".into(), json!(1));
        let h = pod_template_hash(&a, None);
        assert_eq!(h, pod_template_hash(&Value::Object(reordered), None));
        assert!(!h.is_empty() && h.bytes().all(|b| HASH_ALPHABET.contains(&b)), "{h}");
        assert_ne!(h, pod_template_hash(&a, Some(0)));
        assert_ne!(pod_template_hash(&a, Some(0)), pod_template_hash(&a, Some(1)));
        assert_ne!(h, pod_template_hash(&json!({"b": 2}), None));
        // FNV-1a of "{}" is 0x5465b825 = 1415952421; each digit maps to alphabet[byte % 27].
        let expected: String = "1415952421".bytes().map(|b| char::from(HASH_ALPHABET[usize::from(b) % 27])).collect();
        assert_eq!(pod_template_hash(&json!({}), None), expected);
    }

    #[test]
    fn surge_and_unavailability_round_as_upstream() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        assert_eq!(fenceposts(None, None, 3), (1, 0), "25% of 3: surge rounds up, unavailable down");
        assert_eq!(fenceposts(None, None, 4), (1, 1));
        assert_eq!(fenceposts(None, None, 10), (3, 2));
        assert_eq!(fenceposts(pct("0%").as_ref(), pct("0%").as_ref(), 10), (0, 1), "never both 0");
        assert_eq!(fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5), (0, 1));
        assert_eq!(fenceposts(Some(&IntOrString::Int(2)), pct("50%").as_ref(), 5), (2, 2));
        assert_eq!(fenceposts(pct("100%").as_ref(), Some(&IntOrString::Int(0)), 1), (1, 0));
        let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
            "replicas": 2, "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxUnavailable": 5}}}}))
        .expect("fixture");
        let s = Settings::of(&d, d.spec.as_ref().expect("spec"), "web", "ns");
        assert_eq!((s.max_surge, s.max_unavailable), (1, 2), "unavailable capped at replicas");
    }

    #[test]
    fn a_new_deployment_gets_its_replica_set() {
        let cluster = Cluster::new(deployment(3, "v1"), Vec::new());
        let actions = cluster.reconcile();
        let created = creates(&actions);
        assert_eq!(created.len(), 1);
        let rs = created[0];
        let hash = hash_of("v1", None);
        assert_eq!(rs["metadata"]["name"], json!(format!("web-{hash}")));
        assert_eq!(rs["metadata"]["labels"], json!({"app": "web", HASH_LABEL: hash}));
        assert_eq!(rs["spec"]["selector"], json!({"matchLabels": {"app": "web", HASH_LABEL: hash}}));
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"], json!({"app": "web", HASH_LABEL: hash}));
        assert_eq!(rs["spec"]["template"]["spec"]["containers"][0]["image"], json!("v1"));
        assert_eq!(rs["spec"]["replicas"], json!(3));
        assert_eq!(rs["metadata"]["annotations"][REVISION_ANNOTATION], json!("1"));
        assert_eq!(rs["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION], json!("3"));
        assert_eq!(rs["metadata"]["annotations"][MAX_REPLICAS_ANNOTATION], json!("4"));
        assert_eq!(
            rs["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(events(&actions), vec![format!("ScalingReplicaSet: Scaled up replica set web-{hash} from 0 to 3")]);
        assert!(actions.iter().any(|a| matches!(a, Action::MergePatch { path, patch }
            if path == "/apis/apps/v1/namespaces/ns/deployments/web"
                && patch["metadata"]["annotations"][REVISION_ANNOTATION] == json!("1"))));
        let status = status_patch(&actions).expect("status");
        let progressing = condition_in(status, PROGRESSING);
        assert_eq!(progressing["reason"], json!(NEW_RS_CREATED));
        assert_eq!(progressing["message"], json!(format!("Created new replica set \"web-{hash}\"")));
        assert_eq!(condition_in(status, AVAILABLE)["status"], json!("False"));
        assert_eq!(status["observedGeneration"], json!(1));
    }

    #[test]
    fn a_complete_deployment_in_a_steady_cluster_wants_nothing() {
        let mut cluster = Cluster::new(deployment(3, "v1"), Vec::new());
        let rounds = cluster.converge();
        assert!(rounds >= 2, "it took writes to get here");
        assert!(cluster.rollout_done());
        assert_eq!(cluster.condition(PROGRESSING)["reason"], json!(NEW_RS_AVAILABLE));
        assert_eq!(cluster.condition(AVAILABLE)["reason"], json!("MinimumReplicasAvailable"));
        assert_eq!(cluster.deployments[0]["metadata"]["annotations"][REVISION_ANNOTATION], json!("1"));
        // Later, with time moved on, still nothing.
        cluster.now += jiff::SignedDuration::from_secs(3600);
        assert_eq!(cluster.reconcile(), Vec::new());
    }

    #[test]
    fn a_rolling_update_keeps_within_surge_and_availability() {
        let mut cluster = Cluster::new(deployment(4, "v1"), Vec::new());
        cluster.converge();
        cluster.set_image("v2");
        let mut rounds = 0;
        loop {
            let actions = cluster.reconcile();
            if actions.is_empty() {
                break;
            }
            cluster.apply(&actions);
            // Before any new pod is up: what is wanted stays within 4 + 1, and what is still
            // available (a scale-down removes pods at once) stays at least 4 - 1.
            let wanted: i64 = cluster.replica_sets.iter().map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(0)).sum();
            let available: i64 = cluster
                .replica_sets
                .iter()
                .map(|rs| {
                    let spec = rs["spec"]["replicas"].as_i64().unwrap_or(0);
                    spec.min(rs["status"]["availableReplicas"].as_i64().unwrap_or(0))
                })
                .sum();
            assert!(wanted <= 5, "surge exceeded: {wanted}");
            assert!(available >= 3, "too few available: {available}");
            cluster.settle();
            cluster.now += jiff::SignedDuration::from_secs(1);
            rounds += 1;
            assert!(rounds < 30, "no convergence");
        }
        assert!(rounds >= 4, "rolled in steps, took {rounds}");
        assert_eq!(cluster.rs("v2")["spec"]["replicas"], json!(4));
        assert_eq!(cluster.rs("v2")["metadata"]["annotations"][REVISION_ANNOTATION], json!("2"));
        assert_eq!(cluster.rs("v1")["spec"]["replicas"], json!(0));
        assert_eq!(cluster.deployments[0]["metadata"]["annotations"][REVISION_ANNOTATION], json!("2"));
        assert!(cluster.rollout_done());
        assert_eq!(cluster.condition(PROGRESSING)["reason"], json!(NEW_RS_AVAILABLE));
    }

    #[test]
    fn the_first_step_of_a_rolling_update_creates_revision_two_and_scales_down() {
        let mut cluster = Cluster::new(deployment(4, "v1"), vec![replica_set("v1", 1, 4, NOW)]);
        assert_eq!(cluster.converge(), 1, "only the status to fill in");
        cluster.set_image("v2");
        let actions = cluster.reconcile();
        let created = creates(&actions);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0]["metadata"]["annotations"][REVISION_ANNOTATION], json!("2"));
        assert_eq!(created[0]["spec"]["replicas"], json!(1), "4 + 25% surge leaves room for 1");
        let patches = rs_patches(&actions);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].1["spec"]["replicas"], json!(3), "one of 4 may be unavailable");
        assert_eq!(patches[0].1["metadata"]["resourceVersion"], json!("5"));
        let v1 = format!("web-{}", hash_of("v1", None));
        assert!(events(&actions).contains(&format!("ScalingReplicaSet: Scaled down replica set {v1} from 4 to 3")));
    }

    #[test]
    fn new_pods_that_never_become_available_stop_the_rollout_and_time_out() {
        let mut cluster = Cluster::new(deployment(4, "v1"), vec![replica_set("v1", 1, 4, NOW)]);
        cluster.converge();
        cluster.set_image("v2");
        for _ in 0..5 {
            let actions = cluster.reconcile();
            cluster.apply(&actions);
            // Old pods follow their spec; new ones exist but are never ready.
            for rs in &mut cluster.replica_sets {
                let n = rs["spec"]["replicas"].clone();
                let image = rs["spec"]["template"]["spec"]["containers"][0]["image"].clone();
                let ready = if image == json!("v1") { n.clone() } else { json!(0) };
                rs["status"] = json!({"replicas": n, "readyReplicas": ready, "availableReplicas": ready,
                    "observedGeneration": 1});
            }
            cluster.now += jiff::SignedDuration::from_secs(1);
        }
        assert_eq!(cluster.rs("v1")["spec"]["replicas"], json!(3));
        assert_eq!(cluster.rs("v2")["spec"]["replicas"], json!(2));
        assert!(cluster.reconcile().is_empty(), "stuck, and quiet about it");
        assert_eq!(cluster.condition(PROGRESSING)["status"], json!("True"));
        let since: jiff::Timestamp =
            cluster.condition(PROGRESSING)["lastUpdateTime"].as_str().expect("time").parse().expect("time");
        cluster.now = since + jiff::SignedDuration::from_secs(600);
        assert!(cluster.reconcile().is_empty(), "the deadline is not passed yet");
        cluster.now = since + jiff::SignedDuration::from_secs(601);
        let actions = cluster.reconcile();
        assert_eq!(actions.len(), 1, "{actions:?}");
        let progressing = condition_in(status_patch(&actions).expect("status"), PROGRESSING).clone();
        assert_eq!(progressing["status"], json!("False"));
        assert_eq!(progressing["reason"], json!(TIMED_OUT));
        let v2 = format!("web-{}", hash_of("v2", None));
        assert_eq!(progressing["message"], json!(format!("ReplicaSet \"{v2}\" has timed out progressing.")));
        cluster.apply(&actions);
        cluster.now += jiff::SignedDuration::from_secs(60);
        assert!(cluster.reconcile().is_empty(), "the timeout is written once");
    }

    #[test]
    fn recreate_waits_for_the_old_pods_to_be_gone() {
        let mut d = deployment(3, "v1");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        let mut cluster = Cluster::new(d, vec![replica_set("v1", 1, 3, NOW)]);
        cluster.converge();
        cluster.set_image("v2");
        let actions = cluster.reconcile();
        assert!(creates(&actions).is_empty());
        let patches = rs_patches(&actions);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].1["spec"]["replicas"], json!(0));
        cluster.apply(&actions);
        // The pods are still counted...
        assert!(creates(&cluster.reconcile()).is_empty());
        // ...then no longer counted, but one is still shutting down.
        cluster.replica_sets[0]["status"] = json!({"replicas": 0, "observedGeneration": 1});
        cluster.pods.push(json!({"metadata": {"name": "web-old-1", "namespace": "ns",
            "deletionTimestamp": NOW, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "x", "uid": "uid-v1", "controller": true}]},
            "status": {"phase": "Running"}}));
        assert!(creates(&cluster.reconcile()).is_empty());
        cluster.pods[0]["status"]["phase"] = json!("Succeeded");
        let actions = cluster.reconcile();
        let created = creates(&actions);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0]["spec"]["replicas"], json!(3), "all at once");
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert!(cluster.rollout_done());
    }

    #[test]
    fn a_rollback_reuses_the_old_replica_set_under_a_new_revision() {
        let mut d = deployment(3, "v2");
        d["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "2"});
        let mut cluster =
            Cluster::new(d, vec![replica_set("v1", 1, 0, NOW), replica_set("v2", 2, 3, "2026-01-01T00:00:05Z")]);
        cluster.converge();
        assert_eq!(cluster.replica_sets.len(), 2);
        // `kubectl rollout undo`: the template of revision 1, and its change-cause.
        cluster.set_image("v1");
        cluster.deployments[0]["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!("undo");
        let actions = cluster.reconcile();
        assert!(creates(&actions).is_empty(), "no new ReplicaSet");
        let v1 = format!("web-{}", hash_of("v1", None));
        let patches = rs_patches(&actions);
        let (_, patch) = patches.iter().find(|(name, _)| *name == v1).expect("old one re-used");
        assert_eq!(patch["metadata"]["annotations"][REVISION_ANNOTATION], json!("3"));
        assert_eq!(patch["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION], json!("1"));
        assert_eq!(patch["metadata"]["annotations"]["kubernetes.io/change-cause"], json!("undo"));
        assert_eq!(patch["spec"]["replicas"], json!(1), "rolling back is a rolling update too");
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert_eq!(cluster.rs("v1")["spec"]["replicas"], json!(3));
        assert_eq!(cluster.rs("v2")["spec"]["replicas"], json!(0));
        assert_eq!(cluster.deployments[0]["metadata"]["annotations"][REVISION_ANNOTATION], json!("3"));
        assert_eq!(cluster.rs("v1")["metadata"]["annotations"][REVISION_ANNOTATION], json!("3"));
        assert!(cluster.rollout_done());
    }

    #[test]
    fn scaling_a_complete_deployment_scales_its_replica_set() {
        let mut cluster = Cluster::new(deployment(3, "v1"), Vec::new());
        cluster.converge();
        let name = format!("web-{}", hash_of("v1", None));
        cluster.set_replicas(5);
        let actions = cluster.reconcile();
        assert!(creates(&actions).is_empty());
        let patches = rs_patches(&actions);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].1["spec"]["replicas"], json!(5));
        assert_eq!(patches[0].1["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION], json!("5"));
        assert_eq!(patches[0].1["metadata"]["annotations"][MAX_REPLICAS_ANNOTATION], json!("7"));
        assert_eq!(events(&actions), vec![format!("ScalingReplicaSet: Scaled up replica set {name} from 3 to 5")]);
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert!(cluster.rollout_done());
        cluster.set_replicas(1);
        let actions = cluster.reconcile();
        assert_eq!(events(&actions), vec![format!("ScalingReplicaSet: Scaled down replica set {name} from 5 to 1")]);
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert_eq!(cluster.rs("v1")["spec"]["replicas"], json!(1));
        assert!(cluster.rollout_done());
    }

    #[test]
    fn scaling_during_a_rollout_is_proportional() {
        // Mid-rollout of 4 (max 5): 3 old, 2 new. Scaled to 8 (max 10), each doubles.
        let mut old = replica_set("v1", 1, 3, NOW);
        old["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "1", DESIRED_REPLICAS_ANNOTATION: "4",
            MAX_REPLICAS_ANNOTATION: "5"});
        let mut new = replica_set("v2", 2, 2, "2026-01-01T00:00:05Z");
        new["metadata"]["annotations"] = old["metadata"]["annotations"].clone();
        new["metadata"]["annotations"][REVISION_ANNOTATION] = json!("2");
        let mut d = deployment(8, "v2");
        d["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "2"});
        let cluster = Cluster::new(d, vec![old, new]);
        let actions = cluster.reconcile();
        let sizes: BTreeMap<&str, &Value> =
            rs_patches(&actions).into_iter().map(|(n, p)| (n, &p["spec"]["replicas"])).collect();
        assert_eq!(sizes.get(format!("web-{}", hash_of("v1", None)).as_str()), Some(&&json!(6)));
        assert_eq!(sizes.get(format!("web-{}", hash_of("v2", None)).as_str()), Some(&&json!(4)));
    }

    #[test]
    fn a_paused_deployment_scales_but_does_not_roll() {
        let mut cluster = Cluster::new(deployment(3, "v1"), Vec::new());
        cluster.converge();
        cluster.deployments[0]["spec"]["paused"] = json!(true);
        cluster.set_image("v2");
        cluster.set_replicas(4);
        let actions = cluster.reconcile();
        assert!(creates(&actions).is_empty(), "no new ReplicaSet while paused");
        let patches = rs_patches(&actions);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].1["spec"]["replicas"], json!(4));
        let progressing = condition_in(status_patch(&actions).expect("status"), PROGRESSING).clone();
        assert_eq!(progressing["status"], json!("Unknown"));
        assert_eq!(progressing["reason"], json!(PAUSED));
        assert_eq!(progressing["message"], json!("Deployment is paused"));
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert_eq!(cluster.replica_sets.len(), 1);
        assert_eq!(cluster.condition(PROGRESSING)["reason"], json!(PAUSED));
        // Resumed: the rollout goes on.
        cluster.deployments[0]["spec"]["paused"] = json!(false);
        let actions = cluster.reconcile();
        assert_eq!(creates(&actions).len(), 1);
        assert_ne!(condition_in(status_patch(&actions).expect("status"), PROGRESSING)["reason"], json!(PAUSED));
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert!(cluster.rollout_done());
    }

    #[test]
    fn pausing_and_resuming_a_complete_deployment() {
        let mut cluster = Cluster::new(deployment(2, "v1"), Vec::new());
        cluster.converge();
        cluster.deployments[0]["spec"]["paused"] = json!(true);
        cluster.converge();
        assert_eq!(cluster.condition(PROGRESSING)["status"], json!("Unknown"));
        assert_eq!(cluster.condition(PROGRESSING)["reason"], json!(PAUSED));
        assert!(cluster.reconcile().is_empty(), "a paused deployment is steady too");
        cluster.now += jiff::SignedDuration::from_secs(10);
        let resumed_at = workload::timestamp(cluster.now);
        cluster.deployments[0]["spec"]["paused"] = json!(false);
        assert_eq!(cluster.converge(), 1);
        assert_eq!(cluster.condition(PROGRESSING)["status"], json!("True"));
        assert_eq!(cluster.condition(PROGRESSING)["reason"], json!(NEW_RS_AVAILABLE));
        assert_eq!(cluster.condition(PROGRESSING)["lastTransitionTime"], json!(resumed_at));
    }

    #[test]
    fn old_replica_sets_beyond_the_history_limit_are_deleted() {
        let mut d = deployment(2, "v5");
        d["spec"]["revisionHistoryLimit"] = json!(2);
        d["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "5"});
        let mut rss: Vec<Value> = (1..=4).map(|i| replica_set(&format!("v{i}"), i, 0, NOW)).collect();
        rss.push(replica_set("v5", 5, 2, "2026-01-01T00:00:05Z"));
        let mut cluster = Cluster::new(d, rss);
        // Only once the status shows the rollout complete.
        let actions = cluster.reconcile();
        assert!(actions.iter().all(|a| !matches!(a, Action::Delete { .. })));
        cluster.apply(&actions);
        // Revision 1 still has a pod running: kept, and revision 2 goes; 3 and 4 are within the limit.
        cluster.pods.push(json!({"metadata": {"name": "p", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "uid-v1", "controller": true}]},
            "status": {"phase": "Running"}}));
        let actions = cluster.reconcile();
        let deleted: Vec<(&str, Option<&str>)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { path, uid, .. } => Some((path.as_str(), uid.as_deref())),
                _ => None,
            })
            .collect();
        let v2 = format!("/apis/apps/v1/namespaces/ns/replicasets/web-{}", hash_of("v2", None));
        assert_eq!(deleted, vec![(v2.as_str(), Some("uid-v2"))]);
        cluster.apply(&actions);
        cluster.pods.clear();
        let actions = cluster.reconcile();
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(matches!(&actions[0], Action::Delete { uid: Some(uid), .. } if uid == "uid-v1"));
        cluster.apply(&actions);
        assert_eq!(cluster.replica_sets.len(), 3);
        assert!(cluster.reconcile().is_empty());
    }

    #[test]
    fn a_taken_name_bumps_the_collision_count() {
        // Someone else's ReplicaSet holds the name the template hashes to.
        let mut squatter = replica_set("v1", 1, 1, NOW);
        squatter["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        squatter["metadata"]["ownerReferences"][0]["name"] = json!("other");
        let mut cluster = Cluster::new(deployment(1, "v1"), vec![squatter]);
        let actions = cluster.reconcile();
        assert_eq!(
            actions,
            vec![Action::MergePatch {
                path: "/apis/apps/v1/namespaces/ns/deployments/web/status".into(),
                patch: json!({"metadata": {"resourceVersion": "10"}, "status": {"collisionCount": 1}}),
            }]
        );
        cluster.apply(&actions);
        let actions = cluster.reconcile();
        let created = creates(&actions);
        assert_eq!(created.len(), 1);
        let hash = hash_of("v1", Some(1));
        assert_eq!(created[0]["metadata"]["name"], json!(format!("web-{hash}")));
        cluster.apply(&actions);
        cluster.settle();
        cluster.converge();
        assert!(cluster.rollout_done());
        assert_eq!(cluster.status()["collisionCount"], json!(1));
    }

    #[test]
    fn orphans_the_selector_picks_are_adopted_first() {
        let mut orphan = replica_set("v1", 1, 3, NOW);
        orphan["metadata"].as_object_mut().expect("object").remove("ownerReferences");
        let mut stranger = replica_set("other", 1, 1, NOW);
        stranger["metadata"].as_object_mut().expect("object").remove("ownerReferences");
        stranger["metadata"]["labels"] = json!({"app": "db"});
        let mut cluster = Cluster::new(deployment(3, "v1"), vec![orphan, stranger]);
        let actions = cluster.reconcile();
        let name = format!("web-{}", hash_of("v1", None));
        assert_eq!(
            actions,
            vec![Action::MergePatch {
                path: format!("/apis/apps/v1/namespaces/ns/replicasets/{name}"),
                patch: json!({"metadata": {"resourceVersion": "5", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                        "controller": true, "blockOwnerDeletion": true}]}}),
            }]
        );
        cluster.apply(&actions);
        cluster.converge();
        assert_eq!(cluster.replica_sets.len(), 2, "adopted, not replaced");
        assert!(cluster.rollout_done());
    }

    #[test]
    fn deployments_being_deleted_are_left_alone() {
        let mut d = deployment(3, "v1");
        d["metadata"]["deletionTimestamp"] = json!(NOW);
        let cluster = Cluster::new(d, Vec::new());
        assert!(cluster.reconcile().is_empty());
    }
}
