//! Pace: per-update performance records and the batch-size rule
//! (SEMANTICS §2). Pure code, no I/O, pinned by hand-computed tests.

use serde::{Serialize, Serializer};

/// Weight of the newest batch in the exponential moving averages.
pub const SMOOTHING: f64 = 0.1;

/// `average_items_per_ms` as Synapse reports it. The three cases serialise
/// differently (`null`, the integer `0`, a float), exactly as Synapse's
/// admin API prints them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// No batch has processed an item yet (`total_item_count == 0`).
    Unknown,
    /// The average duration is zero: Synapse returns the integer 0.
    ZeroDuration,
    /// Average items over average duration.
    PerMs(f64),
}

impl Rate {
    /// The rate as a number (`None` while unknown).
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Rate::Unknown => None,
            Rate::ZeroDuration => Some(0.0),
            Rate::PerMs(r) => Some(r),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Rate::Unknown => s.serialize_none(),
            Rate::ZeroDuration => s.serialize_i64(0),
            Rate::PerMs(r) => s.serialize_f64(r),
        }
    }
}

/// How one update has been going (Synapse's `BackgroundUpdatePerformance`).
#[derive(Clone, Debug, PartialEq)]
pub struct Performance {
    pub name: String,
    pub total_item_count: u64,
    pub total_duration_ms: f64,
    pub avg_item_count: f64,
    pub avg_duration_ms: f64,
}

impl Performance {
    pub fn new(name: impl Into<String>) -> Performance {
        Performance {
            name: name.into(),
            total_item_count: 0,
            total_duration_ms: 0.0,
            avg_item_count: 0.0,
            avg_duration_ms: 0.0,
        }
    }

    /// Records one batch.
    pub fn update(&mut self, items: u64, duration_ms: f64) {
        self.total_item_count += items;
        self.total_duration_ms += duration_ms;
        self.avg_item_count += SMOOTHING * (items as f64 - self.avg_item_count);
        self.avg_duration_ms += SMOOTHING * (duration_ms - self.avg_duration_ms);
    }

    pub fn average_items_per_ms(&self) -> Rate {
        if self.total_item_count == 0 {
            Rate::Unknown
        } else if self.avg_duration_ms == 0.0 {
            Rate::ZeroDuration
        } else {
            Rate::PerMs(self.avg_item_count / self.avg_duration_ms)
        }
    }

    /// Overall rate (items per ms since the update started), for ETAs.
    pub fn total_items_per_ms(&self) -> Option<f64> {
        (self.total_duration_ms > 0.0 && self.total_item_count > 0)
            .then(|| self.total_item_count as f64 / self.total_duration_ms)
    }
}

/// The size of the next batch: the default before any rate is known, else
/// `int(desired_duration_ms * rate)` but at least `min_batch_size`.
pub fn next_batch_size(
    rate: Rate,
    desired_duration_ms: f64,
    default_batch_size: u64,
    min_batch_size: u64,
) -> u64 {
    match rate.as_f64() {
        None => default_batch_size,
        // `as u64` truncates towards zero like Python's int() and saturates.
        Some(r) => ((desired_duration_ms * r) as u64).max(min_batch_size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_unknown_before_any_item_then_zero_then_a_ratio() {
        let mut p = Performance::new("u");
        assert_eq!(p.average_items_per_ms(), Rate::Unknown);
        // A batch that found nothing keeps the rate unknown.
        p.update(0, 10.0);
        assert_eq!(p.average_items_per_ms(), Rate::Unknown);
        let mut z = Performance::new("z");
        z.update(5, 0.0);
        assert_eq!(z.average_items_per_ms(), Rate::ZeroDuration);
        // avg_items = 0.5, avg_duration = 0.1*(20-0) = 2: after the first
        // batch of 5 items in 20 ms the rate is 0.5 / 2 = 0.25 on a fresh record.
        let mut q = Performance::new("q");
        q.update(5, 20.0);
        assert_eq!(q.avg_item_count, 0.5);
        assert_eq!(q.avg_duration_ms, 2.0);
        assert_eq!(q.average_items_per_ms(), Rate::PerMs(0.25));
    }

    #[test]
    fn moving_averages_follow_a_hand_computed_sequence() {
        let mut p = Performance::new("u");
        // batch 1: 100 items in 50 ms -> avg_items 10, avg_dur 5
        p.update(100, 50.0);
        // batch 2: 200 items in 100 ms -> avg_items 10 + 0.1*190 = 29,
        //                                 avg_dur 5 + 0.1*95 = 14.5
        p.update(200, 100.0);
        // batch 3: 29 items in 14.5 ms -> averages unchanged
        p.update(29, 14.5);
        assert_eq!(p.total_item_count, 329);
        assert_eq!(p.total_duration_ms, 164.5);
        assert!((p.avg_item_count - 29.0).abs() < 1e-12);
        assert!((p.avg_duration_ms - 14.5).abs() < 1e-12);
        let Rate::PerMs(r) = p.average_items_per_ms() else {
            panic!("rate should be a ratio")
        };
        assert!((r - 2.0).abs() < 1e-12);
        // 100 ms * 2 items/ms = 200
        assert_eq!(
            next_batch_size(p.average_items_per_ms(), 100.0, 100, 1),
            200
        );
        assert_eq!(p.total_items_per_ms(), Some(329.0 / 164.5));
    }

    #[test]
    fn batch_size_rules() {
        // First batch: the default, whatever the desired duration.
        assert_eq!(next_batch_size(Rate::Unknown, 100.0, 100, 1), 100);
        assert_eq!(next_batch_size(Rate::Unknown, 0.0, 7, 50), 7);
        // Zero-duration average: int(d * 0) = 0, clamped to the minimum.
        assert_eq!(next_batch_size(Rate::ZeroDuration, 100.0, 100, 1), 1);
        assert_eq!(next_batch_size(Rate::ZeroDuration, 100.0, 100, 20), 20);
        // Truncation, not rounding: 100 * 0.0299 = 2.99 -> 2.
        assert_eq!(next_batch_size(Rate::PerMs(0.0299), 100.0, 100, 1), 2);
        // Clamped up to min_batch_size.
        assert_eq!(next_batch_size(Rate::PerMs(0.001), 100.0, 100, 5), 5);
        // A huge rate saturates instead of overflowing.
        assert_eq!(
            next_batch_size(Rate::PerMs(f64::MAX), 100.0, 100, 1),
            u64::MAX
        );
    }

    #[test]
    fn rate_serialises_like_synapse() {
        let s = |r: Rate| serde_json::to_string(&r).unwrap();
        assert_eq!(s(Rate::Unknown), "null");
        assert_eq!(s(Rate::ZeroDuration), "0");
        assert_eq!(s(Rate::PerMs(0.0)), "0.0");
        assert_eq!(s(Rate::PerMs(2.5)), "2.5");
    }
}
