//! Random operations on the runners of one database, for property tests of
//! the engine with any batch handlers (synthetic ones, or the real jobs):
//! pause, resume, job starts, batches, crashes (mid-batch too), injected
//! failures, restarts and racing runners. After the operations a fresh
//! runner drains the queue, and [`Scenario::run`] checks what holds for
//! every handler:
//! - no batch started while paused;
//! - no batch of an update ran while its dependency was pending;
//! - the drain started updates in `(ordering, update_name)` order;
//! - at most one batch ever executed at a time on the database;
//! - each runner that was not killed counted exactly the items of the
//!   batches it committed (a `batch_log` row per batch, written in the
//!   batch's own transaction);
//! - the queue ends empty.
//!
//! What the handlers wrote is the caller's to check, against
//! [`Outcome::accepted`] (how many times each job was queued).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::Value;
use updraft_engine::{
    queue, BackgroundUpdatesConfig, BatchHandler, BatchResult, Db, DbTarget, DbTx, EngineError,
    HandlerError, ManualClock, Registry, Runner, RunnerOptions, RunnerState, UpdateRow,
};

/// What the probed handlers saw, shared with the scenario.
#[derive(Default)]
struct Probe {
    in_batch: AtomicUsize,
    max_in_batch: AtomicUsize,
    committed_batches: AtomicU64,
    paused: AtomicBool,
    fail_next: AtomicBool,
    hold: AtomicBool,
    held: AtomicBool,
    release: tokio::sync::Notify,
    violations: Mutex<Vec<String>>,
    first_batches: Mutex<Vec<String>>,
    record_firsts: AtomicBool,
}

impl Probe {
    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }
}

struct Leave<'a>(&'a AtomicUsize);
impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Wraps a handler: checks the rules above around each batch, runs the
/// handler, then (when asked) fails the batch after its writes or holds it
/// open until a crash, and logs the batch in its own transaction.
struct Probed {
    name: String,
    inner: Arc<dyn BatchHandler>,
    probe: Arc<Probe>,
}

#[async_trait]
impl BatchHandler for Probed {
    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let probe = &self.probe;
        let now = probe.in_batch.fetch_add(1, Ordering::SeqCst) + 1;
        let _leave = Leave(&probe.in_batch);
        probe.max_in_batch.fetch_max(now, Ordering::SeqCst);
        if probe.paused.load(Ordering::SeqCst) {
            probe.violation(format!("batch of {} started while paused", self.name));
        }
        let rows = queue::list_in(tx).await?;
        let me = rows.iter().find(|r| r.update_name == self.name);
        if let Some(dep) = me.and_then(|r| r.dependency()) {
            if rows.iter().any(|r| r.update_name == dep) {
                probe.violation(format!("{} ran while {dep} was pending", self.name));
            }
        }
        if probe.record_firsts.load(Ordering::SeqCst) {
            let mut f = probe.first_batches.lock().unwrap();
            if !f.contains(&self.name) {
                f.push(self.name.clone());
            }
        }
        let result = self.inner.run_batch(tx, progress, batch_size).await?;
        if probe.fail_next.swap(false, Ordering::SeqCst) {
            return Err("injected failure after the batch's writes".into());
        }
        if probe.hold.swap(false, Ordering::SeqCst) {
            probe.held.store(true, Ordering::SeqCst);
            probe.release.notified().await;
        }
        // The name is one of the scenario's update names (no quotes).
        tx.execute(&format!(
            "INSERT INTO batch_log (update_name, items, holder) \
             SELECT '{}', {}, holder FROM updraft_runner_lease WHERE database_name = 'master'",
            self.name,
            result.items()
        ))
        .await?;
        probe.committed_batches.fetch_add(1, Ordering::SeqCst);
        Ok(result)
    }
}

/// One step of a scenario.
#[derive(Clone, Debug)]
pub enum Op {
    Pause,
    Resume,
    /// Queue job N (its rows all or none; "already queued" is fine).
    StartJob(usize),
    /// Let about N more batches commit.
    RunBatches(u64),
    /// Kill the oldest runner wherever it is; a new one starts.
    Crash,
    /// Hold the next batch open after its writes, then kill every runner.
    CrashMidBatch,
    /// The next batch fails after its writes (and rolls back).
    FailNextBatch,
    /// A second runner on the same database.
    RaceAnotherRunner,
}

/// Random operations over `jobs` jobs.
pub fn op(jobs: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Pause),
        2 => Just(Op::Resume),
        4 => (0..jobs).prop_map(Op::StartJob),
        3 => (1u64..6).prop_map(Op::RunBatches),
        1 => Just(Op::Crash),
        1 => Just(Op::CrashMidBatch),
        1 => Just(Op::FailNextBatch),
        1 => Just(Op::RaceAnotherRunner),
    ]
}

/// Cases for a property test: `UPDRAFT_PROPTEST_CASES` (default 16) divided
/// by `divisor` (PostgreSQL tests run fewer), at least 1.
pub fn cases(divisor: u32) -> u32 {
    let n: u32 = std::env::var("UPDRAFT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    (n / divisor).max(1)
}

/// What a scenario did, for the caller's checks of the handlers' writes.
#[derive(Debug)]
pub struct Outcome {
    /// Per update name, how many times its job was queued.
    pub accepted: BTreeMap<String, i64>,
}

/// The runners of one database under random operations.
pub struct Scenario {
    /// Each runner gets a pool of its own, as a process would.
    target: DbTarget,
    probe: Arc<Probe>,
    options: RunnerOptions,
    jobs: Vec<Vec<UpdateRow>>,
    handlers: Vec<(String, Arc<dyn BatchHandler>)>,
    live: Vec<Runner>,
    /// Finished runners whose counters must match the batch log.
    retired: Vec<Runner>,
    accepted: BTreeMap<String, i64>,
    paused: bool,
}

impl Scenario {
    /// A scenario on the database at `target` (which has the
    /// `background_updates` table) with these jobs and handlers; batches
    /// start at `default_batch_size` items, sleeping is off, and the clock is
    /// a [`ManualClock`] (every batch lasts 0 ms, so later batches are
    /// `min_batch_size`).
    pub async fn new(
        target: DbTarget,
        jobs: Vec<Vec<UpdateRow>>,
        handlers: Vec<(String, Arc<dyn BatchHandler>)>,
        default_batch_size: u64,
    ) -> Scenario {
        let db = Db::open(&target, false).await.unwrap();
        db.execute(
            "CREATE TABLE batch_log (update_name TEXT NOT NULL, items BIGINT NOT NULL, holder TEXT NOT NULL)",
        )
        .await
        .unwrap();
        db.close().await;
        let mut options = RunnerOptions::new(BackgroundUpdatesConfig {
            sleep_enabled: false,
            default_batch_size,
            ..Default::default()
        });
        options.clock = Arc::new(ManualClock::new(1_000_000));
        options.lease_ttl = Duration::from_secs(10);
        options.lease_retry = Duration::from_secs(1);
        Scenario {
            target,
            probe: Arc::new(Probe::default()),
            options,
            jobs,
            handlers,
            live: Vec::new(),
            retired: Vec::new(),
            accepted: BTreeMap::new(),
            paused: false,
        }
    }

    fn registry(&self) -> Registry {
        let mut r = Registry::new();
        for (name, inner) in &self.handlers {
            r.register_batch(
                name.clone(),
                Probed {
                    name: name.clone(),
                    inner: inner.clone(),
                    probe: self.probe.clone(),
                },
            );
        }
        r
    }

    async fn new_runner(&mut self) -> Runner {
        let db = Db::open(&self.target, false).await.unwrap();
        let r = Runner::new(
            "master",
            db,
            Arc::new(self.registry()),
            self.options.clone(),
        )
        .await
        .unwrap();
        if self.paused {
            r.set_enabled(false).await.unwrap();
        }
        r.start();
        self.live.push(r.clone());
        r
    }

    async fn wait_until(&self, mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..3000 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }

    async fn apply(&mut self, op: &Op) {
        match op {
            Op::Pause => {
                for r in &self.live {
                    r.set_enabled(false).await.unwrap();
                }
                // A batch already under way finishes; none may start after it.
                let live = self.live.clone();
                assert!(
                    self.wait_until(|| live.iter().all(|r| !r.status().in_batch))
                        .await
                );
                self.paused = true;
                self.probe.paused.store(true, Ordering::SeqCst);
            }
            Op::Resume => {
                self.paused = false;
                self.probe.paused.store(false, Ordering::SeqCst);
                for r in &self.live {
                    r.set_enabled(true).await.unwrap();
                }
            }
            Op::StartJob(j) => {
                let rows = self.jobs[*j].clone();
                let target = match self.live.first() {
                    Some(r) => r.clone(),
                    None => self.new_runner().await,
                };
                match target.start_job_rows(&rows).await {
                    Ok(()) => {
                        for r in &rows {
                            *self.accepted.entry(r.update_name.clone()).or_default() += 1;
                        }
                    }
                    Err(EngineError::AlreadyQueued(_)) => {}
                    Err(e) => panic!("start job: {e}"),
                }
            }
            Op::RunBatches(k) => {
                let goal = self.probe.committed_batches.load(Ordering::SeqCst) + k;
                let probe = self.probe.clone();
                let live = self.live.clone();
                self.wait_until(|| {
                    probe.committed_batches.load(Ordering::SeqCst) >= goal
                        || live.iter().all(|r| !r.is_running())
                })
                .await;
            }
            Op::Crash => {
                if !self.live.is_empty() {
                    let r = self.live.remove(0);
                    kill(&r).await;
                    self.new_runner().await;
                }
            }
            Op::CrashMidBatch => {
                if self.live.is_empty() || self.paused {
                    return;
                }
                self.probe.held.store(false, Ordering::SeqCst);
                self.probe.hold.store(true, Ordering::SeqCst);
                let probe = self.probe.clone();
                let live = self.live.clone();
                self.wait_until(|| {
                    probe.held.load(Ordering::SeqCst) || live.iter().all(|r| !r.is_running())
                })
                .await;
                self.probe.hold.store(false, Ordering::SeqCst);
                // Kill every live runner: the one holding the batch is among them.
                for r in std::mem::take(&mut self.live) {
                    kill(&r).await;
                }
                self.probe.release.notify_waiters();
                self.new_runner().await;
            }
            Op::FailNextBatch => self.probe.fail_next.store(true, Ordering::SeqCst),
            Op::RaceAnotherRunner => {
                if self.live.len() < 2 {
                    self.new_runner().await;
                }
            }
        }
    }

    /// Applies `ops`, winds the runners down, drains the queue with a fresh
    /// runner and checks the properties of the module docs (panicking with
    /// the operations on a violation).
    pub async fn run(mut self, ops: &[Op]) -> Outcome {
        self.new_runner().await;
        for op in ops {
            self.apply(op).await;
        }
        self.probe.release.notify_waiters();
        for r in std::mem::take(&mut self.live) {
            r.shutdown().await;
            self.retired.push(r);
        }
        self.paused = false;
        self.probe.paused.store(false, Ordering::SeqCst);
        let db = Db::open(&self.target, false).await.unwrap();
        let mut pending = queue::list(&db).await.unwrap();
        let mut expected_order = Vec::new();
        while let Some(next) = queue::pick_next(&pending)
            .unwrap()
            .map(|r| r.update_name.clone())
        {
            pending.retain(|r| r.update_name != next);
            expected_order.push(next);
        }
        self.probe.record_firsts.store(true, Ordering::SeqCst);
        let drain = self.new_runner().await;
        drain.wait_stopped().await;
        assert_eq!(
            drain.state(),
            RunnerState::Complete,
            "{} after {ops:?}",
            drain.status().reason
        );
        self.live.clear();
        self.retired.push(drain);

        let violations = self.probe.violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "{violations:?} after {ops:?}");
        assert_eq!(
            *self.probe.first_batches.lock().unwrap(),
            expected_order,
            "drain order after {ops:?}"
        );
        assert!(
            self.probe.max_in_batch.load(Ordering::SeqCst) <= 1,
            "two batches at once after {ops:?}"
        );
        assert!(queue::list(&db).await.unwrap().is_empty());
        for r in &self.retired {
            let logged: Vec<(String, i64)> = rows(
                &db,
                &format!(
                    "SELECT update_name, CAST(SUM(items) AS BIGINT) FROM batch_log \
                     WHERE holder = '{}' GROUP BY update_name ORDER BY update_name",
                    r.holder_id()
                ),
            )
            .await;
            let counted: Vec<(String, i64)> = r
                .metrics()
                .updates
                .into_iter()
                .filter(|(_, m)| m.items_total > 0)
                .map(|(n, m)| (n, m.items_total as i64))
                .collect();
            assert_eq!(counted, logged, "runner {} after {ops:?}", r.holder_id());
        }
        for r in &self.retired {
            r.db().close().await;
        }
        db.close().await;
        Outcome {
            accepted: self.accepted,
        }
    }
}

/// A crash: the loop is dropped where it stands and the "process's"
/// connections close, so the database rolls back whatever was open.
async fn kill(r: &Runner) {
    r.kill().await;
    r.db().close().await;
}

/// Rows of a query without bind parameters, on either engine.
pub async fn rows<T>(db: &Db, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

/// A multi-threaded runtime for a property case (proptest bodies are sync).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
