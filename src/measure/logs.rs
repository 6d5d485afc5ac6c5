//! Containers' log files on disk: json-file's `ID-json.log` and its rotated
//! files, the local driver's `local-logs/container.log*`, each found without
//! following a link, with its allocated size and identity; and whether
//! dockerd, which holds the active one open, writes it in append mode
//! (`/proc/PID/fdinfo`), which is what makes truncating it safe.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::model::{Container, LogConfig, LogFile};

const JSON_SUFFIX: &str = "-json.log";
const LOCAL_DIR: &str = "local-logs";
const LOCAL_BASE: &str = "container.log";
/// `O_APPEND` in `/proc/PID/fdinfo/FD`'s octal `flags`.
const O_APPEND: u64 = 0o2000;
/// hostconfig.json larger than this is not the engine's.
const MAX_HOSTCONFIG: u64 = 1024 * 1024;

/// The log files of `containers` under `data_root`, with dockerd's write mode
/// for each file it holds open. Best effort: a container whose directory
/// cannot be read contributes nothing.
pub(crate) fn scan(data_root: &Path, containers: &[Container]) -> Vec<LogFile> {
    let Ok(root) = crate::files::open_dir(data_root) else {
        return Vec::new();
    };
    let Ok(dirs) = openat_dir(&root, "containers") else {
        return Vec::new();
    };
    let mut logs = Vec::new();
    for container in containers {
        let Ok(dir) = openat_dir(&dirs, &container.id) else {
            continue;
        };
        let base = format!("{}{JSON_SUFFIX}", container.id);
        let dir_path = data_root.join("containers").join(&container.id);
        let options = log_config(data_root, &container.id)
            .unwrap_or_default()
            .options;
        let compress = |default: bool| {
            options
                .get("compress")
                .map_or(default, |value| value == "true")
        };
        for (name, active) in entries(&dir, &base) {
            if let Some(mut log) = stat_log(&dir, &name, &dir_path, container, "json-file", active)
            {
                log.compressed_rotation = compress(false);
                logs.push(log);
            }
        }
        if let Ok(local) = openat_dir(&dir, LOCAL_DIR) {
            for (name, active) in entries(&local, LOCAL_BASE) {
                let shown = format!("{LOCAL_DIR}/{name}");
                if let Some(mut log) =
                    stat_log(&local, &name, &dir_path, container, "local", active)
                {
                    log.name = shown;
                    log.compressed_rotation = compress(true);
                    logs.push(log);
                }
            }
        }
    }
    mark_append_modes(&mut logs);
    logs
}

/// A container's log settings as the engine saved them in hostconfig.json
/// (the daemon's `log-opts` merged in when it was created).
pub(crate) fn log_config(data_root: &Path, container_id: &str) -> Option<LogConfig> {
    #[derive(serde::Deserialize)]
    struct HostConfig {
        #[serde(rename = "LogConfig")]
        log_config: Option<Raw>,
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(rename = "Type", default)]
        kind: String,
        #[serde(rename = "Config", default)]
        config: Option<std::collections::BTreeMap<String, String>>,
    }
    let path = data_root
        .join("containers")
        .join(container_id)
        .join("hostconfig.json");
    let body = crate::files::read_bounded_no_follow(&path, MAX_HOSTCONFIG).ok()?;
    let raw = serde_json::from_slice::<HostConfig>(&body)
        .ok()?
        .log_config?;
    Some(LogConfig {
        driver: raw.kind,
        options: raw.config.unwrap_or_default(),
    })
}

fn openat_dir(dir: &impl AsFd, name: &str) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The names in `dir` that are `base` (active) or its rotations.
fn entries(dir: &OwnedFd, base: &str) -> Vec<(String, bool)> {
    let Ok(readable) = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let Ok(mut listing) = rustix::fs::Dir::read_from(&readable) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    while let Some(Ok(entry)) = listing.read() {
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == base {
            found.push((name.to_string(), true));
        } else if crate::model::rotation(name, base).is_some() {
            found.push((name.to_string(), false));
        }
    }
    found.sort();
    found
}

/// One log file, when it is a regular file with no other link.
fn stat_log(
    dir: &OwnedFd,
    name: &str,
    dir_path: &Path,
    container: &Container,
    driver: &str,
    active: bool,
) -> Option<LogFile> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_nlink != 1 {
        return None;
    }
    Some(LogFile {
        container_id: container.id.clone(),
        dir: dir_path.to_string_lossy().into_owned(),
        name: name.to_string(),
        driver: driver.to_string(),
        active,
        allocated: u64::try_from(stat.st_blocks).unwrap_or(0) * 512,
        apparent: u64::try_from(stat.st_size).unwrap_or(0),
        dev: stat.st_dev,
        ino: stat.st_ino,
        modified: stat.st_mtime,
        append_only: None,
        compressed_rotation: false,
    })
}

/// Sets `append_only` on each file dockerd holds open: whether every one of
/// its descriptors for the file has `O_APPEND`.
fn mark_append_modes(logs: &mut [LogFile]) {
    let wanted: std::collections::HashSet<(u64, u64)> =
        logs.iter().map(|log| (log.dev, log.ino)).collect();
    if wanted.is_empty() {
        return;
    }
    let modes = append_modes(&wanted);
    for log in logs {
        log.append_only = modes.get(&(log.dev, log.ino)).copied();
    }
}

/// For each of `wanted` (device, inode) that a dockerd process holds open:
/// whether all its descriptors for it are in append mode.
pub(crate) fn append_modes(
    wanted: &std::collections::HashSet<(u64, u64)>,
) -> HashMap<(u64, u64), bool> {
    let mut modes: HashMap<(u64, u64), bool> = HashMap::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return modes;
    };
    for process in processes.filter_map(Result::ok) {
        let pid = process.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != "dockerd" {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let key = (
                std::os::unix::fs::MetadataExt::dev(&meta),
                std::os::unix::fs::MetadataExt::ino(&meta),
            );
            if !wanted.contains(&key) {
                continue;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let append = info
                .lines()
                .find_map(|line| line.strip_prefix("flags:"))
                .and_then(|flags| u64::from_str_radix(flags.trim(), 8).ok())
                .is_some_and(|flags| flags & O_APPEND != 0);
            let entry = modes.entry(key).or_insert(true);
            *entry &= append;
        }
    }
    modes
}
