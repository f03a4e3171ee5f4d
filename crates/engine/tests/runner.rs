//! The runner and the façade on both engines, over synthetic handlers.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use updraft_engine::queue;
use updraft_engine::{
    BackgroundUpdatesConfig, Clock, EngineError, Handler, IndexSpec, ManualClock, Registry,
    RunnerState, UpdateRow, Updater,
};

updraft_testkit::both_engines! {
    async fn queue_insert_is_all_or_nothing_and_cancel_is_transitive(t) {
        queue::create_table_if_missing(&t.db).await.unwrap();
        queue::insert(&t.db, &[row("b", "", 0), row("a", "", 1)]).await.unwrap();
        // One conflicting row: nothing of the job is inserted.
        let err = queue::insert(&t.db, &[row("c", "", 0), row("b", "", 0)]).await.unwrap_err();
        assert!(matches!(&err, EngineError::AlreadyQueued(n) if n == "b"), "{err}");
        // A name repeated inside the job itself.
        let err = queue::insert(&t.db, &[row("d", "", 0), row("d", "", 0)]).await.unwrap_err();
        assert!(matches!(&err, EngineError::AlreadyQueued(n) if n == "d"), "{err}");
        let names: Vec<String> = queue::list(&t.db).await.unwrap().into_iter().map(|r| r.update_name).collect();
        assert_eq!(names, ["b", "a"]);
        // Bad progress JSON is refused before touching the table.
        let mut bad = row("e", "", 0);
        bad.progress_json = "{nope".into();
        assert!(matches!(queue::insert(&t.db, &[bad]).await, Err(EngineError::InvalidRow { .. })));

        queue::insert(&t.db, &[row("c", "a", 0), row("d", "c", 0), row("x", "", 0)]).await.unwrap();
        let removed = queue::cancel(&t.db, "a").await.unwrap();
        // In queue order: c and d (ordering 0) before a (ordering 1).
        assert_eq!(removed, ["c", "d", "a"]);
        let names: Vec<String> = queue::list(&t.db).await.unwrap().into_iter().map(|r| r.update_name).collect();
        assert_eq!(names, ["b", "x"]);
        assert!(matches!(queue::cancel(&t.db, "a").await, Err(EngineError::NotQueued(_))));
        // NULL and "" both mean no dependency; the row reads back as stored.
        let mut null_dep = row("n", "", 0);
        null_dep.depends_on = None;
        queue::insert(&t.db, &[null_dep]).await.unwrap();
        let rows = queue::list(&t.db).await.unwrap();
        assert_eq!(rows.iter().find(|r| r.update_name == "n").unwrap().depends_on, None);
        assert_eq!(rows.iter().find(|r| r.update_name == "x").unwrap().depends_on.as_deref(), Some(""));
    }

    async fn runs_an_update_to_completion_with_synapse_pacing(t) {
        let probe = Probe::new();
        make_tables(&t.db, "src_m", "dst_m", 95).await;
        let clock = ManualClock::new(1_000_000);
        let r = runner(&t.db, registry(&["m"], &probe), fast_options(&clock)).await;
        r.start_job_rows(&[row("m", "", 0)]).await.unwrap();
        r.wait_stopped().await;
        assert_eq!(r.state(), RunnerState::Complete);
        let src = dump(&t.db, "src_m").await;
        let dst = dump(&t.db, "dst_m").await;
        assert_eq!(dst.len(), 95);
        assert!(dst.iter().zip(&src).all(|((a, v), (b, w))| a == b && *v == format!("{w}!")));
        assert_eq!(t.db.count_rows("background_updates").await.unwrap(), 0);
        // The manual clock stands still: every batch takes 0 ms, so after the
        // first batch (default size 10) the rate is Synapse's integer 0 and the
        // batch size falls to min_batch_size (1): 10 + 85 batches of 1 + the final call.
        let batches = probe.batches.lock().unwrap().clone();
        assert_eq!(batches[0], ("m".to_owned(), 10));
        assert_eq!(batches.len(), 1 + 85 + 1);
        assert_eq!(batches.last().unwrap().1, 1);
        let m = r.metrics();
        assert_eq!(m.updates["m"].items_total, 96);
        assert_eq!(m.updates["m"].batches_total, 87);
        assert_eq!(m.updates["m"].current_batch_size, 1);
        assert_eq!(m.state_code, 3);
        // Nothing current once done: Synapse's status leaves the database out.
        assert!(r.current_update().is_none());
    }

    async fn status_prints_exactly_like_synapse(t) {
        let probe = Probe::gated();
        make_tables(&t.db, "src_s", "dst_s", 30).await;
        let clock = ManualClock::new(5_000);
        let mut options = fast_options(&clock);
        options.config.default_batch_size = 20;
        let updater = Updater::builder(options.config.clone())
            .clock(Arc::new(clock.clone()))
            .database("master", t.db.clone(), registry(&["s"], &probe))
            .build()
            .await
            .unwrap();
        queue::create_table_if_missing(&t.db).await.unwrap();
        assert_eq!(serde_json::to_string(&updater.status()).unwrap(), r#"{"enabled":true,"current_updates":{}}"#);
        updater.start_job_rows("master", &[row("s", "", 0)]).await.unwrap();
        probe.wait_in_batch().await;
        assert_eq!(
            serde_json::to_string(&updater.status()).unwrap(),
            r#"{"enabled":true,"current_updates":{"master":{"name":"s","total_item_count":0,"total_duration_ms":0.0,"average_items_per_ms":null}}}"#
        );
        // The detailed view: state, queue, estimate.
        let d = &updater.details().await.unwrap()[0];
        assert_eq!(d.state, RunnerState::RunningUpdate);
        assert!(d.in_batch && d.holds_lease);
        assert_eq!(d.queue.len(), 1);
        assert_eq!(d.estimate.as_ref().unwrap().total, Some(30));
        clock.advance(Duration::from_millis(8));
        probe.release(1);
        // The second batch: 20 items in 8 ms -> avg 2 items / 0.8 ms = 2.5/ms.
        probe.wait_in_batch().await;
        for _ in 0..1000 {
            if updater.status().current_updates["master"].total_item_count > 0 { break; }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(
            serde_json::to_string(&updater.status()).unwrap(),
            r#"{"enabled":true,"current_updates":{"master":{"name":"s","total_item_count":20,"total_duration_ms":8.0,"average_items_per_ms":2.5}}}"#
        );
        // 100 ms * 2.5 = 250 items asked for; 10 remain.
        assert_eq!(updater.metrics()["master"].updates["s"].current_batch_size, 250);
        let d = &updater.details().await.unwrap()[0];
        // Estimate: 20 of 30 done; overall rate 20 / 8 ms -> 10 left in 4 ms.
        assert_eq!(d.estimate.as_ref().unwrap().done, 20);
        assert_eq!(d.eta_ms, Some(4.0));
        probe.release(10);
        updater.wait_stopped().await;
        assert_eq!(serde_json::to_string(&updater.status()).unwrap(), r#"{"enabled":true,"current_updates":{}}"#);
        assert_eq!(probe.items_of("s"), 31);
    }

    async fn pause_lets_the_running_batch_finish_and_resume_continues(t) {
        let probe = Probe::gated();
        make_tables(&t.db, "src_p", "dst_p", 40).await;
        let clock = ManualClock::new(0);
        let r = runner(&t.db, registry(&["p"], &probe), fast_options(&clock)).await;
        r.start_job_rows(&[row("p", "", 0)]).await.unwrap();
        probe.wait_in_batch().await;
        r.set_enabled(false).await.unwrap();
        assert_eq!(r.state(), RunnerState::Disabled);
        probe.release(1000);
        r.wait_stopped().await;
        // The batch in progress finished and committed; no other started.
        assert_eq!(probe.batch_count(), 1);
        assert_eq!(dump(&t.db, "dst_p").await.len(), 10);
        let q = queue::list(&t.db).await.unwrap();
        assert_eq!(q[0].progress_json, r#"{"last":10}"#);
        // Starting a job while paused does not start a batch.
        make_tables(&t.db, "src_p2", "dst_p2", 0).await;
        r.wake();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(probe.batch_count(), 1);
        assert!(!r.is_running());
        r.set_enabled(true).await.unwrap();
        r.wait_stopped().await;
        assert_eq!(r.state(), RunnerState::Complete);
        assert_eq!(dump(&t.db, "dst_p").await.len(), 40);
    }

    async fn five_failures_in_a_row_abort_and_a_success_resets_the_count(t) {
        let probe = Probe::new();
        make_tables(&t.db, "src_f", "dst_f", 20).await;
        let clock = ManualClock::new(0);
        let r = runner(&t.db, registry(&["f"], &probe), fast_options(&clock)).await;
        // Four failures, then success: no abort.
        probe.fail_countdown.store(1, Ordering::SeqCst);
        queue::insert(&t.db, &[row("f", "", 0)]).await.unwrap();
        r.start();
        r.wait_stopped().await;
        assert_eq!(r.state(), RunnerState::Complete);
        assert_eq!(r.status().consecutive_failures, 0);
        assert_eq!(r.metrics().updates["f"].failures_total, 1);
        assert!(r.status().last_error.unwrap().message.contains("injected failure"));
        // The failed batch rolled back its first write: every row moved once.
        assert_eq!(dump(&t.db, "dst_f").await.len(), 20);

        // Now a handler that always fails.
        struct Broken;
        #[async_trait::async_trait]
        impl updraft_engine::BatchHandler for Broken {
            async fn run_batch(&self, tx: &mut updraft_engine::DbTx, _: &serde_json::Value, _: u64)
                -> Result<updraft_engine::BatchResult, updraft_engine::HandlerError> {
                tx.execute("DELETE FROM background_updates").await?;
                Err("always broken".into())
            }
        }
        let mut reg = Registry::new();
        reg.register_batch("broken", Broken);
        let r = runner(&t.db, reg, fast_options(&clock)).await;
        queue::insert(&t.db, &[row("broken", "", 0)]).await.unwrap();
        r.start();
        r.wait_stopped().await;
        let st = r.status();
        assert_eq!(st.state, RunnerState::Aborted);
        assert_eq!(st.state_code, -1);
        assert_eq!(st.consecutive_failures, 5);
        assert!(st.reason.starts_with("5 back-to-back background update failures; aborting."), "{}", st.reason);
        assert_eq!(r.metrics().updates["broken"].failures_total, 5);
        // Every failed batch rolled back (its DELETE included).
        assert_eq!(queue::list(&t.db).await.unwrap().len(), 1);
    }

    async fn an_update_without_handler_stops_the_runner_with_a_reason(t) {
        let probe = Probe::new();
        let clock = ManualClock::new(0);
        let r = runner(&t.db, registry(&[], &probe), fast_options(&clock)).await;
        r.start_job_rows(&[row("mystery_update", "", 0)]).await.unwrap();
        r.wait_stopped().await;
        let st = r.status();
        assert_eq!(st.state, RunnerState::Aborted);
        assert!(st.reason.contains("no handler is registered for background update \"mystery_update\""), "{}", st.reason);
        let q = r.queue().await.unwrap();
        assert!(!q[0].has_handler);
        // Its row stays: nothing was lost.
        assert_eq!(queue::list(&t.db).await.unwrap().len(), 1);
    }

    async fn a_dependency_cycle_is_reported_not_spun_on(t) {
        let probe = Probe::new();
        let clock = ManualClock::new(0);
        let r = runner(&t.db, registry(&["a", "b"], &probe), fast_options(&clock)).await;
        r.start_job_rows(&[row("a", "b", 0), row("b", "a", 0)]).await.unwrap();
        r.wait_stopped().await;
        let st = r.status();
        assert_eq!(st.state, RunnerState::Aborted);
        assert_eq!(st.reason, "dependency cycle among background updates: a -> b -> a");
        assert_eq!(probe.batch_count(), 0);
    }

    async fn dependencies_and_ordering_decide_what_runs_first(t) {
        let probe = Probe::new();
        for n in ["a", "b", "c", "d"] {
            make_tables(&t.db, &format!("src_{n}"), &format!("dst_{n}"), 3).await;
        }
        let clock = ManualClock::new(0);
        let r = runner(&t.db, registry(&["a", "b", "c", "d"], &probe), fast_options(&clock)).await;
        // a waits for d; b has a higher ordering; c and d tie on ordering 0.
        queue::insert(&t.db, &[row("a", "d", 0), row("b", "", 5), row("c", "", 0), row("d", "", 0)]).await.unwrap();
        r.start();
        r.wait_stopped().await;
        assert_eq!(*probe.first_batches.lock().unwrap(), ["c", "d", "a", "b"]);
    }

    async fn one_runner_per_database_and_takeover_after_the_lease_expires(t) {
        let probe = Probe::gated();
        make_tables(&t.db, "src_l", "dst_l", 30).await;
        let clock = ManualClock::new(0);
        let first = runner(&t.db, registry(&["l"], &probe), fast_options(&clock)).await;
        let second = runner(&t.db, registry(&["l"], &probe), fast_options(&clock)).await;
        first.start_job_rows(&[row("l", "", 0)]).await.unwrap();
        probe.wait_in_batch().await;
        second.start();
        for _ in 0..1000 {
            if second.status().reason.starts_with("another runner holds this database") { break; }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let st = second.status();
        assert_eq!(st.state, RunnerState::NotStarted);
        assert!(st.reason.contains(first.holder_id()), "{}", st.reason);
        assert!(!st.holds_lease);
        // The first runner dies mid-batch: its transaction rolls back.
        first.kill().await;
        probe.release(1000);
        // The second waits for the lease to expire (1 s retries on the manual clock).
        second.wait_stopped().await;
        assert_eq!(second.state(), RunnerState::Complete);
        assert!(clock.now_ms() >= 30_000.0);
        assert_eq!(probe.max_in_batch.load(Ordering::SeqCst), 1);
        let dst = dump(&t.db, "dst_l").await;
        assert_eq!(dst.len(), 30);
        assert!(dst.iter().all(|(_, v)| v.ends_with('!') && !v.ends_with("!!")));
    }

    async fn persisted_pause_survives_a_restart(t) {
        let probe = Probe::new();
        make_tables(&t.db, "src_q", "dst_q", 5).await;
        let clock = ManualClock::new(0);
        let mut options = fast_options(&clock);
        options.config.persist_pause = true;
        let r = runner(&t.db, registry(&["q"], &probe), options.clone()).await;
        r.set_enabled(false).await.unwrap();
        r.start_job_rows(&[row("q", "", 0)]).await.unwrap();
        r.shutdown().await;
        let r = runner(&t.db, registry(&["q"], &probe), options.clone()).await;
        let st = r.status();
        assert_eq!(st.state, RunnerState::Disabled);
        assert!(st.persist_pause);
        assert_eq!(st.reason, "paused (persisted in the database: survives restarts)");
        r.start();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(probe.batch_count(), 0);
        r.set_enabled(true).await.unwrap();
        r.wait_stopped().await;
        assert_eq!(dump(&t.db, "dst_q").await.len(), 5);
        // Without persist_pause (Synapse parity) a restart is enabled again.
        let r = runner(&t.db, registry(&["q"], &probe), options.clone()).await;
        assert!(r.enabled());
        options.config.persist_pause = false;
        let r2 = runner(&t.db, registry(&["q"], &probe), options).await;
        r2.set_enabled(false).await.unwrap();
        let r3 = runner(&t.db, registry(&["q"], &probe), fast_options(&clock)).await;
        assert!(r3.enabled());
    }

    async fn shutdown_finishes_the_current_batch_and_commits(t) {
        let probe = Probe::gated();
        make_tables(&t.db, "src_g", "dst_g", 50).await;
        let clock = ManualClock::new(0);
        let r = runner(&t.db, registry(&["g"], &probe), fast_options(&clock)).await;
        r.start_job_rows(&[row("g", "", 0)]).await.unwrap();
        probe.wait_in_batch().await;
        let stopping = tokio::spawn({
            let r = r.clone();
            async move { r.shutdown().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!stopping.is_finished(), "shutdown must wait for the batch");
        probe.release(1000);
        stopping.await.unwrap();
        assert_eq!(probe.batch_count(), 1);
        assert_eq!(dump(&t.db, "dst_g").await.len(), 10);
        assert_eq!(queue::list(&t.db).await.unwrap()[0].progress_json, r#"{"last":10}"#);
        assert_eq!(r.state(), RunnerState::Disabled);
        // The lease was released: a new runner starts at once.
        let r2 = runner(&t.db, registry(&["g"], &probe), fast_options(&clock)).await;
        r2.start();
        r2.wait_stopped().await;
        assert_eq!(dump(&t.db, "dst_g").await.len(), 50);
        assert_eq!(clock.now_ms(), 0.0);
    }

    async fn index_noop_and_constraint_updates(t) {
        make_tables(&t.db, "src_i", "dst_i", 3).await;
        let clock = ManualClock::new(0);
        let mut reg = Registry::new();
        reg.register("old_index", Handler::Index(IndexSpec {
            index_name: "src_i_old".into(), table: "src_i".into(), columns: vec!["v".into()],
            where_clause: None, unique: false, replaces_index: None, psql_only: false,
        }));
        reg.register("new_index", Handler::Index(IndexSpec {
            index_name: "src_i_v_partial".into(), table: "src_i".into(), columns: vec!["v".into(), "id".into()],
            where_clause: Some("id > 1".into()), unique: true, replaces_index: Some("src_i_old".into()), psql_only: false,
        }));
        reg.register("pg_only_index", Handler::Index(IndexSpec {
            index_name: "dst_i_pg".into(), table: "dst_i".into(), columns: vec!["v".into()],
            where_clause: None, unique: false, replaces_index: None, psql_only: true,
        }));
        reg.register("noop", Handler::NoOp);
        let r = runner(&t.db, reg, fast_options(&clock)).await;
        r.start_job_rows(&[row("old_index", "", 0), row("new_index", "old_index", 0), row("pg_only_index", "", 0), row("noop", "", 0)]).await.unwrap();
        r.wait_stopped().await;
        assert_eq!(r.state(), RunnerState::Complete, "{}", r.status().reason);
        let indexes: Vec<String> = match &t.db {
            updraft_engine::Db::Sqlite(p) => sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").fetch_all(p).await.unwrap(),
            updraft_engine::Db::Postgres(p) => sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT LIKE '%pkey' AND indexname NOT LIKE '%uniqueness' AND indexname NOT LIKE '%lease%' ORDER BY indexname").fetch_all(p).await.unwrap(),
        };
        let expected: &[&str] = match t.engine() {
            updraft_engine::Engine::Sqlite => &["src_i_v_partial"],
            updraft_engine::Engine::Postgres => &["dst_i_pg", "src_i_v_partial"],
        };
        assert_eq!(indexes, expected);
        assert_eq!(r.metrics().updates["noop"].items_total, 1);
        // Idempotent: running the same index update again changes nothing.
        r.start_job_rows(&[row("new_index", "", 0)]).await.unwrap();
        r.wait_stopped().await;
        assert_eq!(r.state(), RunnerState::Complete, "{}", r.status().reason);
    }

    async fn updater_facade_over_two_databases(t) {
        // Two named databases: "master" is the test DB, "state" a second file or schema.
        let other = updraft_testkit::TestDb::new(t.engine()).await;
        let probe = Probe::gated();
        make_tables(&t.db, "src_u", "dst_u", 5).await;
        for db in [&t.db, &other.db] { queue::create_table_if_missing(db).await.unwrap(); }
        let clock = ManualClock::new(0);
        let updater = Updater::builder(BackgroundUpdatesConfig { sleep_enabled: false, ..Default::default() })
            .clock(Arc::new(clock.clone()))
            .database("master", t.db.clone(), registry(&["u"], &probe))
            .database("state", other.db.clone(), Registry::new())
            .build().await.unwrap();
        assert_eq!(updater.database_names(), ["master", "state"]);
        updater.start_job_rows("master", &[UpdateRow::new("u", "")]).await.unwrap();
        assert!(matches!(updater.start_job_rows("nope", &[]).await, Err(EngineError::UnknownDatabase(_))));
        probe.wait_in_batch().await;
        let s = updater.status();
        assert_eq!(s.current_updates.keys().collect::<Vec<_>>(), ["master"]);
        assert!(s.enabled);
        assert!(!updater.set_enabled(false).await.unwrap());
        assert!(!updater.status().enabled);
        assert!(updater.details().await.unwrap().iter().all(|d| d.state == RunnerState::Disabled));
        probe.release(100);
        updater.wait_stopped().await;
        assert_eq!(updater.queue("master").await.unwrap()[0].row.progress_json, r#"{"last":5}"#);
        // Still queued, so queuing it again is refused. (Not while the gated
        // batch holds SQLite's write lock: the insert would wait for it.)
        let err = updater.start_job_rows("master", &[UpdateRow::new("u", "")]).await.unwrap_err();
        assert_eq!(err.to_string(), "update u is already in the queue of background updates");
        updater.set_enabled(true).await.unwrap();
        updater.wait_stopped().await;
        assert_eq!(dump(&t.db, "dst_u").await.len(), 5);
        assert_eq!(updater.metrics()["master"].updates["u"].items_total, 6);
        assert_eq!(updater.metrics()["state"].state_code, 3);
        // cancel through the façade
        updater.set_enabled(false).await.unwrap();
        updater.start_job_rows("state", &[UpdateRow::new("x", ""), UpdateRow::new("y", "x")]).await.unwrap();
        assert_eq!(updater.cancel("state", "x").await.unwrap(), ["x", "y"]);
        assert!(updater.queue("state").await.unwrap().is_empty());
        updater.shutdown().await;
    }
}
