//! Candidates of every kind but images: stopped containers, unused volumes,
//! networks and build cache records, each kept back with the first rule that
//! protects it.

use std::collections::{BTreeMap, HashSet};

use super::context::Context;
use super::items::{Item, LeftOut, Reason};
use crate::model::Kind;
use crate::model::{ContainerState, Image};
use crate::plan::rules::{CacheScope, VolumeScope};

/// Stopped containers go; anything running, paused, restarting, being removed,
/// or in a state we do not know stays. Returns the IDs of those that go.
pub(super) fn containers<'a>(
    cx: &Context<'a>,
    items: &mut Vec<Item>,
    kept: &mut Vec<LeftOut>,
) -> HashSet<&'a str> {
    let (inventory, rules, now) = (cx.inventory, cx.rules, cx.now);
    let mut removed_containers: HashSet<&str> = HashSet::new();
    for container in &inventory.containers {
        let reason = match container.state {
            ContainerState::Exited => Reason::Exited,
            ContainerState::Created => Reason::NeverStarted,
            ContainerState::Dead => Reason::Dead,
            _ => continue,
        };
        let stopped_since = container.finished_at.unwrap_or(container.created);
        let kubelets = !rules.kubernetes
            && container
                .labels
                .keys()
                .any(|key| key.starts_with("io.kubernetes."));
        let rule = cx
            .left_out(&container.id)
            .or_else(|| {
                kubelets.then(|| {
                    "kubelet's to collect (io.kubernetes.* labels; --include-kubernetes takes them)"
                        .to_string()
                })
            })
            .or_else(|| rules.kept_by(&container.names, &container.labels))
            .or_else(|| rules.filtered_out_by(container.created, &container.labels))
            .or_else(|| {
                let grace = i64::try_from(rules.stopped_for?.as_secs()).ok()?;
                (now - stopped_since < grace)
                    .then(|| "--stopped-for (stopped more recently)".to_string())
            });
        if let Some(rule) = rule {
            kept.push(LeftOut {
                kind: Kind::Container,
                id: container.id.clone(),
                name: container.display_name(),
                rule,
            });
            continue;
        }
        removed_containers.insert(&container.id);
        items.push(Item {
            created: container.created,
            finished_at: container.finished_at,
            predicted_bytes: container.size_rw,
            ..Item::new(
                Kind::Container,
                container.id.clone(),
                container.display_name(),
                reason,
            )
        });
    }

    removed_containers
}

/// Build cache records not in use: unshared ones, or all. A record shared with
/// an image frees nothing while that image stays; its bytes count with the
/// image's layers when the image goes too.
///
/// BuildKit calls a record shared while its layers are a prefix of some
/// image's chain (moby v20.10.24 `builder/builder-next/imagerefchecker`);
/// which image is not in the API. So when planned images have BuildKit-made
/// layers that no image that stays has, the shared records go with them, as
/// `docker system prune` finds them once the images are gone: each is pruned
/// only if BuildKit no longer finds it shared then (see [`Reason::CacheOfRemovedImages`]),
/// and a record shared with an image that stays is left, and reported so.
pub(super) fn build_cache(
    cx: &Context,
    scope: CacheScope,
    planned_images: &[&Image],
    kept: &mut Vec<LeftOut>,
) -> Vec<Item> {
    let (inventory, rules) = (cx.inventory, cx.rules);
    let going: HashSet<&str> = planned_images
        .iter()
        .map(|image| image.id.as_str())
        .collect();
    let staying_layers: HashSet<&str> = inventory
        .images
        .iter()
        .filter(|image| !going.contains(image.id.as_str()))
        .flat_map(|image| image.layers.iter().map(|layer| layer.chain_id.as_str()))
        .collect();
    let frees_buildkit_layers = planned_images.iter().any(|image| {
        image
            .layers
            .iter()
            .any(|layer| layer.buildkit && !staying_layers.contains(layer.chain_id.as_str()))
    });
    let mut items = Vec::new();
    let no_labels = BTreeMap::new();
    let budget = rules
        .build_cache_keep
        .map(|keep| within_budget(&inventory.build_cache, keep))
        .unwrap_or_default();
    for record in &inventory.build_cache {
        if record.in_use
            || (record.shared && scope == CacheScope::Unshared && !frees_buildkit_layers)
        {
            continue;
        }
        let reason = if record.shared && scope == CacheScope::Unshared {
            Reason::CacheOfRemovedImages
        } else {
            Reason::UnusedBuildCache
        };
        let names = [record.id.clone(), record.description.clone()];
        let rule = cx
            .left_out(&record.id)
            .or_else(|| rules.kept_by(&names, &no_labels))
            .or_else(|| rules.filtered_out_by(record.created.unwrap_or(i64::MIN), &no_labels))
            .or_else(|| {
                budget.contains(record.id.as_str()).then(|| {
                    format!(
                        "--build-cache-keep {} (among the most recently used)",
                        humansize::format_size(
                            rules.build_cache_keep.unwrap_or(0),
                            humansize::DECIMAL
                        )
                    )
                })
            });
        let name = if record.description.is_empty() {
            record.kind.clone()
        } else {
            record.description.clone()
        };
        if let Some(rule) = rule {
            kept.push(LeftOut {
                kind: Kind::BuildCache,
                id: record.id.clone(),
                name,
                rule,
            });
            continue;
        }
        items.push(Item {
            created: record.created.unwrap_or(0),
            last_use: record
                .last_used
                .or(record.created)
                .map(|at| crate::model::LastUse {
                    at,
                    source: crate::model::UseSource::Buildkit,
                }),
            predicted_bytes: if record.shared { 0 } else { record.size },
            ..Item::new(Kind::BuildCache, record.id.clone(), name, reason)
        });
    }
    items
}

/// The records `--build-cache-keep` keeps: the most recently used, while
/// all that stays (records in use first, which stay anyway) fits in `keep`
/// bytes, as BuildKit's `keep-storage` prune keeps them.
fn within_budget(records: &[crate::model::BuildCacheRecord], keep: u64) -> HashSet<&str> {
    let mut order: Vec<&crate::model::BuildCacheRecord> = records.iter().collect();
    order.sort_by_key(|record| {
        (
            !record.in_use,
            std::cmp::Reverse(record.last_used.or(record.created).unwrap_or(0)),
        )
    });
    let mut total = 0u64;
    let mut kept = HashSet::new();
    for record in order {
        total = total.saturating_add(record.size);
        if total > keep {
            break;
        }
        kept.insert(record.id.as_str());
    }
    kept
}

/// User-defined networks that no remaining container is attached to.
pub(super) fn networks(
    cx: &Context,
    removed_containers: &HashSet<&str>,
    items: &mut Vec<Item>,
    kept: &mut Vec<LeftOut>,
) {
    let (inventory, rules) = (cx.inventory, cx.rules);
    let attached: HashSet<&str> = inventory
        .containers
        .iter()
        .filter(|container| !removed_containers.contains(container.id.as_str()))
        .flat_map(|container| container.networks.iter().map(String::as_str))
        .collect();
    for network in &inventory.networks {
        if network.is_predefined()
            || attached.contains(network.name.as_str())
            || attached.contains(network.id.as_str())
        {
            continue;
        }
        let created = network.created.unwrap_or(i64::MIN);
        let rule = cx
            .left_out(&network.id)
            .or_else(|| rules.kept_by(std::slice::from_ref(&network.name), &network.labels))
            .or_else(|| rules.filtered_out_by(created, &network.labels));
        if let Some(rule) = rule {
            kept.push(LeftOut {
                kind: Kind::Network,
                id: network.id.clone(),
                name: network.name.clone(),
                rule,
            });
            continue;
        }
        items.push(Item {
            created: network.created.unwrap_or(0),
            ..Item::new(
                Kind::Network,
                network.id.clone(),
                network.name.clone(),
                Reason::UnusedNetwork,
            )
        });
    }
}

/// Volumes that no remaining container mounts: anonymous ones, or all.
pub(super) fn volumes(
    cx: &Context,
    scope: VolumeScope,
    removed_containers: &HashSet<&str>,
    items: &mut Vec<Item>,
    kept: &mut Vec<LeftOut>,
) {
    let (inventory, rules) = (cx.inventory, cx.rules);
    let mounted: HashSet<&str> = inventory
        .containers
        .iter()
        .filter(|container| !removed_containers.contains(container.id.as_str()))
        .flat_map(|container| container.mounts.iter())
        .filter_map(|mount| mount.name.as_deref())
        .collect();
    for volume in &inventory.volumes {
        if mounted.contains(volume.name.as_str()) {
            continue;
        }
        let anonymous = volume.is_anonymous();
        if !anonymous && scope != VolumeScope::All {
            continue;
        }
        // A volume without a creation time is older than any `until`.
        let rule = cx
            .left_out(&volume.name)
            .or_else(|| rules.kept_by(std::slice::from_ref(&volume.name), &volume.labels))
            .or_else(|| rules.filtered_out_by(volume.created.unwrap_or(i64::MIN), &volume.labels));
        if let Some(rule) = rule {
            kept.push(LeftOut {
                kind: Kind::Volume,
                id: volume.name.clone(),
                name: volume.name.clone(),
                rule,
            });
            continue;
        }
        items.push(Item {
            created: volume.created.unwrap_or(0),
            predicted_bytes: volume.size.unwrap_or(0),
            ..Item::new(
                Kind::Volume,
                volume.name.clone(),
                volume.name.clone(),
                if anonymous {
                    Reason::AnonymousVolume
                } else {
                    Reason::NamedVolume
                },
            )
        });
    }
}
