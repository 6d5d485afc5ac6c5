//! Which candidates the user narrowed the plan to (docker-style filters and a
//! grace period) and which they protect (keep rules). Parsed and validated once
//! from the command line; the planner only asks questions of them.

use std::collections::BTreeMap;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::exit::UsageError;

/// A `label…` filter or `--keep-label` rule: a key, optionally with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelMatch {
    pub(crate) key: String,
    pub(crate) value: Option<String>,
}

impl LabelMatch {
    fn parse(raw: &str) -> LabelMatch {
        match raw.split_once('=') {
            Some((key, value)) => LabelMatch {
                key: key.to_string(),
                value: Some(value.to_string()),
            },
            None => LabelMatch {
                key: raw.to_string(),
                value: None,
            },
        }
    }

    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        }
    }

    fn describe(&self) -> String {
        match &self.value {
            Some(value) => format!("{}={value}", self.key),
            None => self.key.clone(),
        }
    }
}

/// What narrows and what protects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    /// `--filter until=…`: only what was created before this (Unix seconds).
    pub(crate) until: Option<i64>,
    /// `--filter label=…`: only what carries all of these.
    pub(crate) labels: Vec<LabelMatch>,
    /// `--filter label!=…`: only what carries none of these.
    pub(crate) not_labels: Vec<LabelMatch>,
    /// `--stopped-for`: only containers finished (or, never started, created)
    /// at least this long ago.
    pub(crate) stopped_for: Option<Duration>,
    /// `--keep`: glob patterns on image references and container names.
    keep: Vec<String>,
    keep_set: GlobSet,
    /// `--keep-label`.
    pub(crate) keep_labels: Vec<LabelMatch>,
    /// `--keep-last N`: the N newest images of each repository stay.
    pub(crate) keep_last: Option<usize>,
    /// `--all`: tagged images that nothing uses are candidates too.
    pub(crate) all_images: bool,
    /// `--volumes`: which unused volumes are candidates.
    pub(crate) volumes: Option<VolumeScope>,
    /// `--networks`: user-defined networks with no containers are candidates.
    pub(crate) networks: bool,
    /// `--build-cache`: which build cache records are candidates.
    pub(crate) build_cache: Option<CacheScope>,
    /// `--prune-scope`: also what the engine's own prune takes that the
    /// default scope leaves (the containerd store's untagged intermediates).
    pub(crate) prune_scope: bool,
    /// `--target-free` / `--max-usage` / `--when-above`: plan only until this is met.
    pub(crate) target: Option<Target>,
    /// `--min-idle`: images used, pulled, tagged or created within this long stay.
    pub(crate) min_idle: Option<Duration>,
    /// `--build-cache-keep`: the most recently used build cache up to this
    /// many bytes stays.
    pub(crate) build_cache_keep: Option<u64>,
    /// `--include-kubernetes`: kubelet's containers are candidates too.
    pub(crate) kubernetes: bool,
    /// `--logs`: log files of containers that stay are candidates.
    pub(crate) logs: Option<LogScope>,
}

/// What `--logs` takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogScope {
    /// `--logs-over SIZE`: also truncate an active log larger than this
    /// (allocated bytes); without it, rotated files only.
    pub(crate) over: Option<u64>,
}

/// The grace period a target mode keeps images for unless told otherwise.
pub(crate) const DEFAULT_MIN_IDLE: Duration = Duration::from_secs(3600);

/// How much space the plan needs to make on the data root's filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    /// `--target-free SIZE`: at least this many bytes free afterwards.
    Free(u64),
    /// `--max-usage PERCENT`: at most this much of the filesystem used afterwards.
    MaxUsage(f64),
    /// `--when-above HIGH --down-to LOW`: nothing while at most HIGH percent
    /// is used; above it, down to LOW percent.
    Band { high: f64, low: f64 },
}

impl Target {
    /// Parses `--target-free` (10G, 500MiB, …) or `--max-usage` (80, 80%).
    pub(crate) fn parse(
        target_free: Option<&str>,
        max_usage: Option<&str>,
        band: (Option<&str>, Option<&str>),
    ) -> Result<Option<Target>, UsageError> {
        let percent = |flag: &str, raw: &str| {
            let number = raw.trim().trim_end_matches('%');
            match number.parse::<f64>() {
                Ok(percent) if (0.0..100.0).contains(&percent) => Ok(percent),
                _ => Err(UsageError(format!(
                    "invalid {flag} {raw:?}: give a percentage from 0 to 99, like 80%"
                ))),
            }
        };
        if let (Some(high), low) = band {
            if target_free.is_some() || max_usage.is_some() {
                return Err(UsageError(
                    "--when-above does not go with --target-free or --max-usage: give one".into(),
                ));
            }
            let high = percent("--when-above", high)?;
            let low = low.map_or(Ok(high), |low| percent("--down-to", low))?;
            if low > high {
                return Err(UsageError(format!(
                    "--down-to {low}% is above --when-above {high}%: the low mark must not be higher"
                )));
            }
            return Ok(Some(Target::Band { high, low }));
        }
        if band.1.is_some() {
            return Err(UsageError("--down-to needs --when-above".into()));
        }
        match (target_free, max_usage) {
            (Some(_), Some(_)) => Err(UsageError(
                "--target-free and --max-usage do not go together: give one".into(),
            )),
            (Some(raw), None) => parse_size::parse_size(raw)
                .map(|bytes| Some(Target::Free(bytes)))
                .map_err(|err| {
                    UsageError(format!(
                        "invalid --target-free {raw:?}: {err} (try 10G or 500MiB)"
                    ))
                }),
            (None, Some(raw)) => percent("--max-usage", raw).map(|p| Some(Target::MaxUsage(p))),
            (None, None) => Ok(None),
        }
    }

    /// Bytes to free on a filesystem of `total` bytes with `available` free.
    pub(crate) fn needed(self, total: u64, available: u64) -> u64 {
        let down_to = |percent: f64| {
            let used = total.saturating_sub(available) as f64;
            let allowed = total as f64 * percent / 100.0;
            // Never negative; `as` saturates above u64::MAX.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let needed = (used - allowed).max(0.0).ceil() as u64;
            needed
        };
        match self {
            Target::Free(bytes) => bytes.saturating_sub(available),
            Target::MaxUsage(percent) => down_to(percent),
            Target::Band { high, low } => {
                if down_to(high) > 0 {
                    down_to(low)
                } else {
                    0
                }
            }
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            Target::Free(bytes) => format!(
                "--target-free {}",
                humansize::format_size(bytes, humansize::DECIMAL)
            ),
            Target::MaxUsage(percent) => format!("--max-usage {percent}%"),
            Target::Band { high, low } if (high - low).abs() < f64::EPSILON => {
                format!("--when-above {high}%")
            }
            Target::Band { high, low } => format!("--when-above {high}% --down-to {low}%"),
        }
    }
}

/// Which records `--build-cache` takes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CacheScope {
    /// Records not in use and not shared with an image: what `docker builder
    /// prune` calls dangling.
    Unshared,
    /// Every record not in use, as `docker builder prune --all`.
    All,
}

/// Which volumes `--volumes` takes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum VolumeScope {
    /// Anonymous volumes only (64-hex names, or the engine's anonymous label).
    Anonymous,
    /// Named volumes too.
    All,
}

/// What kinds of things a plan may take beyond the default scope (stopped
/// containers, dangling images): the flags that widen it. A saved plan records
/// it, and applying the plan uses the file's scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scope {
    /// `--all`.
    pub(crate) all_images: bool,
    /// `--volumes`.
    pub(crate) volumes: Option<VolumeScope>,
    /// `--networks`.
    pub(crate) networks: bool,
    /// `--build-cache`.
    pub(crate) build_cache: Option<CacheScope>,
    /// `--prune-scope`.
    #[serde(default)]
    pub(crate) prune_scope: bool,
    /// `--logs`, `--logs-over`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) logs: Option<LogScope>,
}

impl Rules {
    /// The scope these rules plan in.
    pub(crate) fn scope(&self) -> Scope {
        Scope {
            all_images: self.all_images,
            volumes: self.volumes,
            networks: self.networks,
            build_cache: self.build_cache,
            prune_scope: self.prune_scope,
            logs: self.logs,
        }
    }

    /// These rules with another scope (a saved plan's).
    pub(crate) fn with_scope(&self, scope: Scope) -> Rules {
        Rules {
            all_images: scope.all_images,
            volumes: scope.volumes,
            networks: scope.networks,
            build_cache: scope.build_cache,
            prune_scope: scope.prune_scope,
            logs: scope.logs,
            ..self.clone()
        }
    }

    /// Parses `--filter`, `--stopped-for`, `--keep` and `--keep-label` values.
    /// `now` (Unix seconds) turns `until=24h` into a cut-off.
    pub(crate) fn parse(
        filters: &[String],
        stopped_for: Option<&str>,
        keep: &[String],
        keep_labels: &[String],
        now: i64,
    ) -> Result<Rules, UsageError> {
        let mut rules = Rules::default();
        for filter in filters {
            let Some((key, value)) = filter.split_once('=') else {
                return Err(UsageError(format!(
                    "invalid --filter {filter:?}: expected until=…, label=… or label!=…"
                )));
            };
            match key {
                // The engine refuses a second one too (moby daemon/prune.go
                // `getUntilFromPruneFilters`: "more than one until filter
                // specified"): two cut-offs are a mistake, never silently one.
                "until" if rules.until.is_some() => {
                    return Err(UsageError(format!(
                        "invalid --filter {filter:?}: only one until filter may be given, as with docker"
                    )));
                }
                "until" => {
                    rules.until = Some(parse_until(value, now).map_err(|why| {
                        UsageError(format!("invalid --filter {filter:?}: {why}"))
                    })?);
                }
                "label" if !value.is_empty() => rules.labels.push(LabelMatch::parse(value)),
                "label!" if !value.is_empty() => rules.not_labels.push(LabelMatch::parse(value)),
                _ => {
                    return Err(UsageError(format!(
                        "unsupported --filter {filter:?}: use until=DURATION|TIME, label=KEY[=VALUE] or label!=KEY[=VALUE]"
                    )));
                }
            }
        }
        if let Some(raw) = stopped_for {
            rules.stopped_for = Some(humantime::parse_duration(raw).map_err(|err| {
                UsageError(format!(
                    "invalid --stopped-for {raw:?}: {err} (try 30m, 2h or 7days)"
                ))
            })?);
        }
        let mut builder = GlobSetBuilder::new();
        for pattern in keep {
            let glob = Glob::new(pattern)
                .map_err(|err| UsageError(format!("invalid --keep {pattern:?}: {err}")))?;
            builder.add(glob);
        }
        rules.keep_set = builder
            .build()
            .map_err(|err| UsageError(format!("invalid --keep patterns: {err}")))?;
        rules.keep = keep.to_vec();
        for raw in keep_labels {
            if raw.is_empty() || raw.starts_with('=') {
                return Err(UsageError(format!(
                    "invalid --keep-label {raw:?}: expected KEY or KEY=VALUE"
                )));
            }
            rules.keep_labels.push(LabelMatch::parse(raw));
        }
        Ok(rules)
    }

    /// The keep rule that protects something with these names and labels.
    pub(crate) fn kept_by(
        &self,
        names: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Option<String> {
        for name in names {
            let matched = self.keep_set.matches(name);
            if let Some(index) = matched.first() {
                return Some(format!("--keep {}", self.keep[*index]));
            }
        }
        self.keep_labels
            .iter()
            .find(|rule| rule.matches(labels))
            .map(|rule| format!("--keep-label {}", rule.describe()))
    }

    /// The filter that leaves out something created at `created` with `labels`.
    pub(crate) fn filtered_out_by(
        &self,
        created: i64,
        labels: &BTreeMap<String, String>,
    ) -> Option<String> {
        if let Some(until) = self.until
            && created >= until
        {
            return Some("--filter until (created after the cut-off)".into());
        }
        if let Some(rule) = self.labels.iter().find(|rule| !rule.matches(labels)) {
            return Some(format!("--filter label={} (not on it)", rule.describe()));
        }
        if let Some(rule) = self.not_labels.iter().find(|rule| rule.matches(labels)) {
            return Some(format!("--filter label!={} (on it)", rule.describe()));
        }
        None
    }
}

/// `until` as docker takes it: a duration before now (`24h`), an RFC 3339 time,
/// or Unix seconds.
fn parse_until(raw: &str, now: i64) -> Result<i64, String> {
    if let Ok(seconds) = raw.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(duration) = humantime::parse_duration(raw) {
        let seconds = i64::try_from(duration.as_secs()).map_err(|_| "too long ago".to_string())?;
        return Ok(now - seconds);
    }
    humantime::parse_rfc3339_weak(raw)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .ok_or_else(|| "expected a duration (24h), an RFC 3339 time or Unix seconds".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_docker_filters() {
        let rules = Rules::parse(
            &[
                "until=24h".into(),
                "label=team".into(),
                "label!=keep=yes".into(),
            ],
            Some("2h"),
            &["web-*".into()],
            &["pin".into()],
            100_000,
        )
        .unwrap();
        assert_eq!(rules.until, Some(100_000 - 86_400));
        assert_eq!(rules.stopped_for, Some(Duration::from_secs(7200)));
        assert_eq!(
            Rules::parse(&["until=1700000000".into()], None, &[], &[], 0)
                .unwrap()
                .until,
            Some(1_700_000_000)
        );
        assert_eq!(
            Rules::parse(&["until=2023-11-14T22:13:20Z".into()], None, &[], &[], 0)
                .unwrap()
                .until,
            Some(1_700_000_000)
        );
        assert_eq!(
            rules.filtered_out_by(100_000 - 100, &labels(&[("team", "a")])),
            Some("--filter until (created after the cut-off)".into())
        );
        assert_eq!(
            rules.filtered_out_by(1, &labels(&[])),
            Some("--filter label=team (not on it)".into())
        );
        assert_eq!(
            rules.filtered_out_by(1, &labels(&[("team", "a"), ("keep", "yes")])),
            Some("--filter label!=keep=yes (on it)".into())
        );
        assert_eq!(rules.filtered_out_by(1, &labels(&[("team", "a")])), None);
        assert_eq!(
            rules.kept_by(&["web-1".into()], &labels(&[])),
            Some("--keep web-*".into())
        );
        assert_eq!(
            rules.kept_by(&["db".into()], &labels(&[("pin", "")])),
            Some("--keep-label pin".into())
        );
        assert_eq!(rules.kept_by(&["db".into()], &labels(&[])), None);
    }

    #[test]
    fn targets_parse_and_say_what_they_need() {
        assert_eq!(
            Target::parse(Some("10G"), None, (None, None)).unwrap(),
            Some(Target::Free(10_000_000_000))
        );
        assert_eq!(
            Target::parse(None, Some("80%"), (None, None)).unwrap(),
            Some(Target::MaxUsage(80.0))
        );
        assert!(Target::parse(Some("1G"), Some("80"), (None, None)).is_err());
        assert!(Target::parse(None, Some("120"), (None, None)).is_err());
        assert!(Target::parse(Some("lots"), None, (None, None)).is_err());
        assert_eq!(Target::Free(100).needed(1000, 40), 60);
        assert_eq!(Target::Free(100).needed(1000, 400), 0);
        assert_eq!(Target::MaxUsage(50.0).needed(1000, 300), 200);
        // Kubelet's marks: nothing at or below the high mark; above it, down
        // to the low one.
        let band = Target::parse(None, None, (Some("85%"), Some("75")))
            .unwrap()
            .unwrap();
        assert_eq!(
            band,
            Target::Band {
                high: 85.0,
                low: 75.0
            }
        );
        assert_eq!(band.needed(1000, 150), 0);
        assert_eq!(band.needed(1000, 100), 150);
        assert_eq!(band.describe(), "--when-above 85% --down-to 75%");
        assert!(Target::parse(None, None, (Some("70"), Some("80"))).is_err());
        assert!(Target::parse(None, None, (None, Some("80"))).is_err());
        assert!(Target::parse(None, Some("80"), (Some("90"), None)).is_err());
    }

    #[test]
    fn bad_rules_are_one_line_errors() {
        for (filters, stopped, keep, keep_labels, needle) in [
            (
                vec!["until=soon".to_string()],
                None,
                vec![],
                vec![],
                "until=soon",
            ),
            (
                vec!["dangling=true".to_string()],
                None,
                vec![],
                vec![],
                "unsupported --filter",
            ),
            (
                vec!["label".to_string()],
                None,
                vec![],
                vec![],
                "expected until",
            ),
            (vec![], Some("forever"), vec![], vec![], "--stopped-for"),
            (vec![], None, vec!["a[".to_string()], vec![], "--keep"),
            (vec![], None, vec![], vec!["=x".to_string()], "--keep-label"),
        ] {
            let err = Rules::parse(&filters, stopped, &keep, &keep_labels, 0)
                .unwrap_err()
                .0;
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains('\n'));
        }
    }
}
