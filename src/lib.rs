//! docker-reclaim: safely reclaim disk space on a Docker host.
//!
//! The data flows one way: engine → inventory → plan → render → confirm → apply →
//! report. `run` parses the command line, validates it into
//! [`cli::settings::Settings`], builds the runtime and dispatches; every error comes
//! back here to be printed once.

mod apply;
mod cli;
mod commands;
mod engine;
mod exit;
mod files;
mod inventory;
mod measure;
mod memory;
mod metrics;
mod model;
mod plan;
mod policy;
mod render;
mod signals;
mod views;

#[cfg(test)]
mod testing;

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::cli::args::{Cli, Command};
use crate::cli::settings::{Mode, Settings};
use crate::exit::{ExitStatus, Stop};
use crate::signals::{Interrupt, Signals};

/// The whole program: parse, run, print any error once, and map it to an exit code.
#[must_use]
pub fn run() -> ExitCode {
    memory::tune_allocator();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if cli::plugin::wants_metadata(&args) {
        let _ = writeln!(std::io::stdout(), "{}", cli::plugin::metadata());
        return ExitStatus::Success.into();
    }
    let args = match cli::plugin::command_line(args) {
        Ok(args) => args,
        Err(err) => {
            note(&format!("docker-reclaim: error: {err}"));
            return ExitStatus::Usage.into();
        }
    };
    let cli = if cli::plugin::run_by_docker() {
        Cli::parse_plugin_args(args)
    } else {
        Cli::parse_args(args)
    };
    let may_delete = !cli.dry_run
        && !matches!(
            cli.command,
            Some(
                Command::Df { .. }
                    | Command::Layers { .. }
                    | Command::Completions { .. }
                    | Command::Man
            )
        );
    // Buffered: a plan of thousands of lines is written in a few large writes.
    // Every mode flushes what it wrote before it prompts or returns.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match execute(cli, &mut stdout) {
        Ok(status) => status.into(),
        // A reader that stopped reading a dry run, df or layers got what it
        // wanted, as with any Unix filter. A run that may delete was stopped
        // before its deletions by it (the report's own broken pipe keeps the
        // status: apply's write_report), so it did not do what was asked.
        Err(err) if is_broken_pipe(&err) && !may_delete => ExitStatus::Success.into(),
        Err(err)
            if err
                .downcast_ref::<apply::prompt::confirm::Declined>()
                .is_some() =>
        {
            note(&err.to_string());
            ExitStatus::Aborted.into()
        }
        Err(err) if is_broken_pipe(&err) => {
            note(
                "docker-reclaim: error: standard output was closed before the plan was shown in full: nothing was removed",
            );
            ExitStatus::Failure.into()
        }
        Err(err) => {
            note(&format!("docker-reclaim: error: {err:#}"));
            exit::status_of(&err).into()
        }
    }
}

fn execute(cli: Cli, out: &mut impl Write) -> Result<ExitStatus> {
    // Documentation from the CLI definition: no config, no engine.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            out.write_all(&cli::man::completions(*shell))?;
            out.flush()?;
            return Ok(ExitStatus::Success);
        }
        Some(Command::Man) => {
            cli::man::render(out)?;
            out.flush()?;
            return Ok(ExitStatus::Success);
        }
        _ => {}
    }
    let settings = settings_from(cli)?;
    // A fleet run plans its engines on every core; one engine needs one.
    let runtime = if settings.fleet.is_empty() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .context("starting the async runtime")?;
    let started = std::time::Instant::now();
    if let Mode::Watch {
        once,
        interval,
        poll,
        metrics_listen,
    } = settings.mode
    {
        return runtime.block_on(async {
            let signals = Signals::install()?;
            let every = commands::watch::Every {
                interval,
                poll,
                metrics_listen,
            };
            commands::watch::run(&settings, &signals, once, every, out).await
        });
    }
    if !settings.fleet.is_empty() {
        return runtime.block_on(async {
            let signals = Signals::install()?;
            commands::fleet::run(&settings, &signals, out).await
        });
    }
    let result = runtime.block_on(async {
        let signals = Signals::install()?;
        let work = async {
            // A local engine's data root is measured here when it can be
            // read, and then the engine is not asked to measure, except on API
            // 1.41 for the build cache records (see below).
            let engine = commands::connect(&settings).await?;
            metrics::note_engine(local_root(&settings.host, engine::Engine::info(&engine)));
            match &settings.mode {
                Mode::DryRun { plan_out } => {
                    commands::dry_run::run(&engine, &settings, plan_out.as_deref(), out).await
                }
                Mode::Apply | Mode::ApplyFile { .. } => {
                    commands::apply::run(&engine, &settings, &signals, out).await
                }
                Mode::Df { why } => commands::df::run(&engine, &settings, *why, out).await,
                Mode::Layers { images } => {
                    commands::layers::run(&engine, &settings, images, out).await
                }
                Mode::Watch { .. } => Err(anyhow::anyhow!("watch runs on its own, before this")),
            }
        };
        // Before deletions start, a signal ends the run wherever it waits.
        tokio::select! {
            biased;
            result = work => result,
            interrupt = signals.aborted() => Err(match interrupt {
                Interrupt::HungUp => Stop::new(
                    ExitStatus::Aborted,
                    "the terminal went away: nothing was removed",
                ),
                Interrupt::Interrupted => Stop::new(
                    ExitStatus::Interrupted,
                    "interrupted: nothing was removed",
                ),
            }
            .into()),
        }
    });
    if let Some(path) = settings.metrics_file.as_deref() {
        let exit_code = match &result {
            Ok(status) => i32::from(status.code()),
            Err(err) => i32::from(exit::status_of(err).code()),
        };
        runtime.block_on(write_metrics(path, exit_code, started));
    }
    result
}

/// The config files, the engine's endpoint and the flags, validated once;
/// with where sizes and last uses are kept between runs.
fn settings_from(cli: Cli) -> Result<Settings> {
    let config = cli::config::load(cli.config.as_deref())?;
    let endpoints = endpoints(&cli, config.host.clone())?;
    let fleet = endpoints.len() > 1 || cli.all_contexts;
    let mut settings = Settings::from_cli(cli, config, endpoints[0].clone(), unix_now())?;
    if fleet {
        settings.check_fleet()?;
        settings.fleet = endpoints;
    }
    settings.size_cache = measure::cache::default_dir(
        |key| std::env::var_os(key),
        rustix::process::geteuid().is_root(),
    );
    settings.state_dir = policy::state::default_dir(
        |key| std::env::var_os(key),
        rustix::process::geteuid().is_root(),
    );
    Ok(settings)
}

/// The engines the flags name: one (resolved as the docker CLI does), or in
/// a fleet run (`-H` or `--context` given more than once, or
/// `--all-contexts`) each `-H` and each `--context` (and with
/// `--all-contexts` every context in the store), in that order, each once.
fn endpoints(cli: &Cli, config_host: Option<String>) -> Result<Vec<engine::context::Endpoint>> {
    use engine::context::{Request, TlsOptions};
    let request = |host: Option<String>, context: Option<String>| {
        Request::from_env(
            host,
            context,
            config_host.clone(),
            TlsOptions {
                tls: cli.tls,
                verify: cli.tlsverify,
                ca: cli.tlscacert.clone(),
                cert: cli.tlscert.clone(),
                key: cli.tlskey.clone(),
                cert_path: None,
            },
        )
        .with_docker_config(cli.docker_config.clone())
    };
    let mut contexts = cli.context.clone();
    if cli.all_contexts {
        contexts.extend(engine::context::all_names(&request(None, None))?);
    }
    // One -H and one --context are docker's conflict, not a fleet: a fleet
    // repeats one of them (then the other may join) or takes every context.
    if cli.host.len() <= 1 && contexts.len() <= 1 && !cli.all_contexts {
        let one = request(cli.host.first().cloned(), contexts.first().cloned());
        return Ok(vec![engine::context::resolve(&one)?]);
    }
    let mut endpoints: Vec<engine::context::Endpoint> = Vec::new();
    let named = cli
        .host
        .iter()
        .map(|host| request(Some(host.clone()), None))
        .chain(
            contexts
                .iter()
                .map(|name| request(None, Some(name.clone()))),
        );
    for one in named {
        let endpoint = engine::context::resolve(&one)?;
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }
    Ok(endpoints)
}

/// Writes `--metrics-file` for the run that ended with `exit_code`.
pub(crate) async fn write_metrics(
    path: &std::path::Path,
    exit_code: i32,
    started: std::time::Instant,
) {
    metrics::write(path, &run_figures(exit_code, started)).await;
}

/// The run that ended with `exit_code`, with what it noted on its way.
pub(crate) fn run_figures(exit_code: i32, started: std::time::Instant) -> metrics::RunFigures {
    let noted = metrics::take_noted();
    let filesystem = noted.data_root.as_deref().and_then(metrics::Filesystem::of);
    metrics::RunFigures {
        noted,
        exit_code,
        duration_seconds: started.elapsed().as_secs_f64(),
        finished_at: unix_now(),
        filesystem,
    }
}

/// The data root, when the engine is reached through a local socket.
fn local_root(host: &engine::Host, info: &model::EngineInfo) -> Option<std::path::PathBuf> {
    matches!(host, engine::Host::Unix(_)).then(|| std::path::PathBuf::from(&info.data_root))
}

/// A line for the person on stderr. A closed stderr (a terminal that went away)
/// must not turn into a panic.
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{}", model::printable_lines(line));
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
