//! The command line as clap sees it. The `///` comments here are the `--help` text
//! and the man page, written for a terminal, not as Markdown. `settings.rs`
//! turns these types into [`super::settings::Settings`]; `run` only looks at
//! which subcommand was given, to answer `man` and `completions` first.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::codes_help;

/// Safely reclaim disk space on a Docker host.
///
/// docker-reclaim takes an inventory of the engine (containers, images and their
/// layers, volumes, networks, build cache), plans what can go with a reason for
/// each item, and predicts the bytes each removal frees from layer reference
/// counts: a layer frees space only when every image and container using it goes.
///
/// The default plan holds stopped containers (exited, created, dead) and dangling
/// (untagged) images that no remaining container uses. A running, paused or
/// restarting container, and any image a remaining container uses, is never planned.
///
/// Without --dry-run the plan is shown and, once confirmed, carried out: exactly
/// the items shown, each re-checked just before it is removed (a container that
/// started, an image that was tagged or gained a container since, is skipped and
/// reported), never with force. Without a terminal, --yes is required.
#[derive(Debug, Parser)]
#[command(name = "docker-reclaim", version, after_help = codes_help())]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// Only show the plan: what would be removed, why, and how many bytes it frees.
    /// Changes nothing on the engine.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// With --dry-run: also write the plan as JSON to FILE, to apply later with
    /// `docker-reclaim apply FILE`.
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub(crate) plan_out: Option<PathBuf>,

    /// Show more: under each image, the layers its removal frees and the layers
    /// it leaves because something that stays uses them (and what).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,

    #[command(flatten)]
    pub(crate) apply: ApplyArgs,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,

    #[command(flatten)]
    pub(crate) scope: ScopeArgs,

    /// Read defaults from this TOML file instead of /etc/docker-reclaim/config.toml
    /// and ~/.config/docker-reclaim/config.toml. Flags override the file.
    #[arg(
        long,
        value_name = "FILE",
        env = "DOCKER_RECLAIM_CONFIG",
        global = true
    )]
    pub(crate) config: Option<PathBuf>,

    /// Docker engine to talk to: unix:///path/to/docker.sock, tcp://host:port
    /// (with --tls/--tlsverify: TLS) or ssh://[user@]host[:port][/socket] (the
    /// system's ssh runs `docker system dial-stdio` there).
    /// Without it (or --context): $DOCKER_HOST, then $DOCKER_CONTEXT, then the
    /// config file's host, then the docker CLI's current context, then
    /// unix:///var/run/docker.sock, as the docker CLI resolves them.
    /// Given more than once (then --context may join), a fleet run: each engine is
    /// planned at the same time, shown in a section of its own, asked about
    /// once, and applied on its own.
    #[arg(short = 'H', long, value_name = "HOST", global = true)]
    pub(crate) host: Vec<String>,

    /// The docker CLI context to use (`docker context ls`), from
    /// $DOCKER_CONFIG/contexts (default ~/.docker). Not with a single --host.
    /// Given more than once, a fleet run (see --host).
    #[arg(short = 'c', long, value_name = "NAME", global = true)]
    pub(crate) context: Vec<String>,

    /// A fleet run over every context in the docker CLI's store (`docker
    /// context ls` but the implicit `default`; name it with -c default).
    #[arg(long, global = true)]
    pub(crate) all_contexts: bool,

    /// Use TLS to reach a tcp:// engine, without verifying its certificate
    /// (implied by --tlsverify; $DOCKER_TLS sets it too), as docker does.
    #[arg(long, global = true)]
    pub(crate) tls: bool,

    /// Use TLS and verify the engine's certificate against --tlscacert (else
    /// the system's roots); $DOCKER_TLS_VERIFY sets it too, as with docker.
    #[arg(long, global = true)]
    pub(crate) tlsverify: bool,

    /// CA certificate to verify the engine with [default: $DOCKER_CERT_PATH/ca.pem,
    /// else ~/.docker/ca.pem, when it exists].
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) tlscacert: Option<PathBuf>,

    /// Client certificate to present [default: cert.pem beside ca.pem, when it exists].
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) tlscert: Option<PathBuf>,

    /// Client key [default: key.pem beside ca.pem, when it exists].
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) tlskey: Option<PathBuf>,

    /// The docker CLI's config directory, as docker's own `--config` gives it
    /// when docker runs us as its `reclaim` plugin.
    #[arg(long, value_name = "DIR", global = true, hide = true)]
    pub(crate) docker_config: Option<PathBuf>,

    /// How long to wait for the engine to answer any one request before giving
    /// up with exit 3 (`/system/df` on a host with many containers can take a
    /// while). Ctrl-C works while waiting, whatever this is.
    #[arg(long, value_name = "DURATION", default_value = "2m", global = true)]
    pub(crate) timeout: String,

    /// Colour on a terminal: auto (when stdout is a terminal and NO_COLOR is
    /// not set), always, or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", global = true)]
    pub(crate) color: ColorChoice,

    /// Say less. With --dry-run: only the planned IDs, one per line. When
    /// applying: no plan and no progress, only problems and a one-line summary
    /// (needs --yes, since nothing is shown to confirm).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    /// Write the run's figures to FILE in Prometheus' text format when it
    /// ends (atomically, for node_exporter's textfile collector: items per
    /// kind and outcome, bytes predicted and freed, duration, exit code,
    /// engine reachable, the data root's filesystem); `watch` rewrites it
    /// after every check.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) metrics_file: Option<PathBuf>,

    /// Output format: `human` for a terminal or a log file, `json` for the
    /// documented machine-readable plan and report (see the README for the contract).
    #[arg(long, value_enum, default_value_t = Format::Human, value_name = "FORMAT", global = true)]
    pub(crate) format: Format,
}

/// How a plan is carried out.
#[derive(Debug, Default, Args)]
pub(crate) struct ApplyArgs {
    /// Apply without asking. Needed when there is no terminal (cron, systemd, CI).
    /// `-f`/`--force` is the same, for `docker system prune` habits: it skips
    /// the question, never the re-checks, and forces nothing.
    #[arg(short = 'y', long, visible_short_alias = 'f', visible_alias = "force")]
    pub(crate) yes: bool,

    /// Choose the items to remove from a checklist (all checked) before applying.
    #[arg(long, conflicts_with = "yes")]
    pub(crate) select: bool,

    /// How many deletions run at once [default: 4; 16 on the containerd image
    /// store, where each container removal waits for containerd's garbage
    /// collection and concurrent removals share the wait].
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<usize>,

    /// Append one JSON line per removed, skipped or failed item to FILE
    /// (time, kind, id, name, bytes, outcome).
    #[arg(long, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,
}

/// What narrows the plan and what protects from it.
#[derive(Debug, Default, Args)]
pub(crate) struct FilterArgs {
    /// Narrow the plan, in docker's syntax; repeatable. `until=DURATION|TIME`:
    /// only what was created before (24h ago, an RFC 3339 time, or Unix seconds;
    /// compares the creation time of containers and images, as docker does).
    /// `label=KEY[=VALUE]`: only what carries the label. `label!=KEY[=VALUE]`: only
    /// what does not.
    #[arg(long = "filter", value_name = "FILTER")]
    pub(crate) filters: Vec<String>,

    /// Only containers that finished at least this long ago (never-started ones:
    /// created that long ago), e.g. 30m, 2h, 7days. Unlike `until`, a container
    /// created long ago that stopped a minute ago stays.
    #[arg(long, value_name = "DURATION")]
    pub(crate) stopped_for: Option<String>,

    /// Never remove what matches this glob: container names and image references
    /// (repo:tag); repeatable. Adds to the config files' keep rules.
    #[arg(long, value_name = "PATTERN")]
    pub(crate) keep: Vec<String>,

    /// Never remove what carries this label (KEY or KEY=VALUE); repeatable. Adds
    /// to the config files' keep_labels.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub(crate) keep_label: Vec<String>,

    /// Keep the N newest images (by creation) of each repository.
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<usize>,

    /// Keep any image used, pulled, tagged or created within this long (a
    /// grace period for an image a job pulled and has not run yet) [default
    /// with --target-free, --max-usage, --when-above and in `watch`: 1h; 0
    /// turns it off]. Last use comes from containers, the engine's events and
    /// the state file (see the README's "Maintenance policy").
    #[arg(long, value_name = "DURATION")]
    pub(crate) min_idle: Option<String>,

    /// Keep the most recently used build cache up to this size (10G, 500MB),
    /// as `docker builder prune --keep-storage` does: only the least recently
    /// used build cache records beyond it are planned.
    #[arg(long, value_name = "SIZE")]
    pub(crate) build_cache_keep: Option<String>,

    /// Also plan containers that kubelet created (labels io.kubernetes.*, as
    /// through cri-dockerd), and so their images. By default they are
    /// kubelet's to collect and stay, with that reason.
    #[arg(long)]
    pub(crate) include_kubernetes: bool,
}

/// What the plan may take beyond the default (stopped containers and dangling
/// images), or how much of it.
#[derive(Debug, Default, Args)]
pub(crate) struct ScopeArgs {
    /// Also plan unused images: tagged images that no remaining container uses,
    /// including those whose only containers are in the plan. An image that
    /// another image which stays is built on is kept.
    #[arg(long)]
    pub(crate) all: bool,

    /// Also plan volumes that no remaining container mounts: anonymous ones
    /// (`--volumes`), or named ones too (`--volumes=all`). Sizes come from the
    /// engine, or the data root when readable. `until` does not apply to volumes.
    #[arg(
        long,
        value_enum,
        value_name = "WHICH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "anonymous",
    )]
    pub(crate) volumes: Option<crate::plan::rules::VolumeScope>,

    /// Also plan build cache records not in use: those not shared with an image
    /// (`--build-cache`, like `docker builder prune`), plus those shared only
    /// with images the plan removes (pruned after them, if BuildKit then finds
    /// them unshared), or all of them (`--build-cache=all`, like `--all` there). Keep rules and filters apply
    /// to them too (records carry no labels, so a label filter keeps them out).
    /// On Docker 20.10 (API 1.41) a local plan without it does not list the
    /// build cache: only the whole `docker system df` lists it there.
    #[arg(
        long,
        value_enum,
        value_name = "WHICH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "unshared",
    )]
    pub(crate) build_cache: Option<crate::plan::rules::CacheScope>,

    /// Plan only until this much is free on the data root's filesystem (10G,
    /// 500MiB…), taking candidates in order: stopped containers, oldest finished
    /// first; dangling images, least recently used first; build cache, least
    /// recently used first; unused images, least recently used first (then
    /// largest); then volumes and networks. Needs a local engine.
    #[arg(long, value_name = "SIZE")]
    pub(crate) target_free: Option<String>,

    /// Plan only until at most this much of the data root's filesystem is used
    /// (80, 80%), in the same order as --target-free.
    #[arg(long, value_name = "PERCENT", conflicts_with = "target_free")]
    pub(crate) max_usage: Option<String>,

    /// Act only when more than this much of the data root's filesystem is
    /// used (85%), then plan down to --down-to (default: the same mark), in
    /// the order of --target-free: kubelet's high and low marks. Below it,
    /// the plan is empty.
    #[arg(long, value_name = "PERCENT", conflicts_with_all = ["target_free", "max_usage"])]
    pub(crate) when_above: Option<String>,

    /// With --when-above: how far down to free (75%).
    #[arg(long, value_name = "PERCENT", requires = "when_above")]
    pub(crate) down_to: Option<String>,

    /// Also plan container logs, for containers that stay: their rotated log
    /// files (json-file's ID-json.log.1, .2.gz…, the local driver's), removed.
    /// The engine's files, under its data root: a local Docker engine only.
    #[arg(long)]
    pub(crate) logs: bool,

    /// With --logs: also truncate the active json-file log of any container
    /// that stays when it takes more than SIZE (100M, 1G) on disk. The
    /// container keeps running and logging; `docker logs` then shows only what
    /// came after. Only on Docker 20.10 (from Docker 23, `docker logs` breaks
    /// on a truncated file) and while dockerd writes the file in append mode
    /// (after a rotation it does not); otherwise the file is left, with why.
    #[arg(long, value_name = "SIZE")]
    pub(crate) logs_over: Option<String>,

    /// Also plan user-defined networks that no remaining container is attached
    /// to. Never `bridge`, `host`, `none`, an ingress or a swarm-scoped network.
    #[arg(long)]
    pub(crate) networks: bool,

    /// Plan what `docker system prune` removes: stopped containers, unused
    /// networks, dangling images and build cache not in use (a record shared
    /// with an image goes when only images of the plan share it). With --all,
    /// what `docker system prune -a` removes (unused images, all build cache
    /// not in use); with --volumes, what `--volumes` adds there (anonymous
    /// volumes from API 1.42, every unused volume on older engines). The same as
    /// `--networks --build-cache` (`--build-cache=all` with --all); each item
    /// is still shown first and re-checked before it goes.
    #[arg(long)]
    pub(crate) prune_scope: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show where the space is: usage per kind, with what the default plan would
    /// reclaim.
    ///
    /// The engine (version, data root, storage driver and its filesystem, free
    /// space), then containers, container logs, images, layers, volumes, build
    /// cache and orphaned overlay2 directories: count, size, size in use and
    /// reclaimable. Reclaimable comes from the same plan as `--dry-run`. Sizes are
    /// measured on disk when the data root is readable here, else the engine's
    /// estimates. With -v, the items, largest first, and each orphaned directory.
    Df {
        /// Also say what keeps filling the disk: containers whose json-file log
        /// has no size limit (with the daemon.json lines that cap them),
        /// stopped copies of one image and command (`docker run` without
        /// --rm, or a restart loop), images rebuilt under one tag leaving
        /// dangling copies (how many a day), the build cache's growth, and
        /// volumes nothing mounts. A local engine's data root is read for logs.
        #[arg(long)]
        why: bool,

        #[command(flatten)]
        filter: FilterArgs,

        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show images' layers, oldest first, and what shares each.
    ///
    /// For each layer: chain ID, diff ID, size, the history command that made it,
    /// the other images that use it and how many containers sit on it; then the
    /// image's unique bytes (what removing it alone frees) and shared bytes.
    Layers {
        /// Images by name[:tag], full ID or unique ID prefix.
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
    /// Apply a plan saved with `--dry-run --plan-out FILE`.
    ///
    /// The plan is refused, and nothing removed, when it was made on another
    /// engine, is older than --max-age, or is not a valid plan. Each item is
    /// re-checked before it goes, as with a fresh plan.
    Apply {
        /// The plan file.
        #[arg(value_name = "FILE")]
        file: PathBuf,

        /// Refuse a plan older than this (e.g. 30m, 2h, 1day).
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        max_age: String,

        #[command(flatten)]
        apply: ApplyArgs,

        #[command(flatten)]
        filter: FilterArgs,

        /// Accepted only to refuse in one line: a saved plan's scope is the
        /// file's. Hidden from `apply --help` (see [`command`]).
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Keep the disk below a high mark: record image use as it happens and
    /// reclaim when the mark is crossed.
    ///
    /// Needs a target: --when-above 85% --down-to 75% (kubelet's marks), or
    /// --max-usage / --target-free. Reads the engine's events every --poll
    /// and records which images containers are created and started from (in
    /// the state file, so a `docker run --rm` job counts as a use); checks
    /// the data root's filesystem every --interval and shortly after a burst
    /// of events; when the mark is crossed, runs the same plan, re-checks and
    /// deletions as `--yes`, least recently used first, with the same keep
    /// rules, lock and audit log (--log-file). One line per action, for
    /// journald or a log file. Reconnects with backoff when the engine goes
    /// away; SIGTERM finishes the deletions under way and exits 0.
    Watch {
        /// Run one check (reclaiming if the mark is crossed) and exit.
        #[arg(long)]
        once: bool,

        /// How often to check the filesystem without any event (5m, 1h).
        #[arg(long, value_name = "DURATION", default_value = "5m")]
        interval: String,

        /// How often to read the engine's events (it holds its last 256).
        #[arg(long, value_name = "DURATION", default_value = "10s")]
        poll: String,

        /// Also serve the metrics of --metrics-file over HTTP at ADDR/metrics
        /// (127.0.0.1:9464), for Prometheus to scrape; off unless given.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,

        #[command(flatten)]
        apply: ApplyArgs,

        #[command(flatten)]
        filter: FilterArgs,

        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Print a shell completion script to stdout.
    ///
    /// For example: `docker-reclaim completions bash > /etc/bash_completion.d/docker-reclaim`,
    /// `docker-reclaim completions zsh > "${fpath[1]}/_docker-reclaim"`, or
    /// `docker-reclaim completions fish > ~/.config/fish/completions/docker-reclaim.fish`.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: how man/docker-reclaim.1 is made.
    #[command(hide = true)]
    Man,
}

/// The command line's definition: [`Cli`]'s, with the scope flags hidden from
/// `apply --help` (they are accepted there only to be refused in one line).
/// Help, completions and the man page all come from this.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let scope: Vec<String> = ScopeArgs::augment_args(clap::Command::new("scope"))
        .get_arguments()
        .map(|arg| arg.get_id().to_string())
        .collect();
    Cli::command().mut_subcommand("apply", |apply| {
        scope
            .iter()
            .fold(apply, |apply, id| apply.mut_arg(id, |arg| arg.hide(true)))
    })
}

impl Cli {
    /// Parses `args` by [`command`]: a usage error (or `--help`) ends the process
    /// as clap does.
    pub(crate) fn parse_args<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_args(args).unwrap_or_else(|err| err.exit())
    }

    /// [`Cli::parse_args`] as the docker CLI's `reclaim` plugin: usage and
    /// help say `docker reclaim`, as the user typed it.
    pub(crate) fn parse_plugin_args<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        command()
            .bin_name("docker reclaim")
            .try_get_matches_from(args)
            .and_then(|matches| Cli::from_arg_matches(&matches))
            .map_or_else(|err| err.exit(), Cli::merged)
    }

    /// Parses `args` by [`command`]. A subcommand's own flags (`df --all`,
    /// `apply FILE --yes`) count as if given before it.
    pub(crate) fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        let matches = command().try_get_matches_from(args)?;
        Ok(Cli::from_arg_matches(&matches)?.merged())
    }

    fn merged(mut self) -> Cli {
        match &mut self.command {
            Some(Command::Df { filter, scope, .. }) => {
                self.filter.absorb(std::mem::take(filter));
                self.scope.absorb(std::mem::take(scope));
            }
            Some(
                Command::Apply {
                    apply,
                    filter,
                    scope,
                    ..
                }
                | Command::Watch {
                    apply,
                    filter,
                    scope,
                    ..
                },
            ) => {
                self.apply.absorb(std::mem::take(apply));
                self.filter.absorb(std::mem::take(filter));
                self.scope.absorb(std::mem::take(scope));
            }
            _ => {}
        }
        self
    }
}

impl ApplyArgs {
    fn absorb(&mut self, other: ApplyArgs) {
        self.yes |= other.yes;
        self.select |= other.select;
        self.jobs = other.jobs.or(self.jobs);
        self.log_file = other.log_file.or(self.log_file.take());
    }
}

impl FilterArgs {
    fn absorb(&mut self, other: FilterArgs) {
        self.filters.extend(other.filters);
        self.stopped_for = other.stopped_for.or(self.stopped_for.take());
        self.keep.extend(other.keep);
        self.keep_label.extend(other.keep_label);
        self.keep_last = other.keep_last.or(self.keep_last);
        self.min_idle = other.min_idle.or(self.min_idle.take());
        self.build_cache_keep = other.build_cache_keep.or(self.build_cache_keep.take());
        self.include_kubernetes |= other.include_kubernetes;
    }
}

impl ScopeArgs {
    fn absorb(&mut self, other: ScopeArgs) {
        self.all |= other.all;
        self.volumes = other.volumes.or(self.volumes);
        self.build_cache = other.build_cache.or(self.build_cache);
        self.target_free = other.target_free.or(self.target_free.take());
        self.max_usage = other.max_usage.or(self.max_usage.take());
        self.when_above = other.when_above.or(self.when_above.take());
        self.down_to = other.down_to.or(self.down_to.take());
        self.networks |= other.networks;
        self.prune_scope |= other.prune_scope;
        self.logs |= other.logs;
        self.logs_over = other.logs_over.or(self.logs_over.take());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned text for people.
    Human,
    /// One JSON object (schema_version 1).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docker's habit: `-f`/`--force` skips the question, as `--yes` does.
    #[test]
    fn force_is_yes() {
        for flag in ["-f", "--force"] {
            let cli = Cli::try_parse_args(["docker-reclaim", flag]).unwrap();
            assert!(cli.apply.yes, "{flag} is not --yes");
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }

    /// The flags a subcommand's `--help` lists (not those its prose mentions).
    fn help_of(name: &str) -> String {
        let mut command = command();
        command.build();
        let sub = command
            .find_subcommand_mut(name)
            .expect("the subcommand exists");
        sub.render_long_help()
            .to_string()
            .lines()
            .map(str::trim_start)
            .filter(|line| line.starts_with('-'))
            .fold(String::new(), |help, line| help + line + "\n")
    }

    #[test]
    fn subcommand_help_lists_only_the_flags_that_work_there() {
        let df = help_of("df");
        for flag in [
            "--filter",
            "--keep",
            "--all",
            "--prune-scope",
            "--host",
            "--format",
        ] {
            assert!(df.contains(flag), "df --help lacks {flag}");
        }
        for flag in [
            "--yes",
            "--select",
            "--jobs",
            "--log-file",
            "--dry-run",
            "--plan-out",
        ] {
            assert!(!df.contains(flag), "df --help lists {flag}");
        }
        let layers = help_of("layers");
        for flag in [
            "--filter",
            "--keep ",
            "--all ",
            "--yes",
            "--jobs",
            "--volumes",
        ] {
            assert!(!layers.contains(flag), "layers --help lists {flag}");
        }
        assert!(layers.contains("--format"));
        let apply = help_of("apply");
        for flag in ["--yes", "--select", "--jobs", "--keep", "--max-age"] {
            assert!(apply.contains(flag), "apply --help lacks {flag}");
        }
        for flag in [
            "--all ",
            "--volumes",
            "--networks",
            "--build-cache",
            "--prune-scope",
            "--target-free",
        ] {
            // The flag itself, not a longer one it begins (--build-cache-keep).
            let listed = apply.match_indices(flag).any(|(at, _)| {
                !apply[at + flag.len()..].starts_with(|c: char| c == '-' || c.is_alphanumeric())
            });
            assert!(!listed, "apply --help lists {flag}");
        }
    }

    #[test]
    fn a_subcommands_flags_count_as_given_before_it() {
        let cli = Cli::try_parse_args([
            "docker-reclaim",
            "--keep",
            "a",
            "df",
            "--keep",
            "b",
            "--all",
        ])
        .unwrap();
        assert_eq!(cli.filter.keep, vec!["a", "b"]);
        assert!(cli.scope.all);
        let cli =
            Cli::try_parse_args(["docker-reclaim", "apply", "p.json", "--yes", "--jobs", "2"])
                .unwrap();
        assert!(cli.apply.yes);
        assert_eq!(cli.apply.jobs, Some(2));
        // Not accepted where they do nothing.
        assert!(Cli::try_parse_args(["docker-reclaim", "layers", "x", "--all"]).is_err());
        assert!(Cli::try_parse_args(["docker-reclaim", "df", "--yes"]).is_err());
    }
}
