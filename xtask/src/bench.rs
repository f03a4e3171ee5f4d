//! `cargo xtask bench`: throughput of each job through the real runner, with
//! sleep disabled and Synapse's default pacing, on a seeded world.
//!
//! The world is seeded once per shape+seed+engine and cached (SQLite: a file
//! under target/bench/cache; PostgreSQL: a template database); each run works
//! on a fresh copy. Per job and stage it reports items/s, rooms/s or users/s,
//! rows written, batches, batch duration p50/p99, pause latency and peak RSS;
//! the median of N runs. Writes JSON and Markdown under target/bench/.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_trait::async_trait;
use clap::Args;
use serde::{Deserialize, Serialize};
use updraft_engine::controller::Controller;
use updraft_engine::queue::UpdateRow;
use updraft_engine::{BackgroundUpdatesConfig, Db, DbTarget, Updater};
use updraft_homeserver::Config;

use crate::synapse::EngineArg;
use crate::synapse_diff::{block_on, updraft, updraft_bin, workspace_root, JOBS};

#[derive(Args, Clone)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub engine: EngineArg,
    #[arg(long, default_value = "small")]
    pub shape: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs per job; the median is reported.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// An earlier JSON report to compare with (ratios printed).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Re-seed even if a cached world exists.
    #[arg(long)]
    pub reseed: bool,
}

/// Figures for one update (stage) of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StageFigures {
    pub update: String,
    pub items: u64,
    pub batches: u64,
    pub seconds: f64,
    pub items_per_s: f64,
    pub batch_ms_p50: f64,
    pub batch_ms_p99: f64,
}

/// Figures for one job (median run).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobFigures {
    pub job: String,
    pub engine: String,
    pub shape: String,
    pub seconds: f64,
    /// Rooms (stats) or state events + users (directory) per second.
    pub items_per_s: f64,
    pub rooms: u64,
    pub rooms_per_s: f64,
    pub users: u64,
    pub users_per_s: f64,
    pub rows_written: BTreeMap<String, i64>,
    pub stages: Vec<StageFigures>,
    pub pause_latency_ms: f64,
    pub peak_rss_mib: f64,
    pub runs: usize,
}

/// Records each batch's exact duration (the controller hook wraps every batch).
#[derive(Default)]
struct Timing {
    started: Mutex<BTreeMap<String, Instant>>,
    batches: Mutex<BTreeMap<String, Vec<f64>>>,
}

#[async_trait]
impl Controller for Timing {
    async fn on_update(&self, update_name: &str, _db: &str, _oneshot: bool) -> f64 {
        self.started
            .lock()
            .expect("lock")
            .insert(update_name.to_owned(), Instant::now());
        // Synapse's default target duration; no sleep (like --run-background-updates).
        100.0
    }

    async fn after_update(&self, update_name: &str, _db: &str) {
        if let Some(t) = self.started.lock().expect("lock").remove(update_name) {
            self.batches
                .lock()
                .expect("lock")
                .entry(update_name.to_owned())
                .or_default()
                .push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A cached seeded world and how to copy it.
struct Cached {
    engine: &'static str,
    /// SQLite file or Postgres template database name.
    source: String,
    server_name: String,
    appservice: PathBuf,
}

fn cache(
    bin: &std::path::Path,
    engine: &'static str,
    shape: &str,
    seed: u64,
    reseed: bool,
) -> anyhow::Result<Cached> {
    let dir = workspace_root().join("target").join("bench").join("cache");
    std::fs::create_dir_all(&dir)?;
    let appservice = dir.join(format!("{shape}-{seed}-appservice.yaml"));
    let (source, url) = match engine {
        "sqlite" => {
            let path = dir.join(format!("{shape}-{seed}.db"));
            (
                path.display().to_string(),
                format!("sqlite://{}", path.display()),
            )
        }
        _ => {
            let admin = crate::synapse::postgres_admin_url();
            let name = format!("updraft_bench_{shape}_{seed}");
            (
                name.clone(),
                format!(
                    "{}/{name}",
                    admin.rsplit_once('/').map(|(a, _)| a).unwrap_or(&admin)
                ),
            )
        }
    };
    let marker = dir.join(format!("{shape}-{seed}-{engine}.seeded"));
    if reseed || !marker.exists() || !appservice.exists() {
        let _ = std::fs::remove_file(&marker);
        match engine {
            "sqlite" => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{source}{suffix}"));
                }
            }
            _ => {
                let admin = crate::synapse::postgres_admin_url();
                psql(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {source} WITH (FORCE)"),
                )?;
                psql(&admin, &format!("CREATE DATABASE {source} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"))?;
            }
        }
        eprintln!("bench: seeding {shape} (seed {seed}) on {engine} ...");
        let out = updraft(
            bin,
            &[
                "seed",
                "--database-url",
                &url,
                "--shape",
                shape,
                "--seed",
                &seed.to_string(),
                "--appservice-file",
                appservice.to_str().context("path")?,
                "--quiet",
            ],
        )?;
        eprintln!("  {}", out.trim());
        std::fs::write(&marker, out)?;
    }
    Ok(Cached {
        engine,
        source,
        server_name: "example.org".into(),
        appservice,
    })
}

fn psql(admin: &str, sql: &str) -> anyhow::Result<()> {
    crate::synapse::run(std::process::Command::new("psql").args([
        admin,
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]))
}

/// A fresh copy of the cached world.
fn copy(c: &Cached, tag: &str) -> anyhow::Result<DbTarget> {
    match c.engine {
        "sqlite" => {
            let to = PathBuf::from(format!("{}.{tag}.run.db", c.source));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
            }
            std::fs::copy(&c.source, &to)?;
            Ok(DbTarget::Sqlite(to))
        }
        _ => {
            let admin = crate::synapse::postgres_admin_url();
            let name = format!("{}_{tag}", c.source);
            psql(
                &admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )?;
            psql(
                &admin,
                &format!("CREATE DATABASE {name} TEMPLATE {}", c.source),
            )?;
            Ok(DbTarget::Postgres(format!(
                "{}/{name}",
                admin.rsplit_once('/').map(|(a, _)| a).unwrap_or(&admin)
            )))
        }
    }
}

fn config_for(c: &Cached) -> Config {
    Config {
        server_name: c.server_name.clone(),
        app_service_config_files: vec![c.appservice.clone()],
        background_updates: BackgroundUpdatesConfig {
            sleep_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn rows_for(job: &str) -> Vec<UpdateRow> {
    updraft_homeserver::jobs::job_rows(job).expect("known job")
}

async fn open(target: &DbTarget) -> anyhow::Result<Db> {
    Ok(updraft_homeserver::open(target, Default::default())
        .await?
        .db)
}

/// One run of one job on a fresh copy: stage figures and rows written.
async fn run_once(c: &Cached, job: &str, tag: &str) -> anyhow::Result<JobFigures> {
    let target = copy(c, tag)?;
    let db = open(&target).await?;
    let config = config_for(c);
    let timing = Arc::new(Timing::default());
    let mut builder = Updater::builder(config.background_updates.clone());
    builder.register_controller(timing.clone());
    let updater = builder
        .database(
            "master",
            db.clone(),
            updraft_homeserver::jobs::registry(&config),
        )
        .build()
        .await?;
    let started = Instant::now();
    updater.start_job_rows("master", &rows_for(job)).await?;
    updater.start();
    wait_idle(&updater).await?;
    let seconds = started.elapsed().as_secs_f64();
    let metrics = updater.metrics();
    updater.shutdown().await;
    let mut stages = Vec::new();
    let batches = timing.batches.lock().expect("lock").clone();
    for (update, m) in metrics
        .get("master")
        .map(|d| d.updates.clone())
        .unwrap_or_default()
    {
        let mut durations = batches.get(&update).cloned().unwrap_or_default();
        durations.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        let stage_secs = durations.iter().sum::<f64>() / 1000.0;
        stages.push(StageFigures {
            update,
            items: m.items_total,
            batches: m.batches_total,
            seconds: stage_secs,
            items_per_s: if stage_secs > 0.0 {
                m.items_total as f64 / stage_secs
            } else {
                0.0
            },
            batch_ms_p50: percentile(&durations, 0.5),
            batch_ms_p99: percentile(&durations, 0.99),
        });
    }
    let tables: &[&str] = if job == "populate_stats_process_rooms" {
        &["room_stats_current", "room_stats_state"]
    } else {
        &[
            "user_directory",
            "user_directory_search",
            "users_in_public_rooms",
            "users_who_share_private_rooms",
        ]
    };
    let mut rows_written = BTreeMap::new();
    for t in tables {
        rows_written.insert(t.to_string(), db.count_rows(t).await?);
    }
    let rooms = db.count_rows("rooms").await? as u64;
    let users = db.count_rows("users").await? as u64;
    let items: u64 = stages.iter().map(|s| s.items).sum();
    db.close().await;
    drop_copy(&target)?;
    Ok(JobFigures {
        job: job.to_owned(),
        engine: c.engine.to_owned(),
        seconds,
        items_per_s: items as f64 / seconds,
        rooms,
        rooms_per_s: rooms as f64 / seconds,
        users,
        users_per_s: users as f64 / seconds,
        rows_written,
        stages,
        ..Default::default()
    })
}

/// Time from disabling the runner to the end of the batch in flight.
async fn pause_latency(c: &Cached, job: &str) -> anyhow::Result<f64> {
    let target = copy(c, "pause")?;
    let db = open(&target).await?;
    let config = config_for(c);
    let timing = Arc::new(Timing::default());
    let mut builder = Updater::builder(config.background_updates.clone());
    builder.register_controller(timing.clone());
    let updater = builder
        .database(
            "master",
            db.clone(),
            updraft_homeserver::jobs::registry(&config),
        )
        .build()
        .await?;
    updater.start_job_rows("master", &rows_for(job)).await?;
    updater.start();
    // Pause once a couple of batches have run.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: usize = timing
            .batches
            .lock()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum();
        if n >= 2 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t0 = Instant::now();
    updater.set_enabled(false).await?;
    let runner = updater.runner("master").context("runner")?;
    while runner.details().await?.in_batch {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let latency = t0.elapsed().as_secs_f64() * 1000.0;
    updater.shutdown().await;
    db.close().await;
    drop_copy(&target)?;
    Ok(latency)
}

fn drop_copy(target: &DbTarget) -> anyhow::Result<()> {
    match target {
        DbTarget::Sqlite(p) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
        }
        DbTarget::Postgres(url) => {
            let name = url.rsplit('/').next().unwrap_or_default();
            psql(
                &crate::synapse::postgres_admin_url(),
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )?;
        }
    }
    Ok(())
}

async fn wait_idle(updater: &Updater) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let details = updater.details().await?;
        let busy = details.iter().any(|d| !d.queue.is_empty() || d.in_batch);
        if let Some(e) = details.iter().find_map(|d| d.last_error.clone()) {
            if details.iter().any(|d| d.state_code == -1) {
                bail!("runner aborted: {} ({})", e.message, e.update);
            }
        }
        if !busy {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("job did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Figures come from an optimised build: a debug xtask re-runs itself in release.
    if cfg!(debug_assertions) {
        let status = crate::cargo()
            .args(["run", "--release", "-p", "xtask", "--"])
            .args(std::env::args().skip(1))
            .status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let bin = updraft_bin(true)?;
    let mut report: Vec<JobFigures> = Vec::new();
    for engine in args.engine.engines() {
        let cached = cache(&bin, engine, &args.shape, args.seed, args.reseed)?;
        for job in JOBS {
            let mut runs = Vec::new();
            for i in 0..args.runs.max(1) {
                let f = block_on(run_once(&cached, job, &format!("r{i}")))?;
                eprintln!("bench: {job} on {engine} run {}: {:.2} s", i + 1, f.seconds);
                runs.push(f);
            }
            runs.sort_by(|a, b| a.seconds.partial_cmp(&b.seconds).expect("finite"));
            let mut median = runs[runs.len() / 2].clone();
            median.shape = args.shape.clone();
            median.runs = runs.len();
            median.pause_latency_ms = block_on(pause_latency(&cached, job))?;
            median.peak_rss_mib = peak_rss_mib();
            report.push(median);
        }
    }
    let dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let stamp = format!("{}-{}", args.shape, args.seed);
    let json_path = dir.join(format!("bench-{stamp}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    let md = markdown(&report);
    std::fs::write(dir.join(format!("bench-{stamp}.md")), &md)?;
    println!("{md}");
    println!("wrote {}", json_path.display());
    if let Some(prev) = args.compare {
        let old: Vec<JobFigures> = serde_json::from_str(&std::fs::read_to_string(&prev)?)?;
        println!("\ncompared with {}:", prev.display());
        for f in &report {
            if let Some(o) = old.iter().find(|o| o.job == f.job && o.engine == f.engine) {
                println!(
                    "  {} on {}: {:.2}x items/s ({:.0} -> {:.0})",
                    f.job,
                    f.engine,
                    f.items_per_s / o.items_per_s,
                    o.items_per_s,
                    f.items_per_s
                );
            }
        }
    }
    Ok(())
}

fn markdown(report: &[JobFigures]) -> String {
    let mut s = String::from(
        "| job | engine | shape | seconds | items/s | rooms/s | users/s | pause latency ms | peak RSS MiB |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for f in report {
        s.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} |\n",
            f.job,
            f.engine,
            f.shape,
            f.seconds,
            f.items_per_s,
            f.rooms_per_s,
            f.users_per_s,
            f.pause_latency_ms,
            f.peak_rss_mib
        ));
    }
    s.push_str("\n| job | engine | stage | items | batches | seconds | items/s | batch p50 ms | batch p99 ms |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for f in report {
        for st in &f.stages {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.3} | {:.0} | {:.1} | {:.1} |\n",
                f.job,
                f.engine,
                st.update,
                st.items,
                st.batches,
                st.seconds,
                st.items_per_s,
                st.batch_ms_p50,
                st.batch_ms_p99
            ));
        }
        let rows: Vec<String> = f
            .rows_written
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        s.push_str(&format!(
            "| {} | {} | rows written | {} | | | | | |\n",
            f.job,
            f.engine,
            rows.join(", ")
        ));
    }
    s
}
