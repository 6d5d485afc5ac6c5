//! How the engine's records point at each other on disk: read by the layout
//! ([`super::overlay2`]) with the walk, kept in its [`super::walk::Index`].

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::containerd::Graph;

/// The image and layer records of the overlay2 driver, under the data root.
pub(crate) const IMAGE_DIR: &str = "image/overlay2";

/// The metadata of the image store the references come from.
#[derive(Debug, Default)]
pub(crate) enum Metadata {
    /// The overlay2 storage driver: its records are the fields of [`Refs`].
    #[default]
    Overlay2,
    /// The containerd image store: its collector's graph.
    Containerd(Box<Graph>),
    /// The containerd image store, whose metadata could not be read: why.
    ContainerdUnreadable(String),
}

impl Metadata {
    /// The containerd image store's graph, when it was read.
    pub(crate) fn graph(&self) -> Option<&Graph> {
        match self {
            Metadata::Containerd(graph) => Some(graph.as_ref()),
            _ => None,
        }
    }

    /// Whether these are the containerd image store's, read or not.
    pub(crate) fn is_containerd(&self) -> bool {
        !matches!(self, Metadata::Overlay2)
    }
}

/// How the engine's records point at each other on disk, read once: which
/// overlay2 directories a container's mount record and a layer's entry name,
/// and image parents.
#[derive(Debug, Default)]
pub(crate) struct Refs {
    /// Container ID → the cache IDs of its writable and init layers
    /// (`layerdb/mounts/<id>/mount-id`, `init-id`).
    pub(crate) mounts: HashMap<String, Vec<String>>,
    /// Layer chain ID (hex) → its cache ID (`layerdb/sha256/<chain>/cache-id`).
    pub(crate) layers: HashMap<String, String>,
    /// Image ID → its parent's (`imagedb/metadata/sha256/<id>/parent`).
    pub(crate) parents: HashMap<String, String>,
    /// Which image store's metadata these are: on the containerd image store,
    /// its collector's graph, or why it could not be read.
    pub(crate) metadata: Metadata,
}

impl Refs {
    /// Which owner keys have a size that stays right while their directory
    /// keeps its stamp (see [`super::cache`]): committed layers (their overlay2
    /// directory and layer record), the init layers and mount records of
    /// containers whose mount record is complete, and the writable layers of
    /// those containers while they are not mounted under the data root at
    /// `root`. Asked once per owner directory by the walk; borrows the records
    /// instead of spelling out every key (2.6 MB of text at 11,000
    /// containers).
    pub(crate) fn unchanging<'a>(&'a self, root: &'a Path) -> Unchanging<'a> {
        // A mount record is written once the container's layers are made, and
        // only its own small files are in it (so its stamp covers them too).
        let (init, writable): (Vec<&String>, Vec<&String>) = self
            .mounts
            .values()
            .filter(|ids| ids.len() == 2)
            .flatten()
            .partition(|id| id.ends_with("-init"));
        Unchanging {
            refs: self,
            root,
            dirs: self
                .layers
                .values()
                .chain(init)
                .map(String::as_str)
                .collect(),
            writable: writable.into_iter().map(String::as_str).collect(),
        }
    }
}

/// See [`Refs::unchanging`].
pub(crate) struct Unchanging<'a> {
    refs: &'a Refs,
    root: &'a Path,
    /// overlay2 directories: committed layers' and complete init layers'.
    dirs: HashSet<&'a str>,
    /// overlay2 directories: the writable layers of complete mount records.
    writable: HashSet<&'a str>,
}

impl Unchanging<'_> {
    /// Whether the size of the owner at `key` stays right while its directory
    /// keeps its stamp.
    pub(crate) fn contains(&self, key: &str) -> bool {
        match &self.refs.metadata {
            Metadata::Containerd(graph) => graph.unchanging(key),
            Metadata::ContainerdUnreadable(_) => false,
            Metadata::Overlay2 => {
                if let Some(dir) = key.strip_prefix("overlay2/") {
                    self.dirs.contains(dir) || (self.writable.contains(dir) && !self.mounted(dir))
                } else if let Some(records) = key
                    .strip_prefix(IMAGE_DIR)
                    .and_then(|rest| rest.strip_prefix("/layerdb/"))
                {
                    if let Some(chain) = records.strip_prefix("sha256/") {
                        self.refs.layers.contains_key(chain)
                    } else if let Some(container) = records.strip_prefix("mounts/") {
                        self.refs
                            .mounts
                            .get(container)
                            .is_some_and(|ids| ids.len() == 2)
                    } else {
                        false
                    }
                } else {
                    false
                }
            }
        }
    }

    /// Whether the writable layer in `overlay2/<dir>` may be mounted now.
    ///
    /// Only the overlay mount writes into a writable layer's `diff` and
    /// `work`, and the driver makes the layer's `merged` directory before
    /// each mount and removes it after each unmount (moby v20.10.24 and
    /// v26.1.5 `daemon/graphdriver/overlay2/overlay.go`, `Get`:
    /// `idtools.MkdirAndChown(mergedDir, …)`; `Put`: `unix.Rmdir(mountpoint)`).
    /// So while there is no `merged`, nothing writes there, and every mount
    /// since the layer was last walked has changed the layer directory's
    /// stamp twice (its entry made and removed). Anything but "no such
    /// entry" (a `merged` left behind by an old kernel's failed `rmdir`, an
    /// unreadable directory) counts as mounted: the layer is walked.
    fn mounted(&self, dir: &str) -> bool {
        let merged = self.root.join("overlay2").join(dir).join("merged");
        !matches!(
            std::fs::symlink_metadata(merged),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanging_owners_are_committed_layers_complete_mount_records_and_unmounted_writable_layers()
    {
        let root = tempfile::tempdir().unwrap();
        // c3's writable layer is mounted: the driver made its `merged`.
        std::fs::create_dir_all(root.path().join("overlay2/rw3/merged")).unwrap();
        std::fs::create_dir_all(root.path().join("overlay2/rw1/diff")).unwrap();
        let refs = Refs {
            mounts: HashMap::from([
                ("c1".into(), vec!["rw1".into(), "rw1-init".into()]),
                // Still being created: only its init layer is recorded.
                ("c2".into(), vec!["rw2-init".into()]),
                ("c3".into(), vec!["rw3".into(), "rw3-init".into()]),
            ]),
            layers: HashMap::from([("chain".into(), "cache".into())]),
            ..Refs::default()
        };
        let unchanging = refs.unchanging(root.path());
        for key in [
            "overlay2/cache",
            "overlay2/rw1-init",
            "overlay2/rw1",
            "overlay2/rw3-init",
            "image/overlay2/layerdb/sha256/chain",
            "image/overlay2/layerdb/mounts/c1",
        ] {
            assert!(unchanging.contains(key), "{key}");
        }
        for key in [
            "overlay2/rw3",
            "overlay2/rw2-init",
            "overlay2/l",
            "image/overlay2/layerdb/mounts/c2",
            "image/overlay2/layerdb/sha256/cache",
            "containers/c1",
            "cache",
        ] {
            assert!(!unchanging.contains(key), "{key}");
        }
    }
}
