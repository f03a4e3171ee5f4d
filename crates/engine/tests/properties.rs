//! Property tests of the runner on both engines: random sequences of pause,
//! resume, job starts, batches, crashes (mid-batch too), injected failures,
//! restarts and racing runners. After the sequence a fresh runner drains the
//! queue; then:
//! - every moved row was written exactly once per accepted job start
//!   (final tables identical to an uninterrupted run);
//! - no batch started while paused;
//! - no batch of an update ran while its dependency was pending;
//! - the drain started updates in `(ordering, update_name)` order;
//! - each surviving runner's item counters equal the sum of its committed
//!   batch results;
//! - at most one batch ever executed at a time on the database.
//!
//! Cases: `UPDRAFT_PROPTEST_CASES` (SQLite; Postgres gets a quarter), default 16.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{json, Value};
use updraft_engine::{
    queue, BackgroundUpdatesConfig, BatchHandler, BatchResult, Db, DbTx, EngineError, HandlerError,
    ManualClock, Registry, Runner, RunnerOptions, UpdateRow,
};
use updraft_testkit::TestDb;

/// The synthetic jobs: (job, its updates as (name, depends_on, ordering)).
const JOBS: &[&[(&str, &str, i32)]] = &[
    &[("alpha", "", 0)],
    &[("beta1", "", 0), ("beta2", "beta1", 0)],
    &[("gamma", "", -1)],
    &[("delta", "", 0)],
];

fn all_updates() -> Vec<&'static str> {
    JOBS.iter().flat_map(|j| j.iter().map(|u| u.0)).collect()
}

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

/// Copies `src_NAME` rows `id > last` into `dst_NAME`, counting writes per row
/// in `n`, and logs each batch (with the lease holder of its transaction).
struct Copier {
    name: &'static str,
    probe: Arc<Probe>,
}

struct Leave<'a>(&'a AtomicUsize);
impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn scalar(tx: &mut DbTx, sql: &str) -> Result<i64, sqlx::Error> {
    match tx {
        DbTx::Sqlite(t) => sqlx::query_scalar(sql).fetch_one(&mut **t).await,
        DbTx::Postgres(t) => sqlx::query_scalar(sql).fetch_one(&mut **t).await,
    }
}

#[async_trait]
impl BatchHandler for Copier {
    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let now = self.probe.in_batch.fetch_add(1, Ordering::SeqCst) + 1;
        let _leave = Leave(&self.probe.in_batch);
        self.probe.max_in_batch.fetch_max(now, Ordering::SeqCst);
        if self.probe.paused.load(Ordering::SeqCst) {
            self.probe
                .violation(format!("batch of {} started while paused", self.name));
        }
        let rows = queue::list_in(tx).await?;
        let me = rows.iter().find(|r| r.update_name == self.name);
        if let Some(dep) = me.and_then(|r| r.dependency()) {
            if rows.iter().any(|r| r.update_name == dep) {
                self.probe
                    .violation(format!("{} ran while {dep} was pending", self.name));
            }
        }
        if self.probe.record_firsts.load(Ordering::SeqCst) {
            let mut f = self.probe.first_batches.lock().unwrap();
            if !f.iter().any(|n| n == self.name) {
                f.push(self.name.to_owned());
            }
        }
        let name = self.name;
        let last = progress["last"].as_i64().unwrap_or(0);
        let ids = scalar(
            tx,
            &format!(
                "SELECT COUNT(*) FROM (SELECT id FROM src_{name} WHERE id > {last} ORDER BY id LIMIT {batch_size}) s"
            ),
        )
        .await?;
        if ids == 0 {
            tx.execute(&format!(
                "INSERT INTO batch_log (update_name, items, holder) \
                 SELECT '{name}', 1, holder FROM updraft_runner_lease WHERE database_name = 'master'"
            ))
            .await?;
            return Ok(BatchResult::Done { items: 1 });
        }
        let max = scalar(
            tx,
            &format!(
                "SELECT MAX(id) FROM (SELECT id FROM src_{name} WHERE id > {last} ORDER BY id LIMIT {batch_size}) s"
            ),
        )
        .await?;
        tx.execute(&format!(
            "INSERT INTO dst_{name} (id, v, n) SELECT id, v, 1 FROM src_{name} WHERE id > {last} AND id <= {max} \
             ON CONFLICT (id) DO UPDATE SET n = dst_{name}.n + 1"
        ))
        .await?;
        if self.probe.fail_next.swap(false, Ordering::SeqCst) {
            return Err("injected failure after the first write".into());
        }
        if self.probe.hold.swap(false, Ordering::SeqCst) {
            self.probe.held.store(true, Ordering::SeqCst);
            self.probe.release.notified().await;
        }
        tx.execute(&format!(
            "INSERT INTO batch_log (update_name, items, holder) \
             SELECT '{name}', {ids}, holder FROM updraft_runner_lease WHERE database_name = 'master'"
        ))
        .await?;
        self.probe.committed_batches.fetch_add(1, Ordering::SeqCst);
        Ok(BatchResult::Progress {
            items: ids as u64,
            progress: json!({ "last": max }),
        })
    }
}

#[derive(Clone, Debug)]
enum Op {
    Pause,
    Resume,
    StartJob(usize),
    RunBatches(u64),
    Crash,
    CrashMidBatch,
    FailNextBatch,
    RaceAnotherRunner,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Pause),
        2 => Just(Op::Resume),
        4 => (0..JOBS.len()).prop_map(Op::StartJob),
        3 => (1u64..6).prop_map(Op::RunBatches),
        1 => Just(Op::Crash),
        1 => Just(Op::CrashMidBatch),
        1 => Just(Op::FailNextBatch),
        1 => Just(Op::RaceAnotherRunner),
    ]
}

struct World {
    /// Each runner gets a pool of its own, as a process would.
    target: updraft_engine::DbTarget,
    clock: ManualClock,
    probe: Arc<Probe>,
    options: RunnerOptions,
    live: Vec<Runner>,
    /// Runners that may have lost a batch's bookkeeping (killed).
    killed: Vec<Runner>,
    /// Finished runners whose counters must match the batch log.
    retired: Vec<Runner>,
    accepted: HashMap<&'static str, i64>,
    paused: bool,
}

impl World {
    fn registry(&self) -> Registry {
        let mut r = Registry::new();
        for name in all_updates() {
            r.register_batch(
                name,
                Copier {
                    name,
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
                let rows: Vec<UpdateRow> = JOBS[*j]
                    .iter()
                    .map(|(n, d, o)| UpdateRow {
                        ordering: *o,
                        ..UpdateRow::new(*n, *d)
                    })
                    .collect();
                let target = match self.live.first() {
                    Some(r) => r.clone(),
                    None => self.new_runner().await,
                };
                match target.start_job_rows(&rows).await {
                    Ok(()) => {
                        for (n, _, _) in JOBS[*j] {
                            *self.accepted.entry(n).or_default() += 1;
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
                    self.killed.push(r);
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
                    self.killed.push(r);
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
}

/// A crash: the loop is dropped where it stands and the "process's"
/// connections close, so the database rolls back whatever was open.
async fn kill(r: &Runner) {
    r.kill().await;
    r.db().close().await;
}

async fn setup(db: &Db) {
    queue::create_table_if_missing(db).await.unwrap();
    db.execute("CREATE TABLE batch_log (update_name TEXT NOT NULL, items BIGINT NOT NULL, holder TEXT NOT NULL)")
        .await
        .unwrap();
}

async fn check(engine: updraft_engine::Engine, sizes: Vec<i64>, default_batch: u64, ops: Vec<Op>) {
    let t = TestDb::new(engine).await;
    setup(&t.db).await;
    for (name, n) in all_updates().into_iter().zip(sizes) {
        t.db.execute(&format!(
            "CREATE TABLE src_{name} (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
        ))
        .await
        .unwrap();
        t.db.execute(&format!(
            "CREATE TABLE dst_{name} (id BIGINT PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL)"
        ))
        .await
        .unwrap();
        if n > 0 {
            let values: Vec<String> = (1..=n).map(|i| format!("({}, 'v{i}')", i * 3)).collect();
            t.db.execute(&format!(
                "INSERT INTO src_{name} (id, v) VALUES {}",
                values.join(",")
            ))
            .await
            .unwrap();
        }
    }
    let clock = ManualClock::new(1_000_000);
    let mut options = RunnerOptions::new(BackgroundUpdatesConfig {
        sleep_enabled: false,
        default_batch_size: default_batch,
        ..Default::default()
    });
    options.clock = Arc::new(clock.clone());
    options.lease_ttl = Duration::from_secs(10);
    options.lease_retry = Duration::from_secs(1);
    let mut world = World {
        target: t.target.clone(),
        clock,
        probe: Arc::new(Probe::default()),
        options,
        live: Vec::new(),
        killed: Vec::new(),
        retired: Vec::new(),
        accepted: HashMap::new(),
        paused: false,
    };
    world.new_runner().await;
    for op in &ops {
        world.apply(op).await;
    }
    // Wind down what is left, then drain with a fresh runner.
    world.probe.release.notify_waiters();
    for r in std::mem::take(&mut world.live) {
        r.shutdown().await;
        world.retired.push(r);
    }
    world.paused = false;
    world.probe.paused.store(false, Ordering::SeqCst);
    let mut pending = queue::list(&t.db).await.unwrap();
    let mut expected_order = Vec::new();
    while let Some(next) = queue::pick_next(&pending)
        .unwrap()
        .map(|r| r.update_name.clone())
    {
        pending.retain(|r| r.update_name != next);
        expected_order.push(next);
    }
    world.probe.record_firsts.store(true, Ordering::SeqCst);
    let drain = world.new_runner().await;
    drain.wait_stopped().await;
    assert_eq!(
        drain.state(),
        updraft_engine::RunnerState::Complete,
        "{}",
        drain.status().reason
    );
    world.live.clear();
    world.retired.push(drain);
    let _ = world.clock;

    let violations = world.probe.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:?} after {ops:?}");
    assert_eq!(
        *world.probe.first_batches.lock().unwrap(),
        expected_order,
        "drain order after {ops:?}"
    );
    assert!(
        world.probe.max_in_batch.load(Ordering::SeqCst) <= 1,
        "two batches at once after {ops:?}"
    );
    assert!(queue::list(&t.db).await.unwrap().is_empty());
    for name in all_updates() {
        let accepted = world.accepted.get(name).copied().unwrap_or(0);
        let src: Vec<(i64, String)> =
            rows(&t.db, &format!("SELECT id, v FROM src_{name} ORDER BY id")).await;
        let dst: Vec<(i64, String, i64)> = rows(
            &t.db,
            &format!("SELECT id, v, n FROM dst_{name} ORDER BY id"),
        )
        .await;
        let expected: Vec<(i64, String, i64)> = if accepted == 0 {
            Vec::new()
        } else {
            src.into_iter().map(|(id, v)| (id, v, accepted)).collect()
        };
        assert_eq!(dst, expected, "{name} after {ops:?}");
    }
    for r in &world.retired {
        let logged: Vec<(String, i64)> = rows(
            &t.db,
            &format!("SELECT update_name, CAST(SUM(items) AS BIGINT) FROM batch_log WHERE holder = '{}' GROUP BY update_name ORDER BY update_name", r.holder_id()),
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
}

async fn rows<T>(db: &Db, sql: &str) -> Vec<T>
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

fn cases(divisor: u32) -> u32 {
    let n: u32 = std::env::var("UPDRAFT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    (n / divisor).max(1)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1), ..ProptestConfig::default() })]
    #[test]
    fn runner_properties_sqlite(
        sizes in proptest::collection::vec(0i64..20, 5),
        default_batch in 1u64..8,
        ops in proptest::collection::vec(op(), 1..14),
    ) {
        runtime().block_on(check(updraft_engine::Engine::Sqlite, sizes, default_batch, ops));
    }
}

mod runner_properties {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(4), ..ProptestConfig::default() })]
        #[test]
        fn postgres(
            sizes in proptest::collection::vec(0i64..20, 5),
            default_batch in 1u64..8,
            ops in proptest::collection::vec(op(), 1..14),
        ) {
            runtime().block_on(check(updraft_engine::Engine::Postgres, sizes, default_batch, ops));
        }
    }
}
