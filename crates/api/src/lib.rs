//! updraft-api: the HTTP server (Synapse's background-update and room admin
//! APIs, user directory search, updraft's queue view, `/metrics`) and a typed
//! client for it.
//!
//! Responses are Synapse's bytes: success bodies in Synapse's compact JSON,
//! errors as canonical `{"errcode", "error"}` with Synapse's status codes and
//! wording (see [`error::ApiError`]).

pub mod auth;
pub mod background_updates;
pub mod client;
pub mod directory;
pub mod error;
pub mod json;
pub mod metrics;
pub mod response;
pub mod rooms;
pub mod router;
pub mod state;

pub use client::{Client, ClientError};
pub use error::ApiError;
pub use router::{router, router_with, serve, RouterOptions};
pub use state::AppState;
