//! The jobs `populate_stats_process_rooms` and `regenerate_directory`
//! (SEMANTICS §6-7) as batch handlers for the engine, the queue rows each
//! job inserts, and the record of rooms a job had to skip.

pub mod directory;
pub mod sql;
pub mod stats;

use std::sync::Arc;

use sqlx::Row;
use updraft_engine::{Db, DbTx, Registry, UpdateRow};

use crate::appservice::{AppServiceError, AppServices};
use crate::config::Config;

pub use directory::{
    rebuild_directory_one_shot, CLEANUP, CREATE_TABLES, PROCESS_ROOMS, PROCESS_USERS,
};
pub use stats::POPULATE_STATS;

/// The job that rebuilds the user directory (four chained updates).
pub const REGENERATE_DIRECTORY: &str = "regenerate_directory";

/// The rows `start_job` inserts for a job name (SEMANTICS §5), or `None`
/// for an unknown job: progress `{}`, ordering 0, and `depends_on` the empty
/// string, not NULL, for the first update, as Synapse writes them.
pub fn job_rows(job_name: &str) -> Option<Vec<UpdateRow>> {
    let row = UpdateRow::new;
    match job_name {
        POPULATE_STATS => Some(vec![row(POPULATE_STATS, "")]),
        REGENERATE_DIRECTORY => Some(vec![
            row(CREATE_TABLES, ""),
            row(PROCESS_ROOMS, CREATE_TABLES),
            row(PROCESS_USERS, PROCESS_ROOMS),
            row(CLEANUP, PROCESS_USERS),
        ]),
        _ => None,
    }
}

/// The registry of every update updraft can run, for a homeserver config.
/// App-service registrations that fail to load make the directory updates
/// fail with that error (the job is not run with a wrong exclusion list).
pub fn registry(config: &Config) -> Registry {
    let app_services = Arc::new(AppServices::from_config(config).map_err(Arc::new));
    let server_name = config.server_name.clone();
    let mut registry = Registry::new();
    registry.register_batch(POPULATE_STATS, stats::PopulateStats::new(&server_name));
    registry.register_batch(CREATE_TABLES, directory::CreateTables);
    registry.register_batch(
        PROCESS_ROOMS,
        directory::ProcessRooms::new(&server_name, app_services.clone()),
    );
    registry.register_batch(
        PROCESS_USERS,
        directory::ProcessUsers::new(&server_name, app_services),
    );
    registry.register_batch(CLEANUP, directory::Cleanup);
    registry
}

/// What the handlers hold: the registrations, or the error loading them.
pub type LoadedAppServices = Arc<Result<AppServices, Arc<AppServiceError>>>;

/// A room a job skipped because its state could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRoom {
    pub update_name: String,
    pub room_id: String,
    pub reason: String,
}

/// updraft's own table of skipped rooms, created on first use (also in a
/// Synapse database, where it is the only table updraft adds).
const SKIPPED_DDL: &str = "CREATE TABLE IF NOT EXISTS updraft_skipped_rooms (
    update_name TEXT NOT NULL, room_id TEXT NOT NULL, reason TEXT NOT NULL,
    UNIQUE (update_name, room_id))";

/// Records skipped rooms in the batch's transaction (and warns).
pub(crate) async fn record_skipped(
    tx: &mut DbTx,
    update_name: &str,
    skipped: &[(String, String)],
) -> Result<(), sqlx::Error> {
    if skipped.is_empty() {
        return Ok(());
    }
    for (room_id, reason) in skipped {
        tracing::warn!(
            update = update_name,
            room_id,
            reason,
            "skipping room whose state cannot be loaded"
        );
    }
    tx.execute(SKIPPED_DDL).await?;
    let (rooms, reasons): (Vec<String>, Vec<String>) = skipped.iter().cloned().unzip();
    match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query(
                "INSERT INTO updraft_skipped_rooms (update_name, room_id, reason)
                 SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2) WHERE true
                 ON CONFLICT (update_name, room_id) DO UPDATE SET reason = excluded.reason",
            )
            .bind(update_name)
            .bind(sql::list_param_sqlite(skipped))
            .execute(&mut **tx)
            .await?;
        }
        DbTx::Postgres(tx) => {
            sqlx::query(
                "INSERT INTO updraft_skipped_rooms (update_name, room_id, reason)
                 SELECT $1, r, why FROM UNNEST($2::text[], $3::text[]) AS s(r, why)
                 ON CONFLICT (update_name, room_id) DO UPDATE SET reason = EXCLUDED.reason",
            )
            .bind(update_name)
            .bind(rooms)
            .bind(reasons)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Every room a job has skipped so far (empty if none ever was).
pub async fn skipped_rooms(db: &Db) -> Result<Vec<SkippedRoom>, sqlx::Error> {
    let exists = db
        .table_names()
        .await?
        .iter()
        .any(|t| t == "updraft_skipped_rooms");
    if !exists {
        return Ok(Vec::new());
    }
    let sql = "SELECT update_name, room_id, reason FROM updraft_skipped_rooms ORDER BY update_name, room_id";
    let rows = match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect::<Vec<_>>(),
        Db::Postgres(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    };
    Ok(rows
        .into_iter()
        .map(|(update_name, room_id, reason)| SkippedRoom {
            update_name,
            room_id,
            reason,
        })
        .collect())
}

/// A progress estimate from a total and what is left, both counted now: the
/// total never reads below what is left (rows may have come since the job
/// started).
fn estimate(total: i64, left: i64) -> updraft_engine::ProgressEstimate {
    let left = left.max(0) as u64;
    let total = (total.max(0) as u64).max(left);
    updraft_engine::ProgressEstimate {
        done: total - left,
        total: Some(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_rows_match_synapse_start_job() {
        let stats = job_rows("populate_stats_process_rooms").unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].depends_on.as_deref(), Some(""));
        assert_eq!(stats[0].ordering, 0);
        assert_eq!(stats[0].progress_json, "{}");
        let dir = job_rows("regenerate_directory").unwrap();
        let chain: Vec<_> = dir
            .iter()
            .map(|r| (r.update_name.as_str(), r.depends_on.as_deref().unwrap()))
            .collect();
        assert_eq!(
            chain,
            vec![
                ("populate_user_directory_createtables", ""),
                (
                    "populate_user_directory_process_rooms",
                    "populate_user_directory_createtables"
                ),
                (
                    "populate_user_directory_process_users",
                    "populate_user_directory_process_rooms"
                ),
                (
                    "populate_user_directory_cleanup",
                    "populate_user_directory_process_users"
                ),
            ]
        );
        assert!(job_rows("populate_stats_process_users").is_none());
    }

    #[test]
    fn registry_has_every_update_of_both_jobs() {
        let r = registry(&Config::default());
        for row in job_rows(POPULATE_STATS)
            .unwrap()
            .into_iter()
            .chain(job_rows(REGENERATE_DIRECTORY).unwrap())
        {
            assert!(r.get(&row.update_name).is_some(), "{}", row.update_name);
        }
    }
}
