//! The room admin API: `GET /_synapse/admin/v1/rooms/{roomId}` and the
//! paginated `GET /_synapse/admin/v1/rooms`, reading `rooms`,
//! `room_stats_state` and `room_stats_current` with Synapse's queries.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};
use sqlx::Row;
use updraft_engine::Db;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::response::{JsonBody, QueryArgs};
use crate::state::AppState;

/// Synapse's `RoomSortOrder`: the `order_by` value, the column, ascending?
const ORDERS: &[(&str, &str, bool)] = &[
    ("alphabetical", "state.name", true),
    ("size", "curr.joined_members", false),
    ("name", "state.name", true),
    ("canonical_alias", "state.canonical_alias", true),
    ("joined_members", "curr.joined_members", false),
    ("joined_local_members", "curr.local_users_in_room", false),
    ("version", "rooms.room_version", false),
    ("creator", "rooms.creator", true),
    ("encryption", "state.encryption", true),
    ("federatable", "state.is_federatable", true),
    ("public", "rooms.is_public", true),
    ("join_rules", "state.join_rules", true),
    ("guest_access", "state.guest_access", true),
    ("history_visibility", "state.history_visibility", true),
    ("state_events", "curr.current_state_events", false),
];

/// The columns both endpoints read, in output order. Booleans (BOOLEAN on
/// Postgres, integers on SQLite, NULL possible) and counters (INT4 on
/// Postgres) are normalised in SQL so one decoder serves both engines;
/// NULL booleans are false, as Python's `bool(None)`.
const COLUMNS: &str = "rooms.room_id, state.name, state.canonical_alias, \
    CAST(curr.joined_members AS BIGINT), CAST(curr.local_users_in_room AS BIGINT), \
    rooms.room_version, rooms.creator, state.encryption, \
    CASE WHEN state.is_federatable THEN 1 ELSE 0 END, CASE WHEN rooms.is_public THEN 1 ELSE 0 END, \
    state.join_rules, state.guest_access, state.history_visibility, \
    CAST(curr.current_state_events AS BIGINT), state.avatar, state.topic, state.room_type";

/// One room as both endpoints print it (the list omits avatar and topic).
#[derive(Debug)]
struct RoomRow {
    room_id: String,
    name: Option<String>,
    canonical_alias: Option<String>,
    joined_members: Option<i64>,
    joined_local_members: Option<i64>,
    version: Option<String>,
    creator: Option<String>,
    encryption: Option<String>,
    federatable: bool,
    public: bool,
    join_rules: Option<String>,
    guest_access: Option<String>,
    history_visibility: Option<String>,
    state_events: Option<i64>,
    avatar: Option<String>,
    topic: Option<String>,
    room_type: Option<String>,
}

macro_rules! room_row {
    ($r:expr) => {{
        let r = $r;
        RoomRow {
            room_id: r.try_get(0)?,
            name: r.try_get(1)?,
            canonical_alias: r.try_get(2)?,
            joined_members: r.try_get::<Option<i64>, _>(3)?,
            joined_local_members: r.try_get::<Option<i64>, _>(4)?,
            version: r.try_get(5)?,
            creator: r.try_get(6)?,
            encryption: r.try_get(7)?,
            federatable: r.try_get::<i32, _>(8)? != 0,
            public: r.try_get::<i32, _>(9)? != 0,
            join_rules: r.try_get(10)?,
            guest_access: r.try_get(11)?,
            history_visibility: r.try_get(12)?,
            state_events: r.try_get::<Option<i64>, _>(13)?,
            avatar: r.try_get(14)?,
            topic: r.try_get(15)?,
            room_type: r.try_get(16)?,
        }
    }};
}

impl RoomRow {
    /// Synapse's `RoomStats` field order (`get_room_with_stats`).
    fn details(&self) -> Value {
        json!({
            "room_id": self.room_id,
            "name": self.name,
            "canonical_alias": self.canonical_alias,
            "joined_members": self.joined_members,
            "joined_local_members": self.joined_local_members,
            "version": self.version,
            "creator": self.creator,
            "encryption": self.encryption,
            "federatable": self.federatable,
            "public": self.public,
            "join_rules": self.join_rules,
            "guest_access": self.guest_access,
            "history_visibility": self.history_visibility,
            "state_events": self.state_events,
            "avatar": self.avatar,
            "topic": self.topic,
            "room_type": self.room_type,
        })
    }

    /// Synapse's list entry (`get_rooms_paginate`): no avatar, no topic.
    fn list_entry(&self) -> Value {
        let mut v = self.details();
        if let Value::Object(map) = &mut v {
            map.shift_remove("avatar");
            map.shift_remove("topic");
        }
        v
    }
}

/// A room's details, or `None` if `rooms` has no such room.
async fn room_with_stats(db: &Db, room_id: &str) -> Result<Option<RoomRow>, sqlx::Error> {
    let from = "FROM rooms LEFT JOIN room_stats_state state USING (room_id) \
                LEFT JOIN room_stats_current curr USING (room_id)";
    let cols = COLUMNS;
    Ok(match db {
        Db::Postgres(pool) => {
            let sql = format!("SELECT {cols} {from} WHERE rooms.room_id = $1");
            match sqlx::query(&sql).bind(room_id).fetch_optional(pool).await? {
                Some(r) => Some(room_row!(r)),
                None => None,
            }
        }
        Db::Sqlite(pool) => {
            let sql = format!("SELECT {cols} {from} WHERE rooms.room_id = ?");
            match sqlx::query(&sql).bind(room_id).fetch_optional(pool).await? {
                Some(r) => Some(room_row!(r)),
                None => None,
            }
        }
    })
}

/// The list query's parameters, already validated.
#[derive(Debug)]
pub struct ListParams {
    pub from: i64,
    pub limit: i64,
    pub order_by: &'static str,
    pub backwards: bool,
    pub search_term: Option<String>,
    pub public_rooms: Option<bool>,
    pub empty_rooms: Option<bool>,
}

impl ListParams {
    /// Synapse's parsing and error messages for the list endpoint.
    pub fn parse(query: &QueryArgs) -> Result<ListParams, ApiError> {
        let from = query.integer("from", 0)?;
        let limit = query.integer("limit", 100)?;
        let names: Vec<&str> = ORDERS.iter().map(|o| o.0).collect();
        let order = query.one_of("order_by", &names, "name")?;
        let order_by = ORDERS
            .iter()
            .find(|o| o.0 == order)
            .map(|o| o.0)
            .unwrap_or("name");
        let search_term = query.get("search_term").map(str::to_owned);
        if search_term.as_deref() == Some("") {
            return Err(ApiError::InvalidParam(
                "search_term cannot be an empty string".to_owned(),
            ));
        }
        let public_rooms = query.boolean("public_rooms")?;
        let empty_rooms = query.boolean("empty_rooms")?;
        let backwards = query.one_of("dir", &["b", "f"], "f")? == "b";
        Ok(ListParams {
            from,
            limit,
            order_by,
            backwards,
            search_term,
            public_rooms,
            empty_rooms,
        })
    }
}

/// One page of rooms and the total matching the filters.
async fn rooms_page(db: &Db, p: &ListParams) -> Result<(Vec<RoomRow>, i64), sqlx::Error> {
    let (_, column, asc) = ORDERS
        .iter()
        .find(|o| o.0 == p.order_by)
        .copied()
        .expect("order_by was validated");
    let asc = asc != p.backwards;
    let direction = if asc { "ASC" } else { "DESC" };
    // Placeholders differ per engine; everything else is Synapse's query.
    let ph = |n: usize| match db {
        Db::Postgres(_) => format!("${n}"),
        Db::Sqlite(_) => "?".to_owned(),
    };
    let mut filters = Vec::new();
    let mut args: Vec<String> = Vec::new();
    if let Some(term) = &p.search_term {
        let lower = term.to_lowercase();
        filters.push(format!(
            "(LOWER(state.name) LIKE {} OR LOWER(state.canonical_alias) LIKE {} OR state.room_id = {})",
            ph(1),
            ph(2),
            ph(3)
        ));
        args = vec![format!("%{lower}%"), format!("#%{lower}%:%"), term.clone()];
    }
    if let Some(public) = p.public_rooms {
        filters.push(match (db, public) {
            (Db::Postgres(_), true) => "rooms.is_public".to_owned(),
            (Db::Postgres(_), false) => "NOT rooms.is_public".to_owned(),
            (Db::Sqlite(_), true) => "rooms.is_public = 1".to_owned(),
            (Db::Sqlite(_), false) => "rooms.is_public = 0".to_owned(),
        });
    }
    if let Some(empty) = p.empty_rooms {
        filters.push(if empty {
            "curr.joined_members = 0".to_owned()
        } else {
            "curr.joined_members <> 0".to_owned()
        });
    }
    let where_clause = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let from = "FROM room_stats_state state INNER JOIN room_stats_current curr USING (room_id) \
                INNER JOIN rooms USING (room_id)";
    let n = args.len();
    let info_sql = format!(
        "SELECT {} {from} {where_clause} ORDER BY {column} {direction}, state.room_id {direction} \
         LIMIT {} OFFSET {}",
        COLUMNS,
        ph(n + 1),
        ph(n + 2)
    );
    let count_sql =
        format!("SELECT COUNT(*) FROM (SELECT room_id {from} {where_clause}) AS get_room_ids");
    match db {
        Db::Postgres(pool) => {
            let mut q = sqlx::query(&info_sql);
            let mut c = sqlx::query_scalar::<_, i64>(&count_sql);
            for a in &args {
                q = q.bind(a);
                c = c.bind(a);
            }
            let rows = q.bind(p.limit).bind(p.from).fetch_all(pool).await?;
            let rooms = rows
                .iter()
                .map(|r| Ok(room_row!(r)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok((rooms, c.fetch_one(pool).await?))
        }
        Db::Sqlite(pool) => {
            let mut q = sqlx::query(&info_sql);
            let mut c = sqlx::query_scalar::<_, i64>(&count_sql);
            for a in &args {
                q = q.bind(a);
                c = c.bind(a);
            }
            let rows = q.bind(p.limit).bind(p.from).fetch_all(pool).await?;
            let rooms = rows
                .iter()
                .map(|r| Ok(room_row!(r)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok((rooms, c.fetch_one(pool).await?))
        }
    }
}

/// `GET /_synapse/admin/v1/rooms/{roomId}`.
pub async fn get_room(
    State(state): State<AppState>,
    _admin: Admin,
    room_id: Result<Path<String>, PathRejection>,
) -> Result<JsonBody, ApiError> {
    // An id that does not even decode (e.g. invalid UTF-8) names no room.
    let not_found = || ApiError::NotFound("Room not found".to_owned());
    let Path(room_id) = room_id.map_err(|_| not_found())?;
    // PostgreSQL text cannot hold U+0000, so no room id contains it.
    if room_id.contains('\0') {
        return Err(not_found());
    }
    let room = room_with_stats(&state.db, &room_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(JsonBody::ok(room.details()))
}

/// `GET /_synapse/admin/v1/rooms`.
pub async fn list_rooms(
    State(state): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<JsonBody, ApiError> {
    let params = ListParams::parse(&QueryArgs::parse(query.as_deref()))?;
    // Stored names never contain U+0000 (the stats job writes NULL instead,
    // and PostgreSQL refuses it in a parameter): such a term matches nothing.
    let (rooms, total) = if params
        .search_term
        .as_deref()
        .is_some_and(|t| t.contains('\0'))
    {
        (Vec::new(), 0)
    } else {
        rooms_page(&state.db, &params).await?
    };
    let mut body = Map::new();
    body.insert("offset".into(), json!(params.from));
    body.insert(
        "rooms".into(),
        Value::Array(rooms.iter().map(RoomRow::list_entry).collect()),
    );
    body.insert("total_rooms".into(), json!(total));
    // i128: Python's integers do not overflow, and neither may we.
    if (params.from as i128) + (params.limit as i128) < total as i128 {
        body.insert("next_batch".into(), json!(params.from + params.limit));
    }
    if params.from > 0 {
        let prev = if params.from > params.limit {
            params.from - params.limit
        } else {
            0
        };
        body.insert("prev_batch".into(), json!(prev));
    }
    Ok(JsonBody::ok(Value::Object(body)))
}
