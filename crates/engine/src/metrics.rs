//! Counters the HTTP API exports: per update items and batches, batch
//! durations (a fixed-bucket histogram), the current batch size.

use std::collections::BTreeMap;

use serde::Serialize;

/// Upper bounds (ms) of the batch-duration histogram buckets; a last,
/// implicit `+Inf` bucket catches the rest.
pub const DURATION_BUCKETS_MS: [f64; 12] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// A Prometheus-style histogram of batch durations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DurationHistogram {
    /// Non-cumulative counts per bucket of [`DURATION_BUCKETS_MS`], plus `+Inf` last.
    pub counts: Vec<u64>,
    pub sum_ms: f64,
    pub count: u64,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            counts: vec![0; DURATION_BUCKETS_MS.len() + 1],
            sum_ms: 0.0,
            count: 0,
        }
    }
}

impl DurationHistogram {
    pub fn observe(&mut self, ms: f64) {
        let i = DURATION_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(DURATION_BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }

    /// `(upper bound, cumulative count)` pairs as Prometheus prints them
    /// (`None` = `+Inf`).
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut acc = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                acc += c;
                (DURATION_BUCKETS_MS.get(i).copied(), acc)
            })
            .collect()
    }
}

/// Counters of one update since the runner started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UpdateMetrics {
    pub items_total: u64,
    pub batches_total: u64,
    pub failures_total: u64,
    pub batch_duration: DurationHistogram,
    /// Batch size of the running (or last) batch.
    pub current_batch_size: u64,
}

/// A snapshot for one database.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatabaseMetrics {
    /// Synapse's status number (-1 aborted .. 3 complete).
    pub state_code: i32,
    pub updates: BTreeMap<String, UpdateMetrics>,
}

/// A snapshot for every database, by name.
pub type MetricsSnapshot = BTreeMap<String, DatabaseMetrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_cumulative_counts() {
        let mut h = DurationHistogram::default();
        for ms in [0.5, 1.0, 3.0, 99.0, 20_000.0] {
            h.observe(ms);
        }
        assert_eq!(h.count, 5);
        assert_eq!(h.sum_ms, 20_103.5);
        let c = h.cumulative();
        assert_eq!(c[0], (Some(1.0), 2));
        assert_eq!(c[1], (Some(5.0), 3));
        assert_eq!(c[5], (Some(100.0), 4));
        assert_eq!(c[11], (Some(10000.0), 4));
        assert_eq!(c[12], (None, 5));
    }
}
