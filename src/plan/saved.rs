//! A saved plan applied: never more than the file, never more than a plan made
//! now would take.

use std::collections::HashSet;

use super::build::plan_within;
use super::context::Allowed;
use super::items::{Item, LeftOut, Plan, SavedPlanNote};
use super::rules::{Rules, Scope};
use crate::inventory::Inventory;
use crate::model::Kind;

/// Applying a saved plan: the plan that `rules`, with the file's `scope`, make
/// now, limited to the file's `saved` items. A saved plan is an upper bound,
/// never a licence: what of the file a plan made now does not take is noted
/// with the reason, and what no longer exists is noted as gone.
pub(crate) fn plan_saved(
    inventory: &Inventory,
    rules: &Rules,
    now: i64,
    saved: &[Item],
    scope: Scope,
) -> Plan {
    // An image whose tags are not the ones the file shows changed since: the
    // person reviewed other tags. It stays.
    let tagged = |tags: &[String]| {
        let mut tags: Vec<String> = tags
            .iter()
            .filter(|tag| *tag != crate::model::UNTAGGED)
            .cloned()
            .collect();
        tags.sort();
        tags
    };
    let changed: Vec<LeftOut> = saved
        .iter()
        .filter(|item| item.kind == Kind::Image)
        .filter_map(|item| {
            let image = inventory.image(&item.id)?;
            let now = tagged(&image.tags);
            (now != tagged(&item.tags)).then(|| LeftOut {
                kind: Kind::Image,
                id: item.id.clone(),
                name: image.display_name(),
                rule: format!(
                    "tags changed since the plan was saved: now {}",
                    if now.is_empty() {
                        "none".to_string()
                    } else {
                        now.join(", ")
                    }
                ),
            })
        })
        .collect();
    let changed_ids: HashSet<&str> = changed.iter().map(|kept| kept.id.as_str()).collect();
    let allowed = Allowed {
        ids: saved
            .iter()
            .filter(|item| !changed_ids.contains(item.id.as_str()))
            .map(|item| item.id.clone())
            .collect(),
        why: "not in the saved plan".into(),
    };
    let mut plan = plan_within(inventory, &rules.with_scope(scope), now, Some(&allowed));
    let taken: HashSet<&str> = plan.items.iter().map(|item| item.id.as_str()).collect();
    let mut note = SavedPlanNote {
        items: saved.len(),
        not_taken: changed.clone(),
        ..SavedPlanNote::default()
    };
    for item in saved
        .iter()
        .filter(|item| !taken.contains(item.id.as_str()) && !changed_ids.contains(item.id.as_str()))
    {
        let Some(name) = inventory.name_of(item.kind, &item.id) else {
            note.gone.push(LeftOut {
                kind: item.kind,
                id: item.id.clone(),
                name: item.name.clone(),
                rule: "no longer exists".into(),
            });
            continue;
        };
        let rule = plan
            .kept
            .iter()
            .find(|kept| kept.id == item.id).map_or_else(|| {
                format!(
                    "a plan made now does not take it: {}",
                    match item.kind {
                        Kind::Container => "it is no longer stopped",
                        Kind::Image =>
                            "a container or an image that stays uses it, or it is no longer unused",
                        Kind::Volume =>
                            "a container that stays mounts it, or it is outside the saved scope",
                        Kind::Network => "a container that stays is attached to it",
                        Kind::BuildCache => "it is in use, or shared outside the saved scope",
                        Kind::Log =>
                            "its container goes, it is no longer over the size, or it changed",
                    }
                )
            }, |kept| kept.rule.clone());
        note.not_taken.push(LeftOut {
            kind: item.kind,
            id: item.id.clone(),
            name,
            rule,
        });
    }
    // Everything the rules kept is either outside the file or listed above.
    plan.kept.clear();
    plan.saved = Some(note);
    plan
}
