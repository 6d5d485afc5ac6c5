//! `--dry-run`: inventory, plan, show; optionally save the plan.

use std::io::Write;

use std::path::Path;

use anyhow::{Context, Result};

use super::{make_plan, show_plan};
use crate::cli::settings::Settings;
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::inventory::Inventory;
use crate::measure::sizes;
use crate::plan::Plan;
use crate::plan::file as plan_file;
use crate::{note, render};

/// Inventory, plan, show; optionally save the plan.
pub(crate) async fn run(
    engine: &impl Engine,
    settings: &Settings,
    plan_out: Option<&Path>,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let (inventory, plan) = planned(engine, settings).await?;
    crate::metrics::note_plan(&plan);
    let show = super::show(settings, true, false);
    if settings.quiet {
        render::quiet_ids(out, &plan)
            .and_then(|()| out.flush())
            .context("writing the plan")?;
    } else {
        show_plan(out, settings.format, &inventory, &plan, &show).context("writing the plan")?;
    }
    if let Some(path) = plan_out {
        plan_file::write(path, &inventory.engine, &plan, show.now).await?;
        note(&format!(
            "Plan saved to {}; apply it with: docker-reclaim apply {}",
            path.display(),
            path.display()
        ));
    }
    Ok(ExitStatus::Success)
}

/// The inventory and the plan the settings ask for, measured where the data
/// root can be read.
pub(crate) async fn planned(
    engine: &impl Engine,
    settings: &Settings,
) -> Result<(Inventory, Plan)> {
    let (mut inventory, walked) = sizes::inventory_and_walk(
        engine,
        &settings.host,
        settings.size_cache.as_deref(),
        settings.rules.prune_scope,
        settings.rules.build_cache.is_some(),
    )
    .await?;
    super::last_uses(engine, &mut inventory, settings).await;
    super::read_logs(settings, &mut inventory, settings.rules.logs.is_some());
    let plan = sizes::measure(make_plan(&inventory, settings)?, &inventory, &walked);
    Ok((inventory, plan))
}
