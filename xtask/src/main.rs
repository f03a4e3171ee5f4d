//! `cargo xtask ...`: the project's own commands.

mod postgres;
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Test(args) => test::run(args),
        Command::SynapseDiff(args) => synapse_diff::run(args),
        Command::Golden { seed } => synapse_diff::golden(seed),
        Command::Ci => {
            let status = std::process::Command::new("bash").arg(".ci/run").status()?;
            anyhow::ensure!(status.success(), ".ci/run failed");
            Ok(())
        }
    }
}
