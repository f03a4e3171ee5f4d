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
    cargo.stdout(std::process::Stdio::piped());
    let mut child = cargo.spawn()?;
    let mut tally = Tally::default();
    let out = child.stdout.take().expect("piped stdout");
    for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
        let line = line?;
        println!("{line}");
        tally.line(&line);
    }
    let status = child.wait()?;
    eprintln!("\n{}", tally.summary());
    if !status.success() {
        bail!("tests failed");
    }
    if args.sqlite_only {
        eprintln!("xtask test: passed, BUT the PostgreSQL half was skipped (--sqlite-only).");
    }
    Ok(())
}

/// Counts of `cargo test` result lines, split by engine (a test whose name
/// says `postgres` or `sqlite`: `both_engines!` names its two halves so), so
/// that the run ends by saying what ran where.
#[derive(Default)]
struct Tally {
    sqlite: u32,
    postgres: u32,
    other: u32,
    failed: Vec<String>,
    ignored: u32,
}

impl Tally {
    fn line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test ") else {
            return;
        };
        let Some((name, outcome)) = rest.rsplit_once(" ... ") else {
            return;
        };
        match outcome.trim() {
            "ok" if name.contains("postgres") => self.postgres += 1,
            "ok" if name.contains("sqlite") => self.sqlite += 1,
            "ok" => self.other += 1,
            "FAILED" => self.failed.push(name.to_owned()),
            o if o.starts_with("ignored") => self.ignored += 1,
            _ => {}
        }
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "xtask test: {} passed ({} on sqlite, {} on postgres, {} engine-free), {} failed, {} ignored",
            self.sqlite + self.postgres + self.other,
            self.sqlite,
            self.postgres,
            self.other,
            self.failed.len(),
            self.ignored
        );
        for name in &self.failed {
            s.push_str(&format!("\n  FAILED {name}"));
        }
        s
    }
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

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_splits_by_engine_and_lists_failures() {
        let mut t = Tally::default();
        for line in [
            "test jobs::stats_rules::sqlite ... ok",
            "test jobs::stats_rules::postgres ... ok",
            "test pacing::first_batch ... ok",
            "test api::search::postgres ... FAILED",
            "test crates/testkit/src/lib.rs - both_engines (line 162) ... ignored",
            "test result: ok. 3 passed; 1 failed",
            "running 4 tests",
        ] {
            t.line(line);
        }
        assert_eq!((t.sqlite, t.postgres, t.other, t.ignored), (1, 1, 1, 1));
        assert_eq!(t.failed, vec!["api::search::postgres".to_owned()]);
        assert_eq!(
            t.summary(),
            "xtask test: 3 passed (1 on sqlite, 1 on postgres, 1 engine-free), 1 failed, 1 ignored\n  FAILED api::search::postgres"
        );
    }
}
