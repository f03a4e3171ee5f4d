//! updraft-workload: deterministic homeserver worlds and ways to make them stale.
//!
//! - [`shape`]: world shapes (`fixtures/worlds/*.toml`);
//! - [`seed()`]: generate a world into a database (room version 10 events with
//!   real reference-hash ids, current state, memberships, profiles, users);
//! - [`drift`]: change a seeded world the way a homeserver would, without
//!   touching the derived tables (stats, user directory), so they go stale in
//!   a named way;
//! - [`dump`]: a canonical dump of the world's tables, for determinism checks.

pub mod chain;
pub mod drift;
pub mod dump;
pub mod error;
pub mod event;
pub mod names;
pub mod rows;
pub mod seed;
pub mod shape;
pub mod spread;
pub mod users;
pub mod world;
pub mod writer;

pub use error::WorkloadError;
pub use seed::{seed, SeedOptions, SeedReport};
pub use shape::Shape;
