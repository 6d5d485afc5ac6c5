//! The state file: when each image was last seen in use, per engine, kept
//! between runs so that a use the engine no longer shows (a `docker run --rm`
//! job that ended, an event the engine has forgotten) still counts. One
//! small JSON file per engine in a private directory, written atomically,
//! never followed through a link, bounded, and rebuilt (with one warning)
//! when it is not what we wrote.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inventory::Inventory;
use crate::model::{EngineInfo, UseSource};

const VERSION: u32 = 1;
/// The most images remembered: the most recently used are kept.
pub(crate) const MAX_IMAGES: usize = 20_000;
/// A state file larger than this is not ours.
const MAX_BYTES: u64 = 8 * 1024 * 1024;

/// What a run remembers for the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    version: u32,
    /// The engine's ID and data root: a file is only read back for them.
    engine: String,
    /// Unix seconds of the last run that read the engine's events: the next
    /// asks for events since then.
    pub(crate) last_run: Option<i64>,
    /// Image ID → Unix seconds it was last seen in use.
    pub(crate) images: BTreeMap<String, i64>,
}

impl State {
    pub(crate) fn new(engine: &EngineInfo) -> State {
        State {
            version: VERSION,
            engine: identity(engine),
            last_run: None,
            images: BTreeMap::new(),
        }
    }

    /// The remembered times, for [`super::last_use::annotate`].
    pub(crate) fn remembered(&self) -> HashMap<String, i64> {
        self.images
            .iter()
            .map(|(id, at)| (id.clone(), *at))
            .collect()
    }

    /// Takes in what this run saw: every image present whose last use is
    /// known from a use (not only its tag or creation time); images no
    /// longer present are forgotten; at most [`MAX_IMAGES`], the most
    /// recently used.
    pub(crate) fn remember(&mut self, inventory: &Inventory, now: i64) {
        let mut images: Vec<(String, i64)> = inventory
            .images
            .iter()
            .filter_map(|image| {
                let used = image.last_use?;
                matches!(
                    used.source,
                    UseSource::Running | UseSource::Container | UseSource::Event | UseSource::State
                )
                .then(|| (image.id.clone(), used.at))
            })
            .collect();
        images.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        images.truncate(MAX_IMAGES);
        self.images = images.into_iter().collect();
        self.last_run = Some(now);
    }

    /// Records a use seen as it happens (`watch`).
    pub(crate) fn saw(&mut self, image_id: &str, at: i64) {
        let known = self.images.entry(image_id.to_string()).or_insert(at);
        *known = (*known).max(at);
        if self.images.len() > MAX_IMAGES {
            let oldest = self
                .images
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.images.remove(&oldest);
            }
        }
    }
}

/// Where the state is kept by default: `DOCKER_RECLAIM_STATE_DIR` when set
/// (empty: nowhere), else `/var/lib/docker-reclaim` for root and
/// `$XDG_STATE_HOME/docker-reclaim` (`~/.local/state/docker-reclaim`) for others.
pub(crate) fn default_dir(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    is_root: bool,
) -> Option<PathBuf> {
    if let Some(dir) = env("DOCKER_RECLAIM_STATE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if is_root {
        return Some(PathBuf::from("/var/lib/docker-reclaim"));
    }
    let base = env("XDG_STATE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|home| Path::new(home).is_absolute())
                .map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(base.join("docker-reclaim"))
}

/// The engine's identity as the file records it.
fn identity(engine: &EngineInfo) -> String {
    format!("{} {}", engine.id, engine.data_root)
}

/// The state file of one engine, named by a hash of its identity.
pub(crate) fn file_for(dir: &Path, engine: &EngineInfo) -> PathBuf {
    let digest = Sha256::digest(identity(engine).as_bytes());
    dir.join(format!("state-{}.json", hex::encode(&digest[..8])))
}

/// Reads the state kept for `engine` in `dir`. No file: a fresh state. A
/// file that is not what we wrote (a link, not a regular file of ours, too
/// large, not parseable, another engine's): a fresh state and the warning
/// to give, once; the next save replaces it.
pub(crate) fn load(dir: &Path, engine: &EngineInfo) -> (State, Option<String>) {
    let path = file_for(dir, engine);
    let fresh = State::new(engine);
    let warn = |why: &str| {
        Some(format!(
            "docker-reclaim: warning: the state file {} {why}: starting it afresh (last uses from earlier runs are forgotten)",
            path.display()
        ))
    };
    let fd = match rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return (fresh, None),
        Err(rustix::io::Errno::LOOP) => return (fresh, warn("is a symbolic link")),
        Err(err) => return (fresh, warn(&format!("cannot be read ({err})"))),
    };
    let file = std::fs::File::from(fd);
    let Ok(meta) = file.metadata() else {
        return (fresh, warn("cannot be read"));
    };
    if !meta.is_file()
        || meta.uid() != rustix::process::geteuid().as_raw()
        || meta.permissions().mode() & 0o022 != 0
    {
        return (fresh, warn("is not a regular file of this user"));
    }
    if meta.len() > MAX_BYTES {
        return (fresh, warn("is too large"));
    }
    let mut body = Vec::new();
    if file.take(MAX_BYTES).read_to_end(&mut body).is_err() {
        return (fresh, warn("cannot be read"));
    }
    match serde_json::from_slice::<State>(&body) {
        Ok(state) if state.version == VERSION && state.engine == fresh.engine => {
            let mut state = state;
            if state.images.len() > MAX_IMAGES {
                return (fresh, warn("holds too many images"));
            }
            state
                .images
                .retain(|id, _| id.starts_with("sha256:") || id.len() <= 128);
            (state, None)
        }
        Ok(_) => (fresh, warn("belongs to another engine or version")),
        Err(err) => (fresh, warn(&format!("is not valid ({err})"))),
    }
}

/// Writes `state` for `engine` into `dir` (created private when missing),
/// atomically.
pub(crate) fn save(dir: &Path, engine: &EngineInfo, state: &State) -> std::io::Result<()> {
    let body = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    crate::measure::cache::write_private(dir, &file_for(dir, engine), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::engine;

    #[test]
    fn a_state_is_read_back_for_its_engine_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::new(&engine());
        state.last_run = Some(42);
        state.saw("sha256:aa", 10);
        state.saw("sha256:aa", 5);
        save(dir.path(), &engine(), &state).unwrap();
        let (read, warning) = load(dir.path(), &engine());
        assert_eq!((read.clone(), warning), (state, None));
        assert_eq!(read.images["sha256:aa"], 10);
        let other = EngineInfo {
            id: "OTHER".into(),
            ..engine()
        };
        assert_eq!(load(dir.path(), &other), (State::new(&other), None));
    }

    #[test]
    fn a_corrupt_or_linked_state_file_warns_once_and_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_for(dir.path(), &engine());
        std::fs::write(&path, b"{\"version\":1,\"engine\":").unwrap();
        let (state, warning) = load(dir.path(), &engine());
        assert_eq!(state, State::new(&engine()));
        assert!(warning.unwrap().contains("is not valid"));
        // Saving replaces the broken file.
        save(dir.path(), &engine(), &state).unwrap();
        assert_eq!(load(dir.path(), &engine()).1, None);
        // A link is never followed, and the save replaces the link itself.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"precious").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let (_, warning) = load(dir.path(), &engine());
        assert!(warning.unwrap().contains("symbolic link"));
        save(dir.path(), &engine(), &state).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    fn the_state_directory_follows_docker_and_xdg_habits() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            default_dir(env(&[]), true),
            Some(PathBuf::from("/var/lib/docker-reclaim"))
        );
        assert_eq!(
            default_dir(env(&[("HOME", "/h")]), false),
            Some(PathBuf::from("/h/.local/state/docker-reclaim"))
        );
        assert_eq!(
            default_dir(env(&[("DOCKER_RECLAIM_STATE_DIR", "")]), true),
            None
        );
    }
}
