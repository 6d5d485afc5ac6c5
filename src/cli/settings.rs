//! Turns the parsed command line into validated [`Settings`], once. No I/O here:
//! everything the user typed is checked before the engine is contacted.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::args::{Cli, ColorChoice, Command, FilterArgs, Format, ScopeArgs};
use crate::cli::config::Config;
use crate::engine::{Endpoint, Host};
use crate::exit::UsageError;
use crate::model::ImageStore;
use crate::plan::rules::{CacheScope, DEFAULT_MIN_IDLE, LogScope, Rules, Target, VolumeScope};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Show the plan; optionally save it.
    DryRun { plan_out: Option<PathBuf> },
    /// Plan, show, confirm, apply.
    Apply,
    /// Apply a saved plan.
    ApplyFile { path: PathBuf, max_age: Duration },
    /// Show usage per kind; with `why`, what keeps filling the disk.
    Df { why: bool },
    /// Show images' layers.
    Layers { images: Vec<String> },
    /// Keep the disk under a mark (`watch`).
    Watch {
        once: bool,
        interval: Duration,
        poll: Duration,
        /// `--metrics-listen`: serve the metrics over HTTP here.
        metrics_listen: Option<std::net::SocketAddr>,
    },
}

/// Deletions at once unless told otherwise.
pub(crate) const DEFAULT_JOBS: usize = 4;

/// Deletions at once unless told otherwise, on the containerd image store:
/// there each container removal waits for a full garbage collection
/// (`leases.SynchronousDelete`, moby v26.1.5 `daemon/delete.go`), and
/// concurrent removals share those waits. Measured at 1,000 stopped
/// containers: `--yes` took 20.9 s at 4 jobs and 8.3 s at 16, against 29.1 s
/// and 22.7 s for `docker system prune -f`. On overlay2 more jobs gain nothing
/// (the filesystem is the limit), so the default stays there.
pub(crate) const DEFAULT_JOBS_CONTAINERD: usize = 16;

/// How many deletions run at once: `--jobs` (or the config's `jobs`) when
/// given, else the default for the engine's image store.
pub(crate) fn jobs_for(given: Option<usize>, store: ImageStore) -> usize {
    given.unwrap_or(match store {
        ImageStore::Containerd => DEFAULT_JOBS_CONTAINERD,
        ImageStore::Graphdriver => DEFAULT_JOBS,
    })
}

/// The most deletions that may run at once.
pub(crate) const MAX_JOBS: usize = 32;

/// What the user asked for, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) host: Host,
    /// TLS for a `tcp://` engine reached with it.
    pub(crate) tls: Option<crate::engine::Tls>,
    /// The docker CLI context that named the engine, if one did.
    pub(crate) context: Option<String>,
    /// `--color`.
    pub(crate) color: ColorChoice,
    /// `-q/--quiet`.
    pub(crate) quiet: bool,
    /// `--timeout`: the longest wait for any one engine request.
    pub(crate) timeout: Duration,
    pub(crate) format: Format,
    pub(crate) mode: Mode,
    pub(crate) yes: bool,
    pub(crate) select: bool,
    /// `--jobs` or the config's `jobs`; `None`: the default for the engine
    /// (see [`jobs_for`]).
    pub(crate) jobs: Option<usize>,
    pub(crate) log_file: Option<PathBuf>,
    pub(crate) verbose: bool,
    pub(crate) rules: Rules,
    /// Unix seconds when the command line was read: `until=24h` counts from here.
    pub(crate) now: i64,
    /// Where sizes that cannot change are kept between runs (see
    /// [`crate::measure::cache`]); `None`: measured in full every time.
    pub(crate) size_cache: Option<PathBuf>,
    /// Where last uses are remembered between runs (see
    /// [`crate::policy::state`]); `None`: not remembered.
    pub(crate) state_dir: Option<PathBuf>,
    /// One line per removed, skipped or failed item on stderr, whatever it is
    /// (`watch`).
    pub(crate) item_lines: bool,
    /// `--metrics-file`.
    pub(crate) metrics_file: Option<PathBuf>,
    /// A fleet run's engines (`-H`/`--context` more than once,
    /// `--all-contexts`); empty for one engine, named by the fields above.
    pub(crate) fleet: Vec<crate::engine::context::Endpoint>,
    /// The engine's name in a fleet run: it starts each progress line.
    pub(crate) label: Option<String>,
}

impl Settings {
    /// Flags over the config file's defaults; `now` is for `until=24h`.
    pub(crate) fn from_cli(
        cli: Cli,
        config: Config,
        endpoint: Endpoint,
        now: i64,
    ) -> Result<Settings, UsageError> {
        let rules = rules_from(&cli.filter, &cli.scope, &config, now)?;
        if cli.apply.yes && cli.apply.select {
            return Err(UsageError(
                "--select asks on the terminal and --yes does not ask: give one of them".into(),
            ));
        }
        let jobs = cli.apply.jobs.or(config.jobs);
        if let Some(jobs) = jobs
            && (jobs == 0 || jobs > MAX_JOBS)
        {
            return Err(UsageError(format!(
                "invalid --jobs {jobs}: give a number from 1 to {MAX_JOBS}"
            )));
        }
        let timeout = humantime::parse_duration(&cli.timeout)
            .ok()
            .filter(|limit| !limit.is_zero())
            .ok_or_else(|| {
                UsageError(format!(
                    "invalid --timeout {:?}: give a duration like 30s, 2m or 10m",
                    cli.timeout
                ))
            })?;
        let scope_flag = scope_flag(&cli.scope);
        let mode = mode_from(cli.command, cli.dry_run, cli.plan_out, scope_flag)?;
        if cli.quiet && !cli.apply.yes && matches!(mode, Mode::Apply | Mode::ApplyFile { .. }) {
            return Err(UsageError(
                "--quiet shows no plan to confirm: pass --yes to apply, or --dry-run to list the planned IDs".into(),
            ));
        }
        if let Mode::Watch { .. } = mode {
            if rules.target.is_none() {
                return Err(UsageError(
                    "watch needs a mark to keep under: --when-above 85% --down-to 75% (or --max-usage, --target-free)".into(),
                ));
            }
            if cli.apply.select {
                return Err(UsageError(
                    "--select asks on a terminal, which `watch` never does: leave it out".into(),
                ));
            }
        }
        let Endpoint { host, context, tls } = endpoint;
        Ok(Settings {
            host,
            tls,
            context,
            color: cli.color,
            quiet: cli.quiet,
            timeout,
            format: cli.format,
            mode,
            yes: cli.apply.yes,
            select: cli.apply.select,
            jobs,
            log_file: cli.apply.log_file.or(config.log_file),
            verbose: cli.verbose,
            rules,
            now,
            size_cache: None,
            state_dir: None,
            item_lines: false,
            metrics_file: cli.metrics_file,
            fleet: Vec::new(),
            label: None,
        })
    }

    /// What a fleet run does: plan (`--dry-run`) or plan and apply, on each
    /// engine; what belongs to one engine is refused with the reason.
    pub(crate) fn check_fleet(&self) -> Result<(), UsageError> {
        let refuse = |what: &str| {
            Err(UsageError(format!(
                "{what} works on one engine: a fleet run (several -H/--context, --all-contexts) only plans (--dry-run) or plans and applies"
            )))
        };
        match &self.mode {
            Mode::DryRun { plan_out: None } | Mode::Apply => {}
            Mode::DryRun { plan_out: Some(_) } => return refuse("--plan-out"),
            Mode::ApplyFile { .. } => return refuse("apply FILE"),
            Mode::Df { .. } => return refuse("df"),
            Mode::Layers { .. } => return refuse("layers"),
            Mode::Watch { .. } => return refuse("watch"),
        }
        if self.select {
            return refuse("--select");
        }
        if self.quiet {
            return refuse("--quiet");
        }
        if self.metrics_file.is_some() {
            return refuse("--metrics-file");
        }
        Ok(())
    }
}

/// The rules: filters and keep rules, then the scope, flags over the config
/// file's defaults.
fn rules_from(
    filter: &FilterArgs,
    scope: &ScopeArgs,
    config: &Config,
    now: i64,
) -> Result<Rules, UsageError> {
    let filters = if filter.filters.is_empty() {
        config.filters.clone().unwrap_or_default()
    } else {
        filter.filters.clone()
    };
    // Protections add up: a --keep on the command line never drops the
    // config files' keep rules (safety round 2, finding 5).
    let add_up = |file: &Option<Vec<String>>, flag: &[String]| {
        let mut all = file.clone().unwrap_or_default();
        all.extend_from_slice(flag);
        all
    };
    let keep = add_up(&config.keep, &filter.keep);
    let keep_labels = add_up(&config.keep_labels, &filter.keep_label);
    let stopped_for = filter
        .stopped_for
        .as_deref()
        .or(config.stopped_for.as_deref());
    let mut rules = Rules::parse(&filters, stopped_for, &keep, &keep_labels, now)?;
    let keep_last = filter.keep_last.or(config.keep_last);
    let all_images = scope.all || config.all.unwrap_or(false);
    if keep_last == Some(0) {
        return Err(UsageError(
            "invalid --keep-last 0: give how many images of each repository to keep (1 or more)"
                .into(),
        ));
    }
    // Without --all only dangling images are planned, and they have no tag
    // to count by repository: --keep-last would be silently nothing.
    if filter.keep_last.is_some() && !all_images {
        return Err(UsageError(
            "--keep-last applies to tagged images, which only --all plans: add --all (or all = true in the config file)".into(),
        ));
    }
    rules.keep_last = keep_last;
    rules.all_images = all_images;
    rules.volumes = match (scope.volumes, config.volumes.as_deref()) {
        (Some(scope), _) => Some(scope),
        (None, None) => None,
        (None, Some("anonymous")) => Some(VolumeScope::Anonymous),
        (None, Some("all")) => Some(VolumeScope::All),
        (None, Some(other)) => {
            return Err(UsageError(format!(
                "invalid volumes = {other:?} in the config file: use \"anonymous\" or \"all\""
            )));
        }
    };
    rules.networks = scope.networks || scope.prune_scope || config.networks.unwrap_or(false);
    rules.prune_scope = scope.prune_scope;
    rules.target = Target::parse(
        scope.target_free.as_deref(),
        scope.max_usage.as_deref(),
        (scope.when_above.as_deref(), scope.down_to.as_deref()),
    )?;
    policy_rules(filter, scope, &mut rules)?;
    // `docker system prune` prunes build cache as `docker builder prune`,
    // with `-a` passed on (docker/cli v28.2.2 `cli/command/system/prune.go`).
    let prune_cache = scope.prune_scope.then_some(if scope.all {
        CacheScope::All
    } else {
        CacheScope::Unshared
    });
    rules.build_cache = match (
        scope.build_cache.or(prune_cache),
        config.build_cache.as_deref(),
    ) {
        (Some(scope), _) => Some(scope),
        (None, None) => None,
        (None, Some("unshared")) => Some(CacheScope::Unshared),
        (None, Some("all")) => Some(CacheScope::All),
        (None, Some(other)) => {
            return Err(UsageError(format!(
                "invalid build_cache = {other:?} in the config file: use \"unshared\" or \"all\""
            )));
        }
    };
    Ok(rules)
}

/// The maintenance policy's rules (grace, build cache budget, kubelet's
/// containers) and the logs' scope, onto `rules` (whose target is set).
fn policy_rules(
    filter: &FilterArgs,
    scope: &ScopeArgs,
    rules: &mut Rules,
) -> Result<(), UsageError> {
    rules.min_idle = match filter.min_idle.as_deref() {
        Some(raw) => Some(humantime::parse_duration(raw).map_err(|err| {
            UsageError(format!(
                "invalid --min-idle {raw:?}: {err} (try 30m, 1h or 2days; 0 turns it off)"
            ))
        })?)
        .filter(|idle| !idle.is_zero()),
        None => rules.target.map(|_| DEFAULT_MIN_IDLE),
    };
    rules.build_cache_keep = filter
        .build_cache_keep
        .as_deref()
        .map(|raw| {
            parse_size::parse_size(raw).map_err(|err| {
                UsageError(format!(
                    "invalid --build-cache-keep {raw:?}: {err} (try 10G or 500MB)"
                ))
            })
        })
        .transpose()?;
    rules.kubernetes = filter.include_kubernetes;
    let logs_over = scope
        .logs_over
        .as_deref()
        .map(|raw| {
            parse_size::parse_size(raw)
                .map_err(|err| {
                    UsageError(format!(
                        "invalid --logs-over {raw:?}: {err} (try 100M or 1G)"
                    ))
                })
                .and_then(|bytes| {
                    if bytes == 0 {
                        Err(UsageError(
                            "invalid --logs-over 0: give the size above which an active log is truncated, like 100M".into(),
                        ))
                    } else {
                        Ok(bytes)
                    }
                })
        })
        .transpose()?;
    rules.logs = (scope.logs || logs_over.is_some()).then_some(LogScope { over: logs_over });
    Ok(())
}

/// The first flag given that widens or cuts the scope: a saved plan carries
/// its own.
fn scope_flag(scope: &ScopeArgs) -> Option<&'static str> {
    [
        (scope.all, "--all"),
        (scope.volumes.is_some(), "--volumes"),
        (scope.networks, "--networks"),
        (scope.build_cache.is_some(), "--build-cache"),
        (scope.prune_scope, "--prune-scope"),
        (scope.target_free.is_some(), "--target-free"),
        (scope.max_usage.is_some(), "--max-usage"),
        (scope.when_above.is_some(), "--when-above"),
        (scope.logs, "--logs"),
        (scope.logs_over.is_some(), "--logs-over"),
    ]
    .into_iter()
    .find(|(given, _)| *given)
    .map(|(_, flag)| flag)
}

/// What to do: the subcommand and `--dry-run`.
fn mode_from(
    command: Option<Command>,
    dry_run: bool,
    plan_out: Option<PathBuf>,
    scope_flag: Option<&'static str>,
) -> Result<Mode, UsageError> {
    Ok(match (command, dry_run) {
        (None, true) => Mode::DryRun { plan_out },
        (None, false) => Mode::Apply,
        (Some(Command::Completions { .. } | Command::Man), _) => {
            return Err(UsageError(
                "completions and man need no settings: they are answered before any are read"
                    .into(),
            ));
        }
        (Some(Command::Df { why, .. }), _) => Mode::Df { why },
        (Some(Command::Layers { images }), _) => Mode::Layers { images },
        (Some(Command::Watch { .. }), true) => {
            return Err(UsageError(
                "--dry-run does not go with `watch`: try `docker-reclaim --dry-run` with the same marks to see what a check would take".into(),
            ));
        }
        (
            Some(Command::Watch {
                once,
                interval,
                poll,
                metrics_listen,
                ..
            }),
            false,
        ) => {
            let duration = |flag: &str, raw: &str| {
                humantime::parse_duration(raw)
                    .ok()
                    .filter(|every| *every >= Duration::from_secs(1))
                    .ok_or_else(|| {
                        UsageError(format!(
                            "invalid {flag} {raw:?}: give a duration of at least 1s, like 10s or 5m"
                        ))
                    })
            };
            Mode::Watch {
                once,
                interval: duration("--interval", &interval)?,
                poll: duration("--poll", &poll)?,
                metrics_listen: metrics_listen
                    .map(|raw| {
                        raw.parse().map_err(|_| {
                            UsageError(format!(
                                "invalid --metrics-listen {raw:?}: give an address and port, like 127.0.0.1:9464"
                            ))
                        })
                    })
                    .transpose()?,
            }
        }
        (Some(Command::Apply { .. }), true) => {
            return Err(UsageError(
                "--dry-run does not go with `apply`: a saved plan is shown before it is applied anyway".into(),
            ));
        }
        (Some(Command::Apply { .. }), false) if scope_flag.is_some() => {
            return Err(UsageError(format!(
                "{} does not go with `apply FILE`: a saved plan is applied in the scope it was made in",
                scope_flag.unwrap_or_default()
            )));
        }
        (Some(Command::Apply { file, max_age, .. }), false) => Mode::ApplyFile {
            path: file,
            max_age: humantime::parse_duration(&max_age).map_err(|err| {
                UsageError(format!(
                    "invalid --max-age {max_age:?}: {err} (try 30m, 2h or 1day)"
                ))
            })?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hosts_docker_accepts() {
        assert_eq!(
            Host::parse("unix:///run/docker.sock").unwrap(),
            Host::Unix("/run/docker.sock".into())
        );
        assert!(Host::parse("").is_err());
        let secret = Host::parse("tcp://admin:hunter2@10.0.0.1:2375").unwrap_err();
        assert!(
            !secret.0.contains("hunter2") && !secret.0.contains("admin"),
            "{}",
            secret.0
        );
        assert_eq!(
            Host::parse("tcp://10.0.0.1:2376").unwrap(),
            Host::Tcp("10.0.0.1:2376".into())
        );
        assert_eq!(
            Host::parse("tcp://docker.internal").unwrap(),
            Host::Tcp("docker.internal:2375".into())
        );
        assert_eq!(
            Host::parse("http://localhost:2375/").unwrap(),
            Host::Tcp("localhost:2375".into())
        );
    }

    #[test]
    fn rejects_bad_hosts_with_a_reason() {
        for (raw, needle) in [
            ("unix://", "absolute path"),
            ("unix://relative.sock", "absolute path"),
            ("tcp://", "tcp://HOST:PORT"),
            ("tcp://host:notaport", "not a number"),
            ("ssh://me@box:22x", "not a number"),
            ("npipe:////./pipe/docker", "\"npipe\""),
            ("/var/run/docker.sock", "unsupported host"),
        ] {
            let err = Host::parse(raw).unwrap_err().to_string();
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    fn default_endpoint() -> Endpoint {
        Endpoint {
            host: Host::parse(Host::DEFAULT).unwrap(),
            context: None,
            tls: None,
        }
    }

    fn settings(args: &[&str]) -> Result<Settings, UsageError> {
        let mut argv = vec!["docker-reclaim"];
        argv.extend_from_slice(args);
        Settings::from_cli(
            Cli::try_parse_args(argv).expect("clap accepts"),
            Config::default(),
            default_endpoint(),
            0,
        )
    }

    #[test]
    fn prune_scope_is_docker_system_prunes_scope() {
        let prune = settings(&["--prune-scope"]).unwrap().rules;
        assert!(prune.networks && !prune.all_images && prune.volumes.is_none());
        assert_eq!(prune.build_cache, Some(CacheScope::Unshared));
        // `docker system prune -a`: unused images and all build cache.
        let all = settings(&["--prune-scope", "--all"]).unwrap().rules;
        assert!(all.networks && all.all_images);
        assert_eq!(all.build_cache, Some(CacheScope::All));
        // `--volumes` there: anonymous volumes.
        let volumes = settings(&["--prune-scope", "--volumes"]).unwrap().rules;
        assert_eq!(volumes.volumes, Some(VolumeScope::Anonymous));
        // The scope of a saved plan is the file's.
        let err = settings(&["apply", "p.json", "--prune-scope"]).unwrap_err();
        assert!(err.0.contains("--prune-scope"), "{}", err.0);
    }

    #[test]
    fn modes_follow_the_flags() {
        assert_eq!(
            settings(&["--dry-run", "--plan-out", "p.json"])
                .unwrap()
                .mode,
            Mode::DryRun {
                plan_out: Some("p.json".into())
            }
        );
        assert_eq!(settings(&["-y"]).unwrap().mode, Mode::Apply);
        assert_eq!(
            settings(&["apply", "p.json", "--max-age", "30m"])
                .unwrap()
                .mode,
            Mode::ApplyFile {
                path: "p.json".into(),
                max_age: Duration::from_secs(1800)
            }
        );
    }

    #[test]
    fn bad_values_are_one_line_usage_errors() {
        for (args, needle) in [
            (&["apply", "p.json", "--max-age", "soon"][..], "--max-age"),
            (&["--jobs", "0"], "--jobs"),
            (&["--jobs", "1000"], "--jobs"),
            (&["--dry-run", "apply", "p.json"], "--dry-run"),
        ] {
            let err = settings(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn flags_override_the_config_file() {
        use clap::Parser;
        let config = Config {
            keep: Some(vec!["db-*".into()]),
            jobs: Some(8),
            stopped_for: Some("1h".into()),
            volumes: Some("all".into()),
            ..Config::default()
        };
        let cli = Cli::try_parse_from(["docker-reclaim", "--dry-run", "--jobs", "2"]).unwrap();
        let settings = Settings::from_cli(cli, config.clone(), default_endpoint(), 0).unwrap();
        assert_eq!(settings.jobs, Some(2));
        // Given, it is what runs; not given, the engine's image store decides.
        assert_eq!(jobs_for(Some(2), ImageStore::Containerd), 2);
        assert_eq!(jobs_for(None, ImageStore::Graphdriver), DEFAULT_JOBS);
        assert_eq!(
            jobs_for(None, ImageStore::Containerd),
            DEFAULT_JOBS_CONTAINERD
        );
        assert_eq!(settings.rules.stopped_for, Some(Duration::from_secs(3600)));
        assert_eq!(settings.rules.volumes, Some(VolumeScope::All));
        let bad = Config {
            volumes: Some("some".into()),
            ..Config::default()
        };
        let cli = Cli::try_parse_from(["docker-reclaim", "--dry-run"]).unwrap();
        assert!(
            Settings::from_cli(cli, bad, default_endpoint(), 0)
                .unwrap_err()
                .0
                .contains("volumes")
        );
    }

    /// Safety round 2, finding 5: `--keep` on the command line dropped the
    /// config file's keep rules, and an apply removed what /etc protected.
    #[test]
    fn keep_rules_from_files_and_flags_add_up() {
        use clap::Parser;
        let config = Config {
            keep: Some(vec!["db-*".into()]),
            keep_labels: Some(vec!["pin".into()]),
            ..Config::default()
        };
        let cli = Cli::try_parse_from([
            "docker-reclaim",
            "--dry-run",
            "--keep",
            "web-*",
            "--keep-label",
            "hold",
        ])
        .unwrap();
        let settings = Settings::from_cli(cli, config, default_endpoint(), 0).unwrap();
        let labels = std::collections::BTreeMap::new();
        for name in ["db-main", "web-1"] {
            assert!(
                settings
                    .rules
                    .kept_by(&[name.to_string()], &labels)
                    .is_some(),
                "{name} is not kept"
            );
        }
        for label in ["pin", "hold"] {
            let labels = std::collections::BTreeMap::from([(label.to_string(), String::new())]);
            assert!(
                settings
                    .rules
                    .kept_by(&["other".to_string()], &labels)
                    .is_some(),
                "label {label} does not keep"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for raw in ["unix:///var/run/docker.sock", "tcp://h:1"] {
            assert_eq!(Host::parse(raw).unwrap().to_string(), raw);
        }
    }

    /// A fleet run plans, or plans and applies; what works on one engine
    /// (a saved plan, df, layers, watch, a checklist, IDs only, one
    /// engine's metrics) is refused naming it.
    #[test]
    fn a_fleet_run_refuses_what_belongs_to_one_engine() {
        for args in [&["--dry-run"][..], &["--yes"], &[]] {
            settings(args).unwrap().check_fleet().unwrap();
        }
        for (args, named) in [
            (
                &["--dry-run", "--plan-out", "/tmp/p.json"][..],
                "--plan-out",
            ),
            (&["df"], "df"),
            (&["layers", "x"], "layers"),
            (&["apply", "/tmp/p.json"], "apply FILE"),
            (&["--select"], "--select"),
            (&["--yes", "-q"], "--quiet"),
            (
                &["--yes", "--metrics-file", "/tmp/m.prom"],
                "--metrics-file",
            ),
        ] {
            let err = settings(args).unwrap().check_fleet().unwrap_err().0;
            assert!(
                err.starts_with(named) && !err.contains('\n'),
                "{args:?}: {err}"
            );
        }
    }
}
