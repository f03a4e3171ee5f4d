//! Drift: change a world the way a homeserver would (new events, current
//! state, memberships, profiles, users) WITHOUT touching the derived tables
//! (`room_stats_*`, `user_directory*`, `users_in_public_rooms`,
//! `users_who_share_private_rooms`), so they go stale in a named way.
//! Targets are chosen deterministically from the seed.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};
use updraft_engine::{Db, DbTx};

use crate::chain::{is_local, Appender, Current, RoomChain};
use crate::error::WorkloadError;
use crate::event::Signer;
use crate::names;
use crate::rows::{Batch, Table, Val};
use crate::world::member_content;
use crate::writer;

/// The ways a world can drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// A local user changes their global display name (profile + a new join
    /// event in every room they are in).
    ProfileChange,
    /// A local user is deactivated: flag set, password and tokens gone, parted from every room.
    Deactivation,
    /// A public room becomes invite-only (and world_readable history becomes shared).
    RoomBecamePrivate,
    /// A non-public room becomes `join_rule: public`.
    RoomBecamePublic,
    /// A local user joins a public room they were not in.
    Join,
    /// A local member leaves a room.
    Leave,
    /// A new local user registers (users + profiles rows, no rooms).
    NewUser,
    /// A remote user's new display name arrives over federation in every room they are in.
    RemoteProfileChange,
    /// A joined member is banned by the room's creator.
    Ban,
    /// A local user changes their global avatar (profile + new join events).
    AvatarChange,
}

impl DriftKind {
    pub const ALL: [DriftKind; 10] = [
        DriftKind::ProfileChange,
        DriftKind::Deactivation,
        DriftKind::RoomBecamePrivate,
        DriftKind::RoomBecamePublic,
        DriftKind::Join,
        DriftKind::Leave,
        DriftKind::NewUser,
        DriftKind::RemoteProfileChange,
        DriftKind::Ban,
        DriftKind::AvatarChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::ProfileChange => "profile-change",
            DriftKind::Deactivation => "deactivation",
            DriftKind::RoomBecamePrivate => "room-became-private",
            DriftKind::RoomBecamePublic => "room-became-public",
            DriftKind::Join => "join",
            DriftKind::Leave => "leave",
            DriftKind::NewUser => "new-user",
            DriftKind::RemoteProfileChange => "remote-profile-change",
            DriftKind::Ban => "ban",
            DriftKind::AvatarChange => "avatar-change",
        }
    }
}

impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DriftKind {
    type Err = WorkloadError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriftKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = DriftKind::ALL.iter().map(|k| k.as_str()).collect();
                WorkloadError::UnknownDriftKind(s.to_owned(), known.join(", "))
            })
    }
}

/// What a drift changed, printed as JSON by `updraft drift`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DriftReport {
    pub kind: String,
    /// Users whose account, profile or membership changed.
    pub users: Vec<String>,
    /// Rooms that got new events.
    pub rooms: Vec<String>,
    /// The new events, in stream order.
    pub events: Vec<String>,
    /// For profile changes: the new display name or avatar per user, same order as `users`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_values: Vec<String>,
}

/// Applies `count` changes of `kind` to the world on `db` (fewer if the world
/// has fewer candidates; an error if it has none). One transaction.
pub async fn apply(
    db: &Db,
    server_name: &str,
    kind: DriftKind,
    count: u64,
    seed: u64,
) -> Result<DriftReport, WorkloadError> {
    let signer = Signer::from_seed(seed);
    let mut tx = db.begin().await?;
    let (max_stream, max_ts) = stream_and_clock(&mut tx).await?;
    // The world's position is part of the seed: the same drift on the same
    // world is the same change, and a second drift is another one.
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ 0x0044_5249_4654 ^ crate::spread::mix(max_stream as u64));
    let mut d = Drift {
        kind,
        server_name,
        ap: Appender {
            signer: &signer,
            server_name,
            next_stream: max_stream + 1,
            now_ms: max_ts + 1000,
        },
        batch: Batch::default(),
        chains: Vec::new(),
        report: DriftReport {
            kind: kind.to_string(),
            ..DriftReport::default()
        },
    };
    let result = d.run(&mut tx, &mut rng, count).await;
    if let Err(e) = result {
        tx.rollback().await?;
        return Err(e);
    }
    d.flush(&mut tx).await?;
    tx.commit().await?;
    if let Db::Postgres(pool) = db {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('events_stream_seq')::text")
                .fetch_one(pool)
                .await?;
        if exists.is_some() && !d.report.events.is_empty() {
            sqlx::query(
                "SELECT setval('events_stream_seq', (SELECT MAX(stream_ordering) FROM events))",
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(d.report)
}

struct Drift<'a> {
    kind: DriftKind,
    server_name: &'a str,
    ap: Appender<'a>,
    batch: Batch,
    chains: Vec<RoomChain>,
    report: DriftReport,
}

impl Drift<'_> {
    fn fail(&self, reason: &str) -> WorkloadError {
        WorkloadError::Drift {
            kind: self.kind.to_string(),
            reason: reason.to_owned(),
        }
    }

    async fn run(
        &mut self,
        tx: &mut DbTx,
        rng: &mut ChaCha8Rng,
        count: u64,
    ) -> Result<(), WorkloadError> {
        let server = self.server_name.to_owned();
        let local_like = format!("%:{server}");
        match self.kind {
            DriftKind::ProfileChange | DriftKind::AvatarChange => {
                let users = pick(
                    tx,
                    "SELECT p.full_user_id FROM profiles p JOIN users u ON u.name = p.full_user_id \
                     WHERE u.deactivated = 0 ORDER BY 1",
                    None,
                    count,
                    rng,
                )
                .await?;
                if users.is_empty() {
                    return Err(self.fail("no local user with a profile"));
                }
                for user in users {
                    let value = if self.kind == DriftKind::ProfileChange {
                        format!("{} (renamed)", names::plain(rng))
                    } else {
                        format!("mxc://{server}/{}", names::alnum(rng, 24))
                    };
                    let column = if self.kind == DriftKind::ProfileChange {
                        "displayname"
                    } else {
                        "avatar_url"
                    };
                    exec(
                        tx,
                        &format!("UPDATE profiles SET {column} = ? WHERE full_user_id = ?"),
                        &[value.as_str(), &user],
                    )
                    .await?;
                    let (name, avatar) = profile(tx, &user).await?;
                    // Synapse re-sends the member event in every room the user is joined to.
                    for room in rooms_of(tx, &user, "join").await? {
                        let content = member_content("join", &name, &avatar);
                        self.append(tx, &room, &user, "m.room.member", Some(&user), content)
                            .await?;
                    }
                    self.report.users.push(user);
                    self.report.new_values.push(value);
                }
            }
            DriftKind::Deactivation => {
                let users = pick(
                    tx,
                    "SELECT name FROM users WHERE deactivated = 0 AND is_guest = 0 \
                     AND user_type IS NULL AND appservice_id IS NULL ORDER BY 1",
                    None,
                    count,
                    rng,
                )
                .await?;
                if users.is_empty() {
                    return Err(self.fail("no active local user"));
                }
                for user in users {
                    exec(
                        tx,
                        "UPDATE users SET deactivated = 1, password_hash = NULL WHERE name = ?",
                        &[&user],
                    )
                    .await?;
                    exec(tx, "DELETE FROM access_tokens WHERE user_id = ?", &[&user]).await?;
                    let mut rooms = rooms_of(tx, &user, "join").await?;
                    rooms.extend(rooms_of(tx, &user, "invite").await?);
                    rooms.extend(rooms_of(tx, &user, "knock").await?);
                    rooms.sort();
                    for room in rooms {
                        self.append(
                            tx,
                            &room,
                            &user,
                            "m.room.member",
                            Some(&user),
                            json!({"membership": "leave"}),
                        )
                        .await?;
                    }
                    self.report.users.push(user);
                }
            }
            DriftKind::RoomBecamePrivate | DriftKind::RoomBecamePublic => {
                let public = self.kind == DriftKind::RoomBecamePrivate;
                let sql = format!(
                    "SELECT c.room_id FROM current_state_events c JOIN event_json e ON e.event_id = c.event_id \
                     WHERE c.type = 'm.room.join_rules' AND c.state_key = '' AND {} ORDER BY 1",
                    if public { "e.json LIKE '%\"join_rule\":\"public\"%'" } else { "e.json NOT LIKE '%\"join_rule\":\"public\"%'" }
                );
                let rooms = pick(tx, &sql, None, count, rng).await?;
                if rooms.is_empty() {
                    return Err(self.fail(if public {
                        "no public room"
                    } else {
                        "no non-public room"
                    }));
                }
                for room in rooms {
                    let sender = self.room_admin(tx, &room).await?;
                    let rule = if public { "invite" } else { "public" };
                    self.append(
                        tx,
                        &room,
                        &sender,
                        "m.room.join_rules",
                        Some(""),
                        json!({"join_rule": rule}),
                    )
                    .await?;
                    if public {
                        let hv = self
                            .chain(tx, &room)
                            .await?
                            .current("m.room.history_visibility", "")
                            .cloned();
                        if let Some(hv) = hv {
                            let content = event_content(tx, &hv.event_id).await?;
                            if content.get("history_visibility").and_then(Value::as_str)
                                == Some("world_readable")
                            {
                                self.append(
                                    tx,
                                    &room,
                                    &sender,
                                    "m.room.history_visibility",
                                    Some(""),
                                    json!({"history_visibility": "shared"}),
                                )
                                .await?;
                            }
                        }
                    }
                    self.report.rooms.push(room);
                }
            }
            DriftKind::Join => {
                let rooms = pick(
                    tx,
                    "SELECT c.room_id FROM current_state_events c JOIN event_json e ON e.event_id = c.event_id \
                     WHERE c.type = 'm.room.join_rules' AND c.state_key = '' \
                     AND e.json LIKE '%\"join_rule\":\"public\"%' ORDER BY 1",
                    None,
                    count,
                    rng,
                )
                .await?;
                if rooms.is_empty() {
                    return Err(self.fail("no public room to join"));
                }
                let active = "SELECT name FROM users WHERE deactivated = 0 AND is_guest = 0 AND user_type IS NULL ORDER BY 1";
                for room in rooms {
                    // A local user who is not joined there yet; a few tries, then give up on this room.
                    let mut chosen = None;
                    for _ in 0..20 {
                        let Some(user) = pick(tx, active, None, 1, rng).await?.pop() else {
                            break;
                        };
                        let chain = self.chain(tx, &room).await?;
                        if !matches!(chain.membership(&user), Some("join" | "ban")) {
                            chosen = Some(user);
                            break;
                        }
                    }
                    let Some(user) = chosen else { continue };
                    let (name, avatar) = profile(tx, &user).await?;
                    self.append(
                        tx,
                        &room,
                        &user,
                        "m.room.member",
                        Some(&user),
                        member_content("join", &name, &avatar),
                    )
                    .await?;
                    self.report.users.push(user);
                    self.report.rooms.push(room);
                }
                if self.report.users.is_empty() {
                    return Err(self.fail("every public room already has every candidate"));
                }
            }
            DriftKind::Leave | DriftKind::Ban => {
                let pairs = pick_pairs(
                    tx,
                    if self.kind == DriftKind::Leave {
                        "SELECT room_id, user_id FROM local_current_membership WHERE membership = 'join' ORDER BY 1, 2"
                    } else {
                        "SELECT c.room_id, c.state_key FROM current_state_events c JOIN rooms r ON r.room_id = c.room_id \
                         WHERE c.type = 'm.room.member' AND c.membership = 'join' AND c.state_key <> r.creator \
                         AND EXISTS (SELECT 1 FROM current_state_events o WHERE o.room_id = c.room_id \
                           AND o.type = 'm.room.member' AND o.state_key = r.creator AND o.membership = 'join') \
                         ORDER BY 1, 2"
                    },
                    count,
                    rng,
                )
                .await?;
                if pairs.is_empty() {
                    return Err(self.fail("no joined member to remove"));
                }
                for (room, user) in pairs {
                    if self.kind == DriftKind::Leave {
                        self.append(
                            tx,
                            &room,
                            &user,
                            "m.room.member",
                            Some(&user),
                            json!({"membership": "leave"}),
                        )
                        .await?;
                    } else {
                        let creator = self.room_admin(tx, &room).await?;
                        self.append(
                            tx,
                            &room,
                            &creator,
                            "m.room.member",
                            Some(&user),
                            json!({"membership": "ban", "reason": "drift"}),
                        )
                        .await?;
                    }
                    self.report.users.push(user);
                    self.report.rooms.push(room);
                }
            }
            DriftKind::NewUser => {
                let ts = self.ap.now_ms / 1000;
                for _ in 0..count.max(1) {
                    let localpart = format!(
                        "{}.new{}",
                        names::localpart_stem(rng),
                        rng.gen_range(0..1_000_000_000u64)
                    );
                    let user = format!("@{localpart}:{server}");
                    let name = names::plain(rng);
                    let row = vec![
                        user.as_str().into(),
                        Val::Null,
                        ts.into(),
                        Val::Int(0),
                        Val::Int(0),
                        Val::Null,
                        Val::Null,
                        Val::Int(0),
                        false.into(),
                        true.into(),
                        false.into(),
                        false.into(),
                    ];
                    self.batch.push(Table::Users, row);
                    let row = vec![
                        localpart.as_str().into(),
                        name.as_str().into(),
                        Val::Null,
                        user.as_str().into(),
                    ];
                    self.batch.push(Table::Profiles, row);
                    self.report.users.push(user);
                    self.report.new_values.push(name);
                }
            }
            DriftKind::RemoteProfileChange => {
                let users = pick(
                    tx,
                    "SELECT DISTINCT state_key FROM current_state_events \
                     WHERE type = 'm.room.member' AND membership = 'join' AND state_key NOT LIKE ? ORDER BY 1",
                    Some(&local_like),
                    count,
                    rng,
                )
                .await?;
                if users.is_empty() {
                    return Err(self.fail("no joined remote user"));
                }
                for user in users {
                    let name = format!("{} (remote, renamed)", names::plain(rng));
                    for room in rooms_of(tx, &user, "join").await? {
                        let avatar = current_avatar(tx, &room, &user).await?;
                        self.append(
                            tx,
                            &room,
                            &user,
                            "m.room.member",
                            Some(&user),
                            member_content("join", &Some(name.clone()), &avatar),
                        )
                        .await?;
                    }
                    self.report.users.push(user);
                    self.report.new_values.push(name);
                }
            }
        }
        let mut rooms: Vec<String> = self.report.rooms.clone();
        for c in &self.chains {
            if !c.changed.is_empty() && !rooms.contains(&c.room_id) {
                rooms.push(c.room_id.clone());
            }
        }
        self.report.rooms = rooms;
        Ok(())
    }

    /// The chain of a room, loaded once per drift.
    async fn chain(&mut self, tx: &mut DbTx, room: &str) -> Result<&mut RoomChain, WorkloadError> {
        if let Some(i) = self.chains.iter().position(|c| c.room_id == room) {
            return Ok(&mut self.chains[i]);
        }
        let chain = load_chain(tx, room).await?;
        self.chains.push(chain);
        Ok(self.chains.last_mut().expect("just pushed"))
    }

    async fn append(
        &mut self,
        tx: &mut DbTx,
        room: &str,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<(), WorkloadError> {
        self.chain(tx, room).await?;
        let i = self
            .chains
            .iter()
            .position(|c| c.room_id == room)
            .expect("loaded");
        let id = self.chains[i].append(
            &mut self.ap,
            &mut self.batch,
            sender,
            kind,
            state_key,
            content,
        )?;
        self.report.events.push(id);
        Ok(())
    }

    /// Who changes room settings: the creator if still joined, else a joined
    /// member with the highest power level (a joined local member failing that).
    async fn room_admin(&mut self, tx: &mut DbTx, room: &str) -> Result<String, WorkloadError> {
        let creator: Option<String> =
            scalar(tx, "SELECT creator FROM rooms WHERE room_id = ?", room).await?;
        let chain = self.chain(tx, room).await?;
        if let Some(c) = creator.filter(|c| chain.membership(c) == Some("join")) {
            return Ok(c);
        }
        chain
            .state
            .iter()
            .find(|((t, _), c)| t == "m.room.member" && c.membership.as_deref() == Some("join"))
            .map(|((_, sk), _)| sk.clone())
            .ok_or_else(|| self.fail(&format!("room {room} has no joined member to act")))
    }

    /// Replaces the current state of every changed key and writes the new rows.
    async fn flush(&mut self, tx: &mut DbTx) -> Result<(), WorkloadError> {
        for chain in &self.chains {
            for (kind, sk) in &chain.changed {
                exec(tx, "DELETE FROM current_state_events WHERE room_id = ? AND type = ? AND state_key = ?", &[&chain.room_id, kind, sk]).await?;
                if kind == "m.room.member" && is_local(sk, self.server_name) {
                    exec(
                        tx,
                        "DELETE FROM local_current_membership WHERE room_id = ? AND user_id = ?",
                        &[&chain.room_id, sk],
                    )
                    .await?;
                }
            }
            chain.current_state_rows(&mut self.batch, self.server_name, chain.changed.iter());
        }
        writer::write_tx(tx, &self.batch).await
    }
}

/// Highest stream ordering and origin_server_ts so far (new events come after both).
async fn stream_and_clock(tx: &mut DbTx) -> Result<(i64, i64), WorkloadError> {
    let sql =
        "SELECT COALESCE(MAX(stream_ordering), 0), COALESCE(MAX(origin_server_ts), 0) FROM events";
    let (a, b): (i64, i64) = match tx {
        DbTx::Sqlite(c) => sqlx::query_as(sql).fetch_one(&mut **c).await?,
        DbTx::Postgres(c) => sqlx::query_as(sql).fetch_one(&mut **c).await?,
    };
    Ok((a, b))
}

/// Rewrites `?` placeholders as `$1, $2, ...` for PostgreSQL.
fn pg(sql: &str) -> String {
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

async fn exec(tx: &mut DbTx, sql: &str, args: &[&str]) -> Result<u64, WorkloadError> {
    Ok(match tx {
        DbTx::Sqlite(c) => {
            let mut q = sqlx::query(sql);
            for a in args {
                q = q.bind(*a);
            }
            q.execute(&mut **c).await?.rows_affected()
        }
        DbTx::Postgres(c) => {
            let sql = pg(sql);
            let mut q = sqlx::query(&sql);
            for a in args {
                q = q.bind(*a);
            }
            q.execute(&mut **c).await?.rows_affected()
        }
    })
}

async fn scalar(tx: &mut DbTx, sql: &str, arg: &str) -> Result<Option<String>, WorkloadError> {
    Ok(match tx {
        DbTx::Sqlite(c) => sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_optional(&mut **c)
            .await?
            .flatten(),
        DbTx::Postgres(c) => sqlx::query_scalar(&pg(sql))
            .bind(arg)
            .fetch_optional(&mut **c)
            .await?
            .flatten(),
    })
}

async fn strings(
    tx: &mut DbTx,
    sql: &str,
    arg: Option<&str>,
) -> Result<Vec<String>, WorkloadError> {
    Ok(match tx {
        DbTx::Sqlite(c) => {
            let mut q = sqlx::query_scalar(sql);
            if let Some(a) = arg {
                q = q.bind(a);
            }
            q.fetch_all(&mut **c).await?
        }
        DbTx::Postgres(c) => {
            let sql = pg(sql);
            let mut q = sqlx::query_scalar(&sql);
            if let Some(a) = arg {
                q = q.bind(a);
            }
            q.fetch_all(&mut **c).await?
        }
    })
}

/// `count` distinct values of a one-column query, chosen by the rng, in query order.
async fn pick(
    tx: &mut DbTx,
    sql: &str,
    arg: Option<&str>,
    count: u64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<String>, WorkloadError> {
    let all = strings(tx, sql, arg).await?;
    Ok(sample(all, count, rng))
}

async fn pick_pairs(
    tx: &mut DbTx,
    sql: &str,
    count: u64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<(String, String)>, WorkloadError> {
    let all: Vec<(String, String)> = match tx {
        DbTx::Sqlite(c) => sqlx::query_as(sql).fetch_all(&mut **c).await?,
        DbTx::Postgres(c) => sqlx::query_as(sql).fetch_all(&mut **c).await?,
    };
    Ok(sample(all, count, rng))
}

fn sample<T>(all: Vec<T>, count: u64, rng: &mut ChaCha8Rng) -> Vec<T> {
    let n = all.len();
    let k = (count as usize).min(n);
    let chosen: BTreeSet<usize> = rand::seq::index::sample(rng, n, k).into_iter().collect();
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| chosen.contains(i))
        .map(|(_, v)| v)
        .collect()
}

/// Rooms where the user's current membership is `membership`, sorted.
async fn rooms_of(
    tx: &mut DbTx,
    user: &str,
    membership: &str,
) -> Result<Vec<String>, WorkloadError> {
    let sql = format!(
        "SELECT room_id FROM current_state_events WHERE type = 'm.room.member' AND state_key = ? \
         AND membership = '{membership}' ORDER BY room_id"
    );
    strings(tx, &sql, Some(user)).await
}

async fn profile(
    tx: &mut DbTx,
    user: &str,
) -> Result<(Option<String>, Option<String>), WorkloadError> {
    let sql = "SELECT displayname, avatar_url FROM profiles WHERE full_user_id = ?";
    let row: Option<(Option<String>, Option<String>)> = match tx {
        DbTx::Sqlite(c) => {
            sqlx::query_as(sql)
                .bind(user)
                .fetch_optional(&mut **c)
                .await?
        }
        DbTx::Postgres(c) => {
            sqlx::query_as(&pg(sql))
                .bind(user)
                .fetch_optional(&mut **c)
                .await?
        }
    };
    Ok(row.unwrap_or((None, None)))
}

async fn current_avatar(
    tx: &mut DbTx,
    room: &str,
    user: &str,
) -> Result<Option<String>, WorkloadError> {
    let sql = "SELECT m.avatar_url FROM current_state_events c JOIN room_memberships m ON m.event_id = c.event_id \
               WHERE c.room_id = ? AND c.type = 'm.room.member' AND c.state_key = ?";
    let v: Option<Option<String>> = match tx {
        DbTx::Sqlite(c) => {
            sqlx::query_scalar(sql)
                .bind(room)
                .bind(user)
                .fetch_optional(&mut **c)
                .await?
        }
        DbTx::Postgres(c) => {
            sqlx::query_scalar(&pg(sql))
                .bind(room)
                .bind(user)
                .fetch_optional(&mut **c)
                .await?
        }
    };
    Ok(v.flatten())
}

async fn event_content(tx: &mut DbTx, event_id: &str) -> Result<Value, WorkloadError> {
    let json = scalar(
        tx,
        "SELECT json FROM event_json WHERE event_id = ?",
        event_id,
    )
    .await?;
    Ok(json
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .and_then(|v| v.get("content").cloned())
        .unwrap_or(Value::Null))
}

/// A current_state_events row: type, state_key, event_id, stream ordering, membership.
type StateRow = (String, String, String, Option<i64>, Option<String>);

/// A room's chain as stored: its current state and its latest event.
pub async fn load_chain(tx: &mut DbTx, room: &str) -> Result<RoomChain, WorkloadError> {
    let state_sql = "SELECT type, state_key, event_id, event_stream_ordering, membership \
                     FROM current_state_events WHERE room_id = ?";
    let last_sql = "SELECT event_id, depth FROM events WHERE room_id = ? \
                    ORDER BY topological_ordering DESC, stream_ordering DESC LIMIT 1";
    let (rows, last): (Vec<StateRow>, Option<(String, i64)>) = match tx {
        DbTx::Sqlite(c) => (
            sqlx::query_as(state_sql)
                .bind(room)
                .fetch_all(&mut **c)
                .await?,
            sqlx::query_as(last_sql)
                .bind(room)
                .fetch_optional(&mut **c)
                .await?,
        ),
        DbTx::Postgres(c) => (
            sqlx::query_as(&pg(state_sql))
                .bind(room)
                .fetch_all(&mut **c)
                .await?,
            sqlx::query_as(&pg(last_sql))
                .bind(room)
                .fetch_optional(&mut **c)
                .await?,
        ),
    };
    let mut chain = RoomChain::new(room.to_owned());
    for (t, sk, id, so, m) in rows {
        chain.state.insert(
            (t, sk),
            Current {
                event_id: id,
                stream_ordering: so.unwrap_or(0),
                membership: m,
            },
        );
    }
    if let Some((id, depth)) = last {
        chain.last_event = Some(id);
        chain.depth = depth;
    }
    Ok(chain)
}
