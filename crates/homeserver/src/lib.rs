//! updraft-homeserver: the simulated homeserver's data layer.
//!
//! The Synapse-compatible schema on SQLite and PostgreSQL, opening databases
//! (ours or a real Synapse one), configuration, and (in later modules) the
//! jobs, directory search, ground truth and token auth.

pub mod appservice;
pub mod auth;
pub mod config;
pub mod dump;
pub mod events;
pub mod info;
pub mod jobs;
pub mod schema;
pub mod search;
pub mod text;
pub mod verify;

pub use config::Config;
pub use schema::{open, OpenError, OpenOptions, Opened, SchemaKind};
