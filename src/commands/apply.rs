//! Applying: prepare (check the input, lock, plan or load a saved plan, show),
//! confirm, execute (delete with re-checks), measure after, report.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use super::{local_data_root, make_plan, show_plan};
use crate::apply::execute;
use crate::apply::lock;
use crate::apply::progress::{self, AuditLog, Fanout, Progress};
use crate::apply::prompt::confirm;
use crate::apply::report::{BeforeAfter, ItemResult, Outcome, Report};
use crate::cli::args::Format;
use crate::cli::settings::{Mode, Settings};
use crate::engine::{Engine, Host};
use crate::exit::ExitStatus;
use crate::inventory::Inventory;
use crate::measure::{self, sizes};
use crate::plan::file as plan_file;
use crate::plan::{self, Plan};
use crate::signals::Signals;
use crate::{files, note, render, unix_now};

/// Plan (or load a saved plan), show, confirm, apply, report.
pub(crate) async fn run(
    engine: &impl Engine,
    settings: &Settings,
    signals: &Signals,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    // Everything the user gave us is checked before anything is removed.
    confirm::require_terminal(settings.yes)?;
    let audit = audit_log(engine, settings)?;
    let saved = match &settings.mode {
        Mode::ApplyFile { path, max_age } => {
            Some(plan_file::load(path, engine.info(), unix_now(), *max_age)?)
        }
        _ => None,
    };
    carry_out(engine, settings, signals, saved, audit, true, out)
        .await
        .map(|applied| applied.status)
}

/// What an apply did: its exit status, and its report when it got as far as
/// deleting.
pub(crate) struct Applied {
    pub(crate) status: ExitStatus,
    pub(crate) report: Option<Report>,
}

impl Applied {
    fn nothing() -> Applied {
        Applied {
            status: ExitStatus::Success,
            report: None,
        }
    }
}

/// From the lock on: plan (a saved or agreed plan: the part of it a plan made
/// now takes), show it when `show`, confirm, execute, measure, report. A
/// fleet run calls this on each engine with the plan it showed and the user
/// agreed to, `--yes` set and `show` off.
pub(crate) async fn carry_out(
    engine: &impl Engine,
    settings: &Settings,
    signals: &Signals,
    saved: Option<plan_file::SavedPlan>,
    mut audit: Option<AuditLog<File>>,
    show: bool,
    out: &mut impl Write,
) -> Result<Applied> {
    let socket = match &settings.host {
        Host::Unix(path) => Some(path.as_path()),
        _ => None,
    };
    let _lock = lock::acquire(engine.info(), socket)?;

    let (inventory, plan) = prepare(engine, settings, saved, show, out).await?;
    if plan.is_empty() {
        return Ok(Applied::nothing());
    }
    let chosen = confirm::confirm(&plan, settings.yes, settings.select)?;
    let plan = if chosen.len() == plan.items.len() {
        plan
    } else {
        plan.only(&chosen, &inventory)
    };
    if plan.is_empty() {
        note("Nothing selected: nothing was removed.");
        return Ok(Applied::nothing());
    }

    let before = Before::measure(settings, &inventory, &plan);
    signals.start_applying();
    let gone = AtomicBool::new(false);
    let results = execute(
        engine,
        settings,
        &plan,
        &inventory,
        execute::StopSignals {
            stop: signals.stop(),
            gone: &gone,
        },
        audit.as_mut(),
    )
    .await;
    let engine_gone = gone.load(Ordering::SeqCst);
    if engine_gone {
        say_engine_gone(settings, &results);
    }
    if let Some(err) = audit.and_then(|log| log.error) {
        note(&format!(
            "docker-reclaim: warning: the audit log is incomplete: {err}"
        ));
    }
    let report = measure_after(
        engine,
        &inventory,
        &plan,
        before,
        engine_gone,
        settings.size_cache.as_deref(),
    )
    .await
    .report(results, signals.stop().load(Ordering::SeqCst), engine_gone);
    crate::metrics::note_report(&report);
    let status = write_report(
        out,
        settings.format,
        settings.quiet,
        super::show(settings, false, false).width,
        &inventory.engine,
        &report,
    )?;
    Ok(Applied {
        status,
        report: Some(report),
    })
}

/// `--log-file`, opened for appending, for this engine.
pub(crate) fn audit_log(
    engine: &impl Engine,
    settings: &Settings,
) -> Result<Option<AuditLog<File>>> {
    Ok(settings
        .log_file
        .as_deref()
        .map(open_audit_log)
        .transpose()?
        .map(|out| AuditLog {
            out,
            engine: engine.info().clone(),
            now: unix_now,
            error: None,
        }))
}

/// Takes the inventory, makes the plan (a saved plan: the part of it a plan
/// made now would take), measures it and, when `show`, shows it. A person
/// about to be asked sees the plan on the terminal wherever stdout goes.
async fn prepare(
    engine: &impl Engine,
    settings: &Settings,
    saved: Option<plan_file::SavedPlan>,
    show_it: bool,
    out: &mut impl Write,
) -> Result<(Inventory, Plan)> {
    // The scope in force: a saved plan's, else the flags'.
    let prune_scope = saved
        .as_ref()
        .map_or(settings.rules.prune_scope, |saved| saved.scope.prune_scope);
    let build_cache = saved
        .as_ref()
        .map_or(settings.rules.build_cache, |saved| saved.scope.build_cache);
    let (mut inventory, walked) = sizes::inventory_and_walk(
        engine,
        &settings.host,
        settings.size_cache.as_deref(),
        prune_scope,
        build_cache.is_some(),
    )
    .await?;
    super::last_uses(engine, &mut inventory, settings).await;
    let logs = saved
        .as_ref()
        .map_or(settings.rules.logs, |saved| saved.scope.logs);
    super::read_logs(settings, &mut inventory, logs.is_some());
    let plan = match saved {
        Some(saved) => plan::plan_saved(
            &inventory,
            &settings.rules,
            settings.now,
            &saved.items,
            saved.scope,
        ),
        None => make_plan(&inventory, settings)?,
    };
    let plan = sizes::measure(plan, &inventory, &walked);
    crate::metrics::note_plan(&plan);
    let show = super::show(settings, false, false);
    let on_terminal = super::show(settings, false, true);
    let asking = !settings.yes && !plan.is_empty();
    match settings.format {
        // --quiet: no plan; the summary says what was done.
        _ if settings.quiet || !show_it => {}
        Format::Human => {
            show_plan(out, Format::Human, &inventory, &plan, &show)?;
            if asking && !std::io::stdout().is_terminal() {
                show_plan(
                    &mut std::io::stderr(),
                    Format::Human,
                    &inventory,
                    &plan,
                    &on_terminal,
                )?;
            }
        }
        // stdout carries only the JSON report; a person at the prompt still sees the plan.
        Format::Json if asking => show_plan(
            &mut std::io::stderr(),
            Format::Human,
            &inventory,
            &plan,
            &on_terminal,
        )?,
        Format::Json if plan.is_empty() => show_plan(out, Format::Json, &inventory, &plan, &show)?,
        Format::Json => {}
    }
    Ok((inventory, plan))
}

/// What is measured just before deleting.
struct Before {
    data_root: Option<std::path::PathBuf>,
    free_space: Option<u64>,
    disk: Option<u64>,
}

impl Before {
    /// Only what planning measured is measured again: a data root that was not
    /// walked then (a remote engine, a directory that is not the engine's) is
    /// not walked, nor its filesystem read, now either. Walked again just
    /// before deleting, with the planned items' own directories measured
    /// afresh rather than taken from the size cache: the bytes the apply is
    /// then seen to free are the directories' own, not the cache's word,
    /// which the prediction took (safety round 2, finding 10). What stays is
    /// taken from the cache both before and after, and cancels out.
    fn measure(settings: &Settings, inventory: &Inventory, plan: &Plan) -> Before {
        let measured = plan.data_root.is_some();
        let data_root = local_data_root(&settings.host, inventory).filter(|_| measured);
        let fresh: std::collections::HashSet<String> = plan
            .measured_keys
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        Before {
            free_space: data_root.as_deref().and_then(measure::fs::free_space),
            disk: measured
                .then(|| {
                    sizes::walk_data_root(&inventory.engine, settings.size_cache.as_deref(), &fresh)
                })
                .flatten(),
            data_root,
        }
    }
}

/// Removes the plan's items, telling the progress display and the audit log.
async fn execute(
    engine: &impl Engine,
    settings: &Settings,
    plan: &Plan,
    inventory: &Inventory,
    flags: execute::StopSignals<'_>,
    audit: Option<&mut AuditLog<File>>,
) -> Vec<ItemResult> {
    let mut display = if settings.item_lines {
        progress::lines(settings.label.as_deref())
    } else {
        progress::for_stderr(settings.quiet)
    };
    let mut reporters: Vec<&mut dyn Progress> = vec![display.as_mut()];
    if let Some(audit) = audit {
        reporters.push(audit);
    }
    let mut progress = Fanout(reporters);
    progress.start(plan.items.len(), plan.total.predicted_bytes);
    let jobs = crate::cli::settings::jobs_for(settings.jobs, engine.info().image_store);
    let results = execute::apply(engine, plan, inventory, jobs, flags, &mut progress).await;
    progress.finish();
    results
}

/// One line for an engine that stopped answering, with what got done.
fn say_engine_gone(settings: &Settings, results: &[ItemResult]) {
    let count = |done: fn(&Outcome) -> bool| results.iter().filter(|r| done(&r.outcome)).count();
    note(&format!(
        "docker-reclaim: error: the engine at {} stopped answering during the apply: {} removed, {} skipped, {} failed, {} not started",
        settings.host,
        count(super::super::apply::report::Outcome::is_done),
        count(|o| matches!(o, Outcome::Skipped(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| *o == Outcome::NotStarted),
    ));
}

/// Before and after, as far as they could be measured.
struct BeforeAndAfter {
    engine_usage: Option<BeforeAfter>,
    free_space: Option<BeforeAfter>,
    data_root: Option<BeforeAfter>,
}

impl BeforeAndAfter {
    fn report(self, results: Vec<ItemResult>, interrupted: bool, engine_gone: bool) -> Report {
        Report {
            results,
            interrupted,
            engine_gone,
            engine_usage: self.engine_usage,
            free_space: self.free_space,
            data_root: self.data_root,
        }
    }
}

/// The engine's usage figures and the data root on disk, after: the walk runs
/// while the engine works out its own figures. An engine that went away is not
/// asked again.
async fn measure_after(
    engine: &impl Engine,
    inventory: &Inventory,
    plan: &Plan,
    before: Before,
    engine_gone: bool,
    size_cache: Option<&std::path::Path>,
) -> BeforeAndAfter {
    let engine_info = inventory.engine.clone();
    let walk = before.disk.is_some();
    let size_cache = size_cache.map(std::path::Path::to_path_buf);
    let walk_after = tokio::task::spawn_blocking(move || {
        walk.then(|| {
            sizes::walk_data_root(
                &engine_info,
                size_cache.as_deref(),
                &std::collections::HashSet::new(),
            )
        })
        .flatten()
    });
    // Where the data root is measured, the engine is not asked to measure:
    // the report gives the measured figures alone.
    let usage_after = if engine_gone || walk {
        None
    } else {
        engine
            .disk_usage()
            .await
            .map(|usage| {
                let after = Inventory::from_disk_usage(inventory.engine.clone(), usage);
                plan::summarize(Vec::new(), &after).total.current_bytes
            })
            .ok()
    };
    let disk_after = walk_after.await.ok().flatten();
    let pair = |before: Option<u64>, after: Option<u64>| {
        before
            .zip(after)
            .map(|(before, after)| BeforeAfter { before, after })
    };
    BeforeAndAfter {
        engine_usage: pair((!walk).then(|| plan.engine_current_bytes()), usage_after),
        free_space: pair(
            before.free_space,
            before
                .data_root
                .as_deref()
                .and_then(measure::fs::free_space),
        ),
        data_root: pair(before.disk, disk_after),
    }
}

/// The report on stdout. Nobody reading it any more (a closed pipe) does not
/// change the exit status: what was done decides it.
fn write_report(
    out: &mut impl Write,
    format: Format,
    quiet: bool,
    width: Option<usize>,
    engine: &crate::model::EngineInfo,
    report: &Report,
) -> Result<ExitStatus> {
    let written = match format {
        Format::Human if quiet => render::report_summary(out, report),
        // The notes under the table wrap to the terminal; nothing is cut.
        Format::Human => writeln!(out)
            .and_then(|()| render::wrapped(out, width, |out| render::report_human(out, report))),
        Format::Json => render::report_json(out, engine, report, unix_now()),
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(report.status()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(report.status()),
        Err(err) => Err(err).context("writing the report"),
    }
}

fn open_audit_log(path: &Path) -> Result<File> {
    Ok(files::open_append(path, 0o600, "--log-file")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EngineInfo;
    use crate::plan::{Item, Kind, Reason};

    /// stdout closed under us (`docker-reclaim --yes | head -1`).
    struct BrokenPipe;

    impl Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_broken_stdout_keeps_a_partial_failure() {
        let report = Report {
            results: vec![ItemResult {
                item: Item::new(Kind::Image, "sha256:x", "x", Reason::Dangling),
                outcome: Outcome::Failed("refused".into()),
            }],
            interrupted: false,
            engine_gone: false,
            engine_usage: None,
            free_space: None,
            data_root: None,
        };
        let engine = EngineInfo::default();
        for format in [Format::Human, Format::Json] {
            let status =
                write_report(&mut BrokenPipe, format, false, None, &engine, &report).unwrap();
            assert_eq!(status, ExitStatus::PartialFailure);
        }
    }
}
