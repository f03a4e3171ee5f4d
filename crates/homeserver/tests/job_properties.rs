//! Property tests of the real jobs under the runner's random operations, on
//! both engines: a seeded `tiny` world, then random pause, resume, job
//! starts (`populate_stats_process_rooms`, `regenerate_directory`), batches,
//! crashes (mid-batch too), injected failures, restarts and racing runners
//! (`updraft_testkit::runner_ops`, which checks the runner's own rules:
//! nothing while paused, dependencies, drain order, counters, one batch at a
//! time). Here: every derived table ends exactly as an uninterrupted run of
//! its job leaves it, or untouched if its job was never queued.
//!
//! Cases: `UPDRAFT_PROPTEST_CASES` (SQLite; PostgreSQL gets a quarter),
//! default 16.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use updraft_engine::{
    BackgroundUpdatesConfig, BatchHandler, Engine, Handler, Runner, RunnerOptions, RunnerState,
    UpdateRow,
};
use updraft_homeserver::dump::{dump, Rows};
use updraft_homeserver::jobs::{job_rows, registry, POPULATE_STATS, REGENERATE_DIRECTORY};
use updraft_homeserver::Config;
use updraft_testkit::runner_ops::{cases, op, runtime, Op, Scenario};
use updraft_testkit::TestDb;
use updraft_workload::{SeedOptions, Shape};

/// The jobs a scenario may start, in `Op::StartJob` numbering.
const JOBS: [&str; 2] = [POPULATE_STATS, REGENERATE_DIRECTORY];

/// Which job writes each dumped table (the queue is checked by the scenario).
fn owner(table: &str) -> Option<&'static str> {
    match table {
        "room_stats_current" | "room_stats_state" => Some(POPULATE_STATS),
        "background_updates" => None,
        _ => Some(REGENERATE_DIRECTORY),
    }
}

type Dump = BTreeMap<String, Rows>;

/// The seeded `tiny` world in a fresh database, with the config whose
/// app-service registration (written by the seed) the jobs read.
async fn seeded(engine: Engine, dir: &Path) -> (TestDb, Config) {
    let t = TestDb::new(engine).await;
    let opened = updraft_homeserver::open(&t.target, Default::default())
        .await
        .unwrap();
    let shape = Shape::load("tiny").unwrap();
    let appservice = dir.join("appservice.yaml");
    updraft_workload::seed(
        &opened.db,
        &shape,
        1,
        SeedOptions {
            append: false,
            appservice_file: Some(appservice.clone()),
            progress: false,
        },
    )
    .await
    .unwrap();
    opened.db.close().await;
    let config = Config {
        server_name: shape.server_name.clone(),
        app_service_config_files: vec![appservice],
        ..Config::default()
    };
    (t, config)
}

fn rows_of(job: &str) -> Vec<UpdateRow> {
    job_rows(job).unwrap()
}

/// The derived tables of the seeded world before any job, and after both
/// jobs ran uninterrupted with Synapse's default pacing: once per engine.
fn reference(engine: Engine) -> &'static (Dump, Dump) {
    static SQLITE: OnceLock<(Dump, Dump)> = OnceLock::new();
    static POSTGRES: OnceLock<(Dump, Dump)> = OnceLock::new();
    let cell = match engine {
        Engine::Sqlite => &SQLITE,
        Engine::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (t, config) = seeded(engine, dir.path()).await;
            let before = dump(&t.db).await.unwrap();
            let runner = Runner::new(
                "master",
                t.db.clone(),
                Arc::new(registry(&config)),
                RunnerOptions::new(BackgroundUpdatesConfig {
                    sleep_enabled: false,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
            for job in JOBS {
                runner.start_job_rows(&rows_of(job)).await.unwrap();
            }
            runner.start();
            runner.wait_stopped().await;
            assert_eq!(runner.state(), RunnerState::Complete);
            let after = dump(&t.db).await.unwrap();
            runner.shutdown().await;
            assert_ne!(before, after, "the jobs changed nothing");
            (before, after)
        })
    })
}

async fn check(engine: Engine, reference: &(Dump, Dump), default_batch: u64, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let (t, config) = seeded(engine, dir.path()).await;
    let handlers: Vec<(String, Arc<dyn BatchHandler>)> = {
        let registry = registry(&config);
        registry
            .names()
            .filter_map(|name| match registry.get(name) {
                Some(Handler::Batch(h)) => Some((name.to_owned(), h.clone())),
                _ => None,
            })
            .collect()
    };
    let jobs = JOBS.iter().map(|job| rows_of(job)).collect();
    let outcome = Scenario::new(t.target.clone(), jobs, handlers, default_batch)
        .await
        .run(&ops)
        .await;
    let got = dump(&t.db).await.unwrap();
    let (before, after) = reference;
    for (table, rows) in &got {
        let expected = match owner(table) {
            // Queued at least once: as one uninterrupted run leaves it
            // (a second run rebuilds the same rows).
            Some(job) if outcome.accepted.contains_key(&rows_of(job)[0].update_name) => {
                &after[table]
            }
            _ => &before[table],
        };
        assert_eq!(rows, expected, "{table} after {ops:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1), ..ProptestConfig::default() })]
    #[test]
    fn jobs_under_random_operations_sqlite(
        default_batch in 1u64..40,
        ops in proptest::collection::vec(op(JOBS.len()), 1..14),
    ) {
        let reference = reference(Engine::Sqlite);
        runtime().block_on(check(Engine::Sqlite, reference, default_batch, ops));
    }
}

mod jobs_under_random_operations {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(4), ..ProptestConfig::default() })]
        #[test]
        fn postgres(
            default_batch in 1u64..40,
            ops in proptest::collection::vec(op(JOBS.len()), 1..14),
        ) {
            let reference = reference(Engine::Postgres);
            runtime().block_on(check(Engine::Postgres, reference, default_batch, ops));
        }
    }
}
