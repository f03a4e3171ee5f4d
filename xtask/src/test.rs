//! `cargo xtask test`: all workspace tests, on SQLite and on PostgreSQL.

use anyhow::bail;
use clap::Args;

use crate::postgres::{reachable, Throwaway, DEFAULT_URL, TEST_ENV};

#[derive(Args)]
pub struct TestArgs {
    /// Skip every PostgreSQL test (the explicit opt-out; says so loudly).
    #[arg(long)]
    sqlite_only: bool,
    /// Always start a throwaway PostgreSQL cluster (initdb/pg_ctl), ignoring any running server.
    #[arg(long, conflicts_with = "sqlite_only")]
    throwaway_postgres: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test-name filter.
    #[arg(last = true)]
    rest: Vec<String>,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let mut cargo = crate::cargo();
    // Every failure, not only the first test binary's: CI shows the whole picture.
    cargo.args(["test", "--workspace", "--no-fail-fast"]);
    let mut _cluster = None;
    let mut test_args: Vec<String> = Vec::new();
    if args.sqlite_only {
        eprintln!("==================================================================");
        eprintln!(" --sqlite-only: SKIPPING EVERY POSTGRESQL TEST (tests named ::postgres)");
        eprintln!(" This run proves nothing about the PostgreSQL engine.");
        eprintln!("==================================================================");
        test_args.extend(["--skip".to_owned(), "::postgres".to_owned()]);
    } else {
        let url = if args.throwaway_postgres {
            let t = Throwaway::start()?;
            let url = t.url.clone();
            _cluster = Some(t);
            url
        } else {
            pick_postgres(&mut _cluster)?
        };
        eprintln!("xtask test: PostgreSQL for tests at {url}");
        cargo.env(TEST_ENV, url);
    }
    test_args.extend(args.rest);
    if !test_args.is_empty() {
        cargo.arg("--").args(&test_args);
    }
    let status = cargo.status()?;
    if !status.success() {
        bail!("tests failed");
    }
    if args.sqlite_only {
        eprintln!("xtask test: passed, BUT the PostgreSQL half was skipped (--sqlite-only).");
    }
    Ok(())
}

/// UPDRAFT_TEST_POSTGRES, else the local server, else a throwaway cluster.
fn pick_postgres(cluster: &mut Option<Throwaway>) -> anyhow::Result<String> {
    if let Ok(url) = std::env::var(TEST_ENV) {
        return match reachable(&url) {
            Ok(()) => Ok(url),
            Err(e) => bail!("{TEST_ENV}={url} is not usable: {e}"),
        };
    }
    match reachable(DEFAULT_URL) {
        Ok(()) => return Ok(DEFAULT_URL.to_owned()),
        Err(e) => eprintln!(
            "xtask test: no PostgreSQL at {DEFAULT_URL} ({e}); starting a throwaway cluster"
        ),
    }
    match Throwaway::start() {
        Ok(t) => {
            let url = t.url.clone();
            *cluster = Some(t);
            Ok(url)
        }
        Err(e) => bail!(
            "cannot run the PostgreSQL half of the tests: {e:#}\n\
             Fix: start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), \
             or set {TEST_ENV}=postgres://USER@HOST:PORT/DB, or install PostgreSQL so a throwaway cluster can start.\n\
             To run only the SQLite half, say so explicitly: cargo xtask test --sqlite-only"
        ),
    }
}
