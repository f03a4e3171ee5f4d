//! Application-service registrations, as far as the user directory cares:
//! their senders and exclusive user namespaces are left out of it.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::config::Config;

/// Why the registrations could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AppServiceError {
    #[error("cannot read app service registration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("app service registration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct Registration {
    sender_localpart: String,
    #[serde(default)]
    namespaces: Namespaces,
}

#[derive(Deserialize, Default)]
struct Namespaces {
    #[serde(default)]
    users: Vec<Namespace>,
}

#[derive(Deserialize)]
struct Namespace {
    exclusive: bool,
    regex: String,
}

/// The users excluded from the directory because an app service owns them.
#[derive(Clone, Debug, Default)]
pub struct AppServices {
    senders: Vec<String>,
    /// All exclusive user regexes, anchored at the start (Python `re.match`).
    exclusive: Option<Regex>,
}

impl AppServices {
    /// Loads the registration files named by the config.
    pub fn from_config(config: &Config) -> Result<AppServices, AppServiceError> {
        let mut senders = Vec::new();
        let mut patterns = Vec::new();
        for path in &config.app_service_config_files {
            let reg = read(path)?;
            senders.push(format!("@{}:{}", reg.sender_localpart, config.server_name));
            for ns in reg.namespaces.users.into_iter().filter(|n| n.exclusive) {
                Regex::new(&ns.regex).map_err(|e| AppServiceError::Invalid {
                    path: path.clone(),
                    message: format!("bad user namespace regex {:?}: {e}", ns.regex),
                })?;
                patterns.push(format!("(?:{})", ns.regex));
            }
        }
        let exclusive = if patterns.is_empty() {
            None
        } else {
            Some(Regex::new(&format!("^(?:{})", patterns.join("|"))).expect("checked one by one"))
        };
        Ok(AppServices { senders, exclusive })
    }

    /// No registrations at all: nothing to exclude.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty() && self.exclusive.is_none()
    }

    /// Is this user an app service's sender or in an exclusive namespace?
    pub fn is_excluded(&self, user_id: &str) -> bool {
        self.senders.iter().any(|s| s == user_id)
            || self.exclusive.as_ref().is_some_and(|r| r.is_match(user_id))
    }
}

fn read(path: &Path) -> Result<Registration, AppServiceError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppServiceError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|e| AppServiceError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_and_exclusive_namespace_are_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.yaml");
        std::fs::write(
            &path,
            "id: bridge\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bridgebot\n\
             namespaces:\n  users:\n    - exclusive: true\n      regex: '@irc_.*:hs\\.test'\n    \
             - exclusive: false\n      regex: '@shared_.*'\n",
        )
        .unwrap();
        let config = Config {
            server_name: "hs.test".into(),
            app_service_config_files: vec![path],
            ..Config::default()
        };
        let a = AppServices::from_config(&config).unwrap();
        assert!(a.is_excluded("@bridgebot:hs.test"));
        assert!(a.is_excluded("@irc_bob:hs.test"));
        assert!(!a.is_excluded("@shared_x:hs.test"));
        assert!(!a.is_excluded("@alice:hs.test"));
        // Anchored at the start only, as Python's re.match.
        assert!(!a.is_excluded("x@irc_bob:hs.test"));
    }

    #[test]
    fn bad_registration_is_a_clear_error() {
        let config = Config {
            app_service_config_files: vec!["/nonexistent/reg.yaml".into()],
            ..Config::default()
        };
        let err = AppServices::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/reg.yaml"), "{err}");
    }
}
