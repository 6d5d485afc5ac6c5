//! Pure: plans, reports, `df` and `layers` as text for people or as the
//! documented JSON, written into any `impl Write`. Times are relative to a
//! `now` the caller passes in. The helpers every format shares (bytes, ages,
//! names cut to fit, wrapping) are in [`text`].

mod df;
mod fleet;
mod layers;
mod plan;
mod report;
#[cfg(test)]
mod snapshots;
mod sources;
mod table;
mod text;

pub(crate) use df::{df_human, df_json};
pub(crate) use fleet::{fleet_heading, fleet_human, fleet_json, fleet_problem};
pub(crate) use layers::{layers_human, layers_json};
pub(crate) use plan::{Show, plan_human, plan_json, quiet_ids};
pub(crate) use report::{audit_line, report_human, report_json, report_summary};
pub(crate) use sources::sources_human;

pub(crate) use text::{SCHEMA_VERSION, age, bytes, cut_end, wrapped};
