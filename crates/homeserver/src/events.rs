//! Loading the content of current state events the way a homeserver serves
//! it: the stored JSON must parse, the room version must be known, the JSON
//! must hash to the event's id (room versions 3+), and a redacted event
//! contributes its pruned content.

use std::collections::BTreeMap;

use ruma::canonical_json::{redact_content_in_place, try_from_json_map};
use ruma::room_version_rules::{EventIdFormatVersion, RoomVersionRules};
use ruma::{CanonicalJsonObject, RoomVersionId};
use serde_json::{Map, Value};
use sqlx::Row;
use updraft_engine::DbTx;

use crate::jobs::sql::{list_param_pg, list_param_sqlite};

/// The state of one room: content by event type (state_key ''), or why the
/// room cannot be loaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomState {
    pub content: BTreeMap<String, Map<String, Value>>,
    /// Set when any of the room's loaded events is unusable.
    pub unloadable: Option<String>,
}

/// Does the database have Synapse's `redactions` table (a real Synapse
/// database does; updraft's own schema does not)?
pub async fn has_redactions(tx: &mut DbTx) -> Result<bool, sqlx::Error> {
    Ok(match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'redactions'",
            )
            .fetch_one(&mut **tx)
            .await?
                > 0
        }
        DbTx::Postgres(tx) => {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass('redactions') IS NOT NULL")
                .fetch_one(&mut **tx)
                .await?
        }
    })
}

/// Whether a `redactions` row redacts the event `c.event_id` sent by
/// `e.sender`: confirmed (`recheck` false), or a redaction event in the same
/// room from the same server (Synapse's recheck for room versions 3+).
/// Create events are never redacted.
const REDACTED_SQLITE: &str = "c.type <> 'm.room.create' AND EXISTS (
    SELECT 1 FROM redactions x LEFT JOIN events re ON re.event_id = x.event_id
    WHERE x.redacts = c.event_id AND (NOT x.recheck OR (re.room_id = c.room_id
      AND substr(re.sender, instr(re.sender, ':') + 1) = substr(e.sender, instr(e.sender, ':') + 1))))";
const REDACTED_POSTGRES: &str = "c.type <> 'm.room.create' AND EXISTS (
    SELECT 1 FROM redactions x LEFT JOIN events re ON re.event_id = x.event_id
    WHERE x.redacts = c.event_id AND (NOT x.recheck OR (re.room_id = c.room_id
      AND substr(re.sender, strpos(re.sender, ':') + 1) = substr(e.sender, strpos(e.sender, ':') + 1))))";

/// room_id, type, event_id, room_version, json, redacted.
type StateRow = (String, String, String, Option<String>, Option<String>, bool);

/// Loads the current state events with `state_key = ''` of the given types
/// for the given rooms. Rooms without any such event are absent.
pub async fn load_state(
    tx: &mut DbTx,
    rooms: &[String],
    types: &[&str],
) -> Result<BTreeMap<String, RoomState>, sqlx::Error> {
    let redactions = has_redactions(tx).await?;
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    let rows: Vec<StateRow> =
        match tx {
            DbTx::Sqlite(tx) => {
                let sql = format!(
                    "SELECT c.room_id, c.type, c.event_id, r.room_version, j.json, {} AS redacted
                 FROM current_state_events c
                 LEFT JOIN rooms r ON r.room_id = c.room_id
                 LEFT JOIN event_json j ON j.event_id = c.event_id
                 LEFT JOIN events e ON e.event_id = c.event_id
                 WHERE c.room_id IN (SELECT value FROM json_each(?1)) AND c.state_key = ''
                   AND c.type IN (SELECT value FROM json_each(?2))",
                    if redactions { REDACTED_SQLITE } else { "0" }
                );
                sqlx::query(&sql)
                    .bind(list_param_sqlite(rooms))
                    .bind(list_param_sqlite(&types))
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                    .collect()
            }
            DbTx::Postgres(tx) => {
                let sql =
                    format!(
                "SELECT c.room_id, c.type, c.event_id, r.room_version, j.json, {} AS redacted
                 FROM current_state_events c
                 LEFT JOIN rooms r ON r.room_id = c.room_id
                 LEFT JOIN event_json j ON j.event_id = c.event_id
                 LEFT JOIN events e ON e.event_id = c.event_id
                 WHERE c.room_id = ANY($1) AND c.state_key = '' AND c.type = ANY($2)",
                if redactions { REDACTED_POSTGRES } else { "false" }
            );
                sqlx::query(&sql)
                    .bind(list_param_pg(rooms))
                    .bind(list_param_pg(&types))
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                    .collect()
            }
        };
    let mut out: BTreeMap<String, RoomState> = BTreeMap::new();
    for (room_id, event_type, event_id, version, json, redacted) in rows {
        let state = out.entry(room_id).or_default();
        match load_content(
            &event_id,
            &event_type,
            version.as_deref(),
            json.as_deref(),
            redacted,
        ) {
            Ok(content) => {
                state.content.insert(event_type, content);
            }
            Err(reason) => {
                state.unloadable.get_or_insert(reason);
            }
        }
    }
    Ok(out)
}

/// The content of one event as served, or why it cannot be served.
pub fn load_content(
    event_id: &str,
    event_type: &str,
    room_version: Option<&str>,
    json: Option<&str>,
    redacted: bool,
) -> Result<Map<String, Value>, String> {
    let version = room_version.ok_or_else(|| format!("room version of {event_id} is unknown"))?;
    let rules = RoomVersionId::try_from(version)
        .ok()
        .and_then(|v| v.rules())
        .ok_or_else(|| format!("unknown room version {version:?}"))?;
    let json = json.ok_or_else(|| format!("event {event_id} has no stored JSON"))?;
    let object = parse_canonical(json).map_err(|e| format!("event {event_id}: {e}"))?;
    check_id(event_id, &object, &rules)?;
    let mut content = match object.get("content") {
        Some(ruma::CanonicalJsonValue::Object(c)) => c.clone(),
        _ => return Err(format!("event {event_id} has no content object")),
    };
    if redacted {
        redact_content_in_place(&mut content, &rules.redaction, event_type);
    }
    match serde_json::to_value(content) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("event {event_id}: content is not an object")),
    }
}

fn parse_canonical(json: &str) -> Result<CanonicalJsonObject, String> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("stored JSON does not parse: {e}"))?;
    let Value::Object(map) = value else {
        return Err("stored JSON is not an object".to_owned());
    };
    try_from_json_map(map).map_err(|e| format!("stored JSON is not canonical: {e}"))
}

/// Room versions 3+: the id must be `$` + the reference hash of the JSON.
fn check_id(
    event_id: &str,
    object: &CanonicalJsonObject,
    rules: &RoomVersionRules,
) -> Result<(), String> {
    if matches!(rules.event_id_format, EventIdFormatVersion::V1) {
        return Ok(());
    }
    let hash = ruma::signatures::reference_hash(object, rules)
        .map_err(|e| format!("event {event_id}: cannot hash: {e}"))?;
    if event_id.strip_prefix('$') == Some(hash.as_str()) {
        Ok(())
    } else {
        Err(format!("event {event_id}: stored JSON hashes to ${hash}"))
    }
}

/// A string value as Synapse stores it: only a string without U+0000.
pub fn clean_string(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.contains('\0') => Some(s.clone()),
        _ => None,
    }
}
