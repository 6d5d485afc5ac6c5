//! Pure: where the space is, per kind (`docker-reclaim df`). Reclaimable figures
//! come from the same plan the dry run shows, so the two always agree.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::inventory::Inventory;
use crate::measure::Orphan;
use crate::measure::breakdown::{Breakdown, Part};
use crate::model::{ImageStore, short_id};
use crate::model::{Measured, Unmeasured};
use crate::plan::{Kind, Plan};

/// What was measured on disk for `df`, by item, and the data root's breakdown.
#[derive(Debug, Clone, Default)]
pub(crate) struct OnDisk {
    /// Allocated bytes of everything each container's removal frees.
    pub(crate) containers: HashMap<String, u64>,
    /// Allocated bytes of each container's directory (`containers/<id>`:
    /// config and logs), part of the above.
    pub(crate) container_dirs: HashMap<String, u64>,
    /// Allocated bytes of each container's json-file logs.
    pub(crate) logs: HashMap<String, u64>,
    /// Allocated bytes of each image layer, by chain ID.
    pub(crate) layers: HashMap<String, u64>,
    /// Every byte of the data root in one part.
    pub(crate) breakdown: Breakdown,
    pub(crate) orphans: Vec<Orphan>,
    pub(crate) data_root: Measured,
}

/// What a line of the table counts. The JSON names are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Section {
    Containers,
    /// Part of containers: writable and init layers.
    ContainerLayers,
    /// Part of containers: json-file logs.
    ContainerLogs,
    /// Part of containers: the rest of their directories.
    ContainerMetadata,
    Images,
    /// Part of images: their layers, each once.
    ImageLayers,
    /// Part of images: configs and metadata, or content blobs.
    ImageRecords,
    Volumes,
    BuildCache,
    /// The engine's own databases and records.
    EngineMetadata,
    /// Directories (or snapshots and blobs) nothing refers to.
    Orphans,
    /// The rest of the data root.
    Other,
}

impl Section {
    /// The table's first column (sub-rows are indented by the renderer).
    pub(crate) fn label(self, store: ImageStore) -> &'static str {
        match self {
            Section::Containers => "Containers",
            Section::ContainerLayers => "writable layers",
            Section::ContainerLogs => "logs",
            Section::ContainerMetadata => "metadata",
            Section::Images => "Images",
            Section::ImageLayers => "layers",
            Section::ImageRecords if store == ImageStore::Containerd => "content blobs",
            Section::ImageRecords => "records",
            Section::Volumes => "Volumes",
            Section::BuildCache => "Build cache",
            Section::EngineMetadata => "Engine metadata",
            Section::Orphans if store == ImageStore::Containerd => "Orphaned containerd",
            Section::Orphans => "Orphaned overlay2",
            Section::Other => "Other",
        }
    }

    /// The row this one is a part of.
    pub(crate) fn part_of(self) -> Option<Section> {
        match self {
            Section::ContainerLayers | Section::ContainerLogs | Section::ContainerMetadata => {
                Some(Section::Containers)
            }
            Section::ImageLayers | Section::ImageRecords => Some(Section::Images),
            _ => None,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Row {
    pub(crate) kind: Section,
    /// The row whose bytes include this one's.
    pub(crate) part_of: Option<Section>,
    /// `None` where there is nothing to count (engine metadata, other).
    pub(crate) count: Option<usize>,
    /// `None` when it cannot be known from here.
    pub(crate) size_bytes: Option<u64>,
    pub(crate) in_use_bytes: Option<u64>,
    /// `None` for what the plan does not split this way, and for what the
    /// engine cannot reclaim (orphans).
    pub(crate) reclaimable_bytes: Option<u64>,
    /// Measured on disk; otherwise the engine's figure.
    pub(crate) measured: bool,
}

impl Row {
    fn new(kind: Section, count: Option<usize>, measured: bool) -> Row {
        Row {
            kind,
            part_of: kind.part_of(),
            count,
            size_bytes: None,
            in_use_bytes: None,
            reclaimable_bytes: None,
            measured,
        }
    }

    fn sized(mut self, size: u64, in_use: Option<u64>, reclaimable: Option<u64>) -> Row {
        self.size_bytes = Some(size);
        self.in_use_bytes = in_use;
        self.reclaimable_bytes = reclaimable;
        self
    }
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
/// was readable, what was measured on it: then the top-level rows add up to
/// the data root (each byte in one row, #21).
pub(crate) fn usage(inventory: &Inventory, plan: &Plan, on_disk: Option<&OnDisk>) -> Usage {
    let (mut rows, mut container_items) = container_rows(inventory, plan, on_disk);
    let images = image_rows(inventory, plan, on_disk);
    rows.extend(images.rows);
    let mut items = images.items;
    let (other_rows, volumes) = volume_and_cache_rows(inventory, plan, on_disk);
    rows.extend(other_rows);
    items.extend(volumes);
    let orphans = on_disk.map(|disk| disk.orphans.clone()).unwrap_or_default();
    if let Some(disk) = on_disk {
        rows.extend(rest_rows(&rows, disk));
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

/// The engine's metadata, the orphans and what is left of the data root
/// once every other row took its bytes.
fn rest_rows(rows: &[Row], disk: &OnDisk) -> Vec<Row> {
    let part = |part| disk.breakdown.get(part).allocated;
    let metadata =
        Row::new(Section::EngineMetadata, None, true).sized(part(Part::EngineMetadata), None, None);
    let orphans = Row::new(Section::Orphans, Some(disk.orphans.len()), true).sized(
        part(Part::Orphans),
        None,
        None,
    );
    let counted: u64 = rows
        .iter()
        .chain([&metadata, &orphans])
        .filter(|row| row.part_of.is_none())
        .filter_map(|row| row.size_bytes)
        .sum();
    let other = Row::new(Section::Other, None, true).sized(
        disk.data_root.bytes.allocated.saturating_sub(counted),
        None,
        None,
    );
    vec![metadata, orphans, other]
}

fn planned(plan: &Plan, kind: Kind) -> u64 {
    plan.items_of(kind).map(|item| item.predicted_bytes).sum()
}

/// Per container, its bytes split as the rows split them.
#[derive(Default)]
struct Split {
    layers: u64,
    logs: u64,
    metadata: u64,
}

impl std::ops::AddAssign<&Split> for Split {
    fn add_assign(&mut self, other: &Split) {
        self.layers += other.layers;
        self.logs += other.logs;
        self.metadata += other.metadata;
    }
}

/// The containers row with its parts, and each container.
fn container_rows(
    inventory: &Inventory,
    plan: &Plan,
    on_disk: Option<&OnDisk>,
) -> (Vec<Row>, Vec<Listed>) {
    let planned_ids: HashSet<&str> = plan.items.iter().map(|item| item.id.as_str()).collect();
    let (mut all, mut in_use, mut reclaimable) =
        (Split::default(), Split::default(), Split::default());
    let mut container_items = Vec::new();
    for container in &inventory.containers {
        let split = match on_disk {
            Some(disk) => {
                let get = |map: &HashMap<String, u64>| map.get(&container.id).copied().unwrap_or(0);
                let dir = get(&disk.container_dirs);
                let logs = get(&disk.logs).min(dir);
                Split {
                    layers: get(&disk.containers).saturating_sub(dir),
                    logs,
                    metadata: dir - logs,
                }
            }
            None => Split {
                layers: container.size_rw,
                ..Split::default()
            },
        };
        let running = !container.state.is_stopped();
        all += &split;
        if running {
            in_use += &split;
        }
        if planned_ids.contains(container.id.as_str()) {
            reclaimable += &split;
        }
        container_items.push(Listed {
            kind: Kind::Container,
            id: container.id.clone(),
            name: container.display_name(),
            size_bytes: split.layers + split.logs + split.metadata,
            in_use: running,
        });
    }
    let count = Some(inventory.containers.len());
    let mut rows = Vec::new();
    match on_disk {
        Some(disk) => {
            // Directories of containers created while the walk ran are in
            // the breakdown, not in the list: the parts are the breakdown's.
            let part = |part| disk.breakdown.get(part).allocated;
            let parts = Split {
                layers: part(Part::ContainerLayers).max(all.layers),
                logs: part(Part::ContainerLogs).max(all.logs),
                metadata: part(Part::ContainerMetadata).max(all.metadata),
            };
            rows.push(Row::new(Section::Containers, count, true).sized(
                parts.layers + parts.logs + parts.metadata,
                Some(in_use.layers + in_use.logs + in_use.metadata),
                Some(planned(plan, Kind::Container)),
            ));
            for (section, size, used, freed) in [
                (
                    Section::ContainerLayers,
                    parts.layers,
                    in_use.layers,
                    reclaimable.layers,
                ),
                (
                    Section::ContainerLogs,
                    parts.logs,
                    in_use.logs,
                    reclaimable.logs,
                ),
                (
                    Section::ContainerMetadata,
                    parts.metadata,
                    in_use.metadata,
                    reclaimable.metadata,
                ),
            ] {
                rows.push(Row::new(section, None, true).sized(size, Some(used), Some(freed)));
            }
        }
        None => rows.push(Row::new(Section::Containers, count, false).sized(
            all.layers,
            Some(in_use.layers),
            Some(planned(plan, Kind::Container)),
        )),
    }
    (rows, container_items)
}

/// The images row with its parts (each layer once), and each listed image.
struct ImageRows {
    rows: Vec<Row>,
    items: Vec<Listed>,
    shared_layers: usize,
    shared_layer_bytes: u64,
}

fn image_rows(inventory: &Inventory, plan: &Plan, on_disk: Option<&OnDisk>) -> ImageRows {
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
    let count = Some(listed_images.len());
    let reclaimable = Some(planned(plan, Kind::Image));
    let rows = match on_disk {
        Some(disk) => {
            let layers = disk.breakdown.get(Part::ImageLayers).allocated;
            let records = disk.breakdown.get(Part::ImageRecords).allocated;
            vec![
                Row::new(Section::Images, count, true).sized(
                    layers + records,
                    Some(layers_in_use),
                    reclaimable,
                ),
                Row::new(Section::ImageLayers, Some(sizes.len()), true).sized(
                    layers,
                    Some(layers_in_use),
                    None,
                ),
                Row::new(Section::ImageRecords, None, true).sized(records, None, None),
            ]
        }
        None => vec![Row::new(Section::Images, count, false).sized(
            sizes.values().sum(),
            Some(layers_in_use),
            reclaimable,
        )],
    };
    ImageRows {
        rows,
        items,
        shared_layers: shared.len(),
        shared_layer_bytes,
    }
}

/// The volumes row (measured with the rest when the inventory's sizes were)
/// and the build cache row (the plan's figure: the engine's records, shared
/// ones counted with the images), and each volume.
fn volume_and_cache_rows(
    inventory: &Inventory,
    plan: &Plan,
    on_disk: Option<&OnDisk>,
) -> (Vec<Row>, Vec<Listed>) {
    let volumes_in_use = inventory
        .volumes
        .iter()
        .filter(|volume| volume.ref_count.unwrap_or(0) > 0);
    let volume_bytes = match on_disk {
        Some(disk) => disk.breakdown.get(Part::Volumes).allocated,
        None => inventory.volumes.iter().filter_map(|v| v.size).sum(),
    };
    let cache_current = plan
        .by_kind
        .iter()
        .find(|(kind, _)| *kind == Kind::BuildCache)
        .map_or(0, |(_, figures)| figures.current_bytes);
    let rows = vec![
        Row::new(
            Section::Volumes,
            Some(inventory.volumes.len()),
            inventory.sizes_measured,
        )
        .sized(
            volume_bytes,
            Some(volumes_in_use.filter_map(|v| v.size).sum()),
            Some(planned(plan, Kind::Volume)),
        ),
        Row::new(
            Section::BuildCache,
            Some(inventory.build_cache.len()),
            false,
        )
        .sized(
            cache_current,
            Some(
                inventory
                    .build_cache
                    .iter()
                    .filter(|r| r.in_use && !r.shared)
                    .map(|r| r.size)
                    .sum(),
            ),
            Some(planned(plan, Kind::BuildCache)),
        ),
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
