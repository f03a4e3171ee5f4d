//! Golden tables: the `tiny` world (seed 1) seeded and run with the real
//! `updraft` binary must give exactly the derived tables that real Synapse
//! 1.163.2 wrote for the same world (`fixtures/golden/`, made by
//! `cargo xtask golden`, never by updraft), on both engines. The only
//! tolerance is Synapse's documented one: a remote user in several rooms of
//! equally many state rows may carry either room's profile.

use std::process::Command;

use updraft_engine::{queue, Engine};
use updraft_homeserver::dump;

fn updraft(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(args)
        .output()
        .expect("run updraft");
    assert!(
        out.status.success(),
        "updraft {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

updraft_testkit::both_engines! {
    async fn tiny_world_matches_synapses_tables(t) {
        let golden = match t.engine() {
            Engine::Sqlite => include_str!("../../../fixtures/golden/tiny-seed1-sqlite.txt"),
            Engine::Postgres => include_str!("../../../fixtures/golden/tiny-seed1-postgres.txt"),
        };
        let expected = dump::from_text(golden);
        let dir = tempfile::tempdir().unwrap();
        let appservice = dir.path().join("appservice.yaml");
        let config = dir.path().join("homeserver.yaml");
        std::fs::write(&config, format!(
            "server_name: example.org\napp_service_config_files:\n  - {}\n",
            appservice.display()
        )).unwrap();
        let (url, cfg) = (t.url(), config.to_str().unwrap().to_owned());
        let common = ["--database-url", url.as_str(), "-c", cfg.as_str()];
        updraft(&[&common[..], &["seed", "--shape", "tiny", "--seed", "1", "--quiet",
            "--appservice-file", appservice.to_str().unwrap()]].concat());
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        for job in ["populate_stats_process_rooms", "regenerate_directory"] {
            let rows = updraft_homeserver::jobs::job_rows(job).unwrap();
            queue::insert(&opened.db, &rows).await.unwrap();
        }
        updraft(&[&common[..], &["run", "--no-progress"]].concat());

        let actual = dump::dump(&opened.db).await.unwrap();
        let choices = dump::remote_profile_choices(&opened.db, "example.org").await.unwrap();
        let diff = dump::compare(&expected, &actual, &choices);
        for (table, d) in &diff {
            assert!(d.missing.is_empty() && d.extra.is_empty(),
                "{table}: only in Synapse's golden file {:?}, only in updraft's {:?}", d.missing, d.extra);
        }
        // The golden file is a real one: every derived table has rows.
        for table in ["room_stats_current", "room_stats_state", "user_directory", "users_in_public_rooms",
                      "users_who_share_private_rooms", "user_directory_search", "user_directory_stream_pos"] {
            assert!(diff[table].compared > 0, "{table} is empty in the golden file");
        }
        assert_eq!(diff["user_directory"].compared, 49);
    }
}
