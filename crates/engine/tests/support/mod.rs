//! Synthetic batch handlers for the engine's tests: a handler that moves
//! rows from one table to another, recording what it did.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use updraft_engine::{
    BackgroundUpdatesConfig, BatchHandler, BatchResult, Db, DbTx, HandlerError, ManualClock,
    ProgressEstimate, Registry, Runner, RunnerOptions, UpdateRow,
};

/// What the handlers saw, shared by every runner of a test.
#[derive(Default)]
pub struct Probe {
    /// Batches executing right now (across runners).
    pub in_batch: AtomicUsize,
    /// The most batches ever executing at once.
    pub max_in_batch: AtomicUsize,
    /// Every batch that committed or not: (update, items) at its end.
    pub batches: Mutex<Vec<(String, u64)>>,
    /// Update names in the order their first batch started.
    pub first_batches: Mutex<Vec<String>>,
    /// When set, every batch waits for a permit (tests hold batches open).
    pub gate: Option<Semaphore>,
    /// Fail the batch (after its first write) when this counter hits 1.
    pub fail_countdown: AtomicU64,
}

impl Probe {
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }

    pub fn gated() -> Arc<Probe> {
        Arc::new(Probe {
            gate: Some(Semaphore::new(0)),
            ..Probe::default()
        })
    }

    pub fn release(&self, batches: usize) {
        if let Some(g) = &self.gate {
            g.add_permits(batches);
        }
    }

    pub fn batch_count(&self) -> usize {
        self.batches.lock().unwrap().len()
    }

    pub fn items_of(&self, update: &str) -> u64 {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == update)
            .map(|(_, n)| n)
            .sum()
    }

    /// Waits (bounded) until a batch is executing.
    pub async fn wait_in_batch(&self) {
        for _ in 0..2000 {
            if self.in_batch.load(Ordering::SeqCst) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("no batch started");
    }
}

/// Moves rows `id > last` of `src` into `dst`, `batch_size` at a time.
/// Progress `{"last": ID}`; ends (returning 1, Synapse's convention) when
/// nothing is left.
pub struct Mover {
    pub name: String,
    pub src: String,
    pub dst: String,
    pub probe: Arc<Probe>,
}

#[async_trait]
impl BatchHandler for Mover {
    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let now = self.probe.in_batch.fetch_add(1, Ordering::SeqCst) + 1;
        self.probe.max_in_batch.fetch_max(now, Ordering::SeqCst);
        {
            let mut firsts = self.probe.first_batches.lock().unwrap();
            if !firsts.contains(&self.name) {
                firsts.push(self.name.clone());
            }
        }
        // Decrements even when the batch's future is dropped (a killed runner).
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let leave = Leave(&self.probe.in_batch);
        let result = self.batch(tx, progress, batch_size).await;
        drop(leave);
        if let Ok(r) = &result {
            self.probe
                .batches
                .lock()
                .unwrap()
                .push((self.name.clone(), r.items()));
        }
        result
    }

    async fn estimate(&self, db: &Db, progress: &Value) -> Option<ProgressEstimate> {
        let last = progress["last"].as_i64().unwrap_or(0);
        let done = count(
            db,
            &format!("SELECT COUNT(*) FROM {} WHERE id <= {last}", self.src),
        )
        .await;
        let total = count(db, &format!("SELECT COUNT(*) FROM {}", self.src)).await;
        Some(ProgressEstimate {
            done: done as u64,
            total: Some(total as u64),
        })
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

impl Mover {
    async fn batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let last = progress["last"].as_i64().unwrap_or(0);
        let ids_sql = format!(
            "SELECT id FROM {} WHERE id > {last} ORDER BY id LIMIT {}",
            self.src,
            batch_size.min(i64::MAX as u64)
        );
        let ids: Vec<i64> = match tx {
            DbTx::Sqlite(t) => sqlx::query_scalar(&ids_sql).fetch_all(&mut **t).await?,
            DbTx::Postgres(t) => sqlx::query_scalar(&ids_sql).fetch_all(&mut **t).await?,
        };
        let Some(&max) = ids.last() else {
            return Ok(BatchResult::Done { items: 1 });
        };
        tx.execute(&format!(
            "INSERT INTO {} (id, v) SELECT id, v FROM {} WHERE id > {last} AND id <= {max}",
            self.dst, self.src
        ))
        .await?;
        if let Some(gate) = &self.probe.gate {
            gate.acquire().await?.forget();
        }
        if self.probe.fail_countdown.load(Ordering::SeqCst) > 0
            && self.probe.fail_countdown.fetch_sub(1, Ordering::SeqCst) == 1
        {
            return Err("injected failure after the batch's first write".into());
        }
        tx.execute(&format!(
            "UPDATE {} SET v = v || '!' WHERE id > {last} AND id <= {max}",
            self.dst
        ))
        .await?;
        Ok(BatchResult::Progress {
            items: ids.len() as u64,
            progress: json!({ "last": max }),
        })
    }
}

/// Creates `src`/`dst` tables with `n` rows in `src`.
pub async fn make_tables(db: &Db, src: &str, dst: &str, n: i64) {
    for t in [src, dst] {
        db.execute(&format!(
            "CREATE TABLE {t} (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
        ))
        .await
        .unwrap();
    }
    if n > 0 {
        let values: Vec<String> = (1..=n).map(|i| format!("({i}, 'v{i}')")).collect();
        db.execute(&format!(
            "INSERT INTO {src} (id, v) VALUES {}",
            values.join(",")
        ))
        .await
        .unwrap();
    }
}

/// The rows of a table, ordered.
pub async fn dump(db: &Db, table: &str) -> Vec<(i64, String)> {
    let sql = format!("SELECT id, v FROM {table} ORDER BY id");
    match db {
        Db::Sqlite(p) => sqlx::query_as(&sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(&sql).fetch_all(p).await.unwrap(),
    }
}

/// No sleep, manual clock: runs at full speed, deterministically paced.
pub fn fast_options(clock: &ManualClock) -> RunnerOptions {
    let mut o = RunnerOptions::new(BackgroundUpdatesConfig {
        sleep_enabled: false,
        default_batch_size: 10,
        ..BackgroundUpdatesConfig::default()
    });
    o.clock = Arc::new(clock.clone());
    o.lease_ttl = Duration::from_secs(30);
    o.lease_retry = Duration::from_secs(1);
    o
}

/// A registry of movers `name -> (src_NAME, dst_NAME)`.
pub fn registry(names: &[&str], probe: &Arc<Probe>) -> Registry {
    let mut r = Registry::new();
    for n in names {
        r.register_batch(
            *n,
            Mover {
                name: n.to_string(),
                src: format!("src_{n}"),
                dst: format!("dst_{n}"),
                probe: probe.clone(),
            },
        );
    }
    r
}

pub fn row(name: &str, depends_on: &str, ordering: i32) -> UpdateRow {
    UpdateRow {
        ordering,
        ..UpdateRow::new(name, depends_on)
    }
}

pub async fn runner(db: &Db, registry: Registry, options: RunnerOptions) -> Runner {
    updraft_engine::queue::create_table_if_missing(db)
        .await
        .unwrap();
    Runner::new("master", db.clone(), Arc::new(registry), options)
        .await
        .unwrap()
}
