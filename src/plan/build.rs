//! Building a plan: the candidates of each kind in scope, the images' layer
//! accounting, and the figures per kind.

use std::collections::{HashMap, HashSet};

use super::context::{Allowed, Context};
use super::items::{Figures, Item, Plan};
use super::rules::{Rules, Scope, VolumeScope};
use super::{candidates, images, logs};
use crate::inventory::Inventory;
use crate::model::{EngineInfo, Kind};

/// Builds the plan for the default scope, narrowed and protected by `rules`;
/// `now` (Unix seconds) measures `--stopped-for`.
pub(crate) fn plan(inventory: &Inventory, rules: &Rules, now: i64) -> Plan {
    plan_within(inventory, rules, now, None)
}

/// The plan `rules` make, with only the candidates on `allowed` (when given).
pub(crate) fn plan_within(
    inventory: &Inventory,
    rules: &Rules,
    now: i64,
    allowed: Option<&Allowed>,
) -> Plan {
    let cx = Context {
        inventory,
        rules,
        now,
        allowed,
    };
    let mut items = Vec::new();
    let mut kept = Vec::new();
    let removed_containers = candidates::containers(&cx, &mut items, &mut kept);
    let planned_images = images::select(&cx, &removed_containers, &mut kept);
    let cache_items = match rules.build_cache {
        Some(scope) => candidates::build_cache(&cx, scope, &planned_images, &mut kept),
        None => Vec::new(),
    };
    images::account(&cx, &planned_images, &cache_items, &mut items);
    if let Some(scope) = rules.volumes {
        let scope = prune_volume_scope(rules, &inventory.engine, scope);
        candidates::volumes(&cx, scope, &removed_containers, &mut items, &mut kept);
    }
    if rules.networks {
        candidates::networks(&cx, &removed_containers, &mut items, &mut kept);
    }
    if let Some(scope) = rules.logs {
        logs::candidates(&cx, scope, &removed_containers, &mut items, &mut kept);
    }
    items.extend(cache_items);

    let mut plan = summarize(items, inventory);
    plan.kept = kept;
    plan.scope = rules.scope();
    plan
}

/// A plan of `items`, with per-kind and total figures against the inventory's usage.
pub(crate) fn summarize(items: Vec<Item>, inventory: &Inventory) -> Plan {
    let planned: HashSet<&str> = items.iter().map(|item| item.id.as_str()).collect();
    let current = current_usage(inventory, &planned);
    let by_kind: Vec<(Kind, Figures)> = Kind::ALL
        .iter()
        .map(|kind| {
            let predicted = items
                .iter()
                .filter(|item| item.kind == *kind)
                .map(|item| item.predicted_bytes)
                .sum();
            (
                *kind,
                Figures {
                    current_bytes: current.get(kind).copied().unwrap_or(0),
                    predicted_bytes: predicted,
                },
            )
        })
        .collect();
    let total = Figures {
        current_bytes: by_kind.iter().map(|(_, f)| f.current_bytes).sum(),
        predicted_bytes: by_kind.iter().map(|(_, f)| f.predicted_bytes).sum(),
    };
    Plan {
        items,
        by_kind,
        total,
        data_root: None,
        orphaned: None,
        kept: Vec::new(),
        target: None,
        scope: Scope::default(),
        saved: None,
        unmeasured: None,
        build_cache_unlisted: inventory.build_cache_unlisted.is_some(),
        measured_keys: Vec::new(),
    }
}

/// The volumes `--prune-scope --volumes` takes: what that engine's prune
/// takes. Before API 1.42 a volume prune removes every unused local volume,
/// named ones too; from 1.42 only anonymous ones unless asked (moby
/// `api/server/router/volume/volume_routes.go` `postVolumesPrune` adds
/// `all=true` for older API versions, and Docker 20.10 has no anonymous-only
/// prune at all).
fn prune_volume_scope(rules: &Rules, engine: &EngineInfo, scope: VolumeScope) -> VolumeScope {
    let older = crate::engine::parse_api_version(&engine.api_version).is_some_and(|v| v < (1, 42));
    if rules.prune_scope && older {
        VolumeScope::All
    } else {
        scope
    }
}

/// Bytes each kind takes now, from the engine's figures.
fn current_usage(inventory: &Inventory, planned: &HashSet<&str>) -> HashMap<Kind, u64> {
    let mut usage = HashMap::new();
    usage.insert(
        Kind::Container,
        inventory.containers.iter().map(|c| c.size_rw).sum(),
    );
    // The images' layers each once: measured on disk, or the sizes the
    // images' histories give, which the plan counts its freed layers in
    // (the engine's own total when no layer is known).
    let layers: HashMap<&str, u64> = inventory
        .images
        .iter()
        .flat_map(|image| {
            image
                .layers
                .iter()
                .map(|layer| (layer.chain_id.as_str(), layer.size))
        })
        .collect();
    let images = if inventory.sizes_measured || layers.is_empty() {
        inventory.layers_size
    } else {
        layers.values().sum::<u64>()
            + inventory
                .images
                .iter()
                .filter(|image| image.layers.is_empty())
                .map(|image| image.size)
                .sum::<u64>()
    };
    usage.insert(Kind::Image, images);
    usage.insert(
        Kind::Volume,
        inventory.volumes.iter().filter_map(|v| v.size).sum(),
    );
    usage.insert(Kind::Network, 0);
    // Part of the containers' bytes too: their directories hold them.
    usage.insert(
        Kind::Log,
        inventory.logs.iter().map(|log| log.allocated).sum(),
    );
    // Shared records' bytes are the images' too: counted here only when the
    // plan takes them.
    usage.insert(
        Kind::BuildCache,
        inventory
            .build_cache
            .iter()
            .filter(|record| !record.shared || planned.contains(record.id.as_str()))
            .map(|record| record.size)
            .sum(),
    );
    usage
}

impl Plan {
    /// The plan narrowed to the items at `indices` (from a checklist), totals redone.
    pub(crate) fn only(&self, indices: &[usize], inventory: &Inventory) -> Plan {
        let items = indices
            .iter()
            .filter_map(|index| self.items.get(*index).cloned())
            .collect();
        let mut plan = summarize(items, inventory);
        plan.data_root = self.data_root;
        plan.orphaned = self.orphaned;
        plan.kept = self.kept.clone();
        plan.target = self.target.clone();
        plan.scope = self.scope;
        plan.saved = self.saved.clone();
        plan.unmeasured = self.unmeasured.clone();
        plan
    }
}
