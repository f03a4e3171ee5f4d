//! `updraft run` end to end: the real binary on a real database (both engines).

use std::process::Command;

use updraft_engine::{queue, UpdateRow};

fn updraft(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .expect("run updraft");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn queued(db: &updraft_engine::Db) -> Vec<String> {
    queue::list(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.update_name)
        .collect()
}

updraft_testkit::both_engines! {
    async fn runs_known_updates_and_leaves_unknown_ones_queued(t) {
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        queue::insert(&opened.db, &[
            UpdateRow::new("populate_stats_process_rooms", ""),
            UpdateRow::new("event_search_ts_index", ""),
        ]).await.unwrap();
        let (code, out, err) = updraft(&t.url(), &["run", "--no-progress"]);
        assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
        assert!(out.contains("2 pending background update(s)"), "{out}");
        assert!(out.contains("1 update(s) have no handler in updraft and stay in the queue: event_search_ts_index"), "{out}");
        assert!(out.contains("running: populate_stats_process_rooms"), "{out}");
        assert!(out.contains("all 1 selected update(s) finished"), "{out}");
        // An empty world: the stats job's single call ends it (Synapse's 1 item).
        assert!(out.contains("finished populate_stats_process_rooms: 1 items in 1 batches"), "{out}\n{err}");
        assert_eq!(queued(&opened.db).await, ["event_search_ts_index"]);
        // Nothing left that updraft knows: a second run has nothing to do.
        let (code, out, _) = updraft(&t.url(), &["run", "--no-progress"]);
        assert_eq!(code, 0);
        assert!(out.contains("nothing to run"), "{out}");
    }

    async fn a_known_update_waiting_for_an_unknown_one_is_reported(t) {
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        queue::insert(&opened.db, &[
            UpdateRow::new("populate_stats_process_rooms", "synapse_thing"),
            UpdateRow::new("synapse_thing", ""),
        ]).await.unwrap();
        let (code, out, err) = updraft(&t.url(), &["run", "--no-progress"]);
        assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
        assert!(out.contains("1 selected update(s) not finished: populate_stats_process_rooms"), "{out}");
        assert!(out.contains("runner ABORTED: update populate_stats_process_rooms waits for synapse_thing, which this runner does not run"), "{out}");
        assert_eq!(queued(&opened.db).await.len(), 2);
    }

    async fn only_refuses_names_it_cannot_run(t) {
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        queue::insert(&opened.db, &[UpdateRow::new("synapse_thing", "")]).await.unwrap();
        let (code, _, err) = updraft(&t.url(), &["run", "--only", "synapse_thing"]);
        assert_eq!(code, 2);
        assert!(err.contains("updraft has no handler for: synapse_thing"), "{err}");
        let (code, _, err) = updraft(&t.url(), &["run", "--only", "populate_stats_process_rooms"]);
        assert_eq!(code, 2);
        assert!(err.contains("not in the queue: populate_stats_process_rooms"), "{err}");
        assert_eq!(queued(&opened.db).await, ["synapse_thing"]);
    }
}
