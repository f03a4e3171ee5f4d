//! World shapes: every knob of a generated world, loaded from TOML
//! (`fixtures/worlds/*.toml`, built in by name, or any file by path).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::WorkloadError;

/// The named shapes shipped with updraft, built into the binary so
/// `--shape medium` works from any directory.
pub const BUILTIN: &[(&str, &str)] = &[
    ("tiny", include_str!("../../../fixtures/worlds/tiny.toml")),
    ("small", include_str!("../../../fixtures/worlds/small.toml")),
    (
        "medium",
        include_str!("../../../fixtures/worlds/medium.toml"),
    ),
    ("large", include_str!("../../../fixtures/worlds/large.toml")),
    ("xl", include_str!("../../../fixtures/worlds/xl.toml")),
];

/// A world shape. Fractions are in `[0, 1]`; a fraction above zero always
/// yields at least one room or user with that feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    pub name: String,
    /// The homeserver's name: users `@x:SERVER_NAME` are local. Must match the config.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    pub users: UserShape,
    pub profiles: ProfileShape,
    pub rooms: RoomShape,
    pub membership: MembershipShape,
    pub oddities: OddityShape,
}

fn default_server_name() -> String {
    "example.org".to_owned()
}

/// How many users of each kind. Special kinds are carved out of `local`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserShape {
    pub local: u64,
    /// Remote users exist only through their memberships.
    pub remote: u64,
    /// Remote users are spread over this many other servers.
    pub remote_servers: u64,
    pub admins: u64,
    pub guests: u64,
    pub deactivated: u64,
    /// `user_type = 'support'`.
    pub support: u64,
    /// Users in the exclusive namespace of the generated application service.
    pub appservice: u64,
    pub locked: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileShape {
    /// Local users with no `profiles` row at all.
    pub no_profile: f64,
    /// Profiles whose display name is NULL.
    pub null_display_name: f64,
    /// Profiles whose avatar is NULL.
    pub null_avatar: f64,
    /// Display names from the hard set: mixed case, Cyrillic, Greek, CJK,
    /// Arabic, decomposed accents, ligatures, full-width forms, emoji.
    pub exotic_names: f64,
    /// Very long display names (hundreds of characters).
    pub long_names: f64,
    /// Member events whose display name differs from the global one.
    pub per_room_name: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomShape {
    pub count: u64,
    /// Two-person direct-message rooms.
    pub dm_fraction: f64,
    /// Other rooms have `min_size * u^(-1/size_alpha)` members (a Pareto law,
    /// heavy-tailed), capped at `max_size`.
    pub size_alpha: f64,
    pub min_size: u64,
    pub max_size: u64,
    /// Cap of rooms that are not `join_rule: public` (default `max_size`).
    /// The biggest rooms of a real server are public communities; an
    /// invite-only room of N members costs about N² rows of
    /// `users_who_share_private_rooms`.
    #[serde(default)]
    pub private_max_size: Option<u64>,
    /// Share of a federated room's members that are remote users.
    pub remote_member_fraction: f64,
    /// Rooms created by a remote user.
    pub remote_created: f64,
    /// `join_rule: public`; `knock` rooms are `join_rule: knock`; the rest invite-only.
    pub public: f64,
    pub knock: f64,
    /// Public rooms also published in the room directory (`rooms.is_public`).
    pub published: f64,
    /// `history_visibility: world_readable`.
    pub world_readable: f64,
    /// Rooms with `m.room.encryption`.
    pub encrypted: f64,
    /// `m.federate: false` (these rooms have local members only).
    pub non_federatable: f64,
    /// `type: m.space`, with `m.space.child` events for recent rooms.
    pub spaces: f64,
    /// Rooms every local member has left since.
    pub abandoned: f64,
    /// Rooms with a name, topic, avatar; renamed later.
    pub named: f64,
    pub topic: f64,
    pub avatar: f64,
    pub renamed: f64,
    /// Guest access `can_join`.
    pub guest_access: f64,
}

/// The final membership mix of non-creator members; the rest simply join.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipShape {
    pub invite: f64,
    pub leave: f64,
    pub ban: f64,
    /// Knocks (in knock rooms; elsewhere a plain join).
    pub knock: f64,
    /// Join, leave, join again.
    pub rejoin: f64,
    /// Join, then a second join event changing only the display name.
    pub display_name_change: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OddityShape {
    /// Rooms with one deliberately odd state event (non-string values,
    /// U+0000, missing join_rule, malformed `m.topic`), as federated data has.
    pub odd_state: f64,
}

impl Shape {
    /// A built-in shape by name (`tiny`, `small`, `medium`, `large`, `xl`) or a TOML file.
    pub fn load(name_or_path: &str) -> Result<Shape, WorkloadError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Shape::parse(text, name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(WorkloadError::Shape(format!(
                "no shape {name_or_path:?}: not a built-in shape ({}) nor an existing file",
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| WorkloadError::Shape(format!("reading {}: {e}", path.display())))?;
        Shape::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a shape; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Shape, WorkloadError> {
        let shape: Shape =
            toml::from_str(text).map_err(|e| WorkloadError::Shape(format!("{origin}: {e}")))?;
        shape
            .validate()
            .map_err(|e| WorkloadError::Shape(format!("{origin}: {e}")))?;
        Ok(shape)
    }

    fn validate(&self) -> Result<(), String> {
        let u = &self.users;
        let special = u.admins + u.guests + u.deactivated + u.support + u.appservice + u.locked;
        if special > u.local {
            return Err(format!(
                "users: {special} special users (admins, guests, ...) exceed local = {}",
                u.local
            ));
        }
        if u.local < 2 {
            return Err("users.local must be at least 2".into());
        }
        if u.remote > 0 && u.remote_servers == 0 {
            return Err(
                "users.remote_servers must be at least 1 when there are remote users".into(),
            );
        }
        let p = &self.profiles;
        let r = &self.rooms;
        let m = &self.membership;
        let fractions = [
            ("profiles.no_profile", p.no_profile),
            ("profiles.null_display_name", p.null_display_name),
            ("profiles.null_avatar", p.null_avatar),
            ("profiles.exotic_names", p.exotic_names),
            ("profiles.long_names", p.long_names),
            ("profiles.per_room_name", p.per_room_name),
            ("rooms.dm_fraction", r.dm_fraction),
            ("rooms.remote_member_fraction", r.remote_member_fraction),
            ("rooms.remote_created", r.remote_created),
            ("rooms.public", r.public),
            ("rooms.knock", r.knock),
            ("rooms.published", r.published),
            ("rooms.world_readable", r.world_readable),
            ("rooms.encrypted", r.encrypted),
            ("rooms.non_federatable", r.non_federatable),
            ("rooms.spaces", r.spaces),
            ("rooms.abandoned", r.abandoned),
            ("rooms.named", r.named),
            ("rooms.topic", r.topic),
            ("rooms.avatar", r.avatar),
            ("rooms.renamed", r.renamed),
            ("rooms.guest_access", r.guest_access),
            ("membership.invite", m.invite),
            ("membership.leave", m.leave),
            ("membership.ban", m.ban),
            ("membership.knock", m.knock),
            ("membership.rejoin", m.rejoin),
            ("membership.display_name_change", m.display_name_change),
            ("oddities.odd_state", self.oddities.odd_state),
        ];
        for (name, f) in fractions {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("{name} = {f} is not a fraction in [0, 1]"));
            }
        }
        if r.public + r.knock > 1.0 {
            return Err("rooms.public + rooms.knock exceed 1".into());
        }
        let mix = m.invite + m.leave + m.ban + m.knock + m.rejoin + m.display_name_change;
        if mix > 1.0 {
            return Err(format!("membership fractions sum to {mix}, more than 1"));
        }
        if r.min_size < 2 || r.max_size < r.min_size {
            return Err("rooms: need 2 <= min_size <= max_size".into());
        }
        if r.private_max_size.is_some_and(|p| p < r.min_size) {
            return Err("rooms: need min_size <= private_max_size".into());
        }
        if r.size_alpha <= 0.0 {
            return Err("rooms.size_alpha must be positive".into());
        }
        if self.server_name.is_empty() || self.server_name.contains(['@', '/', ' ']) {
            return Err(format!(
                "server_name {:?} is not a server name",
                self.server_name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_shape_loads_and_grows() {
        let shapes: Vec<Shape> = BUILTIN
            .iter()
            .map(|(n, _)| Shape::load(n).unwrap())
            .collect();
        for pair in shapes.windows(2) {
            assert!(
                pair[0].users.local < pair[1].users.local,
                "{}",
                pair[1].name
            );
            assert!(
                pair[0].rooms.count < pair[1].rooms.count,
                "{}",
                pair[1].name
            );
        }
        assert_eq!(shapes[0].server_name, "example.org");
    }

    #[test]
    fn bad_shapes_are_refused_with_the_key() {
        let tiny = BUILTIN[0].1;
        let bad = tiny.replace("public = 0.3", "public = 1.5");
        let err = Shape::parse(&bad, "x").unwrap_err().to_string();
        assert!(err.contains("rooms.public = 1.5"), "{err}");
        let unknown = format!("{tiny}\nbogus = 1\n");
        let err = Shape::parse(&unknown, "x").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = Shape::load("no-such-shape").unwrap_err().to_string();
        assert!(err.contains("tiny, small, medium, large, xl"), "{err}");
    }
}
