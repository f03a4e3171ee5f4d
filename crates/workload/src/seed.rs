//! Seeding a database: the generator runs on its own thread and streams
//! batches through a small channel to the writer, so hashing and signing
//! overlap with the database work and memory stays bounded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlx::Connection;
use updraft_engine::Db;

use crate::error::WorkloadError;
use crate::rows::{Batch, Table};
use crate::shape::Shape;
use crate::users::AppService;
use crate::world::{Start, Token, World};
use crate::writer;

/// How to seed.
#[derive(Clone, Debug, Default)]
pub struct SeedOptions {
    /// Add a world to a database that already has one (stream orderings,
    /// token ids and localparts continue after what is there).
    pub append: bool,
    /// Where to write the application-service registration YAML (none if unset).
    pub appservice_file: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a seed run did.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    pub shape: String,
    pub seed: u64,
    pub server_name: String,
    pub admin_user_id: String,
    pub admin_access_token: String,
    /// Tokens for an admin, a plain user and a guest (as far as the shape has them).
    pub tokens: Vec<Token>,
    pub rooms: u64,
    pub events: u64,
    pub first_stream_ordering: i64,
    pub last_stream_ordering: i64,
    /// Rows written per table.
    pub rows: BTreeMap<String, u64>,
    pub seconds: f64,
    /// Time the generator spent building rows (hashing, signing), and the
    /// writer spent in the database; they overlap, so each bounds `seconds`.
    pub generate_seconds: f64,
    pub write_seconds: f64,
    pub rows_per_second: f64,
    pub appservice_id: String,
    pub appservice_file: Option<PathBuf>,
}

/// Generates the world `shape` with `seed` into `db` (opened with
/// `updraft_homeserver::open`).
pub async fn seed(
    db: &Db,
    shape: &Shape,
    seed: u64,
    opts: SeedOptions,
) -> Result<SeedReport, WorkloadError> {
    let started = Instant::now();
    let start = preflight(db, opts.append).await?;
    let world = World::new(shape, seed, start);
    let appservice = world.population().appservice();
    if let Some(path) = &opts.appservice_file {
        write_registration(path, &appservice)?;
    }

    let bar = if opts.progress {
        let bar = ProgressBar::new(shape.users.local + shape.rooms.count);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} users+rooms, {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("seeding {}", shape.name));
        bar
    } else {
        ProgressBar::hidden()
    };

    // Two batches in flight: one being generated, one being written.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let progress_bar = bar.clone();
    let generator = std::thread::spawn(move || {
        let began = Instant::now();
        let mut waited = std::time::Duration::ZERO;
        let mut emit = |batch: Batch| {
            let t = Instant::now();
            let sent = tx
                .blocking_send(batch)
                .map_err(|_| WorkloadError::GeneratorGone);
            waited += t.elapsed();
            sent
        };
        let mut progress = |users: u64, rooms: u64| progress_bar.set_position(users + rooms);
        let summary = world.generate(&mut emit, &mut progress);
        (
            summary,
            (began.elapsed().saturating_sub(waited)).as_secs_f64(),
        )
    });

    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    let mut write_seconds = 0.0;
    let written = write_all(db, &mut rx, &mut rows, &mut write_seconds).await;
    drop(rx);
    let (summary, generate_seconds) = generator.join().map_err(|_| WorkloadError::GeneratorGone)?;
    written?;
    let summary = summary?;
    bar.finish_and_clear();

    if let Db::Postgres(pool) = db {
        // Synapse refuses to start when events_stream_seq lags behind the events table.
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('events_stream_seq')::text")
                .fetch_one(pool)
                .await?;
        if exists.is_some() && summary.events > 0 {
            sqlx::query(
                "SELECT setval('events_stream_seq', (SELECT MAX(stream_ordering) FROM events))",
            )
            .execute(pool)
            .await?;
        }
    }

    let admin = summary
        .tokens
        .iter()
        .find(|t| t.role == "admin")
        .cloned()
        .unwrap_or(Token {
            user_id: String::new(),
            token: String::new(),
            role: "admin",
        });
    let seconds = started.elapsed().as_secs_f64();
    let total: u64 = rows.values().sum();
    Ok(SeedReport {
        shape: shape.name.clone(),
        seed,
        server_name: shape.server_name.clone(),
        admin_user_id: admin.user_id,
        admin_access_token: admin.token,
        tokens: summary.tokens,
        rooms: summary.rooms,
        events: summary.events,
        first_stream_ordering: start.stream,
        last_stream_ordering: summary.last_stream,
        rows,
        seconds,
        generate_seconds,
        write_seconds,
        rows_per_second: total as f64 / seconds.max(1e-9),
        appservice_id: appservice.id,
        appservice_file: opts.appservice_file,
    })
}

/// Refuses a database that has a world (unless appending) and finds where
/// a new world starts.
async fn preflight(db: &Db, append: bool) -> Result<Start, WorkloadError> {
    let users = db.count_rows("users").await?;
    let events = db.count_rows("events").await?;
    if (users > 0 || events > 0) && !append {
        return Err(WorkloadError::WorldExists { users, events });
    }
    let (max_stream, max_token): (Option<i64>, Option<i64>) = match db {
        Db::Sqlite(pool) => (
            sqlx::query_scalar("SELECT MAX(stream_ordering) FROM events")
                .fetch_one(pool)
                .await?,
            sqlx::query_scalar("SELECT MAX(id) FROM access_tokens")
                .fetch_one(pool)
                .await?,
        ),
        Db::Postgres(pool) => (
            sqlx::query_scalar("SELECT MAX(stream_ordering) FROM events")
                .fetch_one(pool)
                .await?,
            sqlx::query_scalar("SELECT MAX(id) FROM access_tokens")
                .fetch_one(pool)
                .await?,
        ),
    };
    Ok(Start {
        stream: max_stream.unwrap_or(0).max(0) + 1,
        token_id: max_token.unwrap_or(0).max(0) + 1,
        user_offset: users as u64,
    })
}

/// Writes every batch, one transaction each, on one dedicated connection.
/// SQLite skips fsync while seeding (`synchronous = OFF`, restored after):
/// a crash mid-seed leaves a world to throw away anyway.
async fn write_all(
    db: &Db,
    rx: &mut tokio::sync::mpsc::Receiver<Batch>,
    rows: &mut BTreeMap<String, u64>,
    busy: &mut f64,
) -> Result<(), WorkloadError> {
    let mut count = |batch: &Batch, took: Instant| {
        *busy += took.elapsed().as_secs_f64();
        for t in Table::ALL {
            *rows.entry(t.name().to_owned()).or_default() += batch.rows(t).len() as u64;
        }
    };
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            sqlx::query("PRAGMA synchronous = OFF")
                .execute(&mut *conn)
                .await?;
            sqlx::query("PRAGMA cache_size = -65536")
                .execute(&mut *conn)
                .await?;
            let result = async {
                while let Some(batch) = rx.recv().await {
                    let took = Instant::now();
                    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                    writer::write_sqlite(&mut tx, &batch).await?;
                    tx.commit().await?;
                    count(&batch, took);
                }
                Ok::<(), WorkloadError>(())
            }
            .await;
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *conn)
                .await?;
            sqlx::query("PRAGMA cache_size = -2000")
                .execute(&mut *conn)
                .await?;
            result
        }
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            while let Some(batch) = rx.recv().await {
                let took = Instant::now();
                let mut tx = conn.begin().await?;
                writer::write_postgres(&mut tx, &batch).await?;
                tx.commit().await?;
                count(&batch, took);
            }
            Ok(())
        }
    }
}

/// The registration file Synapse's `app_service_config_files` would list.
fn write_registration(path: &std::path::Path, app: &AppService) -> Result<(), WorkloadError> {
    let yaml = format!(
        "# Application service registration written by `updraft seed`.\n\
         id: {id}\n\
         url: null\n\
         as_token: {as_token}\n\
         hs_token: {hs_token}\n\
         sender_localpart: {sender}\n\
         rate_limited: false\n\
         namespaces:\n  \
           users:\n    \
             - exclusive: true\n      \
               regex: '{regex}'\n  \
           aliases: []\n  \
           rooms: []\n",
        id = app.id,
        as_token = app.as_token,
        hs_token = app.hs_token,
        sender = app.sender_localpart,
        regex = app.user_regex.replace('\'', "''"),
    );
    std::fs::write(path, yaml).map_err(|source| WorkloadError::File {
        path: path.to_owned(),
        source,
    })
}
