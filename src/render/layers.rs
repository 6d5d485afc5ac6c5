//! `docker-reclaim layers`: an image's layers and what shares them.

use std::io::{self, Write};

use super::{SCHEMA_VERSION, bytes, unix_to_rfc3339};
use crate::layers::ImageReport;
use crate::model::{printable, short_id};

/// `docker-reclaim layers` for people.
pub fn layers_human(out: &mut impl Write, reports: &[ImageReport]) -> io::Result<()> {
    for (index, report) in reports.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{} ({})", printable(&report.name), report.id)?;
        writeln!(
            out,
            "  {:<12}  {:<12}  {:>10}  {:>10}  {:<24}  CREATED BY",
            "CHAIN ID", "DIFF ID", "SIZE", "CONTAINERS", "SHARED WITH"
        )?;
        for layer in &report.layers {
            let shared = if layer.shared_with.is_empty() {
                "-".to_string()
            } else {
                printable(&layer.shared_with.join(", ")).into_owned()
            };
            let created_by: String = printable(&layer.created_by).chars().take(60).collect();
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
        if !report.blobs.is_empty() {
            writeln!(out, "  {:<12}  {:>10}  SHARED WITH", "BLOB", "SIZE")?;
            for blob in &report.blobs {
                let shared = if blob.shared_with.is_empty() {
                    "-".to_string()
                } else {
                    printable(&blob.shared_with.join(", ")).into_owned()
                };
                writeln!(
                    out,
                    "  {:<12}  {:>10}  {}",
                    short_id(&blob.digest),
                    bytes(blob.size_bytes),
                    shared
                )?;
            }
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
