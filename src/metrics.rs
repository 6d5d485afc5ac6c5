//! `--metrics-file`: the last run's figures in Prometheus' text format, for
//! `node_exporter`'s textfile collector, written atomically (a temporary file
//! in the same directory, then a rename; never through a link). Every metric
//! is a gauge about the last run (the textfile collector shows a snapshot):
//! `docker_reclaim_last_run_*`, the engine's reachability, and the data
//! root's filesystem. Encoded by `prometheus-client`.
//!
//! What a run learns on its way (the plan's usage per kind, the apply's
//! tallies) is noted here as it goes, and written once at the end: the
//! commands keep their signatures, and a run that fails early still writes
//! its exit code.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::apply::report::Report;
use crate::model::Kind;
use crate::plan::Plan;

type F64Gauge = Gauge<f64, AtomicU64>;

/// What the run noted on its way.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Noted {
    /// Per kind: planned, removed, skipped, failed, and the predicted bytes
    /// of what was removed.
    pub(crate) tally: Vec<(Kind, [u64; 5])>,
    /// The data root's allocated bytes freed, measured before and after.
    pub(crate) freed_bytes: Option<u64>,
    /// Usage per kind, as the plan saw it.
    pub(crate) usage: Vec<(Kind, u64)>,
    /// Predicted bytes per kind of the plan.
    pub(crate) planned_bytes: Vec<(Kind, u64)>,
    /// The data root, when local.
    pub(crate) data_root: Option<PathBuf>,
    /// The engine answered.
    pub(crate) engine_up: bool,
}

static NOTED: Mutex<Option<Noted>> = Mutex::new(None);

fn with_noted(change: impl FnOnce(&mut Noted)) {
    if let Ok(mut noted) = NOTED.lock() {
        change(noted.get_or_insert_with(Noted::default));
    }
}

/// The engine answered; its data root, when it is local.
pub(crate) fn note_engine(data_root: Option<PathBuf>) {
    with_noted(|noted| {
        noted.engine_up = true;
        noted.data_root = data_root;
    });
}

/// The plan's usage and predictions per kind.
pub(crate) fn note_plan(plan: &Plan) {
    with_noted(|noted| {
        noted.usage = plan
            .by_kind
            .iter()
            .map(|(kind, figures)| (*kind, figures.current_bytes))
            .collect();
        noted.planned_bytes = plan
            .by_kind
            .iter()
            .map(|(kind, figures)| (*kind, figures.predicted_bytes))
            .collect();
    });
}

/// What the apply did.
pub(crate) fn note_report(report: &Report) {
    with_noted(|noted| {
        noted.tally = report
            .tally()
            .into_iter()
            .map(|(kind, tally)| {
                let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
                (
                    kind,
                    [
                        count(tally.planned),
                        count(tally.removed),
                        count(tally.skipped),
                        count(tally.failed),
                        tally.predicted_bytes,
                    ],
                )
            })
            .collect();
        noted.freed_bytes = report
            .data_root
            .map(|root| root.before.saturating_sub(root.after));
    });
}

/// Takes what was noted (for the next round of `watch`, a fresh start).
pub(crate) fn take_noted() -> Noted {
    NOTED
        .lock()
        .ok()
        .and_then(|mut noted| noted.take())
        .unwrap_or_default()
}

/// The data root's filesystem: size and free bytes, inodes and free inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filesystem {
    pub(crate) size_bytes: u64,
    pub(crate) free_bytes: u64,
    pub(crate) files: u64,
    pub(crate) files_free: u64,
}

impl Filesystem {
    pub(crate) fn of(path: &Path) -> Option<Filesystem> {
        let stat = rustix::fs::statvfs(path).ok()?;
        Some(Filesystem {
            size_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
            free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
            files: stat.f_files,
            files_free: stat.f_favail,
        })
    }
}

/// One run, as the metrics file describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunFigures {
    pub(crate) noted: Noted,
    pub(crate) exit_code: i32,
    pub(crate) duration_seconds: f64,
    /// Unix seconds when it ended.
    pub(crate) finished_at: i64,
    pub(crate) filesystem: Option<Filesystem>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    kind: String,
    outcome: String,
}

fn kind_name(kind: Kind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[allow(clippy::cast_precision_loss)]
fn float(value: u64) -> f64 {
    value as f64
}

/// The run in Prometheus' text format.
pub(crate) fn encode(run: &RunFigures) -> String {
    let mut registry = Registry::with_prefix("docker_reclaim");
    register_run(&mut registry, run);
    register_kinds(&mut registry, run);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, &registry);
    text
}

/// The run as a whole: when, how long, how it ended, the engine, the filesystem.
fn register_run(registry: &mut Registry, run: &RunFigures) {
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: f64| {
        let metric = F64Gauge::default();
        metric.set(value);
        registry.register(name, help, metric);
    };
    gauge(
        registry,
        "last_run_timestamp_seconds",
        "When the last run ended (Unix time)",
        float(u64::try_from(run.finished_at).unwrap_or(0)),
    );
    gauge(
        registry,
        "last_run_duration_seconds",
        "How long the last run took",
        run.duration_seconds,
    );
    gauge(
        registry,
        "last_run_exit_code",
        "The last run's exit code (0: success; see docker-reclaim(1))",
        f64::from(run.exit_code),
    );
    gauge(
        registry,
        "engine_up",
        "Whether the engine answered the last run (1) or not (0)",
        if run.noted.engine_up { 1.0 } else { 0.0 },
    );
    if let Some(freed) = run.noted.freed_bytes {
        gauge(
            registry,
            "last_run_freed_bytes",
            "Bytes the last run freed on the data root, measured before and after",
            float(freed),
        );
    }
    if let Some(fs) = run.filesystem {
        gauge(
            registry,
            "filesystem_size_bytes",
            "Size of the data root's filesystem",
            float(fs.size_bytes),
        );
        gauge(
            registry,
            "filesystem_free_bytes",
            "Bytes available on the data root's filesystem",
            float(fs.free_bytes),
        );
        gauge(
            registry,
            "filesystem_files",
            "Inodes of the data root's filesystem",
            float(fs.files),
        );
        gauge(
            registry,
            "filesystem_files_free",
            "Free inodes on the data root's filesystem",
            float(fs.files_free),
        );
    }
}

/// Per kind: usage, the plan's predictions, and the apply's outcomes.
fn register_kinds(registry: &mut Registry, run: &RunFigures) {
    let per_kind = |registry: &mut Registry, name: &str, help: &str, values: &[(Kind, u64)]| {
        if values.is_empty() {
            return;
        }
        let family = Family::<KindLabel, F64Gauge>::default();
        for (kind, value) in values {
            family
                .get_or_create(&KindLabel {
                    kind: kind_name(*kind),
                })
                .set(float(*value));
        }
        registry.register(name, help, family);
    };
    per_kind(
        registry,
        "usage_bytes",
        "Usage per kind, as the last run's plan saw it (measured on the data root when readable)",
        &run.noted.usage,
    );
    per_kind(
        registry,
        "last_run_planned_bytes",
        "Bytes the last run's plan predicted it would free, per kind",
        &run.noted.planned_bytes,
    );
    if !run.noted.tally.is_empty() {
        let items = Family::<OutcomeLabels, F64Gauge>::default();
        let removed_bytes = Family::<KindLabel, F64Gauge>::default();
        for (kind, counts) in &run.noted.tally {
            for (outcome, count) in ["planned", "removed", "skipped", "failed"]
                .iter()
                .zip(counts)
            {
                items
                    .get_or_create(&OutcomeLabels {
                        kind: kind_name(*kind),
                        outcome: (*outcome).to_string(),
                    })
                    .set(float(*count));
            }
            removed_bytes
                .get_or_create(&KindLabel {
                    kind: kind_name(*kind),
                })
                .set(float(counts[4]));
        }
        registry.register(
            "last_run_items",
            "Items of the last run's plan per kind and outcome (planned, removed, skipped, failed)",
            items,
        );
        registry.register(
            "last_run_removed_predicted_bytes",
            "Predicted bytes of the items the last run removed, per kind",
            removed_bytes,
        );
    }
}

/// Writes the run's metrics to `path`, atomically; a failure is a warning:
/// the run's own outcome stands.
pub(crate) async fn write(path: &Path, run: &RunFigures) {
    let body = encode(run);
    if let Err(err) = crate::files::write_output(path, body.as_bytes(), "the metrics").await {
        crate::note(&format!("docker-reclaim: warning: {err}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text_with_help_and_type() {
        let run = RunFigures {
            noted: Noted {
                tally: vec![(Kind::Container, [3, 2, 1, 0, 4096])],
                freed_bytes: Some(8192),
                usage: vec![(Kind::Container, 10_000), (Kind::Image, 5_000)],
                planned_bytes: vec![(Kind::Container, 4096)],
                data_root: None,
                engine_up: true,
            },
            exit_code: 0,
            duration_seconds: 1.5,
            finished_at: 1_795_849_200,
            filesystem: Some(Filesystem {
                size_bytes: 100,
                free_bytes: 40,
                files: 10,
                files_free: 7,
            }),
        };
        let text = encode(&run);
        for line in [
            "# HELP docker_reclaim_last_run_exit_code The last run's exit code (0: success; see docker-reclaim(1)).",
            "# TYPE docker_reclaim_last_run_items gauge",
            "docker_reclaim_last_run_items{kind=\"container\",outcome=\"removed\"} 2.0",
            "docker_reclaim_last_run_items{kind=\"container\",outcome=\"skipped\"} 1.0",
            "docker_reclaim_last_run_freed_bytes 8192.0",
            "docker_reclaim_engine_up 1.0",
            "docker_reclaim_filesystem_files_free 7.0",
            "docker_reclaim_usage_bytes{kind=\"image\"} 5000.0",
            "docker_reclaim_last_run_timestamp_seconds 1795849200.0",
        ] {
            assert!(
                text.lines().any(|have| have == line),
                "{line} not in:\n{text}"
            );
        }
        assert!(!text.contains(".."), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }
}
