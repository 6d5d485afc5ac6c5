//! The data root as a breakdown: every byte the walk found filed in exactly
//! one part (a container's writable layers, logs or metadata; an image's
//! layers or records; a volume; the engine's metadata; an orphan; the rest),
//! so that the parts add up to the data root (`df`'s rows, #21).

use std::collections::{HashMap, HashSet};

use super::containerd;
use super::overlay2::{Layout, Orphan};
use super::refs::{IMAGE_DIR, Metadata};
use super::walk::Index;
use crate::model::{Bytes, Image};

/// Where a byte of the data root belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// Writable and init layers (and their mount records).
    ContainerLayers,
    /// json-file logs, rotated ones included.
    ContainerLogs,
    /// The rest of each container's directory: config, hostname, resolv.conf.
    ContainerMetadata,
    /// The images' layers (overlay2 directories and layer records, or
    /// unpacked snapshots), each once.
    ImageLayers,
    /// Image configs and metadata (overlay2), or content blobs (containerd).
    ImageRecords,
    /// Volumes' directories.
    Volumes,
    /// The engine's databases and records that belong to no item: the layer
    /// store's and containerd's metadata, networks, plugins, swarm.
    EngineMetadata,
    /// Directories nothing refers to.
    Orphans,
    /// Everything else: layers and snapshots no image or container holds
    /// (BuildKit's), BuildKit's own files, temporary files.
    Unclaimed,
}

/// The bytes of each part, and the whole the walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Breakdown {
    pub(crate) parts: HashMap<Part, Bytes>,
    pub(crate) total: Bytes,
}

impl Breakdown {
    pub(crate) fn get(&self, part: Part) -> Bytes {
        self.parts.get(&part).copied().unwrap_or_default()
    }
}

/// What the breakdown is asked about: the engine's items as listed.
pub(crate) struct Items<'a> {
    pub(crate) containers: &'a [String],
    pub(crate) images: &'a [Image],
    pub(crate) volumes: &'a [String],
    pub(crate) orphans: &'a [Orphan],
}

/// Top-level entries of a data root that are the engine's own records
/// (moby v26.1.5 `daemon/daemon.go` `NewDaemon` creates them; `engine-id`
/// in `daemon/id.go`).
const ENGINE_DIRS: [&str; 9] = [
    "image",
    "network",
    "plugins",
    "swarm",
    "trust",
    "runtimes",
    "engine-id",
    "containerd",
    "volumes/metadata.db",
];

impl Layout {
    /// Files every owner the walk found under one [`Part`].
    pub(crate) fn breakdown(&self, index: &Index, items: &Items<'_>) -> Breakdown {
        let claimed = claims(index, items);
        let mut breakdown = Breakdown {
            total: index.total,
            ..Breakdown::default()
        };
        for key in index.owner_keys() {
            let part = claimed
                .get(key)
                .copied()
                .unwrap_or_else(|| unclaimed_part(key));
            let bytes = index.owned_key(key);
            if part == Part::ContainerMetadata {
                // A container's directory: its logs apart from the rest.
                let logs = key
                    .strip_prefix("containers/")
                    .map(|id| self.log_bytes(id))
                    .unwrap_or_default();
                let logs = Bytes {
                    allocated: logs.allocated.min(bytes.allocated),
                    apparent: logs.apparent.min(bytes.apparent),
                };
                *breakdown.parts.entry(Part::ContainerLogs).or_default() += logs;
                *breakdown.parts.entry(part).or_default() += Bytes {
                    allocated: bytes.allocated - logs.allocated,
                    apparent: bytes.apparent - logs.apparent,
                };
            } else {
                *breakdown.parts.entry(part).or_default() += bytes;
            }
        }
        breakdown
    }
}

/// The owners each item holds, by part (the first claim holds).
fn claims(index: &Index, items: &Items<'_>) -> HashMap<String, Part> {
    let mut claimed: HashMap<String, Part> = HashMap::new();
    let mut claim = |key: String, part: Part| {
        claimed.entry(key).or_insert(part);
    };
    let graph = index.refs.metadata.graph();
    for id in items.containers {
        if let Some(graph) = graph {
            for key in [id.clone(), format!("{id}-init")] {
                if let Some(dir) = graph.snapshot_key(&key) {
                    claim(dir, Part::ContainerLayers);
                }
            }
        } else {
            for key in Layout::container_keys(&index.refs, id) {
                if !key.starts_with("containers/") {
                    claim(key, Part::ContainerLayers);
                }
            }
        }
    }
    let chains: HashSet<&str> = items
        .images
        .iter()
        .flat_map(|image| image.layers.iter().map(|layer| layer.chain_id.as_str()))
        .collect();
    for chain in chains {
        match graph {
            Some(graph) => {
                if let Some(dir) = graph.snapshot_key(chain) {
                    claim(dir, Part::ImageLayers);
                }
            }
            None => {
                for key in Layout::layer_keys(&index.refs, chain) {
                    claim(key, Part::ImageLayers);
                }
            }
        }
    }
    if let Some(graph) = graph {
        for image in items.images {
            for (_, key) in graph.image_blobs(&image.id) {
                claim(key, Part::ImageRecords);
            }
        }
    } else {
        let hex = |id: &str| id.strip_prefix("sha256:").unwrap_or(id).to_string();
        let mut ids: HashSet<String> = items.images.iter().map(|image| hex(&image.id)).collect();
        for (child, parent) in &index.refs.parents {
            ids.insert(hex(child));
            ids.insert(hex(parent));
        }
        for id in ids {
            for key in Layout::image_keys(&id) {
                claim(key, Part::ImageRecords);
            }
        }
    }
    for name in items.volumes {
        claim(format!("volumes/{name}"), Part::Volumes);
    }
    let containerd_orphans = matches!(
        index.refs.metadata,
        Metadata::Containerd(_) | Metadata::ContainerdUnreadable(_)
    );
    for orphan in items.orphans {
        let key = if containerd_orphans {
            format!("containerd/daemon/{}", orphan.name)
        } else {
            format!("overlay2/{}", orphan.name)
        };
        claim(key, Part::Orphans);
    }
    claimed
}

/// Where an owner no item claimed belongs, by its path.
fn unclaimed_part(key: &str) -> Part {
    let mut parts = key.split('/');
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    match (first, second) {
        // Every container directory is a container's, listed or not (one
        // created while the walk ran).
        ("containers", Some(_)) => Part::ContainerMetadata,
        // A snapshot or blob containerd knows but no image or container
        // holds: BuildKit's, or another namespace's.
        _ if key.starts_with(&format!("{}/snapshots/", containerd::SNAPSHOTS))
            || key.starts_with(&format!("{}/", containerd::BLOBS)) =>
        {
            Part::Unclaimed
        }
        // A layer record or directory no image holds: BuildKit's.
        _ if key.starts_with(&format!("{IMAGE_DIR}/layerdb/sha256/")) => Part::Unclaimed,
        ("overlay2", Some("l")) => Part::EngineMetadata,
        ("overlay2", Some(_)) => Part::Unclaimed,
        _ if ENGINE_DIRS
            .iter()
            .any(|dir| key == *dir || key.starts_with(&format!("{dir}/"))) =>
        {
            Part::EngineMetadata
        }
        _ => Part::Unclaimed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageStore;

    #[test]
    fn every_byte_of_an_overlay2_root_is_in_one_part() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let layerdb = base.join("image/overlay2/layerdb");
        let write = |path: &str, size: usize| {
            let path = base.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, vec![1u8; size]).unwrap();
        };
        std::fs::create_dir_all(layerdb.join("sha256/chain1")).unwrap();
        std::fs::write(layerdb.join("sha256/chain1/cache-id"), "layer1").unwrap();
        std::fs::create_dir_all(layerdb.join("sha256/bkchain")).unwrap();
        std::fs::write(layerdb.join("sha256/bkchain/cache-id"), "bk1").unwrap();
        std::fs::create_dir_all(layerdb.join("mounts/c1")).unwrap();
        std::fs::write(layerdb.join("mounts/c1/mount-id"), "rw1").unwrap();
        std::fs::write(layerdb.join("mounts/c1/init-id"), "rw1-init").unwrap();
        write("overlay2/layer1/diff/bin", 40_000);
        write("overlay2/bk1/diff/x", 12_000);
        write("overlay2/rw1/diff/tmp/a", 30_000);
        write("overlay2/rw1-init/diff/etc/hosts", 10);
        write("overlay2/stray/diff/junk", 20_000);
        write("containers/c1/c1-json.log", 50_000);
        write("containers/c1/config.v2.json", 3_000);
        write("volumes/v1/_data/db", 70_000);
        write("volumes/metadata.db", 32_768);
        write("image/overlay2/imagedb/content/sha256/img1", 2_000);
        write("network/files/local-kv.db", 32_768);
        write("tmp/left", 5_000);
        let layout =
            Layout::open(base.to_str().unwrap(), "overlay2", ImageStore::Graphdriver).unwrap();
        let index = layout.index();
        let orphans = layout.orphans(&index, &HashSet::from(["bk1"]));
        let image = crate::testing::image(
            "sha256:img1",
            &[],
            vec![crate::testing::layer("sha256:chain1", 40_000)],
        );
        let breakdown = layout.breakdown(
            &index,
            &Items {
                containers: &["c1".to_string()],
                images: &[image],
                volumes: &["v1".to_string()],
                orphans: &orphans,
            },
        );
        let sum = breakdown
            .parts
            .values()
            .fold(0, |sum, bytes| sum + bytes.apparent);
        assert_eq!(sum, breakdown.total.apparent);
        let at_least = |part, bytes: u64| {
            let got = breakdown.get(part).apparent;
            assert!(got >= bytes && got < bytes + 60_000, "{part:?}: {got}");
        };
        at_least(Part::ContainerLayers, 30_010);
        at_least(Part::ContainerLogs, 50_000);
        at_least(Part::ContainerMetadata, 3_000);
        at_least(Part::ImageLayers, 40_000);
        at_least(Part::ImageRecords, 2_000);
        at_least(Part::Volumes, 70_000);
        at_least(Part::EngineMetadata, 65_536);
        at_least(Part::Orphans, 20_000);
        at_least(Part::Unclaimed, 17_000);
        assert_eq!(breakdown.get(Part::ContainerLogs).apparent, 50_000);
    }
}
