//! The persisted pause (opt-in `persist_pause`): a row in our own table
//! `updraft_paused_updates` per paused database, read at start-up.

use crate::db::Db;
use crate::error::EngineError;

/// Our table; safe to add to a Synapse database (Synapse ignores it).
pub const PAUSE_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS updraft_paused_updates (
    database_name TEXT NOT NULL PRIMARY KEY,
    paused_at_ms BIGINT NOT NULL
)";

/// Whether `database_name` was left paused.
pub async fn is_paused(db: &Db, database_name: &str) -> Result<bool, EngineError> {
    let n: i64 = match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM updraft_paused_updates WHERE database_name = ?",
            )
            .bind(database_name)
            .fetch_one(pool)
            .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM updraft_paused_updates WHERE database_name = $1",
            )
            .bind(database_name)
            .fetch_one(pool)
            .await?
        }
    };
    Ok(n > 0)
}

/// Records a pause (or its end).
pub async fn set_paused(
    db: &Db,
    database_name: &str,
    paused: bool,
    now_ms: i64,
) -> Result<(), EngineError> {
    match (db, paused) {
        (Db::Sqlite(pool), true) => {
            sqlx::query(
                "INSERT INTO updraft_paused_updates (database_name, paused_at_ms) VALUES (?, ?)
                 ON CONFLICT (database_name) DO NOTHING",
            )
            .bind(database_name)
            .bind(now_ms)
            .execute(pool)
            .await?;
        }
        (Db::Postgres(pool), true) => {
            sqlx::query(
                "INSERT INTO updraft_paused_updates (database_name, paused_at_ms) VALUES ($1, $2)
                 ON CONFLICT (database_name) DO NOTHING",
            )
            .bind(database_name)
            .bind(now_ms)
            .execute(pool)
            .await?;
        }
        (Db::Sqlite(pool), false) => {
            sqlx::query("DELETE FROM updraft_paused_updates WHERE database_name = ?")
                .bind(database_name)
                .execute(pool)
                .await?;
        }
        (Db::Postgres(pool), false) => {
            sqlx::query("DELETE FROM updraft_paused_updates WHERE database_name = $1")
                .bind(database_name)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}
