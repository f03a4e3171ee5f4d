//! Integration tests of the workload generator, each on SQLite and PostgreSQL.

mod drift;
mod seed;
mod support;
