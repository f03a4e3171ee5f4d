//! Shared test helpers: every storage test body runs on a fresh SQLite file
//! and on a fresh PostgreSQL database (C collation, dropped afterwards).
//!
//! PostgreSQL comes from `UPDRAFT_TEST_POSTGRES` (a URL to a database the
//! tests may connect to as a user allowed to `CREATE DATABASE`), else
//! `postgres://postgres@127.0.0.1:5432/postgres`. `cargo xtask test` sets the
//! variable, starting a throwaway cluster when no server is reachable.

pub mod runner_ops;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use updraft_engine::{Db, DbTarget, Engine};

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "UPDRAFT_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database for one test. Dropping it removes the database.
pub struct TestDb {
    pub db: Db,
    pub target: DbTarget,
    _guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop may run inside a runtime: do the async work on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                            let _ = sqlx::query(&sql).execute(&mut conn).await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The admin URL of the PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// Replaces the database name in a PostgreSQL URL.
pub fn postgres_url_for(admin_url: &str, database: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("UPDRAFT_TEST_POSTGRES is not a valid URL");
    url.set_path(&format!("/{database}"));
    url.to_string()
}

fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos:x}", std::process::id())
}

/// Creates an empty PostgreSQL database with the given collation and returns its URL.
/// Used by tests that need a database the way Synapse requires it (`C`) or not.
pub async fn create_postgres_database(collation: &str) -> (String, String) {
    let admin_url = postgres_admin_url();
    let name = unique_name("updraft_test");
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach PostgreSQL for tests at {admin_url} ({e}).\n\
             Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), \
             set {POSTGRES_ENV}=postgres://USER@HOST:PORT/DB, or run `cargo xtask test`, which starts \
             a throwaway cluster; `cargo xtask test --sqlite-only` skips the PostgreSQL half."
        )
    });
    let sql = format!(
        "CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE '{collation}' LC_CTYPE '{collation}' TEMPLATE template0"
    );
    sqlx::query(&sql)
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE failed");
    (postgres_url_for(&admin_url, &name), name)
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("homeserver.db");
        let target = DbTarget::Sqlite(path.clone());
        let db = Db::open(&target, true).await.expect("open sqlite");
        TestDb {
            db,
            target,
            _guard: Guard::Sqlite(dir),
        }
    }

    /// A fresh PostgreSQL database with C collation.
    pub async fn postgres() -> TestDb {
        let (url, name) = create_postgres_database("C").await;
        let target = DbTarget::Postgres(url.clone());
        let db = Db::open(&target, false).await.expect("open postgres");
        TestDb {
            db,
            target,
            _guard: Guard::Postgres {
                admin_url: postgres_admin_url(),
                name,
            },
        }
    }

    pub async fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => TestDb::sqlite().await,
            Engine::Postgres => TestDb::postgres().await,
        }
    }

    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    /// A URL the CLI accepts (`sqlite://PATH` or `postgres://...`).
    pub fn url(&self) -> String {
        match &self.target {
            DbTarget::Sqlite(p) => format!("sqlite://{}", p.display()),
            DbTarget::Postgres(url) => url.clone(),
        }
    }

    /// The SQLite file, if this is a SQLite database.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.target {
            DbTarget::Sqlite(p) => Some(p.clone()),
            DbTarget::Postgres(_) => None,
        }
    }
}

/// Defines one test per engine: `mod NAME { fn sqlite(); fn postgres(); }`, so
/// the test output names the engine each run used.
///
/// ```ignore
/// updraft_testkit::both_engines! {
///     async fn counts_rows(t) {
///         assert_eq!(t.db.count_rows("users").await.unwrap(), 0);
///     }
/// }
/// ```
#[macro_export]
macro_rules! both_engines {
    ($( $(#[$meta:meta])* async fn $name:ident($t:ident) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    #[allow(unused_mut)]
                    let mut $t = $crate::TestDb::sqlite().await;
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    #[allow(unused_mut)]
                    let mut $t = $crate::TestDb::postgres().await;
                    $body
                }
            }
        )*
    };
}
