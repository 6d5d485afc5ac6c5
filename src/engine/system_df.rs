//! Parses `GET /system/df` in both of its response shapes: the legacy one
//! (API < 1.52: `LayersSize`, `Images`, `Containers`, `Volumes`, `BuildCache`)
//! and the 1.52 one (`ImageUsage`, `ContainerUsage`, `VolumeUsage`,
//! `BuildCacheUsage`, each with `TotalSize` and, when asked with `verbose=1`,
//! `Items`). bollard 0.21 parses only the second, so an API 1.41 engine would
//! read as empty.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::api::DiskUsage;
use crate::model::{
    BuildCacheRecord, Container, ContainerState, Image, Mount, StateCounts, Volume,
};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Raw {
    layers_size: Option<i64>,
    images: Option<Vec<RawImage>>,
    containers: Option<Vec<RawContainer>>,
    volumes: Option<Vec<RawVolume>>,
    build_cache: Option<Vec<RawBuildCache>>,
    image_usage: Option<RawUsage<RawImage>>,
    container_usage: Option<RawUsage<RawContainer>>,
    volume_usage: Option<RawUsage<RawVolume>>,
    build_cache_usage: Option<RawUsage<RawBuildCache>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawUsage<T> {
    #[serde(default)]
    total_size: Option<i64>,
    #[serde(default = "Option::default")]
    items: Option<Vec<T>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawImage {
    id: String,
    parent_id: Option<String>,
    repo_tags: Option<Vec<String>>,
    repo_digests: Option<Vec<String>>,
    created: i64,
    size: i64,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawContainer {
    id: String,
    names: Option<Vec<String>>,
    image: String,
    #[serde(rename = "ImageID")]
    image_id: String,
    created: i64,
    size_rw: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    state: String,
    command: String,
    mounts: Option<Vec<RawMount>>,
    network_settings: Option<RawNetworkSettings>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawNetworkSettings {
    networks: Option<BTreeMap<String, RawEndpoint>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEndpoint {
    #[serde(rename = "NetworkID")]
    network_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawMount {
    #[serde(rename = "Type")]
    kind: String,
    name: Option<String>,
    destination: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawVolume {
    name: String,
    driver: String,
    created_at: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    usage_data: Option<RawVolumeUsage>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawVolumeUsage {
    size: i64,
    ref_count: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawBuildCache {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Type")]
    kind: String,
    description: String,
    in_use: bool,
    shared: bool,
    size: i64,
    parent: Option<String>,
    parents: Option<Vec<String>>,
    created_at: Option<String>,
    last_used_at: Option<String>,
    #[serde(default)]
    usage_count: i64,
}

/// An image ID as Docker gives it, `sha256:<hex>`: Podman's `/system/df`
/// gives the bare hex (and its container list too), which would not match.
pub(super) fn image_id(raw: &str) -> String {
    let is_hex = raw.len() == 64 && raw.bytes().all(|byte| byte.is_ascii_hexdigit());
    if is_hex {
        format!("sha256:{raw}")
    } else {
        raw.to_string()
    }
}

/// A real tag, not the engine's way of saying "untagged" (`<none>:<none>`,
/// and Podman's `<none>`).
pub(super) fn is_tag(tag: &str) -> bool {
    tag != crate::model::UNTAGGED && tag != "<none>"
}

/// Negative sizes mean "not computed" in the engine's API.
fn bytes(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

/// Parses a `/system/df` response body of either shape.
pub(crate) fn parse_disk_usage(body: &[u8]) -> Result<DiskUsage> {
    let raw: Raw = serde_json::from_slice(body)
        .context("the engine's /system/df answer is not the JSON we expect")?;

    // The 1.52 shape keeps each list under `<Kind>Usage.Items`, and the layer total
    // under `ImageUsage.TotalSize`.
    let layers_size = raw
        .layers_size
        .or_else(|| raw.image_usage.as_ref().and_then(|usage| usage.total_size));
    let images = either(raw.images, raw.image_usage);
    let containers = either(raw.containers, raw.container_usage);
    let volumes = either(raw.volumes, raw.volume_usage);
    let build_cache = either(raw.build_cache, raw.build_cache_usage);

    Ok(DiskUsage {
        layers_size: bytes(layers_size.unwrap_or(0)),
        images: images.into_iter().map(image).collect(),
        containers: containers.into_iter().map(container).collect(),
        volumes: volumes.into_iter().map(volume).collect(),
        build_cache: build_cache.into_iter().map(build_cache_record).collect(),
        containers_from_records: false,
    })
}

/// The answers to `/containers/json?all=1`, `/images/json` and `/volumes`
/// as a [`DiskUsage`] without sizes: no writable-layer sizes, no volume usage,
/// no layer total, no build cache.
pub(crate) fn parse_listing(
    containers: Option<&[u8]>,
    images: &[u8],
    volumes: &[u8],
) -> Result<DiskUsage> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Volumes {
        volumes: Option<Vec<RawVolume>>,
    }
    let containers = containers.map(parse_containers).transpose()?;
    let images: Vec<RawImage> = serde_json::from_slice(images)
        .context("the engine's image list is not the JSON we expect")?;
    let volumes: Volumes = serde_json::from_slice(volumes)
        .context("the engine's volume list is not the JSON we expect")?;
    Ok(DiskUsage {
        layers_size: 0,
        images: images.into_iter().map(image).collect(),
        containers: containers.unwrap_or_default(),
        volumes: volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(volume)
            .collect(),
        build_cache: Vec::new(),
        containers_from_records: false,
    })
}

/// `/containers/json`, without sizes.
pub(crate) fn parse_containers(body: &[u8]) -> Result<Vec<Container>> {
    let containers: Vec<RawContainer> = serde_json::from_slice(body)
        .context("the engine's container list is not the JSON we expect")?;
    Ok(containers.into_iter().map(container).collect())
}

/// The containers per state from `/info`.
pub(crate) fn parse_state_counts(body: &[u8]) -> Result<StateCounts> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Counts {
        containers_running: u64,
        containers_paused: u64,
        containers_stopped: u64,
    }
    let counts: Counts = serde_json::from_slice(body)
        .context("the engine's /info has no container counts we can read")?;
    Ok(StateCounts {
        running: counts.containers_running,
        paused: counts.containers_paused,
        stopped: counts.containers_stopped,
    })
}

/// The legacy list when the engine sent one, else the 1.52 items.
fn either<T>(legacy: Option<Vec<T>>, usage: Option<RawUsage<T>>) -> Vec<T> {
    legacy
        .or_else(|| usage.and_then(|usage| usage.items))
        .unwrap_or_default()
}

fn image(raw: RawImage) -> Image {
    Image {
        id: image_id(&raw.id),
        parent_id: raw
            .parent_id
            .filter(|parent| !parent.is_empty())
            .map(|parent| image_id(&parent)),
        tags: raw
            .repo_tags
            .unwrap_or_default()
            .into_iter()
            .filter(|tag| is_tag(tag))
            .collect(),
        digests: raw
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .filter(|digest| digest != "<none>@<none>")
            .collect(),
        created: raw.created,
        size: bytes(raw.size),
        labels: raw.labels.unwrap_or_default(),
        layers: Vec::new(),
        layer_sizes_exact: false,
        listed: true,
        last_tagged: None,
        last_use: None,
    }
}

fn container(raw: RawContainer) -> Container {
    Container {
        id: raw.id,
        names: raw
            .names
            .unwrap_or_default()
            .into_iter()
            .map(|name| name.trim_start_matches('/').to_string())
            .collect(),
        image_id: image_id(&raw.image_id),
        image: raw.image,
        command: raw.command,
        state: ContainerState::parse(&raw.state),
        created: raw.created,
        finished_at: None,
        size_rw: bytes(raw.size_rw.unwrap_or(0)),
        mounts: raw
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|mount| Mount {
                kind: mount.kind,
                name: mount.name.filter(|name| !name.is_empty()),
                destination: mount.destination,
            })
            .collect(),
        labels: raw.labels.unwrap_or_default(),
        networks: raw
            .network_settings
            .and_then(|settings| settings.networks)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(name, endpoint)| {
                std::iter::once(name).chain(endpoint.network_id.filter(|id| !id.is_empty()))
            })
            .collect(),
    }
}

fn volume(raw: RawVolume) -> Volume {
    let usage = raw.usage_data;
    Volume {
        name: raw.name,
        driver: raw.driver,
        created: raw
            .created_at
            .as_deref()
            .and_then(crate::model::unix_seconds),
        labels: raw.labels.unwrap_or_default(),
        size: usage
            .as_ref()
            .and_then(|usage| u64::try_from(usage.size).ok()),
        ref_count: usage.and_then(|usage| u64::try_from(usage.ref_count).ok()),
    }
}

fn build_cache_record(raw: RawBuildCache) -> BuildCacheRecord {
    let mut parents = raw.parents.unwrap_or_default();
    if let Some(parent) = raw.parent.filter(|parent| !parent.is_empty())
        && !parents.contains(&parent)
    {
        parents.push(parent);
    }
    BuildCacheRecord {
        id: raw.id,
        kind: raw.kind,
        description: raw.description,
        in_use: raw.in_use,
        shared: raw.shared,
        size: bytes(raw.size),
        parents,
        created: raw
            .created_at
            .as_deref()
            .and_then(crate::model::unix_seconds),
        last_used: raw
            .last_used_at
            .as_deref()
            .and_then(crate::model::unix_seconds),
        usage_count: u64::try_from(raw.usage_count).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &[u8] = include_bytes!("../../tests/data/system_df_v1.41.json");
    const V152: &[u8] = include_bytes!("../../tests/data/system_df_v1.52.json");

    #[test]
    fn parses_the_legacy_shape() {
        let usage = parse_disk_usage(LEGACY).unwrap();
        assert_eq!(usage.layers_size, 7_287_746);
        assert_eq!(usage.images.len(), 3);
        let dangling = usage
            .images
            .iter()
            .find(|image| image.tags.is_empty())
            .unwrap();
        assert!(dangling.is_dangling());
        assert_eq!(usage.containers.len(), 2);
        let stopped = &usage.containers[0];
        assert_eq!(stopped.state, ContainerState::Exited);
        assert_eq!(stopped.names, vec!["stopped-one".to_string()]);
        assert_eq!(stopped.size_rw, 1_048_576);
        assert_eq!(stopped.mounts[0].name.as_deref(), Some("data"));
        assert_eq!(usage.volumes[0].size, Some(4096));
        assert_eq!(usage.volumes[0].ref_count, Some(1));
        assert_eq!(usage.build_cache.len(), 1);
        assert_eq!(usage.build_cache[0].size, 12_345);
        assert!(!usage.build_cache[0].in_use);
    }

    #[test]
    fn parses_the_1_52_shape() {
        let usage = parse_disk_usage(V152).unwrap();
        assert_eq!(usage.layers_size, 7_287_746);
        assert_eq!(usage.images.len(), 2);
        assert_eq!(usage.containers.len(), 1);
        assert_eq!(usage.containers[0].state, ContainerState::Running);
        assert_eq!(usage.volumes.len(), 1);
        assert_eq!(usage.volumes[0].size, Some(8192));
        assert_eq!(usage.build_cache.len(), 1);
        assert!(usage.build_cache[0].in_use);
    }

    #[test]
    fn null_lists_and_unknown_sizes_are_empty_not_errors() {
        let usage = parse_disk_usage(
            br#"{"LayersSize":0,"Images":null,"Containers":[],"Volumes":[{"Name":"v","Driver":"local","UsageData":{"Size":-1,"RefCount":-1}}],"BuildCache":null}"#,
        )
        .unwrap();
        assert!(usage.images.is_empty());
        assert_eq!(usage.volumes[0].size, None);
        assert_eq!(usage.volumes[0].ref_count, None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_disk_usage(b"<html>").is_err());
    }
}
