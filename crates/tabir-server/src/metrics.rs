//! Prometheus counters, written by hand: requests by route template and status, request
//! seconds, FHE jobs by operation, and the pool's load. Route labels are the matched route
//! templates (`/v1/domains/{domain}/subjects/{subject}`), never the concrete path, so no
//! subject id reaches the metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), Counter>>,
    fhe: Mutex<BTreeMap<&'static str, Counter>>,
    quota_exceeded: Mutex<BTreeMap<&'static str, u64>>,
    refused_connections: Arc<AtomicU64>,
}

/// The method as a label: one of the few the API uses, or `other` (labels must stay a small,
/// fixed set whatever clients send).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

#[derive(Default, Clone, Copy)]
struct Counter {
    count: u64,
    seconds: f64,
}

impl Counter {
    fn add(&mut self, elapsed: Duration) {
        self.count += 1;
        self.seconds += elapsed.as_secs_f64();
    }
}

impl Metrics {
    /// One answered request. `route` must be a route template or a fixed word, never a path.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            requests
                .entry((method_label(method), route.to_owned(), status))
                .or_default()
                .add(elapsed);
        }
    }

    /// A verification refused over a quota (`subject` or `device`).
    pub fn quota_exceeded(&self, scope: &'static str) {
        if let Ok(mut counts) = self.quota_exceeded.lock() {
            *counts.entry(scope).or_default() += 1;
        }
    }

    /// The counter the connection guard increments when it closes a connection over the cap.
    pub fn refused_connections(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.refused_connections)
    }

    /// One encrypted evaluation (`verify`, `identify`, `prepare_keys`) and its pool time.
    pub fn fhe_job(&self, operation: &'static str, elapsed: Duration) {
        if let Ok(mut fhe) = self.fhe.lock() {
            fhe.entry(operation).or_default().add(elapsed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(
        &self,
        pool_in_flight: usize,
        pool_capacity: usize,
        pool_rejected: u64,
        key_cache_domains: usize,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tabir_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE tabir_http_requests_total counter");
        let requests = self.requests.lock().map(|r| r.clone()).unwrap_or_default();
        for ((method, route, status), counter) in &requests {
            let _ = writeln!(
                out,
                "tabir_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                counter.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP tabir_http_request_seconds_sum Time spent answering, by route."
        );
        let _ = writeln!(out, "# TYPE tabir_http_request_seconds_sum counter");
        for ((method, route, status), counter) in &requests {
            let _ = writeln!(
                out,
                "tabir_http_request_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {:.6}",
                counter.seconds
            );
        }
        let fhe = self.fhe.lock().map(|f| f.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP tabir_fhe_jobs_total Encrypted evaluations done, by operation."
        );
        let _ = writeln!(out, "# TYPE tabir_fhe_jobs_total counter");
        for (operation, counter) in &fhe {
            let _ = writeln!(
                out,
                "tabir_fhe_jobs_total{{op=\"{operation}\"}} {}",
                counter.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP tabir_fhe_job_seconds_sum Time in encrypted evaluation, by operation."
        );
        let _ = writeln!(out, "# TYPE tabir_fhe_job_seconds_sum counter");
        for (operation, counter) in &fhe {
            let _ = writeln!(
                out,
                "tabir_fhe_job_seconds_sum{{op=\"{operation}\"}} {:.6}",
                counter.seconds
            );
        }
        let _ = writeln!(
            out,
            "# HELP tabir_fhe_pool_in_flight Jobs running or waiting in the FHE pool."
        );
        let _ = writeln!(out, "# TYPE tabir_fhe_pool_in_flight gauge");
        let _ = writeln!(out, "tabir_fhe_pool_in_flight {pool_in_flight}");
        let _ = writeln!(
            out,
            "# HELP tabir_fhe_pool_capacity Jobs the pool admits before answering 429."
        );
        let _ = writeln!(out, "# TYPE tabir_fhe_pool_capacity gauge");
        let _ = writeln!(out, "tabir_fhe_pool_capacity {pool_capacity}");
        let _ = writeln!(
            out,
            "# HELP tabir_fhe_pool_rejected_total Requests answered 429 because the pool was full."
        );
        let _ = writeln!(out, "# TYPE tabir_fhe_pool_rejected_total counter");
        let _ = writeln!(out, "tabir_fhe_pool_rejected_total {pool_rejected}");
        let _ = writeln!(
            out,
            "# HELP tabir_quota_exceeded_total Verifications refused over a quota, by quota."
        );
        let _ = writeln!(out, "# TYPE tabir_quota_exceeded_total counter");
        let quotas = self
            .quota_exceeded
            .lock()
            .map(|q| q.clone())
            .unwrap_or_default();
        for scope in ["subject", "device"] {
            let _ = writeln!(
                out,
                "tabir_quota_exceeded_total{{quota=\"{scope}\"}} {}",
                quotas.get(scope).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tabir_key_cache_domains Domains whose prepared keys are in memory."
        );
        let _ = writeln!(out, "# TYPE tabir_key_cache_domains gauge");
        let _ = writeln!(out, "tabir_key_cache_domains {key_cache_domains}");
        let _ = writeln!(
            out,
            "# HELP tabir_connections_refused_total Connections closed at once: over the cap."
        );
        let _ = writeln!(out, "# TYPE tabir_connections_refused_total counter");
        let _ = writeln!(
            out,
            "tabir_connections_refused_total {}",
            self.refused_connections.load(Ordering::Relaxed)
        );
        out
    }
}
