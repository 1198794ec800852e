//! The task that drives one pod: look at the runtime, plan, act, report, every second and
//! whenever the Pod object changes, until the pod is gone from the node.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use tokio::sync::watch;

use super::env::Sources;
use super::plan::plan;
use super::plan::Step;
use super::probe;
use super::spec;
use super::status;
use super::Memory;
use super::Observed;
use super::ObservedContainer;
use super::ObservedSandbox;
use super::RunState;
use crate::cri::Cri;
use crate::cri::LABEL_CONTAINER_NAME;

/// What every pod worker of the agent shares.
pub struct Shared {
    pub api: Client,
    pub cri: Cri,
    pub node_name: String,
    pub host_ip: String,
    /// `DATA/pods/UID`: volumes and termination-message files.
    pub pods_dir: PathBuf,
    /// `DATA/logs`: one directory per pod for the runtime's container logs.
    pub logs_dir: PathBuf,
    pub dns: spec::DnsSettings,
    pub node_allocatable: std::collections::BTreeMap<String, String>,
    /// Wakes a pod's worker when the runtime shows a change in its containers.
    pub relister: Arc<super::relist::Relister>,
}

/// How often a pod with probes or a pending retry is looked at (probes run on this beat).
const RESYNC: Duration = Duration::from_secs(1);
/// How often a settled pod is looked at anyway; changes wake it sooner (its Pod object, or the
/// relister seeing its containers change).
const IDLE_RESYNC: Duration = Duration::from_secs(10);
/// Plan-act rounds in one sync before reporting (each round is one step of progress).
const ROUNDS: usize = 6;
/// Upstream caps termination messages at 4 KiB.
const TERMINATION_MESSAGE_MAX: u64 = 4096;

/// Runs the pod given by `pod` until it finished deleting on this node or the channel closes
/// (the pod is gone from the API, or the agent stops). A `None` pod means it was removed from
/// the API without the agent's help (forced deletion): everything of it is torn down.
pub async fn run(shared: Arc<Shared>, uid: String, mut pod: watch::Receiver<Option<Arc<Value>>>) {
    let mut memory = Memory { first_seen: Some(now_rfc3339()), ..Default::default() };
    let mut last_status: Option<Value> = None;
    let runtime_changed = shared.relister.register(&uid);
    loop {
        let current = pod.borrow_and_update().clone();
        let Some(current) = current else {
            teardown(&shared, &uid).await;
            shared.relister.unregister(&uid);
            return;
        };
        let mut sync = Sync { shared: &shared, pod: &current, memory: &mut memory };
        let resync = match sync.run(&mut last_status).await {
            Ok(true) => {
                shared.relister.unregister(&uid);
                return;
            }
            Ok(false) if settled(&current, &memory, now_ms()) => IDLE_RESYNC,
            Ok(false) => RESYNC,
            Err(e) => {
                tracing::warn!(pod = %super::key(&current), error = %e, "pod sync failed");
                RESYNC
            }
        };
        tokio::select! {
            changed = pod.changed() => {
                if changed.is_err() {
                    // The agent dropped the pod: it is no longer bound here.
                    shared.relister.unregister(&uid);
                    return;
                }
            }
            _ = runtime_changed.notified() => {}
            _ = tokio::time::sleep(resync) => {}
        }
    }
}

/// Whether nothing but a change can move the pod: no probes to run, no retry or back-off to
/// wait out, not being deleted.
fn settled(pod: &Value, memory: &Memory, now_ms: u64) -> bool {
    let probed = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| super::containers(pod, f))
        .any(|c| ["livenessProbe", "readinessProbe", "startupProbe"].iter().any(|p| c.get(*p).is_some()));
    let waiting = !memory.failures.is_empty() || memory.backoff.values().any(|b| b.until_ms > now_ms);
    !probed && !waiting && pod["metadata"]["deletionTimestamp"].is_null()
}

/// Stops and removes everything of a pod (it is gone from the API).
pub async fn teardown(shared: &Shared, uid: &str) {
    let mut cri = shared.cri.clone();
    if let Ok(containers) = cri.list_containers(Some(uid)).await {
        for c in containers {
            let _ = cri.stop_container(&c.id, Duration::from_secs(2)).await;
            let _ = cri.remove_container(&c.id).await;
        }
    }
    if let Ok(sandboxes) = cri.list_sandboxes(Some(uid)).await {
        for s in sandboxes {
            let _ = cri.stop_pod_sandbox(&s.id).await;
            let _ = cri.remove_pod_sandbox(&s.id).await;
        }
    }
    let _ = std::fs::remove_dir_all(shared.pods_dir.join(uid));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn now_rfc3339() -> String {
    super::rfc3339_ms(now_ms())
}

/// Why a sync could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Runtime(#[from] crate::cri::CriError),
    #[error(transparent)]
    Api(#[from] skiff_client::ClientError),
}

struct Sync<'a> {
    shared: &'a Shared,
    pod: &'a Value,
    memory: &'a mut Memory,
}

impl Sync<'_> {
    fn uid(&self) -> &str {
        super::meta(self.pod, "uid")
    }

    /// One sync; `Ok(true)` when the pod finished deleting and the worker is done.
    async fn run(&mut self, last_status: &mut Option<Value>) -> Result<bool, SyncError> {
        let mut observed = self.observe().await?;
        self.probe(&observed).await;
        for _ in 0..ROUNDS {
            let steps = plan(self.pod, &observed, self.memory, now_ms());
            if steps.is_empty() {
                break;
            }
            let mut new_sandbox = false;
            for step in steps {
                new_sandbox |= matches!(step, Step::CreateSandbox { .. });
                if self.act(step, &observed).await? {
                    return Ok(true);
                }
            }
            observed = self.observe().await?;
            if new_sandbox {
                // The pod's IP is known before its containers start; report it right away.
                self.report(&observed, last_status).await?;
            }
        }
        self.report_back_off(&observed).await;
        self.renew_tokens().await;
        self.report(&observed, last_status).await?;
        Ok(false)
    }

    /// One `BackOff` event per exited container instance that waits out its restart back-off.
    async fn report_back_off(&mut self, observed: &Observed) {
        let now = now_ms();
        let policy = super::RestartPolicy::of(self.pod);
        let waiting: Vec<(String, String)> = observed
            .containers
            .iter()
            .filter(|c| c.state == RunState::Exited && policy.restarts(c.exit_code))
            .filter(|c| observed.latest(&c.name).is_some_and(|l| l.id == c.id))
            .filter(|c| self.memory.backing_off(&c.name, now) && !self.memory.backoff_reported.contains(&c.id))
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        for (id, name) in waiting {
            let pod =
                format!("{}_{}({})", super::meta(self.pod, "name"), super::meta(self.pod, "namespace"), self.uid());
            let message = format!("Back-off restarting failed container {name} in pod {pod}");
            self.event(Some(&name), "Warning", "BackOff", &message).await;
            self.memory.backoff_reported.insert(id);
        }
        let live: std::collections::BTreeSet<&str> = observed.containers.iter().map(|c| c.id.as_str()).collect();
        self.memory.backoff_reported.retain(|id| live.contains(id.as_str()));
    }

    /// What the runtime has of this pod.
    async fn observe(&self) -> Result<Observed, SyncError> {
        let mut cri = self.shared.cri.clone();
        let uid = self.uid().to_string();
        let mut observed = Observed::default();
        for s in cri.list_sandboxes(Some(&uid)).await? {
            let ready = s.state == k8s_cri::v1::PodSandboxState::SandboxReady as i32;
            let ip = match cri.sandbox_status(&s.id).await {
                Ok(Some(status)) => status.network.map(|n| n.ip).unwrap_or_default(),
                _ => String::new(),
            };
            let attempt = s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            observed.sandboxes.push(ObservedSandbox { id: s.id, attempt, ready, ip, created_at: s.created_at });
        }
        for c in cri.list_containers(Some(&uid)).await? {
            let Some(status) = cri.container_status(&c.id).await? else { continue };
            let name =
                c.labels.get(LABEL_CONTAINER_NAME).cloned().or_else(|| c.metadata.as_ref().map(|m| m.name.clone()));
            let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            let state = match status.state {
                0 => RunState::Created,
                1 => RunState::Running,
                2 => RunState::Exited,
                _ => RunState::Unknown,
            };
            let mut message = status.message.clone();
            if state == RunState::Exited && message.is_empty() {
                message = self.termination_message(name.as_deref().unwrap_or(""), attempt);
            }
            observed.containers.push(ObservedContainer {
                id: c.id,
                name: name.unwrap_or_default(),
                attempt,
                state,
                created_at: status.created_at,
                started_at: status.started_at,
                finished_at: status.finished_at,
                exit_code: status.exit_code,
                reason: status.reason,
                message,
                image: status.image.map(|i| i.image).unwrap_or_default(),
                image_ref: status.image_ref,
            });
        }
        Ok(observed)
    }

    fn termination_file(&self, container: &str, attempt: u32) -> PathBuf {
        self.shared
            .pods_dir
            .join(self.uid())
            .join("containers")
            .join(container)
            .join(attempt.to_string())
            .join("termination-log")
    }

    fn termination_message(&self, container: &str, attempt: u32) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Ok(file) = std::fs::File::open(self.termination_file(container, attempt)) {
            let _ = file.take(TERMINATION_MESSAGE_MAX).read_to_string(&mut text);
        }
        text
    }

    /// The container's spec by name (init or app) and whether it is an init container.
    fn container_spec(&self, name: &str) -> Option<(&Value, bool)> {
        for (field, init) in [("initContainers", true), ("containers", false)] {
            if let Some(c) = super::containers(self.pod, field).iter().find(|c| super::name_of(c) == name) {
                return Some((c, init));
            }
        }
        None
    }

    fn regarding(&self, container: Option<&str>) -> Value {
        let mut r = json!({"apiVersion": "v1", "kind": "Pod", "namespace": super::meta(self.pod, "namespace"),
            "name": super::meta(self.pod, "name"), "uid": self.uid(),
            "resourceVersion": super::meta(self.pod, "resourceVersion")});
        if let Some(name) = container {
            let field = match self.container_spec(name) {
                Some((_, true)) => "initContainers",
                _ => "containers",
            };
            r["fieldPath"] = format!("spec.{field}{{{name}}}").into();
        }
        r
    }

    async fn event(&self, container: Option<&str>, kind: &str, reason: &str, message: &str) {
        if let Err(e) = self.shared.api.record_event(&self.regarding(container), "kubelet", kind, reason, message).await
        {
            tracing::debug!(error = %e, reason, "event not recorded");
        }
    }

    fn grace(&self) -> Duration {
        let seconds = self.pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .or_else(|| self.pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// Carries out one step; `Ok(true)` when the pod's deletion is complete.
    async fn act(&mut self, step: Step, observed: &Observed) -> Result<bool, SyncError> {
        let mut cri = self.shared.cri.clone();
        match step {
            Step::KillPod => {
                let grace = self.grace();
                for c in observed.containers.iter().filter(|c| c.state == RunState::Running) {
                    self.event(Some(&c.name), "Normal", "Killing", &format!("Stopping container {}", c.name)).await;
                }
                let ip = observed.sandbox().map(|s| s.ip.clone()).unwrap_or_default();
                let stops = observed
                    .containers
                    .iter()
                    .filter(|c| c.state == RunState::Running)
                    .map(|c| {
                        let spec = self.container_spec(&c.name).map(|(s, _)| s.clone()).unwrap_or_default();
                        self.stop_one(c.id.clone(), c.name.clone(), spec, ip.clone(), grace)
                    })
                    .collect::<Vec<_>>();
                for result in futures::future::join_all(stops).await {
                    result?;
                }
                for s in observed.sandboxes.iter().filter(|s| s.ready) {
                    cri.stop_pod_sandbox(&s.id).await?;
                }
                Ok(false)
            }
            Step::CreateSandbox { attempt } => {
                let log_dir = spec::log_directory(&self.shared.logs_dir, self.pod);
                let config = spec::sandbox_config(self.pod, attempt, &log_dir, &self.shared.dns);
                let created = std::fs::create_dir_all(&log_dir).and_then(|_| std::fs::create_dir_all(self.pod_dir()));
                if let Err(e) = created {
                    tracing::warn!(error = %e, "cannot create the pod's directories");
                }
                if let Err(e) = cri.run_pod_sandbox(config).await {
                    let message = format!("Failed to create pod sandbox: {e}");
                    self.event(None, "Warning", "FailedCreatePodSandBox", &message).await;
                    self.memory.failed(super::SANDBOX, "FailedCreatePodSandBox", message, now_ms());
                    return Err(e.into());
                }
                self.memory.started(super::SANDBOX);
                Ok(false)
            }
            Step::StartContainer { name, init: _, attempt } => {
                self.start_container(&name, attempt, observed).await?;
                Ok(false)
            }
            Step::KillContainer { id, name, message } => {
                self.event(Some(&name), "Normal", "Killing", &message).await;
                let spec = self.container_spec(&name).map(|(s, _)| s.clone()).unwrap_or_default();
                let ip = observed.sandbox().map(|s| s.ip.clone()).unwrap_or_default();
                self.stop_one(id.clone(), name, spec, ip, self.grace()).await?;
                self.memory.probes.remove(&id);
                Ok(false)
            }
            Step::FinishDeletion => {
                for c in &observed.containers {
                    cri.remove_container(&c.id).await?;
                }
                for s in &observed.sandboxes {
                    cri.remove_pod_sandbox(&s.id).await?;
                }
                let _ = std::fs::remove_dir_all(self.pod_dir());
                let path = format!(
                    "/api/v1/namespaces/{}/pods/{}",
                    super::meta(self.pod, "namespace"),
                    super::meta(self.pod, "name")
                );
                let options = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid()}});
                match self.shared.api.delete::<Value>(&path, &options).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_not_found() || e.is_conflict() => Ok(true),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Stops one container: its preStop hook first, then the stop signal, then SIGKILL, all
    /// within `grace`.
    fn stop_one(
        &self,
        id: String,
        name: String,
        spec: Value,
        pod_ip: String,
        grace: Duration,
    ) -> impl std::future::Future<Output = Result<(), crate::cri::CriError>> + '_ {
        let mut cri = self.shared.cri.clone();
        async move {
            let started = Instant::now();
            if let Some(failure) = run_hook(&cri, &spec, &id, &pod_ip, "preStop", grace).await {
                let message = format!("PreStopHook failed: {failure}");
                self.event(Some(&name), "Warning", "FailedPreStopHook", &message).await;
            }
            cri.stop_container(&id, grace.saturating_sub(started.elapsed())).await
        }
    }

    fn pod_dir(&self) -> PathBuf {
        self.shared.pods_dir.join(self.uid())
    }

    /// Volumes, environment, image, then create and start; a failure is remembered (it shows in
    /// the container's waiting state) and retried after a back-off.
    async fn start_container(&mut self, name: &str, attempt: u32, observed: &Observed) -> Result<(), SyncError> {
        let Some((container, _)) = self.container_spec(name) else { return Ok(()) };
        let container = container.clone();
        let Some(sandbox) = observed.sandbox().filter(|s| s.ready).cloned() else { return Ok(()) };
        let now = now_ms();
        let mut sources = match self.sources().await {
            Ok(s) => s,
            Err(e) => {
                self.memory.failed(name, "CreateContainerConfigError", e.to_string(), now);
                return Ok(());
            }
        };
        if let Err(e) = self.issue_tokens(now).await {
            let message = format!("MountVolume.SetUp failed: failed to fetch token: {e}");
            self.event(None, "Warning", "FailedMount", &message).await;
            self.memory.failed(name, "ContainerCreating", message, now);
            return Ok(());
        }
        sources.tokens = self.memory.tokens.iter().map(|(k, t)| (k.clone(), t.token.clone())).collect();
        // Volumes.
        let volume_paths = match super::volumes::volumes(self.pod, &sources) {
            Ok(v) => super::volumes::materialize(&self.pod_dir(), &v).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let volume_paths = match volume_paths {
            Ok(p) => p,
            Err(message) => {
                self.event(None, "Warning", "FailedMount", &format!("MountVolume.SetUp failed: {message}")).await;
                self.memory.failed(name, "ContainerCreating", message, now);
                return Ok(());
            }
        };
        let termination = self.termination_file(name, attempt);
        if let Some(parent) = termination.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&termination, b"");
        let mounts = match super::volumes::container_mounts(&container, &volume_paths, Some(&termination)) {
            Ok(m) => m,
            Err(message) => {
                self.memory.failed(name, "CreateContainerConfigError", message, now);
                return Ok(());
            }
        };
        // Environment.
        let mut pod_for_env = self.pod.clone();
        pod_for_env["status"]["podIP"] = sandbox.ip.clone().into();
        pod_for_env["status"]["podIPs"] = json!([{"ip": sandbox.ip}]);
        pod_for_env["status"]["hostIP"] = self.shared.host_ip.clone().into();
        pod_for_env["status"]["hostIPs"] = json!([{"ip": self.shared.host_ip}]);
        let env = match super::env::resolve(&pod_for_env, &container, &sources) {
            Ok(env) => env,
            Err(message) => {
                self.event(Some(name), "Warning", "Failed", &format!("Error: {message}")).await;
                self.memory.failed(name, "CreateContainerConfigError", message, now);
                return Ok(());
            }
        };
        let sandbox_config = spec::sandbox_config(
            self.pod,
            sandbox.attempt,
            &spec::log_directory(&self.shared.logs_dir, self.pod),
            &self.shared.dns,
        );
        // Image.
        if !self.ensure_image(name, &container, &sources, &sandbox_config).await {
            return Ok(());
        }
        if attempt > 0 && observed.latest(name).is_some_and(|c| c.state == RunState::Exited) {
            self.memory.restarted(name, now);
        }
        let mut cri = self.shared.cri.clone();
        let config = spec::container_config(self.pod, &container, attempt, &env, mounts);
        let id = match cri.create_container(&sandbox.id, config, sandbox_config).await {
            Ok(id) => id,
            Err(e) => {
                let message = e.to_string();
                self.event(Some(name), "Warning", "Failed", &format!("Error: {message}")).await;
                self.memory.failed(name, "CreateContainerError", message, now);
                return Ok(());
            }
        };
        self.event(Some(name), "Normal", "Created", &format!("Created container: {name}")).await;
        if let Err(e) = cri.start_container(&id).await {
            let message = e.to_string();
            self.event(Some(name), "Warning", "Failed", &format!("Error: {message}")).await;
            self.memory.failed(name, "RunContainerError", message, now);
            return Ok(());
        }
        self.memory.started(name);
        self.event(Some(name), "Normal", "Started", &format!("Started container {name}")).await;
        let budget = self.grace().max(Duration::from_secs(30));
        if let Some(failure) = run_hook(&self.shared.cri, &container, &id, &sandbox.ip, "postStart", budget).await {
            // Upstream kills a container whose postStart hook fails; its restart policy decides.
            let message = format!("PostStartHook failed: {failure}");
            self.event(Some(name), "Warning", "FailedPostStartHook", &message).await;
            cri.stop_container(&id, self.grace()).await?;
        }
        Ok(())
    }

    /// Pulls the container's image as its pull policy says; false (with the failure remembered)
    /// when the image is not there.
    async fn ensure_image(
        &mut self,
        name: &str,
        container: &Value,
        sources: &Sources,
        sandbox: &k8s_cri::v1::PodSandboxConfig,
    ) -> bool {
        let image = container["image"].as_str().unwrap_or("").to_string();
        let policy = container["imagePullPolicy"].as_str().unwrap_or_else(|| {
            if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':') {
                "Always"
            } else {
                "IfNotPresent"
            }
        });
        let now = now_ms();
        let mut cri = self.shared.cri.clone();
        let present = cri.image_id(&image).await.ok().flatten().is_some();
        if policy == "Never" || (policy == "IfNotPresent" && present) {
            if present {
                let message = format!("Container image \"{image}\" already present on machine");
                self.event(Some(name), "Normal", "Pulled", &message).await;
                return true;
            }
            let message = format!("Container image \"{image}\" is not present with pull policy of Never");
            self.event(Some(name), "Warning", "ErrImageNeverPull", &message).await;
            self.memory.failed(name, "ErrImageNeverPull", message, now);
            return false;
        }
        self.event(Some(name), "Normal", "Pulling", &format!("Pulling image \"{image}\"")).await;
        let pull_secrets: Vec<Value> = self.pod["spec"]["imagePullSecrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| sources.secrets.get(s["name"].as_str().unwrap_or("")).cloned())
            .collect();
        let auth = super::env::registry_auth(&image, &pull_secrets).map(|(username, password, auth, server)| {
            k8s_cri::v1::AuthConfig { username, password, auth, server_address: server, ..Default::default() }
        });
        let started = Instant::now();
        match cri.pull_image(&image, auth, sandbox).await {
            Ok(_) => {
                let took = started.elapsed();
                let message = format!("Successfully pulled image \"{image}\" in {}ms", took.as_millis());
                self.event(Some(name), "Normal", "Pulled", &message).await;
                true
            }
            Err(e) => {
                let message = format!("Failed to pull image \"{image}\": {e}");
                self.event(Some(name), "Warning", "Failed", &message).await;
                self.event(Some(name), "Warning", "Failed", "Error: ErrImagePull").await;
                self.memory.failed(name, "ErrImagePull", message, now);
                false
            }
        }
    }

    /// Requests the service-account tokens the pod's projected volumes need and that are missing
    /// or due for renewal; `Ok(true)` when any was (re)issued.
    async fn issue_tokens(&mut self, now: u64) -> Result<bool, skiff_client::ClientError> {
        let ns = super::meta(self.pod, "namespace");
        let pod_name = super::meta(self.pod, "name");
        let account = self.pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
        let mut issued = false;
        for spec in super::volumes::token_specs(self.pod) {
            let key = spec.key();
            if self.memory.tokens.get(&key).is_some_and(|t| t.refresh_at_ms > now) {
                continue;
            }
            let mut request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": spec.expiration_seconds,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": self.uid()}}});
            if let Some(audience) = &spec.audience {
                request["spec"]["audiences"] = json!([audience]);
            }
            let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}/token");
            let answer: Value = self.shared.api.create(&path, &request).await?;
            let token = answer.pointer("/status/token").and_then(Value::as_str).unwrap_or("").to_string();
            // The server may cut the lifetime; renew at 80% of what was granted.
            let granted =
                answer.pointer("/spec/expirationSeconds").and_then(Value::as_i64).unwrap_or(spec.expiration_seconds);
            let refresh_at_ms = now + (granted.max(60) as u64) * 800;
            self.memory.tokens.insert(key, super::IssuedToken { token, refresh_at_ms });
            issued = true;
        }
        Ok(issued)
    }

    /// Renews the pod's projected service-account tokens that are due and rewrites its volumes
    /// in place, once its containers have been started with them.
    async fn renew_tokens(&mut self) {
        if self.memory.tokens.is_empty() {
            return;
        }
        let now = now_ms();
        match self.issue_tokens(now).await {
            Ok(false) => {}
            Ok(true) => {
                let sources = match self.sources().await {
                    Ok(mut s) => {
                        s.tokens = self.memory.tokens.iter().map(|(k, t)| (k.clone(), t.token.clone())).collect();
                        s
                    }
                    Err(e) => {
                        tracing::warn!(pod = %super::key(self.pod), "renewed tokens not written: {e}");
                        return;
                    }
                };
                let written = super::volumes::volumes(self.pod, &sources)
                    .and_then(|v| super::volumes::materialize(&self.pod_dir(), &v).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    tracing::warn!(pod = %super::key(self.pod), "renewed tokens not written: {e}");
                }
            }
            Err(e) => tracing::warn!(pod = %super::key(self.pod), "service account token not renewed: {e}"),
        }
    }

    /// The ConfigMaps and Secrets the pod refers to, fetched now.
    async fn sources(&self) -> Result<Sources, skiff_client::ClientError> {
        let ns = super::meta(self.pod, "namespace");
        let mut sources = Sources { node_allocatable: self.shared.node_allocatable.clone(), ..Default::default() };
        for (secret, name) in super::env::referenced(self.pod) {
            let kind = if secret { "secrets" } else { "configmaps" };
            match self.shared.api.get::<Value>(&format!("/api/v1/namespaces/{ns}/{kind}/{name}")).await {
                Ok(obj) => {
                    if secret {
                        sources.secrets.insert(name, obj);
                    } else {
                        sources.config_maps.insert(name, obj);
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sources)
    }

    /// Runs the probes that are due for running containers.
    async fn probe(&mut self, observed: &Observed) {
        let now = now_ms();
        let ip = observed.sandbox().map(|s| s.ip.clone()).unwrap_or_default();
        for c in observed.containers.iter().filter(|c| c.state == RunState::Running) {
            let Some((spec, false)) = self.container_spec(&c.name) else { continue };
            let spec = spec.clone();
            let started_ms = (c.started_at / 1_000_000).max(0) as u64;
            let probes = self.memory.probes.get(&c.id).cloned().unwrap_or_default();
            let startup_done = probe::started(&spec, Some(&probes));
            for kind in [probe::Kind::Startup, probe::Kind::Liveness, probe::Kind::Readiness] {
                // The startup probe runs until it succeeds; the others only after.
                if (kind == probe::Kind::Startup) == startup_done {
                    continue;
                }
                let Some(p) = probe::Probe::of(&spec, kind) else { continue };
                if !probe::due(&p, probes.get(kind), started_ms, now) {
                    continue;
                }
                let (ok, message) = run_probe(&self.shared.cri, &c.id, &ip, &p).await;
                let entry = self.memory.probes.entry(c.id.clone()).or_default();
                probe::record(&p, entry.tally(kind), ok, message.clone(), now);
                if !ok {
                    let text = format!("{} probe failed: {message}", kind.title());
                    self.event(Some(&c.name), "Warning", "Unhealthy", &text).await;
                }
            }
        }
        let live: std::collections::BTreeSet<&str> = observed.containers.iter().map(|c| c.id.as_str()).collect();
        self.memory.probes.retain(|id, _| live.contains(id.as_str()));
    }

    /// Writes the status if it changed.
    async fn report(&mut self, observed: &Observed, last: &mut Option<Value>) -> Result<(), SyncError> {
        let cx = status::Context { memory: self.memory, now_ms: now_ms(), host_ip: &self.shared.host_ip };
        let computed = status::pod_status(self.pod, observed, &cx);
        let current = &self.pod["status"];
        let drifted = ["phase", "podIP", "containerStatuses", "initContainerStatuses"]
            .iter()
            .any(|f| current[*f] != computed[*f])
            || condition_statuses(current) != condition_statuses(&computed);
        if !drifted && last.as_ref() == Some(&computed) {
            return Ok(());
        }
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/status",
            super::meta(self.pod, "namespace"),
            super::meta(self.pod, "name")
        );
        let patch = json!({"metadata": {"uid": self.uid()}, "status": &computed});
        match self.shared.api.patch_merge::<Value>(&path, &patch).await {
            Ok(_) => {
                *last = Some(computed);
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => {
                *last = None;
                Err(e.into())
            }
        }
    }
}

fn condition_statuses(status: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["type"].as_str().unwrap_or("").to_string(), c["status"].as_str().unwrap_or("").to_string()))
        .collect();
    out.sort();
    out
}

/// Runs one probe: (success, what happened).
async fn run_probe(cri: &Cri, container_id: &str, pod_ip: &str, p: &probe::Probe) -> (bool, String) {
    run_action(cri, container_id, pod_ip, &p.action, Duration::from_secs(p.timeout_s)).await
}

/// Runs a probe's or a hook's handler against the container: (success, what happened).
async fn run_action(
    cri: &Cri,
    container_id: &str,
    pod_ip: &str,
    action: &probe::Action,
    timeout: Duration,
) -> (bool, String) {
    match action {
        probe::Action::Exec { command } => {
            let mut cri = cri.clone();
            match cri.exec_sync(container_id, command.clone(), timeout).await {
                Ok((0, _, _)) => (true, String::new()),
                Ok((code, out, err)) => {
                    let mut text = String::from_utf8_lossy(&out).trim().to_string();
                    let err = String::from_utf8_lossy(&err).trim().to_string();
                    if !err.is_empty() {
                        text = if text.is_empty() { err } else { format!("{text}\n{err}") };
                    }
                    (false, if text.is_empty() { format!("command exited with {code}") } else { text })
                }
                Err(e) => (false, e.to_string()),
            }
        }
        probe::Action::Tcp { host, port } => {
            let addr = format!("{}:{port}", host.as_deref().unwrap_or(pod_ip));
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => (true, String::new()),
                Ok(Err(e)) => (false, format!("dial tcp {addr}: {e}")),
                Err(_) => (false, format!("dial tcp {addr}: i/o timeout")),
            }
        }
        probe::Action::Http { scheme, host, port, path, headers } => {
            let https = scheme.eq_ignore_ascii_case("HTTPS");
            let url_scheme = if https { "https" } else { "http" };
            let host = host.as_deref().unwrap_or(pod_ip);
            match tokio::time::timeout(timeout, super::http_probe::status(https, host, *port, path, headers)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => (true, String::new()),
                Ok(Ok(code)) => (false, format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => (false, format!("Get \"{url_scheme}://{host}:{port}{path}\": {e}")),
                Err(_) => (false, format!("Get \"{url_scheme}://{host}:{port}{path}\": context deadline exceeded")),
            }
        }
    }
}

/// Runs the container's `which` hook (`postStart`, `preStop`) within `budget`; the failure
/// message if it failed.
async fn run_hook(
    cri: &Cri,
    spec: &Value,
    container_id: &str,
    pod_ip: &str,
    which: &str,
    budget: Duration,
) -> Option<String> {
    match probe::hook(spec, which)? {
        probe::Hook::Sleep(seconds) => {
            tokio::time::sleep(Duration::from_secs(seconds).min(budget)).await;
            None
        }
        probe::Hook::Run(action) => {
            let (ok, message) =
                run_action(cri, container_id, pod_ip, &action, budget.max(Duration::from_secs(1))).await;
            (!ok).then_some(message)
        }
    }
}
