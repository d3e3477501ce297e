//! Metrics, rendered in the Prometheus text exposition format (version
//! 0.0.4) by `GET /v1/sys/metrics?format=prometheus`.
//!
//! Series are keyed by a route label that names the mount and the route
//! pattern (`secret/ data/:path`), never a client-chosen string, so their
//! number is bounded by the mounts and routes that exist.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Bucket bounds in seconds, as Prometheus clients default to (plus a
/// finer start: most requests take well under a millisecond).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram.
#[derive(Default, Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            braces(labels),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{} {n}", braces(labels));
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// Escapes a label value as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A request series' labels: route, operation, status.
type SeriesKey = (String, &'static str, u16);

#[derive(Default, Debug)]
struct RequestSeries {
    count: AtomicU64,
    latency: Histogram,
}

/// The vault's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, operation, status) → count and latency.
    requests: RwLock<HashMap<SeriesKey, Arc<RequestSeries>>>,
    /// Time from an audit entry's enqueueing to its append.
    pub audit_append: Histogram,
    /// Audit entries that could not be recorded.
    pub audit_failures: AtomicU64,
    /// Requests waiting for the heavy-work pool.
    pub pool_queued: AtomicI64,
    /// Requests running on the heavy-work pool.
    pub pool_running: AtomicI64,
    /// Requests refused because the pool's queue was full.
    pub pool_rejected: AtomicU64,
}

/// Values read at render time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// 1 when sealed.
    pub sealed: bool,
    /// 1 when initialised.
    pub initialized: bool,
    /// Tokens stored.
    pub tokens: u64,
    /// Tokens with a TTL (Vault's token leases).
    pub leases: u64,
    /// Enabled audit devices.
    pub audit_devices: u64,
    /// The storage epoch.
    pub epoch: u64,
}

impl Metrics {
    /// Counts one request.
    pub fn request(&self, route: &str, op: &'static str, status: u16, latency: Duration) {
        let key = (route.to_string(), op, status);
        let found = self.requests.read().ok().and_then(|m| m.get(&key).cloned());
        let series = match found {
            Some(s) => s,
            None => {
                let Ok(mut m) = self.requests.write() else {
                    return;
                };
                m.entry(key).or_default().clone()
            }
        };
        series.count.fetch_add(1, Ordering::Relaxed);
        series.latency.observe(latency);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "citadel_vault_sealed",
            "1 if the vault is sealed.",
            u64::from(g.sealed),
        );
        gauge(
            &mut out,
            "citadel_vault_initialized",
            "1 if the vault is initialised.",
            u64::from(g.initialized),
        );
        gauge(&mut out, "citadel_vault_tokens", "Tokens stored.", g.tokens);
        gauge(
            &mut out,
            "citadel_vault_token_leases",
            "Tokens with a TTL (leases that expire).",
            g.leases,
        );
        gauge(
            &mut out,
            "citadel_vault_audit_devices",
            "Enabled audit devices.",
            g.audit_devices,
        );
        gauge(
            &mut out,
            "citadel_vault_storage_epoch",
            "Write batches committed to storage since initialisation.",
            g.epoch,
        );
        let mut series: Vec<(SeriesKey, Arc<RequestSeries>)> = self
            .requests
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(
            out,
            "# HELP citadel_vault_requests_total Requests answered, by route, operation and status.\n# TYPE citadel_vault_requests_total counter"
        );
        for ((route, op, status), s) in &series {
            let _ = writeln!(
                out,
                "citadel_vault_requests_total{{route=\"{}\",operation=\"{op}\",status=\"{status}\"}} {}",
                escape(route),
                s.count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP citadel_vault_request_duration_seconds Time to answer a request, by route, operation and status.\n# TYPE citadel_vault_request_duration_seconds histogram"
        );
        for ((route, op, status), s) in &series {
            let labels = format!(
                "route=\"{}\",operation=\"{op}\",status=\"{status}\"",
                escape(route)
            );
            s.latency
                .render(&mut out, "citadel_vault_request_duration_seconds", &labels);
        }
        let _ = writeln!(
            out,
            "# HELP citadel_vault_audit_append_seconds Time from an audit entry's submission to its append to the log.\n# TYPE citadel_vault_audit_append_seconds histogram"
        );
        self.audit_append
            .render(&mut out, "citadel_vault_audit_append_seconds", "");
        counter(
            &mut out,
            "citadel_vault_audit_failures_total",
            "Audit entries that could not be recorded (each failed its request).",
            self.audit_failures.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "citadel_vault_pool_queued",
            "Requests waiting for the heavy-work pool.",
            self.pool_queued.load(Ordering::Relaxed).max(0) as u64,
        );
        gauge(
            &mut out,
            "citadel_vault_pool_running",
            "Requests running on the heavy-work pool.",
            self.pool_running.load(Ordering::Relaxed).max(0) as u64,
        );
        counter(
            &mut out,
            "citadel_vault_pool_rejected_total",
            "Requests refused (503) because the heavy-work queue was full.",
            self.pool_rejected.load(Ordering::Relaxed),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_well_formed() {
        let m = Metrics::default();
        m.request(
            "secret/ data/:path",
            "read",
            200,
            Duration::from_micros(300),
        );
        m.request("secret/ data/:path", "read", 200, Duration::from_millis(3));
        m.request("weird\"route\\", "update", 403, Duration::from_millis(30));
        let text = m.render(&Gauges {
            tokens: 3,
            ..Default::default()
        });
        assert!(text.contains(
            "citadel_vault_requests_total{route=\"secret/ data/:path\",operation=\"read\",status=\"200\"} 2"
        ));
        assert!(text.contains("route=\"weird\\\"route\\\\\""));
        assert!(text.contains(
            "citadel_vault_request_duration_seconds_bucket{route=\"secret/ data/:path\",operation=\"read\",status=\"200\",le=\"0.001\"} 1"
        ));
        assert!(text.contains("citadel_vault_tokens 3"));
        // Every sample line: name{labels} value, with a TYPE declared
        // before it.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(typed.contains(name) || typed.contains(base), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
