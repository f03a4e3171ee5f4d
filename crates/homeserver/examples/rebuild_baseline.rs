//! regenerate_directory through the real runner (sleep disabled, Synapse's
//! default pacing) against the one-shot INSERT ... SELECT rebuild, each on
//! its own copy of a seeded database. Prints seconds and the ratio.
//!
//! ```sh
//! cargo run --release -p updraft-homeserver --example rebuild_baseline -- \
//!     sqlite:///path/seeded.db example.org [appservice.yaml]
//! cargo run --release -p updraft-homeserver --example rebuild_baseline -- \
//!     postgres://postgres@127.0.0.1/seeded_template example.org [appservice.yaml]
//! ```

use std::time::{Duration, Instant};

use updraft_engine::{BackgroundUpdatesConfig, Db, DbTarget, Updater};
use updraft_homeserver::jobs::{job_rows, rebuild_directory_one_shot, registry};
use updraft_homeserver::Config;

type Error = Box<dyn std::error::Error>;

/// A fresh copy of the seeded database (file copy, or template database).
async fn copy(source: &DbTarget, tag: &str) -> Result<DbTarget, Error> {
    Ok(match source {
        DbTarget::Sqlite(path) => {
            let to = std::env::temp_dir().join(format!("rebuild_baseline_{tag}.db"));
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", to.display()));
            }
            std::fs::copy(path, &to)?;
            DbTarget::Sqlite(to)
        }
        DbTarget::Postgres(url) => {
            let mut u = url::Url::parse(url)?;
            let template = u.path().trim_start_matches('/').to_owned();
            let name = format!("rebuild_baseline_{tag}");
            u.set_path("/postgres");
            let admin = Db::connect(u.as_str()).await?;
            admin
                .execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .await?;
            admin
                .execute(&format!(
                    "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
                ))
                .await?;
            admin.close().await;
            u.set_path(&format!("/{name}"));
            DbTarget::Postgres(u.to_string())
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(server)) = (args.get(1), args.get(2)) else {
        return Err("usage: rebuild_baseline DATABASE_URL SERVER_NAME [APPSERVICE_YAML]".into());
    };
    let source = DbTarget::parse(url)?;
    let config = Config {
        server_name: server.clone(),
        app_service_config_files: args.get(3).map(Into::into).into_iter().collect(),
        background_updates: BackgroundUpdatesConfig {
            sleep_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };

    let target = copy(&source, "oneshot").await?;
    let db = updraft_homeserver::open(&target, Default::default())
        .await?
        .db;
    let started = Instant::now();
    rebuild_directory_one_shot(&db, server).await?;
    let one_shot = started.elapsed().as_secs_f64();
    db.close().await;

    let target = copy(&source, "job").await?;
    let db = updraft_homeserver::open(&target, Default::default())
        .await?
        .db;
    let updater = Updater::builder(config.background_updates.clone())
        .database("master", db.clone(), registry(&config))
        .build()
        .await?;
    let rows = job_rows("regenerate_directory").expect("known job");
    let started = Instant::now();
    updater.start_job_rows("master", &rows).await?;
    updater.start();
    loop {
        let details = updater.details().await?;
        if details.iter().any(|d| d.state_code == -1) {
            return Err(format!(
                "runner aborted: {:?}",
                details.iter().find_map(|d| d.last_error.clone())
            )
            .into());
        }
        if !details.iter().any(|d| !d.queue.is_empty() || d.in_batch) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let job = started.elapsed().as_secs_f64();
    updater.shutdown().await;
    db.close().await;
    println!(
        "engine {} one-shot rebuild: {one_shot:.3} s",
        source.engine()
    );
    println!(
        "engine {} regenerate_directory (runner, default pacing, no sleep): {job:.3} s",
        source.engine()
    );
    println!("ratio job / one-shot: {:.2}", job / one_shot);
    Ok(())
}
