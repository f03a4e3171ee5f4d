//! `updraft drift`: change a seeded world the way a homeserver would, leaving
//! the derived tables (stats, user directory) stale.

use std::process::ExitCode;

use clap::Args;
use updraft_workload::drift::{self, DriftKind};

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct DriftArgs {
    /// What changes: profile-change (global display name), avatar-change,
    /// deactivation, room-became-private, room-became-public, join, leave,
    /// new-user, remote-profile-change, ban.
    #[arg(long)]
    kind: String,
    /// How many users or rooms to change (fewer if the world has fewer candidates).
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Seed choosing the targets and new values: the same world (up to its
    /// latest event) and seed give the same drift; drifting again changes more.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(common: &CommonArgs, args: DriftArgs) -> anyhow::Result<ExitCode> {
    let kind: DriftKind = args.kind.parse()?;
    let (config, opened) = common.open().await?;
    let report = drift::apply(&opened.db, &config.server_name, kind, args.count, args.seed).await?;
    opened.db.close().await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
