//! `updraft run`: runs every pending background update updraft has a
//! handler for, to completion, without sleeping between batches (like
//! Synapse's `update_synapse_database --run-background-updates`).
//!
//! Updates updraft has no handler for (a real Synapse database queues many
//! of Synapse's own) are left in the queue untouched and listed; whatever
//! depends on them waits, and is listed too. `--only NAME...` narrows the
//! run further. Ctrl-C lets the current batch finish and commit, then
//! exits; a second Ctrl-C exits at once (the open batch rolls back).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use updraft_engine::{queue, RunnerState, Updater, MAIN_DATABASE};
use updraft_homeserver::jobs;

use crate::common::CommonArgs;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run only these updates (each must be queued and known to updraft).
    #[arg(long, num_args = 1.., value_name = "NAME")]
    only: Vec<String>,
    /// Plain log lines instead of progress bars, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Stop after N batches (each committed), leaving the rest queued with its
    /// progress: for hand-over tests (another updater finishes the job).
    #[arg(long, value_name = "N")]
    max_batches: Option<u64>,
}

/// The controller of `--max-batches`: Synapse's default pacing without sleep;
/// the batch after the last allowed one never starts (the runner is shut
/// down while it waits here).
struct BatchLimit {
    config: updraft_engine::BackgroundUpdatesConfig,
    left: std::sync::atomic::AtomicU64,
    reached: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl updraft_engine::Controller for BatchLimit {
    async fn on_update(&self, _update: &str, _database: &str, _oneshot: bool) -> f64 {
        use std::sync::atomic::Ordering;
        let allowed = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !allowed {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        self.config.background_update_duration_ms as f64
    }
}

/// Exit code when some selected updates could not finish (blocked, aborted).
const EXIT_INCOMPLETE: u8 = 1;
/// Exit code after Ctrl-C (the conventional 128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

pub async fn run(common: &CommonArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (mut config, opened) = common.open().await?;
    config.background_updates.sleep_enabled = false;
    let registry = jobs::registry(&config);
    let pending = queue::list(&opened.db).await?;
    let (known, unknown): (Vec<_>, Vec<_>) = pending
        .iter()
        .map(|r| r.update_name.clone())
        .partition(|n| registry.get(n).is_some());

    let selected: BTreeSet<String> = if args.only.is_empty() {
        known.iter().cloned().collect()
    } else {
        let not_queued: Vec<_> = args
            .only
            .iter()
            .filter(|n| !pending.iter().any(|r| &r.update_name == *n))
            .cloned()
            .collect();
        let no_handler: Vec<_> = args
            .only
            .iter()
            .filter(|n| registry.get(n).is_none())
            .cloned()
            .collect();
        if !not_queued.is_empty() {
            bail!("not in the queue: {}", not_queued.join(", "));
        }
        if !no_handler.is_empty() {
            bail!("updraft has no handler for: {}", no_handler.join(", "));
        }
        args.only.iter().cloned().collect()
    };

    println!(
        "{} pending background update(s) in {}",
        pending.len(),
        opened.kind
    );
    if !unknown.is_empty() {
        println!(
            "{} update(s) have no handler in updraft and stay in the queue: {}",
            unknown.len(),
            unknown.join(", ")
        );
    }
    if selected.is_empty() {
        println!("nothing to run");
        return Ok(ExitCode::SUCCESS);
    }
    // In the order they will run (dependencies first), not by name.
    let in_run_order: Vec<String> = queue::run_order(&pending)
        .into_iter()
        .filter(|n| selected.contains(n))
        .collect();
    println!("running: {}", in_run_order.join(", "));

    let limit = args.max_batches.map(|n| {
        std::sync::Arc::new(BatchLimit {
            config: config.background_updates.clone(),
            left: n.into(),
            reached: tokio::sync::Notify::new(),
        })
    });
    let mut builder = Updater::builder(config.background_updates.clone())
        .only(selected.iter().cloned())
        .database(MAIN_DATABASE, opened.db.clone(), registry);
    if let Some(limit) = &limit {
        builder.register_controller(limit.clone());
    }
    let updater = builder.build().await?;
    let runner = updater
        .runner(MAIN_DATABASE)
        .expect("the runner just added")
        .clone();
    updater.start();

    let mut display = Display::new(!args.no_progress && std::io::stderr().is_terminal());
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stopped = runner.wait_stopped();
    tokio::pin!(stopped);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let limit_reached = async {
        match &limit {
            Some(l) => l.reached.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit_reached);
    let mut limited = false;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = &mut limit_reached, if !limited => {
                limited = true;
                let u = updater.clone();
                tokio::spawn(async move { u.shutdown().await });
            }
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                display.line("interrupted: finishing the current batch (Ctrl-C again to abort)");
                tokio::spawn(async {
                    let _ = tokio::signal::ctrl_c().await;
                    eprintln!("aborted: the open batch rolls back");
                    std::process::exit(EXIT_INTERRUPTED.into());
                });
                let u = updater.clone();
                tokio::spawn(async move { u.shutdown().await });
            }
            _ = tick.tick() => display.refresh(&runner).await,
        }
    }
    display.refresh(&runner).await;
    display.finish();

    let left: BTreeSet<String> = queue::list(&opened.db)
        .await?
        .into_iter()
        .map(|r| r.update_name)
        .collect();
    let status = runner.status();
    let metrics = runner.metrics();
    for name in in_run_order.iter().filter(|n| !left.contains(*n)) {
        let m = metrics.updates.get(name).cloned().unwrap_or_default();
        println!(
            "finished {name}: {} items in {} batches, {:.0} ms",
            m.items_total, m.batches_total, m.batch_duration.sum_ms
        );
    }
    let unfinished: Vec<_> = selected.intersection(&left).cloned().collect();
    opened.db.close().await;
    if unfinished.is_empty() {
        println!("all {} selected update(s) finished", selected.len());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} selected update(s) not finished: {}",
        unfinished.len(),
        unfinished.join(", ")
    );
    if limited {
        let n = args.max_batches.unwrap_or_default();
        println!(
            "stopped after {n} batch(es) (--max-batches); the rest stays queued with its progress"
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("runner {}: {}", status.state.name(), status.reason);
    if let Some(e) = &status.last_error {
        println!("last error ({}): {}", e.update, e.message);
    }
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        debug_assert!(status.state != RunnerState::RunningUpdate);
        ExitCode::from(EXIT_INCOMPLETE)
    })
}

/// Progress: a bar per update on a terminal, log lines otherwise.
struct Display {
    bars: Option<MultiProgress>,
    current: Option<(String, Option<ProgressBar>)>,
    last_log: Instant,
    /// The item count last logged, and since when it has not moved.
    logged_items: (u64, Instant),
    last_estimate: Instant,
    last_reason: String,
}

impl Display {
    fn new(terminal: bool) -> Display {
        Display {
            bars: terminal.then(MultiProgress::new),
            current: None,
            last_log: Instant::now(),
            logged_items: (0, Instant::now()),
            last_estimate: Instant::now() - Duration::from_secs(10),
            last_reason: String::new(),
        }
    }

    fn line(&self, msg: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    async fn refresh(&mut self, runner: &updraft_engine::Runner) {
        let status = runner.status();
        if status.reason != self.last_reason {
            self.last_reason = status.reason.clone();
            self.line(&format!(
                "runner {}: {}",
                status.state.name(),
                status.reason
            ));
        }
        let current = status.current.clone();
        // The update changed: close the previous one's bar.
        if self.current.as_ref().map(|(n, _)| n) != current.as_ref().map(|c| &c.name) {
            self.close_current();
            if let Some(c) = &current {
                let bar = self.bars.as_ref().map(|m| {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:.bold} {wide_bar} {pos}/{len} items {per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(c.name.clone());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bar
                });
                self.line(&format!("starting {}", c.name));
                self.current = Some((c.name.clone(), bar));
            }
        }
        let Some(c) = current else { return };
        // Estimates cost a query: refresh them once a second.
        if self.last_estimate.elapsed() >= Duration::from_secs(1) {
            self.last_estimate = Instant::now();
            if let (Ok(d), Some((_, Some(bar)))) = (runner.details().await, &self.current) {
                if let Some(total) = d.estimate.and_then(|e| e.total) {
                    bar.set_length(total);
                }
            }
        }
        match &self.current {
            Some((_, Some(bar))) => bar.set_position(c.total_item_count),
            _ => {
                // A line every 5 s while items move; during one long batch,
                // a line every 30 s saying so.
                let (logged, since) = self.logged_items;
                let moved = c.total_item_count != logged;
                let every = if moved { 5 } else { 30 };
                if self.last_log.elapsed() >= Duration::from_secs(every) {
                    self.last_log = Instant::now();
                    if moved {
                        self.logged_items = (c.total_item_count, Instant::now());
                        eprintln!(
                            "{}: {} items in {:.0} ms",
                            c.name, c.total_item_count, c.total_duration_ms
                        );
                    } else {
                        eprintln!(
                            "{}: {} items; no batch has finished for {} s",
                            c.name,
                            c.total_item_count,
                            since.elapsed().as_secs()
                        );
                    }
                }
            }
        }
    }

    fn close_current(&mut self) {
        if let Some((name, bar)) = self.current.take() {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            self.line(&format!("done with {name}"));
        }
    }

    fn finish(&mut self) {
        if let Some((name, bar)) = self.current.take() {
            if let Some(bar) = bar {
                bar.abandon();
            }
            self.line(&format!("stopped during {name}"));
        }
    }
}
