//! A small world builder for hand-built cases: users, profiles, rooms and
//! room-version-10 state events with ids computed with ruma, written the way
//! Synapse writes them (events, event_json, state_events,
//! current_state_events, room_memberships, current_state_delta_stream), and
//! a driver that runs updates batch by batch.

#![allow(dead_code)]

use ruma::room_version_rules::RoomVersionRules;
use ruma::CanonicalJsonObject;
use serde_json::{json, Value};
use sqlx::Row;
use updraft_engine::{BatchResult, Db, Handler};
use updraft_homeserver::jobs::{job_rows, registry};
use updraft_homeserver::Config;
use updraft_testkit::TestDb;

pub const SERVER: &str = "hs.test";

pub fn config() -> Config {
    Config {
        server_name: SERVER.to_owned(),
        ..Config::default()
    }
}

pub struct World {
    pub db: Db,
    next_stream: i64,
}

#[derive(Default, Clone)]
pub struct UserOpts {
    pub deactivated: bool,
    pub user_type: Option<&'static str>,
    pub locked: bool,
    pub guest: bool,
    pub admin: bool,
}

impl World {
    pub async fn new(t: &TestDb) -> World {
        let opened = updraft_homeserver::open(&t.target, Default::default())
            .await
            .unwrap();
        World {
            db: opened.db,
            next_stream: 1,
        }
    }

    /// Runs one statement with text parameters (`?` placeholders are
    /// rewritten to `$n` on PostgreSQL).
    pub async fn exec(&self, sql: &str, params: &[Option<&str>]) {
        match &self.db {
            Db::Sqlite(pool) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(*p);
                }
                q.execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Db::Postgres(pool) => {
                let sql = numbered(sql);
                let mut q = sqlx::query(&sql);
                for p in params {
                    q = q.bind(*p);
                }
                q.execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    pub async fn user(&self, user_id: &str, o: UserOpts) {
        let sql = format!(
            "INSERT INTO users (name, creation_ts, admin, is_guest, user_type, deactivated, locked) VALUES (?, 0, {}, {}, ?, {}, {})",
            o.admin as i32,
            o.guest as i32,
            o.deactivated as i32,
            if o.locked { "TRUE" } else { "FALSE" }
        );
        self.exec(&sql, &[Some(user_id), o.user_type]).await;
    }

    pub async fn profile(&self, user_id: &str, displayname: Option<&str>, avatar: Option<&str>) {
        let localpart = user_id[1..].split(':').next().unwrap();
        self.exec(
            "INSERT INTO profiles (user_id, full_user_id, displayname, avatar_url) VALUES (?, ?, ?, ?)",
            &[Some(localpart), Some(user_id), displayname, avatar],
        )
        .await;
    }

    pub async fn room(&self, room_id: &str, version: Option<&str>) {
        self.exec(
            "INSERT INTO rooms (room_id, is_public, creator, room_version) VALUES (?, FALSE, NULL, ?)",
            &[Some(room_id), version],
        )
        .await;
    }

    /// A room-version-10 room with a create event and the given join rule.
    pub async fn room_with(&mut self, room_id: &str, creator: &str, join_rule: &str) {
        self.room(room_id, Some("10")).await;
        self.state(
            room_id,
            "m.room.create",
            "",
            creator,
            json!({"room_version": "10", "creator": creator}),
        )
        .await;
        self.state(
            room_id,
            "m.room.join_rules",
            "",
            creator,
            json!({"join_rule": join_rule}),
        )
        .await;
    }

    pub async fn join(
        &mut self,
        room_id: &str,
        user_id: &str,
        displayname: Option<&str>,
    ) -> String {
        let mut content = json!({"membership": "join"});
        if let Some(d) = displayname {
            content["displayname"] = json!(d);
        }
        self.state(room_id, "m.room.member", user_id, user_id, content)
            .await
    }

    pub async fn member(&mut self, room_id: &str, user_id: &str, membership: &str) -> String {
        self.state(
            room_id,
            "m.room.member",
            user_id,
            user_id,
            json!({"membership": membership}),
        )
        .await
    }

    /// Builds a state event, stores it and makes it current; returns its id.
    pub async fn state(
        &mut self,
        room_id: &str,
        ty: &str,
        state_key: &str,
        sender: &str,
        content: Value,
    ) -> String {
        let stream = self.next_stream;
        self.next_stream += 1;
        let event = json!({
            "type": ty, "room_id": room_id, "sender": sender, "state_key": state_key,
            "content": content, "origin_server_ts": 1_700_000_000_000i64 + stream, "depth": stream,
            "prev_events": [], "auth_events": [], "hashes": {"sha256": "x"}, "signatures": {},
        });
        let event_id = event_id(&event);
        let json_text = serde_json::to_string(&event).unwrap();
        self.store(
            room_id, ty, state_key, sender, &content, &event_id, &json_text, stream,
        )
        .await;
        event_id
    }

    /// Stores an event with the given id and JSON text (which may be broken).
    #[allow(clippy::too_many_arguments)]
    pub async fn store(
        &mut self,
        room_id: &str,
        ty: &str,
        state_key: &str,
        sender: &str,
        content: &Value,
        event_id: &str,
        json_text: &str,
        stream: i64,
    ) {
        let s = stream.to_string();
        let content_text = serde_json::to_string(content).unwrap();
        self.exec(
            &format!("INSERT INTO events (stream_ordering, topological_ordering, event_id, type, room_id, content, processed, outlier, depth, sender, state_key) VALUES ({s}, {s}, ?, ?, ?, ?, TRUE, FALSE, {s}, ?, ?)"),
            &[Some(event_id), Some(ty), Some(room_id), Some(&content_text), Some(sender), Some(state_key)],
        )
        .await;
        self.exec(
            "INSERT INTO event_json (event_id, room_id, internal_metadata, json, format_version) VALUES (?, ?, '{}', ?, 3)",
            &[Some(event_id), Some(room_id), Some(json_text)],
        )
        .await;
        self.exec(
            "INSERT INTO state_events (event_id, room_id, type, state_key) VALUES (?, ?, ?, ?)",
            &[Some(event_id), Some(room_id), Some(ty), Some(state_key)],
        )
        .await;
        self.exec(
            "DELETE FROM current_state_events WHERE room_id = ? AND type = ? AND state_key = ?",
            &[Some(room_id), Some(ty), Some(state_key)],
        )
        .await;
        let membership = if ty == "m.room.member" {
            content["membership"].as_str()
        } else {
            None
        };
        self.exec(
            &format!("INSERT INTO current_state_events (event_id, room_id, type, state_key, membership, event_stream_ordering) VALUES (?, ?, ?, ?, ?, {s})"),
            &[Some(event_id), Some(room_id), Some(ty), Some(state_key), membership],
        )
        .await;
        if let Some(m) = membership {
            // As Synapse: non-string profile values are stored as NULL.
            let dn = content["displayname"].as_str();
            let av = content["avatar_url"].as_str();
            self.exec(
                &format!("INSERT INTO room_memberships (event_id, user_id, sender, room_id, membership, display_name, avatar_url, event_stream_ordering) VALUES (?, ?, ?, ?, ?, ?, ?, {s})"),
                &[Some(event_id), Some(state_key), Some(sender), Some(room_id), Some(m), dn, av],
            )
            .await;
        }
        self.exec(
            &format!("INSERT INTO current_state_delta_stream (stream_id, room_id, type, state_key, event_id) VALUES ({s}, ?, ?, ?, ?)"),
            &[Some(room_id), Some(ty), Some(state_key), Some(event_id)],
        )
        .await;
    }

    pub fn take_stream(&mut self) -> i64 {
        self.next_stream += 1;
        self.next_stream - 1
    }

    /// Rows of a query as strings (NULL as "NULL"), sorted.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let render = |r: &dyn Fn(usize) -> Option<String>, n: usize| {
            (0..n)
                .map(|i| r(i).unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
        };
        let mut out: Vec<Vec<String>> = match &self.db {
            Db::Sqlite(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|row| render(&|i| cell_sqlite(row, i), row.len()))
                .collect(),
            Db::Postgres(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|row| render(&|i| cell_pg(row, i), row.len()))
                .collect(),
        };
        out.sort();
        out
    }
}

fn cell_sqlite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    row.try_get::<Option<bool>, _>(i)
        .ok()
        .flatten()
        .map(|b| b.to_string())
}

fn cell_pg(row: &sqlx::postgres::PgRow, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map(|b| if b { "1".into() } else { "0".into() });
    }
    None
}

/// Rewrites `?` placeholders to `$1, $2, ...`.
pub fn numbered(sql: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// `$` + the reference hash of the event under room version 10 rules.
pub fn event_id(event: &Value) -> String {
    let object: CanonicalJsonObject = serde_json::from_value(event.clone()).unwrap();
    format!(
        "${}",
        ruma::signatures::reference_hash(&object, &RoomVersionRules::V10).unwrap()
    )
}

/// Inserts a job's queue rows, as `start_job` does.
pub async fn start_job(db: &Db, job: &str) {
    updraft_engine::queue::insert(db, &job_rows(job).unwrap())
        .await
        .expect("insert job rows");
}

/// The saved progress of an update, if its row exists.
pub async fn progress_of(db: &Db, update: &str) -> Option<Value> {
    let sql = "SELECT progress_json FROM background_updates WHERE update_name = $1";
    let text: Option<String> = match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(update)
            .fetch_optional(pool)
            .await
            .unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(update)
            .fetch_optional(pool)
            .await
            .unwrap(),
    };
    text.map(|t| serde_json::from_str(&t).unwrap())
}

/// The handler's estimate from the update's saved progress, as the queue
/// view shows it: `(done, total)`.
pub async fn estimate_of(db: &Db, config: &Config, update: &str) -> Option<(u64, Option<u64>)> {
    let registry = registry(config);
    let Some(Handler::Batch(handler)) = registry.get(update) else {
        panic!("no batch handler for {update}")
    };
    let progress = progress_of(db, update).await.expect("update is queued");
    handler
        .estimate(db, &progress)
        .await
        .map(|e| (e.done, e.total))
}

/// Runs one batch of an update the way the engine does: in one
/// transaction, writing the progress (or deleting the row) before commit.
pub async fn run_batch(db: &Db, config: &Config, update: &str, batch_size: u64) -> BatchResult {
    let registry = registry(config);
    let Some(Handler::Batch(handler)) = registry.get(update) else {
        panic!("no batch handler for {update}")
    };
    let progress = progress_of(db, update).await.expect("update is queued");
    let mut tx = db.begin().await.unwrap();
    let result = handler
        .run_batch(&mut tx, &progress, batch_size)
        .await
        .unwrap();
    match &result {
        BatchResult::Progress { progress, .. } => {
            let text = progress.to_string();
            let sql = "UPDATE background_updates SET progress_json = $1 WHERE update_name = $2";
            match &mut tx {
                updraft_engine::DbTx::Sqlite(t) => sqlx::query(sql)
                    .bind(text)
                    .bind(update)
                    .execute(&mut **t)
                    .await
                    .map(|_| ())
                    .unwrap(),
                updraft_engine::DbTx::Postgres(t) => sqlx::query(sql)
                    .bind(text)
                    .bind(update)
                    .execute(&mut **t)
                    .await
                    .map(|_| ())
                    .unwrap(),
            };
        }
        BatchResult::Done { .. } => {
            let sql = "DELETE FROM background_updates WHERE update_name = $1";
            match &mut tx {
                updraft_engine::DbTx::Sqlite(t) => sqlx::query(sql)
                    .bind(update)
                    .execute(&mut **t)
                    .await
                    .map(|_| ())
                    .unwrap(),
                updraft_engine::DbTx::Postgres(t) => sqlx::query(sql)
                    .bind(update)
                    .execute(&mut **t)
                    .await
                    .map(|_| ())
                    .unwrap(),
            };
        }
    }
    tx.commit().await.unwrap();
    result
}

/// Runs every queued update to the end in queue order; returns each batch's
/// (update, result).
pub async fn run_all(db: &Db, config: &Config, batch_size: u64) -> Vec<(String, BatchResult)> {
    let mut log = Vec::new();
    loop {
        // Dependencies: an update whose dependency row is gone is runnable too.
        let all: Vec<(String, Option<String>)> = match db {
            Db::Sqlite(pool) => sqlx::query("SELECT update_name, depends_on FROM background_updates ORDER BY ordering, update_name").fetch_all(pool).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect(),
            Db::Postgres(pool) => sqlx::query("SELECT update_name, depends_on FROM background_updates ORDER BY ordering, update_name").fetch_all(pool).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect(),
        };
        let pending: Vec<&String> = all.iter().map(|(n, _)| n).collect();
        let Some((next, _)) = all.iter().find(|(_, dep)| {
            dep.as_deref()
                .is_none_or(|d| d.is_empty() || !pending.contains(&&d.to_string()))
        }) else {
            return log;
        };
        let next = next.clone();
        loop {
            let r = run_batch(db, config, &next, batch_size).await;
            let done = matches!(r, BatchResult::Done { .. });
            log.push((next.clone(), r));
            if done {
                break;
            }
        }
    }
}
