//! `updraft info`.

use std::process::ExitCode;

use clap::Args;
use updraft_homeserver::schema::{describe, REQUIRED_TABLES};

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print the canonical schema description of the tables updraft uses
    /// (how fixtures/schema/ was made from a real Synapse database).
    #[arg(long)]
    schema: bool,
}

pub async fn run(common: &CommonArgs, args: InfoArgs) -> anyhow::Result<ExitCode> {
    let (_config, opened) = common.open().await?;
    if args.schema {
        print!("{}", describe(&opened.db, REQUIRED_TABLES).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let info = updraft_homeserver::info::info(&opened.db, &opened.kind).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("engine: {}", info.engine);
        println!("schema: {}", info.schema);
        println!("rows:");
        for (table, n) in &info.row_counts {
            println!("  {table:<36} {n:>12}");
        }
    }
    opened.db.close().await;
    Ok(ExitCode::SUCCESS)
}
