//! Files the user names: read with a size limit and without blocking, written
//! without replacing or following what is not ours. Plan, config and TLS files
//! are read here; `--plan-out` and `--log-file` are written here; the lock
//! opens its file through [`open_no_follow`].
//!
//! Paths are walked one directory at a time ([`open_dir`]): a symbolic link on
//! the way is followed only when root or we own it, so a link that another user
//! planted in a world-writable directory leads nowhere (the rule of the
//! kernel's `fs.protected_symlinks`, made strict). The last component is never
//! followed. What is opened is checked after opening, on the descriptor.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::exit::UsageError;

/// Plan and config files larger than this are refused before they are read.
pub(crate) const MAX_READ: u64 = 64 * 1024 * 1024;

/// TLS certificates and keys larger than this are refused: a bundle of every
/// public CA is about 200 kB.
pub(crate) const MAX_TLS_FILE: u64 = 4 * 1024 * 1024;

/// How many symbolic links one path may pass through (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// How long a pipe or terminal we write into may take no bytes before we give up.
const STALLED_WRITE: Duration = Duration::from_secs(30);

/// Reads a whole regular file of at most [`MAX_READ`] bytes. A FIFO, a device
/// or a directory is refused at once (opened without blocking, so a FIFO with
/// no writer cannot hang us); `what` names the file in the error.
pub(crate) fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>, UsageError> {
    read_limited_to(path, what, MAX_READ)
}

/// [`read_limited`] with another bound.
pub(crate) fn read_limited_to(path: &Path, what: &str, max: u64) -> Result<Vec<u8>, UsageError> {
    read_bounded(path, max).map_err(|err| match err {
        ReadError::Io(err) => UsageError(format!("cannot read {what} {}: {err}", path.display())),
        ReadError::NotRegular(kind) => UsageError(format!(
            "cannot read {what} {}: it is {kind}, not a regular file",
            path.display()
        )),
        ReadError::TooLarge(len) => UsageError(format!(
            "refusing {what} {}: it is {len} bytes, more than the {} a {what} may be",
            path.display(),
            shown_size(max)
        )),
        ReadError::Grew => UsageError(format!(
            "refusing {what} {}: it grew past {} while being read",
            path.display(),
            shown_size(max)
        )),
    })
}

/// Why [`read_bounded`] read nothing.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// What the path is instead of a regular file.
    NotRegular(&'static str),
    /// Its size, above the bound.
    TooLarge(u64),
    /// It grew past the bound while being read.
    Grew,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(err) => write!(f, "{err}"),
            ReadError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge(len) => write!(f, "it is {len} bytes, more than we read"),
            ReadError::Grew => write!(f, "it grew while being read"),
        }
    }
}

/// Reads a whole regular file of at most `max` bytes, opened without blocking
/// (a FIFO with no writer cannot hang us) and checked on the descriptor.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read_bounded_with(path, max, OFlags::empty())
}

/// [`read_bounded`], refusing a symbolic link at `path` (files under a data
/// root, which are never links).
pub(crate) fn read_bounded_no_follow(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read_bounded_with(path, max, OFlags::NOFOLLOW)
}

/// Opens the regular file at `path` (never through a symlink, never blocking
/// on a FIFO) for reading in place, refused when larger than `max`: the file
/// and its length then.
pub(crate) fn open_bounded_no_follow(path: &Path, max: u64) -> Result<(File, u64), ReadError> {
    open_bounded_with(path, max, OFlags::NOFOLLOW)
}

fn open_bounded_with(path: &Path, max: u64, extra: OFlags) -> Result<(File, u64), ReadError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY | extra,
        Mode::empty(),
    )
    .map_err(|err| {
        ReadError::Io(if extra.contains(OFlags::NOFOLLOW) {
            no_follow_error(err)
        } else {
            err.into()
        })
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(describe_type(meta.file_type())));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(meta.len()));
    }
    Ok((file, meta.len()))
}

fn read_bounded_with(path: &Path, max: u64, extra: OFlags) -> Result<Vec<u8>, ReadError> {
    let (file, len) = open_bounded_with(path, max, extra)?;
    let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The size was checked, but a file can grow while it is read.
    file.take(max.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(ReadError::Io)?;
    if body.len() as u64 > max {
        return Err(ReadError::Grew);
    }
    Ok(body)
}

fn shown_size(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

/// Where `--plan-out` writes.
enum Target {
    /// One of our own descriptors, named as `/dev/stdout`, `/dev/fd/N` or
    /// `/proc/self/fd/N`: written into as it is.
    OwnFd(OwnedFd),
    /// A new path or a regular file of ours: replaced atomically.
    Replace { dir: OwnedFd, name: OsString },
    /// A FIFO with a reader, a terminal or `/dev/null`: written into, never replaced.
    Stream(OwnedFd),
}

/// Writes `body` to `path` for `--plan-out`. A new path or a regular file of
/// ours is replaced atomically, through a temporary file in the same directory
/// and a rename, and created readable by its owner only. `/dev/stdout`, a FIFO
/// that has a reader, a terminal and `/dev/null` are written into as they are.
/// Everything else is refused before anything is written: a symbolic link (it
/// is not followed), a file of another user's, a block device, any other
/// character device, a directory, a FIFO nobody reads. A missing directory is
/// a usage error. A reader that takes nothing for [`STALLED_WRITE`] ends it;
/// signals end it sooner (it waits in the runtime).
pub(crate) async fn write_output(path: &Path, body: &[u8], what: &str) -> Result<(), UsageError> {
    let shown = path.display();
    let fail = |why: String| UsageError(format!("cannot write {what} to {shown}: {why}"));
    match target(path).map_err(fail)? {
        Target::Replace { dir, name } => {
            replace_in(&dir, &name, body).map_err(|err| fail(err.to_string()))
        }
        Target::OwnFd(fd) | Target::Stream(fd) => write_stream(fd, body)
            .await
            .map_err(|err| fail(err.to_string())),
    }
}

/// Decides, on descriptors, what `path` is for [`write_output`].
fn target(path: &Path) -> Result<Target, String> {
    if let Some(fd) = own_fd(path) {
        return fd.map(Target::OwnFd).map_err(|err| err.to_string());
    }
    let (dir, name) = open_parent(path).map_err(|err| err.to_string())?;
    let stat = match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(Target::Replace { dir, name }),
        Err(err) => return Err(std::io::Error::from(err).to_string()),
        Ok(stat) => stat,
    };
    let euid = rustix::process::geteuid().as_raw();
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile if stat.st_uid == euid => Ok(Target::Replace { dir, name }),
        FileType::RegularFile => Err(format!(
            "it belongs to another user (uid {}), and is not replaced",
            stat.st_uid
        )),
        FileType::Symlink => Err("it is a symbolic link, which is not followed".into()),
        FileType::Directory => Err("it is a directory".into()),
        FileType::BlockDevice => Err("it is a block device, which is never written".into()),
        FileType::Fifo | FileType::CharacterDevice => {
            let fd = rustix::fs::openat(
                &dir,
                name.as_os_str(),
                OFlags::WRONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::CLOEXEC
                    | OFlags::NOCTTY,
                Mode::empty(),
            )
            .map_err(|err| match err {
                Errno::NXIO => "it is a FIFO that nobody reads".to_string(),
                err => std::io::Error::from(err).to_string(),
            })?;
            let opened =
                rustix::fs::fstat(&fd).map_err(|err| std::io::Error::from(err).to_string())?;
            if (opened.st_dev, opened.st_ino) != (stat.st_dev, stat.st_ino) {
                return Err("it changed while being opened".into());
            }
            let kind = FileType::from_raw_mode(opened.st_mode);
            let null =
                kind == FileType::CharacterDevice && opened.st_rdev == rustix::fs::makedev(1, 3);
            if kind == FileType::Fifo || null || fd.as_fd().is_terminal() {
                Ok(Target::Stream(fd))
            } else {
                Err("it is a character device that is neither a terminal nor /dev/null".into())
            }
        }
        _ => Err("it is a socket".into()),
    }
}

/// Our standard output or error, when `path` names it (`/dev/stdout`,
/// `/dev/fd/1`, `/proc/self/fd/1`, and the same for 2), duplicated.
fn own_fd(path: &Path) -> Option<std::io::Result<OwnedFd>> {
    let duplicate = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(std::io::Error::from)
    };
    Some(match path.to_str()? {
        "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => duplicate(std::io::stdout().as_fd()),
        "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => duplicate(std::io::stderr().as_fd()),
        _ => return None,
    })
}

/// Writes `body` into a FIFO, terminal or device, waiting in the runtime when
/// it is full, so that signals are seen; [`STALLED_WRITE`] without progress
/// ends it.
async fn write_stream(fd: OwnedFd, body: &[u8]) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
    let mut file = File::from(fd);
    let written = write_nonblocking(&mut file, body).await;
    // Our own descriptors (stdout) are shared: leave them as they were.
    let restored = rustix::fs::fcntl_setfl(&file, flags);
    written?;
    Ok(restored?)
}

async fn write_nonblocking(file: &mut File, body: &[u8]) -> std::io::Result<()> {
    let mut rest = body;
    let mut progress = std::time::Instant::now();
    while !rest.is_empty() {
        match file.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                rest = &rest[written..];
                progress = std::time::Instant::now();
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                // A full pipe: wait in the runtime, where signals are seen.
                if progress.elapsed() > STALLED_WRITE {
                    return Err(std::io::Error::other(format!(
                        "the reader took nothing for {} seconds",
                        STALLED_WRITE.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Writes `body` to a new file in `dir` and renames it over `name`: a reader
/// sees the old file or the whole new one. The temporary file is created
/// exclusively, without following links, readable by its owner only.
fn replace_in(dir: &OwnedFd, name: &OsStr, body: &[u8]) -> std::io::Result<()> {
    let (temp_name, fd) = create_temp(dir, name)?;
    let written = (|| {
        let mut file = File::from(fd);
        file.write_all(body)?;
        file.sync_all()?;
        rustix::fs::renameat(dir, temp_name.as_os_str(), dir, name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir, temp_name.as_os_str(), AtFlags::empty());
    }
    written
}

/// A new file `.NAME.docker-reclaim-XXXXXX` in `dir`, mode 0600.
fn create_temp(dir: &OwnedFd, name: &OsStr) -> std::io::Result<(OsString, OwnedFd)> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    for attempt in 0..100u32 {
        let mut temp = OsString::from(".");
        temp.push(name);
        temp.push(format!(
            ".docker-reclaim-{:08x}",
            seed ^ std::process::id().rotate_left(16) ^ attempt.wrapping_mul(0x9e37_79b9)
        ));
        match rustix::fs::openat(
            dir,
            temp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((temp, fd)),
            Err(Errno::EXIST) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

/// Opens the directory that holds `path`'s last component ([`open_dir`]) and
/// returns it with that component's name.
pub(crate) fn open_parent(path: &Path) -> std::io::Result<(OwnedFd, OsString)> {
    let name = match path.components().next_back() {
        Some(Component::Normal(name)) => name.to_os_string(),
        _ => return Err(std::io::Error::other("it names no file")),
    };
    let parent = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = open_dir(parent).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            std::io::Error::other(format!("the directory {} does not exist", parent.display()))
        } else {
            err
        }
    })?;
    Ok((dir, name))
}

/// Opens directory `path` one component at a time. A symbolic link on the way
/// is followed only when root or the effective user owns it; one that another
/// user owns is an error that names it.
pub(crate) fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let start = if path.is_absolute() { "/" } else { "." };
    let dir = rustix::fs::open(start, dir_flags(), Mode::empty())?;
    let mut links = 0;
    walk(dir, path, &mut links)
}

fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn walk(mut dir: OwnedFd, path: &Path, links: &mut u32) -> std::io::Result<OwnedFd> {
    let euid = rustix::process::geteuid().as_raw();
    for component in path.components() {
        let name = match component {
            Component::RootDir => {
                dir = rustix::fs::open("/", dir_flags(), Mode::empty())?;
                continue;
            }
            Component::CurDir | Component::Prefix(_) => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(name) => name,
        };
        match rustix::fs::openat(&dir, name, dir_flags() | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(next) => dir = next,
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                let shown = PathBuf::from(name);
                if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
                    return Err(std::io::Error::other(format!(
                        "{} is not a directory",
                        shown.display()
                    )));
                }
                if stat.st_uid != 0 && stat.st_uid != euid {
                    return Err(std::io::Error::other(format!(
                        "{} is a symbolic link that another user (uid {}) owns, which is not followed",
                        shown.display(),
                        stat.st_uid
                    )));
                }
                *links += 1;
                if *links > MAX_LINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rustix::fs::readlinkat(&dir, name, Vec::new())?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                dir = walk(dir, &target, links)?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(dir)
}

/// Opens (creating it, mode `mode`, if missing) a file to append to, for
/// `--log-file`: its directory walked as [`open_dir`] does, the file itself
/// never followed if it is a link, never blocking; refuses anything but a
/// regular file, and a file another user owns.
pub(crate) fn open_append(path: &Path, mode: u32, what: &str) -> Result<File, UsageError> {
    let shown = path.display();
    let fail = |why: String| UsageError(format!("cannot open {what} {shown}: {why}"));
    let (dir, name) = open_parent(path).map_err(|err| fail(err.to_string()))?;
    // Named first by what it is; the checks on the descriptor below decide.
    if let Ok(stat) = rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile && kind != FileType::Symlink {
            return Err(fail(format!(
                "it is {}, not a regular file",
                describe_raw(kind)
            )));
        }
    }
    let fd = rustix::fs::openat(
        &dir,
        name.as_os_str(),
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC
            | OFlags::NOCTTY,
        Mode::from_raw_mode(mode),
    )
    .map_err(|err| fail(no_follow_error(err).to_string()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|err| fail(err.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(fail(format!(
            "it is {}, not a regular file",
            describe_type(meta.file_type())
        )));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(fail(format!(
            "it belongs to another user (uid {}); it is not written to",
            meta.uid()
        )));
    }
    if meta.nlink() > 1 {
        return Err(fail("it has other hard links; it is not written to".into()));
    }
    Ok(file)
}

/// `open(2)` with `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY` added to
/// `flags`: a symlink at `path` is an error ("too many levels of symbolic
/// links"), and a FIFO does not block the open.
pub(crate) fn open_no_follow(path: &Path, flags: OFlags, mode: u32) -> std::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::from_raw_mode(mode),
    )
    .map_err(no_follow_error)
}

fn no_follow_error(err: Errno) -> std::io::Error {
    match err {
        Errno::LOOP => std::io::Error::other("it is a symbolic link, which is not followed"),
        err => err.into(),
    }
}

fn describe_raw(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Symlink => "a symbolic link",
        _ => "not a regular file",
    }
}

fn describe_type(kind: std::fs::FileType) -> &'static str {
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

/// A FIFO at `path`, for tests of what refuses one.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, body: &[u8]) -> Result<(), UsageError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(write_output(path, body, "the plan"))
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
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
        write(Path::new("/dev/null"), b"{}").unwrap();
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(meta.file_type().is_char_device());
    }

    #[test]
    fn a_regular_output_is_replaced_atomically_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let missing = dir.path().join("no/such/dir/plan.json");
        let err = write(&missing, b"x").unwrap_err();
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

    /// Finding 1 of the second safety round: `ln -s /dev/loop0 D/plan.json`
    /// by another user, then `--plan-out D/plan.json` as root.
    #[test]
    fn plan_out_never_follows_a_link_nor_writes_a_block_device() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = write(&link, b"{}").unwrap_err();
        assert!(err.0.contains("symbolic link"), "{}", err.0);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

        // A block device node (a loop device number nobody uses), as root.
        let device = dir.path().join("disk");
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            &device,
            FileType::BlockDevice,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(7, 250),
        );
        if made.is_ok() {
            let err = write(&device, b"{}").unwrap_err();
            assert!(err.0.contains("block device"), "{}", err.0);
        }
        // Character devices other than a terminal and /dev/null.
        let err = write(Path::new("/dev/zero"), b"{}").unwrap_err();
        assert!(err.0.contains("character device"), "{}", err.0);
    }

    /// Finding 8: `--plan-out FIFO` with no reader waited for ever.
    #[test]
    fn a_fifo_without_a_reader_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
        let started = std::time::Instant::now();
        let err = write(&fifo, b"{}").unwrap_err();
        assert!(err.0.contains("nobody reads"), "{}", err.0);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_fifo_with_a_reader_gets_the_whole_plan() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::File::open(fifo).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                let mut body = Vec::new();
                file.read_to_end(&mut body).unwrap();
                body
            })
        };
        // Wait for the reader to open its end.
        let body = vec![b'x'; 1 << 20];
        let mut tries = 0;
        loop {
            match write(&fifo, &body) {
                Ok(()) => break,
                Err(err) if err.0.contains("nobody reads") && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("{}", err.0),
            }
        }
        assert_eq!(reader.join().unwrap().len(), body.len());
    }

    /// Finding 11: a symlinked parent directory planted by another user.
    #[test]
    fn a_link_on_the_way_is_followed_only_when_root_or_we_own_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let ours = dir.path().join("ours");
        std::os::unix::fs::symlink(&real, &ours).unwrap();
        write(&ours.join("plan.json"), b"one").unwrap();
        assert_eq!(std::fs::read(real.join("plan.json")).unwrap(), b"one");
        if rustix::process::geteuid().is_root() {
            let theirs = dir.path().join("theirs");
            std::os::unix::fs::symlink(&real, &theirs).unwrap();
            rustix::fs::chownat(
                rustix::fs::CWD,
                &theirs,
                Some(rustix::fs::Uid::from_raw(65534)),
                None,
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
            let err = write(&theirs.join("plan.json"), b"two").unwrap_err();
            assert!(err.0.contains("another user (uid 65534)"), "{}", err.0);
            let err = open_append(&theirs.join("audit.log"), 0o600, "--log-file").unwrap_err();
            assert!(err.0.contains("another user (uid 65534)"), "{}", err.0);
            assert!(!real.join("audit.log").exists());
        }
    }

    /// Finding 11: a log file that another user made first is not appended to.
    #[test]
    fn a_log_file_of_another_users_is_not_appended_to() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = open_append(&path, 0o600, "--log-file").unwrap_err();
        assert!(err.0.contains("another user"), "{}", err.0);
        let err = write(&path, b"{}").unwrap_err();
        assert!(err.0.contains("another user"), "{}", err.0);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn tls_sized_reads_refuse_endless_devices() {
        let err = read_limited_to(Path::new("/dev/zero"), "TLS CA certificate", MAX_TLS_FILE)
            .unwrap_err();
        assert!(err.0.contains("character device"), "{}", err.0);
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("ca.pem");
        File::create(&big)
            .unwrap()
            .set_len(MAX_TLS_FILE + 1)
            .unwrap();
        let err = read_limited_to(&big, "TLS CA certificate", MAX_TLS_FILE).unwrap_err();
        assert!(err.0.contains("more than the 4 MiB"), "{}", err.0);
    }
}
