//! The `updraft` binary: a thin layer over the library crates.

mod common;
mod drift;
mod info;
mod run;
mod seed;
mod serve;
mod start_job;
mod verify;

use clap::{Parser, Subcommand};

/// updraft: Synapse's background updates (room stats, user directory), exact
/// and fast, around a simulated homeserver testbed.
#[derive(Parser, Debug)]
#[command(name = "updraft", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: common::CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open a database and print its engine, schema kind and row counts.
    Info(info::InfoArgs),
    /// Run every pending background update updraft knows to completion, without sleeping.
    Run(run::RunArgs),
    /// Generate a deterministic world (users, rooms, events, state) into a database.
    Seed(seed::SeedArgs),
    /// Change a seeded world as a homeserver would, leaving the derived tables stale; prints JSON.
    Drift(drift::DriftArgs),
    /// Queue a job (populate_stats_process_rooms, regenerate_directory) as the admin API's start_job does.
    StartJob(start_job::StartJobArgs),
    /// Serve the HTTP API (Synapse's admin endpoints, search, /metrics) and run the background updates.
    Serve(serve::ServeArgs),
    /// Recompute the expected stats and directory and diff them against the tables (exit 1 on drift).
    Verify(verify::VerifyArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    common::init_tracing(cli.common.verbose);
    let result = match cli.command {
        Command::Info(args) => info::run(&cli.common, args).await,
        Command::Run(args) => run::run(&cli.common, args).await,
        Command::Seed(args) => seed::run(&cli.common, args).await,
        Command::Drift(args) => drift::run(&cli.common, args).await,
        Command::StartJob(args) => start_job::run(&cli.common, args).await,
        Command::Serve(args) => serve::run(&cli.common, args).await,
        Command::Verify(args) => verify::run(&cli.common, args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
