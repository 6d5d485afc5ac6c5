//! Container logs (`--logs`): the rotated log files of containers that stay,
//! and with `--logs-over` their active log, truncated. A container the plan
//! removes takes its logs with it (they are counted with it).

use std::collections::HashSet;

use super::context::Context;
use super::items::{Item, LeftOut, Reason};
use super::rules::LogScope;
use crate::model::{Kind, LogFile, log_item_id};

/// An uncompressed rotated file younger than this may be the one the engine
/// is compressing (moby v26.1.5 `daemon/logger/loggerutils/logfile.go`
/// `rotate`: `compressFile` runs after the rename): it is left this time.
const COMPRESSING_FOR: i64 = 60;

/// The log items of containers that stay.
pub(super) fn candidates(
    cx: &Context,
    scope: LogScope,
    removed_containers: &HashSet<&str>,
    items: &mut Vec<Item>,
    kept: &mut Vec<LeftOut>,
) {
    let (inventory, rules) = (cx.inventory, cx.rules);
    for log in &inventory.logs {
        if removed_containers.contains(log.container_id.as_str()) {
            continue;
        }
        let Some(container) = inventory
            .containers
            .iter()
            .find(|container| container.id == log.container_id)
        else {
            continue;
        };
        let id = log_item_id(log);
        let short = log
            .name
            .strip_prefix(&format!("{}-", log.container_id))
            .unwrap_or(&log.name);
        let name = format!("{}: {short}", container.display_name());
        let reason = if log.active {
            match scope.over {
                Some(over) if log.allocated > over => Reason::OversizedLog,
                _ => continue,
            }
        } else {
            Reason::RotatedLog
        };
        if log.allocated == 0 {
            continue;
        }
        let kubelets = !rules.kubernetes
            && container
                .labels
                .keys()
                .any(|key| key.starts_with("io.kubernetes."));
        let rule = cx
            .left_out(&id)
            .or_else(|| rules.kept_by(&container.names, &container.labels))
            .or_else(|| kubelets.then(|| "kubelet's to collect (io.kubernetes.* labels)".into()))
            .or_else(|| unsafe_to_touch(log, &inventory.engine, cx.now));
        if let Some(rule) = rule {
            kept.push(LeftOut {
                kind: Kind::Log,
                id,
                name,
                rule,
            });
            continue;
        }
        items.push(Item {
            created: log.modified,
            predicted_bytes: log.allocated,
            predicted_apparent_bytes: Some(log.apparent),
            measured: true,
            ..Item::new(Kind::Log, id, name, reason)
        });
    }
}

/// Whether this engine's `docker logs` survives its active log being
/// truncated: Docker 20.10 sizes the file when a reader opens it (moby
/// v20.10.24 `daemon/logger/loggerutils/logfile.go` `newSectionReader`
/// seeks to the end); from Docker 23 (API 1.42) a reader takes the size the
/// writer counted (v23.0.0 to v28, v26.1.5 `readLogsLocked`:
/// `io.NewSectionReader(currentFile, 0, currentPos.size)`), so after a
/// truncation `docker logs --tail` reads past the end, spins holding the
/// file's lock, and the container's logging stalls behind it (seen on 26.1
/// by the engine test).
pub(crate) fn truncation_is_safe(engine: &crate::model::EngineInfo) -> bool {
    engine.product == crate::model::Product::Docker
        && crate::engine::parse_api_version(&engine.api_version).is_some_and(|v| v < (1, 42))
}

/// Why a log file is left as it is, if it must be.
fn unsafe_to_touch(log: &LogFile, engine: &crate::model::EngineInfo, now: i64) -> Option<String> {
    if !log.active {
        let compressed = std::path::Path::new(&log.name)
            .extension()
            .is_some_and(|ext| ext == "gz");
        return (log.compressed_rotation && !compressed && now - log.modified < COMPRESSING_FOR)
            .then(|| "rotated under a minute ago: the engine may be compressing it".into());
    }
    if !truncation_is_safe(engine) {
        return Some(format!(
            "not truncated on Docker {}: from Docker 23 `docker logs` reads the log up to the size dockerd counted, and after a truncation it spins and stalls the container's logging (only rotated files are removed here; cap the log with max-size)",
            engine.version
        ));
    }
    if log.driver != "json-file" {
        return Some(format!(
            "the {} driver's active file is not truncated (json-file's only)",
            log.driver
        ));
    }
    // dockerd opens the log with O_APPEND, but after a rotation it opens the
    // new file with O_TRUNC and without O_APPEND (moby v20.10.24 and v26.1.5
    // `daemon/logger/loggerutils/logfile.go`, `NewLogFile` and `rotate`):
    // truncating that would leave it writing at its old offset, a sparse
    // file growing back.
    (log.append_only == Some(false)).then(|| {
        "dockerd writes it without O_APPEND (reopened after a rotation): truncating would leave a sparse file; it is freed at the next rotation or container restart".into()
    })
}

#[cfg(test)]
mod tests {
    use crate::model::valid_log_name;

    #[test]
    fn only_the_engines_own_log_names_are_valid() {
        let id = "a".repeat(64);
        for good in [
            format!("{id}-json.log"),
            format!("{id}-json.log.1"),
            format!("{id}-json.log.12.gz"),
            "local-logs/container.log".into(),
            "local-logs/container.log.3.gz".into(),
        ] {
            assert!(valid_log_name(&id, &good), "{good}");
        }
        for bad in [
            format!("{id}-json.log.0"),
            format!("{id}-json.log.x"),
            format!("{id}-json.log/../../etc"),
            "hostconfig.json".into(),
            format!("{}-json.log", "b".repeat(64)),
            "local-logs/../config.v2.json".into(),
        ] {
            assert!(!valid_log_name(&id, &bad), "{bad}");
        }
    }
}
