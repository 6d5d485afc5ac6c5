//! `docker-reclaim df`: usage per kind, for people or as JSON.

use std::io::{self, Write};

use super::text::{SCHEMA_VERSION, age, bytes, maybe_bytes, shorten, unix_to_rfc3339};
use crate::model::{EngineInfo, ImageStore, printable, short_id};
use crate::views::df::{Section, Usage};

/// `docker-reclaim df` for people. With -v, the items' NAME column is as wide
/// as the longest name in a pipe or a file (nothing cut), and fits `width` on
/// a terminal (names cut in the middle).
pub(crate) fn df_human(
    out: &mut impl Write,
    engine: &EngineInfo,
    usage: &Usage,
    free_space: Option<u64>,
    verbose: bool,
    width: Option<usize>,
    now: i64,
) -> io::Result<()> {
    writeln!(out, "{}", super::text::engine_line(engine))?;
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
    rows_human(out, usage)?;
    notes_human(out, usage)?;
    if verbose {
        items_human(out, usage, width)?;
        orphans_human(out, engine, usage, now)?;
    }
    Ok(())
}

/// One row per kind, and the data root's.
fn rows_human(out: &mut impl Write, usage: &Usage) -> io::Result<()> {
    writeln!(
        out,
        "{:<18}  {:>5}  {:>10}  {:>10}  {:>11}",
        "", "COUNT", "SIZE", "IN USE", "RECLAIMABLE"
    )?;
    for row in &usage.rows {
        let reclaimable = match row.reclaimable_bytes {
            Some(value) => bytes(value),
            None if matches!(
                row.kind,
                Section::OrphanedOverlay2 | Section::OrphanedContainerd
            ) =>
            {
                "not by the engine".to_string()
            }
            None => "-".to_string(),
        };
        let size = match row.size_bytes {
            Some(size) if !row.measured && !row.kind.is_engine_figure() => {
                format!("~{}", bytes(size))
            }
            other => maybe_bytes(other),
        };
        writeln!(
            out,
            "{:<18}  {:>5}  {:>10}  {:>10}  {:>11}",
            row.kind.label(),
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
    Ok(())
}

/// What is shared, what was measured, what RECLAIMABLE means.
fn notes_human(out: &mut impl Write, usage: &Usage) -> io::Result<()> {
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
            "Containers, logs, images, layers, volumes and orphans are measured on disk (allocated blocks); the build cache is the engine's figure."
        )?;
    } else {
        let why = usage.unmeasured.as_ref().map_or_else(
            || "the data root was not measured".to_string(),
            ToString::to_string,
        );
        writeln!(
            out,
            "Not measured on disk ({why}): sizes are the engine's estimates (~); logs and orphaned directories are unknown."
        )?;
    }
    writeln!(
        out,
        "RECLAIMABLE is what `docker-reclaim --dry-run` plans to free: stopped containers and dangling images."
    )?;
    logs_hint(out, usage)
}

/// When containers' logs hold more than any reclaimable part, say how to
/// reclaim them: they are in no prune's scope.
fn logs_hint(out: &mut impl Write, usage: &Usage) -> io::Result<()> {
    let Some(logs) = usage
        .rows
        .iter()
        .find(|row| row.kind == Section::ContainerLogs)
    else {
        return Ok(());
    };
    let held = logs
        .size_bytes
        .unwrap_or(0)
        .saturating_sub(logs.reclaimable_bytes.unwrap_or(0));
    let largest = usage
        .rows
        .iter()
        .filter(|row| row.kind != Section::ContainerLogs)
        .filter_map(|row| row.reclaimable_bytes)
        .max()
        .unwrap_or(0);
    if held > largest && held > 0 {
        writeln!(
            out,
            "Logs of containers that stay hold {}, more than any reclaimable part: `docker-reclaim --logs --logs-over 100M --dry-run` shows what reclaiming them frees; `df --why` lists the logs with no size limit.",
            bytes(held)
        )?;
    }
    Ok(())
}

/// `df -v`: every container, image and volume, by kind, largest first.
fn items_human(out: &mut impl Write, usage: &Usage, width: Option<usize>) -> io::Result<()> {
    let names: Vec<String> = usage
        .items
        .iter()
        .map(|item| printable(&item.name).into_owned())
        .collect();
    // Each kind's NAME column as wide as its longest name; on a terminal
    // no wider than what ID, SIZE, IN USE and the gaps (34) leave.
    let column = |kind| {
        let longest = usage
            .items
            .iter()
            .zip(&names)
            .filter(|(item, _)| item.kind == kind)
            .map(|(_, name)| name.chars().count())
            .max()
            .unwrap_or(0)
            .max("NAME".len());
        match width {
            Some(width) => longest.min(width.saturating_sub(34).max(12)),
            None => longest,
        }
    };
    let mut kind = None;
    let mut name_width = 0;
    for (index, item) in usage.items.iter().enumerate() {
        if kind != Some(item.kind) {
            kind = Some(item.kind);
            name_width = column(item.kind);
            writeln!(out)?;
            writeln!(
                out,
                "{:<12}  {:<name_width$}  {:>10}  IN USE",
                item.kind.word().to_uppercase(),
                "NAME",
                "SIZE"
            )?;
        }
        writeln!(
            out,
            "{:<12}  {:<name_width$}  {:>10}  {}",
            short_id(&item.id),
            shorten(&names[index], name_width),
            bytes(item.size_bytes),
            if item.in_use { "yes" } else { "no" }
        )?;
    }
    Ok(())
}

/// `df -v`: what the engine no longer knows about, under its data root.
fn orphans_human(
    out: &mut impl Write,
    engine: &EngineInfo,
    usage: &Usage,
    now: i64,
) -> io::Result<()> {
    if !usage.orphans.is_empty() {
        writeln!(out)?;
        let what = if engine.image_store == ImageStore::Containerd {
            "ORPHANED containerd SNAPSHOT OR BLOB"
        } else {
            "ORPHANED overlay2 DIRECTORY"
        };
        writeln!(out, "{what:<64}  {:>10}  {:>7}", "SIZE", "AGE")?;
        for orphan in &usage.orphans {
            writeln!(
                out,
                "{:<64}  {:>10}  {:>7}",
                printable(&orphan.name),
                bytes(orphan.bytes.allocated),
                orphan
                    .modified
                    .map_or_else(|| "-".to_string(), |m| age(now - m))
            )?;
        }
    }
    Ok(())
}

/// `docker-reclaim df --format json`.
pub(crate) fn df_json(
    out: &mut impl Write,
    engine: &EngineInfo,
    usage: &Usage,
    free_space: Option<u64>,
    why: Option<&crate::views::sources::Sources>,
    now: i64,
) -> io::Result<()> {
    let mut document = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": unix_to_rfc3339(now),
        "engine": engine,
        "free_space_bytes": free_space,
        "usage": usage,
    });
    if let Some(why) = why {
        document["why"] = serde_json::to_value(why).map_err(io::Error::other)?;
    }
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}
