//! One database handle over SQLite or PostgreSQL pools.
//!
//! We deliberately avoid `sqlx::Any` (it loses types): code that needs
//! different SQL per engine matches on [`Db`] / [`DbTx`] and keeps both
//! variants side by side.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{ConnectOptions, Postgres, Sqlite, Transaction};

/// The two supported database engines.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" | "sqlite3" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" | "psycopg2" => Ok(Engine::Postgres),
            other => Err(format!(
                "unknown database engine {other:?} (expected sqlite or postgres)"
            )),
        }
    }
}

/// Errors from opening a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("SQLite database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot open database {target}: {source}")]
    Open {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// Where a database lives, parsed from a URL or a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbTarget {
    /// A SQLite file (`:memory:` is not supported: runners and servers share the file).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl DbTarget {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `postgres://...` / `postgresql://...`.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() {
                return Err(DbError::UnsupportedUrl(url.to_owned()));
            }
            return Ok(DbTarget::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbTarget::Postgres(url.to_owned()));
        }
        Err(DbError::UnsupportedUrl(url.to_owned()))
    }

    pub fn engine(&self) -> Engine {
        match self {
            DbTarget::Sqlite(_) => Engine::Sqlite,
            DbTarget::Postgres(_) => Engine::Postgres,
        }
    }
}

impl fmt::Display for DbTarget {
    /// A printable form with any password hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbTarget::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DbTarget::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://(unparseable url)"),
            },
        }
    }
}

/// A pooled connection to one database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either engine. SQLite write transactions start with
/// `BEGIN IMMEDIATE` so that two writers queue on the busy timeout instead of
/// failing when a read lock is upgraded.
pub enum DbTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl DbTx {
    pub fn engine(&self) -> Engine {
        match self {
            DbTx::Sqlite(_) => Engine::Sqlite,
            DbTx::Postgres(_) => Engine::Postgres,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            DbTx::Sqlite(tx) => tx.commit().await,
            DbTx::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            DbTx::Sqlite(tx) => tx.rollback().await,
            DbTx::Postgres(tx) => tx.rollback().await,
        }
    }

    /// Runs one statement without bind parameters (DDL, simple DML).
    pub async fn execute(&mut self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(match self {
            DbTx::Sqlite(tx) => sqlx::query(sql).execute(&mut **tx).await?.rows_affected(),
            DbTx::Postgres(tx) => sqlx::query(sql).execute(&mut **tx).await?.rows_affected(),
        })
    }
}

/// How many connections a pool keeps. SQLite serialises writers anyway; a few
/// connections let readers (status, search) proceed beside a batch.
const SQLITE_POOL_SIZE: u32 = 4;
/// A batch of a big job is one long statement by design: sqlx's
/// slow-statement notice is information (`-v`), not a warning.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);
const SLOW_STATEMENT_LEVEL: log::LevelFilter = log::LevelFilter::Info;
const POSTGRES_POOL_SIZE: u32 = 8;

impl Db {
    /// Opens a database from a URL (`sqlite://PATH` or `postgres://...`).
    /// A missing SQLite file is created.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        Db::open(&DbTarget::parse(url)?, true).await
    }

    /// Opens a target. With `create == false` a missing SQLite file is an error
    /// and nothing is created.
    pub async fn open(target: &DbTarget, create: bool) -> Result<Db, DbError> {
        match target {
            DbTarget::Sqlite(path) => Db::open_sqlite(path, create).await,
            DbTarget::Postgres(url) => Db::open_postgres(url).await,
        }
    }

    /// Options for a SQLite file: WAL, NORMAL sync, a long busy timeout.
    pub fn sqlite_options(path: &Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(60))
            .foreign_keys(true)
            .log_slow_statements(SLOW_STATEMENT_LEVEL, SLOW_STATEMENT)
    }

    pub async fn open_sqlite(path: &Path, create: bool) -> Result<Db, DbError> {
        if !create && !path.exists() {
            return Err(DbError::Missing {
                path: path.to_owned(),
            });
        }
        let opts = Db::sqlite_options(path).create_if_missing(create);
        let pool = PoolOptions::<Sqlite>::new()
            .max_connections(SQLITE_POOL_SIZE)
            .connect_with(opts)
            .await
            .map_err(|source| DbError::Open {
                target: format!("sqlite://{}", path.display()),
                source,
            })?;
        Ok(Db::Sqlite(pool))
    }

    pub async fn open_postgres(url: &str) -> Result<Db, DbError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|source| DbError::Open {
                target: DbTarget::Postgres(url.to_owned()).to_string(),
                source,
            })?
            .log_slow_statements(SLOW_STATEMENT_LEVEL, SLOW_STATEMENT);
        let pool = PoolOptions::<Postgres>::new()
            .max_connections(POSTGRES_POOL_SIZE)
            .connect_with(opts)
            .await
            .map_err(|source| DbError::Open {
                target: DbTarget::Postgres(url.to_owned()).to_string(),
                source,
            })?;
        Ok(Db::Postgres(pool))
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<DbTx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => DbTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => DbTx::Postgres(pool.begin().await?),
        })
    }

    /// Runs one statement without bind parameters.
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
            Db::Postgres(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
        })
    }

    /// Runs a script of several statements (migrations, fixtures).
    pub async fn execute_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        match self {
            Db::Sqlite(pool) => {
                pool.execute(sql).await?;
            }
            Db::Postgres(pool) => {
                pool.execute(sql).await?;
            }
        }
        Ok(())
    }

    /// Counts rows of a table (the name is trusted: callers pass constants).
    pub async fn count_rows(&self, table: &str) -> Result<i64, sqlx::Error> {
        self.scalar_i64(&format!("SELECT COUNT(*) FROM {table}"))
            .await
    }

    /// The one integer a query without bind parameters returns.
    pub async fn scalar_i64(&self, sql: &str) -> Result<i64, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        })
    }

    /// Names of the tables in the database (public schema on Postgres).
    pub async fn table_names(&self) -> Result<Vec<String>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                )
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = current_schema() ORDER BY table_name",
                )
                .fetch_all(pool)
                .await?
            }
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
