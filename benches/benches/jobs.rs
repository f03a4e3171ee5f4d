//! One batch of each job stage on a seeded `small` world (1,000 local and
//! 200 remote users, 300 rooms), on a SQLite file and, when reachable, on
//! PostgreSQL (`UPDRAFT_TEST_POSTGRES`, default
//! postgres://postgres@127.0.0.1:5432/postgres). Each iteration runs the
//! handler's first batch of 100 items (rooms, state events, users: Synapse's
//! default first batch) in a transaction that is then rolled back, so every
//! iteration does the same work on the same data. The first process_rooms
//! batch is the world's biggest room (Synapse's order: most state events
//! first), a private room whose member pairs dominate the figure.
//!
//! `cargo bench -p updraft-benches --bench jobs`

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use updraft_benches::scratch_postgres;
use updraft_engine::{BatchHandler, Db, DbTarget, Handler};
use updraft_homeserver::jobs::{
    registry, CREATE_TABLES, POPULATE_STATS, PROCESS_ROOMS, PROCESS_USERS,
};
use updraft_homeserver::Config;
use updraft_workload::{SeedOptions, Shape};

/// Synapse's first batch size (`default_batch_size`).
const BATCH: u64 = 100;

/// The stages measured, in job order.
const STAGES: [&str; 3] = [POPULATE_STATS, PROCESS_ROOMS, PROCESS_USERS];

/// A seeded world and the config its jobs run with.
struct World {
    db: Db,
    config: Config,
}

/// Seeds `small` into `target` and builds the directory's stage tables (the
/// `createtables` stage, committed) so that the later stages have work.
async fn seeded(target: &DbTarget, dir: &Path) -> World {
    let db = updraft_homeserver::open(target, Default::default())
        .await
        .expect("open")
        .db;
    let shape = Shape::load("small").expect("small shape");
    let appservice = dir.join(format!("appservice-{}.yaml", target.engine()));
    let options = SeedOptions {
        appservice_file: Some(appservice.clone()),
        ..SeedOptions::default()
    };
    updraft_workload::seed(&db, &shape, 1, options)
        .await
        .expect("seed");
    let config = Config {
        server_name: shape.server_name.clone(),
        app_service_config_files: vec![appservice],
        ..Config::default()
    };
    let create = batch_handler(&config, CREATE_TABLES);
    let mut tx = db.begin().await.expect("begin");
    create
        .run_batch(&mut tx, &json!({}), BATCH)
        .await
        .expect("createtables");
    tx.commit().await.expect("commit");
    World { db, config }
}

fn batch_handler(config: &Config, name: &str) -> Arc<dyn BatchHandler> {
    match registry(config).get(name) {
        Some(Handler::Batch(h)) => h.clone(),
        _ => panic!("{name} is not a batch handler"),
    }
}

/// One batch of `stage`, rolled back; returns the items it processed.
async fn one_batch(world: &World, handler: &dyn BatchHandler) -> u64 {
    let mut tx = world.db.begin().await.expect("begin");
    let result = handler
        .run_batch(&mut tx, &json!({}), BATCH)
        .await
        .expect("batch");
    tx.rollback().await.expect("rollback");
    result.items()
}

fn bench_jobs(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut targets = vec![DbTarget::Sqlite(dir.path().join("small.db"))];
    if let Some(url) = rt.block_on(scratch_postgres("updraft_bench_jobs")) {
        targets.push(DbTarget::parse(&url).expect("postgres URL"));
    }

    let mut group = c.benchmark_group("job_batch_of_100");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    for target in &targets {
        let world = rt.block_on(seeded(target, dir.path()));
        for stage in STAGES {
            let handler = batch_handler(&world.config, stage);
            let items = rt.block_on(one_batch(&world, handler.as_ref()));
            assert!(
                items >= BATCH,
                "{stage}: a first batch of {items} items on the seeded world"
            );
            group.bench_function(format!("{stage}/{}", target.engine()), |b| {
                b.iter(|| rt.block_on(one_batch(&world, handler.as_ref())));
            });
        }
        rt.block_on(world.db.close());
    }
    group.finish();
}

criterion_group!(benches, bench_jobs);
criterion_main!(benches);
