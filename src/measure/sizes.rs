//! Measured sizes: what a plan's items take on disk, what each container and
//! layer takes for `df` and `layers`, and the data root as a whole. Asks
//! [`crate::measure`] for the bytes and the planner's records for what goes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::engine::{Engine, Host};
use crate::inventory::{Inventory, SizeSource, UnlistedBuildCache};
use crate::measure::containerd::{Graph, Node};
use crate::measure::{self, Bytes, Index, Layout};
use crate::model::{EngineInfo, Measured, Product, Unmeasured};
use crate::plan::{Kind, Plan, images_used_by_remaining};

/// What the plan's items take on disk, each measured once.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlanOnDisk {
    /// Aligned with the plan's items.
    pub(crate) items: Vec<Option<Measured>>,
    /// Allocated bytes of each freed layer, by chain ID.
    pub(crate) layers: HashMap<String, u64>,
    /// The whole data root.
    pub(crate) data_root: Measured,
    /// Every owner key an item's bytes were counted from.
    pub(crate) keys: Vec<Arc<str>>,
}

fn measured(bytes: Bytes, incomplete: bool) -> Measured {
    Measured { bytes, incomplete }
}

/// The bytes of an owner key the first time it is asked for, nothing after: a
/// path two items share (a layer freed by two images) counts once.
/// Each key counted goes into `keys`, sharing the index's copy of it (44,000
/// keys at 11,000 containers).
fn once_each<'a>(index: &'a Index, keys: &'a mut Vec<Arc<str>>) -> impl FnMut(&str) -> Bytes + 'a {
    let mut counted = vec![false; index.owner_count()];
    move |key| match index.owner_slot(key) {
        Some(slot) if !std::mem::replace(&mut counted[slot], true) => {
            let (key, bytes) = index.slot(slot);
            keys.push(Arc::clone(key));
            bytes
        }
        _ => Bytes::default(),
    }
}

/// The untagged parents the engine removes with an image on the graphdriver
/// store.
struct HiddenParents<'a> {
    parents: &'a HashMap<String, String>,
    children: HashMap<&'a str, Vec<&'a str>>,
    listed: HashSet<&'a str>,
    used: HashSet<&'a str>,
    removed: HashSet<String>,
}

impl<'a> HiddenParents<'a> {
    fn new(
        parents: &'a HashMap<String, String>,
        plan: &'a Plan,
        inventory: &'a Inventory,
    ) -> HiddenParents<'a> {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for (child, parent) in parents {
            children
                .entry(parent.as_str())
                .or_default()
                .push(child.as_str());
        }
        let planned_containers: HashSet<&str> = plan
            .items_of(Kind::Container)
            .map(|item| item.id.as_str())
            .collect();
        HiddenParents {
            parents,
            children,
            listed: inventory
                .images
                .iter()
                .filter(|image| image.listed)
                .map(|image| image.id.as_str())
                .collect(),
            used: images_used_by_remaining(inventory, &planned_containers),
            removed: plan
                .items_of(Kind::Image)
                .map(|item| item.id.clone())
                .collect(),
        }
    }

    /// The parent of `id` the engine goes on to remove: an untagged one that
    /// nothing else needs (hidden from the image list, no other child, no
    /// container), as `docker rmi` does.
    fn removed_with(&mut self, id: &str) -> Option<String> {
        let parent = self.parents.get(id).cloned().filter(|parent| {
            !self.listed.contains(parent.as_str())
                && !self.used.contains(parent.as_str())
                && self
                    .children
                    .get(parent.as_str())
                    .is_none_or(|kids| kids.iter().all(|kid| self.removed.contains(*kid)))
        })?;
        self.removed.insert(parent.clone());
        Some(parent)
    }
}

/// Measures every planned item's own directories, and the data root, from one
/// walk of it (`index`). Images also count the records of the untagged parents
/// the engine removes with them.
pub(crate) fn measure_plan(
    layout: &Layout,
    index: &Index,
    plan: &Plan,
    inventory: &Inventory,
) -> PlanOnDisk {
    if let Some(graph) = index.refs.metadata.graph() {
        return measure_plan_containerd(graph, index, plan, inventory);
    }
    let mut parents = HiddenParents::new(&index.refs.parents, plan, inventory);
    let mut keys = Vec::new();
    let mut owned = once_each(index, &mut keys);

    let mut layers = HashMap::new();
    let items = plan
        .items
        .iter()
        .map(|item| {
            let mut bytes = Bytes::default();
            match item.kind {
                Kind::Container => {
                    for key in Layout::container_keys(&index.refs, &item.id) {
                        bytes += owned(&key);
                    }
                }
                Kind::Image => {
                    for layer in &item.frees_layers {
                        let mut layer_bytes = Bytes::default();
                        for key in Layout::layer_keys(&index.refs, &layer.chain_id) {
                            layer_bytes += owned(&key);
                        }
                        layers.insert(layer.chain_id.clone(), layer_bytes.allocated);
                        bytes += layer_bytes;
                    }
                    let mut image = Some(item.id.clone());
                    while let Some(id) = image {
                        for key in Layout::image_keys(&id) {
                            bytes += owned(&key);
                        }
                        image = parents.removed_with(&id);
                    }
                }
                Kind::Volume => {
                    bytes += owned(&format!("volumes/{}", item.id));
                }
                // A local-source record keeps its files under overlay2/<id>; other
                // records live in layer directories the API does not name: the
                // engine's figure stands for those.
                Kind::BuildCache => {
                    let dir = layout.root.join("overlay2").join(&item.id);
                    if !dir.is_dir() {
                        return None;
                    }
                    bytes += owned(&format!("overlay2/{}", item.id));
                }
                // A network keeps nothing of its own in the data root: removing
                // it frees nothing there, measured or not.
                Kind::Network => {}
                // A log file is measured by itself when planned.
                Kind::Log => return None,
            }
            Some(measured(bytes, index.incomplete))
        })
        .collect();
    drop(owned);
    PlanOnDisk {
        items,
        layers,
        data_root: measured(index.total, index.incomplete),
        keys,
    }
}

/// [`measure_plan`] on the containerd image store: what containerd's collector
/// frees once the plan's containers (their leases) and images (their records,
/// and the dangling parents the engine removes with them) are gone, each blob
/// and snapshot counted for the first item that held it.
fn measure_plan_containerd(
    graph: &Graph,
    index: &Index,
    plan: &Plan,
    inventory: &Inventory,
) -> PlanOnDisk {
    let planned_containers: HashSet<&str> = plan
        .items_of(Kind::Container)
        .map(|item| item.id.as_str())
        .collect();
    let used = images_used_by_remaining(inventory, &planned_containers);
    let mut gone = HashSet::new();
    let numbers = |nodes: &[Node]| -> Vec<usize> {
        nodes.iter().filter_map(|node| graph.node(node)).collect()
    };
    let groups: Vec<Vec<usize>> = plan
        .items
        .iter()
        .map(|item| match item.kind {
            Kind::Container => numbers(&[Node::lease(&item.id), Node::container(&item.id)]),
            Kind::Image => numbers(&graph.image_removal(&item.id, &used, &mut gone)),
            _ => Vec::new(),
        })
        .collect();
    let freed = graph.freed(&groups);
    let mut keys = Vec::new();
    let mut owned = once_each(index, &mut keys);
    let mut layers = HashMap::new();
    let items = plan
        .items
        .iter()
        .zip(&freed)
        .map(|(item, owners)| {
            let mut bytes = Bytes::default();
            match item.kind {
                Kind::Container => bytes += owned(&format!("containers/{}", item.id)),
                Kind::Volume => bytes += owned(&format!("volumes/{}", item.id)),
                // BuildKit's records live in its own snapshots and leases, which
                // the API does not name: the engine's figure stands for those.
                Kind::BuildCache | Kind::Log => return None,
                Kind::Image | Kind::Network => {}
            }
            for layer in &item.frees_layers {
                if let Some(node) = graph.node(&Node::snapshot(&layer.chain_id))
                    && owners.contains(&node)
                    && let Some(key) = graph.owner_key(node)
                {
                    let layer_bytes = owned(&key);
                    layers.insert(layer.chain_id.clone(), layer_bytes.allocated);
                    bytes += layer_bytes;
                }
            }
            for owner in owners {
                if let Some(key) = graph.owner_key(*owner) {
                    bytes += owned(&key);
                }
            }
            Some(measured(bytes, index.incomplete))
        })
        .collect();
    drop(owned);
    PlanOnDisk {
        items,
        layers,
        data_root: measured(index.total, index.incomplete),
        keys,
    }
}

/// The data root walked alongside the inventory, or why it was not.
pub(crate) struct Walked(pub(crate) Result<(measure::Layout, measure::Index), Unmeasured>);

impl Walked {
    pub(crate) fn get(&self) -> Option<&(measure::Layout, measure::Index)> {
        self.0.as_ref().ok()
    }

    /// Why the plan's sizes are the engine's, when they are.
    pub(crate) fn unmeasured(&self) -> Option<&Unmeasured> {
        self.0.as_ref().err()
    }
}

/// Takes the inventory and, at the same time, walks the data root when the
/// engine is local and the directory can be read here: the walk is local disk
/// work, the inventory waits on the engine. The walk is kept only if the
/// engine's containers and layers are in it, and then gives the sizes: the
/// engine is asked only for its lists, not to measure (`/system/df`), unless
/// the walk is not kept. `intermediates`: see [`Inventory::collect`];
/// `build_cache`: the build cache records are needed (in scope, or shown).
pub(crate) async fn inventory_and_walk(
    engine: &impl Engine,
    host: &Host,
    size_cache: Option<&Path>,
    intermediates: bool,
    build_cache: bool,
) -> Result<(Inventory, Walked)> {
    let info = engine.info();
    let layout = match host {
        Host::Unix(_) => {
            measure::Layout::open(&info.data_root, &info.storage_driver, info.image_store)
        }
        _ => Err(Unmeasured::Remote(host.to_string())),
    };
    let sizes = match &layout {
        Ok(_) if whole_disk_usage_needed(info, build_cache) => SizeSource::Engine,
        Ok(_) => SizeSource::Disk,
        Err(_) => SizeSource::Engine,
    };
    let saved = layout.as_ref().ok().cloned();
    let saved_finish = move |id: &str| saved.as_ref().and_then(|layout| layout.finished_at(id));
    // Docker's own container records, read while the engine lists the rest
    // (Podman keeps its containers elsewhere).
    let records = match &layout {
        Ok(layout) if sizes == SizeSource::Disk && info.product == Product::Docker => {
            let root = layout.root.clone();
            Some(tokio::task::spawn_blocking(move || {
                measure::records::read_containers(&root)
            }))
        }
        _ => None,
    };
    let size_cache = size_cache.map(Path::to_path_buf);
    let walk = layout.map(|layout| {
        tokio::task::spawn_blocking(move || {
            let index = layout.index_cached(size_cache.as_deref());
            (layout, index)
        })
    });
    let mut inventory =
        Inventory::collect(engine, &saved_finish, intermediates, sizes, records).await?;
    if sizes == SizeSource::Disk && old_api(info) {
        // The lists without BuildKit's records: whether a build step's is
        // among them was read from its file (`whole_disk_usage_needed`).
        let read = measure::buildkit::records(Path::new(&info.data_root));
        inventory.build_cache_unlisted = Some(UnlistedBuildCache {
            holds_build_steps: read.as_ref().is_none_or(|read| read.holds_build_steps),
            ids: read.map(|read| read.ids).unwrap_or_default(),
        });
    }
    let walked = match walk {
        Ok(handle) => {
            let (layout, index) = handle.await.context("walking the data root")?;
            kept_walk(engine, &inventory, layout, index).await
        }
        Err(why) => Err(why),
    };
    match &walked {
        Ok((layout, index)) => adopt_measured_sizes(&mut inventory, layout, index),
        Err(_) if sizes != SizeSource::Engine => inventory.adopt_engine_sizes(
            engine
                .disk_usage()
                .await
                .context("reading disk usage (/system/df)")?,
        ),
        Err(_) => {}
    }
    Ok((inventory, Walked(walked)))
}

/// Whether a run against this local engine needs the whole `/system/df`
/// anyway: before API 1.42 the build cache records come only with it (moby
/// `api/server/router/system/system_routes.go` `getDiskUsage` ignores `type`
/// there), and they are needed when the build cache is in scope or shown
/// (`build_cache`). Otherwise the image accounting needs only whether a
/// build step's record is among them, read from BuildKit's own file (see
/// [`super::buildkit`]); only when that file cannot be read is the engine
/// asked. Then that one answer is the inventory, sent while connecting, and
/// the lists would only add to the engine's work (measured on 20.10 at 1,000
/// containers: README, Benchmarks).
pub(crate) fn whole_disk_usage_needed(info: &EngineInfo, build_cache: bool) -> bool {
    old_api(info)
        && (build_cache || measure::buildkit::records(Path::new(&info.data_root)).is_none())
}

/// Before API 1.42: build cache records only with the whole `/system/df`.
fn old_api(info: &EngineInfo) -> bool {
    crate::engine::parse_api_version(&info.api_version).is_none_or(|version| version < (1, 42))
}

/// The walk, if it is this engine's data root: its containers and layers are
/// in it, and the store's metadata agrees.
async fn kept_walk(
    engine: &impl Engine,
    inventory: &Inventory,
    layout: Layout,
    index: Index,
) -> Result<(Layout, Index), Unmeasured> {
    let info = engine.info();
    // A container listed while the walk ran may be gone since (`docker
    // run --rm`), directory and all: the engine says so, and then it
    // is no sign of another engine's directory.
    // The first one the engine still has settles it: no more asking.
    let mut containers: Vec<&str> = Vec::new();
    for container in &inventory.containers {
        let id = container.id.as_str();
        if layout.has_container_dir(&index, id) {
            containers.push(id);
        } else if !matches!(engine.container_details(id).await, Ok(None)) {
            containers.push(id);
            break;
        }
    }
    let images: Vec<&str> = inventory
        .images
        .iter()
        .map(|image| image.id.as_str())
        .collect();
    let chains: Vec<&str> = inventory
        .images
        .iter()
        .flat_map(|image| image.layers.iter().map(|layer| layer.chain_id.as_str()))
        .collect();
    if let crate::measure::refs::Metadata::ContainerdUnreadable(why) = &index.refs.metadata {
        Err(Unmeasured::Metadata(why.clone()))
    } else if let Err(why) = metadata_agrees(engine, &layout, &index, &mut containers).await {
        Err(Unmeasured::Metadata(why))
    } else if layout.holds(&index, &containers, &images, &chains) {
        Ok((layout, index))
    } else {
        Err(Unmeasured::NotTheEngines(info.data_root.clone()))
    }
}

/// [`Layout::metadata_agrees`], forgiving a container removed since the walk
/// (`docker run --rm`): the engine says it is gone, and it is left out.
async fn metadata_agrees(
    engine: &impl Engine,
    layout: &Layout,
    index: &Index,
    containers: &mut Vec<&str>,
) -> Result<(), String> {
    // Each round leaves out one container the engine no longer has.
    for _ in 0..=containers.len() {
        match layout.metadata_agrees(index, containers) {
            Ok(()) => return Ok(()),
            Err((Some(id), why)) => {
                if !matches!(engine.container_details(&id).await, Ok(None)) {
                    return Err(why);
                }
                containers.retain(|kept| *kept != id);
            }
            Err((None, why)) => return Err(why),
        }
    }
    Ok(())
}

/// Sizes from the walk instead of the engine's: each container's directories
/// (writable and init layers, its directory with its log), each local
/// volume's directory, and the images' layers and records, each once.
fn adopt_measured_sizes(inventory: &mut Inventory, layout: &Layout, index: &Index) {
    for container in &mut inventory.containers {
        container.size_rw = layout.container_bytes(index, &container.id).allocated;
    }
    for volume in &mut inventory.volumes {
        if let Some((_, bytes)) = index.owner(&format!("volumes/{}", volume.name)) {
            volume.size = Some(bytes.allocated);
        }
    }
    inventory.layers_size = layout.images_bytes(index, &inventory.images).allocated;
    inventory.sizes_measured = true;
}

/// The plan with sizes measured on disk, when the data root was walked (else
/// the reason it was not), and the orphaned overlay2 directories found there.
pub(crate) fn measure(plan: Plan, inventory: &Inventory, walked: &Walked) -> Plan {
    measure_and_find_orphans(plan, inventory, walked).0
}

pub(crate) fn measure_and_find_orphans(
    mut plan: Plan,
    inventory: &Inventory,
    walked: &Walked,
) -> (Plan, Vec<measure::Orphan>) {
    let Some((layout, index)) = walked.get() else {
        plan.unmeasured = walked.unmeasured().cloned();
        return (plan, Vec::new());
    };
    let on_disk = measure_plan(layout, index, &plan, inventory);
    let mut plan = plan.with_measurements(&on_disk.items, &on_disk.layers, Some(on_disk.data_root));
    plan.measured_keys = on_disk.keys;
    // BuildKit's snapshots on the graphdriver store: its records', listed
    // or read from its file.
    let cache_ids: HashSet<&str> = inventory
        .build_cache
        .iter()
        .map(|record| record.id.as_str())
        .chain(
            inventory
                .build_cache_unlisted
                .iter()
                .flat_map(|unlisted| unlisted.ids.iter().map(String::as_str)),
        )
        .collect();
    let orphans = layout.orphans(index, &cache_ids);
    plan.orphaned = Some((
        orphans.len(),
        orphans.iter().map(|orphan| orphan.bytes.allocated).sum(),
    ));
    (plan, orphans)
}

/// The data root's allocated bytes, walked now (only when it was measured for
/// the plan: see [`inventory_and_walk`]), taking from the size cache nothing
/// of the owner keys in `fresh`.
pub(crate) fn walk_data_root(
    engine: &EngineInfo,
    size_cache: Option<&Path>,
    fresh: &HashSet<String>,
) -> Option<u64> {
    let layout = measure::Layout::open(
        &engine.data_root,
        &engine.storage_driver,
        engine.image_store,
    )
    .ok()?;
    Some(
        layout
            .index_cached_except(size_cache, fresh)
            .total
            .allocated,
    )
}
