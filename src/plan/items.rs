//! The plan as data: its items with their reasons and predicted bytes, the
//! figures per kind, and what was left out and why.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rules::Scope;
use crate::model::{Kind, Measured, Unmeasured, short_id};

/// Why an item is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reason {
    /// A container that ran and exited.
    Exited,
    /// A container that was created and never started.
    NeverStarted,
    /// A container the engine marks dead.
    Dead,
    /// An untagged image that no remaining container uses.
    Dangling,
    /// A tagged image that no remaining container uses (`--all`).
    Unused,
    /// An anonymous volume that no remaining container mounts (`--volumes`).
    AnonymousVolume,
    /// A named volume that no remaining container mounts (`--volumes=all`).
    NamedVolume,
    /// A user-defined network with no remaining container (`--networks`).
    UnusedNetwork,
    /// A build cache record not in use (`--build-cache`).
    UnusedBuildCache,
    /// A build cache record shared only with images the plan removes
    /// (`--build-cache`): unshared once they go, as `docker system prune` finds it.
    CacheOfRemovedImages,
    /// A rotated log file of a container that stays (`--logs`): removed.
    RotatedLog,
    /// The active log of a container that stays, over `--logs-over`: truncated.
    OversizedLog,
}

impl Reason {
    /// The kind of item a reason can apply to.
    pub(crate) fn kind(self) -> Kind {
        match self {
            Reason::Exited | Reason::NeverStarted | Reason::Dead => Kind::Container,
            Reason::Dangling | Reason::Unused => Kind::Image,
            Reason::AnonymousVolume | Reason::NamedVolume => Kind::Volume,
            Reason::UnusedNetwork => Kind::Network,
            Reason::UnusedBuildCache | Reason::CacheOfRemovedImages => Kind::BuildCache,
            Reason::RotatedLog | Reason::OversizedLog => Kind::Log,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Reason::Exited => "stopped: exited",
            Reason::NeverStarted => "stopped: created, never started",
            Reason::Dead => "stopped: dead",
            Reason::Dangling => "dangling: untagged, no remaining container uses it",
            Reason::Unused => "unused: no remaining container uses it (--all)",
            Reason::AnonymousVolume => "anonymous volume: no remaining container mounts it",
            Reason::NamedVolume => "named volume: no remaining container mounts it (--volumes=all)",
            Reason::UnusedNetwork => "user-defined network: no remaining container is attached",
            Reason::UnusedBuildCache => "build cache record not in use",
            Reason::CacheOfRemovedImages => {
                "build cache record shared with an image: goes if only images of this plan share it"
            }
            Reason::RotatedLog => "rotated log file of a container that stays: removed (--logs)",
            Reason::OversizedLog => {
                "active log over --logs-over: truncated to 0, the container keeps logging"
            }
        }
    }
}

/// One thing the plan removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Item {
    pub(crate) kind: Kind,
    /// The full ID as the engine gives it.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) reason: Reason,
    /// An image's tags when planned: it goes only if they are still exactly these.
    pub(crate) tags: Vec<String>,
    /// Unix seconds: when it was created.
    pub(crate) created: i64,
    /// Unix seconds: when a container last finished, if it ever ran.
    pub(crate) finished_at: Option<i64>,
    /// Bytes this removal frees, counting shared layers once across the plan:
    /// allocated bytes on disk when [`Item::measured`], else the engine's figure.
    pub(crate) predicted_bytes: u64,
    /// Apparent bytes (`du -b`), when measured.
    pub(crate) predicted_apparent_bytes: Option<u64>,
    /// Whether `predicted_bytes` was measured on disk.
    pub(crate) measured: bool,
    /// The layers removing this image frees (images only).
    pub(crate) frees_layers: Vec<FreedLayer>,
    /// The image's layers that stay because something that remains uses them.
    pub(crate) keeps_layers: Vec<KeptLayer>,
    /// When it was last used, and how that is known (images; build cache
    /// records: BuildKit's last use).
    pub(crate) last_use: Option<crate::model::LastUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FreedLayer {
    pub(crate) chain_id: String,
    pub(crate) bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KeptLayer {
    pub(crate) chain_id: String,
    pub(crate) bytes: u64,
    /// What remains and uses it: an image (by tag or short ID) or a container.
    pub(crate) held_by: String,
}

/// Usage and reclaim for one kind, or in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Figures {
    /// Bytes the kind takes now, as the engine reports it.
    pub(crate) current_bytes: u64,
    /// Bytes the plan frees.
    pub(crate) predicted_bytes: u64,
}

impl Figures {
    pub(crate) fn after_bytes(&self) -> u64 {
        self.current_bytes.saturating_sub(self.predicted_bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Plan {
    /// Containers first, then images, each oldest first.
    pub(crate) items: Vec<Item>,
    /// Per kind: current usage is the engine's figure; predicted is measured
    /// where the items were.
    pub(crate) by_kind: Vec<(Kind, Figures)>,
    pub(crate) total: Figures,
    /// The whole data root measured on disk (`du -s -x`), when it was readable.
    pub(crate) data_root: Option<Measured>,
    /// Directories under `overlay2/` that nothing refers to: how many, and their
    /// allocated bytes. The engine cannot reclaim them.
    pub(crate) orphaned: Option<(usize, u64)>,
    /// What would have gone but a filter or keep rule left alone, and which.
    pub(crate) kept: Vec<LeftOut>,
    /// With --target-free or --max-usage: where the plan stopped, and why.
    pub(crate) target: Option<TargetNote>,
    /// The scope the plan was made in.
    pub(crate) scope: Scope,
    /// When a saved plan is applied: what of it the plan made now does not take.
    pub(crate) saved: Option<SavedPlanNote>,
    /// Why sizes are the engine's figures, when they were not measured.
    pub(crate) unmeasured: Option<Unmeasured>,
    /// The build cache was not listed (API 1.41 lists it only with
    /// `/system/df`, which was not asked for): its figures are not in the
    /// totals.
    #[serde(skip)]
    pub(crate) build_cache_unlisted: bool,
    /// The owner keys (`overlay2/<cache-id>`, …) whose bytes the items'
    /// predictions counted: measured again without the size cache just
    /// before deleting, so that the check after the apply does not take its
    /// figures from the file the prediction took them from.
    #[serde(skip)]
    pub(crate) measured_keys: Vec<std::sync::Arc<str>>,
}

/// A saved plan is an upper bound: what of it is no longer there, and what a
/// plan made now, under the rules in force now, does not take (and why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct SavedPlanNote {
    /// Items of the file, how many.
    pub(crate) items: usize,
    /// Items of the file that no longer exist: gone before this run, not removed by it.
    pub(crate) gone: Vec<LeftOut>,
    /// Items of the file that still exist but that a plan made now does not take.
    pub(crate) not_taken: Vec<LeftOut>,
}

/// Where a target plan stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TargetNote {
    /// The rule, as the user gave it.
    pub(crate) rule: String,
    /// Bytes the filesystem needed freed when the plan was made.
    pub(crate) needed_bytes: u64,
    /// Candidates taken, in order, out of all allowed.
    pub(crate) taken: usize,
    pub(crate) candidates: usize,
    /// Whether the plan's prediction meets the target.
    pub(crate) met: bool,
}

/// A candidate left out of the plan, with why: a keep rule, or (against a
/// saved plan) gone or changed since it was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LeftOut {
    pub(crate) kind: Kind,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) rule: String,
}

impl Plan {
    pub(crate) fn items_of(&self, kind: Kind) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |item| item.kind == kind)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Replaces predicted bytes with what was measured on disk: per item
    /// (aligned with `items`; `None` leaves the engine's figure), per freed layer,
    /// and the data root's total. Totals are redone.
    pub(crate) fn with_measurements(
        mut self,
        items: &[Option<Measured>],
        layers: &HashMap<String, u64>,
        data_root: Option<Measured>,
    ) -> Plan {
        for (item, measured) in self.items.iter_mut().zip(items) {
            let Some(measured) = measured else { continue };
            item.predicted_bytes = measured.bytes.allocated;
            item.predicted_apparent_bytes = Some(measured.bytes.apparent);
            item.measured = true;
            for layer in &mut item.frees_layers {
                if let Some(bytes) = layers.get(&layer.chain_id) {
                    layer.bytes = *bytes;
                }
            }
        }
        for (kind, figures) in &mut self.by_kind {
            figures.predicted_bytes = self
                .items
                .iter()
                .filter(|item| item.kind == *kind)
                .map(|item| item.predicted_bytes)
                .sum();
        }
        self.total.predicted_bytes = self.by_kind.iter().map(|(_, f)| f.predicted_bytes).sum();
        if let Some(root) = data_root {
            self.total.current_bytes = root.bytes.allocated;
        }
        self.data_root = data_root;
        self
    }

    /// Current usage by the engine's own figures, summed over the kinds.
    pub(crate) fn engine_current_bytes(&self) -> u64 {
        self.by_kind.iter().map(|(_, f)| f.current_bytes).sum()
    }

    /// Whether the predictions of this kind's items were all measured on disk
    /// (a kind with no items counts as measured).
    pub(crate) fn kind_measured(&self, kind: Kind) -> bool {
        self.items_of(kind).all(|item| item.measured)
    }

    /// Whether every item's prediction was measured on disk.
    pub(crate) fn all_measured(&self) -> bool {
        !self.items.is_empty() && self.items.iter().all(|item| item.measured)
    }
}

/// What holds a layer that only BuildKit's cache keeps.
pub(crate) const BUILD_CACHE_HOLDER: &str = "build cache";

impl Item {
    /// An item with nothing known yet beyond what it is and why it goes.
    pub(crate) fn new(
        kind: Kind,
        id: impl Into<String>,
        name: impl Into<String>,
        reason: Reason,
    ) -> Item {
        Item {
            kind,
            id: id.into(),
            name: name.into(),
            reason,
            tags: Vec::new(),
            created: 0,
            finished_at: None,
            predicted_bytes: 0,
            predicted_apparent_bytes: None,
            measured: false,
            frees_layers: Vec::new(),
            keeps_layers: Vec::new(),
            last_use: None,
        }
    }

    /// "container 0123456789ab (name)", for messages.
    pub(crate) fn label(&self) -> String {
        format!(
            "{} {} ({})",
            self.kind.word(),
            short_id(&self.id),
            crate::model::printable(&self.name)
        )
    }
}
