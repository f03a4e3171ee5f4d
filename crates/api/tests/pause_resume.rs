//! Issue 6's end-to-end check, through real HTTP only: on a generated world,
//! start the directory and stats jobs, pause them mid-way, see that nothing
//! moves for 2 s, resume, let them finish, and read the results back through
//! the room admin API and user directory search.

use std::time::{Duration, Instant};

use updraft_api::client::{RoomQuery, RunnerInfo, UpdatesStatus};
use updraft_api::{router, AppState, Client};
use updraft_engine::{BackgroundUpdatesConfig, Db, Updater, MAIN_DATABASE};
use updraft_homeserver::{jobs, Config};
use updraft_testkit::TestDb;
use updraft_workload::{SeedOptions, Shape};

/// Long enough for a slow, shared 2-core machine; polls end as soon as they can.
const PATIENCE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);

/// Seeds the tiny world into `t`, starts the engine (paced so a job takes
/// many small batches) and the server on a free loopback port. Returns an
/// admin client, the database (for reading the source rows only) and the
/// world's server name.
async fn start(t: &TestDb) -> (Client, Db, String) {
    let db = updraft_homeserver::open(&t.target, Default::default())
        .await
        .expect("open schema")
        .db;
    let shape = Shape::load("tiny").expect("tiny shape");
    let report = updraft_workload::seed(&db, &shape, 1, SeedOptions::default())
        .await
        .expect("seed");
    // A 1 ms batch target keeps batches small, and the 50 ms sleep before
    // each batch leaves room to pause between them.
    let bg = BackgroundUpdatesConfig {
        sleep_enabled: true,
        sleep_duration_ms: 50,
        background_update_duration_ms: 1,
        default_batch_size: 1,
        min_batch_size: 1,
        ..Default::default()
    };
    let config = Config {
        server_name: report.server_name.clone(),
        background_updates: bg.clone(),
        ..Config::default()
    };
    let updater = Updater::builder(bg)
        .database(MAIN_DATABASE, db.clone(), jobs::registry(&config))
        .build()
        .await
        .expect("build updater");
    updater.start();
    let state = AppState::new(db.clone(), config, updater);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let client = Client::new(&format!("http://{addr}"))
        .unwrap()
        .with_token(report.admin_access_token);
    (client, db, report.server_name)
}

/// What must stay still while paused: the status counters and, per
/// database, each queued row with its progress.
#[derive(Debug, PartialEq)]
struct Snapshot {
    status: UpdatesStatus,
    queue: Vec<(String, Vec<(String, String)>)>,
}

async fn snapshot(admin: &Client) -> Snapshot {
    let queue = admin.queue().await.unwrap();
    Snapshot {
        status: admin.status().await.unwrap(),
        queue: queue
            .iter()
            .map(|r: &RunnerInfo| {
                let rows = r
                    .queue
                    .iter()
                    .map(|q| (q.update_name.clone(), q.progress_json.clone()))
                    .collect();
                (r.database.clone(), rows)
            })
            .collect(),
    }
}

fn queued(s: &Snapshot) -> usize {
    s.queue.iter().map(|(_, rows)| rows.len()).sum()
}

async fn strings(db: &Db, sql: &str) -> Vec<String> {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    }
}

async fn count(db: &Db, sql: &str, room_id: &str) -> i64 {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(room_id)
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Postgres(p) => {
            let sql = sql.replace('?', "$1");
            sqlx::query_scalar(&sql)
                .bind(room_id)
                .fetch_one(p)
                .await
                .unwrap()
        }
    }
}

/// Local users who can appear in the directory (not deactivated, support or
/// locked) joined to a room whose current join rule is `public`, read from
/// the source rows (current state + event JSON), not from the job's output.
async fn users_in_public_rooms(db: &Db, server_name: &str) -> Vec<String> {
    let join_rule = match db {
        Db::Sqlite(_) => "json_extract(j.json, '$.content.join_rule')",
        Db::Postgres(_) => "(j.json::json -> 'content' ->> 'join_rule')",
    };
    let sql = format!(
        "SELECT DISTINCT m.state_key FROM current_state_events m \
         JOIN current_state_events jr ON jr.room_id = m.room_id \
           AND jr.type = 'm.room.join_rules' AND jr.state_key = '' \
         JOIN event_json j ON j.event_id = jr.event_id \
         JOIN users u ON u.name = m.state_key \
         WHERE m.type = 'm.room.member' AND m.membership = 'join' \
           AND {join_rule} = 'public' AND m.state_key LIKE '%:{server_name}' \
           AND u.deactivated = 0 AND u.locked = FALSE AND u.user_type IS NULL \
           AND u.appservice_id IS NULL \
         ORDER BY m.state_key"
    );
    strings(db, &sql).await
}

updraft_testkit::both_engines! {
    async fn pause_holds_every_batch_and_resume_finishes_with_real_results(t) {
        let (admin, db, server_name) = start(&t).await;
        assert!(admin.enabled().await.unwrap());
        admin.start_job("regenerate_directory").await.unwrap();
        admin.start_job("populate_stats_process_rooms").await.unwrap();

        // Wait until a batch has done some items, then pause.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = admin.status().await.unwrap();
            if status.current_updates.iter().any(|(_, u)| u.total_item_count > 0) {
                break;
            }
            assert!(Instant::now() < deadline, "no progress: {status:?}");
            tokio::time::sleep(POLL).await;
        }
        assert!(!admin.set_enabled(false).await.unwrap());
        assert!(!admin.enabled().await.unwrap());

        // A batch already running finishes; wait until two reads 500 ms apart agree.
        let deadline = Instant::now() + PATIENCE;
        let mut before = snapshot(&admin).await;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = snapshot(&admin).await;
            if now == before {
                break;
            }
            assert!(Instant::now() < deadline, "still moving while paused: {now:?}");
            before = now;
        }
        assert!(!before.status.enabled);
        assert!(queued(&before) > 0, "the jobs finished before the pause took hold: {before:?}");
        let runners = admin.queue().await.unwrap();
        assert_eq!(runners.len(), 1);
        assert_eq!((runners[0].state.as_str(), runners[0].state_code), ("DISABLED", 0));

        // Paused: nothing moves for 2 s.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(snapshot(&admin).await, before, "a batch ran while paused");

        // Resume and let both jobs drain.
        assert!(admin.set_enabled(true).await.unwrap());
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = snapshot(&admin).await;
            if queued(&now) == 0 {
                assert!(now.status.enabled && now.status.current_updates.is_empty(), "{now:?}");
                break;
            }
            assert!(Instant::now() < deadline, "queue not drained: {now:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let runners = admin.queue().await.unwrap();
        assert!(runners[0].last_error.is_none(), "{:?}", runners[0].last_error);

        // Directory: every local user the source rows put in a public room
        // is found by a search for their user id.
        let public = users_in_public_rooms(&db, &server_name).await;
        assert!(!public.is_empty(), "the tiny world has public rooms with local members");
        for user_id in &public {
            let found = admin.search_users(user_id, Some(50)).await.unwrap();
            assert!(
                found.results.iter().any(|r| &r.user_id == user_id),
                "{user_id} not found: {found:?}"
            );
        }
        // A deactivated user is never listed.
        let gone = strings(&db, "SELECT name FROM users WHERE deactivated = 1 ORDER BY name").await;
        assert!(!gone.is_empty());
        for user_id in &gone {
            let found = admin.search_users(user_id, Some(50)).await.unwrap();
            assert!(found.results.iter().all(|r| &r.user_id != user_id), "{user_id} listed: {found:?}");
        }

        // Rooms: the list has every room, and each room's details match its
        // current state.
        let room_ids = strings(&db, "SELECT room_id FROM rooms ORDER BY room_id").await;
        let list = admin.rooms(&RoomQuery { limit: Some(1000), ..Default::default() }).await.unwrap();
        assert_eq!(list.total_rooms, room_ids.len() as i64);
        let mut listed: Vec<_> = list.rooms.iter().map(|r| r.room_id.clone()).collect();
        listed.sort();
        assert_eq!(listed, room_ids);
        for room_id in &room_ids {
            let room = admin.room(room_id).await.unwrap();
            let state = count(&db, "SELECT count(*) FROM current_state_events WHERE room_id = ?", room_id).await;
            let joined = count(
                &db,
                "SELECT count(*) FROM current_state_events WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'",
                room_id,
            )
            .await;
            let local = count(
                &db,
                &format!("SELECT count(*) FROM current_state_events WHERE room_id = ? AND type = 'm.room.member' \
                          AND membership = 'join' AND state_key LIKE '%:{server_name}'"),
                room_id,
            )
            .await;
            assert_eq!(
                (room.state_events, room.joined_members, room.joined_local_members),
                (Some(state), Some(joined), Some(local)),
                "{room_id}"
            );
        }
    }
}
