//! The façade over every database's runner: what the HTTP API and the CLI
//! use. Synapse keeps one background updater per database (`master`,
//! `state`, ...); so does [`Updater`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{RealClock, SharedClock};
use crate::config::BackgroundUpdatesConfig;
use crate::controller::{Controller, ControllerSlot};
use crate::db::Db;
use crate::error::EngineError;
use crate::handler::Registry;
use crate::metrics::MetricsSnapshot;
use crate::queue::UpdateRow;
use crate::runner::{synapse_status, Runner, RunnerOptions};
use crate::status::{QueuedUpdate, RunnerStatus, Status};

/// Synapse's name for the main database.
pub const MAIN_DATABASE: &str = "master";

/// Builds an [`Updater`].
pub struct UpdaterBuilder {
    config: BackgroundUpdatesConfig,
    clock: SharedClock,
    controller: ControllerSlot,
    lease_ttl: Duration,
    lease_retry: Duration,
    only: Option<Arc<BTreeSet<String>>>,
    databases: Vec<(String, Db, Arc<Registry>)>,
}

impl UpdaterBuilder {
    /// Uses the real clock, the default controller and a 30 s lease.
    pub fn new(config: BackgroundUpdatesConfig) -> UpdaterBuilder {
        let defaults = RunnerOptions::new(config.clone());
        UpdaterBuilder {
            config,
            clock: RealClock::shared(),
            controller: ControllerSlot::default(),
            lease_ttl: defaults.lease_ttl,
            lease_retry: defaults.lease_retry,
            only: None,
            databases: Vec::new(),
        }
    }

    /// Replaces the clock (tests use [`crate::ManualClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Registers a controller; only the first registration is used (later
    /// ones are refused with a warning, and this returns false).
    pub fn register_controller(&mut self, controller: Arc<dyn Controller>) -> bool {
        self.controller.register(controller)
    }

    /// How long a lease lasts without renewal, and how often a waiting
    /// runner retries.
    pub fn lease(mut self, ttl: Duration, retry: Duration) -> Self {
        self.lease_ttl = ttl;
        self.lease_retry = retry;
        self
    }

    /// Runs only the named updates; the others stay queued (and whatever
    /// depends on them waits). Default: every update.
    pub fn only(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.only = Some(Arc::new(names.into_iter().collect()));
        self
    }

    /// Adds a database with the handlers its updates may use.
    pub fn database(mut self, name: impl Into<String>, db: Db, registry: Registry) -> Self {
        self.databases.push((name.into(), db, Arc::new(registry)));
        self
    }

    /// Creates the runners (and the engine's own tables). Nothing starts
    /// until [`Updater::start`].
    pub async fn build(self) -> Result<Updater, EngineError> {
        let options = RunnerOptions {
            config: self.config,
            clock: self.clock,
            controller: self.controller.get(),
            lease_ttl: self.lease_ttl,
            lease_retry: self.lease_retry,
            only: self.only,
        };
        let mut runners = Vec::new();
        for (name, db, registry) in self.databases {
            runners.push(Runner::new(name, db, registry, options.clone()).await?);
        }
        Ok(Updater {
            runners: Arc::new(runners),
        })
    }
}

/// Every database's runner. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Updater {
    runners: Arc<Vec<Runner>>,
}

impl Updater {
    pub fn builder(config: BackgroundUpdatesConfig) -> UpdaterBuilder {
        UpdaterBuilder::new(config)
    }

    /// Starts every enabled runner (Synapse does this at start-up); a runner
    /// with nothing queued stops again at once in state COMPLETE.
    pub fn start(&self) {
        for r in self.runners.iter() {
            r.start();
        }
    }

    /// Synapse's `GET /_synapse/admin/v1/background_updates/status` body.
    pub fn status(&self) -> Status {
        synapse_status(self.runners.iter())
    }

    /// True only if every runner is enabled.
    pub fn enabled(&self) -> bool {
        self.runners.iter().all(Runner::enabled)
    }

    /// Pauses or resumes every runner (resuming restarts the loops). Returns
    /// the new flag, as Synapse's `POST .../enabled` answers it.
    pub async fn set_enabled(&self, enabled: bool) -> Result<bool, EngineError> {
        for r in self.runners.iter() {
            r.set_enabled(enabled).await?;
        }
        Ok(enabled)
    }

    /// Inserts a job's rows into `database`'s queue (all or none) and wakes
    /// its runner. A row already queued: [`EngineError::AlreadyQueued`].
    pub async fn start_job_rows(
        &self,
        database: &str,
        rows: &[UpdateRow],
    ) -> Result<(), EngineError> {
        self.runner_or_err(database)?.start_job_rows(rows).await
    }

    /// Removes an update and, transitively, the updates that depend on it.
    /// Returns the names removed. Not queued: [`EngineError::NotQueued`].
    pub async fn cancel(
        &self,
        database: &str,
        update_name: &str,
    ) -> Result<Vec<String>, EngineError> {
        self.runner_or_err(database)?.cancel(update_name).await
    }

    /// `database`'s pending rows in queue order.
    pub async fn queue(&self, database: &str) -> Result<Vec<QueuedUpdate>, EngineError> {
        self.runner_or_err(database)?.queue().await
    }

    /// The detailed status of every runner (state, reason, queue, last
    /// error, estimate, ETA), in database order.
    pub async fn details(&self) -> Result<Vec<RunnerStatus>, EngineError> {
        let mut out = Vec::new();
        for r in self.runners.iter() {
            out.push(r.details().await?);
        }
        Ok(out)
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.runners
            .iter()
            .map(|r| (r.name().to_owned(), r.metrics()))
            .collect()
    }

    /// The runner of a database.
    pub fn runner(&self, database: &str) -> Option<&Runner> {
        self.runners.iter().find(|r| r.name() == database)
    }

    /// Every runner, in the order they were added.
    pub fn runners(&self) -> &[Runner] {
        &self.runners
    }

    /// The databases' names, in order.
    pub fn database_names(&self) -> Vec<String> {
        self.runners.iter().map(|r| r.name().to_owned()).collect()
    }

    /// Waits until no runner's loop is running.
    pub async fn wait_stopped(&self) {
        for r in self.runners.iter() {
            r.wait_stopped().await;
        }
    }

    /// Graceful shutdown of every runner: current batches finish and commit.
    pub async fn shutdown(&self) {
        for r in self.runners.iter() {
            r.shutdown().await;
        }
    }

    fn runner_or_err(&self, database: &str) -> Result<&Runner, EngineError> {
        self.runner(database)
            .ok_or_else(|| EngineError::UnknownDatabase(database.to_owned()))
    }
}
