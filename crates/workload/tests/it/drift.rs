//! Each drift kind: exactly which rows changed, and no derived table touched.

use std::collections::BTreeMap;

use updraft_engine::Db;
use updraft_workload::drift::{self, DriftKind, DriftReport};
use updraft_workload::event::event_id_of_json;

use crate::support::*;

type Diff = BTreeMap<String, (Vec<String>, Vec<String>)>;

/// Seeds tiny, fills the derived tables with sentinels, applies the drift and
/// returns its report and the per-table diff of the world tables.
async fn drifted(
    t: &updraft_testkit::TestDb,
    kind: DriftKind,
    count: u64,
) -> (Db, DriftReport, Diff) {
    let (db, _) = seeded(t, 11).await;
    fill_derived(&db).await;
    let derived_before = derived(&db).await;
    let before = world(&db).await;
    let report = drift::apply(&db, "example.org", kind, count, 5)
        .await
        .unwrap();
    assert_eq!(report.kind, kind.as_str());
    assert_eq!(
        derived(&db).await,
        derived_before,
        "a derived table changed"
    );
    let after = world(&db).await;
    let d = diff(&before, &after);
    // Every new event hashes to its id and is recorded exactly once.
    let new_events = d.get("events").map(|(a, r)| {
        assert!(r.is_empty(), "events removed: {r:?}");
        a.len()
    });
    assert_eq!(new_events.unwrap_or(0), report.events.len());
    for id in &report.events {
        let json = rows(
            &db,
            &format!("SELECT json FROM event_json WHERE event_id = '{id}'"),
        )
        .await;
        assert_eq!(event_id_of_json(&json[0][0]).unwrap(), *id);
    }
    (db, report, d)
}

/// Tables that changed, with (added, removed) line counts.
fn shape_of(d: &Diff) -> BTreeMap<&str, (usize, usize)> {
    d.iter()
        .map(|(t, (a, r))| (t.as_str(), (a.len(), r.len())))
        .collect()
}

/// The current membership and member-event display name of a user in a room.
async fn member(db: &Db, room: &str, user: &str) -> (String, String) {
    let r = rows(
        db,
        &format!(
            "SELECT c.membership, COALESCE(m.display_name, 'NULL') FROM current_state_events c \
         JOIN room_memberships m ON m.event_id = c.event_id \
         WHERE c.room_id = '{room}' AND c.type = 'm.room.member' AND c.state_key = '{user}'"
        ),
    )
    .await;
    (r[0][0].clone(), r[0][1].clone())
}

/// The rows a state change writes: per event one events/event_json/state_events/delta row,
/// and per changed key one current_state_events row replaced.
fn state_change(
    events: usize,
    keys: usize,
    members: usize,
    local_members: usize,
) -> BTreeMap<&'static str, (usize, usize)> {
    let mut m = BTreeMap::from([
        ("events", (events, 0)),
        ("event_json", (events, 0)),
        ("state_events", (events, 0)),
        ("current_state_delta_stream", (events, 0)),
        ("current_state_events", (keys, keys)),
    ]);
    if members > 0 {
        m.insert("room_memberships", (members, 0));
    }
    if local_members > 0 {
        m.insert("local_current_membership", (local_members, local_members));
    }
    m.retain(|_, v| *v != (0, 0));
    m
}

updraft_testkit::both_engines! {
    async fn drift_profile_change(t) {
        let (db, report, d) = drifted(&t, DriftKind::ProfileChange, 2).await;
        assert_eq!(report.users.len(), 2);
        let n = report.events.len();
        let mut want = state_change(n, n, n, n);
        want.insert("profiles", (2, 2));
        assert_eq!(shape_of(&d), want);
        for (user, name) in report.users.iter().zip(&report.new_values) {
            let p = rows(&db, &format!("SELECT displayname FROM profiles WHERE full_user_id = '{user}'")).await;
            assert_eq!(&p[0][0], name);
            for room in rows(&db, &format!("SELECT room_id FROM local_current_membership WHERE user_id = '{user}' AND membership = 'join'")).await {
                assert_eq!(member(&db, &room[0], user).await, ("join".to_owned(), name.clone()));
            }
        }
    }

    async fn drift_again_with_the_same_seed_changes_more(t) {
        let (db, first, _) = drifted(&t, DriftKind::ProfileChange, 2).await;
        let before = world(&db).await;
        let second = drift::apply(&db, "example.org", DriftKind::ProfileChange, 2, 5).await.unwrap();
        assert_ne!(second.new_values, first.new_values);
        let d = diff(&before, &world(&db).await);
        assert_eq!(d["profiles"].0.len(), 2, "two profiles changed again");
        for (user, name) in second.users.iter().zip(&second.new_values) {
            let p = rows(&db, &format!("SELECT displayname FROM profiles WHERE full_user_id = '{user}'")).await;
            assert_eq!(&p[0][0], name);
        }
    }

    async fn drift_avatar_change(t) {
        let (db, report, d) = drifted(&t, DriftKind::AvatarChange, 1).await;
        let n = report.events.len();
        let mut want = state_change(n, n, n, n);
        want.insert("profiles", (1, 1));
        assert_eq!(shape_of(&d), want);
        let p = rows(&db, &format!("SELECT avatar_url FROM profiles WHERE full_user_id = '{}'", report.users[0])).await;
        assert_eq!(p[0][0], report.new_values[0]);
    }

    async fn drift_deactivation(t) {
        let (db, report, d) = drifted(&t, DriftKind::Deactivation, 1).await;
        let user = &report.users[0];
        let n = report.events.len();
        let mut want = state_change(n, n, n, n);
        want.insert("users", (1, 1));
        let tokens = d.get("access_tokens").map(|(a, r)| (a.len(), r.len()));
        if let Some(t) = tokens {
            want.insert("access_tokens", t);
            assert_eq!(t.0, 0);
        }
        assert_eq!(shape_of(&d), want);
        let u = rows(&db, &format!("SELECT {}, COALESCE(password_hash, 'NULL') FROM users WHERE name = '{user}'", txt(&db, "deactivated"))).await;
        assert_eq!(u[0], vec!["1".to_owned(), "NULL".to_owned()]);
        assert!(rows(&db, &format!("SELECT id FROM access_tokens WHERE user_id = '{user}'")).await.is_empty());
        let still = rows(&db, &format!("SELECT room_id FROM local_current_membership WHERE user_id = '{user}' \
                                         AND membership IN ('join', 'invite', 'knock')")).await;
        assert!(still.is_empty(), "still in {still:?}");
        assert_eq!(report.rooms.len(), n);
    }

    async fn drift_room_became_private(t) {
        let (db, report, d) = drifted(&t, DriftKind::RoomBecamePrivate, 1).await;
        let room = &report.rooms[0];
        let n = report.events.len();
        assert!(n == 1 || n == 2, "join rules, and history visibility if it was world_readable");
        assert_eq!(shape_of(&d), state_change(n, n, 0, 0));
        let jr = rows(&db, &format!("SELECT j.json FROM current_state_events c JOIN event_json j ON j.event_id = c.event_id \
                                      WHERE c.room_id = '{room}' AND c.type = 'm.room.join_rules'")).await;
        assert!(jr[0][0].contains("\"join_rule\":\"invite\""));
        // The published flag is the directory's business, not changed.
        assert!(!d.contains_key("rooms"));
    }

    async fn drift_room_became_public(t) {
        let (db, report, d) = drifted(&t, DriftKind::RoomBecamePublic, 2).await;
        assert_eq!(report.rooms.len(), 2);
        assert_eq!(shape_of(&d), state_change(2, 2, 0, 0));
        for room in &report.rooms {
            let jr = rows(&db, &format!("SELECT j.json FROM current_state_events c JOIN event_json j ON j.event_id = c.event_id \
                                          WHERE c.room_id = '{room}' AND c.type = 'm.room.join_rules'")).await;
            assert!(jr[0][0].contains("\"join_rule\":\"public\""));
        }
    }

    async fn drift_join(t) {
        let (db, report, d) = drifted(&t, DriftKind::Join, 1).await;
        let (room, user) = (&report.rooms[0], &report.users[0]);
        let was_member = d["current_state_events"].1.len();
        let had_local = d.get("local_current_membership").map(|x| x.1.len()).unwrap_or(0);
        let mut want = state_change(1, 1, 1, 1);
        want.insert("current_state_events", (1, was_member));
        want.insert("local_current_membership", (1, had_local));
        assert_eq!(shape_of(&d), want);
        assert_eq!(member(&db, room, user).await.0, "join");
    }

    async fn drift_leave(t) {
        let (db, report, d) = drifted(&t, DriftKind::Leave, 3).await;
        assert_eq!(report.users.len(), 3);
        assert_eq!(shape_of(&d), state_change(3, 3, 3, 3));
        for (room, user) in report.rooms.iter().zip(&report.users) {
            assert_eq!(member(&db, room, user).await.0, "leave");
        }
    }

    async fn drift_ban(t) {
        let (db, report, d) = drifted(&t, DriftKind::Ban, 2).await;
        let locals = report.users.iter().filter(|u| u.ends_with(":example.org")).count();
        assert_eq!(shape_of(&d), state_change(2, 2, 2, locals));
        for (room, user) in report.rooms.iter().zip(&report.users) {
            assert_eq!(member(&db, room, user).await.0, "ban");
        }
    }

    async fn drift_new_user(t) {
        let (db, report, d) = drifted(&t, DriftKind::NewUser, 2).await;
        assert_eq!(shape_of(&d), BTreeMap::from([("users", (2, 0)), ("profiles", (2, 0))]));
        for user in &report.users {
            assert!(user.ends_with(":example.org"));
            assert_eq!(rows(&db, &format!("SELECT name FROM users WHERE name = '{user}'")).await.len(), 1);
        }
    }

    async fn drift_remote_profile_change(t) {
        let (db, report, d) = drifted(&t, DriftKind::RemoteProfileChange, 1).await;
        let user = &report.users[0];
        assert!(!user.ends_with(":example.org"));
        let n = report.events.len();
        assert!(n >= 1);
        // Remote users have no local_current_membership, users or profiles rows.
        assert_eq!(shape_of(&d), state_change(n, n, n, 0));
        for room in &report.rooms {
            assert_eq!(member(&db, room, user).await, ("join".to_owned(), report.new_values[0].clone()));
        }
    }
}

#[test]
fn kinds_parse_and_unknown_kinds_are_named() {
    for k in DriftKind::ALL {
        assert_eq!(k.as_str().parse::<DriftKind>().unwrap(), k);
    }
    let err = "melt".parse::<DriftKind>().unwrap_err().to_string();
    assert!(
        err.contains("melt")
            && err.contains("profile-change")
            && err.contains("remote-profile-change"),
        "{err}"
    );
}

/// Same seed, same drift; a drift's events continue the stream and the clock.
mod drift_is_deterministic {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let a = updraft_testkit::TestDb::sqlite().await;
        let b = updraft_testkit::TestDb::sqlite().await;
        let (da, ra) = seeded(&a, 11).await;
        let (db, _) = seeded(&b, 11).await;
        let x = drift::apply(&da, "example.org", DriftKind::Leave, 2, 1)
            .await
            .unwrap();
        let y = drift::apply(&db, "example.org", DriftKind::Leave, 2, 1)
            .await
            .unwrap();
        assert_eq!(x, y);
        let so = rows(
            &da,
            &format!(
                "SELECT CAST(stream_ordering AS TEXT) FROM events WHERE event_id = '{}'",
                x.events[0]
            ),
        )
        .await;
        assert_eq!(
            so[0][0].parse::<i64>().unwrap(),
            ra.last_stream_ordering + 1
        );
        assert_eq!(
            updraft_workload::dump::dump_hash(&da).await.unwrap(),
            updraft_workload::dump::dump_hash(&db).await.unwrap()
        );
    }
}
