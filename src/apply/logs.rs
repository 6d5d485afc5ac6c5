//! Carrying out a log item: re-checked against the engine (the container is
//! still there, with the same log driver and path) and on disk (the same
//! regular file, one link, reached without following a link; for a
//! truncation, still over the size and written by dockerd in append mode),
//! then a rotated file removed or the active file truncated through the
//! descriptor that was checked.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::apply::report::Outcome;
use crate::engine::Engine;
use crate::inventory::Inventory;
use crate::model::LogFile;
use crate::model::log_item_id;
use crate::plan::{Item, Reason};

/// Re-checks and carries out one log item. `over` is the plan's `--logs-over`.
/// An error is the engine's, for the caller to judge.
pub(crate) async fn carry_out(
    engine: &impl Engine,
    item: &Item,
    inventory: &Inventory,
    over: Option<u64>,
) -> anyhow::Result<Outcome> {
    let Some(log) = inventory
        .logs
        .iter()
        .find(|log| log_item_id(log) == item.id)
    else {
        return Ok(Outcome::Skipped("not found on disk when planning".into()));
    };
    let Some(details) = engine.container_details(&log.container_id).await? else {
        return Ok(Outcome::Skipped(
            "changed since the plan: its container is gone".into(),
        ));
    };
    if details.log_driver != log.driver {
        return Ok(Outcome::Skipped(format!(
            "changed since the plan: its container's log driver is now {:?}",
            details.log_driver
        )));
    }
    if log.driver == "json-file" {
        let expected = Path::new(&log.dir).join(format!("{}-json.log", log.container_id));
        if Path::new(&details.log_path) != expected {
            return Ok(Outcome::Skipped(format!(
                "changed since the plan: its container's log path is now {}",
                crate::model::printable(&details.log_path)
            )));
        }
    }
    if item.reason == Reason::OversizedLog && !crate::plan::truncation_is_safe(&inventory.engine) {
        return Ok(Outcome::Skipped(
            "this engine's `docker logs` does not survive a truncation".into(),
        ));
    }
    let data_root = Path::new(&inventory.engine.data_root);
    Ok(match touch(data_root, log, item.reason, over) {
        Ok(()) => Outcome::Removed,
        Err(Touch::Changed(why)) => Outcome::Skipped(format!("changed since the plan: {why}")),
        Err(Touch::Failed(err)) => Outcome::Failed(format!("{}: {err}", log.name)),
    })
}

enum Touch {
    Changed(String),
    Failed(std::io::Error),
}

impl From<rustix::io::Errno> for Touch {
    fn from(err: rustix::io::Errno) -> Touch {
        match err {
            rustix::io::Errno::NOENT => Touch::Changed("the file is gone".into()),
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                Touch::Changed("a symbolic link is on its path".into())
            }
            other => Touch::Failed(other.into()),
        }
    }
}

/// The directory holding the file, reached from the data root one component
/// at a time without following a link, and the file's name in it.
fn parent_of(data_root: &Path, log: &LogFile) -> Result<(OwnedFd, String), Touch> {
    let step = |dir: &OwnedFd, name: &str| {
        rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let root = crate::files::open_dir(data_root).map_err(Touch::Failed)?;
    let mut dir = step(&step(&root, "containers")?, &log.container_id)?;
    let mut name = log.name.as_str();
    if let Some((sub, file)) = name.split_once('/') {
        dir = step(&dir, sub)?;
        name = file;
    }
    Ok((dir, name.to_string()))
}

fn touch(data_root: &Path, log: &LogFile, reason: Reason, over: Option<u64>) -> Result<(), Touch> {
    let (dir, name) = parent_of(data_root, log)?;
    let same = |stat: &rustix::fs::Stat| -> Result<(), Touch> {
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Touch::Changed("it is no longer a regular file".into()));
        }
        if stat.st_dev != log.dev || stat.st_ino != log.ino {
            return Err(Touch::Changed("it is another file now".into()));
        }
        if stat.st_nlink != 1 {
            return Err(Touch::Changed("it has another link now".into()));
        }
        Ok(())
    };
    same(&rustix::fs::statat(
        &dir,
        name.as_str(),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)?;
    if reason == Reason::RotatedLog {
        rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())?;
        return Ok(());
    }
    let file = rustix::fs::openat(
        &dir,
        name.as_str(),
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&file)?;
    same(&stat)?;
    let allocated = u64::try_from(stat.st_blocks).unwrap_or(0) * 512;
    if over.is_none_or(|over| allocated <= over) {
        return Err(Touch::Changed("it is no longer over --logs-over".into()));
    }
    let wanted = std::collections::HashSet::from([(stat.st_dev, stat.st_ino)]);
    if crate::measure::logs::append_modes(&wanted).get(&(stat.st_dev, stat.st_ino)) == Some(&false)
    {
        return Err(Touch::Changed(
            "dockerd now writes it without O_APPEND (a rotation reopened it)".into(),
        ));
    }
    rustix::fs::ftruncate(&file, 0)?;
    Ok(())
}
