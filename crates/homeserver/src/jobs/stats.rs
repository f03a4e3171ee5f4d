//! `populate_stats_process_rooms` (SEMANTICS §6): per batch, the next
//! `batch_size` rooms by id; their counters in one INSERT ... SELECT, their
//! state fields from the loaded state events in one multi-row upsert.

use async_trait::async_trait;
use serde_json::{Map, Value};
use updraft_engine::{BatchHandler, BatchResult, Db, DbTx, HandlerError, ProgressEstimate};

use super::sql::{self, EFFECTIVE_MEMBERSHIP};
use crate::events::{clean_string, load_state, RoomState};

pub const POPULATE_STATS: &str = "populate_stats_process_rooms";

/// The state types whose `state_key = ''` events feed `room_stats_state`.
const STATE_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
];

/// The handler; `server_name` decides which joined members are local.
pub struct PopulateStats {
    server_name: String,
}

impl PopulateStats {
    pub fn new(server_name: &str) -> PopulateStats {
        PopulateStats {
            server_name: server_name.to_owned(),
        }
    }
}

/// One `room_stats_state` row (everything but `guest_access`, which this job
/// does not write).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StateFields {
    pub join_rules: Option<String>,
    pub history_visibility: Option<String>,
    pub encryption: Option<String>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub avatar: Option<String>,
    pub canonical_alias: Option<String>,
    pub is_federatable: bool,
    pub room_type: Option<String>,
}

impl StateFields {
    /// The fields of a room from its state contents (by event type).
    pub fn from_state(state: &RoomState) -> StateFields {
        let get = |t: &str, key: &str| state.content.get(t).and_then(|c| clean_string(c.get(key)));
        let create = state.content.get("m.room.create");
        StateFields {
            join_rules: get("m.room.join_rules", "join_rule"),
            history_visibility: get("m.room.history_visibility", "history_visibility"),
            encryption: get("m.room.encryption", "algorithm"),
            name: get("m.room.name", "name"),
            topic: state.content.get("m.room.topic").and_then(plain_text_topic),
            avatar: get("m.room.avatar", "url"),
            canonical_alias: get("m.room.canonical_alias", "alias"),
            is_federatable: create
                .and_then(|c| c.get("m.federate"))
                .is_none_or(|f| f == &Value::Bool(true)),
            room_type: create.and_then(|c| clean_string(c.get("type"))),
        }
    }
}

/// The plain-text topic: `topic` must be a string, else there is none; the
/// first `m.topic."m.text"` entry with a string body and a mimetype that is
/// absent, null, empty or `text/plain` wins over it.
pub fn plain_text_topic(content: &Map<String, Value>) -> Option<String> {
    let Some(Value::String(topic)) = content.get("topic") else {
        return None;
    };
    let entries = content
        .get("m.topic")
        .and_then(Value::as_object)
        .and_then(|t| t.get("m.text"))
        .and_then(Value::as_array);
    let chosen = entries.into_iter().flatten().find_map(|e| {
        let e = e.as_object()?;
        let body = e.get("body")?.as_str()?;
        let plain = match e.get("mimetype") {
            None | Some(Value::Null) => true,
            Some(Value::String(m)) => m.is_empty() || m == "text/plain",
            Some(_) => return None,
        };
        plain.then_some(body)
    });
    let text = chosen.unwrap_or(topic);
    (!text.contains('\0')).then(|| text.to_owned())
}

#[async_trait]
impl BatchHandler for PopulateStats {
    /// In rooms, by room id: those up to `last_room_id` are done, out of all
    /// `rooms` rows (two counts over its primary key).
    async fn estimate(&self, db: &Db, progress: &Value) -> Option<ProgressEstimate> {
        let last = progress
            .get("last_room_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let done: i64 = match db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE room_id <= ?1")
                    .bind(last)
                    .fetch_one(pool)
                    .await
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE room_id <= $1")
                    .bind(last)
                    .fetch_one(pool)
                    .await
            }
        }
        .ok()?;
        let total = db.count_rows("rooms").await.ok()?;
        Some(super::estimate(total, total - done))
    }

    async fn run_batch(
        &self,
        tx: &mut DbTx,
        progress: &Value,
        batch_size: u64,
    ) -> Result<BatchResult, HandlerError> {
        let last = progress
            .get("last_room_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let rooms = next_rooms(tx, &last, batch_size).await?;
        let Some(new_last) = rooms.last().cloned() else {
            return Ok(BatchResult::Done { items: 1 });
        };

        let states = load_state(tx, &rooms, STATE_TYPES).await?;
        let mut skipped = Vec::new();
        let mut rows: Vec<(String, StateFields)> = Vec::with_capacity(rooms.len());
        let empty = RoomState::default();
        for room in &rooms {
            let state = states.get(room).unwrap_or(&empty);
            match &state.unloadable {
                Some(reason) => skipped.push((room.clone(), reason.clone())),
                None => rows.push((room.clone(), StateFields::from_state(state))),
            }
        }
        super::record_skipped(tx, POPULATE_STATS, &skipped).await?;
        let skipped_ids: Vec<String> = skipped.into_iter().map(|(r, _)| r).collect();
        write_counters(tx, &self.server_name, &last, &new_last, &skipped_ids).await?;
        write_state(tx, &rows).await?;

        let mut progress = progress.as_object().cloned().unwrap_or_default();
        progress.insert("last_room_id".to_owned(), Value::String(new_last));
        Ok(BatchResult::Progress {
            items: rooms.len() as u64,
            progress: Value::Object(progress),
        })
    }
}

async fn next_rooms(tx: &mut DbTx, last: &str, limit: u64) -> Result<Vec<String>, sqlx::Error> {
    let limit = limit.max(1) as i64;
    match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query_scalar(
                "SELECT DISTINCT room_id FROM current_state_events WHERE room_id > ?1 ORDER BY room_id LIMIT ?2",
            )
            .bind(last)
            .bind(limit)
            .fetch_all(&mut **tx)
            .await
        }
        DbTx::Postgres(tx) => {
            sqlx::query_scalar(
                "SELECT DISTINCT room_id FROM current_state_events WHERE room_id > $1 ORDER BY room_id LIMIT $2",
            )
            .bind(last)
            .bind(limit)
            .fetch_all(&mut **tx)
            .await
        }
    }
}

/// `room_stats_current` for every room in `(after, upto]` but the skipped
/// ones, in one statement.
async fn write_counters(
    tx: &mut DbTx,
    server_name: &str,
    after: &str,
    upto: &str,
    skipped: &[String],
) -> Result<(), sqlx::Error> {
    let counts = |server: String| {
        format!(
            "COUNT(*),
             SUM(CASE WHEN c.type = 'm.room.member' AND {m} = 'join' THEN 1 ELSE 0 END),
             SUM(CASE WHEN c.type = 'm.room.member' AND {m} = 'invite' THEN 1 ELSE 0 END),
             SUM(CASE WHEN c.type = 'm.room.member' AND {m} = 'leave' THEN 1 ELSE 0 END),
             SUM(CASE WHEN c.type = 'm.room.member' AND {m} = 'ban' THEN 1 ELSE 0 END),
             SUM(CASE WHEN c.type = 'm.room.member' AND {m} = 'knock' THEN 1 ELSE 0 END),
             SUM(CASE WHEN c.type = 'm.room.member' AND {m} = 'join' AND {server} THEN 1 ELSE 0 END),
             (SELECT COALESCE(MAX(stream_ordering), 0) FROM events)",
            m = EFFECTIVE_MEMBERSHIP,
        )
    };
    let upsert = "ON CONFLICT (room_id) DO UPDATE SET
        current_state_events = excluded.current_state_events,
        joined_members = excluded.joined_members, invited_members = excluded.invited_members,
        left_members = excluded.left_members, banned_members = excluded.banned_members,
        knocked_members = excluded.knocked_members,
        local_users_in_room = excluded.local_users_in_room,
        completed_delta_stream_id = excluded.completed_delta_stream_id";
    let columns = "room_id, current_state_events, joined_members, invited_members, left_members,
        banned_members, knocked_members, local_users_in_room, completed_delta_stream_id";
    match tx {
        DbTx::Sqlite(tx) => {
            let sql = format!(
                "INSERT INTO room_stats_current ({columns})
                 SELECT c.room_id, {}
                 FROM current_state_events c
                 WHERE c.room_id > ?2 AND c.room_id <= ?3
                   AND c.room_id NOT IN (SELECT value FROM json_each(?4))
                 GROUP BY c.room_id {upsert}",
                counts(format!("{} = ?1", sql::server_of_sqlite("c.state_key")))
            );
            sqlx::query(&sql)
                .bind(server_name)
                .bind(after)
                .bind(upto)
                .bind(sql::list_param_sqlite(skipped))
                .execute(&mut **tx)
                .await?;
        }
        DbTx::Postgres(tx) => {
            let sql = format!(
                "INSERT INTO room_stats_current ({columns})
                 SELECT c.room_id, {}
                 FROM current_state_events c
                 WHERE c.room_id > $2 AND c.room_id <= $3 AND NOT (c.room_id = ANY($4))
                 GROUP BY c.room_id {upsert}",
                counts(format!("{} = $1", sql::server_of_pg("c.state_key")))
            );
            sqlx::query(&sql)
                .bind(server_name)
                .bind(after)
                .bind(upto)
                .bind(sql::list_param_pg(skipped))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// `room_stats_state` for the loaded rooms, in one statement. An existing
/// row keeps its `guest_access`.
async fn write_state(tx: &mut DbTx, rows: &[(String, StateFields)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let upsert = "ON CONFLICT (room_id) DO UPDATE SET
        join_rules = excluded.join_rules, history_visibility = excluded.history_visibility,
        encryption = excluded.encryption, name = excluded.name, topic = excluded.topic,
        avatar = excluded.avatar, canonical_alias = excluded.canonical_alias,
        is_federatable = excluded.is_federatable, room_type = excluded.room_type";
    let columns = "room_id, join_rules, history_visibility, encryption, name, topic, avatar,
        canonical_alias, is_federatable, room_type";
    match tx {
        DbTx::Sqlite(tx) => {
            let json: Vec<(&String, &StateFields)> = rows.iter().map(|(r, f)| (r, f)).collect();
            let sql = format!(
                "INSERT INTO room_stats_state ({columns})
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1].join_rules'),
                   json_extract(value, '$[1].history_visibility'), json_extract(value, '$[1].encryption'),
                   json_extract(value, '$[1].name'), json_extract(value, '$[1].topic'),
                   json_extract(value, '$[1].avatar'), json_extract(value, '$[1].canonical_alias'),
                   json_extract(value, '$[1].is_federatable'), json_extract(value, '$[1].room_type')
                 FROM json_each(?1) WHERE true {upsert}"
            );
            sqlx::query(&sql)
                .bind(sql::list_param_sqlite(&json))
                .execute(&mut **tx)
                .await?;
        }
        DbTx::Postgres(tx) => {
            let col = |f: fn(&StateFields) -> Option<String>| -> Vec<Option<String>> {
                rows.iter().map(|(_, s)| f(s)).collect()
            };
            let sql = format!(
                "INSERT INTO room_stats_state ({columns})
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                   $6::text[], $7::text[], $8::text[], $9::bool[], $10::text[]) {upsert}"
            );
            sqlx::query(&sql)
                .bind(rows.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>())
                .bind(col(|s| s.join_rules.clone()))
                .bind(col(|s| s.history_visibility.clone()))
                .bind(col(|s| s.encryption.clone()))
                .bind(col(|s| s.name.clone()))
                .bind(col(|s| s.topic.clone()))
                .bind(col(|s| s.avatar.clone()))
                .bind(col(|s| s.canonical_alias.clone()))
                .bind(
                    rows.iter()
                        .map(|(_, s)| s.is_federatable)
                        .collect::<Vec<_>>(),
                )
                .bind(col(|s| s.room_type.clone()))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topic(v: Value) -> Option<String> {
        plain_text_topic(v.as_object().unwrap())
    }

    #[test]
    fn topic_rules() {
        assert_eq!(topic(json!({"topic": "plain"})), Some("plain".into()));
        assert_eq!(
            topic(json!({"topic": "fallback", "m.topic": {"m.text": [
                {"mimetype": "text/html", "body": "<b>x</b>"}, {"body": "first plain"}, {"body": "second"}]}})),
            Some("first plain".into())
        );
        assert_eq!(
            topic(
                json!({"topic": "fallback", "m.topic": {"m.text": [{"mimetype": "text/html", "body": "h"}]}})
            ),
            Some("fallback".into())
        );
        // A bad entry is skipped, not fatal.
        assert_eq!(
            topic(
                json!({"topic": "t", "m.topic": {"m.text": [{"body": 5}, {"mimetype": "text/plain", "body": "ok"}]}})
            ),
            Some("ok".into())
        );
        // No string `topic`: no topic at all, even with a good m.topic.
        assert_eq!(topic(json!({"m.topic": {"m.text": [{"body": "x"}]}})), None);
        assert_eq!(topic(json!({"topic": 7})), None);
        assert_eq!(topic(json!({"topic": "a\u{0}b"})), None);
    }

    #[test]
    fn federate_and_non_strings() {
        let mut state = RoomState::default();
        state.content.insert(
            "m.room.create".into(),
            json!({"m.federate": false, "type": 5})
                .as_object()
                .unwrap()
                .clone(),
        );
        state.content.insert(
            "m.room.name".into(),
            json!({"name": ["x"]}).as_object().unwrap().clone(),
        );
        state.content.insert(
            "m.room.join_rules".into(),
            json!({"join_rule": "invite"}).as_object().unwrap().clone(),
        );
        let f = StateFields::from_state(&state);
        assert!(!f.is_federatable);
        assert_eq!(f.room_type, None);
        assert_eq!(f.name, None);
        assert_eq!(f.join_rules.as_deref(), Some("invite"));
        // m.federate must be exactly true when present.
        state.content.insert(
            "m.room.create".into(),
            json!({"m.federate": "yes"}).as_object().unwrap().clone(),
        );
        assert!(!StateFields::from_state(&state).is_federatable);
        state.content.insert(
            "m.room.create".into(),
            json!({}).as_object().unwrap().clone(),
        );
        assert!(StateFields::from_state(&state).is_federatable);
    }
}
