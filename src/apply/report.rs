//! What an apply did, per kind, and predicted against measured: the engine's
//! usage figures before and after, and free space on the data root's filesystem
//! where it can be read from here.

use serde::Serialize;

use crate::exit::ExitStatus;
use crate::plan::{Item, Kind};

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Removed,
    /// Someone else removed it since the plan: counts as done.
    AlreadyGone,
    /// It changed since the plan and was left alone; the text says how.
    Skipped(String),
    /// The engine refused or the request failed; the text says why.
    Failed(String),
    /// Not started because the run was interrupted.
    NotStarted,
}

impl Outcome {
    /// The word for logs and JSON.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Outcome::Removed => "removed",
            Outcome::AlreadyGone => "already_gone",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "failed",
            Outcome::NotStarted => "not_started",
        }
    }

    pub(crate) fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Skipped(why) | Outcome::Failed(why) => Some(why),
            _ => None,
        }
    }

    /// Removed by us or by someone else: the item is no longer there.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Outcome::Removed | Outcome::AlreadyGone)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemResult {
    pub(crate) item: Item,
    pub(crate) outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Tally {
    pub(crate) planned: usize,
    /// Removed by us, or found already gone.
    pub(crate) removed: usize,
    pub(crate) skipped: usize,
    pub(crate) failed: usize,
    pub(crate) not_started: usize,
    /// Predicted bytes of the items we removed.
    pub(crate) predicted_bytes: u64,
}

/// A before/after pair of byte counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct BeforeAfter {
    pub(crate) before: u64,
    pub(crate) after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) results: Vec<ItemResult>,
    pub(crate) interrupted: bool,
    /// The engine stopped answering during the apply; deletions stopped there.
    pub(crate) engine_gone: bool,
    /// Total usage by the engine's own figures (`/system/df`), before and after.
    pub(crate) engine_usage: Option<BeforeAfter>,
    /// Available bytes on the data root's filesystem, when it is readable here.
    pub(crate) free_space: Option<BeforeAfter>,
    /// The data root measured on disk (allocated bytes) just before and after.
    pub(crate) data_root: Option<BeforeAfter>,
}

impl Report {
    pub(crate) fn tally(&self) -> Vec<(Kind, Tally)> {
        Kind::ALL
            .iter()
            .map(|kind| {
                let mut tally = Tally::default();
                for result in self.results.iter().filter(|r| r.item.kind == *kind) {
                    tally.planned += 1;
                    match result.outcome {
                        Outcome::Removed => {
                            tally.removed += 1;
                            tally.predicted_bytes += result.item.predicted_bytes;
                        }
                        Outcome::AlreadyGone => tally.removed += 1,
                        Outcome::Skipped(_) => tally.skipped += 1,
                        Outcome::Failed(_) => tally.failed += 1,
                        Outcome::NotStarted => tally.not_started += 1,
                    }
                }
                (*kind, tally)
            })
            .collect()
    }

    pub(crate) fn total(&self) -> Tally {
        self.tally()
            .into_iter()
            .fold(Tally::default(), |mut sum, (_, tally)| {
                sum.planned += tally.planned;
                sum.removed += tally.removed;
                sum.skipped += tally.skipped;
                sum.failed += tally.failed;
                sum.not_started += tally.not_started;
                sum.predicted_bytes += tally.predicted_bytes;
                sum
            })
    }

    /// Interrupted beats partial failure; skipped items are a success (they were
    /// left alone on purpose).
    pub(crate) fn status(&self) -> ExitStatus {
        if self.engine_gone {
            ExitStatus::PartialFailure
        } else if self.interrupted {
            ExitStatus::Interrupted
        } else if self.total().failed > 0 {
            ExitStatus::PartialFailure
        } else {
            ExitStatus::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Item, Reason};

    fn result(kind: Kind, outcome: Outcome, bytes: u64) -> ItemResult {
        ItemResult {
            item: Item {
                predicted_bytes: bytes,
                ..Item::new(kind, "x", "x", Reason::Exited)
            },
            outcome,
        }
    }

    #[test]
    fn tallies_and_status() {
        let mut report = Report {
            results: vec![
                result(Kind::Container, Outcome::Removed, 10),
                result(Kind::Container, Outcome::AlreadyGone, 5),
                result(Kind::Container, Outcome::Skipped("running".into()), 7),
                result(Kind::Image, Outcome::Removed, 100),
            ],
            interrupted: false,
            engine_gone: false,
            engine_usage: None,
            free_space: None,
            data_root: None,
        };
        let total = report.total();
        assert_eq!((total.planned, total.removed, total.skipped), (4, 3, 1));
        assert_eq!(total.predicted_bytes, 110);
        assert_eq!(report.status(), ExitStatus::Success);
        report
            .results
            .push(result(Kind::Image, Outcome::Failed("409".into()), 1));
        assert_eq!(report.status(), ExitStatus::PartialFailure);
        report.interrupted = true;
        assert_eq!(report.status(), ExitStatus::Interrupted);
    }
}
