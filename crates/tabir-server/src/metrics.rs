//! Prometheus counters, written by hand: requests by route template and status, request
//! seconds, FHE jobs by operation, and the pool's load. Route labels are the matched route
//! templates (`/v1/domains/{domain}/subjects/{subject}`), never the concrete path, so no
//! subject id reaches the metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Counter>>,
    fhe: Mutex<BTreeMap<&'static str, Counter>>,
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
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default()
                .add(elapsed);
        }
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
        out
    }
}
