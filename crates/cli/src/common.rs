//! Options every subcommand shares: the config file and its CLI overrides.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use updraft_engine::DbTarget;
use updraft_homeserver::{Config, OpenOptions, Opened};

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// homeserver.yaml-style config file (`server_name`, `database`, `background_updates`, ...).
    #[arg(short = 'c', long, global = true, env = "UPDRAFT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL, overriding the config: `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        short = 'd',
        long = "database-url",
        visible_alias = "database",
        global = true,
        env = "UPDRAFT_DATABASE_URL"
    )]
    pub database_url: Option<String>,
    /// Server name, overriding the config (users `@x:SERVER_NAME` are local).
    #[arg(long, global = true)]
    pub server_name: Option<String>,
    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl CommonArgs {
    /// The config file (or defaults) with CLI overrides applied.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(name) = &self.server_name {
            config.server_name = name.clone();
        }
        Ok(config)
    }

    /// Where the database is: `--database-url` wins over the config.
    pub fn target(&self, config: &Config) -> anyhow::Result<DbTarget> {
        match &self.database_url {
            Some(url) => Ok(DbTarget::parse(url)?),
            None => Ok(config.database_target()?),
        }
    }

    /// Loads the config and opens the database safely (see `schema::open`).
    pub async fn open(&self) -> anyhow::Result<(Config, Opened)> {
        let config = self.config()?;
        let target = self.target(&config)?;
        let options = OpenOptions {
            allow_unsafe_locale: config
                .database
                .as_ref()
                .is_some_and(|d| d.allow_unsafe_locale),
        };
        let opened = updraft_homeserver::open(&target, options)
            .await
            .with_context(|| format!("opening {target}"))?;
        Ok((config, opened))
    }
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
