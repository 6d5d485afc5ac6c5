//! The plan: grouped by kind with the totals table for people, or the JSON
//! contract the README documents.

use std::io::{self, Write};

use serde::Serialize;

use super::table::{Align, Table};
use super::text::{SCHEMA_VERSION, age, bold, bytes, cut_end, shorten, unix_to_rfc3339, wrapped};
use crate::model::printable;
use crate::model::{EngineInfo, Measured, Unmeasured, short_id};
use crate::plan::rules::Scope;
use crate::plan::{
    Figures, FreedLayer, Item, KeptLayer, Kind, LeftOut, Plan, Reason, SavedPlanNote, TargetNote,
};

/// How many kept items the plan lists without -v.
const KEPT_SHOWN: usize = 10;

/// The reason in a few words, for a narrow terminal.
fn short_reason_text(item: &Item, now: i64) -> String {
    match (item.reason, item.finished_at) {
        (Reason::Exited, Some(finished)) => format!("exited {} ago", age(now - finished)),
        (Reason::Exited, None) => "exited".into(),
        (Reason::NeverStarted, _) => "never started".into(),
        (Reason::Dead, _) => "dead".into(),
        (Reason::Dangling, _) => "dangling".into(),
        (Reason::Unused, _) => "unused (--all)".into(),
        (Reason::AnonymousVolume, _) => "anonymous, unused".into(),
        (Reason::NamedVolume, _) => "named, unused".into(),
        (Reason::UnusedNetwork, _) => "no containers".into(),
        (Reason::UnusedBuildCache, _) => "not in use".into(),
        (Reason::CacheOfRemovedImages, _) => "shared, its images go".into(),
        (Reason::RotatedLog, _) => "rotated log".into(),
        (Reason::OversizedLog, _) => "truncate log".into(),
    }
}

fn reason_text(item: &Item, now: i64) -> String {
    match (item.reason, item.finished_at) {
        (Reason::Exited, Some(finished)) => {
            format!("stopped: exited {} ago", age(now - finished))
        }
        _ => item.reason.describe().to_string(),
    }
}

/// How to show a plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Show {
    /// Nothing will be removed.
    pub(crate) dry_run: bool,
    /// List each image's freed and kept layers.
    pub(crate) verbose: bool,
    /// Unix seconds, for ages.
    pub(crate) now: i64,
    /// The terminal's width: rows are fitted to it. `None` (a pipe, a log file):
    /// nothing is cut.
    pub(crate) width: Option<usize>,
    /// Bold headings and dim notes.
    pub(crate) color: bool,
}

/// The width taken by a row's ID, AGE and SIZE columns and the gaps.
const FIXED_COLUMNS: usize = 2 + 12 + 2 + 2 + 8 + 2 + 10 + 2;

/// How an item is named in the plan: an image by every tag it has (its name,
/// [`crate::model::Image::display_name`]), made safe for a terminal.
fn item_name(item: &Item) -> String {
    printable(&item.name).into_owned()
}

/// The NAME and REASON column widths for these rows within `width`: names get
/// what they need as long as reasons keep at least half the room (and names at
/// least 12 characters); reasons what is left.
fn column_widths(names: usize, reasons: usize, width: Option<usize>) -> (usize, usize) {
    let Some(width) = width else {
        return (names, reasons);
    };
    let room = width.saturating_sub(FIXED_COLUMNS);
    let name = names.min(room.saturating_sub(reasons.min(room / 2)).max(12));
    let reason = room.saturating_sub(name).max(10);
    (name.max(4), reason)
}

/// Only the planned IDs, one per line (`--dry-run -q`): for scripts.
pub(crate) fn quiet_ids(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    for item in &plan.items {
        writeln!(out, "{}", item.id)?;
    }
    Ok(())
}

/// The plan for people: grouped by kind, then the totals table.
pub(crate) fn plan_human(
    out: &mut impl Write,
    engine: &EngineInfo,
    plan: &Plan,
    show: &Show,
) -> io::Result<()> {
    writeln!(out, "{}", super::text::engine_line(engine))?;
    writeln!(
        out,
        "data root {}, storage driver {}",
        engine.data_root, engine.storage_driver
    )?;
    writeln!(out)?;

    // A target already met is said first: it is why nothing is planned.
    let met_already = plan
        .target
        .as_ref()
        .is_some_and(|target| target.needed_bytes == 0);
    if met_already {
        wrapped(out, show.width, |out| target_lines(out, plan))?;
    }
    if plan.is_empty() && !met_already {
        wrapped(out, show.width, |out| {
            writeln!(
                out,
                "Nothing to reclaim: nothing in the chosen scope can go (by default: stopped containers and dangling images)."
            )
        })?;
    }

    items_lines(out, plan, show)?;
    notes_lines(out, plan, show, met_already)?;
    wrapped(out, show.width, |out| totals_lines(out, engine, plan, show))
}

/// The items, grouped by kind, in a table fitted to the terminal.
fn items_lines(out: &mut impl Write, plan: &Plan, show: &Show) -> io::Result<()> {
    let now = show.now;
    let longest = |text: fn(&Item, i64) -> String| {
        plan.items
            .iter()
            .map(|item| text(item, now).chars().count())
            .max()
            .unwrap_or(4)
    };
    // On a narrow terminal the reasons are said in a few words, so that names
    // keep their room.
    let names = longest(|item, _| item_name(item)).max(4);
    let long_fits = show
        .width
        .is_none_or(|width| FIXED_COLUMNS + names.min(40) + longest(reason_text) <= width);
    let reason_of: fn(&Item, i64) -> String = if long_fits {
        reason_text
    } else {
        short_reason_text
    };
    let (name_width, reason_width) = column_widths(names, longest(reason_of), show.width);
    for kind in Kind::ALL {
        let items: Vec<&Item> = plan.items_of(kind).collect();
        if items.is_empty() {
            continue;
        }
        let bytes_of_kind: u64 = items.iter().map(|item| item.predicted_bytes).sum();
        let heading = format!(
            "{}: {} to remove, {}",
            kind.heading(),
            items.len(),
            bytes(bytes_of_kind)
        );
        writeln!(out, "{}", bold(&heading, show.color))?;
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
                shorten(&item_name(item), name_width),
                if item.created > 0 {
                    age(now - item.created)
                } else {
                    "-".to_string()
                },
                bytes(item.predicted_bytes),
                cut_end(&reason_of(item, now), reason_width)
            )?;
            if show.verbose {
                if let Some(used) = item.last_use {
                    writeln!(
                        out,
                        "      last used {} ago ({})",
                        age((now - used.at).max(0)),
                        used.source.describe()
                    )?;
                }
                layer_lines(out, item, show.width)?;
            }
        }
        writeln!(out)?;
    }

    Ok(())
}

/// Where a target stopped, what rules kept, and what of a saved plan is not taken.
fn notes_lines(
    out: &mut impl Write,
    plan: &Plan,
    show: &Show,
    met_already: bool,
) -> io::Result<()> {
    if !met_already {
        wrapped(out, show.width, |out| target_lines(out, plan))?;
    }
    if !plan.kept.is_empty() {
        writeln!(out, "Kept by rules: {}", plan.kept.len())?;
        kept_lines(out, &plan.kept, show)?;
        writeln!(out)?;
    }
    if let Some(saved) = &plan.saved {
        writeln!(
            out,
            "Saved plan: {} items; {} taken by a plan made now, {} gone already (not removed by this run), {} not taken.",
            saved.items,
            plan.items.len(),
            saved.gone.len(),
            saved.not_taken.len()
        )?;
        if !saved.not_taken.is_empty() {
            writeln!(out, "Not taken now:")?;
            kept_lines(out, &saved.not_taken, show)?;
        }
        if !saved.gone.is_empty() && show.verbose {
            writeln!(out, "Gone already:")?;
            kept_lines(
                out,
                &saved.gone,
                &Show {
                    verbose: true,
                    ..*show
                },
            )?;
        }
        writeln!(out)?;
    }

    Ok(())
}

/// The totals table and what its figures are.
fn totals_lines(
    out: &mut impl Write,
    engine: &EngineInfo,
    plan: &Plan,
    show: &Show,
) -> io::Result<()> {
    let (mut table, shown) = totals_table(plan);
    let label = if plan.data_root.is_some() {
        "Data root"
    } else {
        "Total"
    };
    table.row(totals_row(label, &plan.total));
    table.write(out, None)?;
    if let Some(root) = plan.data_root {
        writeln!(out)?;
        measured_notes(out, engine, plan, &shown, root)?;
    } else {
        writeln!(out)?;
        let why = plan.unmeasured.as_ref().map_or_else(
            || "the data root was not measured".to_string(),
            ToString::to_string,
        );
        writeln!(
            out,
            "Sizes are the engine's own figures, not measured on disk: {why}. Image sizes count each shared layer once."
        )?;
    }
    engine_notes(out, engine, plan)?;
    if show.dry_run {
        writeln!(out, "Dry run: nothing was removed.")?;
    }
    Ok(())
}

/// One row per kind that has something now or in the plan, and those kinds.
fn totals_table(plan: &Plan) -> (Table, Vec<Kind>) {
    let mut table = Table::new(&[
        ("", Align::Left),
        ("CURRENT", Align::Right),
        ("RECLAIM", Align::Right),
        ("AFTER", Align::Right),
    ]);
    let shown: Vec<&(Kind, Figures)> = plan
        .by_kind
        .iter()
        .filter(|(kind, figures)| {
            figures.current_bytes > 0 || plan.items_of(*kind).next().is_some()
        })
        .collect();
    for (kind, figures) in &shown {
        if plan.data_root.is_some() {
            // Measured on disk, both of them, except what is marked ~: the
            // engine's figures (the build cache's CURRENT, a RECLAIM the
            // disk does not show), and an AFTER from one of those.
            let mark = |measured: bool, value: u64| {
                if measured {
                    bytes(value)
                } else {
                    format!("~{}", bytes(value))
                }
            };
            let current = current_measured(*kind);
            let reclaim = plan.kind_measured(*kind);
            table.row(vec![
                kind.heading().to_string(),
                mark(current, figures.current_bytes),
                mark(reclaim, figures.predicted_bytes),
                mark(current && reclaim, figures.after_bytes()),
            ]);
        } else {
            table.row(totals_row(kind.heading(), figures));
        }
    }
    (table, shown.iter().map(|(kind, _)| *kind).collect())
}

/// What was measured on disk, what is the engine's estimate, and the data root.
fn measured_notes(
    out: &mut impl Write,
    engine: &EngineInfo,
    plan: &Plan,
    shown: &[Kind],
    root: Measured,
) -> io::Result<()> {
    let words = |measured: bool| {
        shown
            .iter()
            .filter(|kind| plan.items_of(**kind).next().is_some())
            .filter(|kind| plan.kind_measured(**kind) == measured)
            .map(|kind| kind.heading().to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (on_disk, estimated) = (words(true), words(false));
    if !on_disk.is_empty() {
        writeln!(
            out,
            "RECLAIM: measured on disk for {on_disk} (allocated blocks; shared layers and hard links counted once)."
        )?;
    }
    if !estimated.is_empty() {
        writeln!(
            out,
            "RECLAIM (~): the engine's estimate for {estimated}, which are not measured on disk."
        )?;
    }
    let build_cache_shown = shown.contains(&Kind::BuildCache);
    writeln!(
        out,
        "CURRENT: measured on disk (containers with their logs, images' layers and records once each, volumes){}.",
        if build_cache_shown {
            "; the build cache's (~) is the engine's figure"
        } else {
            ""
        }
    )?;
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
}

/// Orphans the engine cannot reclaim, and what Podman does not tell.
fn engine_notes(out: &mut impl Write, engine: &EngineInfo, plan: &Plan) -> io::Result<()> {
    if let Some((count, orphaned)) = plan.orphaned.filter(|(count, _)| *count > 0) {
        let what = if engine.image_store == crate::model::ImageStore::Containerd {
            "containerd snapshot directories and blobs"
        } else {
            "overlay2 directories"
        };
        writeln!(
            out,
            "Orphaned {what}: {count}, {}: not reclaimable by the engine (see `docker-reclaim df -v`).",
            bytes(orphaned)
        )?;
    }
    if plan.build_cache_unlisted {
        writeln!(
            out,
            "Build cache: not listed; before API 1.42 only `docker system df` lists it, and that makes the engine measure everything (--build-cache lists it)."
        )?;
    }
    if engine.product == crate::model::Product::Podman {
        writeln!(
            out,
            "Podman's Docker-compatible API: its own image list and sizes; it lists no build cache{}, and gives no writable-layer sizes for containers.",
            if plan.scope.build_cache.is_some() {
                " (so --build-cache plans nothing)"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// Where a target plan stopped, and why.
fn target_lines(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
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
    Ok(())
}

/// Kept or left-out items, a line each: all of them with -v, else the first few.
fn kept_lines(out: &mut impl Write, kept: &[LeftOut], show: &Show) -> io::Result<()> {
    let shown = if show.verbose { kept.len() } else { KEPT_SHOWN };
    for kept in kept.iter().take(shown) {
        let line = format!(
            "  {} {} ({}): {}",
            kept.kind.word(),
            short_id(&kept.id),
            printable(&kept.name),
            printable(&kept.rule)
        );
        writeln!(out, "{}", fit(&line, show.width))?;
    }
    if kept.len() > shown {
        writeln!(
            out,
            "  … and {} more (-v lists them all)",
            kept.len() - shown
        )?;
    }
    Ok(())
}

/// A line cut to the terminal's width, when there is one.
fn fit(line: &str, width: Option<usize>) -> String {
    match width {
        Some(width) => cut_end(line, width),
        None => line.to_string(),
    }
}

/// Under an image, with -v: the layers its removal frees and those it leaves.
fn layer_lines(out: &mut impl Write, item: &Item, width: Option<usize>) -> io::Result<()> {
    for layer in &item.frees_layers {
        writeln!(
            out,
            "      frees layer {}  {:>10}",
            short_id(&layer.chain_id),
            bytes(layer.bytes)
        )?;
    }
    for layer in &item.keeps_layers {
        let line = format!(
            "      keeps layer {}  {:>10}  held by {}",
            short_id(&layer.chain_id),
            bytes(layer.bytes),
            layer.held_by
        );
        writeln!(out, "{}", fit(&line, width))?;
    }
    Ok(())
}

/// Whether a kind's CURRENT is measured when the data root is: all but the
/// build cache's, whose records the API does not place on disk.
fn current_measured(kind: Kind) -> bool {
    kind != Kind::BuildCache
}

fn totals_row(label: &str, figures: &Figures) -> Vec<String> {
    vec![
        label.to_string(),
        bytes(figures.current_bytes),
        bytes(figures.predicted_bytes),
        bytes(figures.after_bytes()),
    ]
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema_version: u32,
    generated_at: String,
    dry_run: bool,
    engine: &'a EngineInfo,
    items: Vec<JsonItem<'a>>,
    /// Candidates a filter or keep rule left alone, with the rule.
    kept: &'a [LeftOut],
    /// With --target-free or --max-usage: where the plan stopped.
    target: Option<&'a TargetNote>,
    /// The kinds beyond the default the plan may take (`--all`, `--volumes`, …).
    scope: Scope,
    /// When a saved plan is applied: what of it is gone, and what is not taken now.
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_plan: Option<&'a SavedPlanNote>,
    totals: JsonTotals<'a>,
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
    /// Images and build cache records: `{at, source}`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_use: Option<JsonLastUse>,
}

#[derive(Serialize)]
struct JsonLastUse {
    at: String,
    source: crate::model::UseSource,
}

#[derive(Serialize)]
struct JsonFigures {
    count: usize,
    /// Whether `predicted_bytes` of this kind was measured on disk.
    measured: bool,
    /// The engine's figure: never a measurement on disk.
    current_bytes: u64,
    current_measured: bool,
    predicted_bytes: u64,
    after_bytes: u64,
}

#[derive(Serialize)]
struct JsonTotals<'a> {
    /// True when every item's predicted bytes were measured on disk.
    measured: bool,
    /// The data root measured on disk, or null when it is not readable here.
    data_root: Option<Measured>,
    /// Why sizes are the engine's figures: `{reason, detail}` with reason
    /// `remote`, `driver`, `not_readable`, `not_the_engines` or `metadata`; null
    /// when measured.
    unmeasured: Option<&'a Unmeasured>,
    /// What the engine's records no longer name under its data root (overlay2
    /// directories; on the containerd image store, snapshot directories and
    /// blobs): `{count, bytes}`, not reclaimable by the engine.
    orphaned: Option<serde_json::Value>,
    /// The same, under its first name (which said overlay2 on every store):
    /// kept within schema version 1 for readers of it; goes at version 2.
    orphaned_overlay2: Option<serde_json::Value>,
    count: usize,
    current_bytes: u64,
    predicted_bytes: u64,
    after_bytes: u64,
    by_kind: std::collections::BTreeMap<Kind, JsonFigures>,
    /// Present (true) when the engine was not asked for its build cache
    /// records (API 1.41 without the build cache in scope): `by_kind`'s
    /// `build_cache` does not count them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    build_cache_unlisted: bool,
}

/// The plan as one JSON object (the README documents the contract).
pub(crate) fn plan_json(
    out: &mut impl Write,
    engine: &EngineInfo,
    plan: &Plan,
    show: &Show,
) -> io::Result<()> {
    let orphaned = plan
        .orphaned
        .map(|(count, bytes)| serde_json::json!({"count": count, "bytes": bytes}));
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
                last_use: item.last_use.map(|used| JsonLastUse {
                    at: unix_to_rfc3339(used.at),
                    source: used.source,
                }),
            })
            .collect(),
        kept: &plan.kept,
        target: plan.target.as_ref(),
        scope: plan.scope,
        saved_plan: plan.saved.as_ref(),
        totals: JsonTotals {
            measured: plan.all_measured(),
            data_root: plan.data_root,
            unmeasured: plan.unmeasured.as_ref(),
            orphaned: orphaned.clone(),
            orphaned_overlay2: orphaned,
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
                            measured: plan.data_root.is_some() && plan.kind_measured(*kind),
                            current_bytes: figures.current_bytes,
                            current_measured: plan.data_root.is_some() && current_measured(*kind),
                            predicted_bytes: figures.predicted_bytes,
                            after_bytes: figures.after_bytes(),
                        },
                    )
                })
                .collect(),
            build_cache_unlisted: plan.build_cache_unlisted,
        },
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::rules::Scope;
    use crate::plan::{Figures, FreedLayer, Item, Kind, Plan, Reason};
    use crate::testing::engine;

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
            scope: Scope::default(),
            saved: None,
            unmeasured: None,
            build_cache_unlisted: false,
            measured_keys: Vec::new(),
        }
    }

    #[test]
    fn json_carries_the_contract_fields() {
        let mut out = Vec::new();
        let show = Show {
            dry_run: true,
            verbose: false,
            now: 1_000_000,
            width: None,
            color: false,
        };
        plan_json(&mut out, &engine(), &sample(), &show).unwrap();
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
}
