//! Sizes of what does not change, kept between runs: committed image layers,
//! containers' init layers and layer records, and the writable layers of
//! containers that are not mounted. The engine writes each of the first three
//! once, under a fresh random directory name, and never again until it removes
//! it; a writable layer is written only through its overlay mount, and each
//! mount and unmount changes the layer directory itself (see
//! [`super::refs::Unchanging`]). So a size measured once stays right while the
//! directory stays the same one. "The same one" is checked, not assumed: an
//! entry is used only when the directory has the same inode, change time and
//! modification time as when it was walked, on the same data root (its path,
//! device and inode); anything else is walked again. The file is a hint:
//! unreadable, foreign or stale, it is ignored, and the walk is done in full.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Bytes;

/// Bumped when the meaning of an entry changes: older files are then ignored.
const VERSION: u32 = 1;

/// A cache file larger than this is not ours to parse (a few hundred bytes per
/// layer: a million layers fit).
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// What identifies one directory as walked: it is the same directory, with the
/// same direct entries, when all of these are unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    pub(crate) ino: u64,
    /// Change time, in nanoseconds since the epoch (an `i64` holds them until
    /// 2262: 40-byte entries instead of 64 with `i128`).
    pub(crate) ctime: i64,
    /// Modification time, in nanoseconds since the epoch.
    pub(crate) mtime: i64,
}

/// A directory's size as walked, and its stamp at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) stamp: Stamp,
    pub(crate) allocated: u64,
    pub(crate) apparent: u64,
}

impl Entry {
    pub(crate) fn new(stamp: Stamp, bytes: Bytes) -> Entry {
        Entry {
            stamp,
            allocated: bytes.allocated,
            apparent: bytes.apparent,
        }
    }

    pub(crate) fn bytes(&self) -> Bytes {
        Bytes {
            allocated: self.allocated,
            apparent: self.apparent,
        }
    }
}

/// No directory's apparent size is above this (1 EiB): sparse files can make
/// it larger than the filesystem, but not this large on any real host.
const MAX_APPARENT: u64 = 1 << 60;

/// The data root a cache belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootId {
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl RootId {
    /// The identity of the directory at `root` now.
    pub(crate) fn of(root: &Path) -> Option<RootId> {
        let meta = std::fs::symlink_metadata(root).ok()?;
        meta.is_dir().then(|| RootId {
            path: root.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// Owner key (as the walk files it: `overlay2/<cache-id>`, …) → its entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sizes {
    version: u32,
    root: Option<RootId>,
    /// Keys shared with the walk's owners (`Arc`): 22,000 of them at 11,000
    /// containers.
    pub(crate) entries: HashMap<Arc<str>, Entry>,
}

impl Sizes {
    /// An empty cache for `root`.
    pub(crate) fn new(root: RootId) -> Sizes {
        Sizes {
            version: VERSION,
            root: Some(root),
            entries: HashMap::new(),
        }
    }

    /// The size kept for `key`, if the directory is still the one measured.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str, stamp: &Stamp) -> Option<Bytes> {
        self.entries
            .get(key)
            .filter(|entry| entry.stamp == *stamp)
            .map(Entry::bytes)
    }

    /// The size kept for `key`, if the directory is still the one measured.
    /// The entry stays for the next run, now under `key` itself (shared with
    /// the walk's owner): its own copy of the name goes at once.
    pub(crate) fn reuse(&mut self, key: &Arc<str>, stamp: &Stamp) -> Option<Bytes> {
        if self.entries.get(&**key)?.stamp != *stamp {
            return None;
        }
        let (_, entry) = self.entries.remove_entry(&**key)?;
        self.entries.insert(Arc::clone(key), entry);
        Some(entry.bytes())
    }

    /// Drops every entry but those of `reused` (sorted). Returns whether any
    /// was dropped.
    pub(crate) fn keep_only(&mut self, reused: &[Arc<str>]) -> bool {
        let before = self.entries.len();
        self.entries.retain(|key, _| {
            reused
                .binary_search_by(|kept| kept.as_ref().cmp(key))
                .is_ok()
        });
        self.entries.len() != before
    }

    /// Reads the cache kept for `root` in `dir`. Anything wrong with it (no
    /// file, not a regular file owned by us, another data root, another
    /// version, not parseable) gives an empty cache.
    pub(crate) fn load(dir: &Path, root: &RootId) -> Sizes {
        let empty = Sizes::new(root.clone());
        let Some(file) = open_own(&file_for(dir, root)) else {
            return empty;
        };
        // Parsed as it is read: the body of a cache for 11,000 containers is
        // 6.7 MB, which held whole was more than the map made of it.
        let body = std::io::BufReader::with_capacity(64 * 1024, file.take(MAX_FILE));
        match serde_json::from_reader::<_, Sizes>(body) {
            Ok(mut sizes) if sizes.version == VERSION && sizes.root.as_ref() == Some(root) => {
                let total = super::fs::filesystem_space(&root.path).map(|(total, _)| total);
                sizes.keep_sane(total);
                sizes
            }
            _ => empty,
        }
    }

    /// Drops every entry that no directory on this filesystem can have: more
    /// allocated bytes than the filesystem holds (`filesystem_bytes`, when
    /// known), or more apparent bytes than [`MAX_APPARENT`]. A size cache is
    /// ours, but a figure labelled "measured" must never come from a file that
    /// says anything (safety round 2, finding 10).
    fn keep_sane(&mut self, filesystem_bytes: Option<u64>) {
        let allocated_limit = filesystem_bytes.unwrap_or(MAX_APPARENT).min(MAX_APPARENT);
        self.entries.retain(|_, entry| {
            entry.allocated <= allocated_limit && entry.apparent <= MAX_APPARENT
        });
    }

    /// Writes the cache into `dir` (created private when missing), replacing
    /// only our own earlier file, atomically. Failing to write is not an
    /// error: the next run walks in full.
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let target = file_for(dir, root);
        write_private_with(dir, &target, |out| {
            serde_json::to_writer(out, self).map_err(std::io::Error::other)
        })?;
        forget_stale(dir, &target, STALE_AFTER);
        Ok(())
    }
}

/// A cache file not written for this long belongs to a data root that is gone
/// or no longer planned on: it is removed when another is saved.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// At most this many cache files stay in the directory (one per data root
/// planned on): the least recently written go first.
const MAX_FILES: usize = 16;

/// Removes our cache files in `dir`, other than `keep`, not written for `age`,
/// and beyond the [`MAX_FILES`] most recently written.
fn forget_stale(dir: &Path, keep: &Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut ours: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| {
                name.strip_prefix("sizes-")
                    .and_then(|rest| rest.strip_suffix(".json"))
                    .is_some()
            })
        })
        .filter_map(|entry| {
            let meta = entry.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((meta.modified().ok()?, entry.path()))
        })
        .filter(|(_, path)| path != keep)
        .collect();
    // Newest first; `keep` is the newest of all and counts as one.
    ours.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (index, (modified, path)) in ours.into_iter().enumerate() {
        let old = modified.elapsed().is_ok_and(|elapsed| elapsed >= age);
        if old || index + 1 >= MAX_FILES {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes `body` to `target` in `dir` (created private when missing): into a
/// new temp file opened without following links, synced, then renamed over
/// `target` (a rename replaces a link itself, never what it points to).
pub(crate) fn write_private(dir: &Path, target: &Path, body: &[u8]) -> std::io::Result<()> {
    write_private_with(dir, target, |out| out.write_all(body))
}

/// [`write_private`], the body written by `write` through a buffer: a large
/// body is never held whole in memory (the size cache at 11,000 containers is
/// 4.5 MB of JSON).
pub(crate) fn write_private_with(
    dir: &Path,
    target: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    ensure_private_dir(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        target
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("file"),
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
        .open(&temp)?;
    let mut out = std::io::BufWriter::new(file);
    let written = write(&mut out)
        .and_then(|()| out.flush())
        .and_then(|()| out.get_ref().sync_data());
    drop(out);
    if let Err(err) = written.and_then(|()| std::fs::rename(&temp, target)) {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    Ok(())
}

/// The cache file of one data root: named by a hash of its identity, so that
/// data roots never share one.
fn file_for(dir: &Path, root: &RootId) -> PathBuf {
    let mut hash = Sha256::new();
    hash.update(root.path.as_os_str().as_encoded_bytes());
    hash.update(root.dev.to_le_bytes());
    hash.update(root.ino.to_le_bytes());
    let digest = hash.finalize();
    let name = hex::encode(&digest[..8]);
    dir.join(format!("sizes-{name}.json"))
}

/// `path` opened for reading when it is a regular file owned by this user and
/// written only by them (not through a symlink); `None` otherwise.
fn open_own(path: &Path) -> Option<std::fs::File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file()
        || meta.uid() != rustix::process::geteuid().as_raw()
        || meta.permissions().mode() & 0o022 != 0
        || meta.len() > MAX_FILE
    {
        return None;
    }
    Some(file)
}

/// Creates `dir` (mode 0700) when missing; refuses one that is a symlink, not
/// ours, or writable by others.
fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    // recursive(true) accepts a directory that is there already.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir()
        || meta.uid() != rustix::process::geteuid().as_raw()
        || meta.permissions().mode() & 0o022 != 0
    {
        return Err(std::io::Error::other(format!(
            "{} is not a private directory of this user",
            dir.display()
        )));
    }
    Ok(())
}

/// Where sizes are kept by default: `DOCKER_RECLAIM_CACHE_DIR` when set (empty:
/// nowhere), else `/var/cache/docker-reclaim` for root and
/// `$XDG_CACHE_HOME/docker-reclaim` (`~/.cache/docker-reclaim`) for others.
pub(crate) fn default_dir(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    is_root: bool,
) -> Option<PathBuf> {
    if let Some(dir) = env("DOCKER_RECLAIM_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if is_root {
        return Some(PathBuf::from("/var/cache/docker-reclaim"));
    }
    let base = env("XDG_CACHE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|home| Path::new(home).is_absolute())
                .map(|home| PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("docker-reclaim"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, allocated: u64) -> Entry {
        Entry {
            stamp: Stamp {
                ino,
                ctime: 1,
                mtime: 2,
            },
            allocated,
            apparent: allocated / 2,
        }
    }

    #[test]
    fn a_saved_cache_is_read_back_only_for_its_own_data_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootId {
            path: "/var/lib/docker".into(),
            dev: 1,
            ino: 2,
        };
        let mut sizes = Sizes::new(root.clone());
        sizes.entries.insert("overlay2/a".into(), entry(7, 4096));
        sizes.save(dir.path()).unwrap();
        assert_eq!(Sizes::load(dir.path(), &root), sizes);
        // The same path on another filesystem, or a recreated directory: nothing.
        for other in [
            RootId {
                dev: 9,
                ..root.clone()
            },
            RootId {
                ino: 9,
                ..root.clone()
            },
            RootId {
                path: "/srv/docker".into(),
                ..root.clone()
            },
        ] {
            assert!(Sizes::load(dir.path(), &other).entries.is_empty());
        }
    }

    #[test]
    fn the_directory_keeps_only_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..MAX_FILES + 4 {
            let path = dir.path().join(format!("sizes-{n:016x}.json"));
            std::fs::write(&path, b"{}").unwrap();
            let when =
                std::time::SystemTime::now() - std::time::Duration::from_secs(100 - n as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        std::fs::write(dir.path().join("not-ours.json"), b"{}").unwrap();
        let keep = dir.path().join("sizes-keep.json");
        std::fs::write(&keep, b"{}").unwrap();
        forget_stale(dir.path(), &keep, STALE_AFTER);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), MAX_FILES + 1, "{left:?}");
        assert!(left.contains(&"not-ours.json".to_string()));
        assert!(left.contains(&"sizes-keep.json".to_string()));
        // The oldest five of ours went.
        for n in 0..5 {
            assert!(!left.contains(&format!("sizes-{n:016x}.json")), "{left:?}");
        }
    }

    #[test]
    fn files_of_data_roots_not_planned_on_for_a_month_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = |ino| RootId {
            path: "/r".into(),
            dev: 1,
            ino,
        };
        Sizes::new(root(1)).save(dir.path()).unwrap();
        let first = file_for(dir.path(), &root(1));
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "not ours").unwrap();
        let second = file_for(dir.path(), &root(2));
        Sizes::new(root(2)).save(dir.path()).unwrap();
        // Both written just now: both stay.
        assert!(first.exists() && second.exists());
        forget_stale(dir.path(), &second, std::time::Duration::ZERO);
        assert!(!first.exists() && second.exists() && other.exists());
    }

    #[test]
    fn an_entry_is_used_only_while_its_directory_is_unchanged() {
        let mut sizes = Sizes::new(RootId {
            path: "/r".into(),
            dev: 1,
            ino: 1,
        });
        let kept = entry(7, 4096);
        sizes.entries.insert("overlay2/a".into(), kept);
        assert_eq!(sizes.get("overlay2/a", &kept.stamp), Some(kept.bytes()));
        for stamp in [
            Stamp {
                ino: 8,
                ..kept.stamp
            },
            Stamp {
                ctime: 5,
                ..kept.stamp
            },
            Stamp {
                mtime: 5,
                ..kept.stamp
            },
        ] {
            assert_eq!(sizes.get("overlay2/a", &stamp), None);
        }
        assert_eq!(sizes.get("overlay2/b", &kept.stamp), None);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootId {
            path: "/r".into(),
            dev: 1,
            ino: 1,
        };
        let path = file_for(dir.path(), &root);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(Sizes::load(dir.path(), &root).entries.is_empty());
        // A symlink in its place is not followed.
        let mut sizes = Sizes::new(root.clone());
        sizes.entries.insert("overlay2/a".into(), entry(7, 1));
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(&elsewhere, serde_json::to_vec(&sizes).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(Sizes::load(dir.path(), &root).entries.is_empty());
        // Saving replaces the link itself, never the file it points to.
        sizes.save(dir.path()).unwrap();
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(Sizes::load(dir.path(), &root), sizes);
    }

    #[test]
    fn the_default_place_follows_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map(|(_, value)| std::ffi::OsString::from(value))
            }
        };
        assert_eq!(
            default_dir(env(&[]), true),
            Some(PathBuf::from("/var/cache/docker-reclaim"))
        );
        assert_eq!(
            default_dir(env(&[("HOME", "/home/op")]), false),
            Some(PathBuf::from("/home/op/.cache/docker-reclaim"))
        );
        assert_eq!(
            default_dir(env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")]), false),
            Some(PathBuf::from("/c/docker-reclaim"))
        );
        assert_eq!(
            default_dir(env(&[("DOCKER_RECLAIM_CACHE_DIR", "")]), true),
            None
        );
        assert_eq!(
            default_dir(env(&[("DOCKER_RECLAIM_CACHE_DIR", "/t")]), false),
            Some(PathBuf::from("/t"))
        );
        assert_eq!(default_dir(env(&[]), false), None);
    }

    /// Safety round 2, finding 10: a tampered cache gave petabyte predictions
    /// labelled measured, and `u64::MAX` entries wrapped to a few MB.
    #[test]
    fn entries_no_filesystem_can_hold_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootId::of(dir.path()).unwrap();
        let (total, _) = super::super::fs::filesystem_space(dir.path()).unwrap();
        let mut sizes = Sizes::new(root.clone());
        sizes.entries.insert("overlay2/ok".into(), entry(1, 4096));
        sizes
            .entries
            .insert("overlay2/max".into(), entry(2, u64::MAX));
        sizes
            .entries
            .insert("overlay2/over".into(), entry(3, total + 1));
        let mut wide = entry(4, 4096);
        wide.apparent = u64::MAX;
        sizes.entries.insert("overlay2/wide".into(), wide);
        let cache = dir.path().join("cache");
        sizes.save(&cache).unwrap();
        let loaded = Sizes::load(&cache, &root);
        let kept: Vec<&str> = loaded.entries.keys().map(AsRef::as_ref).collect();
        assert_eq!(kept, ["overlay2/ok"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 500,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any bytes in a cache file: read (every entry within the
        /// filesystem's size) or ignored, never a panic.
        #[test]
        fn arbitrary_cache_files_are_bounded_or_ignored(
            allocated in proptest::num::u64::ANY,
            apparent in proptest::num::u64::ANY,
            edits in proptest::collection::vec((0usize..512, proptest::num::u8::ANY), 0..8),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let root = RootId::of(dir.path()).unwrap();
            let (total, _) = super::super::fs::filesystem_space(dir.path()).unwrap();
            let mut sizes = Sizes::new(root.clone());
            let mut one = entry(1, allocated);
            one.apparent = apparent;
            sizes.entries.insert("overlay2/x".into(), one);
            let cache = dir.path().join("cache");
            sizes.save(&cache).unwrap();
            let path = file_for(&cache, &root);
            let mut body = std::fs::read(&path).unwrap();
            for (at, byte) in edits {
                if !body.is_empty() {
                    let at = at % body.len();
                    body[at] = byte;
                }
            }
            std::fs::write(&path, &body).unwrap();
            let loaded = Sizes::load(&cache, &root);
            for entry in loaded.entries.values() {
                proptest::prop_assert!(entry.allocated <= total);
                proptest::prop_assert!(entry.apparent <= MAX_APPARENT);
            }
        }
    }
}
