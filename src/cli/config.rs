//! Defaults from a config file, so that a cron line can be `docker-reclaim --yes`.
//! Read from `--config FILE`, else `/etc/docker-reclaim/config.toml` and then the
//! user's `$XDG_CONFIG_HOME/docker-reclaim/config.toml` (`~/.config/…`), the
//! latter's keys overriding the former's. Flags override both, except the
//! protections: `keep` and `keep_labels` add up across the system file, the
//! user file and the flags, so that an operator's rules in /etc hold whatever a
//! person adds.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::UsageError;
use crate::files;

/// Every key is optional; an unknown key is an error, so a typo never passes
/// silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) host: Option<String>,
    pub(crate) all: Option<bool>,
    /// `anonymous` or `all`.
    pub(crate) volumes: Option<String>,
    pub(crate) networks: Option<bool>,
    /// `unshared` or `all`.
    pub(crate) build_cache: Option<String>,
    pub(crate) filters: Option<Vec<String>>,
    pub(crate) stopped_for: Option<String>,
    pub(crate) keep: Option<Vec<String>>,
    pub(crate) keep_labels: Option<Vec<String>>,
    pub(crate) keep_last: Option<usize>,
    pub(crate) jobs: Option<usize>,
    pub(crate) log_file: Option<PathBuf>,
}

impl Config {
    /// `other`'s keys over this one's.
    fn overlay(self, other: Config) -> Config {
        Config {
            host: other.host.or(self.host),
            all: other.all.or(self.all),
            volumes: other.volumes.or(self.volumes),
            networks: other.networks.or(self.networks),
            build_cache: other.build_cache.or(self.build_cache),
            filters: other.filters.or(self.filters),
            stopped_for: other.stopped_for.or(self.stopped_for),
            // Protections add up: the user's file cannot drop what /etc keeps.
            keep: add_up(self.keep, other.keep),
            keep_labels: add_up(self.keep_labels, other.keep_labels),
            keep_last: other.keep_last.or(self.keep_last),
            jobs: other.jobs.or(self.jobs),
            log_file: other.log_file.or(self.log_file),
        }
    }

    /// Parses one file's text; `path` is for the error message.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Config, UsageError> {
        toml::from_str(text).map_err(|err| {
            let why = err.message().replace('\n', " ");
            UsageError(format!("invalid config file {}: {why}", path.display()))
        })
    }
}

/// Both lists, `first`'s entries first; `None` only when both are.
fn add_up(first: Option<Vec<String>>, second: Option<Vec<String>>) -> Option<Vec<String>> {
    match (first, second) {
        (Some(mut first), Some(second)) => {
            first.extend(second);
            Some(first)
        }
        (first, second) => first.or(second),
    }
}

pub(crate) const SYSTEM_PATH: &str = "/etc/docker-reclaim/config.toml";

/// The user's config file path.
pub(crate) fn user_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("docker-reclaim").join("config.toml"))
}

/// Loads `explicit` (which must exist), or the system and user files (each
/// optional).
pub(crate) fn load(explicit: Option<&Path>) -> Result<Config, UsageError> {
    let read = |path: &Path, required: bool| -> Result<Config, UsageError> {
        if !required && !path.exists() {
            return Ok(Config::default());
        }
        let body = files::read_limited(path, "config file")?;
        let text = String::from_utf8(body).map_err(|_| {
            UsageError(format!(
                "cannot read config file {}: it is not UTF-8 text",
                path.display()
            ))
        })?;
        Config::parse(&text, path)
    };
    if let Some(path) = explicit {
        return read(path, true);
    }
    let system = read(Path::new(SYSTEM_PATH), false)?;
    let user = match user_path() {
        Some(path) => read(&path, false)?,
        None => Config::default(),
    };
    Ok(system.overlay(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_rejects_unknown_ones() {
        let config = Config::parse(
            r#"
host = "unix:///run/docker.sock"
all = true
volumes = "anonymous"
filters = ["label!=keep"]
stopped_for = "24h"
keep = ["db-*"]
keep_labels = ["pin"]
keep_last = 3
jobs = 2
log_file = "/var/log/docker-reclaim.jsonl"
"#,
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.keep_last, Some(3));
        assert_eq!(config.keep.as_deref(), Some(&["db-*".to_string()][..]));
        let err = Config::parse("keep_lats = 3\n", Path::new("/etc/x.toml"))
            .unwrap_err()
            .0;
        assert!(
            err.contains("/etc/x.toml") && err.contains("keep_lats"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn the_user_file_overrides_the_system_file_key_by_key() {
        let system = Config {
            jobs: Some(8),
            keep: Some(vec!["a".into()]),
            ..Config::default()
        };
        let user = Config {
            keep: Some(vec!["b".into()]),
            ..Config::default()
        };
        let merged = system.overlay(user);
        assert_eq!(merged.jobs, Some(8));
        // Keep rules add up (safety round 2, finding 5).
        assert_eq!(merged.keep, Some(vec!["a".to_string(), "b".to_string()]));
    }
}
