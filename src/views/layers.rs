//! Pure: an image's layers, oldest first, and who else uses each
//! (`docker-reclaim layers IMAGE…`).

use std::collections::HashMap;

use serde::Serialize;

use crate::exit::UsageError;
use crate::inventory::Inventory;
use crate::model::{Image, short_id};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LayerRow {
    pub(crate) chain_id: String,
    pub(crate) diff_id: String,
    pub(crate) size_bytes: u64,
    pub(crate) created_by: String,
    /// Other images using this layer, by tag or short ID.
    pub(crate) shared_with: Vec<String>,
    /// Containers whose image includes this layer.
    pub(crate) containers: usize,
}

/// One content blob of an image on the containerd image store: its manifest,
/// config or a compressed layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct BlobRow {
    pub(crate) digest: String,
    pub(crate) size_bytes: u64,
    /// Other images made of this blob too, by tag or short ID.
    pub(crate) shared_with: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ImageReport {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) layers: Vec<LayerRow>,
    /// On the containerd image store, its content blobs (empty elsewhere, and
    /// left out of the JSON then).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) blobs: Vec<BlobRow>,
    /// Bytes in layers no other image uses: what removing this image alone frees.
    pub(crate) unique_bytes: u64,
    /// Bytes in layers other images use too.
    pub(crate) shared_bytes: u64,
    /// Whether sizes were measured on disk.
    pub(crate) measured: bool,
}

/// Finds an image by `repo:tag` (`:latest` when no tag is given), full ID, or a
/// unique ID prefix.
pub(crate) fn resolve<'a>(
    inventory: &'a Inventory,
    reference: &str,
) -> Result<&'a Image, UsageError> {
    let listed = || inventory.images.iter().filter(|image| image.listed);
    let tagged = if reference
        .rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'))
    {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    };
    if let Some(image) = listed().find(|image| image.tags.contains(&tagged)) {
        return Ok(image);
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hex = hex.to_ascii_lowercase();
        let matches: Vec<&Image> = listed()
            .filter(|image| image.id.trim_start_matches("sha256:").starts_with(&hex))
            .collect();
        match matches.as_slice() {
            [one] => return Ok(one),
            [] => {}
            several => {
                return Err(UsageError(format!(
                    "{reference:?} matches {} images ({}); give more of the ID",
                    several.len(),
                    several
                        .iter()
                        .map(|image| short_id(&image.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Err(UsageError(format!("no such image: {reference:?}")))
}

/// The layers of `image` with what shares them; `sizes` are measured bytes by
/// chain ID, when the data root was readable. `blobs`: on the containerd image
/// store, each image's content blobs with their measured bytes, by image ID.
pub(crate) fn describe(
    inventory: &Inventory,
    image: &Image,
    sizes: Option<&HashMap<String, u64>>,
    blobs: &HashMap<String, Vec<(String, u64)>>,
) -> ImageReport {
    let mut rows = Vec::new();
    let mut unique = 0;
    let mut shared = 0;
    for layer in &image.layers {
        let others: Vec<String> = inventory
            .images
            .iter()
            .filter(|other| other.listed && other.id != image.id)
            .filter(|other| other.layers.iter().any(|l| l.chain_id == layer.chain_id))
            .map(Image::label)
            .collect();
        let containers = inventory
            .containers
            .iter()
            .filter(|container| {
                inventory
                    .image(&container.image_id)
                    .is_some_and(|used| used.layers.iter().any(|l| l.chain_id == layer.chain_id))
            })
            .count();
        let size = sizes
            .and_then(|sizes| sizes.get(&layer.chain_id).copied())
            .unwrap_or(layer.size);
        if others.is_empty() {
            unique += size;
        } else {
            shared += size;
        }
        rows.push(LayerRow {
            chain_id: layer.chain_id.clone(),
            diff_id: layer.diff_id.clone(),
            size_bytes: size,
            created_by: layer.created_by.clone(),
            shared_with: others,
            containers,
        });
    }
    let mut blob_rows = Vec::new();
    for (digest, size) in blobs.get(&image.id).into_iter().flatten() {
        let others: Vec<String> = inventory
            .images
            .iter()
            .filter(|other| other.listed && other.id != image.id)
            .filter(|other| {
                blobs
                    .get(&other.id)
                    .is_some_and(|theirs| theirs.iter().any(|(d, _)| d == digest))
            })
            .map(Image::label)
            .collect();
        if others.is_empty() {
            unique += size;
        } else {
            shared += size;
        }
        blob_rows.push(BlobRow {
            digest: digest.clone(),
            size_bytes: *size,
            shared_with: others,
        });
    }
    ImageReport {
        id: image.id.clone(),
        name: image.display_name(),
        layers: rows,
        blobs: blob_rows,
        unique_bytes: unique,
        shared_bytes: shared,
        measured: sizes.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EngineInfo, Layer};
    use crate::testing;

    fn image(id: &str, tags: &[&str], chain: &[&str]) -> Image {
        let layers = chain
            .iter()
            .map(|c| Layer {
                created_by: format!("RUN {c}"),
                ..testing::layer(c, 100)
            })
            .collect();
        Image {
            size: 0,
            ..testing::image(&format!("sha256:{id}"), tags, layers)
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            engine: EngineInfo::default(),
            containers: vec![],
            images: vec![
                image("aaaa1111", &["web:1"], &["base", "web"]),
                image("aaaa2222", &["api:latest"], &["base", "api"]),
            ],
            volumes: vec![],
            networks: vec![],
            build_cache: vec![],
            layers_size: 0,
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
        }
    }

    #[test]
    fn resolves_tags_ids_and_prefixes() {
        let inv = inventory();
        assert_eq!(resolve(&inv, "web:1").unwrap().id, "sha256:aaaa1111");
        assert_eq!(resolve(&inv, "api").unwrap().id, "sha256:aaaa2222");
        assert_eq!(resolve(&inv, "aaaa2").unwrap().id, "sha256:aaaa2222");
        assert_eq!(
            resolve(&inv, "sha256:aaaa1111").unwrap().id,
            "sha256:aaaa1111"
        );
        assert!(
            resolve(&inv, "aaaa")
                .unwrap_err()
                .0
                .contains("matches 2 images")
        );
        assert!(
            resolve(&inv, "nope:1")
                .unwrap_err()
                .0
                .contains("no such image")
        );
    }

    #[test]
    fn shared_base_and_unique_bytes() {
        let inv = inventory();
        let report = describe(&inv, resolve(&inv, "web:1").unwrap(), None, &HashMap::new());
        assert_eq!(report.layers[0].shared_with, vec!["api:latest".to_string()]);
        assert!(report.layers[1].shared_with.is_empty());
        assert_eq!((report.unique_bytes, report.shared_bytes), (100, 100));
        assert_eq!(report.layers[1].created_by, "RUN web");
        assert!(report.blobs.is_empty());
    }

    #[test]
    fn containerd_blobs_count_as_unique_or_shared() {
        let inv = inventory();
        let blobs: HashMap<String, Vec<(String, u64)>> = [
            (
                "sha256:aaaa1111".to_string(),
                vec![
                    ("sha256:m1".to_string(), 4096),
                    ("sha256:l0".to_string(), 8192),
                ],
            ),
            (
                "sha256:aaaa2222".to_string(),
                vec![
                    ("sha256:m2".to_string(), 4096),
                    ("sha256:l0".to_string(), 8192),
                ],
            ),
        ]
        .into();
        let report = describe(&inv, resolve(&inv, "web:1").unwrap(), None, &blobs);
        assert_eq!(report.blobs.len(), 2);
        assert!(report.blobs[0].shared_with.is_empty());
        assert_eq!(report.blobs[1].shared_with, vec!["api:latest".to_string()]);
        // Layers 100 + 100, then the own manifest and the shared layer blob.
        assert_eq!((report.unique_bytes, report.shared_bytes), (4196, 8292));
    }
}
