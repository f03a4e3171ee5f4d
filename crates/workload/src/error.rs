//! Errors of the workload generator.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("world shape: {0}")]
    Shape(String),
    #[error("building an event: {0}")]
    Event(String),
    #[error(
        "the database already holds a world ({users} users, {events} events); \
         pass --append to add another one beside it"
    )]
    WorldExists { users: i64, events: i64 },
    #[error("unknown drift kind {0:?}; known kinds: {1}")]
    UnknownDriftKind(String, String),
    #[error("drift {kind}: {reason}")]
    Drift { kind: String, reason: String },
    #[error("writing {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the generator stopped unexpectedly")]
    GeneratorGone,
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}
