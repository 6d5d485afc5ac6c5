//! A fleet run as data: one row per engine with what was planned or done
//! there, and the run's exit status by the documented rule.

use serde::Serialize;

use crate::exit::ExitStatus;

/// Where an engine got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// Its plan was made (a dry run, or an apply with nothing to do there).
    Planned,
    /// Its plan was applied (see the counts).
    Applied,
    /// It could not be reached (exit 3 on its own).
    NotReached,
    /// Planning or applying failed there for another reason.
    Failed,
}

impl State {
    pub(crate) fn word(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::Applied => "applied",
            State::NotReached => "not reached",
            State::Failed => "failed",
        }
    }
}

/// One engine of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EngineRow {
    /// The context's name, or the host as given.
    pub(crate) name: String,
    pub(crate) host: String,
    /// "Docker 26.1.5 (API 1.45)", once reached.
    pub(crate) engine: Option<String>,
    pub(crate) state: State,
    /// Items planned (a dry run) or removed (an apply).
    pub(crate) items: usize,
    pub(crate) failed: usize,
    /// Predicted bytes of what is planned, or of what was removed.
    pub(crate) bytes: u64,
    /// What a run on this engine alone would have exited with.
    pub(crate) exit_code: u8,
    /// Why it was not reached or failed, in one line.
    pub(crate) error: Option<String>,
}

/// The exit statuses by severity: a fleet run exits with the most severe of
/// its engines' (interrupted, partial failure, failure, bad input for that
/// engine, locked, not reached, success).
const SEVERITY: [ExitStatus; 7] = [
    ExitStatus::Interrupted,
    ExitStatus::PartialFailure,
    ExitStatus::Failure,
    ExitStatus::Usage,
    ExitStatus::Locked,
    ExitStatus::EngineUnreachable,
    ExitStatus::Success,
];

/// The fleet's exit status: the most severe of its engines'.
pub(crate) fn exit_status(statuses: impl IntoIterator<Item = ExitStatus>) -> ExitStatus {
    let rank = |status: &ExitStatus| {
        SEVERITY
            .iter()
            .position(|known| known == status)
            .unwrap_or(SEVERITY.len())
    };
    statuses
        .into_iter()
        .min_by_key(rank)
        .unwrap_or(ExitStatus::Success)
}

/// The fleet's totals: engines per state, items, failures and bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Totals {
    pub(crate) engines: usize,
    pub(crate) reached: usize,
    pub(crate) not_reached: usize,
    pub(crate) failed_engines: usize,
    pub(crate) items: usize,
    pub(crate) failed_items: usize,
    pub(crate) bytes: u64,
}

pub(crate) fn totals(rows: &[EngineRow]) -> Totals {
    let mut totals = Totals {
        engines: rows.len(),
        ..Totals::default()
    };
    for row in rows {
        match row.state {
            State::NotReached => totals.not_reached += 1,
            State::Failed => totals.failed_engines += 1,
            State::Planned | State::Applied => totals.reached += 1,
        }
        totals.items += row.items;
        totals.failed_items += row.failed;
        totals.bytes += row.bytes;
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_status_wins() {
        use ExitStatus::*;
        assert_eq!(exit_status([]), Success);
        assert_eq!(exit_status([Success, Success]), Success);
        assert_eq!(exit_status([Success, EngineUnreachable]), EngineUnreachable);
        assert_eq!(exit_status([EngineUnreachable, Locked]), Locked);
        assert_eq!(
            exit_status([EngineUnreachable, PartialFailure, Failure]),
            PartialFailure
        );
        assert_eq!(exit_status([PartialFailure, Interrupted]), Interrupted);
        assert_eq!(exit_status([Usage, EngineUnreachable]), Usage);
    }

    #[test]
    fn totals_count_engines_by_state() {
        let row = |state, items, bytes| EngineRow {
            name: "a".into(),
            host: "unix:///a.sock".into(),
            engine: None,
            state,
            items,
            failed: 0,
            bytes,
            exit_code: 0,
            error: None,
        };
        let totals = totals(&[
            row(State::Planned, 3, 100),
            row(State::NotReached, 0, 0),
            row(State::Applied, 2, 50),
        ]);
        assert_eq!(totals.engines, 3);
        assert_eq!(totals.reached, 2);
        assert_eq!(totals.not_reached, 1);
        assert_eq!(totals.items, 5);
        assert_eq!(totals.bytes, 150);
    }
}
