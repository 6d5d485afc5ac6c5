//! `docker-reclaim df`: usage per kind, for people or as JSON.

use std::io::{self, Write};

use super::table::{Align, Table};
use super::text::{SCHEMA_VERSION, age, bytes, maybe_bytes, unix_to_rfc3339};
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
    rows_human(out, engine.image_store, usage)?;
    notes_human(out, usage)?;
    if verbose {
        items_human(out, usage, width)?;
        orphans_human(out, engine, usage, width, now)?;
    }
    Ok(())
}

/// One row per kind, parts indented under the row they belong to, and the
/// data root's total (which the top-level rows add up to when measured).
fn rows_human(out: &mut impl Write, store: ImageStore, usage: &Usage) -> io::Result<()> {
    let mut table = Table::new(&[
        ("", Align::Left),
        ("COUNT", Align::Right),
        ("SIZE", Align::Right),
        ("IN USE", Align::Right),
        ("RECLAIMABLE", Align::Right),
    ]);
    for row in &usage.rows {
        let reclaimable = match row.reclaimable_bytes {
            Some(value) => bytes(value),
            None if row.kind == Section::Orphans => "not by the engine".to_string(),
            None => String::new(),
        };
        let size = match row.size_bytes {
            Some(size) if !row.measured => format!("~{}", bytes(size)),
            other => maybe_bytes(other),
        };
        let label = if row.part_of.is_some() {
            format!("  {}", row.kind.label(store))
        } else {
            row.kind.label(store).to_string()
        };
        table.row(vec![
            label,
            row.count.map(|n| n.to_string()).unwrap_or_default(),
            size,
            row.in_use_bytes.map(bytes).unwrap_or_default(),
            reclaimable,
        ]);
    }
    if let Some(root) = usage.data_root {
        table.row(vec![
            "Total (data root)".to_string(),
            String::new(),
            bytes(root.bytes.allocated),
            String::new(),
            bytes(usage.reclaimable_bytes),
        ]);
    }
    table.write(out, None)
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
            "Measured on disk (allocated blocks), each byte in one row: the rows without indent add up to the data root. The build cache is the engine's figure (~) for its records not shared with images; Other is the rest: BuildKit's own files and snapshots beyond that figure, temporary files."
        )?;
    } else {
        let why = usage.unmeasured.as_ref().map_or_else(
            || "the data root was not measured".to_string(),
            ToString::to_string,
        );
        writeln!(
            out,
            "Not measured on disk ({why}): sizes are the engine's estimates (~); logs, metadata and orphaned directories are unknown."
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
        .filter(|row| row.part_of.is_none())
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

/// `df -v`: every container, image and volume, by kind, largest first; one
/// table per kind, NAME cut in the middle to fit a terminal only.
fn items_human(out: &mut impl Write, usage: &Usage, width: Option<usize>) -> io::Result<()> {
    let mut kind = None;
    let mut table: Option<Table> = None;
    for item in &usage.items {
        if kind != Some(item.kind) {
            kind = Some(item.kind);
            if let Some(done) = table.take() {
                writeln!(out)?;
                done.write(out, width)?;
            }
            let heading = item.kind.word().to_uppercase();
            table = Some(
                Table::new(&[
                    (heading.as_str(), Align::Left),
                    ("NAME", Align::Left),
                    ("SIZE", Align::Right),
                    ("IN USE", Align::Left),
                ])
                .flexible(1),
            );
        }
        if let Some(table) = table.as_mut() {
            table.row(vec![
                short_id(&item.id).to_string(),
                printable(&item.name).into_owned(),
                bytes(item.size_bytes),
                if item.in_use { "yes" } else { "no" }.to_string(),
            ]);
        }
    }
    if let Some(done) = table {
        writeln!(out)?;
        done.write(out, width)?;
    }
    Ok(())
}

/// `df -v`: what the engine no longer knows about, under its data root.
fn orphans_human(
    out: &mut impl Write,
    engine: &EngineInfo,
    usage: &Usage,
    width: Option<usize>,
    now: i64,
) -> io::Result<()> {
    if usage.orphans.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let what = if engine.image_store == ImageStore::Containerd {
        "ORPHANED containerd SNAPSHOT OR BLOB"
    } else {
        "ORPHANED overlay2 DIRECTORY"
    };
    let mut table = Table::new(&[
        (what, Align::Left),
        ("SIZE", Align::Right),
        ("AGE", Align::Right),
    ])
    .flexible(0);
    for orphan in &usage.orphans {
        table.row(vec![
            printable(&orphan.name).into_owned(),
            bytes(orphan.bytes.allocated),
            orphan
                .modified
                .map_or_else(|| "-".to_string(), |m| age(now - m)),
        ]);
    }
    table.write(out, width)
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
