//! `updraft start-job NAME`: queues a job's rows exactly as Synapse's
//! `POST /_synapse/admin/v1/background_updates/start_job` does, for scripts
//! and CI without a running server; `updraft run` (or a running
//! `updraft serve`, on its next start or job) then runs it.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use updraft_engine::{queue, EngineError};
use updraft_homeserver::jobs::{job_rows, POPULATE_STATS, REGENERATE_DIRECTORY};

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct StartJobArgs {
    /// The job: populate_stats_process_rooms or regenerate_directory.
    job_name: String,
}

pub async fn run(common: &CommonArgs, args: StartJobArgs) -> anyhow::Result<ExitCode> {
    let Some(rows) = job_rows(&args.job_name) else {
        bail!(
            "Invalid job_name {:?} (known: {POPULATE_STATS}, {REGENERATE_DIRECTORY})",
            args.job_name
        );
    };
    let (_config, opened) = common.open().await?;
    let result = queue::insert(&opened.db, &rows).await;
    opened.db.close().await;
    match result {
        Ok(()) => {
            for row in &rows {
                println!("queued {}", row.update_name);
            }
            Ok(ExitCode::SUCCESS)
        }
        // Synapse's wording; nothing was inserted.
        Err(EngineError::AlreadyQueued(_)) => {
            eprintln!(
                "Job {} is already in queue of background updates.",
                args.job_name
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
