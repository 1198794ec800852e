//! Liveness, readiness and startup probes: when each is due and what its results add up to,
//! with upstream's thresholds. Running a probe (exec, HTTP, TCP) is the worker's job.

use serde_json::Value;

/// The three kinds, each with its own thresholds and consequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn field(self) -> &'static str {
        match self {
            Kind::Startup => "startupProbe",
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// How to probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Exec { command: Vec<String> },
    Http { scheme: String, host: Option<String>, port: u16, path: String, headers: Vec<(String, String)> },
    Tcp { host: Option<String>, port: u16 },
}

/// One probe of one container, with upstream's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub kind: Kind,
    pub action: Action,
    pub initial_delay_s: u64,
    pub period_s: u64,
    pub timeout_s: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// A lifecycle hook (`postStart`, `preStop`).
#[derive(Debug, Clone, PartialEq)]
pub enum Hook {
    Run(Action),
    Sleep(u64),
}

/// The container's `lifecycle.<which>` hook, if it has one the agent can run.
pub fn hook(container: &Value, which: &str) -> Option<Hook> {
    let h = container.get("lifecycle")?.get(which)?;
    if let Some(seconds) = h.pointer("/sleep/seconds").and_then(Value::as_u64) {
        return Some(Hook::Sleep(seconds));
    }
    action(container, h).map(Hook::Run)
}

/// The handler in `p` (exec, httpGet or tcpSocket), with named ports resolved against the
/// container's ports.
fn action(container: &Value, p: &Value) -> Option<Action> {
    let port = |v: &Value| -> Option<u16> {
        match v {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.parse().ok().or_else(|| {
                container["ports"].as_array()?.iter().find(|cp| cp["name"] == *s)?["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
            }),
            _ => None,
        }
    };
    let action = if let Some(exec) = p.get("exec") {
        let command = exec["command"].as_array()?.iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
        Action::Exec { command }
    } else if let Some(http) = p.get("httpGet") {
        Action::Http {
            scheme: http["scheme"].as_str().unwrap_or("HTTP").to_string(),
            host: http["host"].as_str().filter(|h| !h.is_empty()).map(str::to_string),
            port: port(&http["port"])?,
            path: http["path"].as_str().unwrap_or("/").to_string(),
            headers: http["httpHeaders"]
                .as_array()
                .map(|hs| {
                    hs.iter()
                        .filter_map(|h| Some((h["name"].as_str()?.to_string(), h["value"].as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    } else if let Some(tcp) = p.get("tcpSocket") {
        Action::Tcp {
            host: tcp["host"].as_str().filter(|h| !h.is_empty()).map(str::to_string),
            port: port(&tcp["port"])?,
        }
    } else {
        return None;
    };
    Some(action)
}

impl Probe {
    /// The container's probe of `kind`, if it has one the agent can run.
    pub fn of(container: &Value, kind: Kind) -> Option<Probe> {
        let p = container.get(kind.field())?;
        let action = action(container, p)?;
        let num = |field: &str, default: u64| p[field].as_u64().unwrap_or(default);
        Some(Probe {
            kind,
            action,
            initial_delay_s: num("initialDelaySeconds", 0),
            period_s: num("periodSeconds", 10).max(1),
            timeout_s: num("timeoutSeconds", 1).max(1),
            // Liveness and startup probes must succeed once; upstream rejects anything else.
            success_threshold: if kind == Kind::Readiness { num("successThreshold", 1).max(1) as u32 } else { 1 },
            failure_threshold: num("failureThreshold", 3).max(1) as u32,
        })
    }
}

/// The running tally of one probe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// The settled result: `None` until the thresholds decide.
    pub result: Option<bool>,
    pub successes: u32,
    pub failures: u32,
    pub last_run_ms: Option<u64>,
    pub last_message: String,
}

/// Probe results of one container instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerProbes {
    pub startup: Tally,
    pub liveness: Tally,
    pub readiness: Tally,
}

impl ContainerProbes {
    pub fn tally(&mut self, kind: Kind) -> &mut Tally {
        match kind {
            Kind::Startup => &mut self.startup,
            Kind::Liveness => &mut self.liveness,
            Kind::Readiness => &mut self.readiness,
        }
    }

    pub fn get(&self, kind: Kind) -> &Tally {
        match kind {
            Kind::Startup => &self.startup,
            Kind::Liveness => &self.liveness,
            Kind::Readiness => &self.readiness,
        }
    }

    /// Why the container must be killed, if a liveness or startup probe failed for good.
    pub fn kill_reason(&self) -> Option<String> {
        if self.startup.result == Some(false) {
            return Some(format!("Container failed startup probe: {}", self.startup.last_message));
        }
        if self.liveness.result == Some(false) {
            return Some(format!("Container failed liveness probe, will be restarted: {}", self.liveness.last_message));
        }
        None
    }
}

/// Whether `probe` is due at `now_ms` for a container started at `started_ms`.
pub fn due(probe: &Probe, tally: &Tally, started_ms: u64, now_ms: u64) -> bool {
    if now_ms < started_ms + probe.initial_delay_s * 1000 {
        return false;
    }
    tally.last_run_ms.is_none_or(|last| now_ms >= last + probe.period_s * 1000)
}

/// Adds one result; returns whether the settled result changed.
pub fn record(probe: &Probe, tally: &mut Tally, ok: bool, message: String, now_ms: u64) -> bool {
    tally.last_run_ms = Some(now_ms);
    tally.last_message = message;
    if ok {
        tally.successes += 1;
        tally.failures = 0;
    } else {
        tally.failures += 1;
        tally.successes = 0;
    }
    let before = tally.result;
    if ok && tally.successes >= probe.success_threshold {
        tally.result = Some(true);
    } else if !ok && tally.failures >= probe.failure_threshold {
        tally.result = Some(false);
    }
    before != tally.result
}

/// Whether the container counts as started (its startup probe, if any, succeeded).
pub fn started(container: &Value, probes: Option<&ContainerProbes>) -> bool {
    container.get("startupProbe").is_none() || probes.is_some_and(|p| p.startup.result == Some(true))
}

/// Whether the running container counts as ready.
pub fn ready(container: &Value, probes: Option<&ContainerProbes>) -> bool {
    started(container, probes)
        && (container.get("readinessProbe").is_none() || probes.is_some_and(|p| p.readiness.result == Some(true)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn probes_take_upstreams_defaults_and_resolve_named_ports() {
        let c = json!({"name": "app", "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2, "failureThreshold": 1},
            "startupProbe": {"exec": {"command": ["cat", "/ready"]}}});
        let readiness = Probe::of(&c, Kind::Readiness).expect("readiness probe");
        assert_eq!(
            readiness.action,
            Action::Http { scheme: "HTTP".into(), host: None, port: 8080, path: "/healthz".into(), headers: vec![] }
        );
        assert_eq!((readiness.period_s, readiness.timeout_s, readiness.failure_threshold), (10, 1, 3));
        let liveness = Probe::of(&c, Kind::Liveness).expect("liveness probe");
        assert_eq!((liveness.period_s, liveness.failure_threshold), (2, 1));
        let startup = Probe::of(&c, Kind::Startup).expect("startup probe");
        assert_eq!(startup.action, Action::Exec { command: vec!["cat".into(), "/ready".into()] });
        assert!(Probe::of(&json!({"name": "x"}), Kind::Liveness).is_none());
    }

    #[test]
    fn lifecycle_hooks_are_read_like_probe_handlers() {
        let c = json!({"ports": [{"name": "http", "containerPort": 80}], "lifecycle": {
            "preStop": {"httpGet": {"path": "/drain", "port": "http"}},
            "postStart": {"sleep": {"seconds": 2}}}});
        assert_eq!(
            hook(&c, "preStop"),
            Some(Hook::Run(Action::Http {
                scheme: "HTTP".into(),
                host: None,
                port: 80,
                path: "/drain".into(),
                headers: vec![]
            }))
        );
        assert_eq!(hook(&c, "postStart"), Some(Hook::Sleep(2)));
        assert_eq!(hook(&json!({}), "preStop"), None);
    }

    #[test]
    fn thresholds_settle_the_result() {
        let c = json!({"livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 3}});
        let probe = Probe::of(&c, Kind::Liveness).expect("probe");
        let mut tally = Tally::default();
        assert!(record(&probe, &mut tally, true, String::new(), 0));
        assert_eq!(tally.result, Some(true));
        assert!(!record(&probe, &mut tally, false, "exit 1".into(), 1));
        assert!(!record(&probe, &mut tally, false, "exit 1".into(), 2));
        assert!(record(&probe, &mut tally, false, "exit 1".into(), 3), "the third failure settles it");
        let probes = ContainerProbes { liveness: tally, ..Default::default() };
        assert!(probes.kill_reason().is_some_and(|m| m.contains("liveness probe")));
    }

    #[test]
    fn probes_wait_for_the_initial_delay_and_their_period() {
        let c = json!({"readinessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 5, "periodSeconds": 3}});
        let probe = Probe::of(&c, Kind::Readiness).expect("probe");
        let mut tally = Tally::default();
        assert!(!due(&probe, &tally, 1_000, 5_999));
        assert!(due(&probe, &tally, 1_000, 6_000));
        tally.last_run_ms = Some(6_000);
        assert!(!due(&probe, &tally, 1_000, 8_999));
        assert!(due(&probe, &tally, 1_000, 9_000));
    }

    #[test]
    fn readiness_needs_the_probe_and_startup_to_succeed() {
        let plain = json!({"name": "a"});
        assert!(ready(&plain, None));
        let probed = json!({"name": "a", "readinessProbe": {"tcpSocket": {"port": 80}}});
        assert!(!ready(&probed, None));
        let mut probes = ContainerProbes::default();
        probes.readiness.result = Some(true);
        assert!(ready(&probed, Some(&probes)));
    }
}
