//! A seeded world: ids are reference hashes, derived tables agree with the
//! event history, the same seed gives the same rows, every feature shows up.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use updraft_workload::event::event_id_of_json;
use updraft_workload::{seed, SeedOptions, Shape, WorkloadError};

use crate::support::*;

/// (room, type, state_key, event_id, stream, sender, depth, content) of every event, in stream order.
type Ev = (
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
    i64,
    Value,
);

async fn events(db: &updraft_engine::Db) -> Vec<Ev> {
    let sql = format!(
        "SELECT e.room_id, e.type, e.state_key, e.event_id, {}, e.sender, {}, j.json \
         FROM events e JOIN event_json j ON j.event_id = e.event_id ORDER BY e.stream_ordering",
        txt(db, "e.stream_ordering"),
        txt(db, "e.depth")
    );
    rows(db, &sql)
        .await
        .into_iter()
        .map(|r| {
            let json: Value = serde_json::from_str(&r[7]).unwrap();
            let sk = (r[2] != "NULL").then(|| r[2].clone());
            (
                r[0].clone(),
                r[1].clone(),
                sk,
                r[3].clone(),
                r[4].parse().unwrap(),
                r[5].clone(),
                r[6].parse().unwrap(),
                json["content"].clone(),
            )
        })
        .collect()
}

updraft_testkit::both_engines! {
    async fn every_event_hashes_to_its_id(t) {
        let (db, report) = seeded(&t, 1).await;
        let all = rows(&db, "SELECT e.event_id, j.json, j.internal_metadata, CAST(j.format_version AS TEXT) \
                             FROM events e JOIN event_json j ON j.event_id = e.event_id").await;
        assert_eq!(all.len() as u64, report.events);
        assert!(report.events > 150, "tiny world has {} events", report.events);
        for r in &all {
            assert_eq!(event_id_of_json(&r[1]).unwrap(), r[0], "event JSON does not hash to its id");
            assert_eq!((r[2].as_str(), r[3].as_str()), ("{}", "3"));
            let v: Value = serde_json::from_str(&r[1]).unwrap();
            assert!(v.get("event_id").is_none());
            assert!(v["hashes"]["sha256"].is_string() && v["signatures"].is_object());
        }
        // Tampering with a field the reference hash covers changes the id.
        let tampered = all[0][1].replacen("\"depth\":", "\"depth\":9", 1);
        assert_ne!(event_id_of_json(&tampered).unwrap(), all[0][0]);
        assert_eq!(db.count_rows("event_json").await.unwrap() as u64, report.events);
    }

    async fn derived_tables_agree_with_the_event_history(t) {
        let (db, report) = seeded(&t, 3).await;
        let evs = events(&db).await;
        let server = &report.server_name;

        // Stream orderings: unique and increasing; per room the chain is linear
        // (depth +1, prev_events = the previous event) and topological = depth.
        let mut by_room: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
        for w in evs.windows(2) {
            assert!(w[0].4 < w[1].4);
        }
        for e in &evs {
            by_room.entry(&e.0).or_default().push(e);
        }
        let jsons: BTreeMap<String, Value> = rows(&db, "SELECT event_id, json FROM event_json")
            .await
            .into_iter()
            .map(|r| (r[0].clone(), serde_json::from_str(&r[1]).unwrap()))
            .collect();
        for list in by_room.values() {
            assert_eq!(list[0].1, "m.room.create");
            for (i, e) in list.iter().enumerate() {
                assert_eq!(e.6, i as i64 + 1, "depth");
                let prev: Vec<String> = serde_json::from_value(jsons[&e.3]["prev_events"].clone()).unwrap();
                let want: Vec<String> = if i == 0 { vec![] } else { vec![list[i - 1].3.clone()] };
                assert_eq!(prev, want);
            }
        }
        let topo = rows(&db, "SELECT event_id FROM events WHERE topological_ordering <> depth").await;
        assert!(topo.is_empty());

        // Replay the history: last state event per (room, type, state_key).
        let mut current: BTreeMap<(String, String, String), &Ev> = BTreeMap::new();
        let mut deltas = BTreeSet::new();
        for e in &evs {
            if let Some(sk) = &e.2 {
                let key = (e.0.clone(), e.1.clone(), sk.clone());
                let prev = current.get(&key).map(|p| p.3.clone()).unwrap_or_else(|| "NULL".into());
                deltas.insert(vec![e.4.to_string(), e.0.clone(), e.1.clone(), sk.clone(), e.3.clone(), prev]);
                current.insert(key, e);
            }
        }
        let want: BTreeSet<Vec<String>> = current
            .iter()
            .map(|((room, ty, sk), e)| {
                let m = if ty == "m.room.member" { e.7["membership"].as_str().unwrap().to_owned() } else { "NULL".into() };
                vec![room.clone(), ty.clone(), sk.clone(), e.3.clone(), m, e.4.to_string()]
            })
            .collect();
        let got: BTreeSet<Vec<String>> = rows(&db, &format!(
            "SELECT room_id, type, state_key, event_id, COALESCE(membership, 'NULL'), {} FROM current_state_events",
            txt(&db, "event_stream_ordering"))).await.into_iter().collect();
        assert_eq!(got, want);
        let got_deltas: BTreeSet<Vec<String>> = rows(&db, &format!(
            "SELECT {}, room_id, type, state_key, event_id, COALESCE(prev_event_id, 'NULL') FROM current_state_delta_stream",
            txt(&db, "stream_id"))).await.into_iter().collect();
        assert_eq!(got_deltas, deltas);

        // room_memberships: one row per member event, profile fields cleaned as Synapse does.
        let clean = |v: &Value| match v { Value::String(s) if !s.contains('\0') => s.clone(), _ => "NULL".into() };
        let want: BTreeSet<Vec<String>> = evs.iter().filter(|e| e.1 == "m.room.member").map(|e| vec![
            e.3.clone(), e.2.clone().unwrap(), e.5.clone(), e.0.clone(),
            e.7["membership"].as_str().unwrap().to_owned(), clean(&e.7["displayname"]), clean(&e.7["avatar_url"]), e.4.to_string(),
        ]).collect();
        let got: BTreeSet<Vec<String>> = rows(&db, &format!(
            "SELECT event_id, user_id, sender, room_id, membership, COALESCE(display_name, 'NULL'), COALESCE(avatar_url, 'NULL'), {} FROM room_memberships",
            txt(&db, "event_stream_ordering"))).await.into_iter().collect();
        assert_eq!(got, want);

        // local_current_membership = current member state of local users.
        let want: BTreeSet<Vec<String>> = current.iter()
            .filter(|((_, ty, sk), _)| ty == "m.room.member" && sk.ends_with(&format!(":{server}")))
            .map(|((room, _, sk), e)| vec![room.clone(), sk.clone(), e.3.clone(), e.7["membership"].as_str().unwrap().to_owned()])
            .collect();
        let got: BTreeSet<Vec<String>> = rows(&db, "SELECT room_id, user_id, event_id, membership FROM local_current_membership")
            .await.into_iter().collect();
        assert_eq!(got, want);
        assert!(!got.is_empty());

        // Membership counts per room from the replay equal the table's.
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for ((room, ty, _), e) in &current {
            if ty == "m.room.member" {
                *counts.entry((room.clone(), e.7["membership"].as_str().unwrap().to_owned())).or_default() += 1;
            }
        }
        let got: BTreeMap<(String, String), i64> = rows(&db, &format!(
            "SELECT room_id, membership, {} FROM current_state_events WHERE type = 'm.room.member' GROUP BY room_id, membership",
            txt(&db, "COUNT(*)"))).await.into_iter().map(|r| ((r[0].clone(), r[1].clone()), r[2].parse().unwrap())).collect();
        assert_eq!(got, counts);

        // rooms: one per create event, creator = its sender, version 10.
        let want: BTreeSet<Vec<String>> = evs.iter().filter(|e| e.1 == "m.room.create")
            .map(|e| vec![e.0.clone(), e.5.clone(), "10".into()]).collect();
        let got: BTreeSet<Vec<String>> = rows(&db, "SELECT room_id, creator, room_version FROM rooms").await.into_iter().collect();
        assert_eq!(got, want);
        assert_eq!(got.len() as u64, report.rooms);
    }

    async fn same_seed_same_rows_other_seed_other_rows(t) {
        let (db, _) = seeded(&t, 42).await;
        let first = updraft_workload::dump::dump_hash(&db).await.unwrap();
        let again = updraft_testkit::TestDb::new(t.engine()).await;
        let (db2, _) = seeded(&again, 42).await;
        assert_eq!(updraft_workload::dump::dump_hash(&db2).await.unwrap(), first);
        let other = updraft_testkit::TestDb::new(t.engine()).await;
        let (db3, _) = seeded(&other, 43).await;
        assert_ne!(updraft_workload::dump::dump_hash(&db3).await.unwrap(), first);
    }

    async fn refuses_a_second_world_unless_appending(t) {
        let (db, report) = seeded(&t, 5).await;
        let shape = Shape::load("tiny").unwrap();
        let before = updraft_workload::dump::dump_hash(&db).await.unwrap();
        let err = seed(&db, &shape, 6, SeedOptions::default()).await.unwrap_err();
        assert!(matches!(err, WorkloadError::WorldExists { users: 50, .. }), "{err}");
        assert_eq!(updraft_workload::dump::dump_hash(&db).await.unwrap(), before);

        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("bridge.yaml");
        let opts = SeedOptions { append: true, appservice_file: Some(yaml.clone()), ..SeedOptions::default() };
        let second = seed(&db, &shape, 6, opts).await.unwrap();
        assert_eq!(second.first_stream_ordering, report.last_stream_ordering + 1);
        assert_eq!(db.count_rows("users").await.unwrap(), 100);
        assert_eq!(db.count_rows("rooms").await.unwrap() as u64, 2 * report.rooms);
        assert_ne!(second.admin_access_token, report.admin_access_token);
        let text = std::fs::read_to_string(&yaml).unwrap();
        let reg: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(reg["id"].as_str(), Some(second.appservice_id.as_str()));
        let regex = reg["namespaces"]["users"][0]["regex"].as_str().unwrap().to_owned();
        let re = regex::Regex::new(&format!("^{regex}$")).unwrap();
        let members = rows(&db, &format!("SELECT name FROM users WHERE appservice_id = '{}'", second.appservice_id)).await;
        assert_eq!(members.len() as u64, shape.users.appservice);
        assert!(members.iter().all(|r| re.is_match(&r[0])), "{regex}");
        let others = rows(&db, "SELECT name FROM users WHERE appservice_id IS NULL").await;
        assert!(others.iter().all(|r| !re.is_match(&r[0])));
        // Both worlds' events still hash to their ids.
        for r in rows(&db, "SELECT event_id, json FROM event_json").await {
            assert_eq!(event_id_of_json(&r[1]).unwrap(), r[0]);
        }
    }

    async fn the_tiny_world_has_every_feature(t) {
        let (db, report) = seeded(&t, 1).await;
        let one = |sql: &'static str| {
            let db = db.clone();
            async move { rows(&db, sql).await.len() }
        };
        // Users of every kind, and the admin's token works as a lookup.
        assert_eq!(one("SELECT name FROM users WHERE admin = 1").await, 2);
        assert_eq!(one("SELECT name FROM users WHERE is_guest = 1").await, 2);
        assert_eq!(one("SELECT name FROM users WHERE deactivated = 1").await, 3);
        assert_eq!(one("SELECT name FROM users WHERE user_type = 'support'").await, 1);
        assert_eq!(one("SELECT name FROM users WHERE appservice_id IS NOT NULL").await, 3);
        assert_eq!(one("SELECT name FROM users WHERE locked = TRUE").await, 1);
        let admin = rows(&db, &format!("SELECT u.name FROM access_tokens t JOIN users u ON u.name = t.user_id \
                                         WHERE t.token = '{}' AND u.admin = 1", report.admin_access_token)).await;
        assert_eq!(admin, vec![vec![report.admin_user_id.clone()]]);
        assert_eq!(report.tokens.iter().map(|t| t.role).collect::<Vec<_>>(), vec!["admin", "guest", "user"]);
        // Profiles: missing rows, NULL names and avatars, localpart in user_id.
        assert_eq!(one("SELECT name FROM users WHERE name NOT IN (SELECT full_user_id FROM profiles)").await, 5);
        assert!(one("SELECT user_id FROM profiles WHERE displayname IS NULL").await >= 1);
        assert!(one("SELECT user_id FROM profiles WHERE avatar_url IS NULL").await >= 1);
        assert_eq!(one("SELECT user_id FROM profiles WHERE '@' || user_id || ':example.org' <> full_user_id").await, 0);
        let names: Vec<String> = rows(&db, "SELECT displayname FROM profiles WHERE displayname IS NOT NULL").await
            .into_iter().map(|r| r[0].clone()).collect();
        let has = |pred: &dyn Fn(char) -> bool| names.iter().any(|n| n.chars().any(pred));
        assert!(has(&|c| ('\u{0400}'..='\u{04ff}').contains(&c)), "Cyrillic");
        assert!(has(&|c| ('\u{0370}'..='\u{03ff}').contains(&c)), "Greek");
        assert!(has(&|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{ac00}'..='\u{d7af}').contains(&c)), "CJK");
        assert!(has(&|c| ('\u{0600}'..='\u{06ff}').contains(&c)), "Arabic");
        assert!(has(&|c| c == '\u{0301}' || c == '\u{0308}' || c == '\u{0327}'), "decomposed");
        assert!(has(&|c| ('\u{fb00}'..='\u{fb06}').contains(&c) || c == 'Ǆ'), "ligature");
        assert!(has(&|c| ('\u{ff01}'..='\u{ff5e}').contains(&c)), "full width");
        assert!(has(&|c| c >= '\u{1f300}'), "emoji");
        assert!(names.iter().any(|n| n.chars().count() >= 300), "long name");

        // Rooms of every kind (from current state).
        let state = |ty: &'static str, needle: &'static str| {
            let db = db.clone();
            async move {
                rows(&db, &format!("SELECT j.json FROM current_state_events c JOIN event_json j ON j.event_id = c.event_id \
                                     WHERE c.type = '{ty}'")).await.iter().filter(|r| r[0].contains(needle)).count()
            }
        };
        assert!(state("m.room.join_rules", "\"join_rule\":\"public\"").await >= 1);
        assert!(state("m.room.join_rules", "\"join_rule\":\"knock\"").await >= 1);
        assert!(state("m.room.join_rules", "\"join_rule\":\"invite\"").await >= 1);
        assert!(state("m.room.join_rules", "\"content\":{}").await >= 1, "missing join_rule");
        assert!(state("m.room.history_visibility", "world_readable").await >= 1);
        assert!(state("m.room.encryption", "megolm").await >= 1);
        assert!(state("m.room.create", "\"m.federate\":false").await >= 1);
        assert!(state("m.room.create", "\"type\":\"m.space\"").await >= 1);
        assert!(state("m.space.child", "via").await >= 1);
        assert!(state("m.room.topic", "\"m.text\"").await >= 1);
        assert!(state("m.room.name", "\\u0000").await + state("m.room.canonical_alias", "\\u0000").await >= 1, "U+0000");
        assert!(one("SELECT room_id FROM rooms WHERE is_public = TRUE").await >= 1);
        // A DM: two members, is_direct invite.
        assert!(!rows(&db, "SELECT json FROM event_json WHERE json LIKE '%\"is_direct\":true%'").await.is_empty());
        // Rooms no local user is in any more, but that still exist.
        let abandoned = rows(&db, "SELECT room_id FROM rooms r WHERE NOT EXISTS (SELECT 1 FROM local_current_membership l \
                                   WHERE l.room_id = r.room_id AND l.membership IN ('join', 'invite', 'knock'))").await;
        assert!(!abandoned.is_empty());
        // Remote members and remote-created rooms.
        assert!(one("SELECT room_id FROM rooms WHERE creator NOT LIKE '%:example.org'").await >= 1);
        assert!(one("SELECT user_id FROM room_memberships WHERE user_id NOT LIKE '%:example.org'").await >= 5);
        // Every final membership, and rejoins / display-name-only changes in the history.
        for m in ["join", "invite", "leave", "ban", "knock"] {
            let n = rows(&db, &format!("SELECT event_id FROM current_state_events WHERE membership = '{m}'")).await.len();
            assert!(n >= 1, "no current {m}");
        }
        let history = rows(&db, "SELECT room_id, user_id, membership, COALESCE(display_name, '') FROM room_memberships \
                                 ORDER BY event_stream_ordering").await;
        let mut seen: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        for r in history {
            seen.entry((r[0].clone(), r[1].clone())).or_default().push((r[2].clone(), r[3].clone()));
        }
        let rejoin = seen.values().any(|h| h.windows(3).any(|w| w[0].0 == "join" && w[1].0 == "leave" && w[2].0 == "join"));
        let rename = seen.values().any(|h| h.windows(2).any(|w| w[0].0 == "join" && w[1].0 == "join" && w[0].1 != w[1].1));
        assert!(rejoin && rename, "rejoin {rejoin}, display-name change {rename}");
        // A per-room name that differs from the global one.
        let per_room = rows(&db, "SELECT m.user_id FROM room_memberships m JOIN profiles p ON p.full_user_id = m.user_id \
                                  WHERE m.membership = 'join' AND m.display_name <> p.displayname").await;
        assert!(!per_room.is_empty());
        // A member event whose display name is not a string is stored with NULL.
        assert!(!rows(&db, "SELECT m.event_id FROM room_memberships m JOIN event_json j ON j.event_id = m.event_id \
                           WHERE j.json LIKE '%\"displayname\":7%' AND m.display_name IS NULL").await.is_empty());
    }
}

/// The same world, byte for byte, on both engines.
mod same_world_on_both_engines {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let a = updraft_testkit::TestDb::sqlite().await;
        let b = updraft_testkit::TestDb::postgres().await;
        let (da, _) = seeded(&a, 9).await;
        let (db, _) = seeded(&b, 9).await;
        let (ta, tb) = (
            updraft_workload::dump::dump(&da).await.unwrap(),
            updraft_workload::dump::dump(&db).await.unwrap(),
        );
        if ta != tb {
            let first = ta.lines().zip(tb.lines()).find(|(x, y)| x != y);
            panic!("dumps differ, first difference: {first:?}");
        }
    }
}
