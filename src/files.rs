//! Files the user names: read with a size limit and without blocking, written
//! without replacing or following what is not ours. Plan and config files are
//! read here; `--plan-out` and `--log-file` are written here; the lock opens its
//! file through [`open_no_follow`].

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::exit::UsageError;

/// Plan and config files larger than this are refused before they are read.
pub const MAX_READ: u64 = 64 * 1024 * 1024;

/// Reads a whole regular file of at most [`MAX_READ`] bytes. A FIFO, a device
/// or a directory is refused at once (opened without blocking, so a FIFO with
/// no writer cannot hang us); `what` names the file in the error.
pub fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>, UsageError> {
    let shown = path.display();
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|err| UsageError(format!("cannot read {what} {shown}: {}", io(err))))?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|err| UsageError(format!("cannot read {what} {shown}: {err}")))?;
    if !meta.file_type().is_file() {
        return Err(UsageError(format!(
            "cannot read {what} {shown}: it is {}, not a regular file",
            describe_type(&meta.file_type())
        )));
    }
    if meta.len() > MAX_READ {
        return Err(UsageError(format!(
            "refusing {what} {shown}: it is {} bytes, more than the {} MiB a {what} may be",
            meta.len(),
            MAX_READ / (1024 * 1024)
        )));
    }
    let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The size was checked, but a file can grow while it is read.
    file.take(MAX_READ + 1)
        .read_to_end(&mut body)
        .map_err(|err| UsageError(format!("cannot read {what} {shown}: {err}")))?;
    if body.len() as u64 > MAX_READ {
        return Err(UsageError(format!(
            "refusing {what} {shown}: it grew past {} MiB while being read",
            MAX_READ / (1024 * 1024)
        )));
    }
    Ok(body)
}

/// Writes `body` to `path` for `--plan-out`. A regular file (or a new path) is
/// replaced atomically, through a temporary file in the same directory and a
/// rename, and created readable by its owner only. Anything else that already
/// exists there (`/dev/stdout`, a FIFO, a terminal) is written into as it is,
/// never replaced. A missing directory is a usage error.
pub fn write_output(path: &Path, body: &[u8], what: &str) -> Result<(), UsageError> {
    let shown = path.display();
    let fail = |err: std::io::Error| UsageError(format!("cannot write {what} to {shown}: {err}"));
    match std::fs::metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            if meta.is_dir() {
                return Err(UsageError(format!(
                    "cannot write {what} to {shown}: it is a directory"
                )));
            }
            // Someone else's device or pipe: write into it, never replace it.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc_free_flags(OFlags::NOCTTY | OFlags::CLOEXEC))
                .open(path)
                .map_err(fail)?;
            return file
                .write_all(body)
                .and_then(|()| file.flush())
                .map_err(fail);
        }
        _ => {}
    }
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "cannot write {what} to {shown}: the directory {} does not exist",
            dir.display()
        )));
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".docker-reclaim-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(fail)?;
    temp.write_all(body)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(fail)?;
    temp.persist(path).map_err(|err| fail(err.error))?;
    Ok(())
}

/// Opens (creating it, mode `mode`, if missing) a file to append to, without
/// following a symlink at the last component and without blocking; refuses
/// anything but a regular file. For `--log-file`.
pub fn open_append(path: &Path, mode: u32, what: &str) -> Result<File, UsageError> {
    let shown = path.display();
    // Named first by what it is; the open below checks again, race-free.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let kind = meta.file_type();
        if !kind.is_file() && !kind.is_symlink() {
            return Err(UsageError(format!(
                "cannot open {what} {shown}: it is {}, not a regular file",
                describe_type(&kind)
            )));
        }
    }
    let fd = open_no_follow(path, OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE, mode)
        .map_err(|err| UsageError(format!("cannot open {what} {shown}: {err}")))?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|err| UsageError(format!("cannot open {what} {shown}: {err}")))?;
    if !meta.file_type().is_file() {
        return Err(UsageError(format!(
            "cannot open {what} {shown}: it is {}, not a regular file",
            describe_type(&meta.file_type())
        )));
    }
    Ok(file)
}

/// `open(2)` with `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY` added to
/// `flags`: a symlink at `path` is an error ("too many levels of symbolic
/// links"), and a FIFO does not block the open.
pub fn open_no_follow(path: &Path, flags: OFlags, mode: u32) -> std::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::from_raw_mode(mode),
    )
    .map_err(|err| match err {
        rustix::io::Errno::LOOP => {
            std::io::Error::other("it is a symbolic link, which is not followed")
        }
        err => err.into(),
    })
}

fn libc_free_flags(flags: OFlags) -> i32 {
    // OFlags are the kernel's values; std's custom_flags takes them as an int.
    i32::try_from(flags.bits()).unwrap_or(0)
}

fn io(err: rustix::io::Errno) -> std::io::Error {
    err.into()
}

fn describe_type(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read_limited(&fifo, "config file").unwrap_err();
        assert!(err.0.contains("a FIFO"), "{}", err.0);
        let err = open_append(&fifo, 0o600, "--log-file").unwrap_err();
        assert!(err.0.contains("a FIFO"), "{}", err.0);
    }

    #[test]
    fn devices_are_refused_for_reading_and_written_into_not_replaced() {
        let err = read_limited(Path::new("/dev/zero"), "plan file").unwrap_err();
        assert!(err.0.contains("character device"), "{}", err.0);
        // /dev/null stays a device after being written to.
        write_output(Path::new("/dev/null"), b"{}", "the plan").unwrap();
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(meta.file_type().is_char_device());
    }

    #[test]
    fn a_regular_output_is_replaced_atomically_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_output(&path, b"one", "the plan").unwrap();
        write_output(&path, b"two", "the plan").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let missing = dir.path().join("no/such/dir/plan.json");
        let err = write_output(&missing, b"x", "the plan").unwrap_err();
        assert!(err.0.contains("does not exist"), "{}", err.0);
    }

    #[test]
    fn a_symlink_is_not_followed_when_appending() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_append(&link, 0o600, "--log-file").unwrap_err();
        assert!(err.0.contains("symbolic link"), "{}", err.0);
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_READ + 1).unwrap();
        let err = read_limited(&path, "plan file").unwrap_err();
        assert!(err.0.contains("more than the 64 MiB"), "{}", err.0);
    }
}
