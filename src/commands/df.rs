//! `df`: where the space is, per kind, with the default plan's reclaimable figures.

use std::io::Write;

use std::collections::HashSet;

use anyhow::Result;

use super::{local_data_root, make_plan};
use crate::cli::args::Format;
use crate::cli::settings::Settings;
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::inventory::Inventory;
use crate::measure::{self, sizes};
use crate::model::Measured;
use crate::views;
use crate::{render, unix_now};

/// Where the space is, per kind, with the default plan's reclaimable figures.
pub(crate) async fn run(
    engine: &impl Engine,
    settings: &Settings,
    why: bool,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let (inventory, walked) = sizes::inventory_and_walk(
        engine,
        &settings.host,
        settings.size_cache.as_deref(),
        settings.rules.prune_scope,
        // df shows the build cache row.
        true,
    )
    .await?;
    let (plan, orphans) =
        sizes::measure_and_find_orphans(make_plan(&inventory, settings)?, &inventory, &walked);
    let data_root = plan.data_root.unwrap_or_default();
    let on_disk = walked
        .get()
        .map(|(layout, index)| on_disk(&inventory, layout, index, orphans, data_root));
    let usage = views::df::usage(&inventory, &plan, on_disk.as_ref());
    let now = unix_now();
    let sources = why.then(|| {
        let root = local_data_root(&settings.host, &inventory);
        let configs = root
            .as_deref()
            .map(|root| {
                inventory
                    .containers
                    .iter()
                    .filter_map(|c| Some((c.id.clone(), measure::logs::log_config(root, &c.id)?)))
                    .collect()
            })
            .unwrap_or_default();
        let log_bytes = on_disk
            .as_ref()
            .map(|on_disk| on_disk.logs.clone())
            .unwrap_or_default();
        views::sources::sources(
            &inventory,
            &plan,
            &views::sources::LogFacts {
                bytes: &log_bytes,
                configs: &configs,
            },
            now,
        )
    });
    let free = local_data_root(&settings.host, &inventory)
        .as_deref()
        .and_then(measure::fs::free_space);
    match settings.format {
        // The notes under the tables wrap to the terminal; nothing is cut.
        Format::Human => {
            let width = super::show(settings, false, false).width;
            render::wrapped(out, width, |out| {
                let verbose = settings.verbose;
                render::df_human(out, &inventory.engine, &usage, free, verbose, width, now)?;
                if let Some(sources) = &sources {
                    render::sources_human(out, sources, width, now)?;
                }
                Ok(())
            })?;
        }
        Format::Json => {
            render::df_json(out, &inventory.engine, &usage, free, sources.as_ref(), now)?;
        }
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// What the walk found, per item and as the data root's breakdown.
fn on_disk(
    inventory: &Inventory,
    layout: &measure::Layout,
    index: &measure::Index,
    orphans: Vec<measure::Orphan>,
    data_root: Measured,
) -> views::df::OnDisk {
    let container_ids: Vec<String> = inventory.containers.iter().map(|c| c.id.clone()).collect();
    let volume_names: Vec<String> = inventory.volumes.iter().map(|v| v.name.clone()).collect();
    let chains: HashSet<&str> = inventory
        .images
        .iter()
        .flat_map(|image| image.layers.iter().map(|layer| layer.chain_id.as_str()))
        .collect();
    let per_container = |bytes: &dyn Fn(&str) -> u64| {
        inventory
            .containers
            .iter()
            .map(|c| (c.id.clone(), bytes(&c.id)))
            .collect()
    };
    views::df::OnDisk {
        containers: per_container(&|id| layout.container_bytes(index, id).allocated),
        container_dirs: per_container(&|id| index.owned_key(&format!("containers/{id}")).allocated),
        logs: per_container(&|id| layout.log_bytes(id).allocated),
        layers: chains
            .into_iter()
            .map(|chain| {
                (
                    chain.to_string(),
                    layout.layer_bytes(index, chain).allocated,
                )
            })
            .collect(),
        breakdown: layout.breakdown(
            index,
            &measure::breakdown::Items {
                containers: &container_ids,
                images: &inventory.images,
                volumes: &volume_names,
                orphans: &orphans,
            },
        ),
        orphans,
        data_root,
    }
}
