//! What to do next for a pod: the kubelet's "compute pod actions", as a pure function.
//!
//! The plan covers one step of progress (a new sandbox, the next init container, the app
//! containers that should run). The worker carries it out, looks at the runtime again and plans
//! again, so every decision is made on what the runtime really shows.

use serde_json::Value;

use super::containers;
use super::name_of;
use super::Memory;
use super::Observed;
use super::RestartPolicy;
use super::RunState;

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Stop every container (with the pod's grace period) and the sandbox.
    KillPod,
    /// Create a new sandbox (a fresh network namespace and IP).
    CreateSandbox { attempt: u32 },
    /// Pull the image if needed, then create and start this container.
    StartContainer { name: String, init: bool, attempt: u32 },
    /// Stop one running container (a failed liveness probe).
    KillContainer { id: String, name: String, message: String },
    /// The pod is gone or finished deleting on the node: remove its containers and sandboxes,
    /// then complete the deletion in the API.
    FinishDeletion,
}

/// The pod's phase as far as its containers go, deciding whether it still needs to run.
pub fn terminal(pod: &Value, observed: &Observed) -> Option<&'static str> {
    let policy = RestartPolicy::of(pod);
    if policy == RestartPolicy::Always {
        return None;
    }
    for init in containers(pod, "initContainers") {
        if let Some(c) = observed.latest(name_of(init)) {
            if c.state == RunState::Exited && c.exit_code != 0 && policy == RestartPolicy::Never {
                return Some("Failed");
            }
        }
    }
    let app = containers(pod, "containers");
    let mut failed = false;
    for spec in app {
        let c = observed.latest(name_of(spec))?;
        if c.state != RunState::Exited || policy.restarts(c.exit_code) {
            return None;
        }
        failed |= c.exit_code != 0;
    }
    if app.is_empty() {
        return None;
    }
    Some(if failed { "Failed" } else { "Succeeded" })
}

/// The next steps for `pod`, given what runs and what the agent remembers, at `now_ms`.
pub fn plan(pod: &Value, observed: &Observed, memory: &Memory, now_ms: u64) -> Vec<Step> {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return if observed.anything_running() { vec![Step::KillPod] } else { vec![Step::FinishDeletion] };
    }
    if terminal(pod, observed).is_some() {
        return if observed.anything_running() { vec![Step::KillPod] } else { Vec::new() };
    }
    let sandbox = observed.sandbox();
    match sandbox {
        None if !memory.may_try(super::SANDBOX, now_ms) => return Vec::new(),
        None => return vec![Step::CreateSandbox { attempt: 0 }],
        Some(s) if !s.ready && !memory.may_try(super::SANDBOX, now_ms) => return Vec::new(),
        Some(s) if !s.ready => {
            // The sandbox died (its network with it): everything starts over in a new one.
            let next = Step::CreateSandbox { attempt: s.attempt + 1 };
            return if observed.anything_running() { vec![Step::KillPod, next] } else { vec![next] };
        }
        Some(_) => {}
    }
    let policy = RestartPolicy::of(pod);
    for init in containers(pod, "initContainers") {
        let name = name_of(init);
        match observed.latest(name) {
            None if memory.may_try(name, now_ms) => {
                return vec![Step::StartContainer { name: name.into(), init: true, attempt: 0 }];
            }
            None => return Vec::new(),
            Some(c) if c.state == RunState::Exited && c.exit_code == 0 => continue,
            Some(c) if c.state == RunState::Exited => {
                if policy == RestartPolicy::Never || memory.backing_off(name, now_ms) || !memory.may_try(name, now_ms) {
                    return Vec::new();
                }
                return vec![Step::StartContainer { name: name.into(), init: true, attempt: c.attempt + 1 }];
            }
            Some(c) if c.state == RunState::Created => {
                return vec![Step::StartContainer { name: name.into(), init: true, attempt: c.attempt + 1 }];
            }
            // Running (or unknown): the next init container waits for this one.
            Some(_) => return Vec::new(),
        }
    }
    let mut steps = Vec::new();
    for spec in containers(pod, "containers") {
        let name = name_of(spec);
        match observed.latest(name) {
            None => {
                if memory.may_try(name, now_ms) {
                    steps.push(Step::StartContainer { name: name.into(), init: false, attempt: 0 });
                }
            }
            Some(c) if c.state == RunState::Running => {
                if let Some(why) = memory.probes.get(&c.id).and_then(|p| p.kill_reason()) {
                    steps.push(Step::KillContainer { id: c.id.clone(), name: name.into(), message: why });
                }
            }
            Some(c) if c.state == RunState::Created => {
                // Created but never started (the agent stopped in between): a fresh attempt.
                steps.push(Step::StartContainer { name: name.into(), init: false, attempt: c.attempt + 1 });
            }
            Some(c) if c.state == RunState::Exited => {
                if policy.restarts(c.exit_code) && !memory.backing_off(name, now_ms) && memory.may_try(name, now_ms) {
                    steps.push(Step::StartContainer { name: name.into(), init: false, attempt: c.attempt + 1 });
                }
            }
            Some(_) => {}
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::*;
    use super::*;

    fn web() -> Value {
        pod(json!({"containers": [{"name": "app", "image": "busybox"}]}))
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_then_its_containers() {
        assert_eq!(plan(&web(), &Observed::default(), &Memory::default(), 0), vec![Step::CreateSandbox { attempt: 0 }]);
        let observed = Observed { sandboxes: vec![sandbox(0, true)], containers: vec![] };
        assert_eq!(
            plan(&web(), &observed, &Memory::default(), 0),
            vec![Step::StartContainer { name: "app".into(), init: false, attempt: 0 }]
        );
    }

    #[test]
    fn a_running_pod_needs_nothing() {
        let observed =
            Observed { sandboxes: vec![sandbox(0, true)], containers: vec![container("app", 0, RunState::Running, 0)] };
        assert!(plan(&web(), &observed, &Memory::default(), 0).is_empty());
    }

    #[test]
    fn init_containers_run_one_at_a_time_and_in_order() {
        let p = pod(json!({"initContainers": [{"name": "one", "image": "b"}, {"name": "two", "image": "b"}],
            "containers": [{"name": "app", "image": "b"}]}));
        let mut observed = Observed { sandboxes: vec![sandbox(0, true)], containers: vec![] };
        assert_eq!(
            plan(&p, &observed, &Memory::default(), 0),
            vec![Step::StartContainer { name: "one".into(), init: true, attempt: 0 }]
        );
        observed.containers.push(container("one", 0, RunState::Running, 0));
        assert!(plan(&p, &observed, &Memory::default(), 0).is_empty(), "two waits for one");
        observed.containers[0] = container("one", 0, RunState::Exited, 0);
        assert_eq!(
            plan(&p, &observed, &Memory::default(), 0),
            vec![Step::StartContainer { name: "two".into(), init: true, attempt: 0 }]
        );
        observed.containers.push(container("two", 0, RunState::Exited, 0));
        assert_eq!(
            plan(&p, &observed, &Memory::default(), 0),
            vec![Step::StartContainer { name: "app".into(), init: false, attempt: 0 }]
        );
    }

    #[test]
    fn a_failed_init_container_fails_a_never_restarting_pod() {
        let p = pod(json!({"restartPolicy": "Never", "initContainers": [{"name": "one", "image": "b"}],
            "containers": [{"name": "app", "image": "b"}]}));
        let observed =
            Observed { sandboxes: vec![sandbox(0, true)], containers: vec![container("one", 0, RunState::Exited, 1)] };
        assert_eq!(terminal(&p, &observed), Some("Failed"));
        assert_eq!(plan(&p, &observed, &Memory::default(), 0), vec![Step::KillPod]);
    }

    #[test]
    fn exited_containers_restart_as_the_policy_says_after_their_back_off() {
        let exited = |code| Observed {
            sandboxes: vec![sandbox(0, true)],
            containers: vec![container("app", 0, RunState::Exited, code)],
        };
        let restart = vec![Step::StartContainer { name: "app".into(), init: false, attempt: 1 }];
        assert_eq!(plan(&web(), &exited(0), &Memory::default(), 0), restart);
        let mut memory = Memory::default();
        memory.restarted("app", 0);
        assert!(plan(&web(), &exited(1), &memory, 5_000).is_empty(), "crash-loop back-off");
        assert_eq!(plan(&web(), &exited(1), &memory, 10_000), restart);
        let on_failure = pod(json!({"restartPolicy": "OnFailure", "containers": [{"name": "app", "image": "b"}]}));
        assert_eq!(terminal(&on_failure, &exited(0)), Some("Succeeded"));
        assert_eq!(plan(&on_failure, &exited(0), &Memory::default(), 0), vec![Step::KillPod]);
        assert_eq!(plan(&on_failure, &exited(2), &Memory::default(), 0), restart);
        let never = pod(json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "b"}]}));
        assert_eq!(terminal(&never, &exited(2)), Some("Failed"));
    }

    #[test]
    fn a_failed_start_waits_for_its_back_off() {
        let observed = Observed { sandboxes: vec![sandbox(0, true)], containers: vec![] };
        let mut memory = Memory::default();
        memory.failed("app", "ErrImagePull", "manifest unknown".into(), 0);
        assert!(plan(&web(), &observed, &memory, 1_000).is_empty());
        assert_eq!(plan(&web(), &observed, &memory, 10_000).len(), 1);
    }

    #[test]
    fn a_failed_sandbox_is_retried_after_its_back_off() {
        let mut memory = Memory::default();
        memory.failed(super::super::SANDBOX, "FailedCreatePodSandBox", "runc failed".into(), 0);
        assert!(plan(&web(), &Observed::default(), &memory, 5_000).is_empty());
        assert_eq!(plan(&web(), &Observed::default(), &memory, 10_000), vec![Step::CreateSandbox { attempt: 0 }]);
    }

    #[test]
    fn a_dead_sandbox_is_replaced_and_its_containers_killed() {
        let observed = Observed {
            sandboxes: vec![sandbox(0, false)],
            containers: vec![container("app", 0, RunState::Running, 0)],
        };
        assert_eq!(
            plan(&web(), &observed, &Memory::default(), 0),
            vec![Step::KillPod, Step::CreateSandbox { attempt: 1 }]
        );
    }

    #[test]
    fn deletion_kills_then_finishes() {
        let mut p = web();
        p["metadata"]["deletionTimestamp"] = json!("2026-12-05T10:00:00Z");
        let running =
            Observed { sandboxes: vec![sandbox(0, true)], containers: vec![container("app", 0, RunState::Running, 0)] };
        assert_eq!(plan(&p, &running, &Memory::default(), 0), vec![Step::KillPod]);
        let stopped = Observed {
            sandboxes: vec![sandbox(0, false)],
            containers: vec![container("app", 0, RunState::Exited, 137)],
        };
        assert_eq!(plan(&p, &stopped, &Memory::default(), 0), vec![Step::FinishDeletion]);
    }
}
