//! What the updater reports: Synapse's admin-API shape, and a detailed
//! per-database view beyond it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::handler::ProgressEstimate;
use crate::pacing::{Performance, Rate};
use crate::queue::UpdateRow;
use crate::state::RunnerState;

/// One database's current update, exactly as Synapse's
/// `GET /_synapse/admin/v1/background_updates/status` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurrentUpdate {
    pub name: String,
    pub total_item_count: u64,
    /// A float, as in Synapse (`0.0` before the first batch).
    pub total_duration_ms: f64,
    /// `null` before the first item, `0` for a zero average duration, else a float.
    pub average_items_per_ms: Rate,
}

impl From<&Performance> for CurrentUpdate {
    fn from(p: &Performance) -> Self {
        CurrentUpdate {
            name: p.name.clone(),
            total_item_count: p.total_item_count,
            total_duration_ms: p.total_duration_ms,
            average_items_per_ms: p.average_items_per_ms(),
        }
    }
}

/// Synapse's status body: `enabled` is true only if every runner is enabled;
/// a database appears only while it has a current update.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub enabled: bool,
    pub current_updates: BTreeMap<String, CurrentUpdate>,
}

/// The last batch error of a runner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastError {
    pub update: String,
    pub message: String,
    pub at_ms: f64,
}

/// One queued row as the detailed status shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueuedUpdate {
    #[serde(flatten)]
    pub row: UpdateRow,
    /// Whether a handler is registered for it.
    pub has_handler: bool,
    /// The pending update it waits for, if any.
    pub waiting_for: Option<String>,
}

/// Everything about one database's runner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunnerStatus {
    pub database: String,
    pub state: RunnerState,
    /// Synapse's number for `state`.
    pub state_code: i32,
    /// Why the runner is in this state.
    pub reason: String,
    pub enabled: bool,
    /// Whether the pause is kept in the database (`persist_pause`).
    pub persist_pause: bool,
    /// True while a batch is executing.
    pub in_batch: bool,
    pub current: Option<CurrentUpdate>,
    pub consecutive_failures: u32,
    pub last_error: Option<LastError>,
    /// This runner's lease id and whether it holds the database's lease.
    pub lease_holder: String,
    pub holds_lease: bool,
    /// The pending rows (filled by `details`, empty in the in-memory snapshot).
    pub queue: Vec<QueuedUpdate>,
    /// The current update's own estimate, if its handler gives one.
    pub estimate: Option<ProgressEstimate>,
    /// Estimated time to finish the current update, from the estimate and the
    /// overall rate so far.
    pub eta_ms: Option<f64>,
}
