//! The people of a world. Every user is a pure function of (seed, index), so
//! rooms can name any of a million users without holding them in memory.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::names;
use crate::shape::Shape;
use crate::spread::{mix, Spread};

/// What kind of local account a user has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserKind {
    Admin,
    Guest,
    Deactivated,
    Support,
    AppService,
    Locked,
    Normal,
}

/// A local user: a `users` row and, usually, a `profiles` row.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalUser {
    pub localpart: String,
    pub user_id: String,
    pub kind: UserKind,
    pub has_profile: bool,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// Seconds, as Synapse stores `users.creation_ts`.
    pub creation_ts: i64,
}

/// A remote user: seen only through member events.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteUser {
    pub user_id: String,
    pub server: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// The application service whose exclusive namespace holds the AppService users.
#[derive(Clone, Debug, PartialEq)]
pub struct AppService {
    pub id: String,
    pub sender_localpart: String,
    /// Regex over full user ids, as in a registration file.
    pub user_regex: String,
    pub as_token: String,
    pub hs_token: String,
}

/// All users of one world.
#[derive(Clone, Debug)]
pub struct Population {
    pub server_name: String,
    pub seed: u64,
    /// Index of this world's first user in the database (`--append`), part of every localpart.
    pub offset: u64,
    pub local: u64,
    pub remote: u64,
    remote_servers: u64,
    kind_bounds: [u64; 6],
    /// Epoch ms of the world's first event, derived from the seed.
    pub epoch_ms: i64,
    no_profile: Spread,
    null_display_name: Spread,
    null_avatar: Spread,
    exotic: Spread,
    long: Spread,
}

const SALT_USERS: u64 = 0x5553_4552;

impl Population {
    pub fn new(shape: &Shape, seed: u64, offset: u64) -> Population {
        let u = &shape.users;
        let p = &shape.profiles;
        let mut bounds = [0u64; 6];
        let mut acc = 0;
        for (slot, n) in bounds.iter_mut().zip([
            u.admins,
            u.guests,
            u.deactivated,
            u.support,
            u.appservice,
            u.locked,
        ]) {
            acc += n;
            *slot = acc;
        }
        let salt = |k: u64| mix(seed ^ mix(SALT_USERS + k));
        Population {
            server_name: shape.server_name.clone(),
            seed,
            offset,
            local: u.local,
            remote: u.remote,
            remote_servers: u.remote_servers.max(1),
            kind_bounds: bounds,
            // Some instant in 2021-2023, fixed by the seed.
            epoch_ms: 1_609_459_200_000 + (mix(seed) % (2 * 365 * 86_400)) as i64 * 1000,
            no_profile: Spread::new(p.no_profile, u.local, salt(1)),
            null_display_name: Spread::new(p.null_display_name, u.local, salt(2)),
            null_avatar: Spread::new(p.null_avatar, u.local, salt(3)),
            exotic: Spread::new(p.exotic_names, u.local + u.remote, salt(4)),
            long: Spread::new(p.long_names, u.local + u.remote, salt(5)),
        }
    }

    fn rng(&self, stream: u64, i: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ SALT_USERS);
        rng.set_stream(stream.wrapping_mul(1 << 40) ^ i);
        rng
    }

    pub fn kind(&self, i: u64) -> UserKind {
        const KINDS: [UserKind; 6] = [
            UserKind::Admin,
            UserKind::Guest,
            UserKind::Deactivated,
            UserKind::Support,
            UserKind::AppService,
            UserKind::Locked,
        ];
        KINDS
            .iter()
            .zip(self.kind_bounds)
            .find(|(_, bound)| i < *bound)
            .map(|(k, _)| *k)
            .unwrap_or(UserKind::Normal)
    }

    /// The application service of this world (present even with no users in it).
    pub fn appservice(&self) -> AppService {
        let tag = if self.offset == 0 {
            String::new()
        } else {
            self.offset.to_string()
        };
        let mut rng = self.rng(9, 0);
        AppService {
            id: format!("bridge{tag}"),
            sender_localpart: format!("_bridge{tag}_bot"),
            user_regex: format!("@_bridge{tag}_.*:{}", regex_escape(&self.server_name)),
            as_token: names::alnum(&mut rng, 32),
            hs_token: names::alnum(&mut rng, 32),
        }
    }

    /// A display name for user `i` of the combined local+remote numbering.
    fn display_name(&self, i: u64, rng: &mut ChaCha8Rng) -> String {
        if self.long.has(i) {
            names::long(rng)
        } else if self.exotic.has(i) {
            names::exotic(self.exotic.rank(i) as usize, rng)
        } else {
            names::plain(rng)
        }
    }

    pub fn local_user(&self, i: u64) -> LocalUser {
        let mut rng = self.rng(1, i);
        let g = self.offset + i;
        let kind = self.kind(i);
        let stem = names::localpart_stem(&mut rng);
        let localpart = match kind {
            // Synapse gives guests numeric localparts.
            UserKind::Guest => format!("{}", 1000 + g),
            UserKind::AppService if i == self.kind_bounds[3] => self.appservice().sender_localpart,
            UserKind::AppService => {
                let tag = self.appservice().sender_localpart;
                let prefix = tag.trim_end_matches("bot");
                format!("{prefix}{stem}.{g}")
            }
            _ => format!("{stem}.{g}"),
        };
        let display_name = self.display_name(i, &mut rng);
        let avatar = format!("mxc://{}/{}", self.server_name, names::alnum(&mut rng, 24));
        LocalUser {
            user_id: format!("@{localpart}:{}", self.server_name),
            localpart,
            kind,
            has_profile: !self.no_profile.has(i),
            display_name: (!self.null_display_name.has(i)).then_some(display_name),
            avatar_url: (!self.null_avatar.has(i)).then_some(avatar),
            creation_ts: self.epoch_ms / 1000 - 86_400 + rng.gen_range(0..86_400),
        }
    }

    pub fn remote_server(&self, k: u64) -> String {
        let tlds = ["org", "net", "com", "io", "chat", "de", "fr"];
        format!(
            "matrix{}.example.{}",
            k,
            tlds[(mix(self.seed ^ k) % tlds.len() as u64) as usize]
        )
    }

    pub fn remote_user(&self, j: u64) -> RemoteUser {
        let mut rng = self.rng(2, j);
        let server = self.remote_server(j % self.remote_servers);
        let stem = names::localpart_stem(&mut rng).replace('.', "_");
        let display_name = self.display_name(self.local + j, &mut rng);
        let avatar = format!("mxc://{server}/{}", names::alnum(&mut rng, 24));
        RemoteUser {
            user_id: format!("@{stem}{}:{server}", self.offset + j),
            server,
            display_name: (!rng.gen_bool(0.05)).then_some(display_name),
            avatar_url: rng.gen_bool(0.6).then_some(avatar),
        }
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_unique_and_kinds_follow_the_shape() {
        let shape = Shape::load("tiny").unwrap();
        let pop = Population::new(&shape, 7, 0);
        let users: Vec<LocalUser> = (0..pop.local).map(|i| pop.local_user(i)).collect();
        let mut ids: Vec<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len() as u64, shape.users.local);
        let count = |k| users.iter().filter(|u| u.kind == k).count() as u64;
        assert_eq!(count(UserKind::Admin), shape.users.admins);
        assert_eq!(count(UserKind::AppService), shape.users.appservice);
        let re = regex_lite(&pop.appservice().user_regex);
        for u in users.iter().filter(|u| u.kind == UserKind::AppService) {
            assert!(u.user_id.starts_with(&re), "{} vs {re}", u.user_id);
        }
        assert_eq!(
            pop.local_user(3),
            Population::new(&shape, 7, 0).local_user(3)
        );
        assert_ne!(
            pop.local_user(3),
            Population::new(&shape, 8, 0).local_user(3)
        );
    }

    /// The literal prefix of `@_bridge_.*:...`.
    fn regex_lite(re: &str) -> String {
        re.split(".*").next().unwrap().to_owned()
    }
}
