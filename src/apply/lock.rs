//! One apply at a time per engine: an advisory lock on a file named after the
//! engine's ID and data root, held for the whole run and released when the
//! process ends.
//!
//! Where the lock lives decides who can interfere with it. World-writable
//! directories (`/run/lock`, `/tmp`) let any user plant a symlink or hold the
//! lock against root, so root locks in `/run/docker-reclaim`, a directory only
//! root can write. Root makes each engine's lock file there readable and
//! writable by the group of the engine's socket: exactly the users who may use
//! the engine, who then take the same lock. A user who cannot open it (root has
//! not run yet, another engine) locks in a directory of their own
//! (`$XDG_RUNTIME_DIR/docker-reclaim`, else `/tmp/docker-reclaim-UID`), which
//! nobody else can write. Lock files are opened without following symlinks.
//!
//! A run removes its own lock file when it is done, while it still holds the
//! lock and only if the name still points at that file, so that nothing is
//! left in `/run/docker-reclaim`. Whoever locks checks afterwards that the
//! name still points at the file it locked: one that was removed meanwhile
//! (its holder finished) is opened again, so two runs never hold two files
//! of one name.

use std::fs::{File, TryLockError};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::OFlags;
use sha2::{Digest, Sha256};

use crate::exit::{ExitStatus, Stop};
use crate::files;
use crate::model::EngineInfo;

/// The shared lock directory.
pub(crate) const SYSTEM_DIR: &str = "/run/docker-reclaim";

#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
    /// Other processes' lock files for this engine, held too: root holds the
    /// users' private ones it finds, a user root's shared one once it exists.
    _others: Vec<File>,
    pub(crate) path: PathBuf,
    /// This run made the file's directory its place (root's shared one, or
    /// the user's own): the file is removed when the lock is let go.
    own: bool,
}

impl Drop for Lock {
    /// Removes our own lock file while the lock is still held, if its name
    /// still points at it (never a file someone put there since).
    fn drop(&mut self) {
        if self.own {
            if names(&self.path, &self._file) {
                let _ = std::fs::remove_file(&self.path);
            }
            if let Ok(mut held) = HELD.lock() {
                held.retain(|(path, _)| *path != self.path);
            }
        }
    }
}

/// Our own lock files held now, with their device and inode, for a run
/// that ends without destructors (an interrupted prompt exits at once).
static HELD: std::sync::Mutex<Vec<(PathBuf, (u64, u64))>> = std::sync::Mutex::new(Vec::new());

/// Removes our own lock files still held, each only if its name still
/// points at the file we locked; for a run about to exit on the spot.
pub(crate) fn remove_own_files() {
    let Ok(held) = HELD.lock() else {
        return;
    };
    for (path, (dev, ino)) in held.iter() {
        if std::fs::symlink_metadata(path)
            .is_ok_and(|meta| meta.dev() == *dev && meta.ino() == *ino)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `path` (not followed if a link) is the file `file` has open.
fn names(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

/// How often a lock file removed under us is opened again before giving up.
const REOPENS: usize = 20;

/// The lock file's name for an engine. Two daemons on one host can share an ID
/// (it comes from /etc/docker/key.json), never a data root.
pub(crate) fn file_name(engine: &EngineInfo) -> String {
    let key = format!("{}\n{}", engine.id, engine.data_root);
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{}.lock", &digest[..16])
}

/// Takes the engine's lock, or fails with [`ExitStatus::Locked`] at once.
/// `socket` is the engine's unix socket when it is local: its group shares
/// the lock file.
pub(crate) fn acquire(engine: &EngineInfo, socket: Option<&Path>) -> Result<Lock> {
    let system = Path::new(SYSTEM_DIR);
    let name = file_name(engine);
    if rustix::process::geteuid().is_root() {
        match std::fs::symlink_metadata(system) {
            Err(_) => {
                let _ = std::fs::create_dir(system);
                let _ = std::fs::set_permissions(system, std::fs::Permissions::from_mode(0o755));
            }
            // Only root can make a directory in /run: a root-owned one is ours,
            // and only root may write in it.
            Ok(meta) if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o7777 != 0o755 => {
                let _ = std::fs::set_permissions(system, std::fs::Permissions::from_mode(0o755));
            }
            Ok(_) => {}
        }
        if shared_dir_is_safe(system) {
            let mut lock = acquire_in(system, engine)?;
            share_with(&lock.path, socket);
            // A user of the engine's group who ran before root ever did locked
            // in a directory of their own: those locks exclude root too.
            lock._others = hold_users_locks(&user_lock_dirs(), &name)?;
            return Ok(lock);
        }
    } else if let Some((file, path)) = take_roots_shared(system, &name)? {
        // Root made it for this engine's group: the same lock (root's file,
        // left for root to remove).
        return Ok(Lock {
            _file: file,
            _others: Vec::new(),
            path,
            own: false,
        });
    }
    let mut lock = acquire_in(&private_dir()?, engine)?;
    // Root may have made the shared lock file since it was looked for: taken
    // too, after the private one, so that root (which takes its own, then
    // looks for the users') and this run never both go ahead.
    if let Some((file, _)) = take_roots_shared(system, &name)? {
        lock._others.push(file);
    }
    Ok(lock)
}

/// Root's shared lock file for this engine, locked, if it is there (and
/// still there once locked: root removes it when its run ends).
fn take_roots_shared(system: &Path, name: &str) -> Result<Option<(File, PathBuf)>> {
    for _ in 0..REOPENS {
        let Some((file, path)) = roots_shared_file(system, name) else {
            return Ok(None);
        };
        lock(&file, &path)?;
        if names(&path, &file) {
            return Ok(Some((file, path)));
        }
    }
    Ok(None)
}

/// Root's lock file `name` in the shared directory, opened for a user of the
/// engine's group: only in a safe directory, only a regular file root owns.
fn roots_shared_file(system: &Path, name: &str) -> Option<(File, PathBuf)> {
    if !shared_dir_is_safe(system) {
        return None;
    }
    let path = system.join(name);
    files::open_no_follow(&path, OFlags::RDWR, 0)
        .ok()
        .map(File::from)
        .filter(|file| {
            file.metadata()
                .is_ok_and(|meta| meta.is_file() && meta.uid() == 0)
        })
        .map(|file| (file, path))
}

/// Where users of the engine's group lock when root's shared lock file is not
/// there yet: `/run/user/UID/docker-reclaim` (`$XDG_RUNTIME_DIR`) and
/// `/tmp/docker-reclaim-UID`, as [`private_dir`] makes them.
fn user_lock_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (base, pattern) in [("/run/user", None), ("/tmp", Some("docker-reclaim-"))] {
        let Ok(entries) = std::fs::read_dir(base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match pattern {
                None => dirs.push(entry.path().join("docker-reclaim")),
                Some(prefix) if name.starts_with(prefix) => dirs.push(entry.path()),
                Some(_) => {}
            }
        }
    }
    dirs
}

/// Takes every lock file named `name` in `dirs` (opened read-only, never
/// through a symlink, only regular files): a held one means another
/// docker-reclaim is applying on this engine.
fn hold_users_locks(dirs: &[PathBuf], name: &str) -> Result<Vec<File>> {
    let mut held = Vec::new();
    for dir in dirs {
        let path = dir.join(name);
        let Ok(fd) = files::open_no_follow(&path, OFlags::RDONLY, 0) else {
            continue;
        };
        let file = File::from(fd);
        if !file.metadata().is_ok_and(|meta| meta.is_file()) {
            continue;
        }
        lock(&file, &path)?;
        // Removed by its user once done: nothing held there any more.
        if names(&path, &file) {
            held.push(file);
        }
    }
    Ok(held)
}

/// Takes the lock in `dir`, creating the file if needed; the file is
/// removed when the lock is let go.
pub(crate) fn acquire_in(dir: &Path, engine: &EngineInfo) -> Result<Lock> {
    let path = dir.join(file_name(engine));
    for _ in 0..REOPENS {
        let fd = files::open_no_follow(&path, OFlags::RDWR | OFlags::CREATE, 0o600)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        let file = File::from(fd);
        let meta = file
            .metadata()
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        if !meta.file_type().is_file() {
            anyhow::bail!("the lock file {} is not a regular file", path.display());
        }
        lock(&file, &path)?;
        // Its last holder removed it between our open and our lock: open
        // the name again.
        if names(&path, &file) {
            if let (Ok(mut held), Ok(meta)) = (HELD.lock(), file.metadata()) {
                held.push((path.clone(), (meta.dev(), meta.ino())));
            }
            return Ok(Lock {
                _file: file,
                _others: Vec::new(),
                path,
                own: true,
            });
        }
    }
    anyhow::bail!(
        "the lock file {} kept being removed while it was being locked",
        path.display()
    )
}

/// Locks `file` (named `path`), or fails with [`ExitStatus::Locked`] at once.
fn lock(file: &File, path: &Path) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(Stop::new(
            ExitStatus::Locked,
            format!(
                "another docker-reclaim is applying a plan on this engine; try again when it is done (lock {})",
                path.display()
            ),
        )
        .into()),
        Err(TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Lets the group of the engine's socket open root's lock file.
fn share_with(path: &Path, socket: Option<&Path>) {
    let Some(gid) = socket.and_then(|socket| std::fs::metadata(socket).ok().map(|m| m.gid()))
    else {
        return;
    };
    if let Ok(fd) = files::open_no_follow(path, OFlags::RDONLY, 0) {
        let _ = rustix::fs::fchown(&fd, None, Some(rustix::fs::Gid::from_raw(gid)));
        let _ = rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o660));
    }
}

/// A real directory (not a symlink), owned by root, writable by no one else.
fn shared_dir_is_safe(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|meta| meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o022 == 0)
}

/// This user's own lock directory, made if missing and refused if anyone else
/// owns it or could write in it.
fn private_dir() -> Result<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && owned_private(dir, uid));
    let dir = match runtime {
        Some(runtime) => runtime.join("docker-reclaim"),
        None => std::env::temp_dir().join(format!("docker-reclaim-{uid}")),
    };
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making the lock directory {}", dir.display()))?;
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(err)
                .with_context(|| format!("making the lock directory {}", dir.display()));
        }
    }
    if !owned_private(&dir, uid) {
        anyhow::bail!(
            "refusing the lock directory {}: it is not a directory of this user's that only this user can write (remove it if someone else made it)",
            dir.display()
        );
    }
    Ok(dir)
}

/// A real directory owned by `uid` that no group or other user can write.
fn owned_private(dir: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|meta| meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::engine;

    #[test]
    fn a_second_lock_on_the_same_engine_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire_in(dir.path(), &engine()).unwrap();
        let second = acquire_in(dir.path(), &engine()).unwrap_err();
        assert_eq!(crate::exit::status_of(&second), ExitStatus::Locked);
        drop(first);
        acquire_in(dir.path(), &engine()).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(file_name(&engine()))).unwrap();
        let err = acquire_in(dir.path(), &engine()).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_shared_dir_must_be_roots_and_not_world_writable() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(!shared_dir_is_safe(&open));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert!(!shared_dir_is_safe(&link));
    }

    /// Safety round 2, finding 11: a docker-group user's lock, taken in a
    /// directory of their own before root's shared lock file existed, did
    /// not exclude root's apply.
    #[test]
    fn a_users_private_lock_excludes_root() {
        let base = tempfile::tempdir().unwrap();
        let private = base.path().join("docker-reclaim-65534");
        std::fs::create_dir(&private).unwrap();
        let users = acquire_in(&private, &engine()).unwrap();
        let err =
            hold_users_locks(std::slice::from_ref(&private), &file_name(&engine())).unwrap_err();
        assert_eq!(crate::exit::status_of(&err), ExitStatus::Locked);
        drop(users);
        // The user's lock went with its file: nothing to hold.
        let held = hold_users_locks(std::slice::from_ref(&private), &file_name(&engine())).unwrap();
        assert!(held.is_empty());
        // A file left by a run that died is held by root, and while root
        // holds it the user is locked out.
        std::fs::write(private.join(file_name(&engine())), b"").unwrap();
        let held = hold_users_locks(std::slice::from_ref(&private), &file_name(&engine())).unwrap();
        assert_eq!(held.len(), 1);
        assert!(acquire_in(&private, &engine()).is_err());
    }

    /// #20: a run leaves no lock file behind, and never removes a file that
    /// is not the one it locked.
    #[test]
    fn the_lock_file_goes_with_the_lock_and_only_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(&engine()));
        let first = acquire_in(dir.path(), &engine()).unwrap();
        assert!(path.exists());
        drop(first);
        assert!(!path.exists(), "the lock file was left behind");
        // Someone put another file under the name while we held the lock:
        // theirs stays.
        let held = acquire_in(dir.path(), &engine()).unwrap();
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(held);
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }

    /// A file opened before its holder removed it is not a lock any more:
    /// `names` tells, and the next acquire makes a new one.
    #[test]
    fn a_lock_file_removed_under_a_waiter_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(&engine()));
        let holder = acquire_in(dir.path(), &engine()).unwrap();
        let waiter = File::open(&path).unwrap();
        assert!(names(&path, &waiter));
        drop(holder);
        // The waiter can lock its file now, but it is no longer the lock.
        lock(&waiter, &path).unwrap();
        assert!(!names(&path, &waiter));
        let next = acquire_in(dir.path(), &engine()).unwrap();
        assert!(names(&path, &next._file));
    }
}
