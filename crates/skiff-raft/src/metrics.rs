//! Process-wide counters and latency histograms for `/metrics`, kept with atomics so the hot
//! path never takes a lock.

use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

/// A Prometheus histogram of durations.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{}}} {sum}", labels.trim_end_matches(','));
        let _ = writeln!(out, "{name}_count{{{}}} {count}", labels.trim_end_matches(','));
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency of writes proposed through this server (including forwarding), by outcome.
pub static WRITE_OK: Histogram = Histogram::new();
pub static WRITE_REJECTED: Histogram = Histogram::new();
pub static WRITE_FAILED: Histogram = Histogram::new();
/// Latency of the read-index step of linearizable reads.
pub static READ_BARRIER: Histogram = Histogram::new();
/// Time the log flusher spends making appends durable (one observation per group of appends).
pub static LOG_SYNC: Histogram = Histogram::new();

/// Records a finished write.
pub fn record_write(result: &Result<skiff_store::Record, skiff_store::StoreError>, took: Duration) {
    match result {
        Ok(_) => WRITE_OK.observe(took),
        Err(e) if e.is_indeterminate() => WRITE_FAILED.observe(took),
        Err(_) => WRITE_REJECTED.observe(took),
    }
}

/// Fenced writes this server's state machine applied, per fencing token (the term whose leader
/// issued them): `[accepted, refused]`. Every replica applies the same log, so every server
/// shows the same history; only the newest terms are kept.
static FENCED: std::sync::Mutex<std::collections::BTreeMap<u64, [u64; 2]>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
const FENCED_TERMS_KEPT: usize = 32;

/// Records that a write fenced by `fence` was applied (`accepted`) or refused.
pub fn record_fenced(fence: u64, accepted: bool) {
    if let Ok(mut terms) = FENCED.lock() {
        terms.entry(fence).or_default()[usize::from(!accepted)] += 1;
        while terms.len() > FENCED_TERMS_KEPT {
            terms.pop_first();
        }
    }
}

/// The histograms and counters in Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# HELP skiff_fenced_writes_total Fenced writes applied, by the term that issued them and outcome.\n");
    out.push_str("# TYPE skiff_fenced_writes_total counter\n");
    if let Ok(terms) = FENCED.lock() {
        for (term, [accepted, refused]) in terms.iter() {
            let _ = writeln!(out, "skiff_fenced_writes_total{{term=\"{term}\",outcome=\"accepted\"}} {accepted}");
            let _ = writeln!(out, "skiff_fenced_writes_total{{term=\"{term}\",outcome=\"refused\"}} {refused}");
        }
    }
    out.push_str("# HELP skiff_store_write_duration_seconds Writes proposed through this server, by outcome.\n");
    out.push_str("# TYPE skiff_store_write_duration_seconds histogram\n");
    WRITE_OK.render(&mut out, "skiff_store_write_duration_seconds", "result=\"ok\",");
    WRITE_REJECTED.render(&mut out, "skiff_store_write_duration_seconds", "result=\"rejected\",");
    WRITE_FAILED.render(&mut out, "skiff_store_write_duration_seconds", "result=\"failed\",");
    out.push_str("# HELP skiff_store_read_index_duration_seconds Read-index step of linearizable reads.\n");
    out.push_str("# TYPE skiff_store_read_index_duration_seconds histogram\n");
    READ_BARRIER.render(&mut out, "skiff_store_read_index_duration_seconds", "");
    out.push_str("# HELP skiff_log_sync_duration_seconds Syncs that made a group of log appends durable.\n");
    out.push_str("# TYPE skiff_log_sync_duration_seconds histogram\n");
    LOG_SYNC.render(&mut out, "skiff_log_sync_duration_seconds", "");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("x_count{} 3"), "{out}");
    }
}
