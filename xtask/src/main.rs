//! `cargo xtask ...`: the project's own commands.

mod bench;
mod demo;
mod postgres;
mod stale;
mod synapse;
mod synapse_diff;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "updraft's harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job end to end on seeded data: seed, serve, start both jobs
    /// through the admin API, pause/resume, verify, summary.
    Demo(demo::DemoArgs),
    /// Throughput of each job through the real runner on a seeded world.
    Bench(bench::BenchArgs),
    /// Reproduce every kind of stale user directory, then fix it with
    /// regenerate_directory through the HTTP API.
    StaleDirectory(stale::StaleArgs),
    /// Run every workspace test on SQLite and on PostgreSQL.
    Test(test::TestArgs),
    /// Run exactly what CI runs (.ci/run): fmt, clippy, then `xtask test`.
    Ci,
    /// Run each job with real Synapse 1.163.2 and with updraft on copies of
    /// the same seeded database, and diff the derived tables.
    SynapseDiff(synapse_diff::DiffArgs),
    /// Write Synapse's derived tables for the tiny world to fixtures/golden/.
    Golden {
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// A nested `cargo` command. `cargo run` gives xtask the variables of its
/// own package (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...); passed on, they mark
/// build scripts that watch them (ring's) dirty and every run rebuilds.
pub fn cargo() -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Test(args) => test::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::StaleDirectory(args) => stale::run(args),
        Command::SynapseDiff(args) => synapse_diff::run(args),
        Command::Golden { seed } => synapse_diff::golden(seed),
        Command::Ci => {
            let status = std::process::Command::new("bash").arg(".ci/run").status()?;
            anyhow::ensure!(status.success(), ".ci/run failed");
            Ok(())
        }
    }
}
