//! `updraft run` end to end: the real binary on a real database (both engines).

use std::process::Command;

use updraft_engine::{queue, UpdateRow};
use updraft_homeserver::jobs::job_rows;

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

    async fn updates_are_listed_in_run_order(t) {
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        queue::insert(&opened.db, &job_rows("regenerate_directory").unwrap()).await.unwrap();
        let (code, out, err) = updraft(&t.url(), &["run", "--no-progress"]);
        assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
        let chain = [
            "populate_user_directory_createtables",
            "populate_user_directory_process_rooms",
            "populate_user_directory_process_users",
            "populate_user_directory_cleanup",
        ];
        assert!(out.contains(&format!("running: {}", chain.join(", "))), "{out}");
        let finished: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("finished "))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(finished, chain, "{out}");
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

    async fn start_job_queues_what_the_admin_api_queues(t) {
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        let (code, out, err) = updraft(&t.url(), &["start-job", "regenerate_directory"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert_eq!(out.lines().collect::<Vec<_>>(), [
            "queued populate_user_directory_createtables",
            "queued populate_user_directory_process_rooms",
            "queued populate_user_directory_process_users",
            "queued populate_user_directory_cleanup",
        ]);
        // The queue lists by (ordering, update_name).
        let rows = queue::list(&opened.db).await.unwrap();
        let mut want = updraft_homeserver::jobs::job_rows("regenerate_directory").unwrap();
        want.sort_by(|a, b| a.update_name.cmp(&b.update_name));
        assert_eq!(rows, want);
        // Again: Synapse's message, nothing inserted.
        let (code, _, err) = updraft(&t.url(), &["start-job", "regenerate_directory"]);
        assert_eq!(code, 1);
        assert_eq!(err.trim(), "Job regenerate_directory is already in queue of background updates.");
        let (code, _, err) = updraft(&t.url(), &["start-job", "rebuild_everything"]);
        assert_eq!(code, 2);
        assert!(err.contains("Invalid job_name \"rebuild_everything\""), "{err}");
        assert_eq!(queue::list(&opened.db).await.unwrap(), rows);
        // `updraft run` then runs it.
        let (code, out, _) = updraft(&t.url(), &["start-job", "populate_stats_process_rooms"]);
        assert_eq!((code, out.trim()), (0, "queued populate_stats_process_rooms"));
        let (code, out, err) = updraft(&t.url(), &["run", "--no-progress"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("all 5 selected update(s) finished"), "{out}");
        assert!(queued(&opened.db).await.is_empty());
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

/// Seeds a world (seed 7) into `url` through the real binary.
fn seed(url: &str, shape: &str, config: &std::path::Path, appservice: &std::path::Path) {
    let (code, out, err) = updraft(
        url,
        &[
            "-c",
            config.to_str().unwrap(),
            "seed",
            "--shape",
            shape,
            "--seed",
            "7",
            "--quiet",
            "--appservice-file",
            appservice.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "seed failed: {out}\n{err}");
}

/// Batches of one item (a target duration of 0 ms keeps every batch at
/// `min_batch_size`), so a run is thousands of transactions long and batch
/// boundaries are the same in every run; a short lease so a killed run's
/// database is taken over quickly.
const SMALL_BATCHES: &str = "server_name: example.org
background_updates:
  default_batch_size: 1
  min_batch_size: 1
  background_update_duration_ms: 0
  runner_lease_ms: 50
";

/// The `small` world with 3,000 local users and rooms of at most 40 members:
/// thousands of batches of a few milliseconds each, so random kills land all over the run
/// (a 400-member private room would be one long batch that every kill hits).
fn small_rooms_shape(dir: &std::path::Path) -> String {
    let small = include_str!("../../../fixtures/worlds/small.toml");
    assert!(small.contains("max_size = 500") && small.contains("local = 1000 "));
    let path = dir.join("small-rooms.toml");
    let shape = small
        .replace("max_size = 500", "max_size = 40")
        .replace("local = 1000 ", "local = 3000 ");
    std::fs::write(&path, shape).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Queues both jobs, as `start_job` would.
async fn queue_both_jobs(db: &updraft_engine::Db) {
    for job in ["populate_stats_process_rooms", "regenerate_directory"] {
        let rows = updraft_homeserver::jobs::job_rows(job).unwrap();
        queue::insert(db, &rows).await.unwrap();
    }
}

/// The queue with each row's progress: it changes with every committed batch.
async fn progress(db: &updraft_engine::Db) -> Vec<(String, String)> {
    queue::list(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.update_name, r.progress_json))
        .collect()
}

updraft_testkit::both_engines! {
    async fn runs_killed_at_random_points_end_like_an_uninterrupted_one(t) {
        let reference = updraft_testkit::TestDb::new(t.engine()).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("homeserver.yaml");
        std::fs::write(&config, SMALL_BATCHES).unwrap();
        let appservice = dir.path().join("appservice.yaml");
        let cfg = config.to_str().unwrap();
        let shape = small_rooms_shape(dir.path());
        let mut dbs = Vec::new();
        for target in [&t, &reference] {
            seed(&target.url(), &shape, &config, &appservice);
            let opened = updraft_homeserver::open(&target.target, Default::default()).await.unwrap();
            queue_both_jobs(&opened.db).await;
            dbs.push(opened.db);
        }
        let (code, out, err) = updraft(&reference.url(), &["-c", cfg, "run", "--no-progress"]);
        assert_eq!(code, 0, "{out}\n{err}");

        // 20 runs, each SIGKILLed at a pseudo-random instant. A run first
        // waits up to a lease (50 ms) for the killed one's lease to expire,
        // then works: kills land up to ~150 ms into the work.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let (mut killed_alive, mut killed_after_progress) = (0, 0);
        for _ in 0..20 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let delay = 80 + (state >> 33) % 150;
            let before = progress(&dbs[0]).await;
            let mut child = Command::new(env!("CARGO_BIN_EXE_updraft"))
                .args(["--database-url", &t.url(), "-c", cfg, "run", "--no-progress"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay));
            let alive = child.try_wait().unwrap().is_none();
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            if alive {
                killed_alive += 1;
                if progress(&dbs[0]).await != before {
                    killed_after_progress += 1;
                }
            }
        }
        assert_eq!(killed_alive, 20, "a run finished before its kill: the world is too small");
        assert!(killed_after_progress >= 15, "only {killed_after_progress} of 20 kills came after some batches");
        assert!(!queued(&dbs[0]).await.is_empty(), "the killed runs finished everything");
        let (code, out, err) = updraft(&t.url(), &["-c", cfg, "run", "--no-progress"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(queued(&dbs[0]).await.is_empty());
        let got = updraft_homeserver::dump::dump(&dbs[0]).await.unwrap();
        let want = updraft_homeserver::dump::dump(&dbs[1]).await.unwrap();
        assert!(want["user_directory"].len() > 2500 && want["room_stats_current"].len() > 250);
        assert_eq!(got, want);
    }
}

/// Two `updraft run` processes on one PostgreSQL database: the second starts
/// while the first is running batches, waits for the lease, and the result
/// equals a single run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_database_take_turns_postgres() {
    use std::io::BufRead;
    let t = updraft_testkit::TestDb::postgres().await;
    let reference = updraft_testkit::TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("homeserver.yaml");
    std::fs::write(&config, SMALL_BATCHES).unwrap();
    let appservice = dir.path().join("appservice.yaml");
    let cfg = config.to_str().unwrap();
    // Thousands of short batches: the first run is still busy when the second starts.
    let shape = small_rooms_shape(dir.path());
    let mut dbs = Vec::new();
    for target in [&t, &reference] {
        seed(&target.url(), &shape, &config, &appservice);
        let opened = updraft_homeserver::open(&target.target, Default::default())
            .await
            .unwrap();
        queue_both_jobs(&opened.db).await;
        dbs.push(opened.db);
    }
    let (code, _, _) = updraft(&reference.url(), &["-c", cfg, "run", "--no-progress"]);
    assert_eq!(code, 0);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args([
                "--database-url",
                &t.url(),
                "-c",
                cfg,
                "run",
                "--no-progress",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = spawn();
    // Start the second run once the first has begun an update.
    let mut a_out = std::io::BufReader::new(a.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("running:") {
        let mut line = String::new();
        assert!(
            a_out.read_line(&mut line).unwrap() > 0,
            "first run ended early: {seen}"
        );
        seen.push_str(&line);
    }
    let rest = std::thread::spawn(move || std::io::read_to_string(a_out).unwrap());
    let b = spawn();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    seen.push_str(&rest.join().unwrap());
    let logs: Vec<String> = [&a, &b]
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(a.status.success() && b.status.success(), "{seen}\n{logs:?}");
    assert!(
        logs[1].contains("another runner holds this database"),
        "the second run did not wait for the first: {logs:?}"
    );
    assert!(queued(&dbs[0]).await.is_empty());
    let got = updraft_homeserver::dump::dump(&dbs[0]).await.unwrap();
    let want = updraft_homeserver::dump::dump(&dbs[1]).await.unwrap();
    assert_eq!(got, want);
}

updraft_testkit::both_engines! {
    async fn max_batches_stops_after_that_many_committed_batches(t) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("homeserver.yaml");
        std::fs::write(&config, SMALL_BATCHES).unwrap();
        let appservice = dir.path().join("appservice.yaml");
        let cfg = config.to_str().unwrap();
        seed(&t.url(), "tiny", &config, &appservice);
        let opened = updraft_homeserver::open(&t.target, Default::default()).await.unwrap();
        queue_both_jobs(&opened.db).await;
        // One room per batch: 5 batches of the stats job (first in the queue).
        let (code, out, err) = updraft(&t.url(), &["-c", cfg, "run", "--no-progress", "--max-batches", "5"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("stopped after 5 batch(es) (--max-batches)"), "{out}");
        let rooms: Vec<String> = match &opened.db {
            updraft_engine::Db::Sqlite(p) => sqlx::query_scalar("SELECT DISTINCT room_id FROM current_state_events ORDER BY room_id").fetch_all(p).await.unwrap(),
            updraft_engine::Db::Postgres(p) => sqlx::query_scalar("SELECT DISTINCT room_id FROM current_state_events ORDER BY room_id").fetch_all(p).await.unwrap(),
        };
        let stats = progress(&opened.db).await;
        assert_eq!(stats[0], (
            "populate_stats_process_rooms".to_owned(),
            serde_json::json!({"last_room_id": rooms[4]}).to_string(),
        ));
        assert_eq!(stats.len(), 5);
        let written = updraft_homeserver::dump::dump(&opened.db).await.unwrap();
        assert_eq!(written["room_stats_current"].len(), 5);
        // The rest finishes from there.
        let (code, out, _) = updraft(&t.url(), &["-c", cfg, "run", "--no-progress"]);
        assert_eq!(code, 0, "{out}");
        assert!(queued(&opened.db).await.is_empty());
        let written = updraft_homeserver::dump::dump(&opened.db).await.unwrap();
        assert_eq!(written["room_stats_current"].len(), rooms.len());
    }
}
