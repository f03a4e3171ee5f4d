//! `updraft verify`: recompute the expected stats and directory from current
//! state and diff them against the tables. Exit 0 when clean, 1 on drift.

use std::process::ExitCode;

use clap::Args;
use updraft_homeserver::verify::{verify, What};

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// What to check: stats, directory or all.
    #[arg(long, default_value = "all")]
    what: What,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(common: &CommonArgs, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (config, opened) = common.open().await?;
    let report = verify(&opened.db, &config, args.what).await?;
    opened.db.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (what, n) in &report.checked {
            println!("checked {what}: {n}");
        }
        for room in &report.unloadable_rooms {
            println!("unloadable (not compared): {room}");
        }
        for s in &report.skipped_rooms {
            println!("skipped by {}: {} ({})", s.update_name, s.room_id, s.reason);
        }
        if report.is_clean() {
            println!("clean");
        }
        for (kind, drift) in report.drift.iter().filter(|(_, d)| d.count > 0) {
            println!("{kind}: {}", drift.count);
            for e in &drift.examples {
                println!("  e.g. {e}");
            }
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
