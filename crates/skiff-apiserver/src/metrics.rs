//! Per-request metrics for `/metrics`, named and labelled the way upstream's API server exports
//! them (`apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_current_inflight_requests`, `apiserver_longrunning_requests`), so dashboards and
//! alerts written for Kubernetes read skiff unchanged.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::Uri;

use crate::request::parse_path;
use crate::request::Query;

/// Upper bounds (seconds) of the request latency buckets, as upstream uses them.
const BUCKETS: [f64; 16] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0, 60.0];

/// What a request is counted under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// GET, LIST, WATCH, POST, PUT, PATCH, APPLY, DELETE or DELETECOLLECTION, as upstream names them.
    pub verb: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: String,
    /// `resource` (one object), `namespace` (a collection in a namespace) or `cluster`; empty for
    /// paths that are not resources (discovery, OpenAPI, version).
    pub scope: &'static str,
}

impl RequestLabels {
    pub fn of(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let path = parse_path(uri.path()).ok().flatten();
        let named = path.as_ref().is_some_and(|p| p.name.is_some());
        let verb = match *method {
            Method::GET if Query::parse(uri.query()).flag("watch") => "WATCH",
            Method::GET if path.is_some() && !named => "LIST",
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH if crate::body::media_type(headers) == "application/apply-patch+yaml" => "APPLY",
            Method::PATCH => "PATCH",
            Method::DELETE if path.is_some() && !named => "DELETECOLLECTION",
            Method::DELETE => "DELETE",
            _ => "OTHER",
        };
        match path {
            Some(p) => {
                let scope = match (&p.name, &p.namespace) {
                    (Some(_), _) => "resource",
                    (None, Some(_)) => "namespace",
                    (None, None) => "cluster",
                };
                Self {
                    verb,
                    group: p.resource.group,
                    version: p.resource.version,
                    resource: p.resource.plural,
                    subresource: p.subresource.unwrap_or_default(),
                    scope,
                }
            }
            None => Self { verb, group: "", version: "", resource: "", subresource: String::new(), scope: "" },
        }
    }

    /// Watches stay open for as long as the client likes; their duration says nothing about
    /// the server, so upstream leaves them out of the latency histogram, and so do we.
    fn long_running(&self) -> bool {
        self.verb == "WATCH"
    }

    fn mutating(&self) -> bool {
        !matches!(self.verb, "GET" | "LIST" | "WATCH" | "OTHER")
    }

    fn render(&self) -> String {
        format!(
            "verb=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\",scope=\"{}\"",
            self.verb, self.group, self.version, self.resource, self.subresource, self.scope
        )
    }
}

#[derive(Default)]
struct Series {
    codes: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

static REQUESTS: Mutex<BTreeMap<RequestLabels, Series>> = Mutex::new(BTreeMap::new());
static INFLIGHT_READ: AtomicI64 = AtomicI64::new(0);
static INFLIGHT_MUTATING: AtomicI64 = AtomicI64::new(0);
static WATCHES: Mutex<BTreeMap<(&'static str, &'static str, &'static str), i64>> = Mutex::new(BTreeMap::new());

/// Counts one finished request.
pub fn observe(labels: &RequestLabels, code: u16, took: Duration) {
    let mut requests = REQUESTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let series = requests.entry(labels.clone()).or_default();
    *series.codes.entry(code).or_default() += 1;
    if !labels.long_running() {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            series.buckets[i] += 1;
        }
        series.count += 1;
        series.sum += secs;
    }
}

/// Counts a request as in flight while alive.
pub struct Inflight(&'static AtomicI64);

impl Inflight {
    pub fn start(labels: &RequestLabels) -> Self {
        let gauge = if labels.mutating() { &INFLIGHT_MUTATING } else { &INFLIGHT_READ };
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts an open watch stream while alive.
pub struct WatchGauge((&'static str, &'static str, &'static str));

impl WatchGauge {
    pub fn open(group: &'static str, version: &'static str, resource: &'static str) -> Self {
        let key = (group, version, resource);
        *WATCHES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(key).or_default() += 1;
        Self(key)
    }
}

impl Drop for WatchGauge {
    fn drop(&mut self) {
        *WATCHES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(self.0).or_default() -= 1;
    }
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    let requests = REQUESTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    out.push_str("# HELP apiserver_request_total Requests to the Kubernetes API, by verb, resource and HTTP code.\n");
    out.push_str("# TYPE apiserver_request_total counter\n");
    for (labels, series) in requests.iter() {
        let labels = labels.render();
        for (code, n) in &series.codes {
            let _ = writeln!(out, "apiserver_request_total{{{labels},code=\"{code}\"}} {n}");
        }
    }
    out.push_str("# HELP apiserver_request_duration_seconds Latency of Kubernetes API requests (watches excluded).\n");
    out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
    for (labels, series) in requests.iter().filter(|(labels, _)| !labels.long_running()) {
        let labels = labels.render();
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += series.buckets[i];
            let _ = writeln!(out, "apiserver_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", series.count);
        let _ = writeln!(out, "apiserver_request_duration_seconds_sum{{{labels}}} {}", series.sum);
        let _ = writeln!(out, "apiserver_request_duration_seconds_count{{{labels}}} {}", series.count);
    }
    drop(requests);
    out.push_str("# HELP apiserver_current_inflight_requests Requests being served, read-only or mutating.\n");
    out.push_str("# TYPE apiserver_current_inflight_requests gauge\n");
    let _ = writeln!(
        out,
        "apiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {}",
        INFLIGHT_READ.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "apiserver_current_inflight_requests{{request_kind=\"mutating\"}} {}",
        INFLIGHT_MUTATING.load(Ordering::Relaxed)
    );
    out.push_str("# HELP apiserver_longrunning_requests Open watch streams, by resource.\n");
    out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
    for ((group, version, resource), n) in WATCHES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{verb=\"WATCH\",group=\"{group}\",version=\"{version}\",resource=\"{resource}\"}} {n}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, uri: &str, content_type: Option<&str>) -> RequestLabels {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert("content-type", ct.parse().expect("header"));
        }
        RequestLabels::of(&method, &uri.parse().expect("uri"), &headers)
    }

    #[test]
    fn requests_are_labelled_as_upstream_labels_them() {
        let l = labels(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!((l.verb, l.resource, l.scope, l.group), ("LIST", "pods", "namespace", ""));
        let l = labels(Method::GET, "/api/v1/pods?watch=true", None);
        assert_eq!((l.verb, l.scope), ("WATCH", "cluster"));
        let l = labels(Method::GET, "/apis/apps/v1/namespaces/a/deployments/web/scale", None);
        assert_eq!(
            (l.verb, l.group, l.resource, l.subresource.as_str(), l.scope),
            ("GET", "apps", "deployments", "scale", "resource")
        );
        let l = labels(Method::PATCH, "/api/v1/namespaces/a/pods/p", Some("application/apply-patch+yaml"));
        assert_eq!(l.verb, "APPLY");
        let l = labels(Method::DELETE, "/api/v1/namespaces/a/pods", None);
        assert_eq!(l.verb, "DELETECOLLECTION");
        let l = labels(Method::GET, "/version", None);
        assert_eq!((l.verb, l.resource), ("GET", ""));
    }

    #[test]
    fn counts_codes_and_latency_and_gauges() {
        let l = labels(Method::POST, "/api/v1/namespaces/metrics-test/configmaps", None);
        observe(&l, 201, Duration::from_millis(3));
        observe(&l, 201, Duration::from_millis(30));
        observe(&l, 409, Duration::from_millis(3));
        let inflight = Inflight::start(&l);
        let watch = WatchGauge::open("", "v1", "metrics-test-things");
        let text = render();
        let base =
            "verb=\"POST\",group=\"\",version=\"v1\",resource=\"configmaps\",subresource=\"\",scope=\"namespace\"";
        assert!(text.contains(&format!("apiserver_request_total{{{base},code=\"201\"}} 2")), "{text}");
        assert!(text.contains(&format!("apiserver_request_total{{{base},code=\"409\"}} 1")), "{text}");
        assert!(
            text.contains(&format!("apiserver_request_duration_seconds_bucket{{{base},le=\"0.005\"}} 2")),
            "{text}"
        );
        assert!(text.contains(&format!("apiserver_request_duration_seconds_bucket{{{base},le=\"0.05\"}} 3")), "{text}");
        assert!(text.contains(&format!("apiserver_request_duration_seconds_count{{{base}}} 3")), "{text}");
        assert!(text.contains("resource=\"metrics-test-things\"} 1"), "{text}");
        drop(watch);
        drop(inflight);
        assert!(render().contains("resource=\"metrics-test-things\"} 0"));
    }
}
