//! Handler kinds behind one registry: batch handlers (the jobs), index
//! updates, validate-constraint updates and no-op updates.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::db::{Db, DbTx};

/// What one batch did. The engine, not the handler, writes the progress (or
/// deletes the row) in the batch's own transaction, then commits.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchResult {
    /// More work remains: save `progress` as the update's new progress_json.
    Progress { items: u64, progress: Value },
    /// No more work: the update ends (its row is deleted). Synapse's
    /// convention is `items: 1` for a final call that found nothing to do.
    Done { items: u64 },
}

impl BatchResult {
    pub fn items(&self) -> u64 {
        match self {
            BatchResult::Progress { items, .. } | BatchResult::Done { items } => *items,
        }
    }
}

/// A handler's own estimate of how far it is, for status and ETAs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProgressEstimate {
    /// Items done so far (in the handler's batch units).
    pub done: u64,
    /// Items in all (done + remaining), if known.
    pub total: Option<u64>,
}

/// Error raised by a handler; counts towards the failure limit.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A batch handler: one call does one batch of at most about `batch_size`
/// items inside `tx` and says how far it got.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError>;

    /// Optional progress estimate from the saved progress (read-only).
    async fn estimate(&self, _db: &Db, _progress: &Value) -> Option<ProgressEstimate> {
        None
    }
}

/// An index to create as a background update (Synapse's
/// `register_background_index_update`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    pub index_name: String,
    pub table: String,
    pub columns: Vec<String>,
    pub where_clause: Option<String>,
    pub unique: bool,
    /// An index dropped once the new one exists.
    pub replaces_index: Option<String>,
    /// Only on PostgreSQL (a no-op on SQLite).
    pub psql_only: bool,
}

/// The kinds of handler an update name can map to.
#[derive(Clone)]
pub enum Handler {
    Batch(Arc<dyn BatchHandler>),
    Index(IndexSpec),
    /// PostgreSQL only: `ALTER TABLE table VALIDATE CONSTRAINT constraint`.
    ValidateConstraint {
        table: String,
        constraint: String,
    },
    NoOp,
}

/// Maps update names to handlers.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Handler>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn register(&mut self, name: impl Into<String>, handler: Handler) -> &mut Registry {
        self.handlers.insert(name.into(), handler);
        self
    }

    pub fn register_batch(
        &mut self,
        name: impl Into<String>,
        handler: impl BatchHandler + 'static,
    ) -> &mut Registry {
        self.register(name, Handler::Batch(Arc::new(handler)))
    }

    pub fn get(&self, name: &str) -> Option<&Handler> {
        self.handlers.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}
