//! docker-reclaim: safely reclaim disk space on a Docker host.
//!
//! The data flows one way: engine → inventory → plan → render. `run` parses the
//! command line, validates it into [`settings::Settings`], builds the runtime and
//! dispatches; every error comes back here to be printed once.

pub mod cli;
pub mod engine;
pub mod exit;
pub mod inventory;
pub mod man;
pub mod plan;
pub mod render;
pub mod settings;

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Cli, Format};
use crate::engine::DockerEngine;
use crate::exit::{ExitStatus, UsageError};
use crate::inventory::Inventory;
use crate::settings::Settings;

/// The whole program: parse, run, print any error once, and map it to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    match execute(cli, &mut stdout.lock()) {
        Ok(status) => status.into(),
        Err(err) if is_broken_pipe(&err) => ExitStatus::Success.into(),
        Err(err) => {
            eprintln!("docker-reclaim: error: {err:#}");
            exit::status_of(&err).into()
        }
    }
}

fn execute(cli: Cli, out: &mut impl Write) -> Result<ExitStatus> {
    let settings = Settings::from_cli(cli)?;
    if !settings.dry_run {
        return Err(UsageError(
            "this version only plans: run with --dry-run to see what would be removed (applying a plan is not available yet)".into(),
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(reclaim(&settings, out))
}

/// Inventory, plan, and show the plan.
async fn reclaim(settings: &Settings, out: &mut impl Write) -> Result<ExitStatus> {
    let engine = DockerEngine::connect(&settings.host).await?;
    let inventory = Inventory::collect(&engine).await?;
    let plan = plan::plan(&inventory);
    let now = unix_now();
    match settings.format {
        Format::Human => render::human(out, &inventory.engine, &plan, settings.dry_run, now),
        Format::Json => render::json(out, &inventory.engine, &plan, settings.dry_run, now),
    }
    .context("writing the plan")?;
    out.flush().context("writing the plan")?;
    Ok(ExitStatus::Success)
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
