//! A fleet run: each engine's section heading, the summary table with the
//! grand totals, and the JSON document with one object per engine.

use std::io::{self, Write};

use super::table::{Align, Table};
use super::text::{SCHEMA_VERSION, bytes, unix_to_rfc3339, wrap};
use crate::model::printable;
use crate::views::fleet::{EngineRow, State, totals};

/// The line that opens an engine's section.
pub(crate) fn fleet_heading(out: &mut impl Write, row: &EngineRow) -> io::Result<()> {
    let name = printable(&row.name);
    if row.name == row.host {
        writeln!(out, "=== {name} ===")
    } else {
        writeln!(out, "=== {name} ({}) ===", printable(&row.host))
    }
}

/// The body of a section for an engine that was not reached or failed.
pub(crate) fn fleet_problem(out: &mut impl Write, row: &EngineRow) -> io::Result<()> {
    let why = row.error.as_deref().unwrap_or("no reason given");
    writeln!(
        out,
        "{} (exit {}): {}",
        row.state.word(),
        row.exit_code,
        printable(why)
    )
}

/// One line per engine (by its context's name, or its host) and the grand
/// totals; `applied`: the counts are of what was removed. ENGINE is cut in
/// the middle to fit a terminal.
pub(crate) fn fleet_human(
    out: &mut impl Write,
    rows: &[EngineRow],
    applied: bool,
    width: Option<usize>,
) -> io::Result<()> {
    let totals = totals(rows);
    let mut states = vec![format!(
        "{} {}",
        totals.reached,
        if applied { "done" } else { "planned" }
    )];
    if totals.not_reached > 0 {
        states.push(format!("{} not reached", totals.not_reached));
    }
    if totals.failed_engines > 0 {
        states.push(format!("{} failed", totals.failed_engines));
    }
    writeln!(
        out,
        "Fleet: {} engines, {}",
        totals.engines,
        states.join(", ")
    )?;
    let (items, freed) = if applied {
        ("REMOVED", "FREED")
    } else {
        ("ITEMS", "RECLAIM")
    };
    let mut table = Table::new(&[
        ("ENGINE", Align::Left),
        (items, Align::Right),
        ("FAILED", Align::Right),
        (freed, Align::Right),
        ("STATUS", Align::Left),
    ])
    .flexible(0);
    let reached = |row: &EngineRow| matches!(row.state, State::Planned | State::Applied);
    for row in rows {
        let figure = |value: String| if reached(row) { value } else { "-".into() };
        table.row(vec![
            printable(&row.name).into_owned(),
            figure(row.items.to_string()),
            figure(row.failed.to_string()),
            figure(bytes(row.bytes)),
            if row.exit_code == 0 {
                row.state.word().to_string()
            } else {
                format!("{} (exit {})", row.state.word(), row.exit_code)
            },
        ]);
    }
    table.row(vec![
        "Total".into(),
        totals.items.to_string(),
        totals.failed_items.to_string(),
        bytes(totals.bytes),
        String::new(),
    ]);
    table.write(out, width)?;
    if !applied && totals.items > 0 {
        for line in wrap(
            "RECLAIM is each engine's predicted reclaim, as its own --dry-run shows it.",
            width,
        ) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// The fleet as JSON: the totals, and per engine its row with the plan or
/// the report its own run would print (`document`, null when not reached).
pub(crate) fn fleet_json(
    out: &mut impl Write,
    rows: &[EngineRow],
    documents: Vec<serde_json::Value>,
    applied: bool,
    exit_code: u8,
    now: i64,
) -> io::Result<()> {
    let key = if applied { "report" } else { "plan" };
    let engines: Vec<serde_json::Value> = rows
        .iter()
        .zip(documents)
        .map(|(row, document)| {
            let mut value = serde_json::to_value(row).unwrap_or_default();
            value[key] = document;
            value
        })
        .collect();
    let document = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": unix_to_rfc3339(now),
        "dry_run": !applied,
        "engines": engines,
        "totals": totals(rows),
        "exit_code": exit_code,
    });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}
