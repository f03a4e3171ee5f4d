//! updraft-engine: the background-update engine.
//!
//! It reimplements Synapse's background-update subsystem (queue, pacing,
//! controller hooks, runner) over a [`Db`] handle and knows nothing of Matrix.

pub mod config;
pub mod db;
pub mod handler;

pub use config::BackgroundUpdatesConfig;
pub use db::{Db, DbError, DbTarget, DbTx, Engine};
pub use handler::{BatchHandler, BatchResult, Handler, HandlerError, IndexSpec, Registry};
