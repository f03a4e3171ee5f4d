//! The Synapse-compatible schema and opening a database safely.
//!
//! Three kinds of database are accepted: an empty one (it gets our
//! migrations), one of ours (pending migrations are applied), and a real
//! Synapse database (recognised by its `schema_version` table; used as it is
//! after checking that every table we need exists). Anything else is refused
//! before a single byte is written.

use std::path::Path;

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row};
use updraft_engine::{Db, DbError, DbTarget, Engine};

/// Our migrations, one directory per engine (same tables, native DDL).
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Every table updraft reads or writes (SEMANTICS §8).
pub const REQUIRED_TABLES: &[&str] = &[
    "users",
    "profiles",
    "access_tokens",
    "rooms",
    "events",
    "event_json",
    "state_events",
    "current_state_events",
    "room_memberships",
    "local_current_membership",
    "current_state_delta_stream",
    "room_stats_current",
    "room_stats_state",
    "stats_incremental_position",
    "user_directory",
    "user_directory_search",
    "user_directory_stream_pos",
    "user_directory_stale_remote_users",
    "users_in_public_rooms",
    "users_who_share_private_rooms",
    "background_updates",
];

/// What kind of database an opened handle points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    /// Created by updraft's migrations; `version` is the latest applied migration.
    Updraft { version: i64 },
    /// A real Synapse database; `schema_version` is Synapse's own.
    Synapse { schema_version: i64 },
}

impl std::fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaKind::Updraft { version } => write!(f, "updraft (migration {version})"),
            SchemaKind::Synapse { schema_version } => {
                write!(f, "Synapse (schema version {schema_version})")
            }
        }
    }
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{target} is not a SQLite database: {reason}")]
    NotSqlite { target: String, reason: String },
    #[error(
        "{target} is neither empty, an updraft database, nor a Synapse database \
         (it has {count} tables, e.g. {examples}); refusing to touch it"
    )]
    Foreign {
        target: String,
        count: usize,
        examples: String,
    },
    #[error(
        "{target} is a Synapse database (schema version {schema_version}) but lacks tables \
         updraft needs: {}", missing.join(", ")
    )]
    SynapseIncomplete {
        target: String,
        schema_version: i64,
        missing: Vec<String>,
    },
    /// Synapse's own wording, so operators recognise the advice (its
    /// docs/postgres.md is Synapse's, not ours), then how to make one.
    #[error(
        "Database has incorrect {what} of '{value}'. Should be 'C'\n\
         See docs/postgres.md for more information. You can override this check by \
         setting 'allow_unsafe_locale' to true in the database config.\n\
         (docs/postgres.md is Synapse's: https://element-hq.github.io/synapse/latest/postgres.html. \
         A database Synapse accepts: CREATE DATABASE name ENCODING 'UTF8' LC_COLLATE 'C' \
         LC_CTYPE 'C' TEMPLATE template0)"
    )]
    UnsafeLocale { what: &'static str, value: String },
    #[error("Database has incorrect encoding: '{0}' instead of 'UTF8'")]
    Encoding(String),
    #[error("migrating {target}: {source}")]
    Migrate {
        target: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// Options for [`open`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Accept a PostgreSQL database whose collation or ctype is not `C`
    /// (Synapse's `allow_unsafe_locale`).
    pub allow_unsafe_locale: bool,
}

/// An opened database and what it is.
#[derive(Clone, Debug)]
pub struct Opened {
    pub db: Db,
    pub kind: SchemaKind,
}

/// Opens a database: migrates a fresh or updraft database, checks a Synapse
/// one, refuses anything else without writing to it.
pub async fn open(target: &DbTarget, options: OpenOptions) -> Result<Opened, OpenError> {
    match target {
        DbTarget::Sqlite(path) => open_sqlite(target, path).await,
        DbTarget::Postgres(_) => open_postgres(target, options).await,
    }
}

/// What the tables of a database say it is, before anything is written.
enum Found {
    Empty,
    Ours,
    Synapse {
        schema_version: i64,
        tables: Vec<String>,
    },
    Foreign(Vec<String>),
}

fn classify(tables: Vec<String>) -> Found {
    let has = |name: &str| tables.iter().any(|t| t == name);
    if tables.is_empty() {
        Found::Empty
    } else if has("_sqlx_migrations") && !has("schema_version") {
        Found::Ours
    } else if has("schema_version") {
        Found::Synapse {
            schema_version: 0,
            tables,
        }
    } else {
        Found::Foreign(tables)
    }
}

async fn open_sqlite(target: &DbTarget, path: &Path) -> Result<Opened, OpenError> {
    let fresh = match std::fs::metadata(path) {
        Ok(m) => m.len() == 0,
        Err(_) => true,
    };
    let found = if fresh {
        Found::Empty
    } else {
        // Inspect over a read-only connection: a foreign file must stay untouched.
        let opts = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(|e| OpenError::NotSqlite {
                target: target.to_string(),
                reason: e.to_string(),
            })?;
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| OpenError::NotSqlite {
                    target: target.to_string(),
                    reason: e.to_string(),
                })?;
        let mut found = classify(tables);
        if let Found::Synapse { schema_version, .. } = &mut found {
            *schema_version = sqlx::query_scalar("SELECT version FROM schema_version")
                .fetch_optional(&mut conn)
                .await?
                .unwrap_or(0);
        }
        conn.close().await?;
        found
    };
    finish_open(target, found).await
}

async fn open_postgres(target: &DbTarget, options: OpenOptions) -> Result<Opened, OpenError> {
    let db = Db::open(target, false).await?;
    let Db::Postgres(pool) = &db else {
        unreachable!("postgres target opened as sqlite")
    };
    let encoding: String = sqlx::query_scalar("SHOW SERVER_ENCODING")
        .fetch_one(pool)
        .await?;
    if encoding != "UTF8" {
        return Err(OpenError::Encoding(encoding));
    }
    let row = sqlx::query(
        "SELECT datcollate::text, datctype::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let (collate, ctype): (String, String) = (row.get(0), row.get(1));
    if !options.allow_unsafe_locale {
        if collate != "C" {
            return Err(OpenError::UnsafeLocale {
                what: "collation",
                value: collate,
            });
        }
        if ctype != "C" {
            return Err(OpenError::UnsafeLocale {
                what: "ctype",
                value: ctype,
            });
        }
    }
    let mut found = classify(db.table_names().await?);
    if let Found::Synapse { schema_version, .. } = &mut found {
        *schema_version = sqlx::query_scalar::<_, i32>("SELECT version FROM schema_version")
            .fetch_optional(pool)
            .await?
            .unwrap_or(0) as i64;
    }
    db.close().await;
    finish_open(target, found).await
}

async fn finish_open(target: &DbTarget, found: Found) -> Result<Opened, OpenError> {
    match found {
        Found::Foreign(tables) => Err(OpenError::Foreign {
            target: target.to_string(),
            count: tables.len(),
            examples: tables
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        }),
        Found::Synapse {
            schema_version,
            tables,
        } => {
            let missing: Vec<String> = REQUIRED_TABLES
                .iter()
                .filter(|t| !tables.iter().any(|have| have == *t))
                .map(|t| t.to_string())
                .collect();
            if !missing.is_empty() {
                return Err(OpenError::SynapseIncomplete {
                    target: target.to_string(),
                    schema_version,
                    missing,
                });
            }
            let db = Db::open(target, false).await?;
            Ok(Opened {
                db,
                kind: SchemaKind::Synapse { schema_version },
            })
        }
        Found::Empty | Found::Ours => {
            let db = Db::open(target, true).await?;
            let version = migrate(&db).await.map_err(|source| OpenError::Migrate {
                target: target.to_string(),
                source,
            })?;
            Ok(Opened {
                db,
                kind: SchemaKind::Updraft { version },
            })
        }
    }
}

/// Applies our pending migrations; returns the latest applied version.
async fn migrate(db: &Db) -> Result<i64, sqlx::migrate::MigrateError> {
    let migrator = match db.engine() {
        Engine::Sqlite => &SQLITE_MIGRATOR,
        Engine::Postgres => &POSTGRES_MIGRATOR,
    };
    match db {
        Db::Sqlite(pool) => migrator.run(pool).await?,
        Db::Postgres(pool) => migrator.run(pool).await?,
    }
    Ok(migrator.iter().map(|m| m.version).max().unwrap_or(0))
}

/// A canonical text description of the given tables: columns (name, type,
/// nullability, default), indexes (name, uniqueness, columns, predicate),
/// constraints and triggers. Used to compare our schema with a reference
/// dump of a real Synapse database (fixtures/schema/).
pub async fn describe(db: &Db, tables: &[&str]) -> Result<String, sqlx::Error> {
    let mut out = String::new();
    for table in tables {
        out.push_str(&format!("table {table}\n"));
        let mut lines = match db {
            Db::Sqlite(pool) => describe_sqlite(pool, table).await?,
            Db::Postgres(pool) => describe_postgres(pool, table).await?,
        };
        // Columns keep their order; everything else is sorted.
        let split = lines
            .iter()
            .position(|l| !l.starts_with("  column "))
            .unwrap_or(lines.len());
        lines[split..].sort();
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(out)
}

async fn describe_sqlite(pool: &sqlx::SqlitePool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let mut lines = Vec::new();
    let sql: Option<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_optional(pool)
            .await?;
    let Some(sql) = sql else {
        lines.push("  MISSING".to_owned());
        return Ok(lines);
    };
    if sql.to_uppercase().starts_with("CREATE VIRTUAL TABLE") {
        lines.push(format!(
            "  virtual {}",
            sql.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
        return Ok(lines);
    }
    for row in sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
        .fetch_all(pool)
        .await?
    {
        let name: String = row.get("name");
        let ty: String = row.get("type");
        let notnull: i64 = row.get("notnull");
        let default: Option<String> = row.get("dflt_value");
        let pk: i64 = row.get("pk");
        lines.push(format!(
            "  column {name} {} {}{}{}",
            ty.to_uppercase(),
            if notnull != 0 { "not null" } else { "null" },
            default.map(|d| format!(" default {d}")).unwrap_or_default(),
            if pk != 0 { " primary key" } else { "" },
        ));
    }
    for row in sqlx::query(&format!("PRAGMA index_list(\"{table}\")"))
        .fetch_all(pool)
        .await?
    {
        let name: String = row.get("name");
        let unique: i64 = row.get("unique");
        let partial: i64 = row.get("partial");
        let cols: Vec<String> = sqlx::query(&format!("PRAGMA index_info(\"{name}\")"))
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| r.get::<Option<String>, _>("name").unwrap_or_default())
            .collect();
        let predicate = if partial != 0 {
            let sql: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
            )
            .bind(&name)
            .fetch_optional(pool)
            .await?
            .flatten();
            sql.and_then(|s| {
                let upper = s.to_uppercase();
                upper.rfind(" WHERE ").map(|i| {
                    format!(
                        " where {}",
                        s[i + 7..].split_whitespace().collect::<Vec<_>>().join(" ")
                    )
                })
            })
            .unwrap_or_default()
        } else {
            String::new()
        };
        lines.push(format!(
            "  {} {name} ({}){predicate}",
            if unique != 0 { "unique index" } else { "index" },
            cols.join(", ")
        ));
    }
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    for t in triggers {
        lines.push(format!("  trigger {t}"));
    }
    Ok(lines)
}

async fn describe_postgres(pool: &sqlx::PgPool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let mut lines = Vec::new();
    let cols = sqlx::query(
        "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 \
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    if cols.is_empty() {
        lines.push("  MISSING".to_owned());
        return Ok(lines);
    }
    for row in cols {
        let name: String = row.get(0);
        let ty: String = row.get(1);
        let nullable: String = row.get(2);
        let default: Option<String> = row.get(3);
        lines.push(format!(
            "  column {name} {ty} {}{}",
            if nullable == "NO" { "not null" } else { "null" },
            default.map(|d| format!(" default {d}")).unwrap_or_default(),
        ));
    }
    let indexes = sqlx::query(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename = $1",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    for row in indexes {
        let def: String = row.get(1);
        lines.push(format!("  index {}", def.replace("public.", "")));
    }
    let constraints = sqlx::query(
        "SELECT conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    for row in constraints {
        let name: String = row.get(0);
        let def: String = row.get(1);
        lines.push(format!(
            "  constraint {name} {}",
            def.replace("public.", "")
        ));
    }
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid \
         WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace AND NOT g.tgisinternal",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    for t in triggers {
        lines.push(format!("  trigger {t}"));
    }
    Ok(lines)
}
