//! The world generator: users, then rooms one at a time, streamed out as
//! batches of rows. Deterministic: everything derives from (shape, seed).

use std::collections::{HashSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::chain::{Appender, RoomChain};
use crate::error::WorkloadError;
use crate::event::Signer;
use crate::names;
use crate::rows::{Batch, Table, Val};
use crate::shape::Shape;
use crate::spread::{mix, Spread};
use crate::users::{LocalUser, Population, RemoteUser, UserKind};

/// Rows per batch handed to the writer (one transaction each).
pub const BATCH_ROWS: usize = 50_000;

/// Where this world starts in a database that may already hold others.
#[derive(Clone, Copy, Debug, Default)]
pub struct Start {
    /// First stream ordering to use (max existing + 1).
    pub stream: i64,
    /// First access token id (max existing + 1).
    pub token_id: i64,
    /// Users already in the database; part of every new localpart.
    pub user_offset: u64,
}

/// An access token the world hands out.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Token {
    pub user_id: String,
    pub token: String,
    /// `admin`, `user` or `guest`.
    pub role: &'static str,
}

/// What the generator reports besides its rows.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub tokens: Vec<Token>,
    pub rooms: u64,
    pub events: u64,
    pub last_stream: i64,
}

/// Per-room features, each an exact share of the rooms.
struct RoomFeatures {
    dm: Spread,
    join_rule: Spread,
    public_count: u64,
    knock_count: u64,
    published: Spread,
    world_readable: Spread,
    encrypted: Spread,
    non_federatable: Spread,
    space: Spread,
    abandoned: Spread,
    named: Spread,
    topic: Spread,
    avatar: Spread,
    renamed: Spread,
    guest_access: Spread,
    remote_created: Spread,
    odd: Spread,
}

fn quota(f: f64, n: u64) -> u64 {
    Spread::new(f, n, 0).count()
}

pub struct World {
    shape: Shape,
    pop: Population,
    signer: Signer,
    start: Start,
    features: RoomFeatures,
}

/// The odd state contents (see [`oddity`]), handed out to odd rooms in turn.
const ODDITIES: usize = 10;
const ODD_JOIN_RULE: usize = 2;
const ODD_HISTORY: usize = 7;

/// What one room's generation leaves for the next.
#[derive(Default)]
struct Carry {
    /// The latest rooms, children of the next space.
    recent: Vec<String>,
    /// Oddities not handed out yet.
    odd: VecDeque<usize>,
}

impl World {
    pub fn new(shape: &Shape, seed: u64, start: Start) -> World {
        let n = shape.rooms.count;
        let r = &shape.rooms;
        let salt = |k: u64| mix(seed ^ mix(0x524f_4f4d + k));
        let dm = Spread::new(r.dm_fraction, n, salt(1));
        // Features of group rooms are spread over the group rooms alone, so a
        // DM never swallows the only space, knock room or odd room.
        let g = n - dm.count();
        World {
            pop: Population::new(shape, seed, start.user_offset),
            signer: Signer::from_seed(seed),
            start,
            features: RoomFeatures {
                dm,
                join_rule: Spread::new(1.0, g, salt(2)),
                public_count: quota(r.public, g),
                knock_count: quota(r.knock, g),
                published: Spread::new(r.published * r.public, g, salt(3)),
                world_readable: Spread::new(r.world_readable, g, salt(4)),
                encrypted: Spread::new(r.encrypted, n, salt(5)),
                non_federatable: Spread::new(r.non_federatable, g, salt(6)),
                space: Spread::new(r.spaces, g, salt(7)),
                abandoned: Spread::new(r.abandoned, n, salt(8)),
                named: Spread::new(r.named, g, salt(9)),
                topic: Spread::new(r.topic, g, salt(10)),
                avatar: Spread::new(r.avatar, g, salt(11)),
                renamed: Spread::new(r.renamed, g, salt(12)),
                guest_access: Spread::new(r.guest_access, g, salt(13)),
                remote_created: Spread::new(r.remote_created, g, salt(14)),
                odd: Spread::new(shape.oddities.odd_state, g, salt(15)),
            },
            shape: shape.clone(),
        }
    }

    pub fn population(&self) -> &Population {
        &self.pop
    }

    /// Generates the world, handing each full batch to `emit`; `progress` is
    /// called with (users done, rooms done).
    pub fn generate(
        &self,
        emit: &mut dyn FnMut(Batch) -> Result<(), WorkloadError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Summary, WorkloadError> {
        let mut summary = Summary::default();
        let mut batch = Batch::default();
        self.users(&mut batch, &mut summary, emit, progress)?;
        let mut ap = Appender {
            signer: &self.signer,
            server_name: &self.pop.server_name,
            next_stream: self.start.stream,
            now_ms: self.pop.epoch_ms,
        };
        let mut carry = Carry::default();
        for r in 0..self.shape.rooms.count {
            let room_id = self.room(r, &mut ap, &mut batch, &mut carry)?;
            carry.recent.push(room_id);
            if carry.recent.len() > 6 {
                carry.recent.remove(0);
            }
            summary.rooms += 1;
            if batch.len() >= BATCH_ROWS {
                emit(std::mem::take(&mut batch))?;
                progress(self.pop.local, r + 1);
            }
        }
        if !batch.is_empty() {
            emit(batch)?;
        }
        progress(self.pop.local, self.shape.rooms.count);
        summary.events = (ap.next_stream - self.start.stream) as u64;
        summary.last_stream = ap.next_stream - 1;
        Ok(summary)
    }

    fn users(
        &self,
        batch: &mut Batch,
        summary: &mut Summary,
        emit: &mut dyn FnMut(Batch) -> Result<(), WorkloadError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), WorkloadError> {
        let app = self.pop.appservice();
        let mut token_id = self.start.token_id;
        for i in 0..self.pop.local {
            let u = self.pop.local_user(i);
            let b = |x: bool| Val::Int(x as i64);
            batch.push(
                Table::Users,
                vec![
                    u.user_id.as_str().into(),
                    Val::Null,
                    u.creation_ts.into(),
                    b(u.kind == UserKind::Admin),
                    b(u.kind == UserKind::Guest),
                    (u.kind == UserKind::AppService)
                        .then(|| app.id.clone())
                        .into(),
                    (u.kind == UserKind::Support).then_some("support").into(),
                    b(u.kind == UserKind::Deactivated),
                    false.into(),
                    true.into(),
                    (u.kind == UserKind::Locked).into(),
                    false.into(),
                ],
            );
            if u.has_profile {
                batch.push(
                    Table::Profiles,
                    vec![
                        u.localpart.as_str().into(),
                        u.display_name.clone().into(),
                        u.avatar_url.clone().into(),
                        u.user_id.as_str().into(),
                    ],
                );
            }
            let role = match u.kind {
                UserKind::Admin => "admin",
                UserKind::Guest => "guest",
                UserKind::Normal => "user",
                _ => "",
            };
            if !role.is_empty() && !summary.tokens.iter().any(|t| t.role == role) {
                let mut rng = ChaCha8Rng::seed_from_u64(self.pop.seed ^ mix(token_id as u64));
                let token = format!(
                    "syt_{}_{}_{}",
                    base64_url(&u.localpart),
                    names::alnum(&mut rng, 20),
                    names::alnum(&mut rng, 6)
                );
                batch.push(
                    Table::AccessTokens,
                    vec![
                        token_id.into(),
                        u.user_id.as_str().into(),
                        names::letters(&mut rng, 10).to_uppercase().into(),
                        token.as_str().into(),
                    ],
                );
                summary.tokens.push(Token {
                    user_id: u.user_id.clone(),
                    token,
                    role,
                });
                token_id += 1;
            }
            if batch.len() >= BATCH_ROWS {
                emit(std::mem::take(batch))?;
                progress(i + 1, 0);
            }
        }
        Ok(())
    }

    /// A local user who can create rooms and invite (not deactivated, guest or support).
    fn active_local(&self, rng: &mut ChaCha8Rng) -> LocalUser {
        loop {
            let u = self.pop.local_user(rng.gen_range(0..self.pop.local));
            if matches!(
                u.kind,
                UserKind::Admin | UserKind::Normal | UserKind::Locked | UserKind::AppService
            ) {
                return u;
            }
        }
    }

    /// The heavy-tailed size of a non-DM room.
    fn room_size(&self, rng: &mut ChaCha8Rng, federated: bool, public: bool) -> u64 {
        let r = &self.shape.rooms;
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        let size = (r.min_size as f64 * u.powf(-1.0 / r.size_alpha)).floor() as u64;
        let users = self.pop.local + if federated { self.pop.remote } else { 0 };
        let cap = match r.private_max_size {
            Some(p) if !public => p.min(r.max_size),
            _ => r.max_size,
        };
        size.clamp(r.min_size, cap).min(users)
    }

    fn room(
        &self,
        r: u64,
        ap: &mut Appender<'_>,
        batch: &mut Batch,
        carry: &mut Carry,
    ) -> Result<String, WorkloadError> {
        let f = &self.features;
        let mut rng = ChaCha8Rng::seed_from_u64(self.pop.seed ^ 0x524f_4f4d);
        rng.set_stream(self.pop.offset.wrapping_mul(1 << 32) ^ r);
        let server = self.pop.server_name.as_str();
        let dm = f.dm.has(r);
        // Index among group rooms (meaningless for a DM, whose group features are all off).
        let g = f.dm.rank(r).saturating_sub(f.dm.count());
        let group = |s: &Spread| !dm && s.has(g);
        let space = group(&f.space);
        let jr_rank = f.join_rule.rank(g);
        let join_rule = if dm {
            "invite"
        } else if jr_rank < f.public_count {
            "public"
        } else if jr_rank < f.public_count + f.knock_count {
            "knock"
        } else {
            "invite"
        };
        let federated = !group(&f.non_federatable);
        let has_remote = federated && self.pop.remote > 0;
        let remote_created = has_remote && group(&f.remote_created);

        let room_id = format!("!{}:{server}", names::letters(&mut rng, 18));
        let founder = if remote_created {
            Member::remote(self.pop.remote_user(rng.gen_range(0..self.pop.remote)))
        } else {
            Member::local(self.active_local(&mut rng))
        };
        let creator = founder.user_id.clone();
        let is_public = join_rule == "public" && group(&f.published);
        batch.push(
            Table::Rooms,
            vec![
                room_id.as_str().into(),
                is_public.into(),
                creator.as_str().into(),
                "10".into(),
                false.into(),
            ],
        );

        // Members other than the creator, distinct.
        let size = if dm {
            2
        } else {
            self.room_size(&mut rng, federated, join_rule == "public")
        };
        let mut seen: HashSet<String> = HashSet::new();
        seen.insert(creator.clone());
        let mut members: Vec<Member> = Vec::new();
        let remote_share = if has_remote {
            self.shape.rooms.remote_member_fraction
        } else {
            0.0
        };
        let mut attempts = 0;
        while (members.len() as u64) < size - 1 && attempts < size * 20 {
            attempts += 1;
            let m = if rng.gen_bool(remote_share) {
                Member::remote(self.pop.remote_user(rng.gen_range(0..self.pop.remote)))
            } else {
                Member::local(self.pop.local_user(rng.gen_range(0..self.pop.local)))
            };
            if seen.insert(m.user_id.clone()) {
                members.push(m);
            }
        }

        let mut chain = RoomChain::new(room_id.clone());
        let mut create = json!({"creator": creator, "room_version": "10"});
        if !federated {
            create["m.federate"] = json!(false);
        }
        if space {
            create["type"] = json!("m.space");
        }
        chain.append(ap, batch, &creator, "m.room.create", Some(""), create)?;
        let content = member_content("join", &founder.display_name, &founder.avatar_url);
        chain.append(
            ap,
            batch,
            &creator,
            "m.room.member",
            Some(&creator),
            content,
        )?;
        let mut users = json!({ creator.as_str(): 100 });
        if dm {
            if let Some(m) = members.first() {
                users[m.user_id.as_str()] = json!(100);
            }
        }
        chain.append(
            ap,
            batch,
            &creator,
            "m.room.power_levels",
            Some(""),
            json!({
                "users": users, "users_default": 0, "events_default": 0, "state_default": 50,
                "ban": 50, "kick": 50, "redact": 50, "invite": 0,
                "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100},
            }),
        )?;
        chain.append(
            ap,
            batch,
            &creator,
            "m.room.join_rules",
            Some(""),
            json!({"join_rule": join_rule}),
        )?;
        let hv = if group(&f.world_readable) {
            "world_readable"
        } else {
            "shared"
        };
        chain.append(
            ap,
            batch,
            &creator,
            "m.room.history_visibility",
            Some(""),
            json!({"history_visibility": hv}),
        )?;
        if group(&f.guest_access) {
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.guest_access",
                Some(""),
                json!({"guest_access": "can_join"}),
            )?;
        } else if dm || rng.gen_bool(0.5) {
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.guest_access",
                Some(""),
                json!({"guest_access": "forbidden"}),
            )?;
        }
        let title = room_title(&mut rng);
        let named = group(&f.named) || group(&f.renamed);
        if named {
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.name",
                Some(""),
                json!({"name": title}),
            )?;
        }
        if group(&f.topic) {
            let text = format!("All about {}", title.to_lowercase());
            let content = if rng.gen_bool(0.5) {
                json!({"topic": text, "m.topic": {"m.text": [
                    {"mimetype": "text/html", "body": format!("<p>{text}</p>")},
                    {"body": text},
                ]}})
            } else {
                json!({"topic": text})
            };
            chain.append(ap, batch, &creator, "m.room.topic", Some(""), content)?;
        }
        if group(&f.avatar) {
            let url = format!("mxc://{server}/{}", names::alnum(&mut rng, 24));
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.avatar",
                Some(""),
                json!({"url": url}),
            )?;
        }
        if join_rule == "public" && !space {
            let alias = format!("#{}-{}:{server}", slug(&title), r + self.pop.offset);
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.canonical_alias",
                Some(""),
                json!({"alias": alias}),
            )?;
        }
        if f.encrypted.has(r) && !space {
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.encryption",
                Some(""),
                json!({"algorithm": "m.megolm.v1.aes-sha2"}),
            )?;
        }
        if space {
            for child in &carry.recent {
                chain.append(
                    ap,
                    batch,
                    &creator,
                    "m.space.child",
                    Some(child),
                    json!({"via": [server]}),
                )?;
            }
        }
        if group(&f.odd) {
            // Oddities are handed out in turn, enough per odd room for every kind to
            // appear; one that would erase a feature of this room (its only join
            // rule or world_readable history) waits for the next odd room.
            let per = ODDITIES.div_ceil(f.odd.count().max(1) as usize);
            let mut applied = 0;
            let mut waiting = Vec::new();
            while applied < per {
                if carry.odd.is_empty() {
                    if !waiting.is_empty() {
                        break;
                    }
                    carry.odd.extend(0..ODDITIES);
                }
                let kind = carry.odd.pop_front().expect("refilled");
                let erases = (kind == ODD_JOIN_RULE && join_rule != "invite")
                    || (kind == ODD_HISTORY && hv != "shared");
                if erases {
                    waiting.push(kind);
                    continue;
                }
                self.oddity(
                    kind, &mut rng, ap, batch, &mut chain, &creator, &members, join_rule,
                )?;
                applied += 1;
            }
            for kind in waiting.into_iter().rev() {
                carry.odd.push_front(kind);
            }
        }

        self.memberships(
            &mut rng, ap, batch, &mut chain, &creator, &members, join_rule, dm,
        )?;

        if group(&f.renamed) {
            chain.append(
                ap,
                batch,
                &creator,
                "m.room.name",
                Some(""),
                json!({"name": format!("{title} (new)")}),
            )?;
        }
        if f.abandoned.has(r) {
            // Every local member goes: invites rejected, knocks withdrawn, joins left.
            let locals: Vec<String> = chain
                .state
                .iter()
                .filter(|((t, sk), c)| {
                    t == "m.room.member"
                        && crate::chain::is_local(sk, server)
                        && matches!(c.membership.as_deref(), Some("join" | "invite" | "knock"))
                })
                .map(|((_, sk), _)| sk.clone())
                .collect();
            for u in locals {
                chain.append(
                    ap,
                    batch,
                    &u,
                    "m.room.member",
                    Some(&u),
                    json!({"membership": "leave"}),
                )?;
            }
        }
        chain.current_state_rows(batch, server, chain.state.keys());
        Ok(room_id)
    }

    #[allow(clippy::too_many_arguments)]
    fn memberships(
        &self,
        rng: &mut ChaCha8Rng,
        ap: &mut Appender<'_>,
        batch: &mut Batch,
        chain: &mut RoomChain,
        creator: &str,
        members: &[Member],
        join_rule: &str,
        dm: bool,
    ) -> Result<(), WorkloadError> {
        let mix = &self.shape.membership;
        let per_room = self.shape.profiles.per_room_name;
        for (idx, m) in members.iter().enumerate() {
            let uid = m.user_id.as_str();
            // Every knock room keeps at least one pending knock: its last member.
            let force_knock = join_rule == "knock" && idx + 1 == members.len();
            if chain.membership(uid).is_some() {
                continue; // the odd member event already placed them
            }
            let name = if rng.gen_bool(per_room) {
                Some(format!("{} ({})", names::plain(rng), "here"))
            } else {
                m.display_name.clone()
            };
            let join = member_content("join", &name, &m.avatar_url);
            let needs_invite = join_rule != "public";
            let invite = |chain: &mut RoomChain, ap: &mut Appender<'_>, batch: &mut Batch| {
                let mut c = member_content("invite", &m.display_name, &m.avatar_url);
                if dm {
                    c["is_direct"] = json!(true);
                }
                chain.append(ap, batch, creator, "m.room.member", Some(uid), c)
            };
            if m.kind == Some(UserKind::Deactivated) {
                // Deactivation parted them from every room.
                if needs_invite {
                    invite(chain, ap, batch)?;
                }
                chain.append(ap, batch, uid, "m.room.member", Some(uid), join.clone())?;
                chain.append(
                    ap,
                    batch,
                    uid,
                    "m.room.member",
                    Some(uid),
                    json!({"membership": "leave"}),
                )?;
                continue;
            }
            let u: f64 = rng.gen();
            let mut acc = 0.0;
            let mut pick = |f: f64| {
                acc += f;
                u < acc
            };
            let leave = json!({"membership": "leave"});
            if !force_knock && pick(mix.invite) {
                invite(chain, ap, batch)?;
                continue;
            }
            let knock = force_knock || pick(mix.knock);
            if knock && join_rule == "knock" {
                let c = member_content("knock", &m.display_name, &m.avatar_url);
                chain.append(ap, batch, uid, "m.room.member", Some(uid), c)?;
                continue;
            }
            if needs_invite {
                invite(chain, ap, batch)?;
            }
            chain.append(ap, batch, uid, "m.room.member", Some(uid), join.clone())?;
            if knock {
                continue;
            }
            if pick(mix.leave) {
                chain.append(ap, batch, uid, "m.room.member", Some(uid), leave)?;
            } else if pick(mix.ban) {
                let c = json!({"membership": "ban", "reason": "spam"});
                chain.append(ap, batch, creator, "m.room.member", Some(uid), c)?;
            } else if pick(mix.rejoin) {
                chain.append(ap, batch, uid, "m.room.member", Some(uid), leave)?;
                if needs_invite {
                    invite(chain, ap, batch)?;
                }
                chain.append(ap, batch, uid, "m.room.member", Some(uid), join)?;
            } else if pick(mix.display_name_change) {
                let renamed = Some(format!("{} ✨", names::plain(rng)));
                let c = member_content("join", &renamed, &m.avatar_url);
                chain.append(ap, batch, uid, "m.room.member", Some(uid), c)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn oddity(
        &self,
        kind: usize,
        rng: &mut ChaCha8Rng,
        ap: &mut Appender<'_>,
        batch: &mut Batch,
        chain: &mut RoomChain,
        creator: &str,
        members: &[Member],
        join_rule: &str,
    ) -> Result<(), WorkloadError> {
        let (ty, content) = oddity(kind, rng);
        if ty != "m.room.member" {
            chain.append(ap, batch, creator, ty, Some(""), content)?;
        } else if let Some(m) = members.first() {
            // A member whose display name is not a string.
            let mut c = content;
            c["membership"] = json!("join");
            if join_rule != "public" {
                let invite = json!({"membership": "invite"});
                chain.append(
                    ap,
                    batch,
                    creator,
                    "m.room.member",
                    Some(&m.user_id),
                    invite,
                )?;
            }
            chain.append(ap, batch, &m.user_id, "m.room.member", Some(&m.user_id), c)?;
        }
        Ok(())
    }
}

struct Member {
    user_id: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    /// None for remote users.
    kind: Option<UserKind>,
}

impl Member {
    fn local(u: LocalUser) -> Member {
        Member {
            user_id: u.user_id,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            kind: Some(u.kind),
        }
    }

    fn remote(u: RemoteUser) -> Member {
        Member {
            user_id: u.user_id,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            kind: None,
        }
    }
}

/// A member event's content: membership plus the profile (Synapse adds the
/// profile to joins, invites and knocks).
pub fn member_content(membership: &str, name: &Option<String>, avatar: &Option<String>) -> Value {
    let mut c = json!({ "membership": membership });
    if let Some(n) = name {
        c["displayname"] = json!(n);
    }
    if let Some(a) = avatar {
        c["avatar_url"] = json!(a);
    }
    c
}

/// Deliberately odd state, as federated data has it.
fn oddity(k: usize, rng: &mut ChaCha8Rng) -> (&'static str, Value) {
    match k {
        0 => ("m.room.name", json!({"name": rng.gen_range(1..1000)})),
        1 => ("m.room.name", json!({"name": "bad\u{0}name"})),
        2 => ("m.room.join_rules", json!({})),
        3 => (
            "m.room.topic",
            json!({"topic": "fallback topic", "m.topic": "not an object"}),
        ),
        4 => (
            "m.room.topic",
            json!({"topic": "plain fallback", "m.topic": {"m.text": [{"mimetype": "text/html", "body": "<b>only html</b>"}]}}),
        ),
        5 => ("m.room.topic", json!({"topic": ["not", "a", "string"]})),
        6 => ("m.room.avatar", json!({"url": {"not": "a string"}})),
        7 => (
            "m.room.history_visibility",
            json!({"history_visibility": 1}),
        ),
        8 => (
            "m.room.canonical_alias",
            json!({"alias": "#nul\u{0}:example.org"}),
        ),
        _ => (
            "m.room.member",
            json!({"displayname": 7, "avatar_url": false}),
        ),
    }
}

fn room_title(rng: &mut ChaCha8Rng) -> String {
    const A: &[&str] = &[
        "Rust",
        "Matrix",
        "Gardening",
        "Chess",
        "Music",
        "Café",
        "Ops",
        "Книги",
        "音楽",
        "Hiking",
        "Design",
        "Football",
    ];
    const B: &[&str] = &[
        "Lounge", "Club", "Team", "Chat", "Hub", "Corner", "Guild", "Talk",
    ];
    format!(
        "{} {}",
        A[rng.gen_range(0..A.len())],
        B[rng.gen_range(0..B.len())]
    )
}

fn slug(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .collect::<String>()
        .trim()
        .replace(' ', "-")
        .to_lowercase()
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
