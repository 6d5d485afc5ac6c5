//! Images: which go, and how many bytes each frees by layer reference counts.

use std::collections::{HashMap, HashSet};

use super::context::{Context, images_used_by_remaining};
use super::items::{BUILD_CACHE_HOLDER, FreedLayer, Item, KeptLayer, LeftOut, Reason};
use crate::inventory::Inventory;
use crate::model::Kind;
use crate::model::{Image, ImageStore, short_id};

/// Unused images: dangling ones, and with `--all` every tagged one too, that no
/// remaining container uses and no remaining image is built on. What each
/// frees is [`account`]'s.
pub(super) fn select<'a>(
    cx: &Context<'a>,
    removed_containers: &HashSet<&str>,
    kept: &mut Vec<LeftOut>,
) -> Vec<&'a Image> {
    let (inventory, rules) = (cx.inventory, cx.rules);
    // Images used by a container that stays are never planned.
    let images_in_use = images_used_by_remaining(inventory, removed_containers);

    // Image candidates: dangling ones, and with --all every tagged one too, that
    // no remaining container uses.
    let newest = rules
        .keep_last
        .map(|count| newest_per_repository(inventory, count))
        .unwrap_or_default();
    // On the containerd image store the untagged intermediate images of
    // classic builds, hidden from the image list, are removed by the engine's
    // prune (moby v26.1.5 `pruneUnused`) though a tagged image is built on
    // them: with --prune-scope they are dangling images like any other. By
    // default they stay, as the same images do on overlay2, where the engine
    // keeps a parent of an image that stays.
    let containerd_store = inventory.engine.image_store == ImageStore::Containerd;
    let intermediates = containerd_store && rules.prune_scope;
    let mut candidates: Vec<&Image> = Vec::new();
    for image in inventory.images.iter().filter(|image| {
        (image.listed || (intermediates && image.is_dangling()))
            && (image.is_dangling() || rules.all_images)
            && !images_in_use.contains(image.id.as_str())
    }) {
        let references: Vec<String> = image.tags.iter().chain(&image.digests).cloned().collect();
        let rule = cx
            .left_out(&image.id)
            .or_else(|| rules.kept_by(&references, &image.labels))
            .or_else(|| rules.filtered_out_by(image.created, &image.labels))
            .or_else(|| newest.get(image.id.as_str()).cloned())
            .or_else(|| idle_rule(rules.min_idle?, image, cx.now));
        match rule {
            Some(rule) => kept.push(LeftOut {
                kind: Kind::Image,
                id: image.id.clone(),
                name: image.display_name(),
                rule,
            }),
            None => candidates.push(image),
        }
    }
    // An image that a remaining image is built on cannot go (the engine refuses,
    // and its layers stay anyway); that may keep its own parents in turn. On
    // the containerd image store a parent is only a record: the engine removes
    // it and the child keeps the layers; its prune does, so --prune-scope does.
    loop {
        if intermediates {
            break;
        }
        let going: HashSet<&str> = candidates.iter().map(|image| image.id.as_str()).collect();
        let blocked: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, parent)| {
                inventory.images.iter().any(|child| {
                    child.id != parent.id
                        && !going.contains(child.id.as_str())
                        && child.is_built_on(parent)
                })
            })
            .map(|(index, _)| index)
            .collect();
        if blocked.is_empty() {
            break;
        }
        for index in blocked.into_iter().rev() {
            let image = candidates.remove(index);
            kept.push(LeftOut {
                kind: Kind::Image,
                id: image.id.clone(),
                name: image.display_name(),
                rule: "an image that stays is built on it".into(),
            });
        }
    }
    candidates
}

/// `--min-idle`: why an image used, pulled, tagged or created within the
/// grace period stays.
fn idle_rule(min_idle: std::time::Duration, image: &Image, now: i64) -> Option<String> {
    let used = image.last_use.unwrap_or(crate::model::LastUse {
        at: image
            .last_tagged
            .unwrap_or(image.created)
            .max(image.created),
        source: crate::model::UseSource::Created,
    });
    let idle = now.saturating_sub(used.at);
    let grace = i64::try_from(min_idle.as_secs()).unwrap_or(i64::MAX);
    (idle < grace).then(|| {
        format!(
            "--min-idle {} (last used {} ago: {})",
            humantime::format_duration(min_idle),
            humantime::format_duration(std::time::Duration::from_secs(
                u64::try_from(idle.max(0) / 60 * 60).unwrap_or(0)
            )),
            used.source.describe()
        )
    })
}

/// The planned images as items, each with the layers it frees (counted once
/// across the plan) and those that stay, given the build cache records that
/// go (`cache_items`).
pub(super) fn account(
    cx: &Context,
    planned_images: &[&Image],
    cache_items: &[Item],
    items: &mut Vec<Item>,
) {
    let inventory = cx.inventory;
    let holders = layer_holders(inventory, planned_images);

    // BuildKit's cache keeps the layers it built after their image goes (the
    // records show as shared, then unshared). Which record holds which layer is not
    // in the API, so while any build step cache remains, a BuildKit-made layer
    // that nothing else holds is counted as kept by the cache: never freed bytes
    // that would not be.
    let cache_going: HashSet<&str> = cache_items.iter().map(|item| item.id.as_str()).collect();
    // Records not listed (API 1.41 without `/system/df`) cannot be in the
    // plan: whether a build step's is among them was read from BuildKit's file.
    let cache_holds_layers = inventory
        .build_cache_unlisted
        .as_ref()
        .is_some_and(|unlisted| unlisted.holds_build_steps)
        || inventory
            .build_cache
            .iter()
            .any(|record| record.kind == "regular" && !cache_going.contains(record.id.as_str()));

    let mut counted: HashSet<&str> = HashSet::new();
    for image in planned_images {
        let mut frees = Vec::new();
        let mut keeps = Vec::new();
        let mut bytes = 0;
        for layer in &image.layers {
            if let Some(holder) = holders.get(layer.chain_id.as_str()) {
                keeps.push(KeptLayer {
                    chain_id: layer.chain_id.clone(),
                    bytes: layer.size,
                    held_by: holder.clone(),
                });
                continue;
            }
            if layer.buildkit && cache_holds_layers {
                keeps.push(KeptLayer {
                    chain_id: layer.chain_id.clone(),
                    bytes: layer.size,
                    held_by: BUILD_CACHE_HOLDER.to_string(),
                });
                continue;
            }
            if counted.insert(layer.chain_id.as_str()) {
                bytes += layer.size;
                frees.push(FreedLayer {
                    chain_id: layer.chain_id.clone(),
                    bytes: layer.size,
                });
            }
        }
        if image.layers.is_empty() {
            // No layer chain (the image vanished mid-inventory): the engine's own
            // figure is the best estimate we have.
            bytes = image.size;
        }
        items.push(Item {
            tags: image.tags.clone(),
            created: image.created,
            last_use: image.last_use,
            predicted_bytes: bytes,
            frees_layers: frees,
            keeps_layers: keeps,
            ..Item::new(
                Kind::Image,
                image.id.clone(),
                image.display_name(),
                if image.is_dangling() {
                    Reason::Dangling
                } else {
                    Reason::Unused
                },
            )
        });
    }
}

/// Who holds each layer that stays: every image not planned, listed or not (a
/// hidden image is there because a container uses it).
fn layer_holders<'a>(
    inventory: &'a Inventory,
    planned_images: &[&Image],
) -> HashMap<&'a str, String> {
    let planned_ids: HashSet<&str> = planned_images
        .iter()
        .map(|image| image.id.as_str())
        .collect();
    // What remains holds layers: every image not planned, listed or not (a hidden
    // image is there because a container uses it). The holder named for a layer is
    // a tagged image using it, else any image, else a container on it; among
    // those, the one with the shortest chain: the image that brought the layer.
    let mut holders: HashMap<&str, String> = HashMap::new();
    let mut remaining: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|image| !planned_ids.contains(image.id.as_str()))
        .collect();
    remaining.sort_by(|a, b| {
        (a.layers.len(), a.created, &a.id).cmp(&(b.layers.len(), b.created, &b.id))
    });
    for pass in [true, false] {
        for image in remaining.iter().filter(|image| image.is_dangling() != pass) {
            let holder = if image.listed {
                format!("image {}", image.label())
            } else {
                let user = inventory
                    .containers
                    .iter()
                    .find(|container| container.image_id == image.id)
                    .map_or_else(
                        || short_id(&image.id).to_string(),
                        crate::model::Container::display_name,
                    );
                format!("container {user}")
            };
            for layer in &image.layers {
                holders
                    .entry(layer.chain_id.as_str())
                    .or_insert_with(|| holder.clone());
            }
        }
    }
    holders
}

/// For `--keep-last N`: the N newest images of each repository, with the rule.
fn newest_per_repository(inventory: &Inventory, count: usize) -> HashMap<&str, String> {
    let mut by_repository: HashMap<&str, Vec<&Image>> = HashMap::new();
    for image in inventory.images.iter().filter(|image| image.listed) {
        for tag in &image.tags {
            by_repository
                .entry(repository_of(tag))
                .or_default()
                .push(image);
        }
    }
    let mut newest = HashMap::new();
    for (repository, mut images) in by_repository {
        images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        images.dedup_by(|a, b| a.id == b.id);
        for image in images.into_iter().take(count) {
            newest
                .entry(image.id.as_str())
                .or_insert_with(|| format!("--keep-last {count} ({repository})"));
        }
    }
    newest
}

/// `registry:5000/team/app:1.2` → `registry:5000/team/app`.
fn repository_of(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => reference,
    }
}
