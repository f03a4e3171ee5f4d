//! Helpers shared by the integration tests.

use std::collections::BTreeMap;

use sqlx::Row;
use updraft_engine::Db;
use updraft_testkit::TestDb;
use updraft_workload::{seed, SeedOptions, SeedReport, Shape};

/// Opens the test database with our schema and seeds the tiny world.
pub async fn seeded(t: &TestDb, seed_value: u64) -> (Db, SeedReport) {
    let opened = updraft_homeserver::open(&t.target, Default::default())
        .await
        .unwrap();
    let shape = Shape::load("tiny").unwrap();
    let report = seed(&opened.db, &shape, seed_value, SeedOptions::default())
        .await
        .unwrap();
    (opened.db, report)
}

/// Rows of a query as strings (NULL as "NULL"); every column is cast to text in SQL.
pub async fn rows(db: &Db, sql: &str) -> Vec<Vec<String>> {
    let map = |r: &dyn Fn(usize) -> Option<String>, n: usize| {
        (0..n)
            .map(|i| r(i).unwrap_or_else(|| "NULL".into()))
            .collect::<Vec<_>>()
    };
    match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| map(&|i| r.get::<Option<String>, _>(i), r.len()))
            .collect(),
        Db::Postgres(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| map(&|i| r.get::<Option<String>, _>(i), r.len()))
            .collect(),
    }
}

/// A text cast that works on both engines.
pub fn txt(db: &Db, col: &str) -> String {
    match db {
        Db::Sqlite(_) => format!("CAST({col} AS TEXT)"),
        Db::Postgres(_) => format!("({col})::text"),
    }
}

/// The world tables as table -> sorted lines (from the crate's canonical dump).
pub async fn world(db: &Db) -> BTreeMap<String, Vec<String>> {
    let text = updraft_workload::dump::dump(db).await.unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("## ") {
            current = t.to_owned();
            out.entry(current.clone()).or_default();
        } else {
            out.get_mut(&current).unwrap().push(line.to_owned());
        }
    }
    out
}

/// Lines added and removed per table between two world dumps (tables with no change omitted).
pub fn diff(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for (table, a) in after {
        let b = &before[table];
        let added: Vec<String> = a.iter().filter(|l| !b.contains(l)).cloned().collect();
        let removed: Vec<String> = b.iter().filter(|l| !a.contains(l)).cloned().collect();
        if !added.is_empty() || !removed.is_empty() {
            out.insert(table.clone(), (added, removed));
        }
    }
    out
}

/// The derived tables drift must never touch, filled with sentinel rows so
/// that any write to them would show.
pub async fn fill_derived(db: &Db) {
    let fts = match db {
        Db::Sqlite(_) => "INSERT INTO user_directory_search (user_id, value) SELECT name, name FROM users",
        Db::Postgres(_) => {
            "INSERT INTO user_directory_search (user_id, vector) SELECT name, to_tsvector('simple', name) FROM users"
        }
    };
    for sql in [
        "INSERT INTO user_directory (user_id, room_id, display_name, avatar_url) \
         SELECT full_user_id, NULL, displayname, avatar_url FROM profiles",
        fts,
        "INSERT INTO users_in_public_rooms (user_id, room_id) \
         SELECT state_key, room_id FROM current_state_events WHERE type = 'm.room.member' AND membership = 'join'",
        "INSERT INTO users_who_share_private_rooms (user_id, other_user_id, room_id) \
         SELECT a.state_key, b.state_key, a.room_id FROM current_state_events a JOIN current_state_events b \
         ON a.room_id = b.room_id AND a.type = 'm.room.member' AND b.type = 'm.room.member' AND a.state_key <> b.state_key",
        "INSERT INTO room_stats_current (room_id, current_state_events, joined_members, invited_members, left_members, \
         banned_members, local_users_in_room, completed_delta_stream_id, knocked_members) \
         SELECT room_id, COUNT(*), 0, 0, 0, 0, 0, 1, 0 FROM current_state_events GROUP BY room_id",
        "INSERT INTO room_stats_state (room_id, name) SELECT room_id, 'stale' FROM rooms",
        "UPDATE user_directory_stream_pos SET stream_id = 7",
        "UPDATE stats_incremental_position SET stream_id = 7",
    ] {
        db.execute(sql).await.unwrap();
    }
}

/// Every derived table, dumped.
pub async fn derived(db: &Db) -> Vec<Vec<String>> {
    let search = match db {
        Db::Sqlite(_) => "SELECT user_id, value FROM user_directory_search ORDER BY 1, 2",
        Db::Postgres(_) => "SELECT user_id, vector::text FROM user_directory_search ORDER BY 1, 2",
    };
    let mut out = Vec::new();
    for sql in [
        "SELECT user_id, room_id, display_name, avatar_url FROM user_directory ORDER BY 1",
        search,
        "SELECT user_id, room_id FROM users_in_public_rooms ORDER BY 1, 2",
        "SELECT user_id, other_user_id, room_id FROM users_who_share_private_rooms ORDER BY 1, 2, 3",
        "SELECT room_id, current_state_events, joined_members, completed_delta_stream_id FROM room_stats_current ORDER BY 1",
        "SELECT room_id, name FROM room_stats_state ORDER BY 1",
        "SELECT stream_id FROM user_directory_stream_pos",
        "SELECT stream_id FROM stats_incremental_position",
        "SELECT user_id FROM user_directory_stale_remote_users",
    ] {
        let cols = sql
            .trim_start_matches("SELECT ")
            .split(" FROM ")
            .next()
            .unwrap()
            .split(", ")
            .map(|c| txt(db, c))
            .collect::<Vec<_>>()
            .join(", ");
        let rest = sql.split(" FROM ").nth(1).unwrap();
        let q = format!("SELECT {cols} FROM {rest}");
        let r = rows(db, &q).await;
        out.push(vec![format!("{sql}: {} rows", r.len())]);
        out.extend(r);
    }
    out
}
