//! `cargo xtask ...`: the project's own commands.

mod postgres;
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Test(args) => test::run(args),
        Command::Ci => {
            let status = std::process::Command::new("bash").arg(".ci/run").status()?;
            anyhow::ensure!(status.success(), ".ci/run failed");
            Ok(())
        }
    }
}
