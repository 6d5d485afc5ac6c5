//! One walk of the data root, its bytes filed by owner ([`Index`]).

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use super::cache::{self, Sizes, Stamp};
use super::readers;
use super::refs::Refs;
use crate::model::Bytes;

/// A walk that counts each inode once across all the paths it is given: the
/// plain reference the [`Index`] is checked against in tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Walk {
    seen: HashSet<(u64, u64)>,
    /// Some entry could not be read: the figures are lower bounds.
    pub(crate) incomplete: bool,
}

#[cfg(test)]
impl Walk {
    pub(crate) fn new() -> Walk {
        Walk::default()
    }

    /// What lies at `path`, a file or a whole tree; nothing when it does not exist.
    pub(crate) fn measure(&mut self, path: &Path) -> Bytes {
        let mut total = Bytes::default();
        let root = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(err) => {
                if err.kind() != std::io::ErrorKind::NotFound {
                    self.incomplete = true;
                }
                return total;
            }
        };
        let device = root.dev();
        let mut stack = vec![(path.to_path_buf(), root)];
        while let Some((path, meta)) = stack.pop() {
            // Another filesystem (a mount point): `du -x` leaves it out.
            if meta.dev() != device {
                continue;
            }
            if !self.seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total.allocated += meta.blocks() * 512;
            total.apparent += meta.size();
            if !meta.is_dir() {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&path) else {
                self.incomplete = true;
                continue;
            };
            for entry in entries {
                match entry.and_then(|entry| {
                    let meta = std::fs::symlink_metadata(entry.path())?;
                    Ok((entry.path(), meta))
                }) {
                    Ok(child) => stack.push(child),
                    Err(_) => self.incomplete = true,
                }
            }
        }
        total
    }
}

/// The data root walked once, its bytes filed by owner: the directory of the
/// container, layer or image record each entry belongs to (for example
/// `overlay2/<cache-id>`, `containers/<id>`, `image/overlay2/layerdb/sha256/<chain>`),
/// or the top-level directory for anything else. Each inode counts once, for the
/// first owner it is found under.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Keyed by the owner's path relative to the root, `/`-separated: the
    /// walk's own slots, kept as they are (a copy into a map of their own was
    /// 10 MB at 11,000 containers).
    owners: Slots,
    pub(crate) total: Bytes,
    pub(crate) incomplete: bool,
    /// The engine's cross-references between its records, read with the walk.
    pub(crate) refs: Refs,
}

/// The owner of a path (given as its components relative to the data root), and
/// whether that owner holds for everything below it too. Paths above an owner's
/// level (`image/overlay2/layerdb`, say) own themselves, and their children are
/// looked at again.
fn owner_of(parts: &[&str]) -> (String, bool) {
    let depth = match parts {
        ["overlay2", "l", ..] => Some(3),
        ["overlay2" | "containers" | "volumes", ..] => Some(2),
        ["image", _, "layerdb", "sha256" | "mounts", ..] => Some(5),
        ["image", _, "imagedb", "content" | "metadata", "sha256", ..] => Some(6),
        ["image", ..] => None,
        // The containerd image store: each blob file and snapshot directory.
        [
            "containerd",
            "daemon",
            "io.containerd.content.v1.content",
            "blobs",
            "sha256",
            ..,
        ] => Some(6),
        [
            "containerd",
            "daemon",
            "io.containerd.snapshotter.v1.overlayfs",
            "snapshots",
            ..,
        ] => Some(5),
        [
            "containerd",
            "daemon",
            "io.containerd.content.v1.content" | "io.containerd.snapshotter.v1.overlayfs",
            ..,
        ] => None,
        ["containerd", "daemon", ..] => Some(3),
        ["containerd", ..] => None,
        _ => Some(1),
    };
    match depth {
        Some(depth) if parts.len() >= depth => (parts[..depth].join("/"), true),
        _ => (parts.join("/"), false),
    }
}

/// The overlay2 driver's short names for its layers: each a symlink
/// `l/<short>` → `../<cache-id>/diff` (moby v20.10.24 and v26.1.5
/// `daemon/graphdriver/overlay2/overlay.go`, `create` and `Remove`, which
/// makes and removes it with the layer's directory).
const LINKS: &str = "overlay2/l";

/// The owner a short-name link belongs to: the layer directory it points into
/// (`overlay2/<cache-id>`), whose removal takes it. Filed there, the 22,000
/// links of 11,000 containers need no owners of their own nor a map from
/// layer to link. Anything else (a link elsewhere) keeps its own owner.
fn layer_of_link(target: &[u8]) -> Option<String> {
    let cache_id = std::str::from_utf8(target)
        .ok()?
        .strip_prefix("../")?
        .strip_suffix("/diff")?;
    (!cache_id.is_empty() && !cache_id.contains('/') && cache_id != ".." && cache_id != "l")
        .then(|| format!("overlay2/{cache_id}"))
}

/// A directory whose subdirectories the walk has still to visit: its name, its
/// parent, and (near the top) its open handle, through which they are opened.
struct DirNode {
    name: CString,
    parent: Option<Rc<DirNode>>,
    depth: usize,
    /// `None` from [`HANDLE_DEPTH`] down, where subdirectories are opened by path
    /// instead, so that a tree nested thousands deep cannot use up the process's
    /// descriptors.
    dir: Option<Dir>,
}

/// Directories above this depth keep their handle while their subdirectories
/// are visited.
pub(super) const HANDLE_DEPTH: usize = 48;

impl DirNode {
    /// The path of this directory relative to the walk's root.
    fn relative(&self) -> PathBuf {
        let mut names = Vec::with_capacity(self.depth);
        let mut node = Some(self);
        while let Some(dir) = node {
            if dir.parent.is_some() {
                names.push(OsStr::from_bytes(dir.name.as_bytes()));
            }
            node = dir.parent.as_deref();
        }
        names.iter().rev().collect()
    }
}

/// Opens a directory without following a symlink: relative to its parent's
/// handle when the parent keeps one, by its full path otherwise.
fn open_dir(root: &Path, parent: Option<&DirNode>, name: &CStr) -> Option<Dir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match parent {
        Some(DirNode { dir: Some(dir), .. }) => {
            rustix::fs::openat(dir.fd().ok()?, name, flags, Mode::empty()).ok()?
        }
        Some(parent) => {
            let path = root
                .join(parent.relative())
                .join(OsStr::from_bytes(name.to_bytes()));
            rustix::fs::open(&path, flags, Mode::empty()).ok()?
        }
        None => rustix::fs::open(root, flags, Mode::empty()).ok()?,
    };
    Dir::new(fd).ok()
}

/// One entry of a directory as the walk counts it.
struct Entry<'a> {
    name: &'a CStr,
    bytes: Bytes,
    is_dir: bool,
    /// Its inode, when it has more than one link.
    linked: Option<u64>,
    stamp: Stamp,
    /// Where it points, when it is a symlink and the walk asked (`read_links`).
    target: Option<Vec<u8>>,
}

/// What an entry's `lstat` found and, for a symlink when the walk asked
/// (`read_links`), where it points.
struct Looked {
    stat: rustix::fs::Stat,
    target: Option<Vec<u8>>,
}

/// Looks at the entry `name` of the directory `fd` without following it.
fn look(fd: BorrowedFd<'_>, name: &CStr, read_links: bool) -> Option<Looked> {
    let stat = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let target = (read_links && FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
        .then(|| rustix::fs::readlinkat(fd, name, Vec::new()).ok())
        .flatten()
        .map(CString::into_bytes);
    Some(Looked { stat, target })
}

/// How many entries of one directory the top of the walk reads before it
/// looks at them, several threads at once: the top-level directories of a big
/// host hold tens of thousands (`overlay2/`, its links, `containers/`), and
/// with the page cache dropped each look waits on the disk (measured at
/// 11,000 containers, first run, page cache dropped: see the README's
/// benchmark). Bounded, so that a huge directory costs no more memory than
/// one batch (about 200 bytes an entry).
const BATCH: usize = 1024;

/// How [`each_entry`] looks at a directory's entries.
#[derive(Clone, Copy)]
enum Looking {
    /// One at a time, as each is read: the subtrees, already walked by
    /// several threads.
    OneByOne,
    /// In batches, several threads at once (the top of the walk); symlinks
    /// say where they point when `read_links`.
    Batched { read_links: bool },
}

/// Reads `dir` and calls `each` for every entry the walk counts: on this
/// filesystem (`du -x`), each directory and multiply-linked inode once
/// (`seen`), in the order the directory lists them. Sets `incomplete` when
/// something could not be read.
fn each_entry(
    dir: &mut Dir,
    device: u64,
    looking: Looking,
    seen: &mut HashSet<u64>,
    incomplete: &mut bool,
    mut each: impl FnMut(Entry<'_>),
) {
    let Looking::Batched { read_links } = looking else {
        while let Some(entry) = dir.read() {
            let Ok(entry) = entry else {
                *incomplete = true;
                break;
            };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let looked = dir.fd().ok().and_then(|fd| look(fd, name, false));
            count(name, looked, device, seen, incomplete, &mut each);
        }
        return;
    };
    let mut names: Vec<CString> = Vec::new();
    let mut ended = false;
    while !ended {
        names.clear();
        while names.len() < BATCH {
            match dir.read() {
                None => {
                    ended = true;
                    break;
                }
                Some(Err(_)) => {
                    *incomplete = true;
                    ended = true;
                    break;
                }
                Some(Ok(entry)) => {
                    let name = entry.file_name();
                    if name != c"." && name != c".." {
                        names.push(name.to_owned());
                    }
                }
            }
        }
        let Ok(fd) = dir.fd() else {
            *incomplete |= !names.is_empty();
            return;
        };
        let look_all = |names: &[CString]| -> Vec<Option<Looked>> {
            names
                .iter()
                .map(|name| look(fd, name, read_links))
                .collect()
        };
        // A small batch is looked at here, one entry at a time (`in_chunks`).
        for (chunk, looked) in readers::in_chunks(&names, look_all) {
            let looked = looked.unwrap_or_else(|| chunk.iter().map(|_| None).collect());
            for (name, looked) in chunk.iter().zip(looked) {
                count(name, looked, device, seen, incomplete, &mut each);
            }
        }
    }
}

/// Calls `each` for the entry `name` unless the walk leaves it out (another
/// filesystem, an inode already counted); `None`: it could not be looked at.
fn count(
    name: &CStr,
    looked: Option<Looked>,
    device: u64,
    seen: &mut HashSet<u64>,
    incomplete: &mut bool,
    each: &mut impl FnMut(Entry<'_>),
) {
    let Some(Looked { stat, target }) = looked else {
        *incomplete = true;
        return;
    };
    // Another filesystem (a mount point): `du -x` leaves it out.
    if stat.st_dev != device {
        return;
    }
    let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
    // Every entry counted is on `device`: its inode number says which.
    let inode = stat.st_ino;
    // Hard links count once; a directory seen twice (a bind mount within
    // the same filesystem) is not entered again.
    if (is_dir || stat.st_nlink > 1) && !seen.insert(inode) {
        return;
    }
    each(Entry {
        target,
        name,
        bytes: Bytes {
            allocated: u64::try_from(stat.st_blocks).unwrap_or(0) * 512,
            apparent: u64::try_from(stat.st_size).unwrap_or(0),
        },
        is_dir,
        linked: (!is_dir && stat.st_nlink > 1).then_some(inode),
        stamp: Stamp {
            ino: stat.st_ino,
            ctime: nanos(i128::from(stat.st_ctime), i128::from(stat.st_ctime_nsec)),
            mtime: nanos(i128::from(stat.st_mtime), i128::from(stat.st_mtime_nsec)),
        },
    });
}

/// A time in nanoseconds since the epoch, from its seconds and nanoseconds
/// (the last representable one after 2262).
fn nanos(seconds: i128, nanoseconds: i128) -> i64 {
    i64::try_from(seconds * 1_000_000_000 + nanoseconds).unwrap_or(i64::MAX)
}

/// A directory whose whole subtree belongs to one owner (a container's
/// directory, a layer's): walked on its own, by one of several threads.
struct Task {
    owner: usize,
    /// Its path relative to the root, when that is not its owner's key (a
    /// name that is not UTF-8 on the way): the owner's directory is the task.
    path: Option<Box<Path>>,
    /// Its stamp, when its size is kept for the next run (under its owner's
    /// key) because it cannot change. Boxed: about half the tasks keep none.
    keep: Option<Box<Stamp>>,
}

impl Task {
    /// The directory to walk, relative to the root.
    fn path<'a>(&'a self, slots: &'a Slots) -> &'a Path {
        self.path
            .as_deref()
            .unwrap_or_else(|| Path::new(&*slots.bytes[self.owner].0))
    }
}

/// What one subtree holds (not counting its top directory, which the parent's
/// walk counted), and its inodes with more than one link, to be counted once
/// across subtrees.
#[derive(Default)]
struct Subtree {
    bytes: Bytes,
    links: Vec<(u64, Bytes)>,
    incomplete: bool,
}

/// At most how many threads walk subtrees at once. A cold page cache makes the
/// walk wait on the disk for each directory and inode; several walkers keep
/// several reads in flight (measured on 37,000 entries with the cache dropped:
/// `du -s` 1.2 s, 8 parallel walkers 0.6 s, 16 walkers 0.5 s).
const WALKERS: usize = 8;

/// How often the walk looks at whether its walkers wait on the disk.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

/// How long this thread has run on a CPU and waited for one, in nanoseconds,
/// from `/proc/thread-self/schedstat` (opened once per thread).
struct SchedClock {
    file: Option<std::os::fd::OwnedFd>,
}

impl SchedClock {
    fn open() -> SchedClock {
        let file = rustix::fs::open(
            "/proc/thread-self/schedstat",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        SchedClock { file }
    }

    /// (on a CPU, waiting for one). The first is the thread's CPU clock, exact
    /// at any moment (schedstat's own figure lags by up to a scheduler tick);
    /// the second schedstat's run delay, which changes only while the thread is
    /// off a CPU; without schedstat, no wait.
    fn read(&self) -> (u64, u64) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let on_cpu = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec).unwrap_or(0);
        let mut buf = [0u8; 96];
        let queued = self.file.as_ref().and_then(|file| {
            let len = rustix::io::pread(file, &mut buf, 0).ok()?;
            let text = std::str::from_utf8(buf.get(..len)?).ok()?;
            text.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        (on_cpu, queued.unwrap_or(0))
    }
}

/// Walks `tasks`; the results come in the tasks' order.
///
/// One walker starts. With a warm page cache the walk is CPU work, and more
/// walkers only take the cores from the engine, which is computing
/// `/system/df` at the same time (measured at 1,000 containers, warm: the dry
/// run 0.149 s with 8 walkers, 0.122 s with one). Each walker notes, every
/// [`CHECK_EVERY`], how long it ran, waited for a CPU and was blocked (the
/// rest: waiting on the disk). While the walkers have been blocked for more
/// than half as long as they ran (a cold cache: about as long; warm: a few
/// percent), their number doubles, up to [`WALKERS`]. Waiting for a CPU (a
/// busy host) does not add walkers.
fn walk_in_parallel(
    root: &Path,
    tasks: &[Task],
    slots: &Slots,
    device: u64,
) -> impl Iterator<Item = Subtree> + use<> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let ran = AtomicU64::new(0);
    let blocked = AtomicU64::new(0);
    // Each task's bytes; the few subtrees with a hard-linked file or
    // something unreadable apart, whole (a slot holding any subtree for each
    // task was 2.5 MB at 11,000 containers).
    let sums: Vec<[AtomicU64; 2]> = tasks.iter().map(|_| Default::default()).collect();
    let rare: std::sync::Mutex<Vec<(usize, Subtree)>> = std::sync::Mutex::default();
    let walker = || {
        let clock = SchedClock::open();
        let mut since = (std::time::Instant::now(), clock.read());
        let note = |since: &mut (std::time::Instant, (u64, u64))| {
            let now = (std::time::Instant::now(), clock.read());
            let took = u64::try_from(now.0.duration_since(since.0).as_nanos()).unwrap_or(0);
            let on_cpu = now.1.0.saturating_sub(since.1.0);
            let queued = now.1.1.saturating_sub(since.1.1);
            ran.fetch_add(on_cpu, Ordering::Relaxed);
            blocked.fetch_add(took.saturating_sub(on_cpu + queued), Ordering::Relaxed);
            *since = now;
        };
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(task) = tasks.get(at) else { break };
            let subtree = walk_subtree(&root.join(task.path(slots)), device);
            if subtree.links.is_empty() && !subtree.incomplete {
                sums[at][0].store(subtree.bytes.allocated, Ordering::Relaxed);
                sums[at][1].store(subtree.bytes.apparent, Ordering::Relaxed);
            } else {
                rare.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((at, subtree));
            }
            if since.0.elapsed() >= CHECK_EVERY {
                note(&mut since);
            }
        }
    };
    std::thread::scope(|scope| {
        if tasks.is_empty() {
            return;
        }
        let mut walkers = 1;
        scope.spawn(walker);
        while walkers < WALKERS.min(tasks.len()) && next.load(Ordering::Relaxed) < tasks.len() {
            std::thread::sleep(CHECK_EVERY);
            // Over the whole walk so far, so that one slow moment does not count.
            if 2 * blocked.load(Ordering::Relaxed) > ran.load(Ordering::Relaxed) {
                let more = walkers.min(WALKERS - walkers);
                for _ in 0..more {
                    scope.spawn(walker);
                }
                walkers += more;
            }
        }
    });
    let mut rare = rare
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    rare.sort_unstable_by_key(|(at, _)| std::cmp::Reverse(*at));
    sums.into_iter()
        .enumerate()
        .map(move |(at, [allocated, apparent])| {
            if rare.last().is_some_and(|(next, _)| *next == at) {
                return rare.pop().map(|(_, subtree)| subtree).unwrap_or_default();
            }
            Subtree {
                bytes: Bytes {
                    allocated: allocated.into_inner(),
                    apparent: apparent.into_inner(),
                },
                ..Subtree::default()
            }
        })
}

/// Everything below `top`, as `du -s -x` counts it, through directory handles.
fn walk_subtree(top: &Path, device: u64) -> Subtree {
    let mut subtree = Subtree::default();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut stack: Vec<(CString, Option<Rc<DirNode>>)> = vec![(CString::default(), None)];
    let mut subdirs: Vec<CString> = Vec::new();
    while let Some((name, parent)) = stack.pop() {
        let Some(mut dir) = open_dir(top, parent.as_deref(), &name) else {
            subtree.incomplete = true;
            continue;
        };
        let depth = parent.as_ref().map_or(0, |parent| parent.depth + 1);
        each_entry(
            &mut dir,
            device,
            Looking::OneByOne,
            &mut seen,
            &mut subtree.incomplete,
            |entry| {
                subtree.bytes += entry.bytes;
                if entry.is_dir {
                    subdirs.push(entry.name.to_owned());
                } else if let Some(inode) = entry.linked {
                    subtree.links.push((inode, entry.bytes));
                }
            },
        );
        if subdirs.is_empty() {
            continue;
        }
        let node = Rc::new(DirNode {
            name,
            parent,
            depth,
            dir: (depth < HANDLE_DEPTH).then_some(dir),
        });
        for name in subdirs.drain(..) {
            stack.push((name, Some(Rc::clone(&node))));
        }
    }
    subtree
}

/// A subdirectory still to visit: its name, its parent, and the owner it hands
/// down when that is settled.
struct Pending {
    name: CString,
    parent: Option<Rc<DirNode>>,
    owner: Option<usize>,
}

/// Sizes the walk may take from an earlier run instead of walking.
pub(crate) struct Reuse<'a> {
    /// Whether the directory of an owner key cannot change while it exists.
    pub(crate) unchanging: &'a dyn Fn(&str) -> bool,
    /// Taken by the walk: each size reused stays, under its owner's key, as
    /// one of the sizes kept for the next run, and what is not reused is
    /// dropped before the subtrees are walked.
    pub(crate) known: Sizes,
}

/// One walk of the data root: its index, the sizes of every unchanging owner
/// for the next run, and whether those differ from the sizes it was given.
pub(crate) struct Walked {
    pub(crate) index: Index,
    pub(crate) fresh: Sizes,
    pub(crate) changed: bool,
}

impl Walked {
    /// The root could not be read: nothing measured, nothing kept.
    fn unreadable(fresh: Sizes, known: &Sizes) -> Walked {
        Walked {
            index: Index {
                incomplete: true,
                ..Index::default()
            },
            fresh,
            changed: !known.entries.is_empty(),
        }
    }
}

/// Owners as slots, so that each entry adds to a slot instead of hashing a
/// path. Each entry the top of the walk files opens a slot of its own: an
/// owner is one directory (or file), found once, except where names that are
/// not UTF-8 make two paths read alike. When the walk ends the slots are
/// sorted by key, a key found twice is merged into one slot, and owners are
/// looked up by binary search (a map from key to slot, kept for lookups during
/// the walk, was 3.3 MB at 11,000 containers, whose walk finds some 66,000
/// owners). The index keeps them; a plan's measured keys share their names.
#[derive(Debug, Default)]
struct Slots {
    bytes: Vec<(Arc<str>, Bytes)>,
    /// During the walk, the slots of layer directories, for their short-name
    /// links to find.
    findable: HashMap<Arc<str>, usize>,
}

impl Slots {
    /// A new slot for `owner`; `findable` for [`Slots::find_or_open`].
    fn open(&mut self, owner: String, findable: bool) -> usize {
        let slot = self.bytes.len();
        let owner: Arc<str> = Arc::from(owner);
        if findable {
            self.findable.entry(Arc::clone(&owner)).or_insert(slot);
        }
        self.bytes.push((owner, Bytes::default()));
        slot
    }

    /// The slot of a top-level `entry` of the directory at `relative` (`None`:
    /// the root), and whether its owner holds for everything below it.
    /// `findable` as for [`Slots::open`].
    fn of_entry(
        &mut self,
        relative: Option<&Path>,
        entry: &Entry<'_>,
        findable: bool,
    ) -> (usize, bool) {
        if let Some(layer) = entry.target.as_deref().and_then(layer_of_link) {
            return (self.find_or_open(layer), true);
        }
        let child = relative
            .unwrap_or(Path::new(""))
            .join(OsStr::from_bytes(entry.name.to_bytes()));
        let parts: Vec<&str> = child.iter().filter_map(|part| part.to_str()).collect();
        let (owner, settled) = owner_of(&parts);
        (self.open(owner, findable), settled)
    }

    /// The findable slot of `owner`, or a new one.
    fn find_or_open(&mut self, owner: String) -> usize {
        match self.findable.get(owner.as_str()) {
            Some(slot) => *slot,
            None => self.open(owner, false),
        }
    }

    /// The slots sorted by key, each key once (the bytes of a key found twice
    /// added up), and no spare capacity.
    fn settle(self) -> Slots {
        let Slots { mut bytes, .. } = self;
        bytes.sort_unstable_by(|(a, _), (b, _)| a.as_ref().cmp(b.as_ref()));
        let mut merged: Vec<(Arc<str>, Bytes)> = Vec::with_capacity(bytes.len());
        for (key, bytes) in bytes {
            match merged.last_mut() {
                Some((last, sum)) if *last == key => *sum += bytes,
                _ => merged.push((key, bytes)),
            }
        }
        merged.shrink_to_fit();
        Slots {
            bytes: merged,
            ..Slots::default()
        }
    }

    /// The slot of `key`, once settled.
    fn find(&self, key: &str) -> Option<usize> {
        self.bytes
            .binary_search_by(|(owner, _)| owner.as_ref().cmp(key))
            .ok()
    }

    /// The slots become the index's owners; the total is their sum.
    fn file_into(self, index: &mut Index) {
        for (_, bytes) in &self.bytes {
            index.total += *bytes;
        }
        index.owners = self.settle();
    }
}

/// The subdirectories found in `node` go on the stack, holding the open
/// directory near the top for opening them relative to it.
fn push_subdirs(
    stack: &mut Vec<Pending>,
    node: DirNode,
    dir: Dir,
    subdirs: &mut Vec<(CString, Option<usize>)>,
) {
    if subdirs.is_empty() {
        return;
    }
    let node = Rc::new(DirNode {
        dir: (node.depth < HANDLE_DEPTH).then_some(dir),
        ..node
    });
    for (name, owner) in subdirs.drain(..) {
        stack.push(Pending {
            name,
            parent: Some(Rc::clone(&node)),
            owner,
        });
    }
}

/// Walks the single-owner subtrees in parallel and adds each to its owner,
/// keeping the sizes of unchanging ones for the next run. Hard links count
/// once across subtrees too: the first subtree (in the order they were found)
/// keeps an inode's bytes; `links` starts with the inodes the top walk saw.
/// Returns whether it kept any size.
fn add_subtrees(
    root: &Path,
    tasks: &[Task],
    mut links: HashSet<u64>,
    device: u64,
    slots: &mut Slots,
    index: &mut Index,
    fresh: &mut Sizes,
) -> bool {
    let mut kept = false;
    let walked = walk_in_parallel(root, tasks, slots, device);
    for (task, subtree) in tasks.iter().zip(walked) {
        let owner = task.owner;
        index.incomplete |= subtree.incomplete;
        if let Some(stamp) = task.keep.as_deref()
            && subtree.links.is_empty()
            && !subtree.incomplete
        {
            fresh.entries.insert(
                Arc::clone(&slots.bytes[owner].0),
                cache::Entry::new(*stamp, subtree.bytes),
            );
            kept = true;
        }
        let mut bytes = subtree.bytes;
        for (inode, linked) in subtree.links {
            if !links.insert(inode) {
                bytes.allocated -= linked.allocated.min(bytes.allocated);
                bytes.apparent -= linked.apparent.min(bytes.apparent);
            }
        }
        slots.bytes[owner].1 += bytes;
    }
    kept
}

impl Index {
    /// Walks the whole data root, as `du -s -x` would.
    #[cfg(test)]
    pub(crate) fn build(root: &Path) -> Index {
        Index::build_reusing(
            root,
            Reuse {
                unchanging: &|_| false,
                known: Sizes::default(),
            },
        )
        .index
    }

    /// Walks the whole data root, as `du -s -x` would, except the subtrees of
    /// `reuse.unchanging` owners whose size `reuse.known` has for the same
    /// directory (same inode and times): those count with that size. Returns
    /// the sizes of every unchanging owner found, reused or walked, for the next
    /// run. A subtree with a hard-linked file is never kept, so that a link it
    /// shares with another owner still counts once.
    ///
    /// Entries are looked at through their directory's open handle, and only
    /// directories and inodes with more than one link are remembered, so that a
    /// walk of tens of thousands of entries costs about what `du` does.
    pub(crate) fn build_reusing(root: &Path, reuse: Reuse<'_>) -> Walked {
        let mut index = Index::default();
        let mut fresh = cache::RootId::of(root).map(Sizes::new).unwrap_or_default();
        let Reuse {
            unchanging,
            mut known,
        } = reuse;
        let Ok(meta) = std::fs::symlink_metadata(root) else {
            return Walked::unreadable(fresh, &known);
        };
        // The keys of the sizes reused (shared with their owners).
        let mut reused: Vec<Arc<str>> = Vec::new();
        let device = meta.dev();
        let mut slots = Slots::default();
        // Inode numbers: everything counted is on the root's filesystem.
        let mut seen: HashSet<u64> = HashSet::from([meta.ino()]);
        let root_slot = slots.open(String::new(), false);
        slots.bytes[root_slot].1 += bytes_of(&meta);
        let mut stack = vec![Pending {
            name: CString::default(),
            parent: None,
            owner: None,
        }];
        let mut subdirs: Vec<(CString, Option<usize>)> = Vec::new();
        let mut tasks: Vec<Task> = Vec::new();
        while let Some(Pending {
            name,
            parent,
            owner: inherited,
        }) = stack.pop()
        {
            let Some(mut dir) = open_dir(root, parent.as_deref(), &name) else {
                index.incomplete = true;
                continue;
            };
            let depth = parent.as_ref().map_or(0, |parent| parent.depth + 1);
            let node = DirNode {
                name,
                parent,
                depth,
                dir: None,
            };
            // Only needed to find owners, near the top.
            let relative = inherited.is_none().then(|| node.relative());
            let links = relative.as_deref() == Some(Path::new(LINKS));
            // The layer directories, which their links look up.
            let layers = relative.as_deref() == Some(Path::new("overlay2"));
            each_entry(
                &mut dir,
                device,
                Looking::Batched { read_links: links },
                &mut seen,
                &mut index.incomplete,
                |entry| {
                    let (owner, settled) = match (inherited, &relative) {
                        (Some(owner), _) => (owner, true),
                        (None, relative) => slots.of_entry(relative.as_deref(), &entry, layers),
                    };
                    slots.bytes[owner].1 += entry.bytes;
                    if entry.is_dir {
                        match (&relative, settled) {
                            // A whole subtree with one owner: walked in parallel
                            // below, unless it cannot have changed since a run
                            // measured it.
                            (Some(relative), true) => {
                                let key = &slots.bytes[owner].0;
                                let keeps = unchanging(key);
                                if keeps && let Some(bytes) = known.reuse(key, &entry.stamp) {
                                    reused.push(Arc::clone(key));
                                    slots.bytes[owner].1 += bytes;
                                    return;
                                }
                                let path = relative.join(OsStr::from_bytes(entry.name.to_bytes()));
                                tasks.push(Task {
                                    path: (path.as_os_str().as_bytes() != key.as_bytes())
                                        .then(|| path.into_boxed_path()),
                                    owner,
                                    keep: keeps.then(|| Box::new(entry.stamp)),
                                });
                            }
                            _ => subdirs.push((entry.name.to_owned(), settled.then_some(owner))),
                        }
                    }
                },
            );
            push_subdirs(&mut stack, node, dir, &mut subdirs);
        }
        // What was not reused is not needed any more: it goes before the
        // subtrees are walked, and the sizes reused stay where they are for
        // the next run (moved into a new map they took 7.4 MB more at 11,000
        // containers; moved into a list first, 1.9 MB; their keys alone are
        // under 1 MB).
        reused.sort_unstable();
        let mut changed = known.keep_only(&reused);
        drop(reused);
        fresh.entries = std::mem::take(&mut known.entries);
        drop(known);
        fresh
            .entries
            .reserve(tasks.iter().filter(|task| task.keep.is_some()).count());
        changed |= add_subtrees(
            root, &tasks, seen, device, &mut slots, &mut index, &mut fresh,
        );
        slots.file_into(&mut index);
        Walked {
            index,
            fresh,
            changed,
        }
    }

    /// The bytes filed under the owner at `path` (absolute, under `root`): how
    /// tests compare the index with a plain walk of the same path.
    #[cfg(test)]
    pub(crate) fn owned(&self, root: &Path, path: &Path) -> Bytes {
        let relative = path.strip_prefix(root).unwrap_or(path);
        relative
            .to_str()
            .map(|key| self.owned_key(key))
            .unwrap_or_default()
    }

    /// Every owner the walk found, by key.
    pub(crate) fn owner_keys(&self) -> impl Iterator<Item = &str> {
        self.owners
            .bytes
            .iter()
            .filter(|(owner, bytes)| *bytes != Bytes::default() || !owner.is_empty())
            .map(|(owner, _)| &**owner)
    }

    /// The bytes filed under an owner key (its path relative to the root).
    pub(crate) fn owned_key(&self, key: &str) -> Bytes {
        self.owner(key).map(|(_, bytes)| bytes).unwrap_or_default()
    }

    /// An owner's key as the index holds it, and its bytes.
    pub(crate) fn owner(&self, key: &str) -> Option<(&str, Bytes)> {
        self.owner_slot(key)
            .map(|slot| (&*self.owners.bytes[slot].0, self.owners.bytes[slot].1))
    }

    /// How many owners the index has: slots are below this.
    pub(crate) fn owner_count(&self) -> usize {
        self.owners.bytes.len()
    }

    /// The slot of an owner key.
    pub(crate) fn owner_slot(&self, key: &str) -> Option<usize> {
        self.owners.find(key)
    }

    /// The key and bytes in a slot; the key shared, not copied.
    pub(crate) fn slot(&self, slot: usize) -> (&Arc<str>, Bytes) {
        let (key, bytes) = &self.owners.bytes[slot];
        (key, *bytes)
    }
}

/// The entries of a directory, as (path, name); none when it cannot be read.
pub(super) fn entries(dir: &Path) -> impl Iterator<Item = (PathBuf, String)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| {
            (
                entry.path(),
                entry.file_name().to_string_lossy().into_owned(),
            )
        })
}

pub(super) fn bytes_of(meta: &std::fs::Metadata) -> Bytes {
    Bytes {
        allocated: meta.blocks() * 512,
        apparent: meta.size(),
    }
}
