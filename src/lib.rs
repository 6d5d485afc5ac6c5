//! docker-reclaim: safely reclaim disk space on a Docker host.
//!
//! The data flows one way: engine → inventory → plan → render → confirm → apply →
//! report. `run` parses the command line, validates it into
//! [`settings::Settings`], builds the runtime and dispatches; every error comes
//! back here to be printed once.

pub mod apply;
pub mod cli;
pub mod config;
pub mod confirm;
pub mod disk;
pub mod engine;
pub mod exit;
pub mod inventory;
pub mod layers;
pub mod lock;
pub mod man;
pub mod measure;
pub mod model;
pub mod plan;
pub mod planfile;
pub mod progress;
pub mod render;
pub mod report;
pub mod rules;
pub mod settings;
pub mod usage;

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Cli, Format};
use crate::engine::Host;
use crate::engine::{DockerEngine, Engine};
use crate::exit::{ExitStatus, UsageError};
use crate::inventory::Inventory;
use crate::plan::Plan;
use crate::report::{BeforeAfter, Report};
use crate::settings::{Mode, Settings};

/// The whole program: parse, run, print any error once, and map it to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // Buffered: a plan of thousands of lines is written in a few large writes.
    // Every mode flushes what it wrote before it prompts or returns.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match execute(cli, &mut stdout) {
        Ok(status) => status.into(),
        Err(err) if is_broken_pipe(&err) => ExitStatus::Success.into(),
        Err(err) => {
            note(&format!("docker-reclaim: error: {err:#}"));
            exit::status_of(&err).into()
        }
    }
}

fn execute(cli: Cli, out: &mut impl Write) -> Result<ExitStatus> {
    let config = config::load(cli.config.as_deref())?;
    let settings = Settings::from_cli(cli, config, unix_now())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let engine = DockerEngine::connect(&settings.host).await?;
        match &settings.mode {
            Mode::DryRun { plan_out } => {
                dry_run(&engine, &settings, plan_out.as_deref(), out).await
            }
            Mode::Apply | Mode::ApplyFile { .. } => apply(&engine, &settings, out).await,
            Mode::Df => df(&engine, &settings, out).await,
            Mode::Layers { images } => layers(&engine, &settings, images, out).await,
        }
    })
}

/// Inventory, plan, show; optionally save the plan.
async fn dry_run(
    engine: &impl Engine,
    settings: &Settings,
    plan_out: Option<&Path>,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let (inventory, walked) = measure::inventory_and_walk(engine).await?;
    let plan = measure::measure(
        make_plan(&inventory, settings)?,
        &inventory,
        walked.as_ref(),
    );
    let now = unix_now();
    let show = render::Show {
        dry_run: true,
        verbose: settings.verbose,
        now,
    };
    show_plan(out, settings.format, &inventory, &plan, &show).context("writing the plan")?;
    if let Some(path) = plan_out {
        planfile::write(path, &inventory.engine, &plan, now)?;
        note(&format!(
            "Plan saved to {}; apply it with: docker-reclaim apply {}",
            path.display(),
            path.display()
        ));
    }
    Ok(ExitStatus::Success)
}

fn show_plan(
    out: &mut impl Write,
    format: Format,
    inventory: &Inventory,
    plan: &Plan,
    show: &render::Show,
) -> std::io::Result<()> {
    match format {
        Format::Human => render::human(out, &inventory.engine, plan, show)?,
        Format::Json => render::json(out, &inventory.engine, plan, show)?,
    }
    out.flush()
}

/// The plan the settings ask for: everything allowed, or with --target-free or
/// --max-usage only as much as the data root's filesystem needs.
fn make_plan(inventory: &Inventory, settings: &Settings) -> Result<Plan> {
    let Some(target) = settings.rules.target else {
        return Ok(plan::plan(inventory, &settings.rules, settings.now));
    };
    let space = local_data_root(&settings.host, inventory)
        .as_deref()
        .and_then(disk::fs::filesystem_space);
    let Some((total, available)) = space else {
        return Err(UsageError(format!(
            "{} needs the data root's filesystem, which is not readable from here (a local engine only)",
            target.describe()
        ))
        .into());
    };
    let needed = target.needed(total, available);
    Ok(plan::plan_to_target(
        inventory,
        &settings.rules,
        settings.now,
        needed,
    ))
}

/// Where the space is, per kind, with the default plan's reclaimable figures.
async fn df(engine: &impl Engine, settings: &Settings, out: &mut impl Write) -> Result<ExitStatus> {
    let (inventory, walked) = measure::inventory_and_walk(engine).await?;
    let (plan, orphans) = measure::measure_and_find_orphans(
        make_plan(&inventory, settings)?,
        &inventory,
        walked.as_ref(),
    );
    let on_disk = walked.as_ref().map(|(layout, index)| {
        let chains: HashSet<&str> = inventory
            .images
            .iter()
            .flat_map(|image| image.layers.iter().map(|layer| layer.chain_id.as_str()))
            .collect();
        usage::OnDisk {
            containers: inventory
                .containers
                .iter()
                .map(|c| (c.id.clone(), layout.container_bytes(index, &c.id).allocated))
                .collect(),
            logs: inventory
                .containers
                .iter()
                .map(|c| (c.id.clone(), layout.log_bytes(&c.id).allocated))
                .collect(),
            layers: chains
                .into_iter()
                .map(|chain| {
                    (
                        chain.to_string(),
                        layout.layer_bytes(index, chain).allocated,
                    )
                })
                .collect(),
            orphans,
            data_root: plan.data_root.unwrap_or_default(),
        }
    });
    let usage = usage::usage(&inventory, &plan, on_disk.as_ref());
    let free = local_data_root(&settings.host, &inventory)
        .as_deref()
        .and_then(disk::fs::free_space);
    let now = unix_now();
    match settings.format {
        Format::Human => {
            render::df_human(out, &inventory.engine, &usage, free, settings.verbose, now)?
        }
        Format::Json => render::df_json(out, &inventory.engine, &usage, free, now)?,
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// Images' layers and what shares them.
async fn layers(
    engine: &impl Engine,
    settings: &Settings,
    references: &[String],
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let (inventory, walked) = measure::inventory_and_walk(engine).await?;
    let images = references
        .iter()
        .map(|reference| layers::resolve(&inventory, reference))
        .collect::<Result<Vec<_>, _>>()?;
    let sizes: Option<HashMap<String, u64>> = walked.as_ref().map(|(layout, index)| {
        images
            .iter()
            .flat_map(|image| image.layers.iter())
            .map(|layer| {
                let bytes = layout.layer_bytes(index, &layer.chain_id).allocated;
                (layer.chain_id.clone(), bytes)
            })
            .collect()
    });
    let reports: Vec<layers::ImageReport> = images
        .into_iter()
        .map(|image| layers::describe(&inventory, image, sizes.as_ref()))
        .collect();
    match settings.format {
        Format::Human => render::layers_human(out, &reports)?,
        Format::Json => render::layers_json(out, &reports, unix_now())?,
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// Plan (or load a saved plan), show, confirm, apply, report.
async fn apply(
    engine: &impl Engine,
    settings: &Settings,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    // Everything the user gave us is checked before anything is removed.
    confirm::require_terminal(settings.yes)?;
    let mut audit = settings
        .log_file
        .as_deref()
        .map(open_audit_log)
        .transpose()?;
    let saved = match &settings.mode {
        Mode::ApplyFile { path, max_age } => {
            Some(planfile::load(path, engine.info(), unix_now(), *max_age)?)
        }
        _ => None,
    };
    let _lock = lock::acquire(engine.info())?;
    // Installed before the prompt, so that Ctrl-C there aborts cleanly instead of
    // killing the process, and Ctrl-C or SIGTERM during apply stops new deletions.
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(&stop)?;

    let (inventory, walked) = measure::inventory_and_walk(engine).await?;
    let plan = match saved {
        Some(items) => plan::summarize(items, &inventory),
        None => make_plan(&inventory, settings)?,
    };
    let plan = measure::measure(plan, &inventory, walked.as_ref());
    let show = render::Show {
        dry_run: false,
        verbose: settings.verbose,
        now: unix_now(),
    };
    if plan.is_empty() {
        show_plan(out, settings.format, &inventory, &plan, &show).context("writing the plan")?;
        return Ok(ExitStatus::Success);
    }
    match settings.format {
        Format::Human => show_plan(out, Format::Human, &inventory, &plan, &show),
        // stdout carries only the JSON report; a person at the prompt still sees the plan.
        Format::Json if !settings.yes => show_plan(
            &mut std::io::stderr(),
            Format::Human,
            &inventory,
            &plan,
            &show,
        ),
        Format::Json => Ok(()),
    }
    .context("writing the plan")?;

    let chosen = confirm::confirm(&plan, settings.yes, settings.select)?;
    let plan = if chosen.len() == plan.items.len() {
        plan
    } else {
        plan.only(&chosen, &inventory)
    };
    if plan.is_empty() {
        note("Nothing selected: nothing was removed.");
        return Ok(ExitStatus::Success);
    }

    let data_root = local_data_root(&settings.host, &inventory);
    let free_before = data_root.as_deref().and_then(disk::fs::free_space);
    // Measured at planning time; after a prompt, again, since time has passed.
    let disk_before = if settings.yes {
        plan.data_root.map(|root| root.bytes.allocated)
    } else {
        measure::walk_data_root(&inventory.engine)
    };
    let progress = progress::for_stderr();
    progress.start(plan.items.len(), plan.total.predicted_bytes);
    let mut audit_error = None;
    let results = apply::apply(
        engine,
        &plan,
        &inventory,
        settings.jobs,
        &stop,
        &mut |result| {
            progress.item(result);
            if let Some(log) = audit.as_mut() {
                let line = render::audit_line(engine.info(), result, unix_now());
                if let Err(err) = writeln!(log, "{line}") {
                    audit_error.get_or_insert(err);
                }
            }
        },
    )
    .await;
    progress.finish();
    if let Some(err) = audit_error {
        note(&format!(
            "docker-reclaim: warning: the audit log is incomplete: {err}"
        ));
    }

    // The data root is walked while the engine works out its own figures.
    let engine_info = inventory.engine.clone();
    let walk_after = tokio::task::spawn_blocking(move || measure::walk_data_root(&engine_info));
    let usage_after = engine
        .disk_usage()
        .await
        .map(|usage| {
            let after = Inventory::from_disk_usage(inventory.engine.clone(), usage);
            plan::summarize(Vec::new(), &after).total.current_bytes
        })
        .ok();
    let disk_after = walk_after.await.ok().flatten();
    let report = Report {
        results,
        interrupted: stop.load(Ordering::SeqCst),
        engine_usage: usage_after.map(|after| BeforeAfter {
            before: plan.engine_current_bytes(),
            after,
        }),
        free_space: free_before
            .zip(data_root.as_deref().and_then(disk::fs::free_space))
            .map(|(before, after)| BeforeAfter { before, after }),
        data_root: disk_before
            .zip(disk_after)
            .map(|(before, after)| BeforeAfter { before, after }),
    };
    match settings.format {
        Format::Human => {
            writeln!(out)?;
            render::report_human(out, &report)?;
        }
        Format::Json => render::report_json(out, &inventory.engine, &report, unix_now())?,
    }
    out.flush()?;
    Ok(report.status())
}

fn open_audit_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| {
            UsageError(format!("cannot open --log-file {}: {err}", path.display())).into()
        })
}

/// Sets `stop` on SIGINT or SIGTERM, from now until the process ends.
fn watch_signals(stop: &Arc<AtomicBool>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut signals = signal(kind).context("installing a signal handler")?;
        let stop = Arc::clone(stop);
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    Ok(())
}

/// The data root, when the engine is local and the directory can be read here.
fn local_data_root(host: &Host, inventory: &Inventory) -> Option<PathBuf> {
    let root = PathBuf::from(&inventory.engine.data_root);
    (matches!(host, Host::Unix(_)) && root.is_dir()).then_some(root)
}

/// A line for the person on stderr. A closed stderr (a terminal that went away)
/// must not turn into a panic.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
