//! `layers`: images' layers and what shares them.

use std::io::Write;

use std::collections::HashMap;

use anyhow::Result;

use crate::cli::args::Format;
use crate::cli::settings::Settings;
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::measure::sizes;
use crate::views::layers;
use crate::{render, unix_now};

/// Images' layers and what shares them.
pub(crate) async fn run(
    engine: &impl Engine,
    settings: &Settings,
    references: &[String],
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let (inventory, walked) = sizes::inventory_and_walk(
        engine,
        &settings.host,
        settings.size_cache.as_deref(),
        false,
        false,
    )
    .await?;
    let images = references
        .iter()
        .map(|reference| layers::resolve(&inventory, reference))
        .collect::<Result<Vec<_>, _>>()?;
    let sizes: Option<HashMap<String, u64>> = walked.get().map(|(layout, index)| {
        images
            .iter()
            .flat_map(|image| image.layers.iter())
            .map(|layer| {
                let bytes = layout.layer_bytes(index, &layer.chain_id).allocated;
                (layer.chain_id.clone(), bytes)
            })
            .collect()
    });
    // On the containerd image store an image is its blobs too: those of every
    // image, to say which are shared.
    let blobs: HashMap<String, Vec<(String, u64)>> = walked
        .get()
        .map(|(layout, index)| {
            inventory
                .images
                .iter()
                .map(|image| {
                    let blobs = layout
                        .image_blobs(index, &image.id)
                        .into_iter()
                        .map(|(digest, bytes)| (digest, bytes.allocated))
                        .collect();
                    (image.id.clone(), blobs)
                })
                .collect()
        })
        .unwrap_or_default();
    let reports: Vec<layers::ImageReport> = images
        .into_iter()
        .map(|image| layers::describe(&inventory, image, sizes.as_ref(), &blobs))
        .collect();
    match settings.format {
        Format::Human => {
            render::layers_human(out, &reports, super::show(settings, false, false).width)?;
        }
        Format::Json => render::layers_json(out, &reports, unix_now())?,
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}
