//! `regenerate_directory` (SEMANTICS §7): four chained updates with
//! Synapse's names, stage tables and progress JSON, so either side can finish
//! what the other started. Each batch is a handful of set-based statements;
//! the members of a batch's rooms are staged once in a temporary table and
//! the private-room pairs are produced by one INSERT ... SELECT.

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::{json, Value};
use sqlx::Row;
use updraft_engine::{BatchHandler, BatchResult, Db, DbTx, HandlerError, ProgressEstimate};

use super::sql::{self, EFFECTIVE_MEMBERSHIP};
use super::LoadedAppServices;
use crate::appservice::AppServices;
use crate::events::load_state;
use crate::text::normalise;

pub const CREATE_TABLES: &str = "populate_user_directory_createtables";
pub const PROCESS_ROOMS: &str = "populate_user_directory_process_rooms";
pub const PROCESS_USERS: &str = "populate_user_directory_process_users";
pub const CLEANUP: &str = "populate_user_directory_cleanup";

/// Synapse's stage tables.
pub const STAGE_ROOMS: &str = "_temp_populate_user_directory_rooms";
pub const STAGE_USERS: &str = "_temp_populate_user_directory_users";
pub const STAGE_POSITION: &str = "_temp_populate_user_directory_position";

/// Stage 1: the stage tables, always rebuilt from scratch (Synapse would
/// reuse leftovers of an interrupted rebuild: SEMANTICS §9).
pub struct CreateTables;

#[async_trait]
impl BatchHandler for CreateTables {
    async fn run_batch(
        &self,
        tx: &mut DbTx,
        _: &Value,
        _: u64,
    ) -> Result<BatchResult, HandlerError> {
        create_stage_tables(tx).await?;
        Ok(BatchResult::Done { items: 1 })
    }
}

async fn create_stage_tables(tx: &mut DbTx) -> Result<(), sqlx::Error> {
    for table in [STAGE_ROOMS, STAGE_USERS, STAGE_POSITION] {
        tx.execute(&format!("DROP TABLE IF EXISTS {table}")).await?;
    }
    // The same DDL as Synapse's, so a half-done rebuild looks the same.
    tx.execute(&format!(
        "CREATE TABLE {STAGE_ROOMS} AS SELECT room_id, count(*) AS events FROM current_state_events GROUP BY room_id"
    ))
    .await?;
    tx.execute(&format!(
        "CREATE INDEX IF NOT EXISTS {STAGE_ROOMS}_rm ON {STAGE_ROOMS} (room_id)"
    ))
    .await?;
    tx.execute(&format!(
        "CREATE INDEX IF NOT EXISTS {STAGE_ROOMS}_evs ON {STAGE_ROOMS} (events)"
    ))
    .await?;
    tx.execute(&format!(
        "CREATE TABLE {STAGE_POSITION} (position BIGINT NOT NULL)"
    ))
    .await?;
    tx.execute(&format!(
        "CREATE TABLE {STAGE_USERS} AS SELECT name AS user_id FROM users"
    ))
    .await?;
    tx.execute(&format!(
        "CREATE INDEX IF NOT EXISTS {STAGE_USERS}_idx ON {STAGE_USERS} (user_id)"
    ))
    .await?;
    tx.execute(&format!(
        "INSERT INTO {STAGE_POSITION} (position) SELECT COALESCE(MAX(stream_id), -1) FROM current_state_delta_stream"
    ))
    .await?;
    Ok(())
}

/// Stage 4: the stream position from the stage, stage tables dropped.
pub struct Cleanup;

#[async_trait]
impl BatchHandler for Cleanup {
    async fn run_batch(
        &self,
        tx: &mut DbTx,
        _: &Value,
        _: u64,
    ) -> Result<BatchResult, HandlerError> {
        tx.execute(&format!(
            "UPDATE user_directory_stream_pos SET stream_id = (SELECT position FROM {STAGE_POSITION})"
        ))
        .await?;
        for table in [STAGE_ROOMS, STAGE_USERS, STAGE_POSITION] {
            tx.execute(&format!("DROP TABLE IF EXISTS {table}")).await?;
        }
        Ok(BatchResult::Done { items: 1 })
    }
}

/// The registrations, or the error loading them as a batch failure.
fn app_services(loaded: &LoadedAppServices) -> Result<&AppServices, HandlerError> {
    loaded
        .as_ref()
        .as_ref()
        .map_err(|e| Box::new(std::io::Error::other(e.to_string())) as HandlerError)
}

/// `{"remaining": N}` with N updated as Synapse does.
fn with_remaining(progress: &Value, remaining: i64) -> Value {
    let mut p = progress.as_object().cloned().unwrap_or_default();
    p.insert("remaining".to_owned(), json!(remaining));
    Value::Object(p)
}

/// Stage 2: rooms biggest first; remote members' per-room profiles, public
/// room members, private-room pairs.
pub struct ProcessRooms {
    server_name: String,
    app_services: LoadedAppServices,
}

impl ProcessRooms {
    pub fn new(server_name: &str, app_services: LoadedAppServices) -> ProcessRooms {
        ProcessRooms {
            server_name: server_name.to_owned(),
            app_services,
        }
    }
}

#[async_trait]
impl BatchHandler for ProcessRooms {
    /// In state events: those of the rooms still staged are left; the total
    /// is today's `current_state_events` (what the stage was built from).
    async fn estimate(&self, db: &Db, _progress: &Value) -> Option<ProgressEstimate> {
        let left = db
            .scalar_i64(&format!(
                "SELECT CAST(COALESCE(SUM(events), 0) AS BIGINT) FROM {STAGE_ROOMS}"
            ))
            .await
            .ok()?;
        let total = db.count_rows("current_state_events").await.ok()?;
        Some(super::estimate(total, left))
    }

    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let app_services = app_services(&self.app_services)?;
        if progress.as_object().is_none_or(|p| p.is_empty()) {
            empty_directory(tx).await?;
        }
        let rooms = next_rooms(tx, batch_size).await?;
        if rooms.is_empty() {
            return Ok(BatchResult::Done { items: 1 });
        }
        let remaining = match progress.get("remaining").and_then(Value::as_i64) {
            Some(n) => n,
            None => count(tx, STAGE_ROOMS).await?,
        } - rooms.len() as i64;
        let events: i64 = rooms.iter().map(|(_, n)| n).sum();
        let room_ids: Vec<String> = rooms.into_iter().map(|(r, _)| r).collect();

        // Public-ness from the join rules and history visibility as served;
        // the create event is loaded too, so a broken room is skipped here
        // as in the stats job.
        let states = load_state(
            tx,
            &room_ids,
            &[
                "m.room.create",
                "m.room.join_rules",
                "m.room.history_visibility",
            ],
        )
        .await?;
        let mut skipped = Vec::new();
        let mut batch: Vec<(String, i64, bool)> = Vec::new();
        for (ord, room) in room_ids.iter().enumerate() {
            let state = states.get(room);
            if let Some(reason) = state.and_then(|s| s.unloadable.clone()) {
                skipped.push((room.clone(), reason));
                continue;
            }
            let field = |t: &str, k: &str| {
                state
                    .and_then(|s| s.content.get(t))
                    .and_then(|c| c.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let public = field("m.room.join_rules", "join_rule").as_deref() == Some("public")
                || field("m.room.history_visibility", "history_visibility").as_deref()
                    == Some("world_readable");
            batch.push((room.clone(), ord as i64, public));
        }
        super::record_skipped(tx, PROCESS_ROOMS, &skipped).await?;

        stage_members(tx, &self.server_name, &batch).await?;
        if !app_services.is_empty() {
            drop_app_service_members(tx, app_services).await?;
        }
        let known = already_listed(
            tx,
            &format!("SELECT DISTINCT m.user_id FROM {MEMBERS_TABLE} m JOIN user_directory d ON d.user_id = m.user_id WHERE NOT m.is_local"),
            None,
        )
        .await?;
        let profiles = upsert_remote_profiles(tx).await?;
        // As Synapse: a remote profile just written is no longer stale.
        tx.execute(&format!(
            "DELETE FROM user_directory_stale_remote_users
             WHERE user_id IN (SELECT user_id FROM {MEMBERS_TABLE} WHERE NOT is_local)"
        ))
        .await?;
        write_search_rows(tx, &profiles, &known).await?;
        insert_room_sharing(tx).await?;
        delete_stage_rooms(tx, &room_ids).await?;

        Ok(BatchResult::Progress {
            items: events.max(0) as u64,
            progress: with_remaining(progress, remaining),
        })
    }
}

/// Empties the four directory tables (first batch of a rebuild).
async fn empty_directory(tx: &mut DbTx) -> Result<(), sqlx::Error> {
    let verb = match tx {
        DbTx::Sqlite(_) => "DELETE FROM",
        DbTx::Postgres(_) => "TRUNCATE",
    };
    for table in [
        "user_directory",
        "user_directory_search",
        "users_in_public_rooms",
        "users_who_share_private_rooms",
    ] {
        tx.execute(&format!("{verb} {table}")).await?;
    }
    Ok(())
}

async fn count(tx: &mut DbTx, table: &str) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match tx {
        DbTx::Sqlite(tx) => sqlx::query_scalar(&sql).fetch_one(&mut **tx).await,
        DbTx::Postgres(tx) => sqlx::query_scalar(&sql).fetch_one(&mut **tx).await,
    }
}

/// The next rooms, biggest first, until their event counts exceed
/// `batch_size` (the room that crosses the line is included, as in Synapse).
/// Streams the stage table so a batch reads only what it takes.
async fn next_rooms(tx: &mut DbTx, batch_size: u64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    // Like Synapse, no order among rooms of equal size (the stage index on
    // `events` serves this order without sorting the stage each batch).
    let sql = format!("SELECT room_id, events FROM {STAGE_ROOMS} ORDER BY events DESC");
    let mut rooms = Vec::new();
    let mut total: i64 = 0;
    let mut take = |room: String, events: i64| {
        rooms.push((room, events));
        total += events;
        total <= batch_size as i64
    };
    match tx {
        DbTx::Sqlite(tx) => {
            let mut rows = sqlx::query(&sql).fetch(&mut **tx);
            while let Some(r) = rows.try_next().await? {
                if !take(r.get(0), r.get(1)) {
                    break;
                }
            }
        }
        DbTx::Postgres(tx) => {
            let mut rows = sqlx::query(&sql).fetch(&mut **tx);
            while let Some(r) = rows.try_next().await? {
                if !take(r.get(0), r.get(1)) {
                    break;
                }
            }
        }
    }
    Ok(rooms)
}

async fn delete_stage_rooms(tx: &mut DbTx, rooms: &[String]) -> Result<(), sqlx::Error> {
    match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query(&format!(
                "DELETE FROM {STAGE_ROOMS} WHERE room_id IN (SELECT value FROM json_each(?1))"
            ))
            .bind(sql::list_param_sqlite(rooms))
            .execute(&mut **tx)
            .await?;
        }
        DbTx::Postgres(tx) => {
            sqlx::query(&format!(
                "DELETE FROM {STAGE_ROOMS} WHERE room_id = ANY($1)"
            ))
            .bind(sql::list_param_pg(rooms))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The batch's member table: one row per remaining joined member of each
/// room of the batch that has a joined local user, with the room's
/// processing order and public-ness. Excluded local users (deactivated,
/// support, absent from `users`) are left out here; app-service users after.
const MEMBERS_TABLE: &str = "updraft_directory_members";

async fn stage_members(
    tx: &mut DbTx,
    server_name: &str,
    batch: &[(String, i64, bool)],
) -> Result<(), sqlx::Error> {
    let select = |batch_src: &str, server: String| {
        format!(
            "WITH batch AS ({batch_src}),
             joined AS (
               SELECT b.room_id, b.ord, b.is_public, c.state_key AS user_id, {server} AS is_local,
                      m.display_name, m.avatar_url
               FROM batch b
               JOIN current_state_events c ON c.room_id = b.room_id AND c.type = 'm.room.member'
               LEFT JOIN room_memberships m ON m.event_id = c.event_id AND m.room_id = c.room_id AND m.user_id = c.state_key
               WHERE {EFFECTIVE_MEMBERSHIP} = 'join'
             )
             INSERT INTO {MEMBERS_TABLE} (room_id, ord, is_public, user_id, is_local, display_name, avatar_url)
             SELECT j.room_id, j.ord, j.is_public, j.user_id, j.is_local, j.display_name, j.avatar_url
             FROM joined j
             WHERE j.room_id IN (SELECT room_id FROM joined WHERE is_local)
               AND (NOT j.is_local OR EXISTS (
                 SELECT 1 FROM users u WHERE u.name = j.user_id AND u.deactivated = 0
                   AND (u.user_type IS NULL OR u.user_type <> 'support')))"
        )
    };
    match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {MEMBERS_TABLE} (room_id TEXT, ord INTEGER, is_public BOOLEAN,
                   user_id TEXT, is_local BOOLEAN, display_name TEXT, avatar_url TEXT)"
            ))
            .execute(&mut **tx)
            .await?;
            sqlx::query(&format!(
                "CREATE INDEX IF NOT EXISTS temp.{MEMBERS_TABLE}_room ON {MEMBERS_TABLE} (room_id)"
            ))
            .execute(&mut **tx)
            .await?;
            sqlx::query(&format!("DELETE FROM {MEMBERS_TABLE}"))
                .execute(&mut **tx)
                .await?;
            let sql = select(
                "SELECT json_extract(value, '$[0]') AS room_id, json_extract(value, '$[1]') AS ord,
                        json_extract(value, '$[2]') AS is_public FROM json_each(?1)",
                format!("({} = ?2)", sql::server_of_sqlite("c.state_key")),
            );
            let json: Vec<(&String, i64, bool)> =
                batch.iter().map(|(r, o, p)| (r, *o, *p)).collect();
            sqlx::query(&sql)
                .bind(sql::list_param_sqlite(&json))
                .bind(server_name)
                .execute(&mut **tx)
                .await?;
        }
        DbTx::Postgres(tx) => {
            sqlx::query(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {MEMBERS_TABLE} (room_id TEXT, ord BIGINT, is_public BOOLEAN,
                   user_id TEXT, is_local BOOLEAN, display_name TEXT, avatar_url TEXT) ON COMMIT DELETE ROWS"
            ))
            .execute(&mut **tx)
            .await?;
            sqlx::query(&format!(
                "CREATE INDEX IF NOT EXISTS {MEMBERS_TABLE}_room ON {MEMBERS_TABLE} (room_id)"
            ))
            .execute(&mut **tx)
            .await?;
            sqlx::query(&format!("DELETE FROM {MEMBERS_TABLE}"))
                .execute(&mut **tx)
                .await?;
            let sql = select(
                "SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bool[]) AS b(room_id, ord, is_public)",
                format!("({} = $4)", sql::server_of_pg("c.state_key")),
            );
            sqlx::query(&sql)
                .bind(batch.iter().map(|b| b.0.clone()).collect::<Vec<_>>())
                .bind(batch.iter().map(|b| b.1).collect::<Vec<_>>())
                .bind(batch.iter().map(|b| b.2).collect::<Vec<_>>())
                .bind(server_name)
                .execute(&mut **tx)
                .await?;
            sqlx::query(&format!("ANALYZE {MEMBERS_TABLE}"))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Drops local app-service users (senders, exclusive namespaces) from the
/// batch's members: their ids are matched in Rust (regexes), one batch's
/// worth at a time.
async fn drop_app_service_members(
    tx: &mut DbTx,
    app_services: &AppServices,
) -> Result<(), sqlx::Error> {
    let sql = format!("SELECT DISTINCT user_id FROM {MEMBERS_TABLE} WHERE is_local");
    let locals: Vec<String> = match tx {
        DbTx::Sqlite(tx) => sqlx::query_scalar(&sql).fetch_all(&mut **tx).await?,
        DbTx::Postgres(tx) => sqlx::query_scalar(&sql).fetch_all(&mut **tx).await?,
    };
    let excluded: Vec<String> = locals
        .into_iter()
        .filter(|u| app_services.is_excluded(u))
        .collect();
    if excluded.is_empty() {
        return Ok(());
    }
    match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query(&format!(
                "DELETE FROM {MEMBERS_TABLE} WHERE user_id IN (SELECT value FROM json_each(?1))"
            ))
            .bind(sql::list_param_sqlite(&excluded))
            .execute(&mut **tx)
            .await?;
        }
        DbTx::Postgres(tx) => {
            sqlx::query(&format!(
                "DELETE FROM {MEMBERS_TABLE} WHERE user_id = ANY($1)"
            ))
            .bind(excluded)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Upserts each remote member with the profile of the last room of the batch
/// (in processing order) that has them; returns the written rows.
async fn upsert_remote_profiles(
    tx: &mut DbTx,
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    let upsert = "ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
        avatar_url = excluded.avatar_url RETURNING user_id, display_name";
    let ranked = |dn: String, av: String| {
        format!(
            "INSERT INTO user_directory (user_id, display_name, avatar_url)
             SELECT user_id, dn, av FROM (
               SELECT user_id, {dn} AS dn, {av} AS av,
                      ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ord DESC) AS rn
               FROM {MEMBERS_TABLE} WHERE NOT is_local) AS last_seen
             WHERE rn = 1 {upsert}"
        )
    };
    let rows = match tx {
        DbTx::Sqlite(tx) => {
            let sql = ranked(
                sql::clean_text_sqlite("display_name"),
                sql::clean_text_sqlite("avatar_url"),
            );
            sqlx::query(&sql)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
        DbTx::Postgres(tx) => {
            let sql = ranked("display_name".into(), "avatar_url".into());
            sqlx::query(&sql)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
    };
    Ok(rows)
}

/// `users_in_public_rooms` and `users_who_share_private_rooms` for the batch.
async fn insert_room_sharing(tx: &mut DbTx) -> Result<(), sqlx::Error> {
    let public = format!(
        "INSERT INTO users_in_public_rooms (user_id, room_id)
         SELECT user_id, room_id FROM {MEMBERS_TABLE} WHERE is_public
         ON CONFLICT (user_id, room_id) DO NOTHING"
    );
    // Every ordered pair (L, M): L local, M any other member, in private rooms.
    let private = format!(
        "INSERT INTO users_who_share_private_rooms (user_id, other_user_id, room_id)
         SELECT l.user_id, m.user_id, l.room_id
         FROM {MEMBERS_TABLE} l JOIN {MEMBERS_TABLE} m ON m.room_id = l.room_id AND m.user_id <> l.user_id
         WHERE l.is_local AND NOT l.is_public
         ON CONFLICT (user_id, other_user_id, room_id) DO NOTHING"
    );
    tx.execute(&public).await?;
    tx.execute(&private).await?;
    Ok(())
}

/// Users (of a query's single column, over the bound list if the query
/// takes one, even an empty one) that already have a directory row, hence a
/// search row to replace.
async fn already_listed(
    tx: &mut DbTx,
    sql: &str,
    list: Option<&[String]>,
) -> Result<Vec<String>, sqlx::Error> {
    match tx {
        DbTx::Sqlite(tx) => {
            let mut q = sqlx::query_scalar(sql);
            if let Some(list) = list {
                q = q.bind(sql::list_param_sqlite(list));
            }
            q.fetch_all(&mut **tx).await
        }
        DbTx::Postgres(tx) => {
            let mut q = sqlx::query_scalar(sql);
            if let Some(list) = list {
                q = q.bind(sql::list_param_pg(list));
            }
            q.fetch_all(&mut **tx).await
        }
    }
}

/// Writes `user_directory_search` rows for directory rows `(user_id,
/// display_name)`; `replace` names the users that already have one (a search
/// row exists exactly when a directory row does).
/// SQLite: FTS4 `value` = user id, plus the normalised display name. FTS4
/// has no unique key and finding rows by user id scans the table, so only
/// the rows of `replace` are deleted first.
/// PostgreSQL: the weighted tsvector (localpart A, server D, name B), upserted.
pub async fn write_search_rows(
    tx: &mut DbTx,
    rows: &[(String, Option<String>)],
    replace: &[String],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    match tx {
        DbTx::Sqlite(tx) => {
            if !replace.is_empty() {
                sqlx::query("DELETE FROM user_directory_search WHERE user_id IN (SELECT value FROM json_each(?1))")
                    .bind(sql::list_param_sqlite(replace))
                    .execute(&mut **tx)
                    .await?;
            }
            let values: Vec<(&String, String)> = rows
                .iter()
                .map(|(u, dn)| (u, search_value(u, dn.as_deref())))
                .collect();
            sqlx::query(
                "INSERT INTO user_directory_search (user_id, value)
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)",
            )
            .bind(sql::list_param_sqlite(&values))
            .execute(&mut **tx)
            .await?;
        }
        DbTx::Postgres(tx) => {
            let mut ids = Vec::with_capacity(rows.len());
            let mut locals = Vec::with_capacity(rows.len());
            let mut servers = Vec::with_capacity(rows.len());
            let mut names = Vec::with_capacity(rows.len());
            for (u, dn) in rows {
                let (local, server) = split_user_id(u);
                ids.push(u.clone());
                locals.push(local.to_owned());
                servers.push(server.to_owned());
                names.push(dn.as_deref().filter(|d| !d.is_empty()).map(normalise));
            }
            sqlx::query(
                "INSERT INTO user_directory_search (user_id, vector)
                 SELECT u, setweight(to_tsvector('simple', l), 'A')
                        || setweight(to_tsvector('simple', s), 'D')
                        || setweight(to_tsvector('simple', COALESCE(n, '')), 'B')
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS r(u, l, s, n)
                 ON CONFLICT (user_id) DO UPDATE SET vector = EXCLUDED.vector",
            )
            .bind(ids)
            .bind(locals)
            .bind(servers)
            .bind(names)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The SQLite FTS4 `value` of a directory row.
pub fn search_value(user_id: &str, display_name: Option<&str>) -> String {
    match display_name {
        Some(dn) => format!("{user_id} {}", normalise(dn)),
        None => user_id.to_owned(),
    }
}

/// Localpart and server name of a user id, as Synapse splits them.
pub fn split_user_id(user_id: &str) -> (&str, &str) {
    let body = user_id.get(1..).unwrap_or("");
    body.split_once(':').unwrap_or((body, ""))
}

/// Stage 3: every local user not excluded, with the global profile.
pub struct ProcessUsers {
    server_name: String,
    app_services: LoadedAppServices,
}

impl ProcessUsers {
    pub fn new(server_name: &str, app_services: LoadedAppServices) -> ProcessUsers {
        ProcessUsers {
            server_name: server_name.to_owned(),
            app_services,
        }
    }
}

#[async_trait]
impl BatchHandler for ProcessUsers {
    /// In users: those still staged are left, out of all `users` rows.
    async fn estimate(&self, db: &Db, _progress: &Value) -> Option<ProgressEstimate> {
        let left = db.count_rows(STAGE_USERS).await.ok()?;
        let total = db.count_rows("users").await.ok()?;
        Some(super::estimate(total, left))
    }

    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let app_services = app_services(&self.app_services)?;
        let _ = &self.server_name;
        let users = take_stage_users(tx, batch_size).await?;
        if users.is_empty() {
            return Ok(BatchResult::Done { items: 1 });
        }
        // As Synapse: the count is taken after this batch's users left the stage.
        let remaining = match progress.get("remaining").and_then(Value::as_i64) {
            Some(n) => n,
            None => count(tx, STAGE_USERS).await?,
        } - users.len() as i64;
        let candidates: Vec<String> = users
            .iter()
            .filter(|u| !app_services.is_excluded(u))
            .cloned()
            .collect();
        let known = match tx {
            DbTx::Sqlite(_) => "SELECT user_id FROM user_directory WHERE user_id IN (SELECT value FROM json_each(?1))",
            DbTx::Postgres(_) => "SELECT user_id FROM user_directory WHERE user_id = ANY($1)",
        };
        let known = already_listed(tx, known, Some(&candidates)).await?;
        let rows = upsert_local_profiles(tx, &candidates).await?;
        write_search_rows(tx, &rows, &known).await?;
        Ok(BatchResult::Progress {
            items: users.len() as u64,
            progress: with_remaining(progress, remaining),
        })
    }
}

async fn take_stage_users(tx: &mut DbTx, batch_size: u64) -> Result<Vec<String>, sqlx::Error> {
    let limit = batch_size.max(1) as i64;
    match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query_scalar(&format!(
                "DELETE FROM {STAGE_USERS} WHERE user_id IN (SELECT user_id FROM {STAGE_USERS} ORDER BY user_id LIMIT ?1) RETURNING user_id"
            ))
            .bind(limit)
            .fetch_all(&mut **tx)
            .await
        }
        DbTx::Postgres(tx) => {
            sqlx::query_scalar(&format!(
                "DELETE FROM {STAGE_USERS} WHERE user_id IN (SELECT user_id FROM {STAGE_USERS} ORDER BY user_id LIMIT $1) RETURNING user_id"
            ))
            .bind(limit)
            .fetch_all(&mut **tx)
            .await
        }
    }
}

/// Upserts the given local users that are neither deactivated nor support
/// users, with their global profile (matched on `full_user_id`).
async fn upsert_local_profiles(
    tx: &mut DbTx,
    users: &[String],
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let sql = |users_src: &str, dn: String, av: String, profile: String| {
        format!(
            "INSERT INTO user_directory (user_id, display_name, avatar_url)
             SELECT u.name, {dn}, {av}
             FROM users u LEFT JOIN profiles p ON {profile}
             WHERE u.name IN ({users_src}) AND u.deactivated = 0
               AND (u.user_type IS NULL OR u.user_type <> 'support')
             ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
               avatar_url = excluded.avatar_url
             RETURNING user_id, display_name"
        )
    };
    Ok(match tx {
        DbTx::Sqlite(tx) => {
            let q = sql(
                "SELECT value FROM json_each(?1)",
                sql::clean_text_sqlite("p.displayname"),
                sql::clean_text_sqlite("p.avatar_url"),
                sql::profile_of_sqlite("p", "u.name"),
            );
            sqlx::query(&q)
                .bind(sql::list_param_sqlite(users))
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
        DbTx::Postgres(tx) => {
            let q = sql(
                "SELECT UNNEST($1::text[])",
                "p.displayname".into(),
                "p.avatar_url".into(),
                sql::profile_of_pg("p", "u.name"),
            );
            sqlx::query(&q)
                .bind(sql::list_param_pg(users))
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
    })
}

/// The benchmark baseline: the whole directory rebuilt by one hand-written
/// INSERT ... SELECT per table in a single transaction (no batching, no
/// resumability, no app-service exclusions, no unloadable-room checks:
/// public-ness read straight from `events.content`). Only the search rows
/// need Rust (normalisation).
pub async fn rebuild_directory_one_shot(db: &Db, server_name: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    empty_directory(&mut tx).await?;
    let (server, clean_dn, clean_av, public_expr) = match &tx {
        DbTx::Sqlite(_) => (
            format!("{} = ?1", sql::server_of_sqlite("c.state_key")),
            sql::clean_text_sqlite("j.display_name"),
            sql::clean_text_sqlite("j.avatar_url"),
            "(c2.type = 'm.room.join_rules' AND json_extract(e.content, '$.join_rule') = 'public')
             OR (c2.type = 'm.room.history_visibility' AND json_extract(e.content, '$.history_visibility') = 'world_readable')",
        ),
        DbTx::Postgres(_) => (
            format!("{} = $1", sql::server_of_pg("c.state_key")),
            "j.display_name".to_owned(),
            "j.avatar_url".to_owned(),
            "(c2.type = 'm.room.join_rules' AND (e.content::jsonb ->> 'join_rule') = 'public')
             OR (c2.type = 'm.room.history_visibility' AND (e.content::jsonb ->> 'history_visibility') = 'world_readable')",
        ),
    };
    let members = format!(
        "CREATE TEMP TABLE updraft_rebuild_members AS
         WITH sizes AS (SELECT room_id, COUNT(*) AS events FROM current_state_events GROUP BY room_id),
         joined AS (
           SELECT c.room_id, c.state_key AS user_id, {server} AS is_local, m.display_name, m.avatar_url
           FROM current_state_events c
           LEFT JOIN room_memberships m ON m.event_id = c.event_id
           WHERE c.type = 'm.room.member' AND {EFFECTIVE_MEMBERSHIP} = 'join'),
         hosted AS (SELECT DISTINCT room_id FROM joined WHERE is_local),
         public AS (SELECT DISTINCT c2.room_id FROM current_state_events c2 JOIN events e ON e.event_id = c2.event_id
                    WHERE c2.state_key = '' AND ({public_expr}))
         SELECT j.room_id, j.user_id, j.is_local, {clean_dn} AS display_name, {clean_av} AS avatar_url,
                s.events, j.room_id IN (SELECT room_id FROM public) AS is_public
         FROM joined j JOIN sizes s ON s.room_id = j.room_id
         WHERE j.room_id IN (SELECT room_id FROM hosted)
           AND (NOT j.is_local OR EXISTS (SELECT 1 FROM users u WHERE u.name = j.user_id AND u.deactivated = 0
                AND (u.user_type IS NULL OR u.user_type <> 'support')))"
    );
    match &mut tx {
        DbTx::Sqlite(t) => {
            sqlx::query("DROP TABLE IF EXISTS temp.updraft_rebuild_members")
                .execute(&mut **t)
                .await?;
            sqlx::query(&members)
                .bind(server_name)
                .execute(&mut **t)
                .await?;
        }
        DbTx::Postgres(t) => {
            sqlx::query("DROP TABLE IF EXISTS updraft_rebuild_members")
                .execute(&mut **t)
                .await?;
            sqlx::query(&members)
                .bind(server_name)
                .execute(&mut **t)
                .await?;
        }
    }
    tx.execute("CREATE INDEX updraft_rebuild_members_room ON updraft_rebuild_members (room_id)")
        .await?;
    tx.execute(
        "INSERT INTO user_directory (user_id, display_name, avatar_url)
         SELECT user_id, display_name, avatar_url FROM (
           SELECT user_id, display_name, avatar_url,
                  ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY events ASC, room_id DESC) AS rn
           FROM updraft_rebuild_members WHERE NOT is_local) AS r WHERE rn = 1",
    )
    .await?;
    let local_profiles = match &tx {
        DbTx::Sqlite(_) => format!(
            "INSERT INTO user_directory (user_id, display_name, avatar_url)
             SELECT u.name, {}, {} FROM users u LEFT JOIN profiles p ON p.full_user_id = u.name
             WHERE substr(u.name, instr(u.name, ':') + 1) = ?1 AND u.deactivated = 0
               AND (u.user_type IS NULL OR u.user_type <> 'support')",
            sql::clean_text_sqlite("p.displayname"),
            sql::clean_text_sqlite("p.avatar_url")
        ),
        DbTx::Postgres(_) => "INSERT INTO user_directory (user_id, display_name, avatar_url)
             SELECT u.name, p.displayname, p.avatar_url FROM users u LEFT JOIN profiles p ON p.full_user_id = u.name
             WHERE substr(u.name, strpos(u.name, ':') + 1) = $1 AND u.deactivated = 0
               AND (u.user_type IS NULL OR u.user_type <> 'support')"
            .to_owned(),
    };
    match &mut tx {
        DbTx::Sqlite(t) => {
            sqlx::query(&local_profiles)
                .bind(server_name)
                .execute(&mut **t)
                .await?;
        }
        DbTx::Postgres(t) => {
            sqlx::query(&local_profiles)
                .bind(server_name)
                .execute(&mut **t)
                .await?;
        }
    }
    tx.execute(
        "INSERT INTO users_in_public_rooms (user_id, room_id)
         SELECT DISTINCT user_id, room_id FROM updraft_rebuild_members WHERE is_public",
    )
    .await?;
    tx.execute(
        "INSERT INTO users_who_share_private_rooms (user_id, other_user_id, room_id)
         SELECT l.user_id, m.user_id, l.room_id FROM updraft_rebuild_members l
         JOIN updraft_rebuild_members m ON m.room_id = l.room_id AND m.user_id <> l.user_id
         WHERE l.is_local AND NOT l.is_public",
    )
    .await?;
    // Search rows: the directory read back in pages, normalised in Rust.
    let mut after = String::new();
    loop {
        let page: Vec<(String, Option<String>)> = match &mut tx {
            DbTx::Sqlite(t) => sqlx::query("SELECT user_id, display_name FROM user_directory WHERE user_id > ?1 ORDER BY user_id LIMIT 5000")
                .bind(&after).fetch_all(&mut **t).await?.into_iter().map(|r| (r.get(0), r.get(1))).collect(),
            DbTx::Postgres(t) => sqlx::query("SELECT user_id, display_name FROM user_directory WHERE user_id > $1 ORDER BY user_id LIMIT 5000")
                .bind(&after).fetch_all(&mut **t).await?.into_iter().map(|r| (r.get(0), r.get(1))).collect(),
        };
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        insert_search_rows_fresh(&mut tx, &page).await?;
    }
    tx.execute("DROP TABLE updraft_rebuild_members").await?;
    tx.execute(
        "UPDATE user_directory_stream_pos SET stream_id = (SELECT COALESCE(MAX(stream_id), -1) FROM current_state_delta_stream)",
    )
    .await?;
    tx.commit().await
}

/// Search rows for users known to have none yet (the one-shot rebuild).
async fn insert_search_rows_fresh(
    tx: &mut DbTx,
    rows: &[(String, Option<String>)],
) -> Result<(), sqlx::Error> {
    match tx {
        DbTx::Sqlite(t) => {
            let values: Vec<(&String, String)> = rows
                .iter()
                .map(|(u, dn)| (u, search_value(u, dn.as_deref())))
                .collect();
            sqlx::query(
                "INSERT INTO user_directory_search (user_id, value)
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)",
            )
            .bind(sql::list_param_sqlite(&values))
            .execute(&mut **t)
            .await?;
            Ok(())
        }
        DbTx::Postgres(_) => write_search_rows(tx, rows, &[]).await,
    }
}
