//! `updraft serve`: the HTTP API plus the background-update runners of the
//! database, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use updraft_api::AppState;
use updraft_engine::{Updater, MAIN_DATABASE};
use updraft_homeserver::jobs;

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, overriding the config's `listen` (default
    /// 127.0.0.1:8008). Port 0 picks a free port; the bound address is printed.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

pub async fn run(common: &CommonArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (config, opened) = common.open().await?;
    let listen = args.listen.unwrap_or(config.listen);
    let updater = Updater::builder(config.background_updates.clone())
        .database(MAIN_DATABASE, opened.db.clone(), jobs::registry(&config))
        .build()
        .await
        .context("starting the background-update engine")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // Runners start at once; with nothing queued they settle in COMPLETE.
    updater.start();
    // One line a harness can parse for the port.
    println!("updraft listening on http://{addr}");
    tracing::info!(%addr, database = %opened.kind, "serving");
    let state = AppState::new(opened.db.clone(), config, updater.clone());
    updraft_api::serve(listener, state, shutdown_signal()).await?;
    // The current batch finishes and commits before the runners stop.
    updater.shutdown().await;
    opened.db.close().await;
    eprintln!("updraft: shut down cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
