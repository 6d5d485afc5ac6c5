//! What an apply did: the report for people, as JSON, and the audit log line.

use std::io::{self, Write};

use serde::Serialize;

use super::table::{Align, Table};
use super::text::{SCHEMA_VERSION, bytes, change, unix_to_rfc3339};
use crate::apply::report::{BeforeAfter, ItemResult, Report, Tally};
use crate::model::EngineInfo;
use crate::plan::{Kind, Reason};

/// What an apply did, for people.
/// What an apply did, in one line (`--quiet`): for logs and mail from cron.
pub(crate) fn report_summary(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let total = report.total();
    let mut line = format!(
        "Removed {} of {} items ({} predicted)",
        total.removed,
        total.planned,
        bytes(total.predicted_bytes)
    );
    if let Some(root) = report.data_root {
        line.push_str(&format!(
            ", {} freed on disk",
            bytes(root.before.saturating_sub(root.after))
        ));
    }
    for (count, word) in [
        (total.skipped, "skipped"),
        (total.failed, "failed"),
        (total.not_started, "not started"),
    ] {
        if count > 0 {
            line.push_str(&format!(", {count} {word}"));
        }
    }
    if report.engine_gone {
        line.push_str("; the engine stopped answering");
    } else if report.interrupted {
        line.push_str("; interrupted");
    }
    writeln!(out, "{line}.")
}

/// What an apply did, for people.
pub(crate) fn report_human(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let mut table = Table::new(&[
        ("", Align::Left),
        ("PLANNED", Align::Right),
        ("REMOVED", Align::Right),
        ("SKIPPED", Align::Right),
        ("FAILED", Align::Right),
        ("PREDICTED", Align::Right),
    ]);
    let row = |label: &str, tally: &Tally| {
        vec![
            label.to_string(),
            tally.planned.to_string(),
            tally.removed.to_string(),
            tally.skipped.to_string(),
            tally.failed.to_string(),
            bytes(tally.predicted_bytes),
        ]
    };
    for (kind, tally) in report.tally() {
        if tally.planned > 0 {
            table.row(row(kind.heading(), &tally));
        }
    }
    let total = report.total();
    table.row(row("Total", &total));
    table.write(out, None)?;
    not_removed_lists(out, report)?;
    figures_lines(out, report, &total)?;
    if report.engine_gone {
        writeln!(
            out,
            "The engine stopped answering: {} items were not started.",
            total.not_started
        )?;
    } else if report.interrupted {
        writeln!(
            out,
            "Interrupted: {} items were not started.",
            total.not_started
        )?;
    }
    Ok(())
}

/// The skipped and the failed items, each with why.
fn not_removed_lists(out: &mut impl Write, report: &Report) -> io::Result<()> {
    for (heading, wanted) in [("Skipped", "skipped"), ("Failed", "failed")] {
        let listed: Vec<&ItemResult> = report
            .results
            .iter()
            .filter(|result| result.outcome.word() == wanted)
            .collect();
        if listed.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "{heading}:")?;
        for result in listed {
            writeln!(
                out,
                "  {}: {}",
                result.item.label(),
                crate::model::printable(result.outcome.detail().unwrap_or(""))
            )?;
        }
    }

    Ok(())
}

/// Predicted against measured, the engine's figures and the free space.
fn figures_lines(out: &mut impl Write, report: &Report, total: &Tally) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "Predicted reclaim of what was removed: {}",
        bytes(total.predicted_bytes)
    )?;
    if let Some(disk) = report.data_root {
        let freed = disk.before.saturating_sub(disk.after);
        let error = if freed > 0 {
            format!(
                " (prediction off by {:+.1}%)",
                (total.predicted_bytes as f64 - freed as f64) / freed as f64 * 100.0
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "Measured on disk (data root, allocated): {} before, {} after: {} freed{error}",
            bytes(disk.before),
            bytes(disk.after),
            bytes(freed)
        )?;
    }
    match report.engine_usage {
        Some(usage) => writeln!(
            out,
            "Engine-reported usage: {} before, {} after ({}); the engine's figures, not measured on disk",
            bytes(usage.before),
            bytes(usage.after),
            change(usage.before, usage.after)
        )?,
        None if report.data_root.is_none() => writeln!(
            out,
            "Engine-reported usage after: unknown (the engine did not answer)"
        )?,
        None => {}
    }
    match report.free_space {
        Some(free) => writeln!(
            out,
            "Free space on the data root's filesystem: {} before, {} after ({})",
            bytes(free.before),
            bytes(free.after),
            change(free.before, free.after)
        )?,
        None => writeln!(
            out,
            "Free space on the data root's filesystem: not readable from here"
        )?,
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    generated_at: String,
    engine: &'a EngineInfo,
    interrupted: bool,
    /// The engine stopped answering during the apply.
    engine_gone: bool,
    items: Vec<JsonResult<'a>>,
    totals: JsonReportTotals,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    kind: Kind,
    id: &'a str,
    name: &'a str,
    reason: Reason,
    predicted_bytes: u64,
    outcome: &'static str,
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonReportTotals {
    #[serde(flatten)]
    all: Tally,
    by_kind: std::collections::BTreeMap<Kind, Tally>,
    engine_usage: Option<BeforeAfter>,
    free_space: Option<BeforeAfter>,
    /// The data root's allocated bytes measured on disk before and after, or null.
    data_root: Option<BeforeAfter>,
    /// True when `data_root` was measured.
    measured: bool,
}

/// What an apply did, as one JSON object.
pub(crate) fn report_json(
    out: &mut impl Write,
    engine: &EngineInfo,
    report: &Report,
    now: i64,
) -> io::Result<()> {
    let document = JsonReport {
        schema_version: SCHEMA_VERSION,
        generated_at: unix_to_rfc3339(now),
        engine,
        interrupted: report.interrupted,
        engine_gone: report.engine_gone,
        items: report
            .results
            .iter()
            .map(|result| JsonResult {
                kind: result.item.kind,
                id: &result.item.id,
                name: &result.item.name,
                reason: result.item.reason,
                predicted_bytes: result.item.predicted_bytes,
                outcome: result.outcome.word(),
                detail: result.outcome.detail(),
            })
            .collect(),
        totals: JsonReportTotals {
            all: report.total(),
            by_kind: report.tally().into_iter().collect(),
            engine_usage: report.engine_usage,
            free_space: report.free_space,
            data_root: report.data_root,
            measured: report.data_root.is_some(),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

/// One line of the audit log (`--log-file`).
pub(crate) fn audit_line(engine: &EngineInfo, result: &ItemResult, now: i64) -> String {
    serde_json::json!({
        "time": unix_to_rfc3339(now),
        "engine": engine.id,
        "kind": result.item.kind,
        "id": result.item.id,
        "name": result.item.name,
        "bytes": result.item.predicted_bytes,
        "outcome": result.outcome.word(),
        "detail": result.outcome.detail(),
    })
    .to_string()
}
