//! A fleet run (`-H`/`--context` more than once, `--all-contexts`): every
//! engine is planned at the same time (at most [`AT_ONCE`] at once), shown in
//! a section of its own, then one line per engine with the grand totals. An
//! apply asks once for all of them, then applies on each engine on its own,
//! exactly as a single run would apply a saved plan: under its lock, every
//! item re-checked, the shown plan an upper bound. An engine that cannot be
//! reached is said once, in its section and in the totals, and the others go
//! on. The exit status is the most severe of the engines'
//! ([`views::fleet::exit_status`]).

use std::io::{IsTerminal, Write};

use anyhow::Result;
use futures_util::StreamExt;

use crate::apply::prompt::confirm;
use crate::cli::args::Format;
use crate::cli::settings::{Mode, Settings};
use crate::engine::context::Endpoint;
use crate::engine::{DockerEngine, Engine};
use crate::exit::{ExitStatus, Stop};
use crate::inventory::Inventory;
use crate::plan::Plan;
use crate::plan::file::SavedPlan;
use crate::render;
use crate::signals::{Interrupt, Signals};
use crate::views::fleet::{EngineRow, State, exit_status};

/// Engines planned (or applied on) at once: enough for the tens of hosts an
/// operator reaches with `docker --context`, few enough that the walks of
/// local data roots and the ssh sessions do not crowd each other.
pub(crate) const AT_ONCE: usize = 8;

/// An engine that answered, with its plan.
struct Reached {
    engine: DockerEngine,
    inventory: Inventory,
    plan: Plan,
}

/// One engine of the fleet: its settings (the fleet's, with its endpoint)
/// and where it got to.
struct Member {
    settings: Settings,
    row: EngineRow,
    reached: Option<Reached>,
}

/// Plans every engine; shows the plans; with an apply, asks once, applies
/// on each and reports.
pub(crate) async fn run(
    settings: &Settings,
    signals: &Signals,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let applying = matches!(settings.mode, Mode::Apply);
    if applying {
        confirm::require_terminal(settings.yes)?;
    }
    // Each engine's planning is a task of its own: on the fleet's
    // multi-threaded runtime their parsing, planning and measuring run on
    // every core, not one after another.
    let planning = futures_util::stream::iter(
        settings
            .fleet
            .iter()
            .map(|endpoint| tokio::spawn(plan_one(for_engine(settings, endpoint)))),
    )
    .buffered(AT_ONCE)
    .map(|joined| joined.map_err(|err| anyhow::anyhow!("planning an engine: {err}")))
    .collect::<Vec<Result<Member>>>();
    let mut members = tokio::select! {
        biased;
        members = planning => members.into_iter().collect::<Result<Vec<Member>>>()?,
        interrupt = signals.aborted() => return Err(stopped(interrupt)),
    };
    let show = super::show(settings, !applying, false);
    if !applying {
        let rows: Vec<EngineRow> = members.iter().map(|m| m.row.clone()).collect();
        let status = exit_status(rows.iter().map(|row| status_of(row.exit_code)));
        match settings.format {
            Format::Human => {
                plans_human(out, &members, &show)?;
                render::fleet_human(out, &rows, false, show.width)?;
            }
            Format::Json => {
                let documents = members.iter().map(|m| plan_document(m, &show)).collect();
                render::fleet_json(out, &rows, documents, false, status.code(), show.now)?;
            }
        }
        out.flush()?;
        return Ok(status);
    }
    show_before_asking(settings, &members, out)?;
    let planned: Vec<&Reached> = members
        .iter()
        .filter_map(|m| m.reached.as_ref())
        .filter(|reached| !reached.plan.is_empty())
        .collect();
    if !planned.is_empty() {
        confirm::confirm_fleet(
            planned.iter().map(|r| r.plan.items.len()).sum(),
            planned.len(),
            planned.iter().map(|r| r.plan.total.predicted_bytes).sum(),
            settings.yes,
        )?;
    }
    let reports = futures_util::stream::iter(members.iter().map(|m| apply_one(m, signals)))
        .buffered(AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut documents = Vec::new();
    let mut texts = Vec::new();
    for (member, (outcome, text)) in members.iter_mut().zip(reports) {
        if let Some(outcome) = outcome {
            outcome.update(&mut member.row);
        }
        documents.push(serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null));
        texts.push(text);
    }
    let rows: Vec<EngineRow> = members.iter().map(|m| m.row.clone()).collect();
    let status = exit_status(rows.iter().map(|row| status_of(row.exit_code)));
    match settings.format {
        Format::Human => {
            for (member, text) in members.iter().zip(&texts) {
                render::fleet_heading(out, &member.row)?;
                match member.row.state {
                    State::Applied => out.write_all(text)?,
                    State::Planned => writeln!(out, "Nothing to remove.")?,
                    State::NotReached | State::Failed => render::fleet_problem(out, &member.row)?,
                }
                writeln!(out)?;
            }
            render::fleet_human(out, &rows, true, show.width)?;
        }
        Format::Json => {
            render::fleet_json(out, &rows, documents, true, status.code(), show.now)?;
        }
    }
    out.flush()?;
    Ok(status)
}

/// The fleet's settings for one of its engines.
fn for_engine(settings: &Settings, endpoint: &Endpoint) -> Settings {
    let mut one = settings.clone();
    one.host = endpoint.host.clone();
    one.tls = endpoint.tls.clone();
    one.context = endpoint.context.clone();
    one.fleet = Vec::new();
    one.label = Some(name_of(endpoint));
    one
}

/// An engine's name in the fleet: its context's, or its host as given.
fn name_of(endpoint: &Endpoint) -> String {
    endpoint
        .context
        .clone()
        .unwrap_or_else(|| endpoint.host.to_string())
}

/// Connects to one engine and makes its plan; what went wrong is kept in its
/// row, for its section and the totals.
async fn plan_one(settings: Settings) -> Member {
    let mut row = EngineRow {
        name: settings.label.clone().unwrap_or_default(),
        host: settings.host.to_string(),
        engine: None,
        state: State::Planned,
        items: 0,
        failed: 0,
        bytes: 0,
        exit_code: 0,
        error: None,
    };
    let reached = async {
        let engine = super::connect(&settings).await?;
        let (inventory, plan) = super::dry_run::planned(&engine, &settings).await?;
        anyhow::Ok(Reached {
            engine,
            inventory,
            plan,
        })
    }
    .await;
    let reached = match reached {
        Ok(reached) => {
            let info = reached.engine.info();
            row.engine = Some(format!(
                "{} {} (API {})",
                info.product.name(),
                info.version,
                info.api_version
            ));
            row.items = reached.plan.items.len();
            row.bytes = reached.plan.total.predicted_bytes;
            Some(reached)
        }
        Err(err) => {
            failed(&mut row, &err);
            None
        }
    };
    Member {
        settings,
        row,
        reached,
    }
}

/// Marks `row` as not reached (exit 3) or failed, with why in one line.
fn failed(row: &mut EngineRow, err: &anyhow::Error) {
    let status = crate::exit::status_of(err);
    row.state = if status == ExitStatus::EngineUnreachable {
        State::NotReached
    } else {
        State::Failed
    };
    row.exit_code = status.code();
    row.error = Some(format!("{err:#}").replace('\n', " "));
}

/// What one engine's apply did, to be put in its row.
enum Outcome {
    Applied(super::apply::Applied),
    Failed(anyhow::Error),
}

impl Outcome {
    fn update(self, row: &mut EngineRow) {
        match self {
            Outcome::Applied(applied) => {
                row.exit_code = applied.status.code();
                if let Some(report) = applied.report {
                    let total = report.total();
                    row.state = State::Applied;
                    row.items = total.removed;
                    row.failed = total.failed;
                    row.bytes = total.predicted_bytes;
                } else {
                    // Nothing of the shown plan was still to be taken.
                    row.items = 0;
                    row.bytes = 0;
                }
            }
            Outcome::Failed(err) => {
                row.items = 0;
                row.bytes = 0;
                failed(row, &err);
            }
        }
    }
}

/// Applies the plan shown for one engine there, as `apply FILE` would a
/// saved plan (agreed to already, so with `--yes`; not shown again); its
/// report goes into the returned buffer. Nothing to do: no outcome.
async fn apply_one(member: &Member, signals: &Signals) -> (Option<Outcome>, Vec<u8>) {
    let mut text = Vec::new();
    let Some(reached) = member.reached.as_ref().filter(|r| !r.plan.is_empty()) else {
        return (None, text);
    };
    let mut settings = member.settings.clone();
    settings.yes = true;
    settings.item_lines = true;
    let saved = SavedPlan {
        items: reached.plan.items.clone(),
        scope: settings.rules.scope(),
    };
    let applied = async {
        let audit = super::apply::audit_log(&reached.engine, &settings)?;
        super::apply::carry_out(
            &reached.engine,
            &settings,
            signals,
            Some(saved),
            audit,
            false,
            &mut text,
        )
        .await
    }
    .await;
    let outcome = match applied {
        Ok(applied) => Outcome::Applied(applied),
        Err(err) => Outcome::Failed(err),
    };
    (Some(outcome), text)
}

/// Each engine's section: its plan as its own dry run shows it, or why there
/// is none.
fn plans_human(out: &mut impl Write, members: &[Member], show: &render::Show) -> Result<()> {
    for member in members {
        render::fleet_heading(out, &member.row)?;
        match &member.reached {
            Some(reached) => {
                let mut text = Vec::new();
                super::show_plan(
                    &mut text,
                    Format::Human,
                    &reached.inventory,
                    &reached.plan,
                    show,
                )?;
                out.write_all(&text)?;
            }
            None => render::fleet_problem(out, &member.row)?,
        }
        writeln!(out)?;
    }
    Ok(())
}

/// One engine's plan as its own `--dry-run --format json` gives it (null
/// when it was not reached).
fn plan_document(member: &Member, show: &render::Show) -> serde_json::Value {
    let Some(reached) = &member.reached else {
        return serde_json::Value::Null;
    };
    let mut text = Vec::new();
    match super::show_plan(
        &mut text,
        Format::Json,
        &reached.inventory,
        &reached.plan,
        show,
    ) {
        Ok(()) => serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null),
        Err(_) => serde_json::Value::Null,
    }
}

/// Before the one question (or, with `--yes`, before applying): the plans
/// and the totals on stdout for people, and on the terminal (stderr) when
/// stdout is not one or carries JSON and someone is asked.
fn show_before_asking(settings: &Settings, members: &[Member], out: &mut impl Write) -> Result<()> {
    let asking = !settings.yes;
    let rows: Vec<EngineRow> = members.iter().map(|m| m.row.clone()).collect();
    let show = super::show(settings, false, false);
    if settings.format == Format::Human {
        plans_human(out, members, &show)?;
        render::fleet_human(out, &rows, false, show.width)?;
        writeln!(out)?;
        out.flush()?;
    }
    if asking && (settings.format == Format::Json || !std::io::stdout().is_terminal()) {
        let on_terminal = super::show(settings, false, true);
        let mut stderr = std::io::stderr();
        plans_human(&mut stderr, members, &on_terminal)?;
        render::fleet_human(&mut stderr, &rows, false, on_terminal.width)?;
        writeln!(stderr)?;
    }
    Ok(())
}

/// The exit status a code stands for.
fn status_of(code: u8) -> ExitStatus {
    ExitStatus::ALL
        .into_iter()
        .find(|status| status.code() == code)
        .unwrap_or(ExitStatus::Failure)
}

/// The error for a signal before any deletion started.
fn stopped(interrupt: Interrupt) -> anyhow::Error {
    match interrupt {
        Interrupt::HungUp => Stop::new(
            ExitStatus::Aborted,
            "the terminal went away: nothing was removed",
        ),
        Interrupt::Interrupted => {
            Stop::new(ExitStatus::Interrupted, "interrupted: nothing was removed")
        }
    }
    .into()
}
