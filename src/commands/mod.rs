//! One module per mode; each takes the engine, the settings and the writer
//! for stdout, and returns the exit status. What the modes share (making the
//! plan the settings ask for, showing it) is here.

pub(crate) mod apply;
pub(crate) mod df;
pub(crate) mod dry_run;
pub(crate) mod fleet;
pub(crate) mod layers;
pub(crate) mod watch;

use std::io::Write;

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::args::{ColorChoice, Format};
use crate::cli::settings::{Mode, Settings};
use crate::engine::{DockerEngine, Host};
use crate::exit::UsageError;
use crate::inventory::Inventory;
use crate::measure;
use crate::plan::{self, Plan};
use crate::render;

/// Connects to the settings' engine. A local engine's data root is measured
/// here when it can be read, and then the engine is not asked to measure,
/// except on API 1.41 for the build cache records
/// ([`measure::sizes::whole_disk_usage_needed`]): then, and for a remote
/// engine when planning, `/system/df` is sent while connecting.
pub(crate) async fn connect(settings: &Settings) -> Result<DockerEngine> {
    let planning = !matches!(settings.mode, Mode::Apply | Mode::ApplyFile { .. });
    let local = matches!(settings.host, Host::Unix(_));
    let engine = DockerEngine::connect(
        &settings.host,
        settings.tls.as_ref(),
        settings.timeout,
        planning && !local,
    )
    .await?
    .named_by(settings.context.clone());
    let wants_build_cache =
        settings.rules.build_cache.is_some() || matches!(settings.mode, Mode::Df { .. });
    if planning
        && local
        && measure::sizes::whole_disk_usage_needed(
            crate::engine::Engine::info(&engine),
            wants_build_cache,
        )
    {
        engine.prefetch_disk_usage();
    }
    Ok(engine)
}

pub(crate) fn show_plan(
    out: &mut impl Write,
    format: Format,
    inventory: &Inventory,
    plan: &Plan,
    show: &render::Show,
) -> std::io::Result<()> {
    match format {
        Format::Human => render::plan_human(out, &inventory.engine, plan, show)?,
        Format::Json => render::plan_json(out, &inventory.engine, plan, show)?,
    }
    out.flush()
}

/// The plan the settings ask for: everything allowed, or with --target-free or
/// --max-usage only as much as the data root's filesystem needs.
pub(crate) fn make_plan(inventory: &Inventory, settings: &Settings) -> Result<Plan> {
    let Some(target) = settings.rules.target else {
        return Ok(plan::plan(inventory, &settings.rules, settings.now));
    };
    let space = local_data_root(&settings.host, inventory)
        .as_deref()
        .and_then(measure::fs::filesystem_space);
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

/// Fills in every image's last use (containers, the engine's events since
/// the last run, the state file, tag and creation times) and remembers what
/// this run saw in the state file for the next. Best effort: events the
/// engine will not give, or a state file that cannot be written, leave the
/// other sources.
pub(crate) async fn last_uses(
    engine: &impl crate::engine::Engine,
    inventory: &mut Inventory,
    settings: &Settings,
) {
    use crate::policy::{last_use, state};
    let now = crate::unix_now();
    let (mut kept, warning) = match settings.state_dir.as_deref() {
        Some(dir) => state::load(dir, &inventory.engine),
        None => (state::State::new(&inventory.engine), None),
    };
    if let Some(warning) = warning {
        crate::note(&warning);
    }
    // From a second before the last run: the engine's times are finer than
    // ours, and an event seen twice changes nothing.
    let since = kept.last_run.map_or(1, |last| last - 1).max(1);
    let events = engine.use_events(since).await.unwrap_or_default();
    last_use::annotate(inventory, &events, &kept.remembered(), now);
    kept.remember(inventory, now);
    if let Some(dir) = settings.state_dir.as_deref()
        && let Err(err) = state::save(dir, &inventory.engine, &kept)
    {
        crate::note(&format!(
            "docker-reclaim: warning: cannot write the state file in {}: {err}",
            dir.display()
        ));
    }
}

/// Reads the containers' log files into the inventory when the plan's scope
/// takes logs (`--logs`) and the engine is a local Docker whose data root is
/// readable here; otherwise says once why logs are not planned.
pub(crate) fn read_logs(settings: &Settings, inventory: &mut Inventory, wanted: bool) {
    if !wanted {
        return;
    }
    let local = local_data_root(&settings.host, inventory)
        .filter(|_| inventory.engine.product == crate::model::Product::Docker);
    match local {
        Some(root) => inventory.logs = measure::logs::scan(&root, &inventory.containers),
        None => crate::note(
            "docker-reclaim: --logs plans nothing here: container logs are only reached on a local Docker engine's data root",
        ),
    }
}

/// The data root, when the engine is local and the directory can be read here.
pub(crate) fn local_data_root(host: &Host, inventory: &Inventory) -> Option<PathBuf> {
    let root = PathBuf::from(&inventory.engine.data_root);
    (matches!(host, Host::Unix(_)) && root.is_dir()).then_some(root)
}

/// How to show a plan on stdout (or, with `on_stderr`, on stderr): fitted to
/// the terminal's width and in colour when it is a terminal.
pub(crate) fn show(settings: &Settings, dry_run: bool, on_stderr: bool) -> render::Show {
    use std::io::IsTerminal;
    let (terminal, term) = if on_stderr {
        (
            std::io::stderr().is_terminal(),
            dialoguer::console::Term::stderr(),
        )
    } else {
        (
            std::io::stdout().is_terminal(),
            dialoguer::console::Term::stdout(),
        )
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    render::Show {
        dry_run,
        verbose: settings.verbose,
        now: crate::unix_now(),
        width: if terminal {
            term.size_checked().map(|(_, columns)| usize::from(columns))
        } else {
            None
        },
        color: match settings.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        },
    }
}
