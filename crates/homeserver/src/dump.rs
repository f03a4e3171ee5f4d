//! Canonical, sorted dumps of the derived tables, so that two databases (one
//! written by Synapse, one by updraft; or a database and a golden file) can
//! be compared row by row on either engine.

use std::collections::BTreeMap;

use updraft_engine::Db;

/// One table's rows as tab-separated text (`\N` for NULL), sorted.
pub type Rows = Vec<String>;

/// The derived tables and the columns compared, in a form both engines can print.
/// Booleans are printed `true`/`false`, numbers in decimal.
fn queries(db: &Db) -> Vec<(&'static str, String)> {
    let search = match db {
        Db::Sqlite(_) => "SELECT user_id, value FROM user_directory_search",
        Db::Postgres(_) => "SELECT user_id, vector::text FROM user_directory_search",
    };
    vec![
        (
            "room_stats_current",
            "SELECT room_id, current_state_events, joined_members, invited_members, left_members, \
             banned_members, knocked_members, local_users_in_room, completed_delta_stream_id \
             FROM room_stats_current"
                .to_owned(),
        ),
        (
            "room_stats_state",
            "SELECT room_id, name, canonical_alias, join_rules, history_visibility, encryption, \
             avatar, guest_access, \
             CASE WHEN is_federatable IS NULL THEN NULL WHEN is_federatable THEN 'true' ELSE 'false' END, \
             topic, room_type FROM room_stats_state"
                .to_owned(),
        ),
        ("user_directory", "SELECT user_id, room_id, display_name, avatar_url FROM user_directory".to_owned()),
        ("users_in_public_rooms", "SELECT user_id, room_id FROM users_in_public_rooms".to_owned()),
        (
            "users_who_share_private_rooms",
            "SELECT user_id, other_user_id, room_id FROM users_who_share_private_rooms".to_owned(),
        ),
        ("user_directory_search", search.to_owned()),
        ("user_directory_stream_pos", "SELECT stream_id FROM user_directory_stream_pos".to_owned()),
        (
            "background_updates",
            "SELECT update_name, progress_json, depends_on FROM background_updates".to_owned(),
        ),
    ]
}

/// Every derived table, canonically dumped.
pub async fn dump(db: &Db) -> Result<BTreeMap<String, Rows>, sqlx::Error> {
    let mut out = BTreeMap::new();
    for (table, sql) in queries(db) {
        let mut rows = fetch_text_rows(db, &sql).await?;
        rows.sort();
        out.insert(table.to_owned(), rows);
    }
    Ok(out)
}

/// Renders a dump as text: `## table` then its rows.
pub fn to_text(dump: &BTreeMap<String, Rows>) -> String {
    let mut s = String::new();
    for (table, rows) in dump {
        s.push_str(&format!("## {table} ({} rows)\n", rows.len()));
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
    }
    s
}

/// Parses [`to_text`] output back.
pub fn from_text(text: &str) -> BTreeMap<String, Rows> {
    let mut out: BTreeMap<String, Rows> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            let name = rest.split(" (").next().unwrap_or(rest).to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let Some(t) = &current {
            out.get_mut(t)
                .expect("table header seen")
                .push(line.to_owned());
        }
    }
    out
}

/// Escapes a value for the tab-separated form.
fn cell(v: Option<String>) -> String {
    match v {
        None => "\\N".to_owned(),
        Some(s) => s
            .replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n"),
    }
}

async fn fetch_text_rows(db: &Db, sql: &str) -> Result<Rows, sqlx::Error> {
    use sqlx::{Column, Row, TypeInfo, ValueRef};
    fn text_of_sqlite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Option<String> {
        let raw = row.try_get_raw(i).ok()?;
        if raw.is_null() {
            return None;
        }
        match raw.type_info().name() {
            "INTEGER" => row.try_get::<i64, _>(i).ok().map(|v| v.to_string()),
            "REAL" => row.try_get::<f64, _>(i).ok().map(|v| v.to_string()),
            _ => row.try_get::<String, _>(i).ok(),
        }
    }
    fn text_of_pg(row: &sqlx::postgres::PgRow, i: usize) -> Option<String> {
        let raw = row.try_get_raw(i).ok()?;
        if raw.is_null() {
            return None;
        }
        match row.column(i).type_info().name() {
            "INT2" => row.try_get::<i16, _>(i).ok().map(|v| v.to_string()),
            "INT4" => row.try_get::<i32, _>(i).ok().map(|v| v.to_string()),
            "INT8" => row.try_get::<i64, _>(i).ok().map(|v| v.to_string()),
            "BOOL" => row.try_get::<bool, _>(i).ok().map(|v| v.to_string()),
            _ => row.try_get::<String, _>(i).ok(),
        }
    }
    Ok(match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| cell(text_of_sqlite(r, i)))
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect(),
        Db::Postgres(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| cell(text_of_pg(r, i)))
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let mut d = BTreeMap::new();
        d.insert("a".to_owned(), vec!["x\t\\N".to_owned(), "y\t1".to_owned()]);
        d.insert("b".to_owned(), vec![]);
        assert_eq!(from_text(&to_text(&d)), d);
    }

    #[test]
    fn cells_escape_separators() {
        assert_eq!(cell(Some("a\tb\nc\\".to_owned())), "a\\tb\\nc\\\\");
        assert_eq!(cell(None), "\\N");
    }
}
