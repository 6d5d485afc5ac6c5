//! When each image was last used. Docker records no such time (moby#4237), so
//! it is put together from every source there is, the latest winning:
//!
//! 1. a running, paused or restarting container uses it, or an image built
//!    on it: now;
//! 2. a container present uses it (or an image built on it): the later of
//!    its creation and its finish;
//! 3. the engine's events since the last run: a container created or started
//!    from it (the engine holds its last 256 events in memory);
//! 4. the state file: an earlier run saw it in use then;
//! 5. `Metadata.LastTagTime`: pulled or tagged then;
//! 6. its creation time, the floor.
//!
//! Pure: the inventory, the events and the remembered times in, times out.

use std::collections::HashMap;

use crate::engine::UseEvent;
use crate::inventory::Inventory;
use crate::model::{ContainerState, Image, LastUse, UseSource};

/// Fills in every image's `last_use` from the inventory, the engine's
/// `events` and the times `remembered` from earlier runs, at `now`.
pub(crate) fn annotate(
    inventory: &mut Inventory,
    events: &[UseEvent],
    remembered: &HashMap<String, i64>,
    now: i64,
) {
    let mut direct: HashMap<String, LastUse> = HashMap::new();
    let mut note = |id: &str, at: i64, source: UseSource| {
        let candidate = LastUse { at, source };
        direct
            .entry(id.to_string())
            .and_modify(|known| *known = later(*known, candidate))
            .or_insert(candidate);
    };
    let container_images: HashMap<&str, &str> = inventory
        .containers
        .iter()
        .map(|container| (container.id.as_str(), container.image_id.as_str()))
        .collect();
    for container in &inventory.containers {
        if container.image_id.is_empty() {
            continue;
        }
        let running = matches!(
            container.state,
            ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
        );
        if running {
            note(&container.image_id, now, UseSource::Running);
        } else {
            let at = container.finished_at.map_or(container.created, |finished| {
                finished.max(container.created)
            });
            note(&container.image_id, at, UseSource::Container);
        }
    }
    for event in events {
        let id = container_images
            .get(event.container.as_str())
            .map(|id| (*id).to_string())
            .or_else(|| resolve(&inventory.images, &event.image));
        if let Some(id) = id {
            note(&id, event.time.min(now), UseSource::Event);
        }
    }
    for (id, at) in remembered {
        note(id, (*at).min(now), UseSource::State);
    }

    // A use of an image is a use of every image it is built on: their
    // layers are the ones it runs on.
    let by_top: HashMap<&str, Vec<usize>> = top_layers(&inventory.images);
    let by_id: HashMap<&str, usize> = inventory
        .images
        .iter()
        .enumerate()
        .map(|(index, image)| (image.id.as_str(), index))
        .collect();
    let mut uses: Vec<LastUse> = inventory
        .images
        .iter()
        .map(|image| {
            let mut best = LastUse {
                at: image.created,
                source: UseSource::Created,
            };
            if let Some(tagged) = image.last_tagged {
                best = later(
                    best,
                    LastUse {
                        at: tagged.min(now),
                        source: UseSource::Tagged,
                    },
                );
            }
            best
        })
        .collect();
    for (index, image) in inventory.images.iter().enumerate() {
        let Some(used) = direct.get(image.id.as_str()).copied() else {
            continue;
        };
        uses[index] = later(uses[index], used);
        for ancestor in ancestors(image, &inventory.images, &by_top, &by_id) {
            uses[ancestor] = later(uses[ancestor], used);
        }
    }
    for (image, used) in inventory.images.iter_mut().zip(uses) {
        image.last_use = Some(used);
    }
}

/// The later of two uses; at the same time, the more direct source.
fn later(a: LastUse, b: LastUse) -> LastUse {
    if b.at > a.at || (b.at == a.at && b.source < a.source) {
        b
    } else {
        a
    }
}

/// Images by the chain ID of their top layer: an image built on another has
/// that image's top chain ID among its own (a chain ID names the whole
/// stack under it).
fn top_layers(images: &[Image]) -> HashMap<&str, Vec<usize>> {
    let mut by_top: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, image) in images.iter().enumerate() {
        if let Some(top) = image.layers.last() {
            by_top.entry(top.chain_id.as_str()).or_default().push(index);
        }
    }
    by_top
}

/// The indices of the images `image` is built on: by layers (a shorter
/// stack it starts with) and by the parents the engine names.
fn ancestors(
    image: &Image,
    images: &[Image],
    by_top: &HashMap<&str, Vec<usize>>,
    by_id: &HashMap<&str, usize>,
) -> Vec<usize> {
    let mut found = Vec::new();
    let below = image.layers.len().saturating_sub(1);
    for layer in &image.layers[..below] {
        if let Some(indices) = by_top.get(layer.chain_id.as_str()) {
            found.extend(indices.iter().copied());
        }
    }
    let mut parent = image.parent_id.as_deref();
    // Bounded: a loop of parents (never made by an engine) ends here.
    for _ in 0..images.len() {
        let Some(index) = parent.and_then(|id| by_id.get(id)).copied() else {
            break;
        };
        found.push(index);
        parent = images[index].parent_id.as_deref();
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// The image an event names: a full or short ID, or a reference as the user
/// gave it (`app`, `app:1`, `docker.io/library/app:1`), by the tags images
/// have now.
fn resolve(images: &[Image], reference: &str) -> Option<String> {
    let bare = reference.strip_prefix("sha256:").unwrap_or(reference);
    if bare.len() >= 12 && bare.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        let matching: Vec<&Image> = images
            .iter()
            .filter(|image| {
                image
                    .id
                    .strip_prefix("sha256:")
                    .is_some_and(|hex| hex.starts_with(bare))
            })
            .collect();
        if let [only] = matching.as_slice() {
            return Some(only.id.clone());
        }
    }
    let wanted = normalize(reference);
    images
        .iter()
        .find(|image| image.tags.iter().any(|tag| normalize(tag) == wanted))
        .map(|image| image.id.clone())
}

/// A reference as the engine stores it: `latest` when no tag is given, and
/// without the default registry's names.
fn normalize(reference: &str) -> String {
    let name = reference.split('@').next().unwrap_or(reference);
    let short = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') {
        short.to_string()
    } else {
        format!("{short}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, engine, image, layer};

    fn inventory(images: Vec<Image>, containers: Vec<crate::model::Container>) -> Inventory {
        Inventory {
            engine: engine(),
            containers,
            images,
            volumes: Vec::new(),
            networks: Vec::new(),
            build_cache: Vec::new(),
            layers_size: 0,
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
        }
    }

    fn event(time: i64, container: &str, image: &str) -> UseEvent {
        UseEvent {
            time,
            container: container.into(),
            image: image.into(),
        }
    }

    fn img(id: &str, tags: &[&str], created: i64, layers: Vec<crate::model::Layer>) -> Image {
        Image {
            id: format!("sha256:{}", crate::testing::hex(id)),
            created,
            ..image(id, tags, layers)
        }
    }

    #[test]
    fn the_latest_source_wins_and_a_child_counts_as_use_of_its_base() {
        let base = img("base", &["base:1"], 100, vec![layer("l1", 10)]);
        let mut child = img(
            "child",
            &["app:1"],
            200,
            vec![layer("l1", 10), layer("l2", 10)],
        );
        child.last_tagged = Some(300);
        let lonely = img("lonely", &["tool:1"], 150, vec![layer("l3", 10)]);
        let mut tagged_only = img("pulled", &["pulled:1"], 50, vec![layer("l4", 10)]);
        tagged_only.last_tagged = Some(900);
        let mut job = container("job", ContainerState::Exited, &child.id);
        job.created = 400;
        job.finished_at = Some(500);
        let mut inventory = inventory(vec![base, child, lonely, tagged_only], vec![job]);
        let events = [event(700, "gone", "tool:1")];
        let remembered = HashMap::from([(inventory.images[0].id.clone(), 450)]);
        annotate(&mut inventory, &events, &remembered, 1000);
        let uses: Vec<LastUse> = inventory
            .images
            .iter()
            .map(|image| image.last_use.unwrap())
            .collect();
        let at = |at, source| LastUse { at, source };
        // The base: its child's container (500) beats the state file (450).
        assert_eq!(uses[0], at(500, UseSource::Container));
        assert_eq!(uses[1], at(500, UseSource::Container));
        // A --rm job gone: known from the events only.
        assert_eq!(uses[2], at(700, UseSource::Event));
        assert_eq!(uses[3], at(900, UseSource::Tagged));
    }

    #[test]
    fn a_running_container_is_use_now_and_nothing_is_in_the_future() {
        let base = img("base", &["base:1"], 100, vec![layer("l1", 10)]);
        let running = container("run", ContainerState::Running, &base.id);
        let mut inventory = inventory(vec![base], vec![running]);
        let remembered = HashMap::from([(inventory.images[0].id.clone(), 5000)]);
        annotate(&mut inventory, &[], &remembered, 1000);
        assert_eq!(
            inventory.images[0].last_use,
            Some(LastUse {
                at: 1000,
                source: UseSource::Running
            })
        );
    }

    #[test]
    fn event_references_resolve_as_the_engine_names_them() {
        let images = vec![
            img("a", &["app:latest"], 1, vec![layer("l1", 1)]),
            img(
                "b",
                &["registry.example/team/app:2"],
                1,
                vec![layer("l2", 1)],
            ),
        ];
        let a = Some(images[0].id.clone());
        let b = Some(images[1].id.clone());
        assert_eq!(resolve(&images, "app"), a);
        assert_eq!(resolve(&images, "docker.io/library/app:latest"), a);
        assert_eq!(resolve(&images, "registry.example/team/app:2"), b);
        assert_eq!(resolve(&images, &images[1].id[7..19]), b);
        assert_eq!(resolve(&images, "app:3"), None);
    }
}
