//! The one-runner rule across processes (SEMANTICS §3 "Beyond"): a lease row
//! per database in our own table `updraft_runner_lease`, on both engines.
//!
//! A runner acquires the row (or takes it over once expired) and then checks
//! and renews it as the first statement of every batch transaction (the
//! fence). That UPDATE holds the row lock (Postgres) or the write lock
//! (SQLite `BEGIN IMMEDIATE`) until the batch commits, so a takeover can
//! never slip in while a batch is open, and a runner that lost its lease
//! finds out before doing any work. Nothing ever blocks waiting for the lease:
//! acquisition is a single conditional upsert.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::{Db, DbTx};
use crate::error::EngineError;

/// Our table; safe to add to a Synapse database (Synapse ignores it).
pub const LEASE_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS updraft_runner_lease (
    database_name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
)";

/// A unique id for one runner: process id, a per-process counter, start time.
pub fn new_holder_id(now_ms: f64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "pid{}-r{}-t{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        now_ms as i64
    )
}

/// Result of trying to acquire the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    Acquired,
    /// Another runner holds it until `expires_at_ms`.
    HeldBy {
        holder: String,
        expires_at_ms: i64,
    },
}

/// Takes the lease if it is free, expired, or already ours. Never waits on
/// a live holder: a plain read answers first, and on Postgres the row lock
/// is taken with `NOWAIT` (a holder mid-batch holds it).
pub async fn acquire(
    db: &Db,
    database_name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Acquire, EngineError> {
    if let Some((other, expires_at_ms)) = read(db, database_name).await? {
        if other != holder && expires_at_ms >= now_ms {
            return Ok(Acquire::HeldBy {
                holder: other,
                expires_at_ms,
            });
        }
    }
    let expires = now_ms + ttl_ms;
    // The upsert only overwrites a row that is ours or has expired.
    let n = match db {
        Db::Sqlite(pool) => sqlx::query(
            "INSERT INTO updraft_runner_lease (database_name, holder, expires_at_ms) VALUES (?, ?, ?)
             ON CONFLICT (database_name) DO UPDATE
             SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
             WHERE updraft_runner_lease.holder = excluded.holder
                OR updraft_runner_lease.expires_at_ms < ?",
        )
        .bind(database_name)
        .bind(holder)
        .bind(expires)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected(),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let locked = sqlx::query(
                "SELECT 1 FROM updraft_runner_lease WHERE database_name = $1 FOR UPDATE NOWAIT",
            )
            .bind(database_name)
            .execute(&mut *tx)
            .await;
            match locked {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                    return Ok(Acquire::HeldBy {
                        holder: "(a runner in the middle of a batch)".to_owned(),
                        expires_at_ms: now_ms,
                    });
                }
                other => {
                    other?;
                }
            }
            let n = sqlx::query(
                "INSERT INTO updraft_runner_lease (database_name, holder, expires_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (database_name) DO UPDATE
                 SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
                 WHERE updraft_runner_lease.holder = excluded.holder
                    OR updraft_runner_lease.expires_at_ms < $4",
            )
            .bind(database_name)
            .bind(holder)
            .bind(expires)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        }
    };
    if n > 0 {
        return Ok(Acquire::Acquired);
    }
    Ok(match read(db, database_name).await? {
        Some((holder, expires_at_ms)) => Acquire::HeldBy {
            holder,
            expires_at_ms,
        },
        // Released between our two statements: try again next time.
        None => Acquire::HeldBy {
            holder: "(just released)".to_owned(),
            expires_at_ms: now_ms,
        },
    })
}

/// The lease row of a database: (holder, expires_at_ms).
pub async fn read(db: &Db, database_name: &str) -> Result<Option<(String, i64)>, EngineError> {
    Ok(match db {
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT holder, expires_at_ms FROM updraft_runner_lease WHERE database_name = ?",
            )
            .bind(database_name)
            .fetch_optional(pool)
            .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT holder, expires_at_ms FROM updraft_runner_lease WHERE database_name = $1",
            )
            .bind(database_name)
            .fetch_optional(pool)
            .await?
        }
    })
}

/// The fence: renews the lease inside the batch transaction. `false` means
/// another runner took it over; the caller must roll back.
pub async fn fence(
    tx: &mut DbTx,
    database_name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, EngineError> {
    let n = match tx {
        DbTx::Sqlite(tx) => sqlx::query(
            "UPDATE updraft_runner_lease SET expires_at_ms = ? WHERE database_name = ? AND holder = ?",
        )
        .bind(now_ms + ttl_ms)
        .bind(database_name)
        .bind(holder)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        DbTx::Postgres(tx) => sqlx::query(
            "UPDATE updraft_runner_lease SET expires_at_ms = $1 WHERE database_name = $2 AND holder = $3",
        )
        .bind(now_ms + ttl_ms)
        .bind(database_name)
        .bind(holder)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
    };
    Ok(n == 1)
}

/// [`fence`] in a transaction of its own (heartbeats around work that cannot
/// run in a transaction).
pub async fn renew(
    db: &Db,
    database_name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, EngineError> {
    let mut tx = db.begin().await?;
    let ok = fence(&mut tx, database_name, holder, now_ms, ttl_ms).await?;
    tx.commit().await?;
    Ok(ok)
}

/// Gives the lease up (only if still ours).
pub async fn release(db: &Db, database_name: &str, holder: &str) -> Result<(), EngineError> {
    match db {
        Db::Sqlite(pool) => {
            sqlx::query("DELETE FROM updraft_runner_lease WHERE database_name = ? AND holder = ?")
                .bind(database_name)
                .bind(holder)
                .execute(pool)
                .await?;
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "DELETE FROM updraft_runner_lease WHERE database_name = $1 AND holder = $2",
            )
            .bind(database_name)
            .bind(holder)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}
