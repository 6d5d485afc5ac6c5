//! What keeps filling the disk (`df --why`): the patterns behind the garbage,
//! not the items one by one. Containers whose json-file log has no size limit;
//! stopped copies of one image and command (`docker run` without `--rm`, or a
//! restart loop); images rebuilt under one tag, leaving dangling copies; the
//! build cache's growth; volumes no container mounts. Pure: the inventory,
//! the plan and what was measured in, figures out.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::inventory::Inventory;
use crate::model::{Image, Kind, LogConfig};
use crate::plan::Plan;

const DAY: i64 = 86_400;
/// Fewer stopped copies than this are not a pattern.
const MIN_COPIES: usize = 3;
/// A volume nothing mounts, created longer ago than this, is listed.
const IDLE_VOLUME_AFTER: i64 = 7 * DAY;
/// At most this many rows per section.
const ROWS: usize = 10;

/// The `daemon.json` lines that cap every new container's json-file log.
pub(crate) const DAEMON_JSON_CAP: &str =
    r#"{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}"#;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct Sources {
    pub(crate) uncapped_logs: Vec<UncappedLog>,
    pub(crate) stopped_copies: Vec<Copies>,
    pub(crate) rebuilt_tags: Vec<Rebuilt>,
    pub(crate) build_cache: Option<CacheGrowth>,
    pub(crate) unmounted_volumes: Vec<Unmounted>,
}

/// A container whose json-file log has no `max-size`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct UncappedLog {
    pub(crate) container_id: String,
    pub(crate) name: String,
    pub(crate) running: bool,
    pub(crate) bytes: u64,
}

/// Stopped containers of one image and command.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Copies {
    pub(crate) image: String,
    pub(crate) command: String,
    pub(crate) count: usize,
    /// Unix seconds: the oldest copy's creation.
    pub(crate) since: i64,
    pub(crate) bytes: u64,
}

/// Dangling images that were builds of one tag.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Rebuilt {
    pub(crate) tag: String,
    pub(crate) dangling: usize,
    pub(crate) since: i64,
    pub(crate) per_day: f64,
    /// What removing them frees (the default plan's figure).
    pub(crate) bytes: u64,
}

/// The build cache: how much, since when, how fast.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct CacheGrowth {
    pub(crate) records: usize,
    pub(crate) bytes: u64,
    pub(crate) since: i64,
    pub(crate) bytes_per_day: f64,
}

/// A volume no container mounts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Unmounted {
    pub(crate) name: String,
    pub(crate) created: i64,
    pub(crate) bytes: Option<u64>,
}

/// What measured the logs and read their settings.
pub(crate) struct LogFacts<'a> {
    /// Container ID → bytes its logs take (all files).
    pub(crate) bytes: &'a HashMap<String, u64>,
    /// Container ID → its log settings as the engine saved them.
    pub(crate) configs: &'a HashMap<String, LogConfig>,
}

pub(crate) fn sources(inventory: &Inventory, plan: &Plan, logs: &LogFacts, now: i64) -> Sources {
    Sources {
        uncapped_logs: uncapped_logs(inventory, logs),
        stopped_copies: stopped_copies(inventory),
        rebuilt_tags: rebuilt_tags(inventory, plan, now),
        build_cache: build_cache(inventory, now),
        unmounted_volumes: unmounted_volumes(inventory, now),
    }
}

fn uncapped_logs(inventory: &Inventory, logs: &LogFacts) -> Vec<UncappedLog> {
    let mut found: Vec<UncappedLog> = inventory
        .containers
        .iter()
        .filter(|container| {
            logs.configs.get(&container.id).is_some_and(|config| {
                matches!(config.driver.as_str(), "json-file" | "")
                    && !config.options.contains_key("max-size")
            })
        })
        .map(|container| UncappedLog {
            container_id: container.id.clone(),
            name: container.display_name(),
            running: !container.state.is_stopped(),
            bytes: logs.bytes.get(&container.id).copied().unwrap_or(0),
        })
        .filter(|log| log.bytes > 0)
        .collect();
    found.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    found.truncate(ROWS);
    found
}

fn stopped_copies(inventory: &Inventory) -> Vec<Copies> {
    let mut groups: BTreeMap<(&str, &str), Copies> = BTreeMap::new();
    for container in inventory.containers.iter().filter(|c| c.state.is_stopped()) {
        let image = inventory
            .image(&container.image_id)
            .map_or_else(|| container.image.clone(), Image::label);
        let group = groups
            .entry((container.image_id.as_str(), container.command.as_str()))
            .or_insert_with(|| Copies {
                image,
                command: container.command.clone(),
                count: 0,
                since: container.created,
                bytes: 0,
            });
        group.count += 1;
        group.since = group.since.min(container.created);
        group.bytes += container.size_rw;
    }
    let mut found: Vec<Copies> = groups
        .into_values()
        .filter(|group| group.count >= MIN_COPIES)
        .collect();
    found.sort_by(|a, b| b.count.cmp(&a.count).then(b.bytes.cmp(&a.bytes)));
    found.truncate(ROWS);
    found
}

/// Each dangling image is a build of the tagged image that shares the most
/// of its layers with it (a rebuild changes the steps after the first
/// changed one, and keeps the ones before), when that one is newer.
fn rebuilt_tags(inventory: &Inventory, plan: &Plan, now: i64) -> Vec<Rebuilt> {
    let planned: HashMap<&str, u64> = plan
        .items_of(Kind::Image)
        .map(|item| (item.id.as_str(), item.predicted_bytes))
        .collect();
    let tagged: Vec<&Image> = inventory
        .images
        .iter()
        .filter(|image| !image.is_dangling())
        .collect();
    let mut groups: BTreeMap<String, (usize, i64, u64)> = BTreeMap::new();
    for dangling in inventory
        .images
        .iter()
        .filter(|image| image.listed && image.is_dangling())
    {
        let shared = |other: &Image| {
            dangling
                .layers
                .iter()
                .zip(&other.layers)
                .take_while(|(a, b)| a.chain_id == b.chain_id)
                .count()
        };
        let Some(best) = tagged
            .iter()
            .filter(|image| image.created >= dangling.created)
            .map(|image| (shared(image), image.created, *image))
            .filter(|(count, _, _)| *count > 0)
            .max_by_key(|(count, created, _)| (*count, *created))
        else {
            continue;
        };
        let tag = best.2.label();
        let entry = groups.entry(tag).or_insert((0, i64::MAX, 0));
        entry.0 += 1;
        entry.1 = entry.1.min(dangling.created);
        entry.2 += planned.get(dangling.id.as_str()).copied().unwrap_or(0);
    }
    let mut found: Vec<Rebuilt> = groups
        .into_iter()
        .map(|(tag, (dangling, since, bytes))| Rebuilt {
            tag,
            dangling,
            since,
            per_day: per_day(dangling as f64, since, now),
            bytes,
        })
        .collect();
    found.sort_by(|a, b| b.dangling.cmp(&a.dangling).then(b.bytes.cmp(&a.bytes)));
    found.truncate(ROWS);
    found
}

fn build_cache(inventory: &Inventory, now: i64) -> Option<CacheGrowth> {
    let records = &inventory.build_cache;
    if records.is_empty() {
        return None;
    }
    let bytes: u64 = records.iter().map(|record| record.size).sum();
    let since = records
        .iter()
        .filter_map(|record| record.created)
        .min()
        .unwrap_or(now);
    #[allow(clippy::cast_precision_loss)]
    let bytes_per_day = per_day(bytes as f64, since, now);
    Some(CacheGrowth {
        records: records.len(),
        bytes,
        since,
        bytes_per_day,
    })
}

fn unmounted_volumes(inventory: &Inventory, now: i64) -> Vec<Unmounted> {
    let mounted: std::collections::HashSet<&str> = inventory
        .containers
        .iter()
        .flat_map(|container| container.mounts.iter())
        .filter_map(|mount| mount.name.as_deref())
        .collect();
    let mut found: Vec<Unmounted> = inventory
        .volumes
        .iter()
        .filter(|volume| !mounted.contains(volume.name.as_str()))
        .filter_map(|volume| {
            let created = volume.created?;
            (now - created >= IDLE_VOLUME_AFTER).then(|| Unmounted {
                name: volume.name.clone(),
                created,
                bytes: volume.size,
            })
        })
        .collect();
    found.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    found.truncate(ROWS);
    found
}

/// `amount` spread over the days from `since` to `now` (at least one).
fn per_day(amount: f64, since: i64, now: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let days = ((now - since) as f64 / DAY as f64).max(1.0);
    amount / days
}
