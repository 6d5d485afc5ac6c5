//! One walk of the data root, its bytes filed by owner ([`Index`]).

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use super::cache::{self, Sizes, Stamp};
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
    linked: Option<(u64, u64)>,
    stamp: Stamp,
}

/// Reads `dir` and calls `each` for every entry the walk counts: on this
/// filesystem (`du -x`), each directory and multiply-linked inode once
/// (`seen`). Sets `incomplete` when something could not be read.
fn each_entry(
    dir: &mut Dir,
    device: u64,
    seen: &mut HashSet<(u64, u64)>,
    incomplete: &mut bool,
    mut each: impl FnMut(Entry<'_>),
) {
    while let Some(entry) = dir.read() {
        let Ok(entry) = entry else {
            *incomplete = true;
            break;
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let Ok(stat) = dir
            .fd()
            .and_then(|fd| rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW))
        else {
            *incomplete = true;
            continue;
        };
        // Another filesystem (a mount point): `du -x` leaves it out.
        if stat.st_dev != device {
            continue;
        }
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        let inode = (stat.st_dev, stat.st_ino);
        // Hard links count once; a directory seen twice (a bind mount within
        // the same filesystem) is not entered again.
        if (is_dir || stat.st_nlink > 1) && !seen.insert(inode) {
            continue;
        }
        each(Entry {
            name,
            bytes: Bytes {
                allocated: u64::try_from(stat.st_blocks).unwrap_or(0) * 512,
                apparent: u64::try_from(stat.st_size).unwrap_or(0),
            },
            is_dir,
            linked: (!is_dir && stat.st_nlink > 1).then_some(inode),
            stamp: Stamp {
                ino: stat.st_ino,
                ctime: i128::from(stat.st_ctime) * 1_000_000_000 + i128::from(stat.st_ctime_nsec),
                mtime: i128::from(stat.st_mtime) * 1_000_000_000 + i128::from(stat.st_mtime_nsec),
            },
        });
    }
}

/// A directory whose whole subtree belongs to one owner (a container's
/// directory, a layer's): walked on its own, by one of several threads.
struct Task {
    path: PathBuf,
    owner: usize,
    /// Where its size is kept for the next run, when it cannot change.
    /// Boxed: most tasks have none, and a task is then 40 bytes, not 128.
    keep: Option<Box<(String, Stamp)>>,
}

/// What one subtree holds (not counting its top directory, which the parent's
/// walk counted), and its inodes with more than one link, to be counted once
/// across subtrees.
#[derive(Default)]
struct Subtree {
    bytes: Bytes,
    links: Vec<((u64, u64), Bytes)>,
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

/// Walks `tasks`; the results are in the tasks' order.
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
fn walk_in_parallel(tasks: &[Task], device: u64) -> Vec<Subtree> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    if tasks.is_empty() {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let ran = AtomicU64::new(0);
    let blocked = AtomicU64::new(0);
    let results: Vec<std::sync::Mutex<Option<Subtree>>> =
        tasks.iter().map(|_| std::sync::Mutex::new(None)).collect();
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
            let subtree = walk_subtree(&task.path, device);
            if let Ok(mut slot) = results[at].lock() {
                *slot = Some(subtree);
            }
            if since.0.elapsed() >= CHECK_EVERY {
                note(&mut since);
            }
        }
    };
    std::thread::scope(|scope| {
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
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner().ok().flatten().unwrap_or(Subtree {
                incomplete: true,
                ..Subtree::default()
            })
        })
        .collect()
}

/// Everything below `top`, as `du -s -x` counts it, through directory handles.
fn walk_subtree(top: &Path, device: u64) -> Subtree {
    let mut subtree = Subtree::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
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
    /// Owner keys of directories that cannot change while they exist.
    pub(crate) unchanging: &'a HashSet<String>,
    /// Taken by the walk: each size reused moves, key and all, into the sizes
    /// kept for the next run, and what is left is dropped before the
    /// subtrees are walked.
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
/// path. Each owner's name is kept once, shared by the list and the map (at
/// 11,000 containers the walk has some 66,000 owners). The index keeps them.
#[derive(Debug, Default)]
struct Slots {
    bytes: Vec<(Arc<str>, Bytes)>,
    slot_of: HashMap<Arc<str>, usize>,
}

impl Slots {
    fn of(&mut self, owner: String) -> usize {
        if let Some(slot) = self.slot_of.get(owner.as_str()) {
            return *slot;
        }
        let owner: Arc<str> = Arc::from(owner);
        self.bytes.push((Arc::clone(&owner), Bytes::default()));
        let slot = self.bytes.len() - 1;
        self.slot_of.insert(owner, slot);
        slot
    }

    /// The slots become the index's owners; the total is their sum.
    fn file_into(self, index: &mut Index) {
        for (_, bytes) in &self.bytes {
            index.total += *bytes;
        }
        index.owners = self;
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
    tasks: &[Task],
    mut links: HashSet<(u64, u64)>,
    device: u64,
    slots: &mut Slots,
    index: &mut Index,
    fresh: &mut Sizes,
) -> bool {
    let mut kept = false;
    for (task, subtree) in tasks.iter().zip(walk_in_parallel(tasks, device)) {
        index.incomplete |= subtree.incomplete;
        if let Some((key, stamp)) = task.keep.as_deref()
            && subtree.links.is_empty()
            && !subtree.incomplete
        {
            fresh
                .entries
                .insert(key.clone(), cache::Entry::new(*stamp, subtree.bytes));
            kept = true;
        }
        let mut bytes = subtree.bytes;
        for (inode, linked) in subtree.links {
            if !links.insert(inode) {
                bytes.allocated -= linked.allocated.min(bytes.allocated);
                bytes.apparent -= linked.apparent.min(bytes.apparent);
            }
        }
        slots.bytes[task.owner].1 += bytes;
    }
    kept
}

impl Index {
    /// Walks the whole data root, as `du -s -x` would.
    #[cfg(test)]
    pub(crate) fn build(root: &Path) -> Index {
        let nothing = HashSet::new();
        Index::build_reusing(
            root,
            Reuse {
                unchanging: &nothing,
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
        let device = meta.dev();
        let mut slots = Slots::default();
        let mut seen: HashSet<(u64, u64)> = HashSet::from([(meta.dev(), meta.ino())]);
        let root_slot = slots.of(String::new());
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
            each_entry(
                &mut dir,
                device,
                &mut seen,
                &mut index.incomplete,
                |entry| {
                    let (owner, settled) = match (inherited, &relative) {
                        (Some(owner), _) => (owner, true),
                        (None, relative) => {
                            let child = relative
                                .as_deref()
                                .unwrap_or(Path::new(""))
                                .join(OsStr::from_bytes(entry.name.to_bytes()));
                            let parts: Vec<&str> =
                                child.iter().filter_map(|part| part.to_str()).collect();
                            let (owner, settled) = owner_of(&parts);
                            (slots.of(owner), settled)
                        }
                    };
                    slots.bytes[owner].1 += entry.bytes;
                    if entry.is_dir {
                        match (&relative, settled) {
                            // A whole subtree with one owner: walked in parallel
                            // below, unless it cannot have changed since a run
                            // measured it.
                            (Some(relative), true) => {
                                let key = &*slots.bytes[owner].0;
                                let keeps = unchanging.contains(key);
                                if keeps && let Some((key, bytes)) = known.take(key, &entry.stamp) {
                                    slots.bytes[owner].1 += bytes;
                                    fresh
                                        .entries
                                        .insert(key, cache::Entry::new(entry.stamp, bytes));
                                    return;
                                }
                                let keep = keeps.then(|| key.to_string());
                                tasks.push(Task {
                                    path: root
                                        .join(relative)
                                        .join(OsStr::from_bytes(entry.name.to_bytes())),
                                    owner,
                                    keep: keep.map(|key| Box::new((key, entry.stamp))),
                                });
                            }
                            _ => subdirs.push((entry.name.to_owned(), settled.then_some(owner))),
                        }
                    }
                },
            );
            push_subdirs(&mut stack, node, dir, &mut subdirs);
        }
        // What was not reused is not needed any more: its memory goes before
        // the subtrees are walked.
        let mut changed = !known.entries.is_empty();
        drop(known);
        changed |= add_subtrees(&tasks, seen, device, &mut slots, &mut index, &mut fresh);
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
        self.owners
            .slot_of
            .get_key_value(key)
            .map(|(key, slot)| (&**key, self.owners.bytes[*slot].1))
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
