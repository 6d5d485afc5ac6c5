//! `docker-reclaim layers`: an image's layers and what shares them.

use std::io::{self, Write};

use super::text::{SCHEMA_VERSION, bytes, cut_end, unix_to_rfc3339, wrap};
use crate::model::{printable, short_id};
use crate::views::layers::ImageReport;

/// The width taken by the CHAIN ID, DIFF ID, SIZE and CONTAINERS columns, the
/// indent and the gaps before SHARED WITH and CREATED BY.
const FIXED_COLUMNS: usize = 2 + 12 + 2 + 12 + 2 + 10 + 2 + 10 + 2 + 2;

/// `docker-reclaim layers` for people. On a terminal (`width`) each line fits
/// it: SHARED WITH takes what it needs up to 24 characters while CREATED BY
/// keeps 16, CREATED BY the rest, each cut with `…`. In a pipe or a file nothing is cut
/// and the columns are as wide as their longest entry.
pub(crate) fn layers_human(
    out: &mut impl Write,
    reports: &[ImageReport],
    width: Option<usize>,
) -> io::Result<()> {
    for (index, report) in reports.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        match width {
            // The ID in full where nothing is cut; its short form on a terminal.
            Some(width) => writeln!(
                out,
                "{}",
                cut_end(
                    &format!("{} ({})", printable(&report.name), short_id(&report.id)),
                    width
                )
            )?,
            None => writeln!(out, "{} ({})", printable(&report.name), report.id)?,
        }
        layer_table(out, report, width)?;
        blob_table(out, report)?;
        let footnote = format!(
            "unique {} (what removing this image alone frees), shared {}{}",
            bytes(report.unique_bytes),
            bytes(report.shared_bytes),
            if report.measured {
                "; measured on disk"
            } else {
                "; the engine's estimates"
            }
        );
        for line in wrap(&footnote, width.map(|width| width.saturating_sub(2))) {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

/// Other images sharing a layer or blob, or `-`.
fn shared_with(images: &[String]) -> String {
    if images.is_empty() {
        "-".to_string()
    } else {
        printable(&images.join(", ")).into_owned()
    }
}

/// The image's layers, one line each.
fn layer_table(out: &mut impl Write, report: &ImageReport, width: Option<usize>) -> io::Result<()> {
    let rows: Vec<(String, String)> = report
        .layers
        .iter()
        .map(|layer| {
            (
                shared_with(&layer.shared_with),
                printable(&layer.created_by).into_owned(),
            )
        })
        .collect();
    let longest = rows
        .iter()
        .map(|(shared, _)| shared.chars().count())
        .max()
        .unwrap_or(0)
        .max("SHARED WITH".len());
    let (shared_width, created_width) = match width {
        Some(width) => {
            let room = width.saturating_sub(FIXED_COLUMNS);
            let shared = longest.min(24).min(room.saturating_sub(16)).max(1);
            (shared, room.saturating_sub(shared).max(1))
        }
        None => (longest, usize::MAX),
    };
    let line =
        |chain: &str, diff: &str, size: &str, containers: &str, shared: &str, created: &str| {
            format!(
                "  {chain:<12}  {diff:<12}  {size:>10}  {containers:>10}  {:<shared_width$}  {}",
                cut_end(shared, shared_width),
                cut_end(created, created_width)
            )
            .trim_end()
            .to_string()
        };
    writeln!(
        out,
        "{}",
        line(
            "CHAIN ID",
            "DIFF ID",
            "SIZE",
            "CONTAINERS",
            "SHARED WITH",
            "CREATED BY"
        )
    )?;
    for (layer, (shared, created_by)) in report.layers.iter().zip(&rows) {
        writeln!(
            out,
            "{}",
            line(
                short_id(&layer.chain_id),
                short_id(&layer.diff_id),
                &bytes(layer.size_bytes),
                &layer.containers.to_string(),
                shared,
                created_by
            )
        )?;
    }
    Ok(())
}

/// On the containerd image store: the image's own blobs (index, manifest,
/// config) and what shares them.
fn blob_table(out: &mut impl Write, report: &ImageReport) -> io::Result<()> {
    if report.blobs.is_empty() {
        return Ok(());
    }
    writeln!(out, "  {:<12}  {:>10}  SHARED WITH", "BLOB", "SIZE")?;
    for blob in &report.blobs {
        writeln!(
            out,
            "  {:<12}  {:>10}  {}",
            short_id(&blob.digest),
            bytes(blob.size_bytes),
            shared_with(&blob.shared_with)
        )?;
    }
    Ok(())
}

/// `docker-reclaim layers --format json`.
pub(crate) fn layers_json(
    out: &mut impl Write,
    reports: &[ImageReport],
    now: i64,
) -> io::Result<()> {
    let document = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": unix_to_rfc3339(now),
        "images": reports,
    });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}
