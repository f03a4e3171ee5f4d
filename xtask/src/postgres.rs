//! Finding a PostgreSQL server for tests, or starting a throwaway one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::Connection;

pub const TEST_ENV: &str = "UPDRAFT_TEST_POSTGRES";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Can we connect and create databases at `url`?
pub fn reachable(url: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let connect = sqlx::PgConnection::connect(url);
        let mut conn = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let can: bool = sqlx::query_scalar(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        if can {
            Ok(())
        } else {
            Err("the user may not CREATE DATABASE".to_owned())
        }
    })
}

/// A PostgreSQL cluster started in a temporary directory, stopped on drop.
pub struct Throwaway {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    as_postgres_user: bool,
}

fn find_bindir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Throwaway {
    pub fn start() -> anyhow::Result<Throwaway> {
        let bin = find_bindir().context(
            "no PostgreSQL server binaries (initdb, pg_ctl) found: install PostgreSQL \
             (apt-get install postgresql) or set UPDRAFT_TEST_POSTGRES",
        )?;
        let dir = tempfile::Builder::new().prefix("updraft-pg-").tempdir()?;
        let data = dir.path().join("data");
        let port = free_port()?;
        // initdb refuses to run as root: run the cluster as the `postgres` user then.
        let as_postgres_user = is_root();
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let t = Throwaway {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            data,
            _dir: dir,
            as_postgres_user,
        };
        t.pg(
            "initdb",
            &[
                "-D",
                path_str(&t.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {}",
            path_str(t._dir.path())
        );
        t.pg(
            "pg_ctl",
            &[
                "-D",
                path_str(&t.data),
                "-o",
                &opts,
                "-w",
                "-l",
                &format!("{}/log", path_str(t._dir.path())),
                "start",
            ],
        )?;
        Ok(t)
    }

    fn pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        run(&mut cmd)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.pg(
            "pg_ctl",
            &["-D", path_str(&self.data), "-m", "immediate", "stop"],
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
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
