//! Measures bytes on disk under the data root, the way `du` does: allocated
//! blocks (and apparent sizes), each inode once however many hard links it has,
//! symlinks never followed, other filesystems never entered.
//!
//! Only the overlay2 layout is known here; with another storage driver, or a data
//! root this process cannot read (a remote engine, not root), there is no
//! [`Layout`] and every figure stays the engine's estimate.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::inventory::Inventory;
use crate::plan::{Kind, Measured, Plan};

/// Bytes as `du -s -B1` (allocated) and `du -sb` (apparent) count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bytes {
    pub allocated: u64,
    pub apparent: u64,
}

impl std::ops::AddAssign for Bytes {
    fn add_assign(&mut self, other: Bytes) {
        self.allocated += other.allocated;
        self.apparent += other.apparent;
    }
}

/// A walk that counts each inode once across all the paths it is given: the
/// plain reference the [`Index`] is checked against in tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Walk {
    seen: HashSet<(u64, u64)>,
    /// Some entry could not be read: the figures are lower bounds.
    pub incomplete: bool,
}

#[cfg(test)]
impl Walk {
    pub fn new() -> Walk {
        Walk::default()
    }

    /// What lies at `path`, a file or a whole tree; nothing when it does not exist.
    pub fn measure(&mut self, path: &Path) -> Bytes {
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
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(_) => {
                    self.incomplete = true;
                    continue;
                }
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
pub struct Index {
    owners: HashMap<PathBuf, Bytes>,
    pub total: Bytes,
    pub incomplete: bool,
}

/// The owner of a path (given as its components relative to the data root), and
/// whether that owner holds for everything below it too. Paths above an owner's
/// level (`image/overlay2/layerdb`, say) own themselves, and their children are
/// looked at again.
fn owner_of(parts: &[&str]) -> (PathBuf, bool) {
    let depth = match parts {
        ["overlay2", "l", ..] => Some(3),
        ["overlay2", ..] | ["containers", ..] | ["volumes", ..] => Some(2),
        ["image", _, "layerdb", "sha256" | "mounts", ..] => Some(5),
        ["image", _, "imagedb", "content" | "metadata", "sha256", ..] => Some(6),
        ["image", ..] => None,
        _ => Some(1),
    };
    match depth {
        Some(depth) if parts.len() >= depth => (parts[..depth].iter().collect(), true),
        _ => (parts.iter().collect(), false),
    }
}

impl Index {
    /// Walks the whole data root, as `du -s -x` would.
    pub fn build(root: &Path) -> Index {
        let mut index = Index::default();
        let Ok(meta) = std::fs::symlink_metadata(root) else {
            index.incomplete = true;
            return index;
        };
        let device = meta.dev();
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        // (path, metadata, the owner it inherits when that is settled)
        let mut stack: Vec<(PathBuf, std::fs::Metadata, Option<PathBuf>)> =
            vec![(root.to_path_buf(), meta, None)];
        while let Some((path, meta, inherited)) = stack.pop() {
            if meta.dev() != device || !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            let (owner, settled) = match inherited {
                Some(owner) => (owner, true),
                None => {
                    let relative = path.strip_prefix(root).unwrap_or(&path);
                    let parts: Vec<&str> = relative.iter().filter_map(|c| c.to_str()).collect();
                    owner_of(&parts)
                }
            };
            let bytes = Bytes {
                allocated: meta.blocks() * 512,
                apparent: meta.size(),
            };
            index.total += bytes;
            *index.owners.entry(owner.clone()).or_default() += bytes;
            if !meta.is_dir() {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&path) else {
                index.incomplete = true;
                continue;
            };
            for entry in entries {
                // DirEntry::metadata stats relative to the open directory.
                match entry.and_then(|entry| Ok((entry.path(), entry.metadata()?))) {
                    Ok((child, child_meta)) => {
                        stack.push((child, child_meta, settled.then(|| owner.clone())));
                    }
                    Err(_) => index.incomplete = true,
                }
            }
        }
        index
    }

    /// The bytes filed under the owner at `path` (absolute, under `root`).
    pub fn owned(&self, root: &Path, path: &Path) -> Bytes {
        let relative = path.strip_prefix(root).unwrap_or(path);
        self.owners.get(relative).copied().unwrap_or_default()
    }
}

/// Where the engine keeps what, for the overlay2 storage driver.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    /// The layout of a data root this process can read, or `None`.
    pub fn open(data_root: &str, storage_driver: &str) -> Option<Layout> {
        if storage_driver != "overlay2" || data_root.is_empty() {
            return None;
        }
        let layout = Layout {
            root: PathBuf::from(data_root),
        };
        // Reading the layer database is what measurement needs; it is root-only.
        std::fs::read_dir(layout.layerdb().join("sha256")).ok()?;
        Some(layout)
    }

    fn image_dir(&self) -> PathBuf {
        self.root.join("image").join("overlay2")
    }

    fn layerdb(&self) -> PathBuf {
        self.image_dir().join("layerdb")
    }

    fn overlay(&self) -> PathBuf {
        self.root.join("overlay2")
    }

    fn read_trimmed(path: &Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        let text = text.trim();
        (!text.is_empty() && !text.contains('/') && text != "..").then(|| text.to_string())
    }

    /// An overlay2 layer directory and its short-name link in `overlay2/l/`.
    fn overlay_paths(&self, cache_id: &str) -> Vec<PathBuf> {
        let dir = self.overlay().join(cache_id);
        let mut paths = vec![dir.clone()];
        if let Some(link) = Layout::read_trimmed(&dir.join("link")) {
            paths.push(self.overlay().join("l").join(link));
        }
        paths
    }

    /// Everything removing a container frees: its directory (config, logs), its
    /// writable and init layers, and its mount record in the layer database.
    pub fn container_paths(&self, id: &str) -> Vec<PathBuf> {
        let mounts = self.layerdb().join("mounts").join(id);
        let mut paths = vec![self.root.join("containers").join(id)];
        for file in ["mount-id", "init-id"] {
            if let Some(cache_id) = Layout::read_trimmed(&mounts.join(file)) {
                paths.extend(self.overlay_paths(&cache_id));
            }
        }
        paths.push(mounts);
        paths
    }

    /// Everything one image layer takes: its layer database entry and its
    /// overlay2 directory.
    pub fn layer_paths(&self, chain_id: &str) -> Vec<PathBuf> {
        let hex = chain_id.strip_prefix("sha256:").unwrap_or(chain_id);
        let entry = self.layerdb().join("sha256").join(hex);
        let mut paths = Vec::new();
        if let Some(cache_id) = Layout::read_trimmed(&entry.join("cache-id")) {
            paths.extend(self.overlay_paths(&cache_id));
        }
        paths.push(entry);
        paths
    }

    /// An image's own records: its config and its metadata directory.
    pub fn image_paths(&self, image_id: &str) -> Vec<PathBuf> {
        let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
        let imagedb = self.image_dir().join("imagedb");
        vec![
            imagedb.join("content").join("sha256").join(hex),
            imagedb.join("metadata").join("sha256").join(hex),
        ]
    }

    /// Bytes of everything removing the container frees, from the index.
    pub fn container_bytes(&self, index: &Index, id: &str) -> Bytes {
        let mut bytes = Bytes::default();
        for path in self.container_paths(id) {
            bytes += index.owned(&self.root, &path);
        }
        bytes
    }

    /// Bytes of one image layer (its overlay2 directory and database entry).
    pub fn layer_bytes(&self, index: &Index, chain_id: &str) -> Bytes {
        let mut bytes = Bytes::default();
        for path in self.layer_paths(chain_id) {
            bytes += index.owned(&self.root, &path);
        }
        bytes
    }

    /// A container's json-file logs, rotated ones included.
    pub fn log_bytes(&self, id: &str) -> Bytes {
        let mut bytes = Bytes::default();
        let dir = self.root.join("containers").join(id);
        let prefix = format!("{id}-json.log");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.filter_map(Result::ok) {
                if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                    continue;
                }
                if let Ok(meta) = entry.metadata() {
                    bytes += Bytes {
                        allocated: meta.blocks() * 512,
                        apparent: meta.size(),
                    };
                }
            }
        }
        bytes
    }

    /// Directories under `overlay2/` that no image layer, no container and no
    /// build cache record refers to: left by crashes or failed pulls. The engine
    /// never frees them; they are reported, never removed.
    pub fn orphans(&self, index: &Index, build_cache_ids: &HashSet<&str>) -> Vec<Orphan> {
        let mut referenced: HashSet<String> = HashSet::new();
        let layerdb = self.layerdb();
        let read_all = |dir: PathBuf, files: &[&str], into: &mut HashSet<String>| {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.filter_map(Result::ok) {
                    for file in files {
                        if let Some(id) = Layout::read_trimmed(&entry.path().join(file)) {
                            into.insert(id);
                        }
                    }
                }
            }
        };
        read_all(layerdb.join("sha256"), &["cache-id"], &mut referenced);
        read_all(
            layerdb.join("mounts"),
            &["mount-id", "init-id"],
            &mut referenced,
        );
        let Ok(entries) = std::fs::read_dir(self.overlay()) else {
            return Vec::new();
        };
        let mut orphans: Vec<Orphan> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let known = name == "l"
                    || referenced.contains(&name)
                    || build_cache_ids.contains(name.as_str());
                if known {
                    return None;
                }
                let modified = entry.metadata().ok().map(|meta| meta.mtime());
                Some(Orphan {
                    bytes: index.owned(&self.root, &entry.path()),
                    name,
                    modified,
                })
            })
            .collect();
        orphans.sort_by(|a, b| {
            b.bytes
                .allocated
                .cmp(&a.bytes.allocated)
                .then(a.name.cmp(&b.name))
        });
        orphans
    }

    /// Parent of each image that has one, from `imagedb/metadata/sha256/*/parent`.
    pub fn image_parents(&self) -> HashMap<String, String> {
        let metadata = self
            .image_dir()
            .join("imagedb")
            .join("metadata")
            .join("sha256");
        let Ok(entries) = std::fs::read_dir(&metadata) else {
            return HashMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let parent = std::fs::read_to_string(entry.path().join("parent")).ok()?;
                let child = format!("sha256:{}", entry.file_name().to_string_lossy());
                Some((child, parent.trim().to_string()))
            })
            .filter(|(_, parent)| !parent.is_empty())
            .collect()
    }

    /// The whole data root walked once, as `du -s -x` sees it, filed by owner.
    pub fn index(&self) -> Index {
        Index::build(&self.root)
    }
}

/// A directory under `overlay2/` that nothing refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub name: String,
    pub bytes: Bytes,
    /// Unix seconds of its last change.
    pub modified: Option<i64>,
}

/// What the plan's items take on disk, each measured once.
#[derive(Debug, Clone, Default)]
pub struct PlanOnDisk {
    /// Aligned with the plan's items.
    pub items: Vec<Option<Measured>>,
    /// Allocated bytes of each freed layer, by chain ID.
    pub layers: HashMap<String, u64>,
    /// The whole data root.
    pub data_root: Measured,
}

fn measured(bytes: Bytes, incomplete: bool) -> Measured {
    Measured {
        allocated: bytes.allocated,
        apparent: bytes.apparent,
        incomplete,
    }
}

/// Measures every planned item's own directories, and the data root, from one
/// walk of it (`index`). Images also count the records of the untagged parents
/// the engine removes with them.
pub fn measure_plan(
    layout: &Layout,
    index: &Index,
    plan: &Plan,
    inventory: &Inventory,
) -> PlanOnDisk {
    let parents = layout.image_parents();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (child, parent) in &parents {
        children
            .entry(parent.as_str())
            .or_default()
            .push(child.as_str());
    }
    let planned_containers: HashSet<&str> = plan
        .items_of(Kind::Container)
        .map(|item| item.id.as_str())
        .collect();
    let used: HashSet<&str> = inventory
        .containers
        .iter()
        .filter(|container| !planned_containers.contains(container.id.as_str()))
        .map(|container| container.image_id.as_str())
        .collect();
    let listed: HashSet<&str> = inventory
        .images
        .iter()
        .filter(|image| image.listed)
        .map(|image| image.id.as_str())
        .collect();
    let mut removed: HashSet<String> = plan
        .items_of(Kind::Image)
        .map(|item| item.id.clone())
        .collect();
    // A path two items share (a layer freed by two images) counts once.
    let mut counted: HashSet<PathBuf> = HashSet::new();
    let mut owned = |path: PathBuf| {
        if counted.insert(path.clone()) {
            index.owned(&layout.root, &path)
        } else {
            Bytes::default()
        }
    };

    let mut layers = HashMap::new();
    let items = plan
        .items
        .iter()
        .map(|item| {
            let mut bytes = Bytes::default();
            match item.kind {
                Kind::Container => {
                    for path in layout.container_paths(&item.id) {
                        bytes += owned(path);
                    }
                }
                Kind::Image => {
                    for layer in &item.frees_layers {
                        let mut layer_bytes = Bytes::default();
                        for path in layout.layer_paths(&layer.chain_id) {
                            layer_bytes += owned(path);
                        }
                        layers.insert(layer.chain_id.clone(), layer_bytes.allocated);
                        bytes += layer_bytes;
                    }
                    let mut image = Some(item.id.clone());
                    while let Some(id) = image {
                        for path in layout.image_paths(&id) {
                            bytes += owned(path);
                        }
                        // The engine goes on to an untagged parent that nothing
                        // else needs (hidden from the image list, no other child,
                        // no container), as `docker rmi` does.
                        image = parents.get(&id).cloned().filter(|parent| {
                            !listed.contains(parent.as_str())
                                && !used.contains(parent.as_str())
                                && children.get(parent.as_str()).is_none_or(|kids| {
                                    kids.iter().all(|kid| removed.contains(*kid))
                                })
                        });
                        if let Some(parent) = &image {
                            removed.insert(parent.clone());
                        }
                    }
                }
                Kind::Volume => {
                    bytes += owned(layout.root.join("volumes").join(&item.id));
                }
                // A local-source record keeps its files under overlay2/<id>; other
                // records live in layer directories the API does not name: the
                // engine's figure stands for those.
                Kind::BuildCache => {
                    let dir = layout.root.join("overlay2").join(&item.id);
                    if !dir.is_dir() {
                        return None;
                    }
                    bytes += owned(dir);
                }
                _ => return None,
            }
            Some(measured(bytes, index.incomplete))
        })
        .collect();
    PlanOnDisk {
        items,
        layers,
        data_root: measured(index.total, index.incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hard_links_once_and_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, vec![7u8; 10_000]).unwrap();
        std::fs::hard_link(&file, dir.path().join("again")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let mut walk = Walk::new();
        let bytes = walk.measure(dir.path());
        let dir_size = std::fs::metadata(dir.path()).unwrap().size();
        let link_size = "/etc".len() as u64;
        assert_eq!(bytes.apparent, dir_size + 10_000 + link_size);
        assert!(bytes.allocated >= 10_000);
        // Measuring again in the same walk adds nothing: everything was seen.
        assert_eq!(walk.measure(dir.path()), Bytes::default());
        assert!(!walk.incomplete);
    }

    #[test]
    fn a_missing_path_is_zero_and_complete() {
        let mut walk = Walk::new();
        assert_eq!(walk.measure(Path::new("/no/such/path")), Bytes::default());
        assert!(!walk.incomplete);
    }

    #[test]
    fn the_index_files_bytes_by_owner_and_matches_a_plain_walk() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        std::fs::create_dir_all(base.join("overlay2/abc/diff/etc")).unwrap();
        std::fs::write(base.join("overlay2/abc/diff/etc/big"), vec![1u8; 50_000]).unwrap();
        std::fs::create_dir_all(base.join("overlay2/l")).unwrap();
        std::os::unix::fs::symlink("../abc/diff", base.join("overlay2/l/SHORT")).unwrap();
        std::fs::create_dir_all(base.join("containers/c1")).unwrap();
        std::fs::write(base.join("containers/c1/log"), vec![2u8; 9_000]).unwrap();
        std::fs::create_dir_all(base.join("image/overlay2/layerdb/sha256/chain")).unwrap();
        std::fs::write(
            base.join("image/overlay2/layerdb/sha256/chain/size"),
            "50000",
        )
        .unwrap();
        let index = Index::build(base);
        assert_eq!(index.total, Walk::new().measure(base));
        let abc = index.owned(base, &base.join("overlay2/abc"));
        assert_eq!(abc, Walk::new().measure(&base.join("overlay2/abc")));
        assert_eq!(
            index.owned(base, &base.join("containers/c1")),
            Walk::new().measure(&base.join("containers/c1"))
        );
        assert_eq!(
            index.owned(base, &base.join("image/overlay2/layerdb/sha256/chain")),
            Walk::new().measure(&base.join("image/overlay2/layerdb/sha256/chain"))
        );
        assert!(index.owned(base, &base.join("overlay2/l/SHORT")).apparent > 0);
        assert!(!index.incomplete);
    }

    #[test]
    fn orphans_are_the_overlay2_dirs_nothing_refers_to() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let layerdb = base.join("image/overlay2/layerdb");
        std::fs::create_dir_all(layerdb.join("sha256/chain")).unwrap();
        std::fs::write(layerdb.join("sha256/chain/cache-id"), "layer1").unwrap();
        std::fs::create_dir_all(layerdb.join("mounts/c1")).unwrap();
        std::fs::write(layerdb.join("mounts/c1/mount-id"), "rw1").unwrap();
        std::fs::write(layerdb.join("mounts/c1/init-id"), "rw1-init").unwrap();
        for dir in [
            "layer1/diff",
            "rw1/diff",
            "rw1-init/diff",
            "l",
            "cachesnap/diff",
            "stray/diff",
        ] {
            std::fs::create_dir_all(base.join("overlay2").join(dir)).unwrap();
        }
        std::fs::write(base.join("overlay2/stray/diff/junk"), vec![0u8; 20_000]).unwrap();
        let layout = Layout::open(base.to_str().unwrap(), "overlay2").unwrap();
        let index = layout.index();
        let cache: HashSet<&str> = ["cachesnap"].into_iter().collect();
        let orphans = layout.orphans(&index, &cache);
        assert_eq!(orphans.len(), 1, "{orphans:?}");
        assert_eq!(orphans[0].name, "stray");
        assert!(orphans[0].bytes.apparent >= 20_000);
    }

    #[test]
    fn layout_paths_follow_the_overlay2_layout() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let layerdb = base.join("image/overlay2/layerdb");
        std::fs::create_dir_all(layerdb.join("sha256/abc")).unwrap();
        std::fs::write(layerdb.join("sha256/abc/cache-id"), "cache1").unwrap();
        std::fs::create_dir_all(base.join("overlay2/cache1")).unwrap();
        std::fs::write(base.join("overlay2/cache1/link"), "SHORT\n").unwrap();
        std::fs::create_dir_all(layerdb.join("mounts/c1")).unwrap();
        std::fs::write(layerdb.join("mounts/c1/mount-id"), "m1").unwrap();
        std::fs::write(layerdb.join("mounts/c1/init-id"), "m1-init").unwrap();
        let layout = Layout::open(base.to_str().unwrap(), "overlay2").unwrap();
        assert!(Layout::open(base.to_str().unwrap(), "btrfs").is_none());
        assert_eq!(
            layout.layer_paths("sha256:abc"),
            vec![
                base.join("overlay2/cache1"),
                base.join("overlay2/l/SHORT"),
                layerdb.join("sha256/abc"),
            ]
        );
        assert_eq!(
            layout.container_paths("c1"),
            vec![
                base.join("containers/c1"),
                base.join("overlay2/m1"),
                base.join("overlay2/m1-init"),
                layerdb.join("mounts/c1"),
            ]
        );
    }
}
