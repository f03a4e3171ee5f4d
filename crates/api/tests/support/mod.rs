//! A real server on a free loopback port over a fresh database, with users
//! and tokens of every kind.

use std::net::SocketAddr;

use updraft_api::{router, AppState, Client};
use updraft_engine::{BackgroundUpdatesConfig, Db, Updater, MAIN_DATABASE};
use updraft_homeserver::{jobs, Config};
use updraft_testkit::TestDb;

pub const SERVER: &str = "test.local";
pub const ADMIN: &str = "admin_token";
pub const USER: &str = "user_token";
pub const GUEST: &str = "guest_token";
pub const EXPIRED: &str = "expired_token";
pub const LOCKED: &str = "locked_token";

pub struct TestServer {
    pub base: String,
    pub db: Db,
    pub http: reqwest::Client,
}

impl TestServer {
    /// Opens our schema on `t`, seeds users and tokens, starts the engine
    /// and the HTTP server.
    pub async fn start(t: &TestDb, bg: BackgroundUpdatesConfig) -> TestServer {
        let opened = updraft_homeserver::open(&t.target, Default::default())
            .await
            .expect("open schema");
        let db = opened.db;
        seed_users(&db).await;
        let config = Config {
            server_name: SERVER.to_owned(),
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
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router(state)).await.unwrap();
        });
        TestServer {
            base: format!("http://{addr}"),
            db,
            http: reqwest::Client::new(),
        }
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.base).unwrap().with_token(token)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn seed_users(db: &Db) {
    let far_future = 4_102_444_800_000i64; // 2100-01-01
    let sql = format!(
        "INSERT INTO users (name, admin, is_guest, locked, deactivated) VALUES \
         ('@admin:{SERVER}', 1, 0, FALSE, 0), ('@alice:{SERVER}', 0, 0, FALSE, 0), \
         ('@guest:{SERVER}', 0, 1, FALSE, 0), ('@locked:{SERVER}', 0, 0, TRUE, 0);
         INSERT INTO access_tokens (id, user_id, token, valid_until_ms) VALUES \
         (1, '@admin:{SERVER}', '{ADMIN}', NULL), (2, '@alice:{SERVER}', '{USER}', {far_future}), \
         (3, '@guest:{SERVER}', '{GUEST}', NULL), (4, '@alice:{SERVER}', '{EXPIRED}', 1000), \
         (5, '@locked:{SERVER}', '{LOCKED}', NULL), (6, '@nobody:{SERVER}', 'orphan_token', NULL);"
    );
    db.execute_script(&sql).await.expect("seed users");
}

/// Inserts a room with its stats rows (as the stats job would have written them).
#[allow(clippy::too_many_arguments)]
pub async fn insert_room(
    db: &Db,
    room_id: &str,
    name: Option<&str>,
    public: bool,
    federatable: Option<bool>,
    joined: i64,
    state_events: i64,
) {
    let q = |s: Option<&str>| {
        s.map_or("NULL".to_owned(), |s| {
            format!("'{}'", s.replace('\'', "''"))
        })
    };
    let b = |v: bool| if v { "TRUE" } else { "FALSE" };
    let sql = format!(
        "INSERT INTO rooms (room_id, is_public, creator, room_version) VALUES ('{room_id}', {}, '@admin:{SERVER}', '10');
         INSERT INTO room_stats_state (room_id, name, canonical_alias, join_rules, history_visibility, \
           encryption, avatar, guest_access, is_federatable, topic, room_type) VALUES \
           ('{room_id}', {}, {}, 'public', 'shared', NULL, 'mxc://x/y', NULL, {}, 'a topic', NULL);
         INSERT INTO room_stats_current (room_id, current_state_events, joined_members, invited_members, \
           left_members, banned_members, local_users_in_room, completed_delta_stream_id, knocked_members) \
           VALUES ('{room_id}', {state_events}, {joined}, 0, 0, 0, {joined}, 1, 0);",
        b(public),
        q(name),
        q(name.map(|n| format!("#{}:{SERVER}", n.to_lowercase().replace(' ', "-"))).as_deref()),
        federatable.map_or("NULL", b),
    );
    db.execute_script(&sql).await.expect("insert room");
}

/// Sends a raw request and returns (status, body text).
pub async fn raw(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.http.request(method, s.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.body(body.to_vec());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}
