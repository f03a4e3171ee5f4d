//! Controller hooks (SEMANTICS §4): what a Synapse module may supply to pace
//! background updates. Only the first registered controller is used.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::config::BackgroundUpdatesConfig;

/// Synapse's three controller callbacks. `on_update` is entered before each
/// batch (Synapse's async context manager) and yields the desired batch
/// duration in ms; `after_update` is its exit, called once the batch is over.
/// The batch-size hooks return `None` to fall back to the configuration.
#[async_trait]
pub trait Controller: Send + Sync + 'static {
    async fn on_update(&self, update_name: &str, database_name: &str, oneshot: bool) -> f64;

    async fn after_update(&self, _update_name: &str, _database_name: &str) {}

    async fn default_batch_size(&self, _update_name: &str, _database_name: &str) -> Option<u64> {
        None
    }

    async fn min_batch_size(&self, _update_name: &str, _database_name: &str) -> Option<u64> {
        None
    }
}

/// The controller used when no module registered one: sleeps
/// `sleep_duration_ms` before each batch when sleeping is enabled, then asks
/// for `background_update_duration_ms`.
pub struct DefaultController {
    config: BackgroundUpdatesConfig,
    clock: SharedClock,
}

impl DefaultController {
    pub fn new(config: BackgroundUpdatesConfig, clock: SharedClock) -> DefaultController {
        DefaultController { config, clock }
    }
}

#[async_trait]
impl Controller for DefaultController {
    async fn on_update(&self, _update: &str, _database: &str, _oneshot: bool) -> f64 {
        if self.config.sleep_enabled {
            self.clock
                .sleep(Duration::from_millis(self.config.sleep_duration_ms))
                .await;
        }
        self.config.background_update_duration_ms as f64
    }
}

/// The registered controller, if any: the first registration wins, later
/// ones are refused with a warning (as Synapse does with modules).
#[derive(Clone, Default)]
pub struct ControllerSlot {
    controller: Option<Arc<dyn Controller>>,
}

impl ControllerSlot {
    /// Registers `controller`; returns false (and logs) if one is already registered.
    pub fn register(&mut self, controller: Arc<dyn Controller>) -> bool {
        if self.controller.is_some() {
            tracing::warn!(
                "More than one controller tried to register for background updates; \
                 only the first one is used"
            );
            return false;
        }
        self.controller = Some(controller);
        true
    }

    pub fn get(&self) -> Option<Arc<dyn Controller>> {
        self.controller.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    struct Fixed(f64);

    #[async_trait]
    impl Controller for Fixed {
        async fn on_update(&self, _: &str, _: &str, _: bool) -> f64 {
            self.0
        }
    }

    #[tokio::test]
    async fn default_controller_sleeps_only_when_enabled() {
        let clock = ManualClock::new(0);
        let config = BackgroundUpdatesConfig {
            sleep_duration_ms: 250,
            background_update_duration_ms: 40,
            ..Default::default()
        };
        let c = DefaultController::new(config.clone(), Arc::new(clock.clone()));
        assert_eq!(c.on_update("u", "master", false).await, 40.0);
        assert_eq!(clock.now_ms(), 250.0);
        assert_eq!(c.default_batch_size("u", "master").await, None);

        let c = DefaultController::new(
            BackgroundUpdatesConfig {
                sleep_enabled: false,
                ..config
            },
            Arc::new(clock.clone()),
        );
        assert_eq!(c.on_update("u", "master", false).await, 40.0);
        assert_eq!(clock.now_ms(), 250.0);
    }

    #[tokio::test]
    async fn only_the_first_controller_is_used() {
        let mut slot = ControllerSlot::default();
        assert!(slot.get().is_none());
        assert!(slot.register(Arc::new(Fixed(1.0))));
        assert!(!slot.register(Arc::new(Fixed(2.0))));
        let c = slot.get().unwrap();
        assert_eq!(c.on_update("u", "master", true).await, 1.0);
    }
}
