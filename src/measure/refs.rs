//! How the engine's records point at each other on disk: read by the layout
//! ([`super::overlay2`]) with the walk, kept in its [`super::walk::Index`].

use std::collections::{HashMap, HashSet};

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
/// the short names of overlay2 directories, and image parents.
#[derive(Debug, Default)]
pub(crate) struct Refs {
    /// Container ID → the cache IDs of its writable and init layers
    /// (`layerdb/mounts/<id>/mount-id`, `init-id`).
    pub(crate) mounts: HashMap<String, Vec<String>>,
    /// Layer chain ID (hex) → its cache ID (`layerdb/sha256/<chain>/cache-id`).
    pub(crate) layers: HashMap<String, String>,
    /// Cache ID → its short name (the `overlay2/l/<short>` symlink to it).
    pub(crate) links: HashMap<String, String>,
    /// Image ID → its parent's (`imagedb/metadata/sha256/<id>/parent`).
    pub(crate) parents: HashMap<String, String>,
    /// Which image store's metadata these are: on the containerd image store,
    /// its collector's graph, or why it could not be read.
    pub(crate) metadata: Metadata,
}

impl Refs {
    /// Owner keys of what the engine never changes once written: committed
    /// layers (their overlay2 directory and layer record), and the init layers
    /// and mount records of containers whose mount record is complete.
    pub(crate) fn unchanging(&self) -> HashSet<String> {
        match &self.metadata {
            Metadata::Containerd(graph) => return graph.unchanging(),
            Metadata::ContainerdUnreadable(_) => return HashSet::new(),
            Metadata::Overlay2 => {}
        }
        let committed = self.layers.iter().flat_map(|(chain, cache_id)| {
            [
                format!("overlay2/{cache_id}"),
                format!("{IMAGE_DIR}/layerdb/sha256/{chain}"),
            ]
        });
        // A mount record is written once the container's layers are made, and
        // only its own small files are in it (so its stamp covers them too).
        let mounts = self
            .mounts
            .iter()
            .filter(|(_, ids)| ids.len() == 2)
            .flat_map(|(container, ids)| {
                ids.iter()
                    .filter(|id| id.ends_with("-init"))
                    .map(|id| format!("overlay2/{id}"))
                    .chain([format!("{IMAGE_DIR}/layerdb/mounts/{container}")])
            });
        committed.chain(mounts).collect()
    }
}
