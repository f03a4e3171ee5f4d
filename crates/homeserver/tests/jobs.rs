//! The two jobs on hand-built worlds, on both engines: every rule of
//! SEMANTICS §6-7 and §9, progress JSON, and hand-over from a Synapse-shaped
//! half-done rebuild.

mod support;

use serde_json::json;
use support::*;
use updraft_engine::{BatchResult, Engine};
use updraft_homeserver::jobs::skipped_rooms;
use updraft_testkit::both_engines;

const STATS_ROW: &str = "SELECT room_id, current_state_events, joined_members, invited_members, left_members, \
    banned_members, knocked_members, local_users_in_room, completed_delta_stream_id FROM room_stats_current";
const STATE_ROW: &str =
    "SELECT room_id, join_rules, history_visibility, encryption, name, topic, avatar, \
    canonical_alias, guest_access, is_federatable, room_type FROM room_stats_state";

fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect();
    v.sort();
    v
}

both_engines! {
    async fn stats_counts_and_state_fields(t) {
        let mut w = World::new(&t).await;
        let a = "@alice:hs.test";
        w.room_with("!r:hs.test", a, "invite").await;
        w.join("!r:hs.test", a, Some("Alice")).await;
        w.join("!r:hs.test", "@bob:hs.test", None).await;
        // Exact server-name compare: EXAMPLE casing is a different server.
        w.join("!r:hs.test", "@carol:HS.TEST", None).await;
        w.join("!r:hs.test", "@dave:other.org", None).await;
        w.member("!r:hs.test", "@inv:hs.test", "invite").await;
        w.member("!r:hs.test", "@gone:other.org", "leave").await;
        w.member("!r:hs.test", "@bad:other.org", "ban").await;
        w.member("!r:hs.test", "@k1:other.org", "knock").await;
        w.member("!r:hs.test", "@k2:hs.test", "knock").await;
        w.state("!r:hs.test", "m.room.history_visibility", "", a, json!({"history_visibility": "shared"})).await;
        w.state("!r:hs.test", "m.room.encryption", "", a, json!({"algorithm": "m.megolm.v1.aes-sha2"})).await;
        w.state("!r:hs.test", "m.room.name", "", a, json!({"name": "bad\u{0}name"})).await;
        w.state("!r:hs.test", "m.room.avatar", "", a, json!({"url": 42})).await;
        w.state("!r:hs.test", "m.room.canonical_alias", "", a, json!({"alias": "#r:hs.test"})).await;
        w.state("!r:hs.test", "m.room.topic", "", a, json!({"topic": "fallback",
            "m.topic": {"m.text": [{"mimetype": "text/html", "body": "<b>hi</b>"}, {"body": "hi"}]}})).await;
        // A state event with a non-empty state key does not feed room_stats_state.
        w.state("!r:hs.test", "m.room.name", "x", a, json!({"name": "not me"})).await;
        // Second room: not federatable, typed, topic without a string `topic`.
        w.room("!s:hs.test", Some("10")).await;
        w.state("!s:hs.test", "m.room.create", "", a, json!({"m.federate": false, "type": "m.space"})).await;
        w.state("!s:hs.test", "m.room.topic", "", a, json!({"m.topic": {"m.text": [{"body": "x"}]}})).await;
        // An existing state row keeps its guest_access.
        w.exec("INSERT INTO room_stats_state (room_id, guest_access, name) VALUES ('!s:hs.test', 'can_join', 'old')", &[]).await;
        let max_stream = (w.take_stream() - 1).to_string();

        start_job(&w.db, "populate_stats_process_rooms").await;
        let log = run_all(&w.db, &config(), 100).await;
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0].1, BatchResult::Progress { items: 2, progress: json!({"last_room_id": "!s:hs.test"}) });
        assert_eq!(log[1].1, BatchResult::Done { items: 1 });

        assert_eq!(w.rows(STATS_ROW).await, strs(&[
            &["!r:hs.test", "18", "4", "1", "1", "1", "2", "2", &max_stream],
            &["!s:hs.test", "2", "0", "0", "0", "0", "0", "0", &max_stream],
        ]));
        assert_eq!(w.rows(STATE_ROW).await, strs(&[
            &["!r:hs.test", "invite", "shared", "m.megolm.v1.aes-sha2", "NULL", "hi", "NULL", "#r:hs.test", "NULL", "1", "NULL"],
            &["!s:hs.test", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "can_join", "0", "m.space"],
        ]));
        let report = updraft_homeserver::verify::verify(&w.db, &config(), updraft_homeserver::verify::What::Stats).await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
    }

    async fn stats_batches_follow_room_ids(t) {
        let mut w = World::new(&t).await;
        for r in ["!a:hs.test", "!b:hs.test", "!c:hs.test"] {
            w.room_with(r, "@u:hs.test", "public").await;
        }
        start_job(&w.db, "populate_stats_process_rooms").await;
        let c = config();
        assert_eq!(estimate_of(&w.db, &c, "populate_stats_process_rooms").await, Some((0, Some(3))));
        assert_eq!(run_batch(&w.db, &c, "populate_stats_process_rooms", 2).await,
            BatchResult::Progress { items: 2, progress: json!({"last_room_id": "!b:hs.test"}) });
        assert_eq!(estimate_of(&w.db, &c, "populate_stats_process_rooms").await, Some((2, Some(3))));
        assert_eq!(w.rows("SELECT room_id FROM room_stats_current").await, strs(&[&["!a:hs.test"], &["!b:hs.test"]]));
        assert_eq!(progress_of(&w.db, "populate_stats_process_rooms").await, Some(json!({"last_room_id": "!b:hs.test"})));
        assert_eq!(run_batch(&w.db, &c, "populate_stats_process_rooms", 2).await,
            BatchResult::Progress { items: 1, progress: json!({"last_room_id": "!c:hs.test"}) });
        assert_eq!(run_batch(&w.db, &c, "populate_stats_process_rooms", 2).await, BatchResult::Done { items: 1 });
        assert_eq!(progress_of(&w.db, "populate_stats_process_rooms").await, None);
    }

    async fn unloadable_rooms_are_skipped_and_recorded(t) {
        let mut w = World::new(&t).await;
        w.user("@u:hs.test", UserOpts::default()).await;
        w.room_with("!good:hs.test", "@u:hs.test", "public").await;
        w.join("!good:hs.test", "@u:hs.test", None).await;
        // Unknown room version.
        w.room("!nover:hs.test", None).await;
        w.state("!nover:hs.test", "m.room.create", "", "@u:hs.test", json!({})).await;
        w.room("!weird:hs.test", Some("99")).await;
        w.state("!weird:hs.test", "m.room.create", "", "@u:hs.test", json!({})).await;
        // JSON that does not parse, and JSON that does not hash to its id.
        w.room("!broken:hs.test", Some("10")).await;
        let s = w.take_stream();
        w.store("!broken:hs.test", "m.room.create", "", "@u:hs.test", &json!({}), "$brokenid", "{not json", s).await;
        w.room("!tampered:hs.test", Some("10")).await;
        let id = w.state("!tampered:hs.test", "m.room.name", "", "@u:hs.test", json!({"name": "real"})).await;
        // Content is not covered by the reference hash (only by the content hash): change the timestamp.
        w.exec("UPDATE event_json SET json = REPLACE(json, '1700000000', '1800000000') WHERE event_id = ?", &[Some(&id)]).await;

        start_job(&w.db, "populate_stats_process_rooms").await;
        run_all(&w.db, &config(), 100).await;
        assert_eq!(w.rows("SELECT room_id FROM room_stats_current").await, strs(&[&["!good:hs.test"]]));
        assert_eq!(w.rows("SELECT room_id FROM room_stats_state").await, strs(&[&["!good:hs.test"]]));
        let skipped: Vec<String> = skipped_rooms(&w.db).await.unwrap().into_iter().map(|s| s.room_id).collect();
        assert_eq!(skipped, vec!["!broken:hs.test", "!nover:hs.test", "!tampered:hs.test", "!weird:hs.test"]);

        // The directory job skips them too and goes on.
        start_job(&w.db, "regenerate_directory").await;
        run_all(&w.db, &config(), 100).await;
        assert_eq!(w.rows("SELECT user_id, room_id FROM users_in_public_rooms").await, strs(&[&["@u:hs.test", "!good:hs.test"]]));
        let skipped = skipped_rooms(&w.db).await.unwrap();
        assert!(skipped.iter().any(|s| s.update_name == "populate_user_directory_process_rooms" && s.room_id == "!broken:hs.test"), "{skipped:?}");
    }

    async fn redacted_state_contributes_pruned_content(t) {
        let mut w = World::new(&t).await;
        w.db.execute("CREATE TABLE redactions (event_id TEXT NOT NULL, redacts TEXT NOT NULL, have_censored BOOL NOT NULL DEFAULT false, received_ts BIGINT, recheck boolean NOT NULL DEFAULT true, UNIQUE (event_id))").await.unwrap();
        let a = "@alice:hs.test";
        w.room_with("!r:hs.test", a, "public").await;
        let name = w.state("!r:hs.test", "m.room.name", "", a, json!({"name": "secret"})).await;
        let jr = w.state("!r:hs.test", "m.room.join_rules", "", a, json!({"join_rule": "public", "extra": 1})).await;
        let topic = w.state("!r:hs.test", "m.room.topic", "", a, json!({"topic": "kept"})).await;
        // name and join rules redacted (confirmed); the topic's redaction is by another server, unconfirmed.
        w.exec("INSERT INTO redactions (event_id, redacts, recheck) VALUES ('$r1', ?, FALSE)", &[Some(&name)]).await;
        w.exec("INSERT INTO redactions (event_id, redacts, recheck) VALUES ('$r2', ?, FALSE)", &[Some(&jr)]).await;
        let s = w.take_stream().to_string();
        w.exec(&format!("INSERT INTO events (stream_ordering, topological_ordering, event_id, type, room_id, processed, outlier, sender) VALUES ({s}, {s}, '$r3', 'm.room.redaction', '!r:hs.test', TRUE, FALSE, '@evil:other.org')"), &[]).await;
        w.exec("INSERT INTO redactions (event_id, redacts, recheck) VALUES ('$r3', ?, TRUE)", &[Some(&topic)]).await;
        start_job(&w.db, "populate_stats_process_rooms").await;
        run_all(&w.db, &config(), 100).await;
        assert_eq!(w.rows("SELECT name, join_rules, topic FROM room_stats_state").await, strs(&[&["NULL", "public", "kept"]]));
    }

    async fn directory_rules(t) {
        let mut w = World::new(&t).await;
        let opts = UserOpts::default;
        for u in ["@alice:hs.test", "@bob:hs.test", "@lonely:hs.test", "@guest:hs.test", "@admin:hs.test"] {
            w.user(u, opts()).await;
        }
        w.user("@guest2:hs.test", UserOpts { guest: true, ..opts() }).await;
        w.user("@dead:hs.test", UserOpts { deactivated: true, ..opts() }).await;
        w.user("@support:hs.test", UserOpts { user_type: Some("support"), ..opts() }).await;
        w.user("@bridgebot:hs.test", opts()).await;
        w.user("@irc_x:hs.test", opts()).await;
        w.profile("@alice:hs.test", Some("Alice GLOBAL"), Some("mxc://hs.test/a")).await;
        w.profile("@bob:hs.test", Some("Re\u{301}mi \u{FF22}ob \u{FB01}sh"), None).await;
        w.profile("@dead:hs.test", Some("Dead"), None).await;
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("as.yaml");
        std::fs::write(&reg, "id: irc\nas_token: a\nhs_token: h\nurl: null\nsender_localpart: bridgebot\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@irc_.*'\n").unwrap();
        let mut c = config();
        c.app_service_config_files = vec![reg];

        // Public room (join rule), many events.
        w.room_with("!pub:hs.test", "@alice:hs.test", "public").await;
        for u in ["@alice:hs.test", "@dead:hs.test", "@support:hs.test", "@irc_x:hs.test", "@bridgebot:hs.test", "@ghost:hs.test"] {
            w.join("!pub:hs.test", u, Some("per-room")).await;
        }
        w.join("!pub:hs.test", "@remote:other.org", Some("Remote in pub")).await;
        w.state("!pub:hs.test", "m.room.topic", "", "@alice:hs.test", json!({"topic": "x"})).await;
        // World-readable invite-only room.
        w.room_with("!wr:hs.test", "@bob:hs.test", "invite").await;
        w.state("!wr:hs.test", "m.room.history_visibility", "", "@bob:hs.test", json!({"history_visibility": "world_readable"})).await;
        w.join("!wr:hs.test", "@bob:hs.test", None).await;
        // Private room, fewer events: the remote user's last profile comes from here.
        w.room_with("!priv:hs.test", "@alice:hs.test", "invite").await;
        w.join("!priv:hs.test", "@alice:hs.test", Some("Alice in priv")).await;
        w.join("!priv:hs.test", "@bob:hs.test", None).await;
        w.join("!priv:hs.test", "@remote:other.org", Some("Remote in priv")).await;
        w.join("!priv:hs.test", "@dead:hs.test", None).await;
        w.member("!priv:hs.test", "@lonely:hs.test", "invite").await;
        w.join("!priv:hs.test", "@other:REMOTE.ORG", Some(" ")).await;
        // A room with no local member contributes nothing.
        w.room_with("!far:other.org", "@x:other.org", "public").await;
        w.join("!far:other.org", "@x:other.org", Some("X")).await;
        let pos = (w.take_stream() - 1).to_string();

        // Stale-profile marks: the remote user seen in a room is cleared, another is not.
        w.exec("INSERT INTO user_directory_stale_remote_users VALUES ('@remote:other.org', 'other.org', 0, 0), ('@x:other.org', 'other.org', 0, 0)", &[]).await;
        start_job(&w.db, "regenerate_directory").await;
        let log = run_all(&w.db, &c, 100).await;
        assert_eq!(w.rows("SELECT user_id FROM user_directory_stale_remote_users").await, strs(&[&["@x:other.org"]]));
        assert!(log.iter().all(|(_, r)| r.items() > 0));

        assert_eq!(w.rows("SELECT user_id, room_id, display_name, avatar_url FROM user_directory").await, strs(&[
            &["@admin:hs.test", "NULL", "NULL", "NULL"],
            &["@alice:hs.test", "NULL", "Alice GLOBAL", "mxc://hs.test/a"],
            &["@bob:hs.test", "NULL", "Re\u{301}mi \u{FF22}ob \u{FB01}sh", "NULL"],
            &["@guest2:hs.test", "NULL", "NULL", "NULL"],
            &["@guest:hs.test", "NULL", "NULL", "NULL"],
            &["@lonely:hs.test", "NULL", "NULL", "NULL"],
            &["@other:REMOTE.ORG", "NULL", " ", "NULL"],
            &["@remote:other.org", "NULL", "Remote in priv", "NULL"],
        ]));
        assert_eq!(w.rows("SELECT user_id, room_id FROM users_in_public_rooms").await, strs(&[
            &["@alice:hs.test", "!pub:hs.test"],
            &["@remote:other.org", "!pub:hs.test"],
            &["@bob:hs.test", "!wr:hs.test"],
        ]));
        let mut pairs = Vec::new();
        for l in ["@alice:hs.test", "@bob:hs.test"] {
            for m in ["@alice:hs.test", "@bob:hs.test", "@remote:other.org", "@other:REMOTE.ORG"] {
                if l != m {
                    pairs.push(vec![l.to_string(), m.to_string(), "!priv:hs.test".to_string()]);
                }
            }
        }
        pairs.sort();
        assert_eq!(w.rows("SELECT user_id, other_user_id, room_id FROM users_who_share_private_rooms").await, pairs);
        assert_eq!(w.rows("SELECT stream_id FROM user_directory_stream_pos").await, vec![vec![pos]]);
        let search = match t.engine() {
            Engine::Sqlite => w.rows("SELECT user_id, value FROM user_directory_search").await,
            Engine::Postgres => w.rows("SELECT user_id, vector::text FROM user_directory_search").await,
        };
        let bob = search.iter().find(|r| r[0] == "@bob:hs.test").unwrap();
        match t.engine() {
            Engine::Sqlite => {
                assert_eq!(bob[1], "@bob:hs.test r\u{e9}mi bob fish");
                assert!(search.contains(&vec!["@admin:hs.test".into(), "@admin:hs.test".into()]));
            }
            Engine::Postgres => assert_eq!(bob[1], "'bob':1A,4B 'fish':5B 'hs.test':2 'rémi':3B"),
        }
        assert_eq!(search.len(), 8);
        let report = updraft_homeserver::verify::verify(&w.db, &c, updraft_homeserver::verify::What::All).await.unwrap();
        assert!(report.drift.keys().all(|k| k.contains("stats")), "{report:#?}");
        // Stage tables are gone.
        let tables = w.db.table_names().await.unwrap();
        assert!(!tables.iter().any(|t| t.starts_with("_temp_populate_user_directory")), "{tables:?}");
    }

    async fn directory_batch_of_only_app_service_users(t) {
        // One user per batch: some process_users batches hold nothing but
        // excluded app-service users (an empty list to look up, on both engines).
        let w = World::new(&t).await;
        for u in ["@alice:hs.test", "@bridgebot:hs.test", "@irc_a:hs.test", "@irc_b:hs.test", "@zed:hs.test"] {
            w.user(u, UserOpts::default()).await;
        }
        w.profile("@zed:hs.test", Some("Zed"), None).await;
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("as.yaml");
        std::fs::write(&reg, "id: irc\nas_token: a\nhs_token: h\nurl: null\nsender_localpart: bridgebot\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@irc_.*'\n").unwrap();
        let mut c = config();
        c.app_service_config_files = vec![reg];
        start_job(&w.db, "regenerate_directory").await;
        let log = run_all(&w.db, &c, 1).await;
        let users: Vec<u64> = log.iter().filter(|(u, _)| u == "populate_user_directory_process_users").map(|(_, r)| r.items()).collect();
        assert_eq!(users, [1, 1, 1, 1, 1, 1], "five users one by one, then the end");
        assert_eq!(w.rows("SELECT user_id, display_name FROM user_directory").await, strs(&[
            &["@alice:hs.test", "NULL"],
            &["@zed:hs.test", "Zed"],
        ]));
        assert_eq!(w.rows("SELECT user_id FROM user_directory_search").await, strs(&[&["@alice:hs.test"], &["@zed:hs.test"]]));
    }

    async fn directory_progress_json_is_synapses(t) {
        let mut w = World::new(&t).await;
        for u in ["@a:hs.test", "@b:hs.test", "@c:hs.test", "@d:hs.test", "@e:hs.test"] {
            w.user(u, UserOpts::default()).await;
        }
        // Rooms of 5, 4 and 3 current state events.
        w.room_with("!big:hs.test", "@a:hs.test", "invite").await;
        for u in ["@a:hs.test", "@b:hs.test", "@c:hs.test"] { w.join("!big:hs.test", u, None).await; }
        w.room_with("!mid:hs.test", "@a:hs.test", "invite").await;
        for u in ["@a:hs.test", "@d:hs.test"] { w.join("!mid:hs.test", u, None).await; }
        w.room_with("!small:hs.test", "@a:hs.test", "public").await;
        w.join("!small:hs.test", "@e:hs.test", None).await;
        start_job(&w.db, "regenerate_directory").await;
        let c = config();
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_createtables", 100).await, BatchResult::Done { items: 1 });
        assert_eq!(w.rows("SELECT room_id, events FROM _temp_populate_user_directory_rooms").await,
            strs(&[&["!big:hs.test", "5"], &["!mid:hs.test", "4"], &["!small:hs.test", "3"]]));
        // Estimates in batch units: 12 state events, then 5 of them done.
        assert_eq!(estimate_of(&w.db, &c, "populate_user_directory_process_rooms").await, Some((0, Some(12))));
        // 5 > 4: the batch stops after the first room.
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_rooms", 4).await,
            BatchResult::Progress { items: 5, progress: json!({"remaining": 2}) });
        assert_eq!(estimate_of(&w.db, &c, "populate_user_directory_process_rooms").await, Some((5, Some(12))));
        // 4 + 3 = 7 > 5, but 4 <= 5 so both rooms go.
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_rooms", 5).await,
            BatchResult::Progress { items: 7, progress: json!({"remaining": 0}) });
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_rooms", 5).await, BatchResult::Done { items: 1 });
        // Users: Synapse counts what is left after taking the batch, then subtracts the batch.
        assert_eq!(estimate_of(&w.db, &c, "populate_user_directory_process_users").await, Some((0, Some(5))));
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_users", 2).await,
            BatchResult::Progress { items: 2, progress: json!({"remaining": 1}) });
        assert_eq!(estimate_of(&w.db, &c, "populate_user_directory_process_users").await, Some((2, Some(5))));
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_users", 2).await,
            BatchResult::Progress { items: 2, progress: json!({"remaining": -1}) });
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_users", 2).await,
            BatchResult::Progress { items: 1, progress: json!({"remaining": -2}) });
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_process_users", 2).await, BatchResult::Done { items: 1 });
        assert_eq!(run_batch(&w.db, &c, "populate_user_directory_cleanup", 2).await, BatchResult::Done { items: 1 });
        assert_eq!(w.db.count_rows("user_directory").await.unwrap(), 5);
        assert_eq!(w.db.count_rows("users_who_share_private_rooms").await.unwrap(), 8);
    }

    async fn synapse_half_done_rebuild_is_finished(t) {
        let mut w = World::new(&t).await;
        for u in ["@a:hs.test", "@b:hs.test"] {
            w.user(u, UserOpts::default()).await;
        }
        w.room_with("!one:hs.test", "@a:hs.test", "invite").await;
        w.join("!one:hs.test", "@a:hs.test", None).await;
        w.join("!one:hs.test", "@r:remote.org", Some("From one")).await;
        w.room_with("!two:hs.test", "@b:hs.test", "public").await;
        w.join("!two:hs.test", "@b:hs.test", None).await;
        w.join("!two:hs.test", "@r:remote.org", Some("From two")).await;
        w.state("!two:hs.test", "m.room.topic", "", "@b:hs.test", json!({"topic": "bigger"})).await;
        // Synapse's state after creating the stage and processing room two
        // (the bigger one): stage rows, directory rows, progress.
        w.db.execute_script(
            "CREATE TABLE _temp_populate_user_directory_rooms AS SELECT room_id, count(*) AS events FROM current_state_events GROUP BY room_id;
             CREATE TABLE _temp_populate_user_directory_position (position BIGINT NOT NULL);
             INSERT INTO _temp_populate_user_directory_position VALUES (77);
             CREATE TABLE _temp_populate_user_directory_users AS SELECT name AS user_id FROM users;
             DELETE FROM _temp_populate_user_directory_rooms WHERE room_id = '!two:hs.test';
             INSERT INTO user_directory (user_id, display_name) VALUES ('@r:remote.org', 'From two');
             INSERT INTO users_in_public_rooms VALUES ('@b:hs.test', '!two:hs.test'), ('@r:remote.org', '!two:hs.test');
             INSERT INTO background_updates (update_name, progress_json, depends_on) VALUES
               ('populate_user_directory_process_rooms', '{\"remaining\": 1}', 'populate_user_directory_createtables'),
               ('populate_user_directory_process_users', '{}', 'populate_user_directory_process_rooms'),
               ('populate_user_directory_cleanup', '{}', 'populate_user_directory_process_users');"
        ).await.unwrap();
        let search = match t.engine() {
            Engine::Sqlite => "INSERT INTO user_directory_search (user_id, value) VALUES ('@r:remote.org', '@r:remote.org from two')",
            Engine::Postgres => "INSERT INTO user_directory_search (user_id, vector) VALUES ('@r:remote.org', to_tsvector('simple', 'from two'))",
        };
        w.db.execute(search).await.unwrap();

        let log = run_all(&w.db, &config(), 100).await;
        assert_eq!(log[0].1, BatchResult::Progress { items: 4, progress: json!({"remaining": 0}) });
        assert_eq!(w.rows("SELECT user_id, display_name FROM user_directory").await, strs(&[
            &["@a:hs.test", "NULL"], &["@b:hs.test", "NULL"], &["@r:remote.org", "From one"],
        ]));
        assert_eq!(w.rows("SELECT user_id FROM user_directory_search").await, strs(&[&["@a:hs.test"], &["@b:hs.test"], &["@r:remote.org"]]));
        assert_eq!(w.db.count_rows("users_in_public_rooms").await.unwrap(), 2);
        assert_eq!(w.rows("SELECT user_id, other_user_id FROM users_who_share_private_rooms").await,
            strs(&[&["@a:hs.test", "@r:remote.org"]]));
        assert_eq!(w.rows("SELECT stream_id FROM user_directory_stream_pos").await, vec![vec!["77".to_string()]]);
    }
}

#[tokio::test]
async fn nul_and_non_string_profiles_become_null_on_sqlite() {
    // PostgreSQL text cannot hold U+0000 or another type; SQLite can (a
    // blob: TEXT affinity turns numbers into text).
    let t = updraft_testkit::TestDb::sqlite().await;
    let mut w = World::new(&t).await;
    w.user("@a:hs.test", UserOpts::default()).await;
    w.user("@b:hs.test", UserOpts::default()).await;
    w.exec("INSERT INTO profiles (user_id, full_user_id, displayname, avatar_url) VALUES ('a', '@a:hs.test', ?, X'3530')", &[Some("x\u{0}y")]).await;
    w.room_with("!r:hs.test", "@a:hs.test", "invite").await;
    w.join("!r:hs.test", "@a:hs.test", None).await;
    let id = w.join("!r:hs.test", "@z:far.org", None).await;
    w.exec(
        "UPDATE room_memberships SET display_name = ?, avatar_url = X'37' WHERE event_id = ?",
        &[Some("n\u{0}ul"), Some(&id)],
    )
    .await;
    start_job(&w.db, "regenerate_directory").await;
    run_all(&w.db, &config(), 100).await;
    assert_eq!(
        w.rows("SELECT user_id, display_name, avatar_url FROM user_directory")
            .await,
        strs(&[
            &["@a:hs.test", "NULL", "NULL"],
            &["@b:hs.test", "NULL", "NULL"],
            &["@z:far.org", "NULL", "NULL"],
        ])
    );
}
