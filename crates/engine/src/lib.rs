//! updraft-engine: the background-update engine.
//!
//! It reimplements Synapse's background-update subsystem (queue, pacing,
//! controller hooks, runner) over a [`Db`] handle and knows nothing of Matrix.
//! Start from [`Updater`]: one [`Runner`] per named database.

pub mod clock;
pub mod config;
pub mod controller;
pub mod db;
pub mod error;
pub mod handler;
pub mod lease;
pub mod metrics;
pub mod oneshot;
pub mod pacing;
pub mod pause;
pub mod queue;
pub mod runner;
pub mod state;
pub mod status;
pub mod updater;

pub use clock::{Clock, ManualClock, RealClock, SharedClock};
pub use config::BackgroundUpdatesConfig;
pub use controller::{Controller, DefaultController};
pub use db::{Db, DbError, DbTarget, DbTx, Engine};
pub use error::EngineError;
pub use handler::{
    BatchHandler, BatchResult, Handler, HandlerError, IndexSpec, ProgressEstimate, Registry,
};
pub use metrics::{DatabaseMetrics, DurationHistogram, MetricsSnapshot, UpdateMetrics};
pub use pacing::{Performance, Rate};
pub use queue::UpdateRow;
pub use runner::{Runner, RunnerOptions};
pub use state::RunnerState;
pub use status::{CurrentUpdate, LastError, QueuedUpdate, RunnerStatus, Status};
pub use updater::{Updater, UpdaterBuilder, MAIN_DATABASE};
