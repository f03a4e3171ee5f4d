//! Real Synapse 1.163.2 as an oracle: a cached virtualenv, Synapse-made
//! databases on either engine, and Synapse's own background updater driven
//! offline (xtask/synapse/driver.py).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

pub const SYNAPSE_VERSION: &str = "1.163.2";
const DRIVER: &str = include_str!("../synapse/driver.py");

/// Python with matrix-synapse installed.
pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    /// `UPDRAFT_SYNAPSE_VENV`, else a cache directory kept between runs
    /// (`$XDG_CACHE_HOME` or `~/.cache`, `updraft/synapse-VERSION`), created
    /// and filled from PyPI when missing.
    pub fn ensure() -> anyhow::Result<Venv> {
        let dir = match std::env::var_os("UPDRAFT_SYNAPSE_VENV") {
            Some(d) => PathBuf::from(d),
            None => {
                let cache = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .context("neither XDG_CACHE_HOME nor HOME is set")?;
                cache
                    .join("updraft")
                    .join(format!("synapse-{SYNAPSE_VERSION}"))
            }
        };
        let venv = Venv { dir };
        if venv.installed_version().as_deref() == Some(SYNAPSE_VERSION) {
            return Ok(venv);
        }
        eprintln!(
            "synapse: installing matrix-synapse {SYNAPSE_VERSION} into {}",
            venv.dir.display()
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv.dir))?;
        run(Command::new(venv.bin("pip")).args([
            "install",
            "--quiet",
            &format!("matrix-synapse[postgres]=={SYNAPSE_VERSION}"),
        ]))?;
        match venv.installed_version() {
            Some(v) if v == SYNAPSE_VERSION => Ok(venv),
            other => bail!("matrix-synapse {SYNAPSE_VERSION} did not install (found {other:?})"),
        }
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    fn installed_version(&self) -> Option<String> {
        let out = Command::new(self.bin("python"))
            .args(["-c", "import synapse; print(synapse.__version__)"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// The engines a comparison can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    Sqlite,
    Postgres,
    Both,
}

impl EngineArg {
    pub fn engines(self) -> Vec<&'static str> {
        match self {
            EngineArg::Sqlite => vec!["sqlite"],
            EngineArg::Postgres => vec!["postgres"],
            EngineArg::Both => vec!["sqlite", "postgres"],
        }
    }
}

/// A database made by Synapse's own tool, with its config.
pub struct SynapseDb {
    pub engine: &'static str,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// What `updraft --database-url` takes.
    pub url: String,
    pg_name: Option<String>,
    server_name: String,
    app_service_files: Vec<PathBuf>,
    /// Fixed batches of this size on both sides (hand-over tests): the
    /// first batch and every later one, whatever the pace.
    fixed_batch_size: Option<u64>,
}

/// The PostgreSQL server used for Synapse databases.
pub fn postgres_admin_url() -> String {
    std::env::var("UPDRAFT_TEST_POSTGRES")
        .unwrap_or_else(|_| crate::postgres::DEFAULT_URL.to_owned())
}

fn pg_base(admin_url: &str) -> (String, String, u16) {
    // postgres://USER@HOST:PORT/DB -> (user, host, port)
    let rest = admin_url
        .split("://")
        .nth(1)
        .unwrap_or("postgres@127.0.0.1:5432/postgres");
    let (auth, hostpart) = rest.split_once('@').unwrap_or(("postgres", rest));
    let user = auth.split(':').next().unwrap_or("postgres").to_owned();
    let hostport = hostpart.split('/').next().unwrap_or("127.0.0.1:5432");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    (user, host.to_owned(), port.parse().unwrap_or(5432))
}

fn psql(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    run(Command::new("psql").args([admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]))
}

impl SynapseDb {
    /// Creates a quiet Synapse database in `dir`: schema by
    /// `update_synapse_database`, then every pending Synapse update run once.
    pub fn create(
        venv: &Venv,
        engine: &'static str,
        dir: &Path,
        name: &str,
        server_name: &str,
    ) -> anyhow::Result<SynapseDb> {
        std::fs::create_dir_all(dir)?;
        let (url, pg_name) = match engine {
            "sqlite" => {
                let path = dir.join(format!("{name}.db"));
                let _ = std::fs::remove_file(&path);
                (format!("sqlite://{}", path.display()), None)
            }
            _ => {
                let admin = postgres_admin_url();
                let db = format!("updraft_synapse_{name}");
                psql(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                )?;
                psql(
                    &admin,
                    &format!("CREATE DATABASE {db} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"),
                )?;
                let (user, host, port) = pg_base(&admin);
                (format!("postgres://{user}@{host}:{port}/{db}"), Some(db))
            }
        };
        let key = dir.join("signing.key");
        if !key.exists() {
            run(Command::new(venv.bin("generate_signing_key"))
                .arg("-o")
                .arg(&key))?;
        }
        let db = SynapseDb {
            engine,
            dir: dir.to_owned(),
            config: dir.join(format!("{name}.yaml")),
            url,
            pg_name,
            server_name: server_name.to_owned(),
            app_service_files: Vec::new(),
            fixed_batch_size: None,
        };
        db.write_config()?;
        run(Command::new(venv.bin("update_synapse_database"))
            .arg("--database-config")
            .arg(&db.config))?;
        db.run_driver(venv, &[], &[], None)
            .context("running Synapse's own pending updates")?;
        Ok(db)
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let database = match (&self.pg_name, self.engine) {
            (None, _) => format!(
                "  name: sqlite3\n  args:\n    database: {}\n",
                self.url.trim_start_matches("sqlite://")
            ),
            (Some(db), _) => {
                let (user, host, port) = pg_base(&postgres_admin_url());
                format!(
                    "  name: psycopg2\n  args:\n    user: {user}\n    database: {db}\n    host: {host}\n    port: {port}\n"
                )
            }
        };
        let app_services = if self.app_service_files.is_empty() {
            String::new()
        } else {
            let files: Vec<String> = self
                .app_service_files
                .iter()
                .map(|f| format!("  - {}", f.display()))
                .collect();
            format!("app_service_config_files:\n{}\n", files.join("\n"))
        };
        // A target duration of 0 ms keeps every batch after the first at
        // min_batch_size (Synapse and updraft alike).
        let batches = match self.fixed_batch_size {
            Some(n) => format!(
                "  default_batch_size: {n}\n  min_batch_size: {n}\n  background_update_duration_ms: 0\n"
            ),
            None => String::new(),
        };
        let text = format!(
            "server_name: {server}\nreport_stats: false\nsigning_key_path: {key}\nmedia_store_path: {media}\n\
             database:\n{database}background_updates:\n  sleep_enabled: false\n{batches}{app_services}",
            server = self.server_name,
            key = self.dir.join("signing.key").display(),
            media = self.dir.join("media").display(),
        );
        std::fs::write(&self.config, text)?;
        Ok(())
    }

    /// Registers appservice files (written by `updraft seed`) with Synapse.
    pub fn set_app_services(&mut self, files: Vec<PathBuf>) -> anyhow::Result<()> {
        self.app_service_files = files;
        self.write_config()
    }

    /// Every batch of `n` items, on Synapse's side and updraft's (both read this config).
    pub fn set_fixed_batch_size(&mut self, n: u64) -> anyhow::Result<()> {
        self.fixed_batch_size = Some(n);
        self.write_config()
    }

    /// An identical copy (SQLite: file copy; PostgreSQL: `CREATE DATABASE ... TEMPLATE`).
    pub fn copy(&self, name: &str) -> anyhow::Result<SynapseDb> {
        let (url, pg_name) = match &self.pg_name {
            None => {
                let from = PathBuf::from(self.url.trim_start_matches("sqlite://"));
                let to = self.dir.join(format!("{name}.db"));
                // The source is closed (no -wal left behind by a clean shutdown); copy all parts.
                for suffix in ["", "-wal", "-shm"] {
                    let f = PathBuf::from(format!("{}{suffix}", from.display()));
                    let t = PathBuf::from(format!("{}{suffix}", to.display()));
                    let _ = std::fs::remove_file(&t);
                    if f.exists() {
                        std::fs::copy(&f, &t)?;
                    }
                }
                (format!("sqlite://{}", to.display()), None)
            }
            Some(src) => {
                let admin = postgres_admin_url();
                let db = format!("updraft_synapse_{name}");
                psql(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                )?;
                psql(&admin, &format!("CREATE DATABASE {db} TEMPLATE {src}"))?;
                let (user, host, port) = pg_base(&admin);
                (format!("postgres://{user}@{host}:{port}/{db}"), Some(db))
            }
        };
        let copy = SynapseDb {
            engine: self.engine,
            dir: self.dir.clone(),
            config: self.dir.join(format!("{name}.yaml")),
            url,
            pg_name,
            server_name: self.server_name.clone(),
            app_service_files: self.app_service_files.clone(),
            fixed_batch_size: None,
        };
        copy.write_config()?;
        Ok(copy)
    }

    /// Runs Synapse's updater: queues `jobs` as its admin API would, then runs
    /// every pending update (or at most `max_batches` batches). Returns the
    /// driver's JSON (`batches`, `seconds`, `done`). Synapse's log is checked
    /// for events it could not load: that is a generator bug and an error.
    pub fn run_driver(
        &self,
        venv: &Venv,
        jobs: &[&str],
        finish: &[&str],
        max_batches: Option<u32>,
    ) -> anyhow::Result<Value> {
        let driver = self.dir.join("driver.py");
        std::fs::write(&driver, DRIVER)?;
        let mut cmd = Command::new(venv.bin("python"));
        cmd.arg(&driver).arg("--config").arg(&self.config);
        for job in jobs {
            cmd.args(["--queue", job]);
        }
        for job in finish {
            cmd.args(["--finish", job]);
        }
        if let Some(n) = max_batches {
            cmd.args(["--max-batches", &n.to_string()]);
        }
        let out = cmd.output().context("running Synapse's driver")?;
        let log = String::from_utf8_lossy(&out.stderr);
        let log_path = self.dir.join(format!(
            "{}.synapse.log",
            self.config
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("synapse")
        ));
        std::fs::write(&log_path, log.as_bytes())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or("{}");
        let result: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        if !out.status.success() || result.get("error").is_some() {
            bail!(
                "Synapse's updater failed ({}): see {}",
                result,
                log_path.display()
            );
        }
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("Failed to load event")
                    || l.contains("hash mismatch")
                    || l.contains("Could not find room version")
                    || l.contains("Unable to load")
                    || (l.contains(" - WARNING - ") && l.contains("event"))
            })
            .take(5)
            .collect();
        if !bad.is_empty() {
            bail!(
                "Synapse could not load some events (a generator bug); see {}:\n{}",
                log_path.display(),
                bad.join("\n")
            );
        }
        Ok(result)
    }

    pub fn drop_database(&self) {
        if let Some(db) = &self.pg_name {
            let _ = psql(
                &postgres_admin_url(),
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
    }
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
