//! `cargo xtask synapse-diff`: run each job with real Synapse and with
//! updraft on copies of the same seeded Synapse database, then diff the
//! derived tables. Also hand-over in both directions, and `golden`, which
//! writes Synapse's tables for the tiny world to fixtures/golden/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use updraft_engine::Db;
use updraft_homeserver::dump;

use crate::synapse::{EngineArg, SynapseDb, Venv};

pub const JOBS: &[&str] = &["populate_stats_process_rooms", "regenerate_directory"];

#[derive(Args, Clone)]
pub struct DiffArgs {
    #[arg(long, value_enum, default_value = "both")]
    pub engine: EngineArg,
    /// World shape (fixtures/worlds/NAME.toml).
    #[arg(long, default_value = "small")]
    pub shape: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// One job, or all.
    #[arg(long, default_value = "all")]
    pub job: String,
    /// Skip the hand-over checks.
    #[arg(long)]
    pub no_handover: bool,
    /// Build updraft in release mode (for timing figures).
    #[arg(long)]
    pub release: bool,
}

/// Builds the `updraft` binary and returns its path.
pub fn updraft_bin(release: bool) -> anyhow::Result<PathBuf> {
    eprintln!(
        "xtask: building updraft ({})",
        if release { "release" } else { "debug" }
    );
    let mut cmd = crate::cargo();
    cmd.args(["build", "-p", "updraft-cli"]);
    if release {
        cmd.arg("--release");
    }
    crate::synapse::run(&mut cmd)?;
    let root = workspace_root();
    Ok(root
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("updraft"))
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Runs `updraft ARGS` and returns stdout.
pub fn updraft(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running updraft {args:?}"))?;
    if !out.status.success() {
        bail!(
            "updraft {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A seeded, quiet Synapse database for one engine.
pub fn seeded_synapse_db(
    venv: &Venv,
    bin: &Path,
    engine: &'static str,
    shape: &str,
    seed: u64,
) -> anyhow::Result<SynapseDb> {
    let dir = workspace_root()
        .join("target")
        .join("synapse-diff")
        .join(format!("{shape}-{seed}-{engine}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut base = SynapseDb::create(
        venv,
        engine,
        &dir,
        &format!("{shape}_{seed}_base"),
        "example.org",
    )?;
    // The appservice registration `seed` writes; Synapse and updraft both
    // read it from the config (its users are excluded from the directory).
    let appservice = dir.join("appservice.yaml");
    updraft(
        bin,
        &[
            "seed",
            "--database-url",
            &base.url,
            "--shape",
            shape,
            "--seed",
            &seed.to_string(),
            "--appservice-file",
            appservice.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    anyhow::ensure!(appservice.exists(), "seed wrote no appservice registration");
    base.set_app_services(vec![appservice])?;
    Ok(base)
}

/// Rows each job inserts (the start_job admin API's rows).
pub fn queue_sql(job: &str) -> &'static str {
    match job {
        "populate_stats_process_rooms" => {
            "INSERT INTO background_updates (update_name, progress_json, depends_on) VALUES ('populate_stats_process_rooms', '{}', '')"
        }
        _ => {
            "INSERT INTO background_updates (update_name, progress_json, depends_on) VALUES \
             ('populate_user_directory_createtables', '{}', ''), \
             ('populate_user_directory_process_rooms', '{}', 'populate_user_directory_createtables'), \
             ('populate_user_directory_process_users', '{}', 'populate_user_directory_process_rooms'), \
             ('populate_user_directory_cleanup', '{}', 'populate_user_directory_process_users')"
        }
    }
}

/// Queues `job` in updraft's copy, then runs updraft's updater on it; returns seconds.
fn run_updraft(
    bin: &Path,
    db: &SynapseDb,
    job: Option<&str>,
    extra: &[&str],
) -> anyhow::Result<f64> {
    if let Some(job) = job {
        block_on(async {
            let conn = Db::connect(&db.url).await?;
            conn.execute(queue_sql(job)).await?;
            conn.close().await;
            anyhow::Ok(())
        })?;
    }
    let config = db.config.to_string_lossy().into_owned();
    let mut args = vec!["run", "--config", &config];
    args.extend_from_slice(extra);
    let start = Instant::now();
    updraft(bin, &args)?;
    Ok(start.elapsed().as_secs_f64())
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Dumps both databases and compares them; returns the per-table diff.
fn diff(
    synapse: &SynapseDb,
    ours: &SynapseDb,
) -> anyhow::Result<BTreeMap<String, dump::TableDiff>> {
    block_on(async {
        let s = Db::connect(&synapse.url).await?;
        let o = Db::connect(&ours.url).await?;
        let expected = dump::dump(&s).await?;
        let actual = dump::dump(&o).await?;
        let choices = dump::remote_profile_choices(&s, "example.org").await?;
        s.close().await;
        o.close().await;
        anyhow::Ok(dump::compare(&expected, &actual, &choices))
    })
}

/// Prints the comparison (a line per table, or one line in all when
/// `per_table` is false and nothing differs) with examples of differences;
/// returns the number of differences.
fn report(label: &str, d: &BTreeMap<String, dump::TableDiff>, per_table: bool) -> usize {
    let bad: usize = d.values().map(|t| t.missing.len() + t.extra.len()).sum();
    if !per_table && bad == 0 {
        let rows: usize = d.values().map(|t| t.compared).sum();
        println!(
            "  {label}: {rows} rows in {} tables, no differences",
            d.len()
        );
        return 0;
    }
    println!("  {label}:");
    for (table, t) in d {
        let n = t.missing.len() + t.extra.len();
        println!("    {table:<32} rows {:>8}  differences {n}", t.compared);
        for m in t.missing.iter().take(3) {
            println!("      only in Synapse: {m}");
        }
        for e in t.extra.iter().take(3) {
            println!("      only in updraft: {e}");
        }
    }
    bad
}

/// Batch size of the hand-over runs: small, so that a hand-over lands in
/// the middle of an update.
const HANDOVER_BATCH: u64 = 3;

/// After how many batches the first updater stops. Stats: after 3 batches
/// (9 rooms). Directory: in `process_rooms` (after createtables and 2 rooms)
/// and in `process_users` (every room takes one batch of 3 events, as each
/// room has more; then 2 batches of users).
fn handover_points(base: &SynapseDb, job: &str) -> anyhow::Result<Vec<u32>> {
    if job == "populate_stats_process_rooms" {
        return Ok(vec![3]);
    }
    let rooms: i64 = block_on(async {
        let db = Db::connect(&base.url).await?;
        let n = db
            .scalar_i64("SELECT COUNT(DISTINCT room_id) FROM current_state_events")
            .await?;
        db.close().await;
        anyhow::Ok(n)
    })?;
    Ok(vec![3, rooms as u32 + 3])
}

/// Hand-over both ways at `after` batches: Synapse starts and updraft
/// finishes, then updraft starts and Synapse finishes; each must equal the
/// full Synapse run `syn`. Returns the number of differences.
fn handover(
    venv: &Venv,
    bin: &Path,
    base: &SynapseDb,
    args: &DiffArgs,
    job: &str,
    after: u32,
    syn: &SynapseDb,
) -> anyhow::Result<usize> {
    let mut failures = 0;
    let name = |dir: &str| format!("{}_{}_{dir}_{after}_{job}", args.shape, args.seed);
    let mut s2u = base.copy(&name("s2u"))?;
    s2u.set_fixed_batch_size(HANDOVER_BATCH)?;
    s2u.run_driver(venv, &[job], &[], Some(after))?;
    let left = pending(&s2u)?;
    run_updraft(bin, &s2u, None, &[])?;
    failures += report(
        &format!("hand-over: Synapse {after} batches, then updraft (handed {left})"),
        &diff(syn, &s2u)?,
        false,
    );
    let mut u2s = base.copy(&name("u2s"))?;
    u2s.set_fixed_batch_size(HANDOVER_BATCH)?;
    run_updraft(bin, &u2s, Some(job), &["--max-batches", &after.to_string()])?;
    let left = pending(&u2s)?;
    u2s.run_driver(venv, &[], &[job], None)?;
    failures += report(
        &format!("hand-over: updraft {after} batches, then Synapse (handed {left})"),
        &diff(syn, &u2s)?,
        false,
    );
    s2u.drop_database();
    u2s.drop_database();
    Ok(failures)
}

/// The queue as handed over: `name progress_json` of each row.
fn pending(db: &SynapseDb) -> anyhow::Result<String> {
    block_on(async {
        let conn = Db::connect(&db.url).await?;
        let rows = updraft_engine::queue::list(&conn).await?;
        conn.close().await;
        let rows: Vec<String> = rows
            .iter()
            .filter(|r| r.update_name.starts_with("populate_"))
            .map(|r| format!("{} {}", r.update_name, r.progress_json))
            .collect();
        anyhow::Ok(if rows.is_empty() {
            "nothing".to_owned()
        } else {
            rows.join(", ")
        })
    })
}

pub fn run(args: DiffArgs) -> anyhow::Result<()> {
    let venv = Venv::ensure()?;
    let bin = updraft_bin(args.release)?;
    let jobs: Vec<&str> = if args.job == "all" {
        JOBS.to_vec()
    } else {
        vec![JOBS
            .iter()
            .copied()
            .find(|j| *j == args.job)
            .context("unknown --job")?]
    };
    let mut summary = Vec::new();
    let mut failures = 0;
    for engine in args.engine.engines() {
        println!(
            "== synapse-diff: shape {} seed {} on {engine}",
            args.shape, args.seed
        );
        let base = seeded_synapse_db(&venv, &bin, engine, &args.shape, args.seed)?;
        for job in &jobs {
            let syn = base.copy(&format!("{}_{}_synapse_{job}", args.shape, args.seed))?;
            let ours = base.copy(&format!("{}_{}_updraft_{job}", args.shape, args.seed))?;
            let s = syn.run_driver(&venv, &[job], &[], None)?;
            let synapse_secs = s["seconds"].as_f64().unwrap_or(f64::NAN);
            let updraft_secs = run_updraft(&bin, &ours, Some(job), &[])?;
            let d = diff(&syn, &ours)?;
            let bad = report(job, &d, true);
            failures += bad;
            summary.push((
                job.to_string(),
                engine,
                d.values().map(|t| t.compared).sum::<usize>(),
                bad,
                synapse_secs,
                updraft_secs,
            ));
            if !args.no_handover {
                for after in handover_points(&base, job)? {
                    failures += handover(&venv, &bin, &base, &args, job, after, &syn)?;
                }
            }
            syn.drop_database();
            ours.drop_database();
        }
        base.drop_database();
    }
    println!();
    println!("| job | engine | rows compared | differences | Synapse s | updraft s | ratio |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (job, engine, rows, bad, s, u) in &summary {
        println!(
            "| {job} | {engine} | {rows} | {bad} | {s:.2} | {u:.2} | {:.1}x |",
            s / u
        );
    }
    if failures > 0 {
        bail!("{failures} differences between Synapse and updraft");
    }
    println!("synapse-diff: no differences");
    Ok(())
}

/// `cargo xtask golden`: Synapse's derived tables for the tiny world, per
/// engine, into fixtures/golden/ (never produced by updraft itself).
pub fn golden(seed: u64) -> anyhow::Result<()> {
    let venv = Venv::ensure()?;
    let bin = updraft_bin(false)?;
    for engine in ["sqlite", "postgres"] {
        let base = seeded_synapse_db(&venv, &bin, engine, "tiny", seed)?;
        let syn = base.copy("tiny_golden")?;
        syn.run_driver(&venv, JOBS, &[], None)?;
        let text = block_on(async {
            let db = Db::connect(&syn.url).await?;
            let d = dump::dump(&db).await?;
            db.close().await;
            anyhow::Ok(dump::to_text(&d))
        })?;
        let dir = workspace_root().join("fixtures").join("golden");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("tiny-seed{seed}-{engine}.txt"));
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
        syn.drop_database();
        base.drop_database();
    }
    Ok(())
}
