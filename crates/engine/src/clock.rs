//! Injectable time: the runner reads the clock to time batches and expire
//! leases, and sleeps through it, so tests can swap in a [`ManualClock`] and
//! run fast and deterministically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// A clock and a sleep. `now_ms` is milliseconds since the Unix epoch with a
/// fractional part; it must never go backwards (batch durations are
/// differences of two readings, lease expiries are compared across processes).
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> f64;
    async fn sleep(&self, duration: Duration);
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: wall time at start-up, advanced by a monotonic instant.
#[derive(Clone, Debug)]
pub struct RealClock {
    start_ms: f64,
    start: Instant,
}

impl RealClock {
    pub fn new() -> RealClock {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        RealClock {
            start_ms,
            start: Instant::now(),
        }
    }

    pub fn shared() -> SharedClock {
        Arc::new(RealClock::new())
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

#[async_trait]
impl Clock for RealClock {
    fn now_ms(&self) -> f64 {
        self.start_ms + self.start.elapsed().as_secs_f64() * 1000.0
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A test clock: time stands still unless advanced; `sleep` advances it by the
/// requested duration and returns at once (after yielding to the scheduler),
/// so a runner that sleeps a second per batch runs at full speed.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    /// Microseconds since the epoch.
    now_us: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            now_us: Arc::new(AtomicU64::new(start_ms * 1000)),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.now_us
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now_ms(&self) -> f64 {
        self.now_us.load(Ordering::SeqCst) as f64 / 1000.0
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_sleep_advances_time_without_waiting() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000.0);
        clock.sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms(), 3_601_000.0);
        clock.advance(Duration::from_micros(1500));
        assert_eq!(clock.now_ms(), 3_601_001.5);
    }

    #[tokio::test]
    async fn real_clock_is_monotonic_and_near_wall_time() {
        let clock = RealClock::new();
        let a = clock.now_ms();
        clock.sleep(Duration::from_millis(5)).await;
        let b = clock.now_ms();
        assert!(b - a >= 5.0, "slept 5 ms but clock moved {} ms", b - a);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        assert!((wall - b).abs() < 1000.0);
    }
}
