//! `cargo xtask stale-directory`: the CI reproduction of stale user
//! directories. For every drift kind: seed a world, build the directory
//! through the HTTP API, apply the drift, show the stale symptom (verify's
//! drift counts, and a search that now answers wrongly where the kind has
//! one), rebuild with `regenerate_directory` through the HTTP API, and show
//! the symptom gone and verify clean.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use updraft_api::client::Client;
use updraft_engine::Db;
use updraft_homeserver::verify::{verify, What};
use updraft_homeserver::Config;

use crate::demo::{seed_world, Server};
use crate::synapse::EngineArg;
use crate::synapse_diff::{block_on, updraft, updraft_bin};

#[derive(Args, Clone)]
pub struct StaleArgs {
    #[arg(long, value_enum, default_value = "both")]
    pub engine: EngineArg,
    #[arg(long, default_value = "tiny")]
    pub shape: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only these kinds (default: every kind `updraft drift` knows).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
}

struct Row {
    engine: &'static str,
    kind: String,
    before: String,
    after: String,
    ok: bool,
}

/// Starts the job and waits until the queue is empty.
async fn rebuild(client: &Client) -> anyhow::Result<()> {
    client
        .start_job("regenerate_directory")
        .await
        .context("start_job regenerate_directory")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let runners = client.queue().await?;
        if runners.iter().all(|r| r.queue.is_empty()) {
            if let Some(r) = runners.iter().find(|r| r.state_code == -1) {
                bail!("runner aborted: {:?}", r.last_error);
            }
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "regenerate_directory did not finish in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// verify's directory drift as `kind=count, ...` (empty when clean).
async fn drift_summary(db: &Db, config: &Config) -> anyhow::Result<String> {
    let report = verify(db, config, What::Directory).await?;
    Ok(report
        .drift
        .iter()
        .filter(|(_, d)| d.count > 0)
        .map(|(k, d)| format!("{k}={}", d.count))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Whether a search for `term` by the admin finds `user`.
async fn finds(client: &Client, term: &str, user: &str) -> anyhow::Result<bool> {
    let res = client.search_users(term, Some(100)).await?;
    Ok(res.results.iter().any(|r| r.user_id == user))
}

/// The search symptom a kind has: (term, user, found when fresh).
fn search_probe(kind: &str, report: &serde_json::Value) -> Option<(String, String, bool)> {
    let user = report["users"].get(0)?.as_str()?.to_owned();
    let localpart = user.trim_start_matches('@').split(':').next()?.to_owned();
    match kind {
        // The new display name finds the user only once the directory knows it.
        "profile-change" | "remote-profile-change" => {
            let name = report["new_values"].get(0)?.as_str()?;
            let word = name.split_whitespace().next()?.to_owned();
            Some((word, user, true))
        }
        "new-user" => Some((localpart, user, true)),
        "deactivation" => Some((localpart, user, false)),
        _ => None,
    }
}

pub fn run(args: StaleArgs) -> anyhow::Result<()> {
    let bin = updraft_bin(false)?;
    let kinds: Vec<String> = if args.kinds.is_empty() {
        updraft_workload::drift::DriftKind::ALL
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect()
    } else {
        args.kinds.clone()
    };
    let mut rows = Vec::new();
    for engine in args.engine.engines() {
        for kind in &kinds {
            let row = one(&bin, engine, kind, &args).unwrap_or_else(|e| Row {
                engine,
                kind: kind.clone(),
                before: format!("ERROR: {e:#}"),
                after: String::new(),
                ok: false,
            });
            println!(
                "{} {:<8} {:<22} before: {}  after: {}",
                if row.ok { "ok  " } else { "FAIL" },
                row.engine,
                row.kind,
                row.before,
                row.after
            );
            rows.push(row);
        }
    }
    println!("\n| engine | drift kind | symptom before rebuild | after regenerate_directory |");
    println!("| --- | --- | --- | --- |");
    for r in &rows {
        println!("| {} | {} | {} | {} |", r.engine, r.kind, r.before, r.after);
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!("\n{} passed, {} failed", rows.len() - failed, failed);
    ensure!(failed == 0, "{failed} stale-directory reproductions failed");
    Ok(())
}

fn one(
    bin: &std::path::Path,
    engine: &'static str,
    kind: &str,
    args: &StaleArgs,
) -> anyhow::Result<Row> {
    let name = format!("stale-{engine}-{kind}");
    // search_all_users so a search symptom does not depend on shared rooms.
    let world = seed_world(
        bin,
        &name,
        engine,
        &args.shape,
        args.seed,
        "  sleep_enabled: false\n",
    )?;
    let mut text = std::fs::read_to_string(&world.config)?;
    text.push_str("user_directory:\n  search_all_users: true\n");
    std::fs::write(&world.config, &text)?;
    let config = Config::load(&world.config)?;
    let server = Server::start(bin, &world.config)?;
    let client = Client::new(&server.base)?.with_token(world.admin_token.clone());
    let row = block_on(async {
        let db = Db::connect(&world.url).await?;
        rebuild(&client).await?;
        let fresh = drift_summary(&db, &config).await?;
        ensure!(
            fresh.is_empty(),
            "directory not clean right after a rebuild: {fresh}"
        );
        let out = updraft(
            bin,
            &[
                "drift",
                "--database-url",
                &world.url,
                "--kind",
                kind,
                "--count",
                "1",
            ],
        )?;
        let report: serde_json::Value = serde_json::from_str(&out).context("drift JSON")?;
        let stale = drift_summary(&db, &config).await?;
        let probe = search_probe(kind, &report);
        let mut before = if stale.is_empty() {
            "verify: clean (NO SYMPTOM)".to_owned()
        } else {
            format!("verify: {stale}")
        };
        let mut ok = !stale.is_empty();
        if let Some((term, user, fresh_finds)) = &probe {
            let found = finds(&client, term, user).await?;
            before.push_str(&format!(
                "; search {term:?} {} {user}",
                if found { "finds" } else { "misses" }
            ));
            ok &= found != *fresh_finds;
        }
        rebuild(&client).await?;
        let after_drift = drift_summary(&db, &config).await?;
        let mut after = if after_drift.is_empty() {
            "verify: clean".to_owned()
        } else {
            format!("verify: {after_drift}")
        };
        ok &= after_drift.is_empty();
        if let Some((term, user, fresh_finds)) = &probe {
            let found = finds(&client, term, user).await?;
            after.push_str(&format!(
                "; search {term:?} {} {user}",
                if found { "finds" } else { "misses" }
            ));
            ok &= found == *fresh_finds;
        }
        db.close().await;
        anyhow::Ok(Row {
            engine,
            kind: kind.to_owned(),
            before,
            after,
            ok,
        })
    })?;
    server.stop()?;
    Ok(row)
}
