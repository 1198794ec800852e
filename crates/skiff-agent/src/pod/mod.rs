//! One pod on this node: what the runtime shows of it, what to do next, and the status to report.
//!
//! The decisions are pure functions of the Pod object, the runtime's view ([`Observed`]) and the
//! little the agent remembers between syncs ([`Memory`]: back-offs, probe results, the last
//! failure to start a container), so they are tested without a runtime. `worker` carries them out.

pub mod env;
mod http_probe;
pub mod plan;
pub mod probe;
pub mod relist;
pub mod spec;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::BTreeMap;

use serde_json::Value;

/// A container as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One container instance (one attempt of one of the pod's containers).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    /// 0 for the first start, then one more per restart: the pod's restartCount.
    pub attempt: u32,
    pub state: RunState,
    /// Nanoseconds since the epoch; 0 when not (yet) known.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    /// The runtime's reason for an exit (`OOMKilled`, `Completed`, `Error`...).
    pub reason: String,
    pub message: String,
    /// The image as the pod names it, and the runtime's resolved reference (imageID).
    pub image: String,
    pub image_ref: String,
}

/// One sandbox of the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSandbox {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub ip: String,
    pub created_at: i64,
}

/// Everything the runtime has of one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub sandboxes: Vec<ObservedSandbox>,
    pub containers: Vec<ObservedContainer>,
}

impl Observed {
    /// The newest sandbox, the one containers are started in.
    pub fn sandbox(&self) -> Option<&ObservedSandbox> {
        self.sandboxes.iter().max_by_key(|s| (s.attempt, s.created_at))
    }

    /// The newest instance of the named container.
    pub fn latest(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers.iter().filter(|c| c.name == name).max_by_key(|c| (c.attempt, c.created_at))
    }

    /// The instance before the newest one (a restarted container's `lastState`).
    pub fn previous(&self, name: &str) -> Option<&ObservedContainer> {
        let latest = self.latest(name)?;
        self.containers.iter().filter(|c| c.name == name && c.id != latest.id).max_by_key(|c| (c.attempt, c.created_at))
    }

    /// Whether anything of the pod still runs.
    pub fn anything_running(&self) -> bool {
        self.sandboxes.iter().any(|s| s.ready) || self.containers.iter().any(|c| c.state == RunState::Running)
    }
}

/// Why a container could not be started, kept until it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StartFailure {
    /// `ErrImagePull`, `ErrImageNeverPull`, `CreateContainerConfigError`, `CreateContainerError`,
    /// `RunContainerError`.
    pub reason: String,
    pub message: String,
    /// When it failed and when the next attempt may be made (milliseconds since the epoch).
    pub at_ms: u64,
    pub retry_at_ms: u64,
    /// The next back-off, doubled at every failure.
    pub next_delay_ms: u64,
}

/// The crash-loop back-off of one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// No restart before this (milliseconds since the epoch).
    pub until_ms: u64,
    pub delay_ms: u64,
}

/// What the agent remembers about a pod between syncs. Lost on restart, like upstream's: the
/// runtime's containers (and their attempt numbers) are what matters.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub failures: BTreeMap<String, StartFailure>,
    pub backoff: BTreeMap<String, Backoff>,
    /// Probe outcomes per container id.
    pub probes: BTreeMap<String, probe::ContainerProbes>,
    /// When the agent first saw the pod (its status.startTime if the API has none).
    pub first_seen: Option<String>,
    /// Container instances whose crash-loop back-off was reported as an event (id).
    pub backoff_reported: std::collections::BTreeSet<String>,
    /// Service-account tokens issued for the pod's projected volumes, by
    /// [`volumes::token_key`].
    pub tokens: BTreeMap<String, IssuedToken>,
}

/// A service-account token the agent holds for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// When to ask for a new one: 80% of its lifetime, as upstream's kubelet does.
    pub refresh_at_ms: u64,
}

/// The key under which a failure to create the pod's sandbox is remembered (container names
/// cannot be empty, so it never meets one).
pub const SANDBOX: &str = "";

/// Upstream's restart back-off: 10 s doubling to 5 minutes.
pub const BACKOFF_INITIAL_MS: u64 = 10_000;
pub const BACKOFF_MAX_MS: u64 = 300_000;

impl Memory {
    /// A container is being restarted at `now_ms`: the next restart waits longer.
    pub fn restarted(&mut self, name: &str, now_ms: u64) {
        let entry =
            self.backoff.entry(name.to_string()).or_insert(Backoff { until_ms: 0, delay_ms: BACKOFF_INITIAL_MS });
        entry.until_ms = now_ms + entry.delay_ms;
        entry.delay_ms = (entry.delay_ms * 2).min(BACKOFF_MAX_MS);
    }

    /// Whether restarting `name` must wait.
    pub fn backing_off(&self, name: &str, now_ms: u64) -> bool {
        self.backoff.get(name).is_some_and(|b| now_ms < b.until_ms)
    }

    /// Starting `name` failed for `reason`; retry after a back-off.
    pub fn failed(&mut self, name: &str, reason: &str, message: String, now_ms: u64) {
        let delay = self.failures.get(name).map(|f| f.next_delay_ms).unwrap_or(BACKOFF_INITIAL_MS);
        self.failures.insert(
            name.to_string(),
            StartFailure {
                reason: reason.to_string(),
                message,
                at_ms: now_ms,
                retry_at_ms: now_ms + delay,
                next_delay_ms: (delay * 2).min(BACKOFF_MAX_MS),
            },
        );
    }

    pub fn started(&mut self, name: &str) {
        self.failures.remove(name);
    }

    /// Whether a start of `name` may be tried now (no failure waiting out its back-off).
    pub fn may_try(&self, name: &str, now_ms: u64) -> bool {
        self.failures.get(name).is_none_or(|f| now_ms >= f.retry_at_ms)
    }
}

/// The pod's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(pod: &Value) -> Self {
        match pod.pointer("/spec/restartPolicy").and_then(Value::as_str) {
            Some("Never") => Self::Never,
            Some("OnFailure") => Self::OnFailure,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `code` is started again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => code != 0,
            Self::Never => false,
        }
    }
}

/// The pod's containers of one kind (`initContainers` or `containers`), in spec order.
pub fn containers<'a>(pod: &'a Value, field: &str) -> &'a [Value] {
    pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

pub fn name_of(container: &Value) -> &str {
    container["name"].as_str().unwrap_or("")
}

pub fn meta<'a>(pod: &'a Value, field: &str) -> &'a str {
    pod["metadata"][field].as_str().unwrap_or("")
}

/// `namespace/name`, for logs and events.
pub fn key(pod: &Value) -> String {
    format!("{}/{}", meta(pod, "namespace"), meta(pod, "name"))
}

/// The API server's time format for a moment in nanoseconds since the epoch.
pub fn rfc3339(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(nanos as i128)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Milliseconds since the epoch → the API's time format.
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339((ms as i64).saturating_mul(1_000_000))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn pod(spec: Value) -> Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-1", "labels": {"app": "web"}},
            "spec": spec, "status": {"phase": "Pending"}})
    }

    pub fn sandbox(attempt: u32, ready: bool) -> ObservedSandbox {
        ObservedSandbox { id: format!("sb{attempt}"), attempt, ready, ip: "10.244.0.5".into(), created_at: 1 }
    }

    pub fn container(name: &str, attempt: u32, state: RunState, exit_code: i32) -> ObservedContainer {
        ObservedContainer {
            id: format!("{name}-{attempt}"),
            name: name.into(),
            attempt,
            state,
            created_at: 1_000_000_000 + attempt as i64,
            started_at: if state == RunState::Created { 0 } else { 2_000_000_000 },
            finished_at: if state == RunState::Exited { 3_000_000_000 } else { 0 },
            exit_code,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_ref: "sha256:abc".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn the_newest_attempt_is_the_latest_and_the_one_before_is_previous() {
        let observed = Observed {
            sandboxes: vec![sandbox(0, false), sandbox(1, true)],
            containers: vec![container("app", 0, RunState::Exited, 1), container("app", 1, RunState::Running, 0)],
        };
        assert_eq!(observed.sandbox().map(|s| s.attempt), Some(1));
        assert_eq!(observed.latest("app").map(|c| c.attempt), Some(1));
        assert_eq!(observed.previous("app").map(|c| c.attempt), Some(0));
        assert!(observed.latest("other").is_none());
    }

    #[test]
    fn restarts_back_off_from_ten_seconds_doubling_to_five_minutes() {
        let mut memory = Memory::default();
        memory.restarted("app", 0);
        assert!(memory.backing_off("app", 9_999));
        assert!(!memory.backing_off("app", 10_000));
        memory.restarted("app", 10_000);
        assert!(memory.backing_off("app", 29_999));
        for _ in 0..10 {
            memory.restarted("app", 0);
        }
        assert_eq!(memory.backoff["app"].delay_ms, BACKOFF_MAX_MS);
    }

    #[test]
    fn a_failed_start_is_retried_after_its_back_off() {
        let mut memory = Memory::default();
        memory.failed("app", "ErrImagePull", "not found".into(), 1_000);
        assert!(!memory.may_try("app", 5_000));
        assert!(memory.may_try("app", 11_000));
        memory.failed("app", "ErrImagePull", "not found".into(), 11_000);
        assert!(!memory.may_try("app", 30_000), "the second back-off is twice as long");
        memory.started("app");
        assert!(memory.may_try("app", 0));
    }

    #[test]
    fn restart_policies_decide_by_exit_code() {
        assert!(RestartPolicy::Always.restarts(0));
        assert!(!RestartPolicy::OnFailure.restarts(0));
        assert!(RestartPolicy::OnFailure.restarts(2));
        assert!(!RestartPolicy::Never.restarts(2));
    }
}
