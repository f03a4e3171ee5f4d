//! `cargo xtask demo`: the main job end to end on real seeded data. Seeds a
//! world, starts `updraft serve`, starts both jobs through the admin API,
//! shows live progress, pauses once and shows nothing moves, resumes, waits,
//! then checks the results (verify, searches, room details) and prints a
//! summary. Exits non-zero if anything is wrong.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use updraft_api::client::Client;
use updraft_engine::Db;

use crate::synapse_diff::{block_on, updraft, updraft_bin, workspace_root};

#[derive(Args, Clone)]
pub struct DemoArgs {
    /// `sqlite` (the embedded default) or `postgres`.
    #[arg(long, default_value = "sqlite")]
    pub engine: String,
    /// World shape to seed (fixtures/worlds/NAME.toml).
    #[arg(long, default_value = "small")]
    pub shape: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sleep between batches (ms). Synapse's default is 1000; the demo uses a
    /// shorter one so it is watchable and quick.
    #[arg(long, default_value_t = 100)]
    pub sleep_ms: u64,
    /// Build updraft in release mode.
    #[arg(long)]
    pub release: bool,
}

/// A running `updraft serve`, stopped (SIGTERM, then waited for) on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(bin: &Path, config: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting updraft serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("updraft listening on ") {
                        break rest.trim().to_owned();
                    }
                }
                _ => bail!("updraft serve exited before listening"),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, base })
    }

    /// SIGTERM and wait: the current batch finishes and commits.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let status = self.child.wait()?;
            ensure!(status.success(), "updraft serve exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// A world seeded into a fresh database for the harness, with its config.
pub struct SeededWorld {
    pub url: String,
    pub config: PathBuf,
    pub admin_token: String,
}

/// Seeds `shape` into a fresh database under target/NAME and writes a config for it.
pub fn seed_world(
    bin: &Path,
    name: &str,
    engine: &str,
    shape: &str,
    seed: u64,
    background_updates: &str,
) -> anyhow::Result<SeededWorld> {
    let dir = workspace_root().join("target").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (url, database) = match engine {
        "sqlite" => {
            let path = dir.join("homeserver.db");
            (
                format!("sqlite://{}", path.display()),
                format!(
                    "  name: sqlite3\n  args:\n    database: {}\n",
                    path.display()
                ),
            )
        }
        "postgres" => {
            let admin = crate::synapse::postgres_admin_url();
            let db = format!("updraft_{}", name.replace('-', "_"));
            crate::synapse::run(Command::new("psql").args([
                &admin,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            ]))?;
            crate::synapse::run(Command::new("psql").args([&admin, "-q", "-c", &format!(
                "CREATE DATABASE {db} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            )]))?;
            let url = format!(
                "{}/{db}",
                admin.rsplit_once('/').map(|(a, _)| a).unwrap_or(&admin)
            );
            (url.clone(), String::new())
        }
        other => bail!("unknown engine {other:?} (sqlite or postgres)"),
    };
    let appservice = dir.join("appservice.yaml");
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
            "--json",
            "--quiet",
        ],
    )?;
    let report: serde_json::Value = serde_json::from_str(&out).context("parsing seed report")?;
    let admin_token = report["admin_access_token"]
        .as_str()
        .context("no admin token")?
        .to_owned();
    let server_name = report["server_name"]
        .as_str()
        .unwrap_or("example.org")
        .to_owned();
    let database = if database.is_empty() {
        // The URL form is accepted in the config too? No: give psycopg2 args.
        let rest = url.split("://").nth(1).unwrap_or_default();
        let (user, hostdb) = rest.split_once('@').unwrap_or(("postgres", rest));
        let (hostport, dbname) = hostdb.split_once('/').unwrap_or((hostdb, "postgres"));
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
        format!(
            "  name: psycopg2\n  args:\n    user: {user}\n    database: {dbname}\n    host: {host}\n    port: {port}\n"
        )
    } else {
        database
    };
    let config = dir.join("homeserver.yaml");
    std::fs::write(
        &config,
        format!(
            "server_name: {server_name}\ndatabase:\n{database}background_updates:\n{background_updates}app_service_config_files:\n  - {}\n",
            appservice.display()
        ),
    )?;
    Ok(SeededWorld {
        url,
        config,
        admin_token,
    })
}

/// Per-update figures gathered while polling.
#[derive(Default, Clone)]
struct Seen {
    items: u64,
    duration_ms: f64,
    first_seen: Option<Instant>,
    last_seen: Option<Instant>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = updraft_bin(args.release)?;
    println!(
        "updraft demo: seeding the `{}` world (seed {}) on {} ...",
        args.shape, args.seed, args.engine
    );
    let world = seed_world(
        &bin,
        "demo",
        &args.engine,
        &args.shape,
        args.seed,
        &format!(
            "  sleep_enabled: true\n  sleep_duration_ms: {}\n",
            args.sleep_ms
        ),
    )?;
    println!(
        "  database: {}\n  config:   {}",
        world.url,
        world.config.display()
    );
    let server = Server::start(&bin, &world.config)?;
    println!(
        "  server:   {} (admin token {})",
        server.base, world.admin_token
    );
    let client = Client::new(&server.base)?.with_token(world.admin_token.clone());

    block_on(async {
        for job in ["regenerate_directory", "populate_stats_process_rooms"] {
            client
                .start_job(job)
                .await
                .with_context(|| format!("start_job {job}"))?;
            println!("  POST start_job {job}: 200 {{}}");
        }
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        let bars = MultiProgress::new();
        let style =
            ProgressStyle::with_template("  {prefix:<40} [{bar:30}] {pos:>7}/{len:7} {msg}")
                .expect("template")
                .progress_chars("=> ");
        let mut bar_of: BTreeMap<String, ProgressBar> = BTreeMap::new();
        let mut paused_once = false;
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut last_line = Instant::now();
        loop {
            let runners = client.queue().await?;
            let status = client.status().await?;
            for (_db, cur) in &status.current_updates {
                let s = seen.entry(cur.name.clone()).or_default();
                s.items = cur.total_item_count;
                s.duration_ms = cur.total_duration_ms;
                s.first_seen.get_or_insert_with(Instant::now);
                s.last_seen = Some(Instant::now());
            }
            for r in &runners {
                for q in &r.queue {
                    let bar = bar_of.entry(q.update_name.clone()).or_insert_with(|| {
                        let b = bars.add(ProgressBar::new(1));
                        b.set_style(style.clone());
                        b.set_prefix(q.update_name.clone());
                        b.set_message("queued");
                        b
                    });
                    if r.current.as_ref().is_some_and(|c| c.name == q.update_name) {
                        if let Some(est) = &r.estimate {
                            let done = est["done"].as_u64().unwrap_or(0);
                            let total = est["total"].as_u64().unwrap_or(done.max(1));
                            bar.set_length(total.max(1));
                            bar.set_position(done.min(total));
                            // Without a terminal the bars are hidden: a line a second instead.
                            if !tty && last_line.elapsed() >= Duration::from_secs(1) {
                                last_line = Instant::now();
                                println!("  {:<40} {done:>7}/{total} (estimate)", q.update_name);
                            }
                        }
                        bar.set_message(if r.enabled { "running" } else { "paused" });
                    }
                }
            }
            // Finished updates: their rows are gone.
            let queued: Vec<String> = runners
                .iter()
                .flat_map(|r| r.queue.iter().map(|q| q.update_name.clone()))
                .collect();
            for (name, bar) in &bar_of {
                if !queued.contains(name) && !bar.is_finished() {
                    bar.set_length(bar.length().unwrap_or(1).max(1));
                    bar.set_position(bar.length().unwrap_or(1));
                    bar.finish_with_message("done");
                }
            }
            // Pause once, mid-way through the first update that has done some work.
            if !paused_once && seen.values().any(|s| s.items > 0) && !queued.is_empty() {
                paused_once = true;
                client.set_enabled(false).await?;
                // A batch in progress finishes; then nothing may move.
                tokio::time::sleep(Duration::from_millis(300 + args.sleep_ms)).await;
                let before = client.status().await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                let after = client.status().await?;
                let queue_after = client.queue().await?;
                bars.suspend(|| {
                    println!(
                        "  paused (POST enabled=false): status enabled={}",
                        after.enabled
                    );
                });
                ensure!(!after.enabled, "status still says enabled after pausing");
                ensure!(
                    before.current_updates == after.current_updates,
                    "work moved while paused: {:?} -> {:?}",
                    before.current_updates,
                    after.current_updates
                );
                ensure!(
                    queue_after.iter().all(|r| !r.enabled),
                    "a runner is still enabled while paused"
                );
                bars.suspend(|| println!("  nothing moved for 2 s while paused; resuming"));
                client.set_enabled(true).await?;
            }
            if queued.is_empty() && status.current_updates.is_empty() {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("the jobs did not finish within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(
            paused_once,
            "the jobs finished before the demo could pause them"
        );
        let metrics = client.metrics().await?;
        println!();
        println!(
            "  {:<40} {:>9} {:>8} {:>12} {:>10}",
            "update", "items", "batches", "duration ms", "items/s"
        );
        // In the order the updates ran.
        let mut order: Vec<(&String, &Seen)> = seen.iter().collect();
        order.sort_by_key(|(_, s)| s.first_seen);
        for (name, s) in order {
            let batches = metric_value(&metrics, "updraft_background_update_batches_total", name)
                .unwrap_or(0.0);
            let items = metric_value(&metrics, "updraft_background_update_items_total", name)
                .unwrap_or(s.items as f64);
            let rate = if s.duration_ms >= 1.0 {
                format!("{:.0}", items / (s.duration_ms / 1000.0))
            } else {
                "-".to_owned()
            };
            println!(
                "  {name:<40} {items:>9} {batches:>8} {:>12.1} {rate:>10}",
                s.duration_ms
            );
        }
        println!(
            "  (items are counted as Synapse counts them: the last batch, which finds nothing left, counts 1)"
        );
        anyhow::Ok(())
    })?;

    // Results: verify, searches and room details.
    let verify = Command::new(&bin)
        .args(["verify", "--config"])
        .arg(&world.config)
        .output()?;
    println!(
        "\n  updraft verify: {}",
        String::from_utf8_lossy(&verify.stdout)
            .lines()
            .last()
            .unwrap_or("")
    );
    ensure!(
        verify.status.success(),
        "verify failed ({}):\n{}{}",
        verify.status,
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    check_results(&client, &world)?;
    server.stop()?;
    println!(
        "\nupdraft demo: OK in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads one labelled sample from Prometheus text (`name{...update="X"...} value`).
fn metric_value(text: &str, metric: &str, update: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(&format!("update_name=\"{update}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .next()
}

/// Searches and room details return what the database says they should.
fn check_results(client: &Client, world: &SeededWorld) -> anyhow::Result<()> {
    block_on(async {
        let db = Db::connect(&world.url).await?;
        // The three biggest rooms: their details must match current state.
        let rooms: Vec<(String, i64)> = fetch_pairs(
            &db,
            "SELECT room_id, COUNT(*) FROM current_state_events WHERE type = 'm.room.member' AND membership = 'join' \
             GROUP BY room_id ORDER BY COUNT(*) DESC, room_id LIMIT 3",
        )
        .await?;
        for (room_id, joined) in &rooms {
            let room = client.room(room_id).await?;
            ensure!(
                room.joined_members == Some(*joined),
                "{room_id}: joined_members {:?} != {joined}",
                room.joined_members
            );
            let name = room
                .name
                .as_deref()
                .map_or("no name".to_owned(), |n| format!("\"{n}\""));
            println!("  GET rooms/{room_id}: joined_members {joined} ({name}) ok");
        }
        // Users in public rooms, searched by their display name, by the admin.
        let users: Vec<(String, String)> = fetch_pairs(
            &db,
            "SELECT d.user_id, d.display_name FROM user_directory d \
             JOIN users_in_public_rooms p ON p.user_id = d.user_id \
             WHERE d.display_name IS NOT NULL AND length(d.display_name) BETWEEN 3 AND 30 \
             GROUP BY d.user_id, d.display_name ORDER BY d.user_id LIMIT 5",
        )
        .await?;
        ensure!(!users.is_empty(), "no searchable users in public rooms");
        for (user_id, name) in &users {
            let word = name.split_whitespace().next().unwrap_or(name);
            let res = client.search_users(word, Some(50)).await?;
            ensure!(
                res.results.iter().any(|r| &r.user_id == user_id),
                "searching {word:?} did not find {user_id}"
            );
            println!(
                "  search {word:?}: finds {user_id} ({} results) ok",
                res.results.len()
            );
        }
        db.close().await;
        anyhow::Ok(())
    })
}

async fn fetch_pairs<A, B>(db: &Db, sql: &str) -> anyhow::Result<Vec<(A, B)>>
where
    for<'r> (A, B):
        sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    A: Send + Unpin,
    B: Send + Unpin,
{
    Ok(match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
    })
}
