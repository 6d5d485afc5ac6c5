//! What every stage of planning reads, and the images nothing may remove.

use std::collections::HashSet;

use super::rules::Rules;
use crate::inventory::Inventory;

/// The images that a container which stays uses: these are never removed.
pub(crate) fn images_used_by_remaining<'a>(
    inventory: &'a Inventory,
    removed_containers: &HashSet<&str>,
) -> HashSet<&'a str> {
    inventory
        .containers
        .iter()
        .filter(|container| !removed_containers.contains(container.id.as_str()))
        .map(|container| container.image_id.as_str())
        .collect()
}

/// What every stage of planning reads.
pub(crate) struct Context<'a> {
    pub(crate) inventory: &'a Inventory,
    pub(crate) rules: &'a Rules,
    /// Unix seconds: `--stopped-for` counts back from here.
    pub(crate) now: i64,
    pub(crate) allowed: Option<&'a Allowed>,
}

impl Context<'_> {
    /// Why an item is left out by the allow-list, if one is given and the item
    /// is not on it.
    pub(super) fn left_out(&self, id: &str) -> Option<String> {
        let allowed = self.allowed?;
        (!allowed.ids.contains(id)).then(|| allowed.why.clone())
    }
}

/// An allow-list: only these IDs may be planned (a target's shortest prefix, a
/// saved plan's items); every other candidate is kept, with `why`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Allowed {
    pub(crate) ids: HashSet<String>,
    pub(crate) why: String,
}
