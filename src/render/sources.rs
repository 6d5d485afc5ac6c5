//! `df --why`: what keeps filling the disk, for people.

use std::io::{self, Write};

use super::text::{age, bytes, shorten};
use crate::model::printable;
use crate::views::sources::{DAEMON_JSON_CAP, Sources};

/// The section under `df`'s table. Each line stands alone in a log file;
/// names are cut only on a terminal (`width`).
pub(crate) fn sources_human(
    out: &mut impl Write,
    sources: &Sources,
    width: Option<usize>,
    now: i64,
) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "What keeps filling the disk:")?;
    let mut said = uncapped_logs(out, sources, width)?;
    said |= garbage(out, sources, width, now)?;
    if !said {
        writeln!(
            out,
            "  nothing: no uncapped logs, stopped copies, rebuilt tags, build cache or idle volumes."
        )?;
    }
    Ok(())
}

/// Logs with no size limit, and how to cap and reclaim them.
fn uncapped_logs(
    out: &mut impl Write,
    sources: &Sources,
    width: Option<usize>,
) -> io::Result<bool> {
    let name_width = |longest: usize, rest: usize| {
        width.map_or(longest, |width| {
            longest.min(width.saturating_sub(rest).max(12))
        })
    };
    if !sources.uncapped_logs.is_empty() {
        writeln!(
            out,
            "  Logs with no size limit (json-file without max-size):"
        )?;
        let names: Vec<String> = sources
            .uncapped_logs
            .iter()
            .map(|log| printable(&log.name).into_owned())
            .collect();
        let column = name_width(
            names.iter().map(|n| n.chars().count()).max().unwrap_or(4),
            30,
        );
        for (log, name) in sources.uncapped_logs.iter().zip(&names) {
            writeln!(
                out,
                "    {:<column$}  {:>10}  {}",
                shorten(name, column),
                bytes(log.bytes),
                if log.running { "running" } else { "stopped" }
            )?;
        }
        writeln!(
            out,
            "    Cap new containers in /etc/docker/daemon.json, then restart dockerd (existing containers keep their settings): {DAEMON_JSON_CAP}"
        )?;
        writeln!(
            out,
            "    Reclaim what they hold now: docker-reclaim --logs --logs-over 100M --dry-run"
        )?;
    }
    Ok(!sources.uncapped_logs.is_empty())
}

/// Stopped copies, rebuilt tags, the build cache and unmounted volumes.
fn garbage(
    out: &mut impl Write,
    sources: &Sources,
    width: Option<usize>,
    now: i64,
) -> io::Result<bool> {
    let mut said = false;
    if !sources.stopped_copies.is_empty() {
        said = true;
        writeln!(
            out,
            "  Stopped copies of one image and command (`docker run` without --rm, or a restart loop):"
        )?;
        for copies in &sources.stopped_copies {
            let what = format!(
                "{} {}",
                printable(&copies.image),
                printable(&copies.command)
            )
            .trim_end()
            .to_string();
            writeln!(
                out,
                "    {} copies of {} since {} ago, {}",
                copies.count,
                shorten(
                    &what,
                    width.map_or(usize::MAX, |w| w.saturating_sub(40).max(20))
                ),
                age(now - copies.since),
                bytes(copies.bytes)
            )?;
        }
    }
    if !sources.rebuilt_tags.is_empty() {
        said = true;
        writeln!(
            out,
            "  Images rebuilt under one tag, leaving dangling copies:"
        )?;
        for rebuilt in &sources.rebuilt_tags {
            writeln!(
                out,
                "    {}: {} dangling {} since {} ago ({:.1} a day), {} reclaimable",
                printable(&rebuilt.tag),
                rebuilt.dangling,
                if rebuilt.dangling == 1 {
                    "copy"
                } else {
                    "copies"
                },
                age(now - rebuilt.since),
                rebuilt.per_day,
                bytes(rebuilt.bytes)
            )?;
        }
    }
    if let Some(cache) = &sources.build_cache {
        said = true;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let per_day = cache.bytes_per_day.max(0.0) as u64;
        writeln!(
            out,
            "  Build cache: {} {}, {} since {} ago (about {} a day); `--build-cache-keep SIZE` keeps it under a budget.",
            cache.records,
            if cache.records == 1 {
                "record"
            } else {
                "records"
            },
            bytes(cache.bytes),
            age(now - cache.since),
            bytes(per_day)
        )?;
    }
    if !sources.unmounted_volumes.is_empty() {
        said = true;
        writeln!(
            out,
            "  Volumes no container mounts, created over a week ago:"
        )?;
        for volume in &sources.unmounted_volumes {
            writeln!(
                out,
                "    {}  {}  created {} ago",
                printable(&volume.name),
                volume
                    .bytes
                    .map_or_else(|| "size unknown".to_string(), bytes),
                age(now - volume.created)
            )?;
        }
    }
    Ok(said)
}
