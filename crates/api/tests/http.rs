//! The real server over real HTTP on both engines: every endpoint and every
//! error, compared with Synapse's exact status codes and bytes.

mod support;

use support::*;
use updraft_engine::BackgroundUpdatesConfig;

const STATUS: &str = "/_synapse/admin/v1/background_updates/status";
const ENABLED: &str = "/_synapse/admin/v1/background_updates/enabled";
const START: &str = "/_synapse/admin/v1/background_updates/start_job";

const MISSING: &str = r#"{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}"#;
const UNKNOWN: &str =
    r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":false}"#;
const EXPIRED_BODY: &str =
    r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Access token has expired","soft_logout":true}"#;
const LOCKED_BODY: &str =
    r#"{"errcode":"M_USER_LOCKED","error":"User account has been locked","soft_logout":true}"#;
const GUEST_BODY: &str =
    r#"{"errcode":"M_GUEST_ACCESS_FORBIDDEN","error":"Guest access not allowed"}"#;
const NOT_ADMIN: &str = r#"{"errcode":"M_FORBIDDEN","error":"You are not a server admin"}"#;
const NOT_JSON: &str = r#"{"errcode":"M_NOT_JSON","error":"Content not JSON."}"#;
const NOT_OBJECT: &str = r#"{"errcode":"M_BAD_JSON","error":"Content must be a JSON object."}"#;
const UNRECOGNIZED: &str = r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#;

/// `(method, path, token, body)` of a malformed request.
type RawCase = (&'static str, String, Option<&'static str>, Option<Vec<u8>>);

/// `(method, path, token, body, status, exact response body)`.
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    u16,
    String,
);

fn admin_table() -> Vec<Case> {
    let s = |v: &str| v.to_owned();
    let mut cases: Vec<Case> = Vec::new();
    // Auth, identical on every admin endpoint (checked before the body).
    for (method, path) in [
        ("GET", STATUS),
        ("GET", ENABLED),
        ("POST", ENABLED),
        ("POST", START),
    ] {
        cases.push((method, path, None, Some("not json"), 401, s(MISSING)));
        cases.push((method, path, Some("nope"), None, 401, s(UNKNOWN)));
        cases.push((method, path, Some("orphan_token"), None, 401, s(UNKNOWN)));
        cases.push((method, path, Some(EXPIRED), None, 401, s(EXPIRED_BODY)));
        cases.push((method, path, Some(LOCKED), None, 401, s(LOCKED_BODY)));
        cases.push((method, path, Some(GUEST), None, 403, s(GUEST_BODY)));
        cases.push((method, path, Some(USER), Some("{}"), 403, s(NOT_ADMIN)));
    }
    // Bodies.
    for path in [ENABLED, START] {
        cases.push(("POST", path, Some(ADMIN), None, 400, s(NOT_JSON)));
        cases.push(("POST", path, Some(ADMIN), Some(""), 400, s(NOT_JSON)));
        cases.push(("POST", path, Some(ADMIN), Some("{\"a\":"), 400, s(NOT_JSON)));
        cases.push((
            "POST",
            path,
            Some(ADMIN),
            Some("{\"a\": NaN}"),
            400,
            s(NOT_JSON),
        ));
        cases.push(("POST", path, Some(ADMIN), Some("[]"), 400, s(NOT_OBJECT)));
        cases.push(("POST", path, Some(ADMIN), Some("42"), 400, s(NOT_OBJECT)));
        cases.push(("POST", path, Some(ADMIN), Some("null"), 400, s(NOT_OBJECT)));
    }
    let bad_enabled = r#"{"errcode":"M_UNKNOWN","error":"'enabled' parameter must be a boolean"}"#;
    for body in [
        r#"{"enabled": 1}"#,
        r#"{"enabled": "true"}"#,
        r#"{"enabled": null}"#,
    ] {
        cases.push((
            "POST",
            ENABLED,
            Some(ADMIN),
            Some(body),
            400,
            s(bad_enabled),
        ));
    }
    let missing_job = r#"{"errcode":"M_MISSING_PARAM","error":"Missing params: ['job_name']"}"#;
    cases.push(("POST", START, Some(ADMIN), Some("{}"), 400, s(missing_job)));
    cases.push((
        "POST",
        START,
        Some(ADMIN),
        Some(r#"{"job":"x"}"#),
        400,
        s(missing_job),
    ));
    let invalid_job = r#"{"errcode":"M_UNKNOWN","error":"Invalid job_name"}"#;
    for body in [
        r#"{"job_name": "nope"}"#,
        r#"{"job_name": null}"#,
        r#"{"job_name": 3}"#,
        r#"{"job_name": "event_resign "}"#,
    ] {
        cases.push(("POST", START, Some(ADMIN), Some(body), 400, s(invalid_job)));
    }
    // Routing.
    cases.push((
        "GET",
        "/_synapse/admin/v1/nothing_here",
        Some(ADMIN),
        None,
        404,
        s(UNRECOGNIZED),
    ));
    cases.push(("GET", "/", None, None, 404, s(UNRECOGNIZED)));
    cases.push((
        "POST",
        STATUS,
        Some(ADMIN),
        Some("{}"),
        405,
        s(UNRECOGNIZED),
    ));
    cases.push(("GET", START, Some(ADMIN), None, 405, s(UNRECOGNIZED)));
    cases.push((
        "PUT",
        ENABLED,
        Some(ADMIN),
        Some("{}"),
        405,
        s(UNRECOGNIZED),
    ));
    // Success.
    cases.push((
        "GET",
        ENABLED,
        Some(ADMIN),
        None,
        200,
        s(r#"{"enabled":true}"#),
    ));
    cases.push((
        "GET",
        STATUS,
        Some(ADMIN),
        None,
        200,
        s(r#"{"enabled":true,"current_updates":{}}"#),
    ));
    cases
}

updraft_testkit::both_engines! {
    async fn admin_conformance_table(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig::default()).await;
        let mut failures = Vec::new();
        for (method, path, token, body, status, expected) in admin_table() {
            let got = raw(&s, method, path, token, body.map(str::as_bytes)).await;
            if got != (status, expected.clone()) {
                failures.push(format!(
                    "{method} {path} token={token:?} body={body:?}\n   want {status} {expected}\n   got  {} {}",
                    got.0, got.1
                ));
            }
        }
        assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    }

    async fn token_sources_follow_synapse(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig::default()).await;
        let ok = r#"{"enabled":true}"#.to_owned();
        assert_eq!(raw(&s, "GET", &format!("{ENABLED}?access_token={ADMIN}"), None, None).await, (200, ok));
        let both = s.http.get(s.url(&format!("{ENABLED}?access_token={ADMIN}"))).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(both.status().as_u16(), 401);
        assert_eq!(
            both.text().await.unwrap(),
            r#"{"errcode":"M_MISSING_TOKEN","error":"Mixing Authorization headers and access_token query parameters."}"#
        );
        let basic = s.http.get(s.url(ENABLED)).header("Authorization", "Basic abc").send().await.unwrap();
        assert_eq!(basic.status().as_u16(), 401);
        assert_eq!(
            basic.text().await.unwrap(),
            r#"{"errcode":"M_MISSING_TOKEN","error":"Invalid Authorization header."}"#
        );
        let headers = s.http.get(s.url(ENABLED)).header("Authorization", format!("Bearer {ADMIN}"))
            .header("Authorization", format!("Bearer {ADMIN}")).send().await.unwrap();
        assert_eq!(headers.status().as_u16(), 401);
        assert_eq!(raw(&s, "GET", &format!("{ENABLED}?access_token="), None, None).await, (401, UNKNOWN.to_owned()));
    }

    async fn pause_resume_and_start_job(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig::default()).await;
        let admin = s.client(ADMIN);
        // Pause first so the queued rows stay put while we look at them.
        assert_eq!(raw(&s, "POST", ENABLED, Some(ADMIN), Some(br#"{"enabled": false}"#)).await, (200, r#"{"enabled":false}"#.to_owned()));
        assert!(!admin.enabled().await.unwrap());
        assert!(!admin.status().await.unwrap().enabled);
        assert_eq!(raw(&s, "POST", START, Some(ADMIN), Some(br#"{"job_name": "populate_stats_process_rooms"}"#)).await, (200, "{}".to_owned()));
        assert_eq!(
            raw(&s, "POST", START, Some(ADMIN), Some(br#"{"job_name": "populate_stats_process_rooms"}"#)).await,
            (400, r#"{"errcode":"M_UNKNOWN","error":"Job populate_stats_process_rooms is already in queue of background updates."}"#.to_owned())
        );
        admin.start_job("regenerate_directory").await.unwrap();
        let again = admin.start_job("regenerate_directory").await.unwrap_err();
        assert_eq!(again.errcode(), Some("M_UNKNOWN"));
        assert_eq!(again.to_string(), "400 M_UNKNOWN: Job regenerate_directory is already in queue of background updates.");
        // The rows are Synapse's, depends_on "" (not NULL) for the first.
        let rows = queue_rows(&s.db).await;
        assert_eq!(rows, vec![
            ("populate_stats_process_rooms".to_owned(), "{}".to_owned(), Some(String::new())),
            ("populate_user_directory_cleanup".to_owned(), "{}".to_owned(), Some("populate_user_directory_process_users".to_owned())),
            ("populate_user_directory_createtables".to_owned(), "{}".to_owned(), Some(String::new())),
            ("populate_user_directory_process_rooms".to_owned(), "{}".to_owned(), Some("populate_user_directory_createtables".to_owned())),
            ("populate_user_directory_process_users".to_owned(), "{}".to_owned(), Some("populate_user_directory_process_rooms".to_owned())),
        ]);
        // updraft's queue view shows them; cancelling process_rooms takes its dependants.
        let queue = admin.queue().await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue[0].database, "master");
        assert_eq!(queue[0].state, "DISABLED");
        assert_eq!(queue[0].state_code, 0);
        assert_eq!(queue[0].queue.len(), 5);
        let waiting: Vec<_> = queue[0].queue.iter().map(|q| (q.update_name.as_str(), q.waiting_for.as_deref())).collect();
        assert!(waiting.contains(&("populate_user_directory_process_rooms", Some("populate_user_directory_createtables"))), "{waiting:?}");
        let mut removed = admin.cancel("master", "populate_user_directory_process_rooms").await.unwrap();
        removed.sort();
        assert_eq!(removed, vec![
            "populate_user_directory_cleanup",
            "populate_user_directory_process_rooms",
            "populate_user_directory_process_users",
        ]);
        let e = admin.cancel("master", "populate_user_directory_process_rooms").await.unwrap_err();
        assert_eq!((e.status(), e.errcode()), (Some(404), Some("M_NOT_FOUND")));
        let e = admin.cancel("state", "x").await.unwrap_err();
        assert_eq!((e.status(), e.errcode()), (Some(404), Some("M_NOT_FOUND")));
        assert_eq!(queue_rows(&s.db).await.len(), 2);
        // Resume: the runner drains the queue (nothing to do on an empty world).
        assert!(admin.set_enabled(true).await.unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !queue_rows(&s.db).await.is_empty() {
            assert!(std::time::Instant::now() < deadline, "queue not drained: {:?}", queue_rows(&s.db).await);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let status = admin.status().await.unwrap();
        assert!(status.enabled);
        // Missing `enabled` means true.
        assert_eq!(raw(&s, "POST", ENABLED, Some(ADMIN), Some(b"{}")).await, (200, r#"{"enabled":true}"#.to_owned()));
        // Only admins may see the queue.
        let e = s.client(USER).queue().await.unwrap_err();
        assert_eq!((e.status(), e.errcode()), (Some(403), Some("M_FORBIDDEN")));
    }

    async fn rooms_endpoints(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig::default()).await;
        insert_room(&s.db, "!a:test.local", Some("Alpha"), true, Some(true), 5, 20).await;
        insert_room(&s.db, "!b:test.local", Some("beta café"), false, Some(false), 9, 7).await;
        insert_room(&s.db, "!c:test.local", Some("Gamma"), false, None, 1, 40).await;
        let admin = s.client(ADMIN);
        // Details: Synapse's field order, booleans as booleans, non-ASCII escaped.
        let (status, body) = raw(&s, "GET", "/_synapse/admin/v1/rooms/!b:test.local", Some(ADMIN), None).await;
        assert_eq!(status, 200);
        assert_eq!(body, concat!(
            r##"{"room_id":"!b:test.local","name":"beta caf\u00e9","canonical_alias":"#beta-caf\u00e9:test.local","##,
            r#""joined_members":9,"joined_local_members":9,"version":"10","creator":"@admin:test.local","#,
            r#""encryption":null,"federatable":false,"public":false,"join_rules":"public","guest_access":null,"#,
            r#""history_visibility":"shared","state_events":7,"avatar":"mxc://x/y","topic":"a topic","room_type":null}"#
        ));
        let a = admin.room("!a:test.local").await.unwrap();
        assert!(a.public && a.federatable);
        assert_eq!((a.joined_members, a.state_events), (Some(5), Some(20)));
        assert!(!admin.room("!c:test.local").await.unwrap().federatable, "NULL is false");
        assert_eq!(
            raw(&s, "GET", "/_synapse/admin/v1/rooms/!zzz:test.local", Some(ADMIN), None).await,
            (404, r#"{"errcode":"M_NOT_FOUND","error":"Room not found"}"#.to_owned())
        );
        // List: default order by name ascending, pages consistent with total_rooms.
        let q = |from, limit| updraft_api::client::RoomQuery { from, limit, ..Default::default() };
        let all = admin.rooms(&q(None, None)).await.unwrap();
        assert_eq!(all.total_rooms, 3);
        let names: Vec<_> = all.rooms.iter().map(|r| r.name.clone().unwrap()).collect();
        assert_eq!(names, ["Alpha", "Gamma", "beta café"], "byte order, as Synapse's SQL");
        assert!(all.rooms[0].topic.is_none() && all.rooms[0].avatar.is_none(), "the list has no topic/avatar");
        assert_eq!((all.next_batch, all.prev_batch), (None, None));
        let p1 = admin.rooms(&q(Some(0), Some(2))).await.unwrap();
        assert_eq!((p1.rooms.len(), p1.next_batch, p1.prev_batch, p1.total_rooms), (2, Some(2), None, 3));
        let p2 = admin.rooms(&q(Some(2), Some(2))).await.unwrap();
        assert_eq!((p2.rooms.len(), p2.next_batch, p2.prev_batch), (1, None, Some(0)));
        let p3 = admin.rooms(&q(Some(3), Some(1))).await.unwrap();
        assert_eq!((p3.rooms.len(), p3.prev_batch), (0, Some(2)));
        let by = |order: &str, dir: Option<&str>| updraft_api::client::RoomQuery {
            order_by: Some(order.to_owned()), dir: dir.map(str::to_owned), ..Default::default()
        };
        let ids = |l: &updraft_api::client::RoomList| l.rooms.iter().map(|r| r.room_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&admin.rooms(&by("joined_members", None)).await.unwrap()), ["!b:test.local", "!a:test.local", "!c:test.local"]);
        assert_eq!(ids(&admin.rooms(&by("joined_members", Some("b"))).await.unwrap()), ["!c:test.local", "!a:test.local", "!b:test.local"]);
        assert_eq!(ids(&admin.rooms(&by("state_events", None)).await.unwrap()), ["!c:test.local", "!a:test.local", "!b:test.local"]);
        let search = |term: &str| updraft_api::client::RoomQuery { search_term: Some(term.to_owned()), ..Default::default() };
        let found = admin.rooms(&search("ALP")).await.unwrap();
        assert_eq!((ids(&found), found.total_rooms), (vec!["!a:test.local".to_owned()], 1));
        assert_eq!(ids(&admin.rooms(&search("!c:test.local")).await.unwrap()), ["!c:test.local"]);
        let public = admin.rooms(&updraft_api::client::RoomQuery { public_rooms: Some(false), ..Default::default() }).await.unwrap();
        assert_eq!(public.total_rooms, 2);
        // Parameter errors, Synapse's wording.
        for (query, body) in [
            ("limit=x", r#"{"errcode":"M_INVALID_PARAM","error":"Query parameter limit must be an integer"}"#),
            ("from=-1", r#"{"errcode":"M_INVALID_PARAM","error":"Query parameter from must be a positive integer."}"#),
            ("dir=up", r#"{"errcode":"M_INVALID_PARAM","error":"Query parameter 'dir' must be one of ['b', 'f']"}"#),
            ("search_term=", r#"{"errcode":"M_INVALID_PARAM","error":"search_term cannot be an empty string"}"#),
            ("public_rooms=1", r#"{"errcode":"M_INVALID_PARAM","error":"Boolean query parameter 'public_rooms' must be one of ['true', 'false']"}"#),
        ] {
            assert_eq!(raw(&s, "GET", &format!("/_synapse/admin/v1/rooms?{query}"), Some(ADMIN), None).await, (400, body.to_owned()), "{query}");
        }
        let (status, body) = raw(&s, "GET", "/_synapse/admin/v1/rooms?order_by=bogus", Some(ADMIN), None).await;
        assert_eq!(status, 400);
        assert!(body.starts_with(r#"{"errcode":"M_INVALID_PARAM","error":"Query parameter 'order_by' must be one of ['alphabetical', 'size', 'name'"#), "{body}");
        assert_eq!(raw(&s, "GET", "/_synapse/admin/v1/rooms", Some(USER), None).await, (403, NOT_ADMIN.to_owned()));
    }

    async fn malformed_requests_never_500(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig::default()).await;
        let huge = vec![b'x'; 2 * 1024 * 1024];
        // Oversized bodies are refused from Content-Length, before auth, as
        // Synapse does; the server may close while the client still writes.
        for token in [Some(ADMIN), None] {
            let sent = s.http.post(s.url(START)).bearer_auth(token.unwrap_or("")).body(huge.clone()).send().await;
            if let Ok(resp) = sent {
                assert_eq!(resp.status().as_u16(), 413);
                // The unread body ends the connection: no client may reuse it.
                assert_eq!(resp.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
                assert_eq!(resp.text().await.unwrap(), r#"{"errcode":"M_TOO_LARGE","error":"Request content is too large (>1048576)"}"#);
            }
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let cases: Vec<RawCase> = vec![
            ("POST", START.into(), Some(ADMIN), Some(deep.into_bytes())),
            ("POST", START.into(), Some(ADMIN), Some(vec![0xff, 0xfe, 0x00])),
            ("POST", START.into(), Some(ADMIN), Some(b"{\"job_name\": \"\\ud800\"}".to_vec())),
            ("POST", START.into(), Some(ADMIN), Some(br#"{"job_name": {"a": [1, 2]}}"#.to_vec())),
            ("POST", ENABLED.into(), Some(ADMIN), Some(br#"{"enabled": 1e999}"#.to_vec())),
            ("POST", ENABLED.into(), Some(ADMIN), Some(b"{\"enabled\": true} trailing".to_vec())),
            ("GET", "/_synapse/admin/v1/rooms/%ff%fe".into(), Some(ADMIN), None),
            ("GET", "/_synapse/admin/v1/rooms/%00".into(), Some(ADMIN), None),
            ("GET", "/_synapse/admin/v1/rooms?limit=99999999999999999999".into(), Some(ADMIN), None),
            ("GET", "/_synapse/admin/v1/rooms?from=9223372036854775807&limit=9223372036854775807".into(), Some(ADMIN), None),
            ("GET", "/_synapse/admin/v1/rooms?search_term=%25%5F%27%22%5C".into(), Some(ADMIN), None),
            ("GET", "/_synapse/admin/v1/rooms?search_term=%ff".into(), Some(ADMIN), None),
            ("GET", format!("{STATUS}?access_token=%ff%00"), None, None),
            ("GET", format!("{STATUS}?access_token={}", "a".repeat(10_000)), None, None),
            ("DELETE", "/_updraft/admin/v1/background_updates/queue/master/%ff".into(), Some(ADMIN), None),
            ("POST", "/_matrix/client/v3/user_directory/search".into(), Some(USER), Some(b"[".to_vec())),
            ("GET", "/_synapse/admin/v1/../../etc/passwd".into(), None, None),
        ];
        for (method, path, token, body) in cases {
            let (status, text) = raw(&s, method, &path, token, body.as_deref()).await;
            let short = &path[..path.len().min(80)];
            assert!(status < 500, "{method} {short} -> {status} {text}");
            assert!((400..500).contains(&status) || status == 200, "{method} {short} -> {status}");
            if status >= 400 {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {short}: not JSON: {text}"));
                assert!(v["errcode"].is_string() && v["error"].is_string(), "{method} {short}: {text}");
            }
        }
        let (status, text) = raw(&s, "POST", START, Some(ADMIN), Some(&vec![b' '; 1024 * 1024 + 1])).await;
        assert_eq!((status, text.as_str()), (413, r#"{"errcode":"M_TOO_LARGE","error":"Request content is too large (>1048576)"}"#));
        // Nothing was queued by any of it.
        assert!(queue_rows(&s.db).await.is_empty());
    }

    async fn user_directory_search_errors_and_empty_answer(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig::default()).await;
        let path = "/_matrix/client/v3/user_directory/search";
        let body = Some(&br#"{"search_term": "ali"}"#[..]);
        assert_eq!(raw(&s, "POST", path, None, body).await, (401, MISSING.to_owned()));
        assert_eq!(raw(&s, "POST", path, Some(GUEST), body).await, (403, GUEST_BODY.to_owned()));
        assert_eq!(raw(&s, "POST", path, Some(EXPIRED), body).await, (401, EXPIRED_BODY.to_owned()));
        assert_eq!(raw(&s, "POST", path, Some(USER), Some(b"")).await, (400, NOT_JSON.to_owned()));
        assert_eq!(raw(&s, "POST", path, Some(USER), Some(b"[1]")).await, (400, NOT_OBJECT.to_owned()));
        assert_eq!(
            raw(&s, "POST", path, Some(USER), Some(b"{}")).await,
            (400, r#"{"errcode":"M_UNKNOWN","error":"`search_term` is required field"}"#.to_owned())
        );
        assert_eq!(raw(&s, "GET", path, Some(USER), None).await, (405, UNRECOGNIZED.to_owned()));
        // Any valid user token (admin or not) may search; an empty directory finds nobody.
        for token in [USER, ADMIN] {
            assert_eq!(raw(&s, "POST", path, Some(token), body).await, (200, r#"{"limited":false,"results":[]}"#.to_owned()));
        }
        let found = s.client(USER).search_users("ali", Some(5)).await.unwrap();
        assert!(!found.limited && found.results.is_empty());
    }

    async fn metrics_and_health(t) {
        let s = TestServer::start(&t, BackgroundUpdatesConfig { sleep_enabled: false, ..Default::default() }).await;
        let admin = s.client(ADMIN);
        admin.health().await.unwrap();
        admin.start_job("populate_stats_process_rooms").await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !queue_rows(&s.db).await.is_empty() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let text = admin.metrics().await.unwrap();
        assert!(text.contains("# TYPE synapse_background_update_status gauge"), "{text}");
        let status_line = text.lines().find(|l| l.starts_with("synapse_background_update_status{")).unwrap();
        assert!(status_line.starts_with(r#"synapse_background_update_status{database_name="master",server_name="test.local"} "#), "{status_line}");
        let l = r#"database_name="master",update_name="populate_stats_process_rooms""#;
        assert!(text.lines().any(|x| x == format!("updraft_background_update_batches_total{{{l}}} 1")), "{text}");
        assert!(text.lines().any(|x| x == format!("updraft_background_update_items_total{{{l}}} 1")), "{text}");
        assert!(text.lines().any(|x| x == format!("updraft_background_update_batch_duration_seconds_count{{{l}}} 1")), "{text}");
    }
}

async fn queue_rows(db: &updraft_engine::Db) -> Vec<(String, String, Option<String>)> {
    let sql = "SELECT update_name, progress_json, depends_on FROM background_updates ORDER BY update_name";
    match db {
        updraft_engine::Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        updraft_engine::Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}
