//! Pure: where the space is, per kind (`docker-reclaim df`). Reclaimable figures
//! come from the same plan the dry run shows, so the two always agree.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::inventory::Inventory;
use crate::measure::Orphan;
use crate::model::{ImageStore, short_id};
use crate::model::{Measured, Unmeasured};
use crate::plan::{Kind, Plan};

/// What was measured on disk for `df`, by item.
#[derive(Debug, Clone, Default)]
pub(crate) struct OnDisk {
    /// Allocated bytes of everything each container's removal frees.
    pub(crate) containers: HashMap<String, u64>,
    /// Allocated bytes of each container's json-file logs.
    pub(crate) logs: HashMap<String, u64>,
    /// Allocated bytes of each image layer, by chain ID.
    pub(crate) layers: HashMap<String, u64>,
    pub(crate) orphans: Vec<Orphan>,
    pub(crate) data_root: Measured,
}

/// What a line of the table counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Section {
    Containers,
    #[serde(rename = "Container logs")]
    ContainerLogs,
    Images,
    Layers,
    Volumes,
    #[serde(rename = "Build cache")]
    BuildCache,
    #[serde(rename = "Orphaned overlay2")]
    OrphanedOverlay2,
    /// Snapshot directories and blobs of the containerd image store that its
    /// metadata does not know.
    #[serde(rename = "Orphaned containerd")]
    OrphanedContainerd,
}

impl Section {
    /// The table's first column.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Section::Containers => "Containers",
            Section::ContainerLogs => "Container logs",
            Section::Images => "Images",
            Section::Layers => "Layers",
            Section::Volumes => "Volumes",
            Section::BuildCache => "Build cache",
            Section::OrphanedOverlay2 => "Orphaned overlay2",
            Section::OrphanedContainerd => "Orphaned containerd",
        }
    }

    /// Whether the engine's own figure is what is shown, even on a readable
    /// data root.
    pub(crate) fn is_engine_figure(self) -> bool {
        matches!(self, Section::Volumes | Section::BuildCache)
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Row {
    pub(crate) kind: Section,
    pub(crate) count: usize,
    /// `None` when it cannot be known from here (logs of a remote engine).
    pub(crate) size_bytes: Option<u64>,
    pub(crate) in_use_bytes: Option<u64>,
    /// `None` for what the engine cannot reclaim (orphaned directories).
    pub(crate) reclaimable_bytes: Option<u64>,
    pub(crate) measured: bool,
}

/// One item under `-v`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Listed {
    pub(crate) kind: Kind,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) size_bytes: u64,
    pub(crate) in_use: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub(crate) rows: Vec<Row>,
    pub(crate) shared_layers: usize,
    pub(crate) shared_layer_bytes: u64,
    pub(crate) orphans: Vec<Orphan>,
    pub(crate) data_root: Option<Measured>,
    /// Why sizes are the engine's, when the data root was not measured.
    pub(crate) unmeasured: Option<Unmeasured>,
    /// What `docker-reclaim --dry-run` would free: the plan's predicted total.
    pub(crate) reclaimable_bytes: u64,
    /// Largest first within each kind.
    pub(crate) items: Vec<Listed>,
}

/// Usage per kind from the inventory, the default plan and, when the data root
/// was readable, what was measured on it.
pub(crate) fn usage(inventory: &Inventory, plan: &Plan, on_disk: Option<&OnDisk>) -> Usage {
    let measured = on_disk.is_some();
    let (mut rows, mut container_items) = container_rows(inventory, plan, on_disk);
    let images = image_rows(inventory, plan, on_disk);
    rows.extend(images.rows);
    let mut items = images.items;
    let (other_rows, volumes) = volume_and_cache_rows(inventory, plan);
    rows.extend(other_rows);
    items.extend(volumes);
    let orphans = on_disk.map(|disk| disk.orphans.clone()).unwrap_or_default();
    if measured {
        rows.push(Row {
            kind: if inventory.engine.image_store == ImageStore::Containerd {
                Section::OrphanedContainerd
            } else {
                Section::OrphanedOverlay2
            },
            count: orphans.len(),
            size_bytes: Some(orphans.iter().map(|o| o.bytes.allocated).sum()),
            in_use_bytes: None,
            reclaimable_bytes: None,
            measured,
        });
    }

    container_items.sort_by_key(|item| std::cmp::Reverse(item.size_bytes));
    items.sort_by_key(|item| (item.kind, std::cmp::Reverse(item.size_bytes)));
    let mut all = container_items;
    all.extend(items);
    for item in &mut all {
        if item.name.is_empty() {
            item.name = short_id(&item.id).to_string();
        }
    }
    Usage {
        rows,
        shared_layers: images.shared_layers,
        shared_layer_bytes: images.shared_layer_bytes,
        orphans,
        data_root: on_disk.map(|disk| disk.data_root),
        unmeasured: plan.unmeasured.clone(),
        reclaimable_bytes: plan.total.predicted_bytes,
        items: all,
    }
}

fn planned(plan: &Plan, kind: Kind) -> u64 {
    plan.items_of(kind).map(|item| item.predicted_bytes).sum()
}

/// The containers row and the container logs row, and each container.
fn container_rows(
    inventory: &Inventory,
    plan: &Plan,
    on_disk: Option<&OnDisk>,
) -> (Vec<Row>, Vec<Listed>) {
    let measured = on_disk.is_some();
    let mut size = 0;
    let mut in_use = 0;
    let mut logs = 0;
    let mut logs_in_use = 0;
    let planned_ids: HashSet<&str> = plan.items.iter().map(|item| item.id.as_str()).collect();
    let mut logs_reclaimable = 0;
    let mut container_items = Vec::new();
    for container in &inventory.containers {
        let bytes = on_disk
            .and_then(|disk| disk.containers.get(&container.id).copied())
            .unwrap_or(container.size_rw);
        let log = on_disk
            .and_then(|disk| disk.logs.get(&container.id).copied())
            .unwrap_or(0);
        let running = !container.state.is_stopped();
        size += bytes;
        logs += log;
        if running {
            in_use += bytes;
            logs_in_use += log;
        }
        if planned_ids.contains(container.id.as_str()) {
            logs_reclaimable += log;
        }
        container_items.push(Listed {
            kind: Kind::Container,
            id: container.id.clone(),
            name: container.display_name(),
            size_bytes: bytes,
            in_use: running,
        });
    }
    let rows = vec![
        Row {
            kind: Section::Containers,
            count: inventory.containers.len(),
            size_bytes: Some(size),
            in_use_bytes: Some(in_use),
            reclaimable_bytes: Some(planned(plan, Kind::Container)),
            measured,
        },
        Row {
            kind: Section::ContainerLogs,
            count: inventory.containers.len(),
            size_bytes: measured.then_some(logs),
            in_use_bytes: measured.then_some(logs_in_use),
            reclaimable_bytes: measured.then_some(logs_reclaimable),
            measured,
        },
    ];
    (rows, container_items)
}

/// The images and layers rows (each layer once), and each listed image.
struct ImageRows {
    rows: Vec<Row>,
    items: Vec<Listed>,
    shared_layers: usize,
    shared_layer_bytes: u64,
}

fn image_rows(inventory: &Inventory, plan: &Plan, on_disk: Option<&OnDisk>) -> ImageRows {
    let measured = on_disk.is_some();
    let layer_bytes = |chain_id: &str, fallback: u64| {
        on_disk
            .and_then(|disk| disk.layers.get(chain_id).copied())
            .unwrap_or(fallback)
    };
    let used_images: HashSet<&str> = inventory
        .containers
        .iter()
        .map(|container| container.image_id.as_str())
        .collect();
    let mut users: HashMap<&str, usize> = HashMap::new();
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    let mut in_use_layers: HashSet<&str> = HashSet::new();
    for image in &inventory.images {
        for layer in &image.layers {
            *users.entry(layer.chain_id.as_str()).or_default() += 1;
            sizes.insert(&layer.chain_id, layer_bytes(&layer.chain_id, layer.size));
            if used_images.contains(image.id.as_str()) {
                in_use_layers.insert(&layer.chain_id);
            }
        }
    }
    let layers_total: u64 = sizes.values().sum();
    let layers_in_use: u64 = in_use_layers.iter().filter_map(|c| sizes.get(c)).sum();
    let shared: Vec<&&str> = users
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| c)
        .collect();
    let shared_layer_bytes = shared.iter().filter_map(|c| sizes.get(**c)).sum();
    let listed_images: Vec<_> = inventory
        .images
        .iter()
        .filter(|image| image.listed)
        .collect();
    let items = listed_images
        .iter()
        .map(|image| Listed {
            kind: Kind::Image,
            id: image.id.clone(),
            name: image.display_name(),
            size_bytes: image
                .layers
                .iter()
                .map(|layer| layer_bytes(&layer.chain_id, layer.size))
                .sum(),
            in_use: used_images.contains(image.id.as_str()),
        })
        .collect();
    let row = |kind, count| Row {
        kind,
        count,
        size_bytes: Some(layers_total),
        in_use_bytes: Some(layers_in_use),
        reclaimable_bytes: Some(planned(plan, Kind::Image)),
        measured,
    };
    ImageRows {
        rows: vec![
            row(Section::Images, listed_images.len()),
            row(Section::Layers, sizes.len()),
        ],
        items,
        shared_layers: shared.len(),
        shared_layer_bytes,
    }
}

/// The volumes row (measured with the rest when the inventory's sizes were)
/// and the build cache row (the engine's figures), and each volume.
fn volume_and_cache_rows(inventory: &Inventory, plan: &Plan) -> (Vec<Row>, Vec<Listed>) {
    let volumes_in_use = inventory
        .volumes
        .iter()
        .filter(|volume| volume.ref_count.unwrap_or(0) > 0);
    let rows = vec![
        Row {
            kind: Section::Volumes,
            count: inventory.volumes.len(),
            size_bytes: Some(inventory.volumes.iter().filter_map(|v| v.size).sum()),
            in_use_bytes: Some(volumes_in_use.filter_map(|v| v.size).sum()),
            reclaimable_bytes: Some(planned(plan, Kind::Volume)),
            measured: inventory.sizes_measured,
        },
        Row {
            kind: Section::BuildCache,
            count: inventory.build_cache.len(),
            size_bytes: Some(inventory.build_cache.iter().map(|r| r.size).sum()),
            in_use_bytes: Some(
                inventory
                    .build_cache
                    .iter()
                    .filter(|r| r.in_use)
                    .map(|r| r.size)
                    .sum(),
            ),
            reclaimable_bytes: Some(planned(plan, Kind::BuildCache)),
            measured: false,
        },
    ];
    let items = inventory
        .volumes
        .iter()
        .map(|volume| Listed {
            kind: Kind::Volume,
            id: volume.name.clone(),
            name: volume.name.clone(),
            size_bytes: volume.size.unwrap_or(0),
            in_use: volume.ref_count.unwrap_or(0) > 0,
        })
        .collect();
    (rows, items)
}
