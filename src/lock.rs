//! One apply at a time per engine: an advisory lock on a file named after the
//! engine's ID, held for the whole run and released when the process ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::exit::{ExitStatus, Stop};
use crate::model::EngineInfo;

pub struct Lock {
    _file: File,
}

/// Where lock files live: /run/lock when we may write there, else the temp dir.
fn lock_dir() -> PathBuf {
    let run_lock = Path::new("/run/lock");
    let writable = run_lock.is_dir()
        && std::fs::metadata(run_lock).is_ok_and(|meta| !meta.permissions().readonly())
        && tempfile_probe(run_lock);
    if writable {
        run_lock.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn tempfile_probe(dir: &Path) -> bool {
    let probe = dir.join(format!(".docker-reclaim-probe-{}", std::process::id()));
    let ok = File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// The lock file for an engine. The key is the engine ID and its data root: two
/// daemons on one host can share an ID (it comes from /etc/docker/key.json), never
/// a data root.
pub fn path_for(engine: &EngineInfo) -> PathBuf {
    let key = format!("{}\n{}", engine.id, engine.data_root);
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    lock_dir().join(format!("docker-reclaim-{}.lock", &digest[..16]))
}

/// Takes the engine's lock, or fails with [`ExitStatus::Locked`] at once.
pub fn acquire(engine: &EngineInfo) -> Result<Lock> {
    let path = path_for(engine);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::status_of;

    fn engine(id: &str, data_root: &str) -> EngineInfo {
        EngineInfo {
            id: id.into(),
            version: String::new(),
            api_version: String::new(),
            data_root: data_root.into(),
            storage_driver: String::new(),
            backing_filesystem: String::new(),
            host: String::new(),
        }
    }

    #[test]
    fn a_second_lock_on_the_same_engine_is_refused() {
        let id = format!("test-engine-{}", std::process::id());
        let first = acquire(&engine(&id, "/var/lib/docker")).unwrap();
        let err = acquire(&engine(&id, "/var/lib/docker")).err().unwrap();
        assert_eq!(status_of(&err), ExitStatus::Locked);
        // Another daemon with the same ID but its own data root is not blocked.
        let other = acquire(&engine(&id, "/srv/docker")).unwrap();
        drop((first, other));
        acquire(&engine(&id, "/var/lib/docker")).unwrap();
    }
}
