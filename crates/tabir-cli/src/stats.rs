//! Small helpers for the benchmark reports.

use std::time::Duration;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The p-quantile (nearest rank) of the values; 0 for none. Sorts in place.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    values[((values.len() - 1) as f64 * p).round() as usize]
}

pub fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}
