//! `--target-free` and `--max-usage`: plan only as much as the target needs.

use super::build::{plan, plan_within};
use super::context::Allowed;
use super::items::{Item, Plan, Reason, TargetNote};
use crate::inventory::Inventory;
use crate::model::Kind;
use crate::plan::rules::Rules;

/// Plans only as much as `needed` bytes take: candidates in the documented
/// order (stopped containers oldest finished first, dangling images, build
/// cache, unused images, each least recently used first, then volumes and
/// networks), the shortest prefix
/// whose plan predicts at least `needed`. Everything allowed when that is not
/// enough.
pub(crate) fn plan_to_target(inventory: &Inventory, rules: &Rules, now: i64, needed: u64) -> Plan {
    let rule = rules
        .target
        .map_or_else(String::new, super::rules::Target::describe);
    let full = plan(inventory, rules, now);
    let mut order: Vec<&Item> = full.items.iter().collect();
    // Least recently used first: an image by its last use (see
    // `crate::policy::last_use`), then the largest; build cache by BuildKit's
    // last use; containers by when they finished.
    let used = |item: &Item| item.last_use.map_or(item.created, |used| used.at);
    let rank = |item: &Item| -> (u8, i64, std::cmp::Reverse<u64>) {
        let size = std::cmp::Reverse(item.predicted_bytes);
        match (item.kind, item.reason) {
            (Kind::Container, _) => (0, item.finished_at.unwrap_or(item.created), size),
            (Kind::Image, Reason::Dangling) => (1, used(item), size),
            (Kind::BuildCache, _) => (2, used(item), size),
            (Kind::Image, _) => (3, used(item), size),
            (Kind::Volume, _) => (4, item.created, size),
            _ => (5, item.created, size),
        }
    };
    order.sort_by_key(|item| rank(item));
    let candidates = order.len();
    let note = |taken: usize, met: bool| TargetNote {
        rule: rule.clone(),
        needed_bytes: needed,
        taken,
        candidates,
        met,
    };
    if full.total.predicted_bytes < needed || candidates == 0 {
        let met = full.total.predicted_bytes >= needed;
        let mut full = full;
        full.target = Some(note(candidates, met));
        return full;
    }
    let prefix = |count: usize| {
        let allowed = Allowed {
            ids: order[..count].iter().map(|item| item.id.clone()).collect(),
            why: format!("{rule}: met before it"),
        };
        plan_within(inventory, rules, now, Some(&allowed))
    };
    // Adding candidates never lowers the prediction: search the shortest prefix.
    let (mut low, mut high) = (0, candidates);
    while low < high {
        let middle = usize::midpoint(low, high);
        if prefix(middle).total.predicted_bytes >= needed {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let mut chosen = prefix(high);
    chosen.target = Some(note(high, true));
    chosen
}
