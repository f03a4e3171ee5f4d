//! homeserver.yaml-style configuration: the keys Synapse uses, Synapse's
//! defaults, unknown keys ignored (as Synapse does), wrong types refused with
//! the key's path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use updraft_engine::{BackgroundUpdatesConfig, DbTarget};

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The server name: users `@x:SERVER_NAME` are local.
    pub server_name: String,
    pub database: Option<DatabaseConfig>,
    pub background_updates: BackgroundUpdatesConfig,
    pub user_directory: UserDirectoryConfig,
    /// Address `updraft serve` listens on.
    pub listen: SocketAddr,
    /// Application-service registration files (their senders and exclusive
    /// user namespaces are excluded from the user directory).
    pub app_service_config_files: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: "example.org".to_owned(),
            database: None,
            background_updates: BackgroundUpdatesConfig::default(),
            user_directory: UserDirectoryConfig::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            app_service_config_files: Vec::new(),
        }
    }
}

/// Synapse's `user_directory:` section (the keys updraft honours).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserDirectoryConfig {
    pub enabled: bool,
    pub search_all_users: bool,
    pub prefer_local_users: bool,
    pub show_locked_users: bool,
}

impl Default for UserDirectoryConfig {
    fn default() -> Self {
        UserDirectoryConfig {
            enabled: true,
            search_all_users: false,
            prefer_local_users: false,
            show_locked_users: false,
        }
    }
}

/// Synapse's `database:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// `sqlite3` or `psycopg2` (Synapse's names).
    pub name: String,
    #[serde(default)]
    pub args: DatabaseArgs,
    /// Accept a PostgreSQL database whose collation/ctype is not C.
    #[serde(default)]
    pub allow_unsafe_locale: bool,
}

/// Connection arguments; `database` is the SQLite path or the Postgres database name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseArgs {
    pub database: Option<String>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Other libpq keywords (sslmode, ...), passed through as URL parameters.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

/// Errors reading or interpreting a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
    #[error("config: database.name must be `sqlite3` or `psycopg2`, not {0:?}")]
    UnknownDatabase(String),
    #[error("config: database.args.database is required for sqlite3")]
    MissingSqlitePath,
    #[error("no database configured: give --database-url or a config with a `database:` section")]
    NoDatabase,
}

impl Config {
    /// Parses YAML text; `origin` names the source in error messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // An empty file is an empty mapping, as in Synapse.
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                path: origin.to_owned(),
                key: if key == "." {
                    "(top level)".to_owned()
                } else {
                    key
                },
                message: e.into_inner().to_string(),
            }
        })
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text, &path.display().to_string())
    }

    /// The database this config points at.
    pub fn database_target(&self) -> Result<DbTarget, ConfigError> {
        self.database
            .as_ref()
            .ok_or(ConfigError::NoDatabase)?
            .target()
    }
}

impl DatabaseConfig {
    pub fn target(&self) -> Result<DbTarget, ConfigError> {
        match self.name.as_str() {
            "sqlite3" | "sqlite" => {
                let path = self
                    .args
                    .database
                    .as_ref()
                    .ok_or(ConfigError::MissingSqlitePath)?;
                Ok(DbTarget::Sqlite(PathBuf::from(path)))
            }
            "psycopg2" | "postgres" | "postgresql" => {
                let a = &self.args;
                let mut url = url::Url::parse("postgres://localhost").expect("static URL");
                let _ = url.set_host(Some(a.host.as_deref().unwrap_or("localhost")));
                if let Some(user) = &a.user {
                    let _ = url.set_username(user);
                }
                if let Some(pw) = &a.password {
                    let _ = url.set_password(Some(pw));
                }
                if let Some(port) = a.port {
                    let _ = url.set_port(Some(port));
                }
                let db = a.database.as_ref().or(a.dbname.as_ref());
                if let Some(db) = db {
                    url.set_path(&format!("/{db}"));
                }
                for (k, v) in &a.extra {
                    // Synapse's pool knobs are not libpq keywords.
                    if k.starts_with("cp_") {
                        continue;
                    }
                    let v = match v {
                        serde_yaml::Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    url.query_pairs_mut().append_pair(k, &v);
                }
                Ok(DbTarget::Postgres(url.to_string()))
            }
            other => Err(ConfigError::UnknownDatabase(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_synapse_defaults() {
        let c = Config::from_yaml("", "t").unwrap();
        assert_eq!(c.background_updates, BackgroundUpdatesConfig::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8008");
        assert!(!c.user_directory.search_all_users);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let c = Config::from_yaml(
            "server_name: hs.test\nreport_stats: false\nbackground_updates:\n  sleep_enabled: false\n  whatever: 1\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.server_name, "hs.test");
        assert!(!c.background_updates.sleep_enabled);
        assert_eq!(c.background_updates.sleep_duration_ms, 1000);
    }

    #[test]
    fn wrong_type_names_the_key_path() {
        let err = Config::from_yaml("background_updates:\n  min_batch_size: lots\n", "hs.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("background_updates.min_batch_size"), "{err}");
        assert!(err.contains("hs.yaml"), "{err}");
        let err = Config::from_yaml("user_directory:\n  search_all_users: [1]\n", "hs.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user_directory.search_all_users"), "{err}");
    }

    #[test]
    fn sqlite_database_section() {
        let c = Config::from_yaml(
            "database:\n  name: sqlite3\n  args:\n    database: /data/homeserver.db\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            c.database_target().unwrap(),
            DbTarget::Sqlite("/data/homeserver.db".into())
        );
    }

    #[test]
    fn psycopg2_database_section_becomes_a_url() {
        let c = Config::from_yaml(
            "database:\n  name: psycopg2\n  args:\n    user: synapse\n    password: s3cret\n    database: synapse\n    host: 127.0.0.1\n    port: 5433\n    cp_min: 5\n    sslmode: disable\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            c.database_target().unwrap(),
            DbTarget::Postgres(
                "postgres://synapse:s3cret@127.0.0.1:5433/synapse?sslmode=disable".into()
            )
        );
    }

    #[test]
    fn unknown_database_driver_is_refused() {
        let c = Config::from_yaml("database:\n  name: mysql\n", "t").unwrap();
        assert!(
            matches!(c.database_target(), Err(ConfigError::UnknownDatabase(n)) if n == "mysql")
        );
    }
}
