//! `verify`: clean after the jobs, and each kind of drift found and counted,
//! on both engines.

mod support;

use serde_json::json;
use support::*;
use updraft_homeserver::verify::{verify, What};
use updraft_testkit::both_engines;

async fn world(t: &updraft_testkit::TestDb) -> World {
    let mut w = World::new(t).await;
    let o = UserOpts::default;
    for u in ["@a:hs.test", "@b:hs.test", "@c:hs.test"] {
        w.user(u, o()).await;
    }
    w.user(
        "@dead:hs.test",
        UserOpts {
            deactivated: true,
            ..o()
        },
    )
    .await;
    w.profile("@a:hs.test", Some("Anna"), None).await;
    w.room_with("!pub:hs.test", "@a:hs.test", "public").await;
    w.join("!pub:hs.test", "@a:hs.test", Some("room name"))
        .await;
    // @r's directory profile comes from the room with fewer state events: !pub.
    w.join("!pub:hs.test", "@r:far.org", Some("R big")).await;
    w.state(
        "!pub:hs.test",
        "m.room.name",
        "",
        "@a:hs.test",
        json!({"name": "Pub"}),
    )
    .await;
    w.room_with("!priv:hs.test", "@b:hs.test", "invite").await;
    for u in ["@b:hs.test", "@c:hs.test", "@dead:hs.test"] {
        w.join("!priv:hs.test", u, None).await;
    }
    w.join("!priv:hs.test", "@r:far.org", Some("R small")).await;
    w.member("!priv:hs.test", "@k:far.org", "knock").await;
    start_job(&w.db, "populate_stats_process_rooms").await;
    start_job(&w.db, "regenerate_directory").await;
    run_all(&w.db, &config(), 3).await;
    w
}

both_engines! {
    async fn clean_after_both_jobs(t) {
        let w = world(&t).await;
        let report = verify(&w.db, &config(), What::All).await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.checked["stats_rooms"], 2);
        assert_eq!(report.checked["directory_users"], 4);
        // b and c (dead is excluded) each paired with the two other members.
        assert_eq!(report.checked["pairs"], 4);
    }

    async fn one_shot_rebuild_baseline_builds_the_same_directory(t) {
        let w = world(&t).await;
        w.exec("DELETE FROM user_directory", &[]).await;
        w.exec("DELETE FROM users_who_share_private_rooms", &[]).await;
        updraft_homeserver::jobs::rebuild_directory_one_shot(&w.db, SERVER).await.unwrap();
        let report = verify(&w.db, &config(), What::Directory).await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.checked["directory_users"], 4);
    }

    async fn every_drift_kind_is_counted(t) {
        let w = world(&t).await;
        w.exec("DELETE FROM user_directory WHERE user_id = '@c:hs.test'", &[]).await;
        w.exec("UPDATE user_directory SET display_name = 'R small' WHERE user_id = '@r:far.org'", &[]).await;
        w.exec("INSERT INTO user_directory (user_id) VALUES ('@dead:hs.test')", &[]).await;
        w.exec("DELETE FROM users_in_public_rooms WHERE user_id = '@r:far.org'", &[]).await;
        w.exec("INSERT INTO users_who_share_private_rooms VALUES ('@r:far.org', '@b:hs.test', '!priv:hs.test')", &[]).await;
        w.exec("DELETE FROM users_who_share_private_rooms WHERE user_id = '@b:hs.test' AND other_user_id = '@c:hs.test'", &[]).await;
        w.exec("UPDATE room_stats_current SET knocked_members = 0 WHERE room_id = '!priv:hs.test'", &[]).await;
        w.exec("UPDATE room_stats_state SET name = 'Renamed' WHERE room_id = '!pub:hs.test'", &[]).await;
        w.exec("UPDATE user_directory_stream_pos SET stream_id = 1", &[]).await;
        let report = verify(&w.db, &config(), What::All).await.unwrap();
        let count = |k: &str| report.drift.get(k).map(|d| d.count).unwrap_or(0);
        assert_eq!(count("missing_user"), 1, "{report:#?}");
        assert_eq!(report.drift["missing_user"].examples, vec!["@c:hs.test"]);
        assert_eq!(count("extra_user"), 1);
        assert_eq!(count("wrong_profile"), 1);
        assert_eq!(count("missing_public_member"), 1);
        assert_eq!(count("extra_pair"), 1);
        assert_eq!(count("missing_pair"), 1);
        assert_eq!(count("wrong_counter"), 1);
        assert_eq!(count("wrong_room_state"), 1);
        assert_eq!(count("stale_stream_position"), 1);
        // The search rows of @c (left behind) and @dead (never written); on
        // SQLite the FTS value is compared too, so @r's old name counts.
        let expected_search = if t.engine() == updraft_engine::Engine::Sqlite { 3 } else { 2 };
        assert_eq!(count("wrong_search_row"), expected_search, "{:?}", report.drift["wrong_search_row"]);
        assert!(!report.is_clean());
        // Only the stats half.
        let stats = verify(&w.db, &config(), What::Stats).await.unwrap();
        assert_eq!(stats.drift.keys().collect::<Vec<_>>(), vec!["wrong_counter", "wrong_room_state"]);
    }
}
