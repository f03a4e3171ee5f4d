//! Ground truth: recompute the expected room stats and user directory from
//! current state with a deliberately simple implementation (Rust over rows,
//! room by room; none of the jobs' SQL), and diff them against the tables.
//! Everything is read in one read-only transaction, so the comparison is of
//! one snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;
use updraft_engine::{Db, DbTx};

use crate::appservice::{AppServiceError, AppServices};
use crate::config::Config;
use crate::events::{load_state, RoomState};
use crate::jobs::{skipped_rooms, SkippedRoom};
use crate::text::normalise;

/// What to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum What {
    Stats,
    Directory,
    All,
}

impl std::str::FromStr for What {
    type Err = String;
    fn from_str(s: &str) -> Result<What, String> {
        match s {
            "stats" => Ok(What::Stats),
            "directory" => Ok(What::Directory),
            "all" => Ok(What::All),
            other => Err(format!(
                "unknown check {other:?} (expected stats, directory or all)"
            )),
        }
    }
}

/// How many of one kind of drift, with a few examples.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub count: u64,
    pub examples: Vec<String>,
}

/// Examples kept per drift kind.
const EXAMPLES: usize = 5;

/// The result of a verification.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Drift kinds (e.g. `missing_user`, `wrong_counter`) with counts.
    pub drift: BTreeMap<String, Drift>,
    /// Rooms, users and pairs looked at.
    pub checked: BTreeMap<String, u64>,
    /// Rooms whose state cannot be loaded now (not compared), and rooms the
    /// jobs recorded as skipped.
    pub unloadable_rooms: Vec<String>,
    pub skipped_rooms: Vec<SkippedRoom>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.drift.values().all(|d| d.count == 0)
    }

    fn add(&mut self, kind: &str, example: impl FnOnce() -> String) {
        let d = self.drift.entry(kind.to_owned()).or_default();
        d.count += 1;
        if d.examples.len() < EXAMPLES {
            d.examples.push(example());
        }
    }

    fn add_n(&mut self, kind: &str, n: u64, example: String) {
        if n == 0 {
            return;
        }
        let d = self.drift.entry(kind.to_owned()).or_default();
        d.count += n;
        if d.examples.len() < EXAMPLES {
            d.examples.push(example);
        }
    }

    fn checked(&mut self, what: &str, n: u64) {
        *self.checked.entry(what.to_owned()).or_default() += n;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    AppService(#[from] AppServiceError),
}

/// Rooms per chunk: everything of a chunk's rooms is held in memory at once.
const CHUNK: usize = 500;

/// Verifies the stats, the directory, or both.
pub async fn verify(db: &Db, config: &Config, what: What) -> Result<Report, VerifyError> {
    let app_services = AppServices::from_config(config)?;
    let mut tx = read_tx(db).await?;
    let mut report = Report {
        skipped_rooms: skipped_rooms(db).await?,
        ..Report::default()
    };
    let rooms: Vec<String> = text_rows(
        &mut tx,
        "SELECT DISTINCT room_id FROM current_state_events ORDER BY room_id",
        &[],
    )
    .await?
    .into_iter()
    .filter_map(|mut r| r.remove(0))
    .collect();
    let mut dir = DirectoryTruth::default();
    if what != What::Stats {
        dir.load_users(&mut tx, config, &app_services).await?;
    }
    for chunk in rooms.chunks(CHUNK) {
        let chunk = chunk.to_vec();
        let cur = current_state(&mut tx, &chunk).await?;
        let states = load_state(&mut tx, &chunk, STATE_TYPES).await?;
        for room in &chunk {
            if let Some(reason) = states.get(room).and_then(|s| s.unloadable.clone()) {
                report.unloadable_rooms.push(format!("{room}: {reason}"));
            }
        }
        if what != What::Directory {
            check_stats(&mut tx, config, &chunk, &cur, &states, &mut report).await?;
        }
        if what != What::Stats {
            dir.check_rooms(&mut tx, config, &chunk, &cur, &states, &mut report)
                .await?;
        }
    }
    if what != What::Directory {
        let orphans = text_rows(&mut tx, "SELECT room_id FROM room_stats_current WHERE room_id NOT IN (SELECT room_id FROM current_state_events)", &[]).await?;
        for r in orphans {
            report.add("extra_stats_row", || r[0].clone().unwrap_or_default());
        }
    }
    if what != What::Stats {
        dir.check_users(&mut tx, db, &mut report).await?;
        dir.check_orphan_rooms(&mut tx, &mut report).await?;
    }
    tx.rollback().await?;
    Ok(report)
}

/// A read transaction (deferred on SQLite, so it takes no write lock;
/// repeatable-read on PostgreSQL, so every query sees one snapshot).
async fn read_tx(db: &Db) -> Result<DbTx, sqlx::Error> {
    Ok(match db {
        Db::Sqlite(pool) => DbTx::Sqlite(pool.begin().await?),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            DbTx::Postgres(tx)
        }
    })
}

/// Runs a query whose columns are all text (callers CAST); `{LIST}` is
/// replaced by the engine's form of "one of `list`".
async fn text_rows(
    tx: &mut DbTx,
    sql: &str,
    list: &[String],
) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
    Ok(match tx {
        DbTx::Sqlite(tx) => {
            let sql = sql.replace("{LIST}", "(SELECT value FROM json_each(?1))");
            let mut q = sqlx::query(&sql);
            if sql.contains("?1") {
                q = q.bind(serde_json::to_string(list).expect("list"));
            }
            let rows = q.fetch_all(&mut **tx).await?;
            rows.iter()
                .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                .collect()
        }
        DbTx::Postgres(tx) => {
            let sql = sql.replace("IN {LIST}", "= ANY($1)");
            let mut q = sqlx::query(&sql);
            if sql.contains("$1") {
                q = q.bind(list.to_vec());
            }
            let rows = q.fetch_all(&mut **tx).await?;
            rows.iter()
                .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                .collect()
        }
    })
}

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

/// One current state row: type, state_key, membership (own or the event's),
/// per-room display name and avatar, stream ordering.
struct CurRow {
    ty: String,
    state_key: String,
    membership: Option<String>,
    display_name: Option<String>,
    avatar_url: Option<String>,
    stream: i64,
}

async fn current_state(
    tx: &mut DbTx,
    rooms: &[String],
) -> Result<HashMap<String, Vec<CurRow>>, sqlx::Error> {
    let rows = text_rows(
        tx,
        "SELECT c.room_id, c.type, c.state_key, c.membership, m.membership, m.display_name, m.avatar_url,
                CAST(c.event_stream_ordering AS TEXT), CAST(m.user_id AS TEXT), CAST(m.room_id AS TEXT)
         FROM current_state_events c LEFT JOIN room_memberships m ON m.event_id = c.event_id
         WHERE c.room_id IN {LIST}",
        rooms,
    )
    .await?;
    let mut out: HashMap<String, Vec<CurRow>> = HashMap::new();
    for r in rows {
        let [room, ty, sk, own, event_m, dn, av, stream, m_user, m_room] =
            <[Option<String>; 10]>::try_from(r).expect("ten columns");
        let room = room.unwrap_or_default();
        let sk = sk.unwrap_or_default();
        // A profile only from the membership row of this very member.
        let matches =
            m_user.as_deref() == Some(sk.as_str()) && m_room.as_deref() == Some(room.as_str());
        out.entry(room).or_default().push(CurRow {
            ty: ty.unwrap_or_default(),
            membership: own.or(event_m),
            display_name: dn.filter(|_| matches).filter(|s| !s.contains('\0')),
            avatar_url: av.filter(|_| matches).filter(|s| !s.contains('\0')),
            state_key: sk,
            stream: stream.and_then(|s| s.parse().ok()).unwrap_or(0),
        });
    }
    Ok(out)
}

fn server_of(user_id: &str) -> &str {
    user_id.split_once(':').map(|(_, s)| s).unwrap_or("")
}

fn string_at(state: Option<&RoomState>, ty: &str, key: &str) -> Option<String> {
    match state?.content.get(ty)?.get(key)? {
        Value::String(s) if !s.contains('\0') => Some(s.clone()),
        _ => None,
    }
}

/// The topic, written out again from the rules (not the job's function).
fn topic(content: Option<&Map<String, Value>>) -> Option<String> {
    let content = content?;
    let fallback = content.get("topic")?.as_str()?;
    let mut text = fallback;
    if let Some(Value::Array(entries)) = content.get("m.topic").and_then(|t| t.get("m.text")) {
        for e in entries {
            let mime_ok = match e.get("mimetype") {
                None | Some(Value::Null) => true,
                Some(Value::String(m)) => m.is_empty() || m == "text/plain",
                _ => false,
            };
            if let (true, Some(Value::String(body))) = (mime_ok, e.get("body")) {
                text = body;
                break;
            }
        }
    }
    if text.contains('\0') {
        None
    } else {
        Some(text.to_owned())
    }
}

async fn check_stats(
    tx: &mut DbTx,
    config: &Config,
    rooms: &[String],
    cur: &HashMap<String, Vec<CurRow>>,
    states: &BTreeMap<String, RoomState>,
    report: &mut Report,
) -> Result<(), sqlx::Error> {
    let current: HashMap<String, Vec<Option<String>>> = text_rows(
        tx,
        "SELECT room_id, CAST(current_state_events AS TEXT), CAST(joined_members AS TEXT), CAST(invited_members AS TEXT),
                CAST(left_members AS TEXT), CAST(banned_members AS TEXT), CAST(knocked_members AS TEXT),
                CAST(local_users_in_room AS TEXT), CAST(completed_delta_stream_id AS TEXT)
         FROM room_stats_current WHERE room_id IN {LIST}",
        rooms,
    )
    .await?
    .into_iter()
    .map(|mut r| (r.remove(0).unwrap_or_default(), r))
    .collect();
    let state_rows: HashMap<String, Vec<Option<String>>> = text_rows(
        tx,
        "SELECT room_id, join_rules, history_visibility, encryption, name, topic, avatar, canonical_alias,
                CASE WHEN is_federatable THEN 'true' WHEN NOT is_federatable THEN 'false' END, room_type
         FROM room_stats_state WHERE room_id IN {LIST}",
        rooms,
    )
    .await?
    .into_iter()
    .map(|mut r| (r.remove(0).unwrap_or_default(), r))
    .collect();
    for room in rooms {
        let state = states.get(room);
        if state.is_some_and(|s| s.unloadable.is_some()) {
            continue;
        }
        report.checked("stats_rooms", 1);
        let rows = &cur[room];
        let count = |m: &str| {
            rows.iter()
                .filter(|r| r.ty == "m.room.member" && r.membership.as_deref() == Some(m))
                .count()
        };
        let local = rows
            .iter()
            .filter(|r| {
                r.ty == "m.room.member"
                    && r.membership.as_deref() == Some("join")
                    && server_of(&r.state_key) == config.server_name
            })
            .count();
        let expected: Vec<String> = [
            rows.len(),
            count("join"),
            count("invite"),
            count("leave"),
            count("ban"),
            count("knock"),
            local,
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        let newest = rows.iter().map(|r| r.stream).max().unwrap_or(0);
        match current.get(room) {
            None => report.add("missing_stats_row", || room.clone()),
            Some(actual) => {
                let got: Vec<String> = actual[..7]
                    .iter()
                    .map(|v| v.clone().unwrap_or_else(|| "0".into()))
                    .collect();
                if got != expected {
                    report.add("wrong_counter", || {
                        format!(
                            "{room}: expected ({}), found ({})",
                            expected.join(", "),
                            got.join(", ")
                        )
                    });
                }
                let pos: i64 = actual[7]
                    .as_deref()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(i64::MIN);
                if pos < newest {
                    report.add("stale_stream_position", || {
                        format!("{room}: completed_delta_stream_id {pos} < {newest}")
                    });
                }
            }
        }
        let create = state.and_then(|s| s.content.get("m.room.create"));
        let federate = match create.and_then(|c| c.get("m.federate")) {
            None | Some(Value::Bool(true)) => "true",
            _ => "false",
        };
        let expected_state: Vec<Option<String>> = vec![
            string_at(state, "m.room.join_rules", "join_rule"),
            string_at(state, "m.room.history_visibility", "history_visibility"),
            string_at(state, "m.room.encryption", "algorithm"),
            string_at(state, "m.room.name", "name"),
            topic(state.and_then(|s| s.content.get("m.room.topic"))),
            string_at(state, "m.room.avatar", "url"),
            string_at(state, "m.room.canonical_alias", "alias"),
            Some(federate.to_owned()),
            string_at(state, "m.room.create", "type"),
        ];
        match state_rows.get(room) {
            None => report.add("missing_stats_row", || format!("{room} (room_stats_state)")),
            Some(actual) if actual != &expected_state => report.add("wrong_room_state", || {
                format!(
                    "{room}: expected {}, found {}",
                    shown_row(&expected_state),
                    shown_row(actual)
                )
            }),
            Some(_) => {}
        }
    }
    Ok(())
}

/// A directory profile: display name and avatar.
type Profile = (Option<String>, Option<String>);

/// A nullable column value as an example shows it: quoted text, or NULL.
fn shown(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "NULL".to_owned(),
    }
}

fn shown_row(values: &[Option<String>]) -> String {
    let shown: Vec<String> = values.iter().map(shown).collect();
    format!("({})", shown.join(", "))
}

fn shown_profile(p: &Profile) -> String {
    format!("display_name {}, avatar_url {}", shown(&p.0), shown(&p.1))
}

/// The expected directory, accumulated room by room.
#[derive(Default)]
struct DirectoryTruth {
    /// Local users that belong in the directory, with their global profile.
    locals: HashMap<String, Profile>,
    /// Remote users: (fewest events of a room seen in, the profiles seen in
    /// rooms of that size: any of them is right).
    remotes: HashMap<String, (usize, BTreeSet<Profile>)>,
    /// Rooms compared for public members and pairs.
    rooms_seen: HashSet<String>,
}

impl DirectoryTruth {
    async fn load_users(
        &mut self,
        tx: &mut DbTx,
        config: &Config,
        app_services: &AppServices,
    ) -> Result<(), sqlx::Error> {
        let rows = text_rows(
            tx,
            "SELECT u.name, CAST(u.deactivated AS TEXT), u.user_type FROM users u",
            &[],
        )
        .await?;
        let profiles: HashMap<String, (Option<String>, Option<String>)> = text_rows(
            tx,
            "SELECT full_user_id, displayname, avatar_url FROM profiles WHERE full_user_id IS NOT NULL",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| {
            let clean = |v: &Option<String>| v.clone().filter(|s| !s.contains('\0'));
            (r[0].clone().unwrap_or_default(), (clean(&r[1]), clean(&r[2])))
        })
        .collect();
        for r in rows {
            let Some(name) = r[0].clone() else { continue };
            let included = server_of(&name) == config.server_name
                && r[1].as_deref() == Some("0")
                && r[2].as_deref() != Some("support")
                && !app_services.is_excluded(&name);
            if included {
                let profile = profiles.get(&name).cloned().unwrap_or((None, None));
                self.locals.insert(name, profile);
            }
        }
        Ok(())
    }

    async fn check_rooms(
        &mut self,
        tx: &mut DbTx,
        config: &Config,
        rooms: &[String],
        cur: &HashMap<String, Vec<CurRow>>,
        states: &BTreeMap<String, RoomState>,
        report: &mut Report,
    ) -> Result<(), sqlx::Error> {
        let mut public_rows: HashMap<String, BTreeSet<String>> = HashMap::new();
        for r in text_rows(
            tx,
            "SELECT room_id, user_id FROM users_in_public_rooms WHERE room_id IN {LIST}",
            rooms,
        )
        .await?
        {
            public_rows
                .entry(r[0].clone().unwrap_or_default())
                .or_default()
                .insert(r[1].clone().unwrap_or_default());
        }
        for room in rooms {
            self.rooms_seen.insert(room.clone());
            let state = states.get(room);
            if state.is_some_and(|s| s.unloadable.is_some()) {
                continue;
            }
            report.checked("directory_rooms", 1);
            let rows = &cur[room];
            let joined: Vec<&CurRow> = rows
                .iter()
                .filter(|r| r.ty == "m.room.member" && r.membership.as_deref() == Some("join"))
                .collect();
            let hosted = joined
                .iter()
                .any(|r| server_of(&r.state_key) == config.server_name);
            let members: Vec<&CurRow> = if hosted {
                joined
                    .into_iter()
                    .filter(|r| {
                        server_of(&r.state_key) != config.server_name
                            || self.locals.contains_key(&r.state_key)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            for m in &members {
                if server_of(&m.state_key) != config.server_name {
                    let entry = self
                        .remotes
                        .entry(m.state_key.clone())
                        .or_insert((usize::MAX, BTreeSet::new()));
                    let profile = (m.display_name.clone(), m.avatar_url.clone());
                    if rows.len() < entry.0 {
                        *entry = (rows.len(), BTreeSet::from([profile]));
                    } else if rows.len() == entry.0 {
                        entry.1.insert(profile);
                    }
                }
            }
            let public = string_at(state, "m.room.join_rules", "join_rule").as_deref()
                == Some("public")
                || string_at(state, "m.room.history_visibility", "history_visibility").as_deref()
                    == Some("world_readable");
            let expected_public: BTreeSet<String> = if public {
                members.iter().map(|m| m.state_key.clone()).collect()
            } else {
                BTreeSet::new()
            };
            let actual_public = public_rows.remove(room).unwrap_or_default();
            for u in expected_public.difference(&actual_public) {
                report.add("missing_public_member", || format!("{u} in {room}"));
            }
            for u in actual_public.difference(&expected_public) {
                report.add("extra_public_member", || format!("{u} in {room}"));
            }
            // Pairs are counted, not materialised: a 5,000-member room has 25M.
            let member_set: HashSet<&str> = members.iter().map(|m| m.state_key.as_str()).collect();
            let locals = members
                .iter()
                .filter(|m| server_of(&m.state_key) == config.server_name)
                .count() as u64;
            let expected_pairs = if public || members.is_empty() {
                0
            } else {
                locals * (member_set.len() as u64 - 1)
            };
            let (valid, extra, example) =
                count_pairs(tx, room, &member_set, public, &config.server_name).await?;
            // Checked: every expected pair (present or not) and every extra one.
            report.checked("pairs", expected_pairs.max(valid) + extra);
            report.add_n("extra_pair", extra, example.unwrap_or_default());
            let missing = expected_pairs.saturating_sub(valid);
            let noun = if missing == 1 { "pair" } else { "pairs" };
            report.add_n(
                "missing_pair",
                missing,
                format!("{missing} {noun} of {room}"),
            );
        }
        Ok(())
    }

    async fn check_users(
        &mut self,
        tx: &mut DbTx,
        db: &Db,
        report: &mut Report,
    ) -> Result<(), sqlx::Error> {
        let mut expected: BTreeMap<String, BTreeSet<Profile>> = BTreeMap::new();
        for (u, p) in self.locals.drain() {
            expected.insert(u, BTreeSet::from([p]));
        }
        for (u, (_, ps)) in self.remotes.drain() {
            expected.insert(u, ps);
        }
        let search_sql = match db {
            Db::Sqlite(_) => "SELECT user_id, value FROM user_directory_search",
            Db::Postgres(_) => "SELECT user_id, CAST(vector AS TEXT) FROM user_directory_search",
        };
        let mut search: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for mut r in text_rows(tx, search_sql, &[]).await? {
            let u = r.remove(0).unwrap_or_default();
            search.entry(u).or_default().push(r.remove(0));
        }
        let actual = text_rows(
            tx,
            "SELECT user_id, display_name, avatar_url FROM user_directory",
            &[],
        )
        .await?;
        let mut seen = HashSet::new();
        for r in actual {
            let user = r[0].clone().unwrap_or_default();
            seen.insert(user.clone());
            report.checked("directory_users", 1);
            let profile = (r[1].clone(), r[2].clone());
            match expected.get(&user) {
                None => report.add("extra_user", || user.clone()),
                Some(ps) if !ps.contains(&profile) => report.add("wrong_profile", || {
                    let expected: Vec<String> = ps.iter().map(shown_profile).collect();
                    format!(
                        "{user}: expected {}, found {}",
                        expected.join(" or "),
                        shown_profile(&profile)
                    )
                }),
                Some(_) => {}
            }
            let values = search.remove(&user).unwrap_or_default();
            let want = match db {
                Db::Sqlite(_) => Some(match &profile.0 {
                    Some(dn) => format!("{user} {}", normalise(dn)),
                    None => user.clone(),
                }),
                Db::Postgres(_) => None,
            };
            let ok = values.len() == 1 && (want.is_none() || values[0] == want);
            if !ok {
                report.add("wrong_search_row", || format!("{user}: {values:?}"));
            }
        }
        for u in expected.keys().filter(|u| !seen.contains(*u)) {
            report.add("missing_user", || u.clone());
        }
        for u in search.keys() {
            report.add("wrong_search_row", || {
                format!("{u}: search row without directory row")
            });
        }
        let pos = text_rows(
            tx,
            "SELECT CAST(stream_id AS TEXT) FROM user_directory_stream_pos",
            &[],
        )
        .await?;
        let max = text_rows(
            tx,
            "SELECT CAST(MAX(stream_id) AS TEXT) FROM current_state_delta_stream",
            &[],
        )
        .await?;
        let pos: Option<i64> = pos
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|p| p.parse().ok());
        let max: i64 = max
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|p| p.parse().ok())
            .unwrap_or(-1);
        if pos.is_none_or(|p| p < max) {
            report.add("stale_stream_position", || {
                format!("user_directory_stream_pos {pos:?} < {max}")
            });
        }
        Ok(())
    }

    /// Rows for rooms that have no current state at all.
    async fn check_orphan_rooms(
        &mut self,
        tx: &mut DbTx,
        report: &mut Report,
    ) -> Result<(), sqlx::Error> {
        for (table, kind) in [
            ("users_in_public_rooms", "extra_public_member"),
            ("users_who_share_private_rooms", "extra_pair"),
        ] {
            let sql = format!("SELECT room_id, CAST(COUNT(*) AS TEXT) FROM {table} WHERE room_id NOT IN (SELECT room_id FROM current_state_events) GROUP BY room_id");
            for r in text_rows(tx, &sql, &[]).await? {
                let n = r[1].as_deref().and_then(|n| n.parse().ok()).unwrap_or(0);
                report.add_n(
                    kind,
                    n,
                    format!("{n} rows of {}", r[0].clone().unwrap_or_default()),
                );
            }
        }
        Ok(())
    }
}

/// Streams a room's pairs: how many are right, how many are not (with one).
async fn count_pairs(
    tx: &mut DbTx,
    room: &str,
    members: &HashSet<&str>,
    public: bool,
    server_name: &str,
) -> Result<(u64, u64, Option<String>), sqlx::Error> {
    use futures::TryStreamExt;
    let (mut valid, mut extra, mut example) = (0, 0, None);
    let mut judge = |l: String, m: String| {
        let ok = !public
            && l != m
            && server_of(&l) == server_name
            && members.contains(l.as_str())
            && members.contains(m.as_str());
        if ok {
            valid += 1;
        } else {
            extra += 1;
            example.get_or_insert_with(|| format!("({l}, {m}) in {room}"));
        }
    };
    match tx {
        DbTx::Sqlite(tx) => {
            let mut rows = sqlx::query("SELECT user_id, other_user_id FROM users_who_share_private_rooms WHERE room_id = ?1").bind(room).fetch(&mut **tx);
            while let Some(r) = rows.try_next().await? {
                judge(r.get(0), r.get(1));
            }
        }
        DbTx::Postgres(tx) => {
            let mut rows = sqlx::query("SELECT user_id, other_user_id FROM users_who_share_private_rooms WHERE room_id = $1").bind(room).fetch(&mut **tx);
            while let Some(r) = rows.try_next().await? {
                judge(r.get(0), r.get(1));
            }
        }
    }
    Ok((valid, extra, example))
}
