//! The status the agent reports for a pod: phase, conditions, IPs and every container's state,
//! in the shape kubectl's columns and `describe` read.

use serde_json::json;
use serde_json::Value;

use super::containers;
use super::name_of;
use super::plan::terminal;
use super::probe;
use super::Memory;
use super::Observed;
use super::ObservedContainer;
use super::RestartPolicy;
use super::RunState;

/// What the status is computed from besides the pod and the runtime.
pub struct Context<'a> {
    pub memory: &'a Memory,
    pub now_ms: u64,
    pub host_ip: &'a str,
}

/// The pod's status. Conditions keep their lastTransitionTime while their status stays the same,
/// so an unchanged pod gives an identical status (and the agent writes nothing).
pub fn pod_status(pod: &Value, observed: &Observed, cx: &Context<'_>) -> Value {
    let now = super::rfc3339_ms(cx.now_ms);
    let old = &pod["status"];
    let policy = RestartPolicy::of(pod);
    let sandbox = observed.sandbox();
    let sandbox_ready = sandbox.is_some_and(|s| s.ready);
    let init_specs = containers(pod, "initContainers");
    let app_specs = containers(pod, "containers");

    let init_statuses: Vec<Value> =
        init_specs.iter().map(|c| container_status(pod, c, observed, cx, true, policy, false)).collect();
    let initialized = init_specs
        .iter()
        .all(|c| observed.latest(name_of(c)).is_some_and(|o| o.state == RunState::Exited && o.exit_code == 0));
    let app_statuses: Vec<Value> =
        app_specs.iter().map(|c| container_status(pod, c, observed, cx, false, policy, !initialized)).collect();
    let all_ready = !app_statuses.is_empty() && app_statuses.iter().all(|s| s["ready"] == true);

    let phase = phase(pod, observed, initialized);
    let terminal_phase = matches!(phase, "Succeeded" | "Failed");
    let ready = all_ready && !terminal_phase;
    let condition = |kind: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let since = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(&now)
            .to_string();
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(reason) = reason.filter(|_| !ok) {
            c["reason"] = reason.into();
        }
        c
    };
    let not_ready_reason = if terminal_phase { "PodCompleted" } else { "ContainersNotReady" };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None),
        condition("Initialized", initialized || terminal_phase, Some("ContainersNotInitialized")),
        condition("Ready", ready, Some(not_ready_reason)),
        condition("ContainersReady", ready, Some(not_ready_reason)),
    ];
    if !ready && !terminal_phase {
        let waiting: Vec<&str> =
            app_statuses.iter().filter(|s| s["ready"] != true).filter_map(|s| s["name"].as_str()).collect();
        let message = format!("containers with unready status: [{}]", waiting.join(" "));
        conditions[2]["message"] = message.clone().into();
        conditions[3]["message"] = message.into();
    }
    // Conditions the agent does not own (PodScheduled, readiness gates' types) stay as they are.
    for c in old["conditions"].as_array().into_iter().flatten() {
        let kind = c["type"].as_str().unwrap_or("");
        if !conditions.iter().any(|mine| mine["type"] == kind) {
            conditions.push(c.clone());
        }
    }
    conditions.sort_by_key(|c| condition_rank(c["type"].as_str().unwrap_or("")));

    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": cx.host_ip,
        "hostIPs": [{"ip": cx.host_ip}],
        "startTime": old["startTime"].as_str().map(str::to_string).or_else(|| cx.memory.first_seen.clone()).unwrap_or(now),
        "containerStatuses": app_statuses,
        "qosClass": old["qosClass"].clone(),
    });
    if status["qosClass"].is_null() {
        status["qosClass"] = qos_class(pod).into();
    }
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = init_statuses.into();
    }
    let host_network = pod["spec"]["hostNetwork"].as_bool() == Some(true);
    let ip = if host_network { Some(cx.host_ip.to_string()) } else { sandbox.map(|s| s.ip.clone()) };
    if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
        status["podIP"] = ip.clone().into();
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

fn condition_rank(kind: &str) -> usize {
    ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(5)
}

/// The phase, as upstream's kubelet derives it from the containers.
pub fn phase(pod: &Value, observed: &Observed, initialized: bool) -> &'static str {
    if let Some(done) = terminal(pod, observed) {
        return done;
    }
    if !initialized {
        return "Pending";
    }
    let specs = containers(pod, "containers");
    let mut running = 0;
    let mut waiting = 0;
    let mut exited = 0;
    for c in specs {
        match observed.latest(name_of(c)).map(|o| o.state) {
            Some(RunState::Running) => running += 1,
            Some(RunState::Exited) => exited += 1,
            _ => waiting += 1,
        }
    }
    if running > 0 || (exited > 0 && waiting == 0) {
        // Exited containers that will restart keep the pod Running, as upstream's do.
        "Running"
    } else {
        "Pending"
    }
}

/// Upstream's QoS class from the containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers(pod, "containers").iter().chain(containers(pod, "initContainers")) {
        let requests = &c["resources"]["requests"];
        let limits = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (req, lim) = (requests[r].as_str(), limits[r].as_str());
            any |= req.is_some() || lim.is_some();
            if lim.is_none() || (req.is_some() && req != lim) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn container_status(
    pod: &Value,
    spec: &Value,
    observed: &Observed,
    cx: &Context<'_>,
    init: bool,
    policy: RestartPolicy,
    blocked_by_init: bool,
) -> Value {
    let name = name_of(spec);
    let image = spec["image"].as_str().unwrap_or("");
    let latest = observed.latest(name);
    let probes = latest.and_then(|c| cx.memory.probes.get(&c.id));
    let mut status = json!({"name": name, "image": image, "imageID": "", "restartCount": 0,
        "ready": false, "started": false});
    let Some(c) = latest else {
        status["state"] = waiting_state(name, image, cx, blocked_by_init);
        return status;
    };
    status["imageID"] = c.image_ref.clone().into();
    status["containerID"] = format!("containerd://{}", c.id).into();
    status["restartCount"] = c.attempt.into();
    if let Some(previous) = observed.previous(name) {
        status["lastState"] = json!({"terminated": terminated(previous)});
    }
    match c.state {
        RunState::Running => {
            status["state"] = json!({"running": {"startedAt": super::rfc3339(c.started_at)}});
            status["started"] = probe::started(spec, probes).into();
            status["ready"] = (!init && probe::ready(spec, probes)).into();
        }
        RunState::Exited => {
            let restarts =
                !init && policy.restarts(c.exit_code) || init && c.exit_code != 0 && policy != RestartPolicy::Never;
            if restarts && cx.memory.backing_off(name, cx.now_ms) {
                let pod_ref = format!(
                    "{}_{}({})",
                    super::meta(pod, "name"),
                    super::meta(pod, "namespace"),
                    super::meta(pod, "uid")
                );
                let delay = cx.memory.backoff.get(name).map(|b| b.delay_ms / 2000).unwrap_or(10);
                status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off {delay}s restarting failed container={name} pod={pod_ref}")}});
                status["lastState"] = json!({"terminated": terminated(c)});
            } else {
                status["state"] = json!({"terminated": terminated(c)});
            }
            if init && c.exit_code == 0 {
                status["ready"] = true.into();
            }
        }
        RunState::Created | RunState::Unknown => {
            status["state"] = waiting_state(name, image, cx, blocked_by_init);
        }
    }
    status
}

fn terminated(c: &ObservedContainer) -> Value {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    let mut t = json!({"exitCode": c.exit_code, "reason": reason, "containerID": format!("containerd://{}", c.id)});
    if c.started_at > 0 {
        t["startedAt"] = super::rfc3339(c.started_at).into();
    }
    if c.finished_at > 0 {
        t["finishedAt"] = super::rfc3339(c.finished_at).into();
    }
    if !c.message.is_empty() {
        t["message"] = c.message.clone().into();
    }
    t
}

fn waiting_state(name: &str, image: &str, cx: &Context<'_>, blocked_by_init: bool) -> Value {
    if let Some(f) = cx.memory.failures.get(name) {
        // The failure shows as itself right after it happened, then as the back-off it causes.
        let (reason, message) = if f.reason == "ErrImagePull" && cx.now_ms >= f.at_ms + 1000 {
            ("ImagePullBackOff".to_string(), format!("Back-off pulling image \"{image}\": {}", f.message))
        } else {
            (f.reason.clone(), f.message.clone())
        };
        return json!({"waiting": {"reason": reason, "message": message}});
    }
    let reason = if blocked_by_init { "PodInitializing" } else { "ContainerCreating" };
    json!({"waiting": {"reason": reason}})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::*;
    use super::*;

    fn cx(memory: &Memory) -> Context<'_> {
        Context { memory, now_ms: 1_700_000_000_000, host_ip: "10.0.0.1" }
    }

    fn web() -> Value {
        pod(json!({"containers": [{"name": "app", "image": "busybox"}]}))
    }

    #[test]
    fn a_pod_without_a_sandbox_is_pending_and_creating() {
        let memory = Memory::default();
        let s = pod_status(&web(), &Observed::default(), &cx(&memory));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");
        assert!(s.get("podIP").is_none());
        assert_eq!(s["hostIP"], "10.0.0.1");
        assert_eq!(s["qosClass"], "BestEffort");
    }

    #[test]
    fn a_running_pod_is_ready_with_its_ip() {
        let memory = Memory::default();
        let observed =
            Observed { sandboxes: vec![sandbox(0, true)], containers: vec![container("app", 0, RunState::Running, 0)] };
        let s = pod_status(&web(), &observed, &cx(&memory));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.5");
        assert_eq!(s["podIPs"][0]["ip"], "10.244.0.5");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["ready"], true);
        assert_eq!(c["started"], true);
        assert_eq!(c["containerID"], "containerd://app-0");
        assert!(c["state"]["running"]["startedAt"].is_string());
        let ready = s["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).cloned();
        assert_eq!(ready.map(|c| c["status"].clone()), Some(json!("True")));
    }

    #[test]
    fn an_unchanged_pod_gets_an_identical_status() {
        let memory = Memory::default();
        let observed =
            Observed { sandboxes: vec![sandbox(0, true)], containers: vec![container("app", 0, RunState::Running, 0)] };
        let first = pod_status(&web(), &observed, &cx(&memory));
        let mut again = web();
        again["status"] = first.clone();
        let later = Context { memory: &memory, now_ms: 1_700_000_100_000, host_ip: "10.0.0.1" };
        assert_eq!(pod_status(&again, &observed, &later), first);
    }

    #[test]
    fn a_crashing_container_shows_crash_loop_back_off_and_its_last_state() {
        let mut memory = Memory::default();
        memory.restarted("app", 1_700_000_000_000);
        let observed = Observed {
            sandboxes: vec![sandbox(0, true)],
            containers: vec![container("app", 0, RunState::Exited, 1), container("app", 1, RunState::Exited, 1)],
        };
        let s = pod_status(&web(), &observed, &cx(&memory));
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["ready"], false);
        assert_eq!(s["phase"], "Running");
    }

    #[test]
    fn image_pull_errors_turn_into_back_off() {
        let mut memory = Memory::default();
        memory.failed("app", "ErrImagePull", "manifest unknown".into(), 1_700_000_000_000);
        let observed = Observed { sandboxes: vec![sandbox(0, true)], containers: vec![] };
        let s = pod_status(&web(), &observed, &cx(&memory));
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ErrImagePull");
        let later = Context { memory: &memory, now_ms: 1_700_000_002_000, host_ip: "10.0.0.1" };
        let s = pod_status(&web(), &observed, &later);
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "ImagePullBackOff");
        assert!(s["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("manifest unknown")));
    }

    #[test]
    fn finished_pods_succeed_or_fail_by_exit_code() {
        let memory = Memory::default();
        let p = pod(json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "b"}]}));
        let done = |code| Observed {
            sandboxes: vec![sandbox(0, false)],
            containers: vec![container("app", 0, RunState::Exited, code)],
        };
        let s = pod_status(&p, &done(0), &cx(&memory));
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(s["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(pod_status(&p, &done(3), &cx(&memory))["phase"], "Failed");
    }

    #[test]
    fn pending_init_containers_hold_the_app_containers() {
        let memory = Memory::default();
        let p = pod(json!({"initContainers": [{"name": "setup", "image": "b"}],
            "containers": [{"name": "app", "image": "b"}]}));
        let observed = Observed {
            sandboxes: vec![sandbox(0, true)],
            containers: vec![container("setup", 0, RunState::Running, 0)],
        };
        let s = pod_status(&p, &observed, &cx(&memory));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing");
        assert!(s["initContainerStatuses"][0]["state"]["running"].is_object());
        let initialized =
            s["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Initialized")).cloned();
        assert_eq!(initialized.map(|c| c["status"].clone()), Some(json!("False")));
    }

    #[test]
    fn readiness_probes_gate_readiness_and_the_scheduled_condition_is_kept() {
        let memory = Memory::default();
        let mut p =
            pod(json!({"containers": [{"name": "app", "image": "b", "readinessProbe": {"tcpSocket": {"port": 80}}}]}));
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t"}]);
        let observed =
            Observed { sandboxes: vec![sandbox(0, true)], containers: vec![container("app", 0, RunState::Running, 0)] };
        let s = pod_status(&p, &observed, &cx(&memory));
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        let types: Vec<&str> =
            s["conditions"].as_array().into_iter().flatten().filter_map(|c| c["type"].as_str()).collect();
        assert_eq!(types, vec!["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
        assert_eq!(s["conditions"][2]["message"], "containers with unready status: [app]");
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let with = |resources: Value| pod(json!({"containers": [{"name": "a", "resources": resources}]}));
        assert_eq!(qos_class(&with(json!({}))), "BestEffort");
        assert_eq!(qos_class(&with(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(qos_class(&with(json!({"requests": {"cpu": "1"}}))), "Burstable");
    }
}
