//! Property tests of the runner on both engines, over synthetic handlers:
//! random sequences of pause, resume, job starts, batches, crashes (mid-batch
//! too), injected failures, restarts and racing runners
//! (`updraft_testkit::runner_ops`, which checks the runner's own rules).
//! Here: every moved row was written exactly once per accepted job start,
//! i.e. the final tables are identical to an uninterrupted run's.
//!
//! Cases: `UPDRAFT_PROPTEST_CASES` (SQLite; Postgres gets a quarter), default 16.

use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{json, Value};
use updraft_engine::{queue, BatchHandler, BatchResult, DbTx, HandlerError, UpdateRow};
use updraft_testkit::runner_ops::{cases, op, rows, runtime, Op, Scenario};
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

/// Copies `src_NAME` rows `id > last` into `dst_NAME`, counting writes per
/// row in `n`: a row written twice (a batch redone) shows `n` too high.
struct Copier {
    name: &'static str,
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
        let name = self.name;
        let last = progress["last"].as_i64().unwrap_or(0);
        let chosen =
            format!("SELECT id FROM src_{name} WHERE id > {last} ORDER BY id LIMIT {batch_size}");
        let ids = scalar(tx, &format!("SELECT COUNT(*) FROM ({chosen}) s")).await?;
        if ids == 0 {
            return Ok(BatchResult::Done { items: 1 });
        }
        let max = scalar(tx, &format!("SELECT MAX(id) FROM ({chosen}) s")).await?;
        tx.execute(&format!(
            "INSERT INTO dst_{name} (id, v, n) SELECT id, v, 1 FROM src_{name} WHERE id > {last} AND id <= {max} \
             ON CONFLICT (id) DO UPDATE SET n = dst_{name}.n + 1"
        ))
        .await?;
        Ok(BatchResult::Progress {
            items: ids as u64,
            progress: json!({ "last": max }),
        })
    }
}

async fn check(engine: updraft_engine::Engine, sizes: Vec<i64>, default_batch: u64, ops: Vec<Op>) {
    let t = TestDb::new(engine).await;
    queue::create_table_if_missing(&t.db).await.unwrap();
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
    let jobs = JOBS
        .iter()
        .map(|job| {
            job.iter()
                .map(|(n, d, o)| UpdateRow {
                    ordering: *o,
                    ..UpdateRow::new(*n, *d)
                })
                .collect()
        })
        .collect();
    let handlers = all_updates()
        .into_iter()
        .map(|name| {
            (
                name.to_owned(),
                Arc::new(Copier { name }) as Arc<dyn BatchHandler>,
            )
        })
        .collect();
    let outcome = Scenario::new(t.target.clone(), jobs, handlers, default_batch)
        .await
        .run(&ops)
        .await;
    for name in all_updates() {
        let accepted = outcome.accepted.get(name).copied().unwrap_or(0);
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
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1), ..ProptestConfig::default() })]
    #[test]
    fn runner_properties_sqlite(
        sizes in proptest::collection::vec(0i64..20, 5),
        default_batch in 1u64..8,
        ops in proptest::collection::vec(op(JOBS.len()), 1..14),
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
            ops in proptest::collection::vec(op(JOBS.len()), 1..14),
        ) {
            runtime().block_on(check(updraft_engine::Engine::Postgres, sizes, default_batch, ops));
        }
    }
}
