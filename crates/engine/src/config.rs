//! The `background_updates:` section of the config, with Synapse's defaults.

use serde::{Deserialize, Serialize};

/// Pacing and behaviour of the background updater (SEMANTICS §2, §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackgroundUpdatesConfig {
    /// Target duration of one batch, in ms.
    pub background_update_duration_ms: u64,
    /// Sleep before each batch.
    pub sleep_enabled: bool,
    /// How long to sleep before each batch, in ms.
    pub sleep_duration_ms: u64,
    /// Lower bound of the batch size once an average exists.
    pub min_batch_size: u64,
    /// Size of the first batch of an update.
    pub default_batch_size: u64,
    /// Beyond Synapse: keep a pause in the database so it survives restarts.
    /// Off by default for parity (Synapse's flag is memory-only).
    pub persist_pause: bool,
    /// Beyond Synapse: how long (ms) a runner's lease on its database lasts
    /// without renewal. Another process takes over this long after the
    /// holder died. Renewed by every batch.
    pub runner_lease_ms: u64,
}

impl Default for BackgroundUpdatesConfig {
    fn default() -> Self {
        BackgroundUpdatesConfig {
            background_update_duration_ms: 100,
            sleep_enabled: true,
            sleep_duration_ms: 1000,
            min_batch_size: 1,
            default_batch_size: 100,
            persist_pause: false,
            runner_lease_ms: 30_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_synapses() {
        let c = BackgroundUpdatesConfig::default();
        assert_eq!(c.background_update_duration_ms, 100);
        assert!(c.sleep_enabled);
        assert_eq!(c.sleep_duration_ms, 1000);
        assert_eq!(c.min_batch_size, 1);
        assert_eq!(c.default_batch_size, 100);
        assert!(!c.persist_pause);
        assert_eq!(c.runner_lease_ms, 30_000);
    }
}
