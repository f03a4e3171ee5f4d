//! What every handler can reach.

use std::sync::Arc;

use updraft_engine::{Db, Updater};
use updraft_homeserver::Config;

/// Shared by all handlers: the main database, the config, the engine's
/// updater (one runner per database).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub updater: Updater,
}

impl AppState {
    pub fn new(db: Db, config: Config, updater: Updater) -> AppState {
        AppState {
            db,
            config: Arc::new(config),
            updater,
        }
    }
}
