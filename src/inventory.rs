//! A snapshot of the engine as plain data: what exists, how big it is, and how
//! images share layers. Collected once through the [`Engine`] boundary; nothing
//! past this module sees a bollard type.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::{DiskUsage, Engine, ImageLayers};
use crate::model::{
    BuildCacheRecord, Container, ContainerState, EngineInfo, Image, ImageStore, Kind, Layer,
    Network, Product, Volume, short_id,
};

/// Where an inventory's sizes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeSource {
    /// The engine measures them (`/system/df`): for a data root not measured
    /// here (remote, not readable, another storage driver, Podman).
    Engine,
    /// The data root is measured here: the engine only lists (no sizes), with
    /// its build cache records from API 1.42.
    Disk,
}

/// How many inspect calls run at once while collecting details.
const INSPECT_CONCURRENCY: usize = 8;

/// Everything the planner looks at.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Inventory {
    pub(crate) engine: EngineInfo,
    pub(crate) containers: Vec<Container>,
    pub(crate) images: Vec<Image>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) networks: Vec<Network>,
    pub(crate) build_cache: Vec<BuildCacheRecord>,
    /// Bytes of all image layers, each counted once, as the engine reports it
    /// (or, with `sizes_measured`, as measured on disk with the images' records).
    pub(crate) layers_size: u64,
    /// Whether the sizes were measured on the data root rather than the
    /// engine's (`/system/df`).
    #[serde(skip)]
    pub(crate) sizes_measured: bool,
    /// The containers' log files, when read on disk (`--logs`, `df`).
    #[serde(skip)]
    pub(crate) logs: Vec<crate::model::LogFile>,
    /// When BuildKit's records were not listed (API 1.41 lists them only
    /// with `/system/df`, not asked for where the data root is measured and
    /// the build cache is neither in scope nor shown): what was read of them.
    #[serde(skip)]
    pub(crate) build_cache_unlisted: Option<UnlistedBuildCache>,
}

/// BuildKit's records, not listed by the engine but read from its own file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnlistedBuildCache {
    /// A build step's record (type `regular`) is among them: it may hold
    /// the layers BuildKit built.
    pub(crate) holds_build_steps: bool,
    /// Their IDs, which name BuildKit's snapshot directories on the
    /// graphdriver store (not orphans).
    pub(crate) ids: Vec<String>,
}

impl Inventory {
    /// Takes the snapshot: one `/system/df` (or, with [`SizeSource::Disk`], the
    /// lists without sizes) and, while the engine works on it, the
    /// network list and an inspect plus history per listed image; then an inspect
    /// per stopped container whose finish time `saved_finish` does not know (it
    /// reads what the engine saved on disk, when that is readable here), and the
    /// layers of any image not read yet, a few at a time.
    ///
    /// With `intermediates` (the `--prune-scope` scope), on the containerd image
    /// store the untagged intermediate images of classic builds, which the
    /// image list hides, are taken too: that store's prune removes them (moby
    /// v26.1.5 `daemon/containerd/image_prune.go`, `pruneUnused`: every
    /// `moby-dangling@` image no container uses). Nothing else plans them, so
    /// otherwise they are not asked for.
    ///
    /// `records`: the engine's container records read from its data root
    /// (see `measure::records`), being read while the engine lists the rest.
    /// They stand for `/containers/json` when their counts per state equal
    /// the engine's (`/info`, asked at the same time); otherwise the engine
    /// is asked for its list after all.
    pub(crate) async fn collect(
        engine: &impl Engine,
        saved_finish: &(dyn Fn(&str) -> Option<Option<i64>> + Sync),
        intermediates: bool,
        sizes: SizeSource,
        records: Option<Records>,
    ) -> Result<Inventory> {
        // While the engine answers (its lists, or /system/df, which sizes
        // everything), read the images' layers: an image's RootFS and history
        // never change under its ID.
        let hidden_too = intermediates && engine.info().image_store == ImageStore::Containerd;
        let usage = async {
            match sizes {
                SizeSource::Engine => engine
                    .disk_usage()
                    .await
                    .context("reading disk usage (/system/df)"),
                SizeSource::Disk => listing(engine, records).await,
            }
        };
        let (usage, networks, (listed, prefetched)) = tokio::join!(
            usage,
            engine.networks(),
            image_layers_of_all(engine, hidden_too)
        );
        let usage = usage?;
        let networks = networks.context("listing networks")?;

        let containers = if usage.containers_from_records {
            let mut containers = usage.containers;
            containers.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
            containers
        } else {
            with_finish_times(engine, usage.containers, saved_finish).await?
        };
        let images = images_to_inspect(engine, usage.images, listed, hidden_too, &containers);
        let images = with_layers(engine, images, prefetched).await?;
        let mut build_cache = usage.build_cache;

        // The engine lists these in no fixed order; plans and reports should
        // read the same from one run to the next.
        let mut volumes = usage.volumes;
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        if sizes == SizeSource::Disk {
            count_volume_users(&mut volumes, &containers);
        }
        let mut networks = networks;
        networks.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        build_cache.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));

        Ok(Inventory {
            engine: engine.info().clone(),
            containers,
            volumes,
            networks,
            build_cache,
            // Podman's `/system/df` gives no layer total: the images' layers,
            // each counted once, stand for it.
            layers_size: if usage.layers_size == 0 && engine.info().product == Product::Podman {
                distinct_layers_size(&images)
            } else {
                usage.layers_size
            },
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
            images,
        })
    }

    /// Takes the engine's sizes from `/system/df` into an inventory collected
    /// without them, for when the data root could not be measured after all.
    pub(crate) fn adopt_engine_sizes(&mut self, usage: DiskUsage) {
        let rw: HashMap<&str, u64> = usage
            .containers
            .iter()
            .map(|c| (c.id.as_str(), c.size_rw))
            .collect();
        for container in &mut self.containers {
            container.size_rw = rw.get(container.id.as_str()).copied().unwrap_or(0);
        }
        let volumes: HashMap<&str, &Volume> =
            usage.volumes.iter().map(|v| (v.name.as_str(), v)).collect();
        for volume in &mut self.volumes {
            if let Some(sized) = volumes.get(volume.name.as_str()) {
                volume.size = sized.size;
                volume.ref_count = sized.ref_count.or(volume.ref_count);
            }
        }
        self.layers_size = usage.layers_size;
        if !usage.build_cache.is_empty() || self.build_cache.is_empty() {
            self.build_cache = usage.build_cache;
        }
        // /system/df lists them on every API.
        self.build_cache_unlisted = None;
    }

    /// An inventory of sizes only, straight from `/system/df`, without the per-item
    /// inspect calls: enough for usage figures.
    pub(crate) fn from_disk_usage(engine: EngineInfo, usage: DiskUsage) -> Inventory {
        Inventory {
            engine,
            containers: usage.containers,
            images: usage.images,
            volumes: usage.volumes,
            networks: Vec::new(),
            build_cache: usage.build_cache,
            layers_size: usage.layers_size,
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
        }
    }

    /// The name of the thing of `kind` with `id` as the engine has it now;
    /// `None` when it no longer exists.
    pub(crate) fn name_of(&self, kind: Kind, id: &str) -> Option<String> {
        match kind {
            Kind::Container => self
                .containers
                .iter()
                .find(|c| c.id == id)
                .map(Container::display_name),
            Kind::Image => self.image(id).map(Image::display_name),
            Kind::Volume => self
                .volumes
                .iter()
                .find(|v| v.name == id)
                .map(|v| v.name.clone()),
            Kind::Network => self
                .networks
                .iter()
                .find(|n| n.id == id)
                .map(|n| n.name.clone()),
            Kind::BuildCache => self
                .build_cache
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.description.clone()),
            Kind::Log => self
                .logs
                .iter()
                .find(|log| crate::model::log_item_id(log) == id)
                .map(|log| log.name.clone()),
        }
    }

    pub(crate) fn image(&self, id: &str) -> Option<&Image> {
        self.images.iter().find(|image| image.id == id)
    }

    /// Images by ID.
    pub(crate) fn images_by_id(&self) -> HashMap<&str, &Image> {
        self.images
            .iter()
            .map(|image| (image.id.as_str(), image))
            .collect()
    }
}

/// The chain ID of each layer, from the diff IDs oldest first, as the image spec
/// defines it: `chain[0] = diff[0]`, `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let digest = Sha256::digest(format!("{parent} {diff_id}").as_bytes());
                format!("sha256:{}", hex::encode(digest))
            }
        };
        chain.push(next);
    }
    chain
}

/// Matches history sizes to layers. History entries with a non-zero size line up
/// one to one with the RootFS layers, oldest first. When they do not (a layer that
/// added zero bytes, or a history that was squashed), the sizes are assigned in
/// order and whatever the image's total says is left over goes to the top layer;
/// the result is then marked inexact.
pub(crate) fn layers_from(found: &ImageLayers, image_size: u64) -> (Vec<Layer>, bool) {
    let chain = chain_ids(&found.diff_ids);
    let entries: Vec<(u64, bool, String)> = found
        .history_sizes
        .iter()
        .enumerate()
        .filter(|(_, size)| **size > 0)
        .map(|(index, size)| {
            let buildkit = found.history_buildkit.get(index).copied().unwrap_or(false);
            let created_by = found
                .history_created_by
                .get(index)
                .cloned()
                .unwrap_or_default();
            (*size, buildkit, created_by)
        })
        .collect();
    let nonzero: Vec<u64> = entries.iter().map(|(size, _, _)| *size).collect();
    let aligned = nonzero.len() == chain.len();
    // When history and layers do not line up, any BuildKit step marks them all.
    let any_buildkit = found.history_buildkit.iter().any(|b| *b);
    let buildkit: Vec<bool> = (0..chain.len())
        .map(|index| {
            if aligned {
                entries[index].1
            } else {
                any_buildkit
            }
        })
        .collect();
    let created_by: Vec<String> = (0..chain.len())
        .map(|index| {
            if aligned {
                entries[index].2.clone()
            } else {
                String::new()
            }
        })
        .collect();
    let mut exact = aligned;
    let mut sizes: Vec<u64> = (0..chain.len())
        .map(|index| nonzero.get(index).copied().unwrap_or(0))
        .collect();
    if nonzero.len() > chain.len()
        && let Some(top) = sizes.last_mut()
    {
        *top += nonzero[chain.len()..].iter().sum::<u64>();
    }
    let total: u64 = sizes.iter().sum();
    if image_size > 0 && total != image_size {
        exact = false;
        if image_size > total
            && let Some(top) = sizes.last_mut()
        {
            *top += image_size - total;
        }
    }
    let layers = chain
        .into_iter()
        .zip(found.diff_ids.iter())
        .zip(sizes)
        .zip(buildkit)
        .zip(created_by)
        .map(
            |((((chain_id, diff_id), size), buildkit), created_by)| Layer {
                chain_id,
                diff_id: diff_id.clone(),
                size,
                buildkit,
                created_by,
            },
        )
        .collect();
    (layers, exact)
}

/// The bytes of all the images' layers, each counted once.
fn distinct_layers_size(images: &[Image]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    images
        .iter()
        .flat_map(|image| image.layers.iter())
        .filter(|layer| seen.insert(layer.chain_id.as_str()))
        .map(|layer| layer.size)
        .sum()
}
/// The engine's container records read from its data root, with their counts
/// per state; `None` when they could not all be read.
pub(crate) type Records =
    tokio::task::JoinHandle<Option<(Vec<Container>, crate::model::StateCounts)>>;

/// The lists without sizes; the containers from `records` when they agree
/// with the engine's counts, else from the engine.
async fn listing(engine: &impl Engine, records: Option<Records>) -> Result<DiskUsage> {
    let Some(records) = records else {
        return engine
            .listing(true)
            .await
            .context("listing containers, images and volumes");
    };
    let (usage, counts, read) = tokio::join!(engine.listing(false), engine.state_counts(), records);
    let mut usage = usage.context("listing images and volumes")?;
    match (counts, read) {
        (Ok(counts), Ok(Some((containers, on_disk)))) if counts == on_disk => {
            usage.containers = containers;
            usage.containers_from_records = true;
        }
        _ => {
            usage.containers = engine.containers().await.context("listing containers")?;
        }
    }
    Ok(usage)
}

/// Each container's finish time: from its saved state on disk when that was
/// read, else from the engine; sorted oldest first.
async fn with_finish_times(
    engine: &impl Engine,
    containers: Vec<Container>,
    saved_finish: &(dyn Fn(&str) -> Option<Option<i64>> + Sync),
) -> Result<Vec<Container>> {
    let mut containers: Vec<Container> = futures_util::stream::iter(containers)
        .map(|mut container| async move {
            // A container that never started has no finish time to look up.
            if container.state == ContainerState::Created {
                return Ok::<_, anyhow::Error>(container);
            }
            if let Some(finished_at) = saved_finish(&container.id) {
                container.finished_at = finished_at;
                return Ok(container);
            }
            // A container removed since the listing has no details; keep what we have.
            if let Some(details) = engine
                .container_details(&container.id)
                .await
                .with_context(|| format!("inspecting container {}", short_id(&container.id)))?
            {
                container.finished_at = details.finished_at;
            }
            Ok::<_, anyhow::Error>(container)
        })
        .buffered(INSPECT_CONCURRENCY)
        .try_collect()
        .await?;
    containers.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(containers)
}

/// Without `/system/df`, how many containers mount each volume: what the
/// engine's `UsageData.RefCount` counts (moby `volume/service` `Count`).
fn count_volume_users(volumes: &mut [Volume], containers: &[Container]) {
    let mut users: HashMap<&str, u64> = HashMap::new();
    for container in containers {
        for mount in &container.mounts {
            if mount.kind == "volume"
                && let Some(name) = &mount.name
            {
                *users.entry(name.as_str()).or_default() += 1;
            }
        }
    }
    for volume in volumes {
        if volume.ref_count.is_none() {
            volume.ref_count = Some(users.get(volume.name.as_str()).copied().unwrap_or(0));
        }
    }
}

/// The images to inspect: the engine's list, the intermediate images when
/// asked for, and the hidden parents containers run from.
fn images_to_inspect(
    engine: &impl Engine,
    from_usage: Vec<Image>,
    listed: Option<Vec<Image>>,
    hidden_too: bool,
    containers: &[Container],
) -> Vec<Image> {
    // Podman's `/system/df` names images by tag alone (`1`), calls an
    // untagged one `<none>`, and may list what `/images/json` does not:
    // there the image list is the one `/images/json` gives.
    let (mut images, all) = match (engine.info().product, listed) {
        (Product::Podman, Some(listed)) => (listed, None),
        (_, listed) => (from_usage, listed.filter(|_| hidden_too)),
    };
    if let Some(all) = all {
        let known: std::collections::HashSet<String> =
            images.iter().map(|image| image.id.clone()).collect();
        images.extend(
            all.into_iter()
                .filter(|image| image.is_dangling() && !known.contains(&image.id))
                .map(|image| Image {
                    listed: false,
                    ..image
                }),
        );
    }
    // Containers can run from an untagged parent image that the list hides:
    // fetch those too so that their layers count as in use.
    let listed: std::collections::HashSet<String> =
        images.iter().map(|image| image.id.clone()).collect();
    let mut hidden: Vec<String> = containers
        .iter()
        .map(|container| container.image_id.clone())
        .filter(|id| !id.is_empty() && !listed.contains(id))
        .collect();
    hidden.sort();
    hidden.dedup();
    for id in hidden {
        images.push(Image {
            id,
            parent_id: None,
            tags: Vec::new(),
            digests: Vec::new(),
            created: 0,
            size: 0,
            labels: BTreeMap::new(),
            layers: Vec::new(),
            layer_sizes_exact: false,
            listed: false,
            last_tagged: None,
            last_use: None,
        });
    }
    images
}

/// Each image with its layers, from what was read beforehand or from the
/// engine; sorted oldest first.
async fn with_layers(
    engine: &impl Engine,
    images: Vec<Image>,
    mut prefetched: HashMap<String, ImageLayers>,
) -> Result<Vec<Image>> {
    let mut images: Vec<Image> = futures_util::stream::iter(images)
        .map(|image| (prefetched.remove(&image.id), image))
        .map(|(prefetched, mut image)| async move {
            let found = match prefetched {
                Some(found) => Some(found),
                None => engine
                    .image_layers(&image.id)
                    .await
                    .with_context(|| format!("inspecting image {}", short_id(&image.id)))?,
            };
            if let Some(found) = found {
                let (layers, exact) = layers_from(&found, image.size);
                if !image.listed {
                    image.size = layers.iter().map(|layer| layer.size).sum();
                }
                image.layers = layers;
                image.layer_sizes_exact = exact;
                image.last_tagged = found.last_tagged;
            }
            Ok::<_, anyhow::Error>(image)
        })
        .buffered(INSPECT_CONCURRENCY)
        .try_collect()
        .await?;
    images.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(images)
}

/// The layers of every image the engine lists now, by ID. Best effort: an
/// image that cannot be read here is read again, with its error, later.
async fn image_layers_of_all(
    engine: &impl Engine,
    all: bool,
) -> (Option<Vec<Image>>, HashMap<String, ImageLayers>) {
    let Ok(listed) = engine.listed_images(all).await else {
        return (None, HashMap::new());
    };
    let ids: Vec<String> = listed.iter().map(|image| image.id.clone()).collect();
    let layers = futures_util::stream::iter(ids)
        .map(|id| async move {
            let layers = engine.image_layers(&id).await.ok().flatten();
            layers.map(|layers| (id, layers))
        })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .filter_map(|found| async move { found })
        .collect()
        .await;
    (Some(listed), layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let diffs = vec![diff(1), diff(2)];
        let chain = chain_ids(&diffs);
        assert_eq!(chain[0], diffs[0]);
        let expected = Sha256::digest(format!("{} {}", diffs[0], diffs[1]).as_bytes());
        assert_eq!(chain[1], format!("sha256:{}", hex::encode(expected)));
        // Same diffs on a different base give a different chain ID.
        let other = chain_ids(&[diff(3), diff(2)]);
        assert_ne!(other[1], chain[1]);
    }

    #[test]
    fn history_sizes_line_up_with_layers() {
        let found = ImageLayers {
            last_tagged: None,
            diff_ids: vec![diff(1), diff(2)],
            history_sizes: vec![100, 0, 0, 50, 0],
            history_buildkit: vec![false, false, false, true, false],
            history_created_by: vec![
                "COPY a".into(),
                String::new(),
                String::new(),
                "RUN b".into(),
                String::new(),
            ],
        };
        let (layers, exact) = layers_from(&found, 150);
        assert!(exact);
        assert_eq!(
            layers.iter().map(|l| l.size).collect::<Vec<_>>(),
            vec![100, 50]
        );
        assert_eq!(
            layers.iter().map(|l| l.buildkit).collect::<Vec<_>>(),
            vec![false, true]
        );
    }

    #[test]
    fn a_zero_byte_layer_falls_back_to_the_image_total() {
        let found = ImageLayers {
            last_tagged: None,
            diff_ids: vec![diff(1), diff(2), diff(3)],
            history_sizes: vec![100, 50],
            history_buildkit: vec![],
            history_created_by: vec![],
        };
        let (layers, exact) = layers_from(&found, 150);
        assert!(!exact);
        assert_eq!(layers.iter().map(|l| l.size).sum::<u64>(), 150);
    }

    #[test]
    fn short_ids_match_docker() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}
