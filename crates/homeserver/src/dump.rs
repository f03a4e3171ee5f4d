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
            // Only the jobs' own updates: Synapse queues unrelated ones at startup.
            "SELECT update_name, progress_json, depends_on FROM background_updates \
             WHERE update_name LIKE 'populate\\_%' ESCAPE '\\'"
                .to_owned(),
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

/// A remote user's acceptable `(display_name, avatar_url)` profiles in the
/// directory: Synapse keeps the per-room profile of the LAST room it
/// processed, i.e. one of the user's qualifying rooms (a local user joined)
/// with the fewest current state rows; rooms with equal counts have no
/// defined order, so any of their profiles is a correct answer.
pub type ProfileChoices = BTreeMap<String, Vec<(Option<String>, Option<String>)>>;

/// Computes [`ProfileChoices`] for every remote user from current state.
/// Only users with more than one possible profile are returned.
pub async fn remote_profile_choices(
    db: &Db,
    server_name: &str,
) -> Result<ProfileChoices, sqlx::Error> {
    // (user, room, room's current-state rows, display_name, avatar_url) for each
    // joined remote member of a room some local user is joined to.
    let sql = "
        WITH counts AS (
            SELECT room_id, COUNT(*) AS events FROM current_state_events GROUP BY room_id
        ), local_rooms AS (
            SELECT DISTINCT room_id FROM current_state_events
            WHERE type = 'm.room.member' AND membership = 'join'
              AND substr(state_key, instr(state_key, ':') + 1) = $1
        )
        SELECT c.state_key, c.room_id, n.events, m.display_name, m.avatar_url
        FROM current_state_events c
        JOIN local_rooms l ON l.room_id = c.room_id
        JOIN counts n ON n.room_id = c.room_id
        JOIN room_memberships m ON m.event_id = c.event_id
        WHERE c.type = 'm.room.member' AND c.membership = 'join'
          AND substr(c.state_key, instr(c.state_key, ':') + 1) <> $1";
    type Row = (String, String, i64, Option<String>, Option<String>);
    type Candidate = (i64, Option<String>, Option<String>);
    let rows: Vec<Row> = match db {
        Db::Sqlite(pool) => {
            sqlx::query_as(&sql.replace("$1", "?1"))
                .bind(server_name)
                .fetch_all(pool)
                .await?
        }
        Db::Postgres(pool) => {
            let pg = sql
                .replace("instr(state_key, ':')", "strpos(state_key, ':')")
                .replace("instr(c.state_key, ':')", "strpos(c.state_key, ':')");
            sqlx::query_as(&pg)
                .bind(server_name)
                .fetch_all(pool)
                .await?
        }
    };
    let mut by_user: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for (user, _room, events, name, avatar) in rows {
        by_user
            .entry(user)
            .or_default()
            .push((events, name, avatar));
    }
    let mut out = ProfileChoices::new();
    for (user, rooms) in by_user {
        let min = rooms.iter().map(|r| r.0).min().unwrap_or(0);
        let mut choices: Vec<_> = rooms
            .into_iter()
            .filter(|r| r.0 == min)
            .map(|r| (r.1, r.2))
            .collect();
        choices.sort();
        choices.dedup();
        if choices.len() > 1 {
            out.insert(user, choices);
        }
    }
    Ok(out)
}

/// Differences between an expected dump (Synapse's, or a golden file) and an
/// actual one, per table: rows missing from `actual` and rows only in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableDiff {
    pub compared: usize,
    pub missing: Rows,
    pub extra: Rows,
}

/// Compares two dumps. Rows of `user_directory` and `user_directory_search`
/// for a user in `choices` whose profiles differ are accepted when both
/// sides picked one of that user's acceptable profiles; nothing else is
/// tolerated.
pub fn compare(
    expected: &BTreeMap<String, Rows>,
    actual: &BTreeMap<String, Rows>,
    choices: &ProfileChoices,
) -> BTreeMap<String, TableDiff> {
    let tolerated = |table: &str, exp: &str, act: &str| -> bool {
        let user = exp.split('\t').next().unwrap_or("");
        if user != act.split('\t').next().unwrap_or("") {
            return false;
        }
        let Some(options) = choices.get(user) else {
            return false;
        };
        match table {
            "user_directory" => {
                let profile = |row: &str| {
                    let cols: Vec<&str> = row.split('\t').collect();
                    let v = |i: usize| cols.get(i).filter(|c| **c != "\\N").map(|c| unescape(c));
                    (v(2), v(3))
                };
                options.contains(&profile(exp)) && options.contains(&profile(act))
            }
            // The search text follows the chosen profile.
            "user_directory_search" => true,
            _ => false,
        }
    };
    let mut out = BTreeMap::new();
    let tables: std::collections::BTreeSet<&String> =
        expected.keys().chain(actual.keys()).collect();
    for table in tables {
        let empty = Rows::new();
        let exp = expected.get(table).unwrap_or(&empty);
        let act = actual.get(table).unwrap_or(&empty);
        let exp_set: std::collections::BTreeSet<&String> = exp.iter().collect();
        let act_set: std::collections::BTreeSet<&String> = act.iter().collect();
        let mut missing: Vec<&String> = exp_set.difference(&act_set).copied().collect();
        let mut extra: Vec<&String> = act_set.difference(&exp_set).copied().collect();
        // Pair up tolerated differences by user id.
        missing.retain(|m| {
            let user = m.split('\t').next().unwrap_or("");
            match extra
                .iter()
                .position(|e| e.split('\t').next() == Some(user) && tolerated(table, m, e))
            {
                Some(i) => {
                    extra.remove(i);
                    false
                }
                None => true,
            }
        });
        out.insert(
            table.clone(),
            TableDiff {
                compared: exp.len().max(act.len()),
                missing: missing.into_iter().cloned().collect(),
                extra: extra.into_iter().cloned().collect(),
            },
        );
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
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
    fn compare_tolerates_only_acceptable_profiles() {
        let table = |rows: &[&str]| {
            let mut d = BTreeMap::new();
            d.insert(
                "user_directory".to_owned(),
                rows.iter().map(|r| r.to_string()).collect(),
            );
            d
        };
        let synapse = table(&["@r:other\t\\N\tBob A\t\\N", "@s:other\t\\N\tSam\t\\N"]);
        let ours = table(&["@r:other\t\\N\tBob B\t\\N", "@s:other\t\\N\tSammy\t\\N"]);
        let mut choices = ProfileChoices::new();
        choices.insert(
            "@r:other".to_owned(),
            vec![
                (Some("Bob A".to_owned()), None),
                (Some("Bob B".to_owned()), None),
            ],
        );
        let diff = &compare(&synapse, &ours, &choices)["user_directory"];
        assert_eq!(diff.missing, vec!["@s:other\t\\N\tSam\t\\N".to_owned()]);
        assert_eq!(diff.extra, vec!["@s:other\t\\N\tSammy\t\\N".to_owned()]);
        assert_eq!(diff.compared, 2);
    }

    #[test]
    fn cells_escape_separators() {
        assert_eq!(cell(Some("a\tb\nc\\".to_owned())), "a\\tb\\nc\\\\");
        assert_eq!(cell(None), "\\N");
    }
}
