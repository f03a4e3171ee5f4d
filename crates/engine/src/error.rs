//! The engine's error type.

/// What can go wrong in the queue, the runner or the façade.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Inserting a job hit a row that is already queued; nothing was inserted.
    #[error("update {0} is already in the queue of background updates")]
    AlreadyQueued(String),
    /// Every pending update waits for another pending one.
    #[error("dependency cycle among background updates: {}", .0.join(" -> "))]
    DependencyCycle(Vec<String>),
    /// The updates a runner may run all wait for one it may not (`--only`,
    /// or no handler).
    #[error("update {update} waits for {waits_for}, which this runner does not run")]
    WaitsForExcluded { update: String, waits_for: String },
    /// The named update is not in the queue.
    #[error("update {0} is not in the queue of background updates")]
    NotQueued(String),
    /// A database name the updater does not know.
    #[error("unknown database {0:?}")]
    UnknownDatabase(String),
    /// A row's progress_json is not a JSON object.
    #[error("progress_json of update {update} is not a JSON object: {reason}")]
    BadProgress { update: String, reason: String },
    /// A row to insert is malformed (e.g. progress that is not JSON).
    #[error("invalid update row {update}: {reason}")]
    InvalidRow { update: String, reason: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
