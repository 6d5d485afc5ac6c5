//! Pure: a [`Plan`] as text for people or as the documented JSON, written into
//! any `impl Write`. Times are relative to a `now` the caller passes in.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use humansize::{DECIMAL, format_size};
use serde::Serialize;

use crate::layers::ImageReport;
use crate::model::Measured;
use crate::model::{EngineInfo, short_id};
use crate::plan::{Figures, FreedLayer, Item, Kept, KeptLayer, Kind, Plan, Reason, TargetNote};
use crate::report::{BeforeAfter, ItemResult, Report, Tally};
use crate::usage::Usage;

/// The JSON contract's version; bump it on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How many kept items the plan lists without -v.
const KEPT_SHOWN: usize = 10;

/// Longest name shown before it is cut with an ellipsis.
const NAME_WIDTH: usize = 40;

pub fn bytes(n: u64) -> String {
    format_size(n, DECIMAL)
}

/// "5m", "3h", "2days": the largest whole unit, as humantime spells it.
pub fn age(seconds: i64) -> String {
    const UNITS: [u64; 5] = [7 * 86_400, 86_400, 3_600, 60, 1];
    let seconds = u64::try_from(seconds).unwrap_or(0);
    let unit = UNITS
        .iter()
        .copied()
        .find(|unit| seconds >= *unit)
        .unwrap_or(1);
    humantime::format_duration(Duration::from_secs(seconds / unit * unit)).to_string()
}

fn reason_text(item: &Item, now: i64) -> String {
    match (item.reason, item.finished_at) {
        (Reason::Exited, Some(finished)) => {
            format!("stopped: exited {} ago", age(now - finished))
        }
        _ => item.reason.describe().to_string(),
    }
}

fn truncate(name: &str) -> String {
    if name.chars().count() <= NAME_WIDTH {
        name.to_string()
    } else {
        let cut: String = name.chars().take(NAME_WIDTH - 1).collect();
        format!("{cut}…")
    }
}

/// The plan for people: grouped by kind, then the totals table.
/// How to show a plan.
#[derive(Debug, Clone, Copy)]
pub struct Show {
    /// Nothing will be removed.
    pub dry_run: bool,
    /// List each image's freed and kept layers.
    pub verbose: bool,
    /// Unix seconds, for ages.
    pub now: i64,
}

pub fn human(
    out: &mut impl Write,
    engine: &EngineInfo,
    plan: &Plan,
    show: &Show,
) -> io::Result<()> {
    let now = show.now;
    writeln!(
        out,
        "Docker {} (API {}) at {}",
        engine.version, engine.api_version, engine.host
    )?;
    writeln!(
        out,
        "data root {}, storage driver {}",
        engine.data_root, engine.storage_driver
    )?;
    writeln!(out)?;

    if plan.is_empty() {
        writeln!(
            out,
            "Nothing to reclaim: nothing in the chosen scope can go (by default: stopped containers and dangling images)."
        )?;
    }

    let name_width = plan
        .items
        .iter()
        .map(|item| truncate(&item.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    for kind in Kind::ALL {
        let items: Vec<&Item> = plan.items_of(kind).collect();
        if items.is_empty() {
            continue;
        }
        let bytes_of_kind: u64 = items.iter().map(|item| item.predicted_bytes).sum();
        writeln!(
            out,
            "{}: {} to remove, {}",
            kind.heading(),
            items.len(),
            bytes(bytes_of_kind)
        )?;
        writeln!(
            out,
            "  {:<12}  {:<name_width$}  {:>8}  {:>10}  REASON",
            "ID", "NAME", "AGE", "SIZE"
        )?;
        for item in items {
            writeln!(
                out,
                "  {:<12}  {:<name_width$}  {:>8}  {:>10}  {}",
                short_id(&item.id),
                truncate(&item.name),
                age(now - item.created),
                bytes(item.predicted_bytes),
                reason_text(item, now)
            )?;
            if show.verbose {
                layer_lines(out, item)?;
            }
        }
        writeln!(out)?;
    }

    if let Some(target) = &plan.target {
        if target.needed_bytes == 0 {
            writeln!(
                out,
                "Target {}: already met, nothing needs to go.",
                target.rule
            )?;
        } else if target.met {
            writeln!(
                out,
                "Target {}: {} to free; the plan stops after {} of {} candidates (predicted {}).",
                target.rule,
                bytes(target.needed_bytes),
                target.taken,
                target.candidates,
                bytes(plan.total.predicted_bytes)
            )?;
        } else {
            writeln!(
                out,
                "Target {}: {} to free, but everything allowed frees only {}: planning all of it.",
                target.rule,
                bytes(target.needed_bytes),
                bytes(plan.total.predicted_bytes)
            )?;
        }
        writeln!(out)?;
    }
    if !plan.kept.is_empty() {
        writeln!(out, "Kept by rules: {}", plan.kept.len())?;
        let shown = if show.verbose {
            plan.kept.len()
        } else {
            KEPT_SHOWN
        };
        for kept in plan.kept.iter().take(shown) {
            writeln!(
                out,
                "  {} {} ({}): {}",
                kept.kind.word(),
                short_id(&kept.id),
                kept.name,
                kept.rule
            )?;
        }
        if plan.kept.len() > shown {
            writeln!(
                out,
                "  … and {} more (-v lists them all)",
                plan.kept.len() - shown
            )?;
        }
        writeln!(out)?;
    }

    writeln!(
        out,
        "{:<12}  {:>10}  {:>10}  {:>10}",
        "", "CURRENT", "RECLAIM", "AFTER"
    )?;
    let measured = plan.all_measured();
    for (kind, figures) in &plan.by_kind {
        if figures.current_bytes == 0 && plan.items_of(*kind).next().is_none() {
            continue;
        }
        if measured && plan.data_root.is_some() {
            // Per kind, CURRENT is the engine's estimate and RECLAIM a measurement:
            // no AFTER from the two.
            writeln!(
                out,
                "{:<12}  {:>10}  {:>10}",
                kind.heading(),
                format!("~{}", bytes(figures.current_bytes)),
                bytes(figures.predicted_bytes)
            )?;
        } else {
            totals_row(out, kind.heading(), figures)?;
        }
    }
    match plan.data_root {
        Some(root) => totals_row(out, "Data root", &plan.total).and_then(|()| {
            writeln!(out)?;
            if measured {
                writeln!(
                    out,
                    "RECLAIM: measured on disk (allocated blocks; shared layers and hard links counted once)."
                )?;
                writeln!(out, "CURRENT per kind (~): the engine's estimate.")?;
            } else {
                writeln!(
                    out,
                    "RECLAIM: the engine's estimate (items could not be measured on disk)."
                )?;
            }
            writeln!(
                out,
                "Data root: {}, measured on disk ({} apparent){}.",
                engine.data_root,
                bytes(root.bytes.apparent),
                if root.incomplete {
                    "; some entries could not be read, so figures are lower bounds"
                } else {
                    ""
                }
            )
        })?,
        None => {
            totals_row(out, "Total", &plan.total)?;
            writeln!(out)?;
            writeln!(
                out,
                "Sizes are the engine's own figures (estimates: the data root is not readable from here); image sizes count each shared layer once."
            )?;
        }
    }
    if let Some((count, orphaned)) = plan.orphaned.filter(|(count, _)| *count > 0) {
        writeln!(
            out,
            "Orphaned overlay2 directories: {count}, {}: not reclaimable by the engine (see `docker-reclaim df -v`).",
            bytes(orphaned)
        )?;
    }
    if show.dry_run {
        writeln!(out, "Dry run: nothing was removed.")?;
    }
    Ok(())
}

/// Under an image, with -v: the layers its removal frees and those it leaves.
fn layer_lines(out: &mut impl Write, item: &Item) -> io::Result<()> {
    for layer in &item.frees_layers {
        writeln!(
            out,
            "      frees layer {}  {:>10}",
            short_id(&layer.chain_id),
            bytes(layer.bytes)
        )?;
    }
    for layer in &item.keeps_layers {
        writeln!(
            out,
            "      keeps layer {}  {:>10}  held by {}",
            short_id(&layer.chain_id),
            bytes(layer.bytes),
            layer.held_by
        )?;
    }
    Ok(())
}

fn totals_row(out: &mut impl Write, label: &str, figures: &Figures) -> io::Result<()> {
    writeln!(
        out,
        "{:<12}  {:>10}  {:>10}  {:>10}",
        label,
        bytes(figures.current_bytes),
        bytes(figures.predicted_bytes),
        bytes(figures.after_bytes())
    )
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema_version: u32,
    generated_at: String,
    dry_run: bool,
    engine: &'a EngineInfo,
    items: Vec<JsonItem<'a>>,
    /// Candidates a filter or keep rule left alone, with the rule.
    kept: &'a [Kept],
    /// With --target-free or --max-usage: where the plan stopped.
    target: Option<&'a TargetNote>,
    totals: JsonTotals,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    kind: Kind,
    id: &'a str,
    name: &'a str,
    reason: Reason,
    reason_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a [String]>,
    created: i64,
    finished_at: Option<i64>,
    predicted_bytes: u64,
    predicted_apparent_bytes: Option<u64>,
    measured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    frees_layers: Option<&'a [FreedLayer]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keeps_layers: Option<&'a [KeptLayer]>,
}

#[derive(Serialize)]
struct JsonFigures {
    count: usize,
    /// The engine's figure: never a measurement on disk.
    current_bytes: u64,
    current_measured: bool,
    predicted_bytes: u64,
    after_bytes: u64,
}

#[derive(Serialize)]
struct JsonTotals {
    /// True when every item's predicted bytes were measured on disk.
    measured: bool,
    /// The data root measured on disk, or null when it is not readable here.
    data_root: Option<Measured>,
    /// Orphaned overlay2 directories: not reclaimable by the engine.
    orphaned_overlay2: Option<serde_json::Value>,
    count: usize,
    current_bytes: u64,
    predicted_bytes: u64,
    after_bytes: u64,
    by_kind: std::collections::BTreeMap<Kind, JsonFigures>,
}

/// The plan as one JSON object (the README documents the contract).
pub fn json(out: &mut impl Write, engine: &EngineInfo, plan: &Plan, show: &Show) -> io::Result<()> {
    let document = JsonPlan {
        schema_version: SCHEMA_VERSION,
        generated_at: unix_to_rfc3339(show.now),
        dry_run: show.dry_run,
        engine,
        items: plan
            .items
            .iter()
            .map(|item| JsonItem {
                kind: item.kind,
                id: &item.id,
                name: &item.name,
                reason: item.reason,
                reason_text: item.reason.describe(),
                tags: (item.kind == Kind::Image).then_some(item.tags.as_slice()),
                created: item.created,
                finished_at: item.finished_at,
                predicted_bytes: item.predicted_bytes,
                predicted_apparent_bytes: item.predicted_apparent_bytes,
                measured: item.measured,
                frees_layers: (item.kind == Kind::Image).then_some(item.frees_layers.as_slice()),
                keeps_layers: (item.kind == Kind::Image).then_some(item.keeps_layers.as_slice()),
            })
            .collect(),
        kept: &plan.kept,
        target: plan.target.as_ref(),
        totals: JsonTotals {
            measured: plan.all_measured(),
            data_root: plan.data_root,
            orphaned_overlay2: plan
                .orphaned
                .map(|(count, bytes)| serde_json::json!({"count": count, "bytes": bytes})),
            count: plan.items.len(),
            current_bytes: plan.total.current_bytes,
            predicted_bytes: plan.total.predicted_bytes,
            after_bytes: plan.total.after_bytes(),
            by_kind: plan
                .by_kind
                .iter()
                .map(|(kind, figures)| {
                    (
                        *kind,
                        JsonFigures {
                            count: plan.items_of(*kind).count(),
                            current_bytes: figures.current_bytes,
                            current_measured: false,
                            predicted_bytes: figures.predicted_bytes,
                            after_bytes: figures.after_bytes(),
                        },
                    )
                })
                .collect(),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

fn unix_to_rfc3339(now: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)))
}

/// "+1.2 MB" / "-3 kB": a signed change in bytes.
fn change(before: u64, after: u64) -> String {
    if after >= before {
        format!("+{}", bytes(after - before))
    } else {
        format!("-{}", bytes(before - after))
    }
}

/// What an apply did, for people.
pub fn report_human(out: &mut impl Write, report: &Report) -> io::Result<()> {
    writeln!(
        out,
        "{:<12}  {:>7}  {:>7}  {:>7}  {:>6}  {:>10}",
        "", "PLANNED", "REMOVED", "SKIPPED", "FAILED", "PREDICTED"
    )?;
    let row = |out: &mut dyn Write, label: &str, tally: &Tally| {
        writeln!(
            out,
            "{:<12}  {:>7}  {:>7}  {:>7}  {:>6}  {:>10}",
            label,
            tally.planned,
            tally.removed,
            tally.skipped,
            tally.failed,
            bytes(tally.predicted_bytes)
        )
    };
    for (kind, tally) in report.tally() {
        if tally.planned > 0 {
            row(out, kind.heading(), &tally)?;
        }
    }
    let total = report.total();
    row(out, "Total", &total)?;

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
                result.outcome.detail().unwrap_or("")
            )?;
        }
    }

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
        None => writeln!(
            out,
            "Engine-reported usage after: unknown (the engine did not answer)"
        )?,
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
    if report.interrupted {
        writeln!(
            out,
            "Interrupted: {} items were not started.",
            total.not_started
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    generated_at: String,
    engine: &'a EngineInfo,
    interrupted: bool,
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
pub fn report_json(
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
pub fn audit_line(engine: &EngineInfo, result: &ItemResult, now: i64) -> String {
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

fn maybe_bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), bytes)
}

/// `docker-reclaim df` for people.
pub fn df_human(
    out: &mut impl Write,
    engine: &EngineInfo,
    usage: &Usage,
    free_space: Option<u64>,
    verbose: bool,
    now: i64,
) -> io::Result<()> {
    writeln!(
        out,
        "Docker {} (API {}) at {}",
        engine.version, engine.api_version, engine.host
    )?;
    let backing = if engine.backing_filesystem.is_empty() {
        String::new()
    } else {
        format!(" on {}", engine.backing_filesystem)
    };
    writeln!(
        out,
        "data root {}, storage driver {}{backing}, {}",
        engine.data_root,
        engine.storage_driver,
        free_space.map_or_else(
            || "free space not readable from here".to_string(),
            |free| format!("{} free", bytes(free))
        )
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<18}  {:>5}  {:>10}  {:>10}  {:>11}",
        "", "COUNT", "SIZE", "IN USE", "RECLAIMABLE"
    )?;
    for row in &usage.rows {
        let reclaimable = match row.reclaimable_bytes {
            Some(value) => bytes(value),
            None if row.kind == "Orphaned overlay2" => "not by the engine".to_string(),
            None => "-".to_string(),
        };
        let size = match row.size_bytes {
            Some(size) if !row.measured && row.kind != "Volumes" && row.kind != "Build cache" => {
                format!("~{}", bytes(size))
            }
            other => maybe_bytes(other),
        };
        writeln!(
            out,
            "{:<18}  {:>5}  {:>10}  {:>10}  {:>11}",
            row.kind,
            row.count,
            size,
            maybe_bytes(row.in_use_bytes),
            reclaimable
        )?;
    }
    if let Some(root) = usage.data_root {
        writeln!(
            out,
            "{:<18}  {:>5}  {:>10}  {:>10}  {:>11}",
            "Data root",
            "",
            bytes(root.bytes.allocated),
            "",
            bytes(usage.reclaimable_bytes)
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} layers are shared between images ({}).",
        usage.shared_layers,
        bytes(usage.shared_layer_bytes)
    )?;
    if usage.data_root.is_some() {
        writeln!(
            out,
            "Containers, logs, images, layers and orphans are measured on disk (allocated blocks); volumes and build cache are the engine's figures."
        )?;
    } else {
        writeln!(
            out,
            "The data root is not readable from here: sizes are the engine's estimates (~); logs and orphaned directories are unknown."
        )?;
    }
    writeln!(
        out,
        "RECLAIMABLE is what `docker-reclaim --dry-run` plans to free: stopped containers and dangling images."
    )?;
    if verbose {
        let mut kind = "";
        for item in &usage.items {
            if item.kind != kind {
                kind = item.kind;
                writeln!(out)?;
                writeln!(
                    out,
                    "{:<12}  {:<40}  {:>10}  IN USE",
                    kind.to_uppercase(),
                    "NAME",
                    "SIZE"
                )?;
            }
            writeln!(
                out,
                "{:<12}  {:<40}  {:>10}  {}",
                short_id(&item.id),
                truncate(&item.name),
                bytes(item.size_bytes),
                if item.in_use { "yes" } else { "no" }
            )?;
        }
        if !usage.orphans.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "ORPHANED overlay2 DIRECTORY                                            SIZE      AGE"
            )?;
            for orphan in &usage.orphans {
                writeln!(
                    out,
                    "{:<64}  {:>10}  {:>7}",
                    orphan.name,
                    bytes(orphan.bytes.allocated),
                    orphan
                        .modified
                        .map_or_else(|| "-".to_string(), |m| age(now - m))
                )?;
            }
        }
    }
    Ok(())
}

/// `docker-reclaim df --format json`.
pub fn df_json(
    out: &mut impl Write,
    engine: &EngineInfo,
    usage: &Usage,
    free_space: Option<u64>,
    now: i64,
) -> io::Result<()> {
    let document = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": unix_to_rfc3339(now),
        "engine": engine,
        "free_space_bytes": free_space,
        "usage": usage,
    });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

/// `docker-reclaim layers` for people.
pub fn layers_human(out: &mut impl Write, reports: &[ImageReport]) -> io::Result<()> {
    for (index, report) in reports.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{} ({})", report.name, report.id)?;
        writeln!(
            out,
            "  {:<12}  {:<12}  {:>10}  {:>10}  {:<24}  CREATED BY",
            "CHAIN ID", "DIFF ID", "SIZE", "CONTAINERS", "SHARED WITH"
        )?;
        for layer in &report.layers {
            let shared = if layer.shared_with.is_empty() {
                "-".to_string()
            } else {
                layer.shared_with.join(", ")
            };
            let created_by: String = layer.created_by.chars().take(60).collect();
            writeln!(
                out,
                "  {:<12}  {:<12}  {:>10}  {:>10}  {:<24}  {}",
                short_id(&layer.chain_id),
                short_id(&layer.diff_id),
                bytes(layer.size_bytes),
                layer.containers,
                shared,
                created_by
            )?;
        }
        writeln!(
            out,
            "  unique {} (what removing this image alone frees), shared {}{}",
            bytes(report.unique_bytes),
            bytes(report.shared_bytes),
            if report.measured {
                "; measured on disk"
            } else {
                "; the engine's estimates"
            }
        )?;
    }
    Ok(())
}

/// `docker-reclaim layers --format json`.
pub fn layers_json(out: &mut impl Write, reports: &[ImageReport], now: i64) -> io::Result<()> {
    let document = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": unix_to_rfc3339(now),
        "images": reports,
    });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> EngineInfo {
        EngineInfo {
            id: "ENGINE-ID".into(),
            version: "20.10.24".into(),
            api_version: "1.41".into(),
            data_root: "/var/lib/docker".into(),
            storage_driver: "overlay2".into(),
            backing_filesystem: String::new(),
            host: "unix:///var/run/docker.sock".into(),
        }
    }

    fn sample() -> Plan {
        let items = vec![
            Item {
                created: 1_000_000 - 7200,
                finished_at: Some(1_000_000 - 300),
                predicted_bytes: 1_048_576,
                ..Item::new(
                    Kind::Container,
                    "a2b626f2f7a82d8dac90b34cf5fb1ef12b245500d8c2637c4f61dce7cd3ab721",
                    "stopped-one",
                    Reason::Exited,
                )
            },
            Item {
                created: 1_000_000 - 3 * 86_400,
                predicted_bytes: 2_577_420,
                frees_layers: vec![FreedLayer {
                    chain_id: "sha256:x".into(),
                    bytes: 2_577_420,
                }],
                ..Item::new(
                    Kind::Image,
                    "sha256:c55c529a12814a6da91c6846e040d3bf55a586f04e25abffc7b3a64b3804c2bf",
                    "<none>",
                    Reason::Dangling,
                )
            },
        ];
        let by_kind = Kind::ALL
            .iter()
            .map(|kind| {
                let predicted = items
                    .iter()
                    .filter(|i| i.kind == *kind)
                    .map(|i| i.predicted_bytes)
                    .sum();
                (
                    *kind,
                    Figures {
                        current_bytes: if *kind == Kind::Image {
                            7_287_746
                        } else {
                            predicted
                        },
                        predicted_bytes: predicted,
                    },
                )
            })
            .collect();
        Plan {
            items,
            by_kind,
            total: Figures {
                current_bytes: 8_336_322,
                predicted_bytes: 3_625_996,
            },
            data_root: None,
            orphaned: None,
            kept: vec![],
            target: None,
        }
    }

    #[test]
    fn human_output_reads_well() {
        let mut out = Vec::new();
        let show = Show {
            dry_run: true,
            verbose: false,
            now: 1_000_000,
        };
        human(&mut out, &engine(), &sample(), &show).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "\
Docker 20.10.24 (API 1.41) at unix:///var/run/docker.sock
data root /var/lib/docker, storage driver overlay2

Containers: 1 to remove, 1.05 MB
  ID            NAME              AGE        SIZE  REASON
  a2b626f2f7a8  stopped-one        2h     1.05 MB  stopped: exited 5m ago

Images: 1 to remove, 2.58 MB
  ID            NAME              AGE        SIZE  REASON
  c55c529a1281  <none>          3days     2.58 MB  dangling: untagged, no remaining container uses it

                 CURRENT     RECLAIM       AFTER
Containers       1.05 MB     1.05 MB         0 B
Images           7.29 MB     2.58 MB     4.71 MB
Total            8.34 MB     3.63 MB     4.71 MB

Sizes are the engine's own figures (estimates: the data root is not readable from here); image sizes count each shared layer once.
Dry run: nothing was removed.
";
        assert_eq!(text, expected);
    }

    #[test]
    fn json_carries_the_contract_fields() {
        let mut out = Vec::new();
        let show = Show {
            dry_run: true,
            verbose: false,
            now: 1_000_000,
        };
        json(&mut out, &engine(), &sample(), &show).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["engine"]["id"], "ENGINE-ID");
        assert_eq!(value["engine"]["api_version"], "1.41");
        assert_eq!(value["engine"]["storage_driver"], "overlay2");
        assert_eq!(value["items"][0]["kind"], "container");
        assert_eq!(value["items"][1]["kind"], "image");
        assert_eq!(
            value["items"][1]["id"],
            "sha256:c55c529a12814a6da91c6846e040d3bf55a586f04e25abffc7b3a64b3804c2bf"
        );
        assert_eq!(value["items"][0]["reason"], "exited");
        assert_eq!(value["items"][0]["predicted_bytes"], 1_048_576);
        assert_eq!(value["totals"]["predicted_bytes"], 3_625_996);
        assert_eq!(value["totals"]["measured"], false);
        assert_eq!(value["totals"]["by_kind"]["build_cache"]["count"], 0);
        assert_eq!(value["generated_at"], "1970-01-12T13:46:40Z");
    }

    #[test]
    fn long_names_are_cut() {
        let long = "x".repeat(60);
        assert_eq!(truncate(&long).chars().count(), NAME_WIDTH);
        assert!(truncate(&long).ends_with('…'));
    }
}
