//! `updraft seed`: generate a deterministic world into a database.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use updraft_engine::DbTarget;
use updraft_workload::{SeedOptions, Shape};

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// World shape: a built-in name (tiny, small, medium, large, xl; see
    /// fixtures/worlds/) or the path of a shape TOML file.
    #[arg(long, default_value = "tiny")]
    shape: String,
    /// Seed of the generator: the same shape and seed give identical rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Add a world to a database that already has one (stream orderings and
    /// localparts continue after the existing ones). Without it such a
    /// database is refused and left untouched.
    #[arg(long)]
    append: bool,
    /// Where to write the application-service registration YAML (default:
    /// beside a SQLite database, else the current directory, as
    /// `<appservice id>.yaml`).
    #[arg(long)]
    appservice_file: Option<PathBuf>,
    /// No progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
    /// Print the full report as JSON (tokens, rows per table, timings).
    #[arg(long)]
    json: bool,
}

pub async fn run(common: &CommonArgs, args: SeedArgs) -> anyhow::Result<ExitCode> {
    let shape = Shape::load(&args.shape)?;
    // The config's server name decides which users are local: it must be the world's.
    if common.config.is_some() || common.server_name.is_some() {
        let config = common.config()?;
        anyhow::ensure!(
            config.server_name == shape.server_name,
            "shape {} is for server {:?} but the config says server_name {:?}",
            shape.name,
            shape.server_name,
            config.server_name
        );
    }
    let (_config, opened) = common.open().await?;
    let target = common.target(&common.config()?)?;
    let appservice_file = args.appservice_file.clone().or_else(|| {
        let dir = match &target {
            DbTarget::Sqlite(path) => path.parent().map(PathBuf::from).unwrap_or_default(),
            DbTarget::Postgres(_) => PathBuf::from("."),
        };
        let id = updraft_workload::users::Population::new(&shape, args.seed, 0)
            .appservice()
            .id;
        Some(dir.join(format!("{id}.yaml")))
    });
    let opts = SeedOptions {
        append: args.append,
        appservice_file,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let report = updraft_workload::seed(&opened.db, &shape, args.seed, opts)
        .await
        .with_context(|| format!("seeding {target}"))?;
    opened.db.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let rows: u64 = report.rows.values().sum();
        println!(
            "seeded world {} (seed {}) into {target}: {} rooms, {} events, {rows} rows in {:.1} s \
             ({:.0} rows/s; generating {:.1} s, writing {:.1} s, overlapped)",
            report.shape,
            report.seed,
            report.rooms,
            report.events,
            report.seconds,
            report.rows_per_second,
            report.generate_seconds,
            report.write_seconds
        );
        println!(
            "admin: {}  access token: {}",
            report.admin_user_id, report.admin_access_token
        );
        for t in report.tokens.iter().filter(|t| t.role != "admin") {
            println!("{}: {}  access token: {}", t.role, t.user_id, t.token);
        }
        if let Some(path) = &report.appservice_file {
            println!(
                "appservice {} registration: {}",
                report.appservice_id,
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
