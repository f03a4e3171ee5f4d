//! One runner per database: the loop that picks the current update, paces
//! it, runs its batches in transactions the engine owns, and moves through
//! the states of [`crate::state`].
//!
//! Crash safety: a batch handler's writes, the update's new progress (or the
//! deletion of its row) and the lease fence commit in ONE transaction, so a
//! crash at any instant leaves either the whole batch or none of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{RealClock, SharedClock};
use crate::config::BackgroundUpdatesConfig;
use crate::controller::{Controller, DefaultController};
use crate::db::{Db, DbTx};
use crate::error::EngineError;
use crate::handler::{BatchResult, Handler, Registry};
use crate::lease::{self, Acquire};
use crate::metrics::{DatabaseMetrics, UpdateMetrics};
use crate::pacing::{next_batch_size, Performance, Rate};
use crate::pause;
use crate::queue;
use crate::state::{transition, Event, RunnerState, MAX_CONSECUTIVE_FAILURES};
use crate::status::{CurrentUpdate, LastError, QueuedUpdate, RunnerStatus};
use crate::{oneshot, status};

/// How a runner is set up.
#[derive(Clone)]
pub struct RunnerOptions {
    pub config: BackgroundUpdatesConfig,
    pub clock: SharedClock,
    /// The registered controller; `None` uses [`DefaultController`].
    pub controller: Option<Arc<dyn Controller>>,
    /// How long a lease lasts without renewal: a runner that died is taken
    /// over this long after its last batch.
    pub lease_ttl: Duration,
    /// How often a runner waiting for another's lease tries again.
    pub lease_retry: Duration,
    /// Run only these updates (`updraft run --only`); the others stay
    /// queued and what depends on them waits. `None`: every update.
    pub only: Option<Arc<BTreeSet<String>>>,
}

impl RunnerOptions {
    /// The real clock, the default controller, the configured lease and a
    /// retry every quarter lease (at most 5 s).
    pub fn new(config: BackgroundUpdatesConfig) -> RunnerOptions {
        let lease_ttl = Duration::from_millis(config.runner_lease_ms.max(1));
        RunnerOptions {
            config,
            clock: RealClock::shared(),
            controller: None,
            lease_ttl,
            lease_retry: (lease_ttl / 4).min(Duration::from_secs(5)),
            only: None,
        }
    }
}

/// The runner of one database. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    db: Db,
    registry: Arc<Registry>,
    controller: Arc<dyn Controller>,
    clock: SharedClock,
    config: BackgroundUpdatesConfig,
    lease_ttl_ms: i64,
    lease_retry: Duration,
    only: Option<Arc<BTreeSet<String>>>,
    holder: String,
    shared: Mutex<Shared>,
    /// Bumped on pause, shutdown and wake-ups: interrupts sleeps.
    signal: watch::Sender<u64>,
    /// Whether the loop task is alive.
    running: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The runner's memory. Only touched under the mutex, never across an await.
struct Shared {
    state: RunnerState,
    reason: String,
    shutdown: bool,
    /// Bumped by every wake-up, so a loop about to stop notices a job that
    /// arrived after it last read the queue.
    generation: u64,
    current: Option<String>,
    performance: HashMap<String, Performance>,
    metrics: BTreeMap<String, UpdateMetrics>,
    failures: u32,
    last_error: Option<LastError>,
    in_batch: bool,
    holds_lease: bool,
}

/// Why a batch did not commit.
enum BatchError {
    /// Another runner took the lease over: not a failure.
    LeaseLost,
    /// The update's row is gone (cancelled, or finished by another runner).
    Vanished,
    Failed(String),
}

impl From<EngineError> for BatchError {
    fn from(e: EngineError) -> Self {
        BatchError::Failed(e.to_string())
    }
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        BatchError::Failed(e.to_string())
    }
}

impl Runner {
    /// A runner for the database called `name` (Synapse's main one is
    /// "master"). Creates the engine's own tables if missing and, with
    /// `persist_pause`, starts paused if the database says so. Does not start.
    pub async fn new(
        name: impl Into<String>,
        db: Db,
        registry: Arc<Registry>,
        options: RunnerOptions,
    ) -> Result<Runner, EngineError> {
        let name = name.into();
        create_own_tables(&db).await?;
        let paused = options.config.persist_pause && pause::is_paused(&db, &name).await?;
        let (state, reason) = if paused {
            transition(RunnerState::NotStarted, &Event::Pause { persisted: true })
                .expect("pause is always allowed")
        } else {
            (RunnerState::NotStarted, "not started".to_owned())
        };
        let controller = options.controller.clone().unwrap_or_else(|| {
            Arc::new(DefaultController::new(
                options.config.clone(),
                options.clock.clone(),
            ))
        });
        let holder = lease::new_holder_id(options.clock.now_ms());
        Ok(Runner {
            inner: Arc::new(Inner {
                name,
                db,
                registry,
                controller,
                clock: options.clock,
                config: options.config,
                lease_ttl_ms: options.lease_ttl.as_millis() as i64,
                lease_retry: options.lease_retry,
                only: options.only,
                holder,
                shared: Mutex::new(Shared {
                    state,
                    reason,
                    shutdown: false,
                    generation: 0,
                    current: None,
                    performance: HashMap::new(),
                    metrics: BTreeMap::new(),
                    failures: 0,
                    last_error: None,
                    in_batch: false,
                    holds_lease: false,
                }),
                signal: watch::Sender::new(0),
                running: watch::Sender::new(false),
                task: Mutex::new(None),
            }),
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// This runner's lease id (unique per runner and process).
    pub fn holder_id(&self) -> &str {
        &self.inner.holder
    }

    /// Starts the loop if enabled and not already running (Synapse's
    /// `start_doing_background_updates`).
    pub fn start(&self) {
        let inner = &self.inner;
        {
            let mut s = inner.lock();
            if s.shutdown || !s.state.is_enabled() || *inner.running.borrow() {
                return;
            }
            s.failures = 0;
            inner.running.send_replace(true);
        }
        let handle = tokio::spawn(run_loop(inner.clone()));
        *inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// New work may be queued: start the loop, or make a stopping one go on.
    pub fn wake(&self) {
        self.inner.lock().generation += 1;
        self.inner.signal.send_modify(|n| *n += 1);
        self.start();
    }

    /// Pauses (`false`) or resumes (`true`). A pause takes effect before the
    /// next batch; a running batch finishes. Resuming restarts the loop.
    /// With `persist_pause` the flag is written to the database first.
    pub async fn set_enabled(&self, enabled: bool) -> Result<(), EngineError> {
        let inner = &self.inner;
        if inner.config.persist_pause {
            let now = inner.clock.now_ms() as i64;
            pause::set_paused(&inner.db, &inner.name, !enabled, now).await?;
        }
        {
            let mut s = inner.lock();
            let event = if enabled {
                Event::Resume
            } else {
                Event::Pause {
                    persisted: inner.config.persist_pause,
                }
            };
            if s.state.is_enabled() != enabled {
                inner.apply(&mut s, event);
            }
        }
        if enabled {
            self.wake();
        } else {
            inner.signal.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.inner.lock().state.is_enabled()
    }

    pub fn state(&self) -> RunnerState {
        self.inner.lock().state
    }

    /// Whether the loop task is alive.
    pub fn is_running(&self) -> bool {
        *self.inner.running.borrow()
    }

    /// Waits until the loop has stopped (queue empty, paused, aborted, shut down).
    pub async fn wait_stopped(&self) {
        let mut rx = self.inner.running.subscribe();
        let _ = rx.wait_for(|running| !running).await;
    }

    /// Graceful shutdown: the current batch finishes and commits, the lease
    /// is released, the loop stops for good.
    pub async fn shutdown(&self) {
        {
            let mut s = self.inner.lock();
            s.shutdown = true;
            self.inner.apply(&mut s, Event::Shutdown);
        }
        self.inner.signal.send_modify(|n| *n += 1);
        let handle = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Simulates a crash (tests): the loop is dropped wherever it is; an open
    /// batch transaction rolls back; the lease stays in the database until it
    /// expires, as it would if the process died.
    pub async fn kill(&self) {
        let handle = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
        let mut s = self.inner.lock();
        s.shutdown = true;
        s.in_batch = false;
        s.holds_lease = false;
        self.inner.running.send_replace(false);
    }

    /// Synapse's view: the current update, `None` when there is none.
    pub fn current_update(&self) -> Option<CurrentUpdate> {
        let s = self.inner.lock();
        let name = s.current.as_ref()?;
        Some(
            s.performance
                .get(name)
                .map(CurrentUpdate::from)
                .unwrap_or_else(|| CurrentUpdate::from(&Performance::new(name.clone()))),
        )
    }

    /// The in-memory status (no queue, estimate or ETA: see [`Runner::details`]).
    pub fn status(&self) -> RunnerStatus {
        let s = self.inner.lock();
        let current = s.current.as_ref().map(|name| {
            s.performance
                .get(name)
                .map(CurrentUpdate::from)
                .unwrap_or_else(|| CurrentUpdate::from(&Performance::new(name.clone())))
        });
        RunnerStatus {
            database: self.inner.name.clone(),
            state: s.state,
            state_code: s.state.code(),
            reason: s.reason.clone(),
            enabled: s.state.is_enabled(),
            persist_pause: self.inner.config.persist_pause,
            in_batch: s.in_batch,
            current,
            consecutive_failures: s.failures,
            last_error: s.last_error.clone(),
            lease_holder: self.inner.holder.clone(),
            holds_lease: s.holds_lease,
            queue: Vec::new(),
            estimate: None,
            eta_ms: None,
        }
    }

    /// The full status: [`Runner::status`] plus the queue, the current
    /// update's estimate and an ETA.
    pub async fn details(&self) -> Result<RunnerStatus, EngineError> {
        let mut status = self.status();
        status.queue = self.queue().await?;
        let Some(current) = status.current.clone() else {
            return Ok(status);
        };
        let handler = self.inner.registry.get(&current.name);
        let row = status
            .queue
            .iter()
            .find(|q| q.row.update_name == current.name);
        if let (Some(Handler::Batch(h)), Some(q)) = (handler, row) {
            if let Ok(progress) = queue::parse_progress(&current.name, &q.row.progress_json) {
                status.estimate = h.estimate(&self.inner.db, &progress).await;
            }
        }
        let rate = {
            let s = self.inner.lock();
            s.performance
                .get(&current.name)
                .and_then(Performance::total_items_per_ms)
        };
        if let (Some(est), Some(rate)) = (&status.estimate, rate) {
            if let Some(total) = est.total {
                status.eta_ms = Some(total.saturating_sub(est.done) as f64 / rate);
            }
        }
        Ok(status)
    }

    /// The pending rows, with whether each has a handler and what it waits for.
    pub async fn queue(&self) -> Result<Vec<QueuedUpdate>, EngineError> {
        let rows = queue::list(&self.inner.db).await?;
        let pending: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.update_name.as_str()).collect();
        Ok(rows
            .iter()
            .map(|r| QueuedUpdate {
                has_handler: self.inner.registry.get(&r.update_name).is_some(),
                waiting_for: r
                    .dependency()
                    .filter(|d| pending.contains(d))
                    .map(str::to_owned),
                row: r.clone(),
            })
            .collect())
    }

    /// Inserts a job's rows (all or none) and wakes the loop.
    pub async fn start_job_rows(&self, rows: &[queue::UpdateRow]) -> Result<(), EngineError> {
        queue::insert(&self.inner.db, rows).await?;
        self.wake();
        Ok(())
    }

    /// Removes an update and everything depending on it; returns the names removed.
    pub async fn cancel(&self, update_name: &str) -> Result<Vec<String>, EngineError> {
        let removed = queue::cancel(&self.inner.db, update_name).await?;
        let mut s = self.inner.lock();
        if !s.in_batch && s.current.as_ref().is_some_and(|c| removed.contains(c)) {
            s.current = None;
        }
        Ok(removed)
    }

    /// The counters of this database.
    pub fn metrics(&self) -> DatabaseMetrics {
        let s = self.inner.lock();
        DatabaseMetrics {
            state_code: s.state.code(),
            updates: s.metrics.clone(),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves through the transition table, logging the change.
    fn apply(&self, s: &mut Shared, event: Event) {
        match transition(s.state, &event) {
            Some((to, reason)) => {
                if to != s.state || reason != s.reason {
                    tracing::info!(
                        database = %self.name,
                        from = s.state.name(),
                        to = to.name(),
                        "background updates: {reason}"
                    );
                }
                s.state = to;
                s.reason = reason;
            }
            None => tracing::debug!(
                database = %self.name,
                state = s.state.name(),
                ?event,
                "ignored event"
            ),
        }
    }

    fn stopping(&self) -> bool {
        let s = self.lock();
        s.shutdown || !s.state.is_enabled()
    }

    /// Resolves once the runner is paused or shut down.
    async fn until_stopping(&self, rx: &mut watch::Receiver<u64>) {
        loop {
            if self.stopping() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Counts a failure; returns true if the runner just aborted.
    fn record_failure(&self, s: &mut Shared, update: Option<&str>, message: String) -> bool {
        s.failures += 1;
        tracing::warn!(
            database = %self.name,
            update = update.unwrap_or("-"),
            failures = s.failures,
            "background update failed: {message}"
        );
        if let Some(u) = update {
            s.metrics.entry(u.to_owned()).or_default().failures_total += 1;
        }
        s.last_error = Some(LastError {
            update: update.unwrap_or_default().to_owned(),
            message: message.clone(),
            at_ms: self.clock.now_ms(),
        });
        if s.failures >= MAX_CONSECUTIVE_FAILURES {
            self.apply(s, Event::TooManyFailures(message));
            true
        } else {
            let consecutive = s.failures;
            self.apply(
                s,
                Event::BatchFailed {
                    consecutive,
                    error: message,
                },
            );
            false
        }
    }

    /// Ends the loop unless a wake-up came in since `generation` (then it
    /// goes on). Releases the lease first so another process may run.
    async fn finish(&self, generation: u64) -> bool {
        if self.lock().holds_lease {
            if let Err(e) = lease::release(&self.db, &self.name, &self.holder).await {
                tracing::warn!(database = %self.name, "could not release the lease: {e}");
            }
        }
        let mut s = self.lock();
        s.holds_lease = false;
        if s.generation != generation && !s.shutdown && s.state.is_enabled() {
            return true;
        }
        s.in_batch = false;
        self.running.send_replace(false);
        false
    }

    fn now(&self) -> i64 {
        self.clock.now_ms() as i64
    }

    /// Checks and renews the lease inside `tx`.
    async fn fence(&self, tx: &mut DbTx) -> Result<(), BatchError> {
        if lease::fence(tx, &self.name, &self.holder, self.now(), self.lease_ttl_ms).await? {
            Ok(())
        } else {
            Err(BatchError::LeaseLost)
        }
    }

    /// Runs one batch of `update`; returns (items, ended).
    async fn run_batch(
        &self,
        handler: &Handler,
        update: &str,
        batch_size: u64,
    ) -> Result<(u64, bool), BatchError> {
        match handler {
            Handler::Batch(h) => {
                let mut tx = self.db.begin().await?;
                self.fence(&mut tx).await?;
                let progress = queue::lock_progress(&mut tx, update)
                    .await?
                    .ok_or(BatchError::Vanished)?;
                // On any error below, `tx` is dropped: the batch rolls back.
                let result = h
                    .run_batch(&mut tx, &progress, batch_size)
                    .await
                    .map_err(|e| BatchError::Failed(e.to_string()))?;
                match &result {
                    BatchResult::Progress { progress, .. } => {
                        queue::save_progress(&mut tx, update, progress).await?
                    }
                    BatchResult::Done { .. } => queue::end(&mut tx, update).await?,
                }
                tx.commit().await?;
                Ok((result.items(), matches!(result, BatchResult::Done { .. })))
            }
            Handler::NoOp => {
                self.end_update(update).await?;
                Ok((1, true))
            }
            Handler::Index(spec) => {
                self.check_still_queued(update).await?;
                self.with_heartbeat(oneshot::create_index(&self.db, spec))
                    .await?;
                self.end_update(update).await?;
                Ok((1, true))
            }
            Handler::ValidateConstraint { table, constraint } => {
                self.check_still_queued(update).await?;
                self.with_heartbeat(oneshot::validate_constraint(&self.db, table, constraint))
                    .await?;
                self.end_update(update).await?;
                Ok((1, true))
            }
        }
    }

    /// Renews the lease and checks the row is still there (before a oneshot).
    async fn check_still_queued(&self, update: &str) -> Result<(), BatchError> {
        let mut tx = self.db.begin().await?;
        self.fence(&mut tx).await?;
        queue::lock_progress(&mut tx, update)
            .await?
            .ok_or(BatchError::Vanished)?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the update's row in a fenced transaction.
    async fn end_update(&self, update: &str) -> Result<(), BatchError> {
        let mut tx = self.db.begin().await?;
        self.fence(&mut tx).await?;
        queue::lock_progress(&mut tx, update)
            .await?
            .ok_or(BatchError::Vanished)?;
        queue::end(&mut tx, update).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs work that cannot sit in a transaction while a task renews the
    /// lease (Postgres; on SQLite the work holds the write lock, so no one can
    /// take the lease meanwhile). The heartbeat is stopped between renewals,
    /// never in the middle of one.
    async fn with_heartbeat(
        &self,
        work: impl std::future::Future<Output = Result<(), sqlx::Error>>,
    ) -> Result<(), BatchError> {
        if matches!(self.db, Db::Sqlite(_)) {
            return Ok(work.await?);
        }
        let (stop, mut stopped) = watch::channel(false);
        let (db, name, holder, clock, ttl) = (
            self.db.clone(),
            self.name.clone(),
            self.holder.clone(),
            self.clock.clone(),
            self.lease_ttl_ms,
        );
        let beat = tokio::spawn(async move {
            let every = Duration::from_millis((ttl / 3).max(1) as u64);
            loop {
                tokio::select! {
                    _ = clock.sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let now = clock.now_ms() as i64;
                match lease::renew(&db, &name, &holder, now, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(database = %name, "lease lost during a oneshot update")
                    }
                    Err(e) => tracing::warn!(database = %name, "lease heartbeat failed: {e}"),
                }
            }
        });
        let result = work.await;
        let _ = stop.send(true);
        let _ = beat.await;
        Ok(result?)
    }
}

/// The loop of one runner; see the module docs.
async fn run_loop(inner: Arc<Inner>) {
    loop {
        let mut signal = inner.signal.subscribe();
        let generation = {
            let s = inner.lock();
            (!s.shutdown && s.state.is_enabled()).then_some(s.generation)
        };
        let Some(generation) = generation else {
            if inner.finish(u64::MAX).await {
                continue;
            }
            return;
        };

        // A pause persisted by another process is honoured too.
        if inner.config.persist_pause {
            if let Ok(true) = pause::is_paused(&inner.db, &inner.name).await {
                let mut s = inner.lock();
                inner.apply(&mut s, Event::Pause { persisted: true });
                continue;
            }
        }

        // The one-runner rule.
        if !inner.lock().holds_lease {
            match lease::acquire(
                &inner.db,
                &inner.name,
                &inner.holder,
                inner.now(),
                inner.lease_ttl_ms,
            )
            .await
            {
                Ok(Acquire::Acquired) => {
                    let mut s = inner.lock();
                    s.holds_lease = true;
                    inner.apply(&mut s, Event::Start);
                }
                Ok(Acquire::HeldBy {
                    holder,
                    expires_at_ms,
                }) => {
                    {
                        let mut s = inner.lock();
                        let left = (expires_at_ms - inner.now()).max(0);
                        inner.apply(
                            &mut s,
                            Event::LeaseBusy(format!("{holder}, lease expires in {left} ms")),
                        );
                    }
                    tokio::select! {
                        _ = inner.clock.sleep(inner.lease_retry) => {}
                        _ = signal.changed() => {}
                    }
                    continue;
                }
                Err(e) => {
                    let aborted = {
                        let mut s = inner.lock();
                        inner.record_failure(&mut s, None, format!("acquiring the lease: {e}"))
                    };
                    if aborted && !inner.finish(generation).await {
                        return;
                    }
                    continue;
                }
            }
        }

        // The current update: chosen once, kept until it ends.
        let current = inner.lock().current.clone();
        let update = match current {
            Some(name) => name,
            None => {
                let rows = match queue::list(&inner.db).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        let aborted = {
                            let mut s = inner.lock();
                            inner.record_failure(&mut s, None, format!("reading the queue: {e}"))
                        };
                        if aborted && !inner.finish(generation).await {
                            return;
                        }
                        continue;
                    }
                };
                let eligible = |r: &queue::UpdateRow| {
                    inner
                        .only
                        .as_ref()
                        .is_none_or(|only| only.contains(&r.update_name))
                };
                match queue::pick_next_of(&rows, eligible) {
                    Ok(Some(row)) => {
                        let name = row.update_name.clone();
                        let mut s = inner.lock();
                        s.performance
                            .entry(name.clone())
                            .or_insert_with(|| Performance::new(name.clone()));
                        s.current = Some(name.clone());
                        name
                    }
                    Ok(None) => {
                        {
                            let mut s = inner.lock();
                            if s.generation == generation {
                                inner.apply(&mut s, Event::QueueEmpty);
                            }
                        }
                        if inner.finish(generation).await {
                            continue;
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::error!(database = %inner.name, "{e}");
                        {
                            let mut s = inner.lock();
                            inner.apply(&mut s, Event::Blocked(e.to_string()));
                        }
                        if inner.finish(generation).await {
                            continue;
                        }
                        return;
                    }
                }
            }
        };

        let Some(handler) = inner.registry.get(&update).cloned() else {
            let why = format!(
                "no handler is registered for background update {update:?}; \
                 the runner stops here (cancel the update or run a build that knows it)"
            );
            tracing::error!(database = %inner.name, "{why}");
            {
                let mut s = inner.lock();
                inner.apply(&mut s, Event::Blocked(why));
            }
            if inner.finish(generation).await {
                continue;
            }
            return;
        };
        let oneshot = !matches!(handler, Handler::Batch(_));

        // The controller's context: sleep, then the desired duration. A pause
        // or shutdown during the sleep means no batch.
        let desired = tokio::select! {
            d = inner.controller.on_update(&update, &inner.name, oneshot) => Some(d),
            _ = inner.until_stopping(&mut signal) => None,
        };
        let Some(desired_ms) = desired else {
            continue;
        };
        let rate = inner
            .lock()
            .performance
            .get(&update)
            .map(Performance::average_items_per_ms)
            .unwrap_or(Rate::Unknown);
        let (default_size, min_size) = if rate == Rate::Unknown {
            let d = inner
                .controller
                .default_batch_size(&update, &inner.name)
                .await;
            (d.unwrap_or(inner.config.default_batch_size), 0)
        } else {
            let m = inner.controller.min_batch_size(&update, &inner.name).await;
            (0, m.unwrap_or(inner.config.min_batch_size))
        };
        let batch_size = next_batch_size(rate, desired_ms, default_size, min_size);

        // Last check before the batch starts: no batch starts while paused.
        let go = {
            let mut s = inner.lock();
            let go = !s.shutdown && s.state.is_enabled();
            if go {
                s.in_batch = true;
                s.metrics
                    .entry(update.clone())
                    .or_default()
                    .current_batch_size = batch_size;
            }
            go
        };
        if !go {
            inner.controller.after_update(&update, &inner.name).await;
            continue;
        }
        tracing::debug!(database = %inner.name, update, batch_size, "starting a batch");
        let started = inner.clock.now_ms();
        let outcome = inner.run_batch(&handler, &update, batch_size).await;
        let duration_ms = inner.clock.now_ms() - started;
        inner.controller.after_update(&update, &inner.name).await;

        let aborted = {
            let mut s = inner.lock();
            s.in_batch = false;
            inner.record_outcome(&mut s, &update, outcome, duration_ms)
        };
        if aborted && !inner.finish(generation).await {
            return;
        }
    }
}

impl Inner {
    /// Books a batch's outcome; returns true if the runner just aborted.
    fn record_outcome(
        &self,
        s: &mut Shared,
        update: &str,
        outcome: Result<(u64, bool), BatchError>,
        duration_ms: f64,
    ) -> bool {
        let inner = self;
        match outcome {
            Ok((items, ended)) => {
                s.failures = 0;
                if let Some(p) = s.performance.get_mut(update) {
                    p.update(items, duration_ms);
                }
                let m = s.metrics.entry(update.to_owned()).or_default();
                m.items_total += items;
                m.batches_total += 1;
                m.batch_duration.observe(duration_ms);
                if ended {
                    tracing::info!(database = %inner.name, update, "background update finished");
                    s.current = None;
                }
                inner.apply(s, Event::BatchOk);
            }
            Err(BatchError::LeaseLost) => {
                s.holds_lease = false;
                inner.apply(
                    s,
                    Event::LeaseBusy("it was taken over while this runner waited".to_owned()),
                );
            }
            Err(BatchError::Vanished) => {
                tracing::info!(database = %inner.name, update, "update left the queue (cancelled or finished elsewhere)");
                s.current = None;
            }
            Err(BatchError::Failed(message)) => {
                return inner.record_failure(s, Some(update), message);
            }
        }
        false
    }
}

/// The engine's own tables. Two processes creating one at the same instant
/// on Postgres: the loser gets a duplicate error although the table exists.
async fn create_own_tables(db: &Db) -> Result<(), EngineError> {
    for ddl in [lease::LEASE_TABLE_DDL, pause::PAUSE_TABLE_DDL] {
        match db.execute(ddl).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("23505") | Some("42P07")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Synapse's status over several runners.
pub fn synapse_status<'a>(runners: impl IntoIterator<Item = &'a Runner>) -> status::Status {
    let mut enabled = true;
    let mut current_updates = BTreeMap::new();
    for r in runners {
        enabled &= r.enabled();
        if let Some(c) = r.current_update() {
            current_updates.insert(r.name().to_owned(), c);
        }
    }
    status::Status {
        enabled,
        current_updates,
    }
}
