//! The engine's own overhead per batch: a handler that does nothing, run
//! through the real runner (lease fence, progress read under lock, progress
//! save, commit, pacing, metrics) on a SQLite file and, when reachable, on
//! PostgreSQL (`UPDRAFT_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/postgres).
//!
//! `cargo bench -p updraft-benches --bench engine`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use updraft_benches::scratch_postgres;
use updraft_engine::{
    queue, BackgroundUpdatesConfig, BatchHandler, BatchResult, Db, DbTx, HandlerError, Registry,
    Runner, RunnerOptions, UpdateRow,
};

/// Returns one item per call until `target` calls, then ends.
struct Nothing {
    calls: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
}

#[async_trait]
impl BatchHandler for Nothing {
    async fn run_batch(
        &self,
        _: &mut DbTx,
        _: &Value,
        _: u64,
    ) -> Result<BatchResult, HandlerError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.target.load(Ordering::SeqCst) {
            Ok(BatchResult::Done { items: 1 })
        } else {
            Ok(BatchResult::Progress {
                items: 1,
                progress: json!({ "n": n }),
            })
        }
    }
}

/// Runs `batches` no-op batches through a fresh runner; returns the time taken.
async fn run_batches(db: &Db, batches: u64) -> Duration {
    let calls = Arc::new(AtomicU64::new(0));
    let target = Arc::new(AtomicU64::new(batches));
    let mut registry = Registry::new();
    registry.register_batch(
        "noop_batches",
        Nothing {
            calls: calls.clone(),
            target,
        },
    );
    let options = RunnerOptions::new(BackgroundUpdatesConfig {
        sleep_enabled: false,
        ..Default::default()
    });
    let runner = Runner::new("master", db.clone(), Arc::new(registry), options)
        .await
        .unwrap();
    queue::insert(db, &[UpdateRow::new("noop_batches", "")])
        .await
        .unwrap();
    let start = Instant::now();
    runner.start();
    runner.wait_stopped().await;
    let took = start.elapsed();
    assert_eq!(calls.load(Ordering::SeqCst), batches);
    took
}

fn bench_engine(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = rt.block_on(Db::connect(&url)).unwrap();
    rt.block_on(queue::create_table_if_missing(&sqlite))
        .unwrap();

    let mut group = c.benchmark_group("engine_overhead_per_batch");
    group.sample_size(20);
    group.bench_function("sqlite", |b| {
        b.iter_custom(|iters| rt.block_on(run_batches(&sqlite, iters.max(1))));
    });
    if let Some(url) = rt.block_on(scratch_postgres("updraft_bench_engine")) {
        let pg = rt.block_on(Db::connect(&url)).unwrap();
        rt.block_on(queue::create_table_if_missing(&pg)).unwrap();
        group.bench_function("postgres", |b| {
            b.iter_custom(|iters| rt.block_on(run_batches(&pg, iters.max(1))));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
