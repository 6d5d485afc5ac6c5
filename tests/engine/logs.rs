//! `--logs` on a real dockerd: rotated json-file logs removed, an uncapped
//! active log truncated while its container keeps logging (no sparse file
//! growing back), a log dockerd writes without `O_APPEND` left alone, and a log
//! swapped for a link between plan and apply never followed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::support::{Daemon, Result, du};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        logs_rotated_removed_and_uncapped_truncated_while_logging,
        a_log_swapped_for_a_link_is_never_followed,
    ]
}

const MIB: u64 = 1024 * 1024;

/// A shell loop writing `mib` MiB of log lines fast, then a short line every
/// 200 ms: a busy service that keeps logging. A few MiB only: Docker 26.1's
/// json-file logging ran at 40 to 150 kB/s on this two-core machine (dockerd
/// at 100% CPU), against tens of MB/s on 20.10.
fn logger(mib: u64) -> String {
    format!(
        "l=$(head -c 16000 /dev/zero | tr '\\0' a); i=0; while [ $i -lt {lines} ]; do echo $l; i=$((i+1)); done; while true; do echo tick; sleep 0.2; done",
        // json-file writes each 16,000-byte line as about 16,070 bytes of JSON.
        lines = mib * MIB / 15_900
    )
}

fn json(output: &std::process::Output) -> Result<Value> {
    check!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
}

fn file_sizes(path: &std::path::Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((meta.size(), meta.blocks() * 512))
}

/// Waits until `path` holds at least `bytes`.
fn wait_for_size(path: &std::path::Path, bytes: u64) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if file_sizes(path).map_or(0, |(size, _)| size) >= bytes {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{} never reached {bytes} bytes", path.display()))
}

fn logs_rotated_removed_and_uncapped_truncated_while_logging() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let capped = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "capped",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=3",
        "base",
        "sh",
        "-c",
        &logger(4),
    ])?;
    let uncapped = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "uncapped",
        "base",
        "sh",
        "-c",
        &logger(6),
    ])?;
    let dir = |id: &str| d.data_root.join("containers").join(id);
    let active = |id: &str| dir(id).join(format!("{id}-json.log"));
    wait_for_size(&active(&uncapped), 6 * MIB - 200_000)?;
    wait_for_size(
        &dir(&capped).join(format!("{capped}-json.log.2")),
        MIB - 100_000,
    )?;
    // Both are in their trickle now.
    std::thread::sleep(Duration::from_secs(2));

    // A low --logs-over: the capped container's active file was reopened
    // without O_APPEND by its rotations, so it stays, with the reason.
    let low = json(&d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "--logs",
        "--logs-over",
        "100K",
    ]))?;
    let kept_reason = low["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|kept| {
            kept["id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&format!("{capped}-json.log")))
        })
        .and_then(|kept| kept["rule"].as_str())
        .unwrap_or_default()
        .to_string();
    // (From Docker 23 no active log is truncated at all: that reason first.)
    let why = if d.api_version()? < (1, 42) {
        "O_APPEND"
    } else {
        "not truncated on Docker"
    };
    check!(
        kept_reason.contains(why),
        "the capped active log is not kept for {why}: {low}"
    );

    let plan = json(&d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "--logs",
        "--logs-over",
        "3M",
    ]))?;
    let items: BTreeMap<String, u64> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["kind"] == "log")
        .filter_map(|item| {
            Some((
                item["id"].as_str()?.to_string(),
                item["predicted_bytes"].as_u64()?,
            ))
        })
        .collect();
    // Docker 20.10's `docker logs` survives a truncation; from Docker 23 it
    // does not (see plan/logs.rs), and the active log is only reported.
    let truncates = d.api_version()? < (1, 42);
    let mut expected: Vec<String> = vec![
        format!("{capped}/{capped}-json.log.1"),
        format!("{capped}/{capped}-json.log.2"),
    ];
    if truncates {
        expected.push(format!("{uncapped}/{uncapped}-json.log"));
    } else {
        let kept = plan["kept"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|kept| {
                kept["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&format!("{uncapped}-json.log")))
            })
            .and_then(|kept| kept["rule"].as_str())
            .unwrap_or_default()
            .to_string();
        check!(
            kept.contains("not truncated on Docker"),
            "the uncapped log is not kept with the reason: {plan}"
        );
    }
    expected.sort();
    check!(
        items.keys().cloned().collect::<Vec<_>>() == expected,
        "planned logs {:?}, expected {expected:?}: {plan}",
        items.keys()
    );
    let predicted: u64 = items.values().sum();
    let before = du(&d.data_root.join("containers"), false)?;
    let applied = d.reclaim(&["--yes", "--logs", "--logs-over", "3M"]);
    check!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let after = du(&d.data_root.join("containers"), false)?;
    let freed = before.saturating_sub(after);
    #[allow(clippy::cast_precision_loss)]
    let off = (freed as f64 - predicted as f64).abs() / predicted as f64;
    eprintln!(
        "logs: predicted {predicted} B, du drop {freed} B ({:+.2}%)",
        off * 100.0
    );
    check!(
        off < 0.02,
        "predicted {predicted} B, du dropped {freed} B ({:.2}%)",
        off * 100.0
    );

    // Both keep running and logging; a truncated file grows from zero, not
    // back to its old offset.
    std::thread::sleep(Duration::from_secs(3));
    for id in [&capped, &uncapped] {
        let state = d.docker(&["inspect", "--format", "{{.State.Status}}", id])?;
        check!(state == "running", "{id} is {state}");
    }
    let (size, allocated) = file_sizes(&active(&uncapped))?;
    if truncates {
        check!(
            size > 0 && size < MIB && allocated < MIB,
            "after truncation: {size} bytes, {allocated} allocated"
        );
    } else {
        check!(size > 5 * MIB, "the active log was touched: {size} bytes");
    }
    let logs = d.docker(&["logs", "--tail", "3", &uncapped])?;
    check!(
        logs.contains("tick"),
        "docker logs after truncation: {logs}"
    );
    check!(
        !dir(&capped).join(format!("{capped}-json.log.1")).exists(),
        "a rotated file stayed"
    );
    Ok(())
}

/// Between the plan and the apply, the active log is swapped for a symbolic
/// link to a file outside the data root: that file is never touched.
fn a_log_swapped_for_a_link_is_never_followed() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let id = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "noisy",
        "base",
        "sh",
        "-c",
        &logger(3),
    ])?;
    let log = d
        .data_root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    wait_for_size(&log, 3 * MIB - 200_000)?;
    let plan_file = d.dir().join("logs-plan.json");
    let saved = d.reclaim(&[
        "--dry-run",
        "--logs",
        "--logs-over",
        "1M",
        "--plan-out",
        plan_file.to_str().ok_or("path")?,
    ]);
    check!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let outside = d.dir().join("precious.log");
    std::fs::write(&outside, vec![b'x'; 12 * 1024 * 1024]).map_err(|e| e.to_string())?;
    let moved = log.with_extension("log.moved");
    std::fs::rename(&log, &moved).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(&outside, &log).map_err(|e| e.to_string())?;
    let applied = d.reclaim(&["apply", plan_file.to_str().ok_or("path")?, "--yes"]);
    let stderr = String::from_utf8_lossy(&applied.stderr);
    check!(
        applied.status.success(),
        "exit {:?}: {stderr}",
        applied.status.code()
    );
    check!(
        std::fs::metadata(&outside).map_or(0, |m| m.len()) == 12 * 1024 * 1024,
        "the file outside was touched: {stderr}"
    );
    check!(
        std::fs::symlink_metadata(&log).is_ok_and(|m| m.file_type().is_symlink()),
        "the link was replaced: {stderr}"
    );
    // Put the engine's file back for a clean stop.
    std::fs::remove_file(&log).map_err(|e| e.to_string())?;
    std::fs::rename(&moved, &log).map_err(|e| e.to_string())?;
    Ok(())
}
