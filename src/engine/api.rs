//! The boundary: the [`Engine`] trait the rest of the program sees, the data
//! that crosses it, the API versions spoken, and the engine's refusals.

use std::collections::HashMap;

use anyhow::Result;

use super::host::Host;
use crate::model::{
    BuildCacheRecord, Container, ContainerState, EngineInfo, Image, Network, StateCounts, Volume,
};

/// The oldest API we speak: Docker 20.10.
pub(crate) const MIN_API: (u32, u32) = (1, 41);
/// The newest API we ask for. A newer engine is spoken to at this version, so that
/// responses keep the shapes we parse rather than following the daemon's default.
pub(crate) const MAX_API: (u32, u32) = (1, 53);

/// What docker-reclaim needs from an engine. All of it is plain data.
#[allow(async_fn_in_trait)]
pub(crate) trait Engine {
    /// Identity and layout of the engine, read when connecting.
    fn info(&self) -> &EngineInfo;

    /// `/system/df`: containers with writable-layer sizes, images with sizes,
    /// volumes with sizes, build cache records.
    async fn disk_usage(&self) -> Result<DiskUsage>;

    /// The engine's lists, without sizes: `/containers/json?all=1`,
    /// `/images/json` and `/volumes`, which the engine answers from its
    /// records, where `/system/df` walks every container's writable layer (on
    /// the containerd image store, asks containerd for every snapshot's
    /// usage). With them the build cache records, from API 1.42
    /// (`/system/df?type=build-cache`, no walk); before, none (only the
    /// whole `/system/df` has them). For a data root measured here, which
    /// gives the sizes. Without `containers`, the container list is left out
    /// (empty): the plan read the engine's records instead.
    async fn listing(&self, containers: bool) -> Result<DiskUsage>;

    /// `/containers/json?all=1` alone, without sizes.
    async fn containers(&self) -> Result<Vec<Container>>;

    /// How many containers the engine has in each state (`/info`).
    async fn state_counts(&self) -> Result<StateCounts>;

    /// Inspect one container; `None` when it no longer exists.
    async fn container_details(&self, id: &str) -> Result<Option<ContainerDetails>>;

    /// An image's RootFS diff IDs and history sizes; `None` when it no longer exists.
    async fn image_layers(&self, id: &str) -> Result<Option<ImageLayers>>;

    /// The images the engine lists (`/images/json`: as `/system/df`, without
    /// the untagged parents of legacy builds; with `all`, those too), without
    /// their layers.
    async fn listed_images(&self, all: bool) -> Result<Vec<Image>>;

    /// All networks.
    async fn networks(&self) -> Result<Vec<Network>>;

    /// The current state of each of `ids` that still exists (one list call).
    async fn container_states(&self, ids: &[&str]) -> Result<HashMap<String, ContainerState>>;

    /// An image's current tags; `None` when it no longer exists.
    async fn image_tags(&self, id: &str) -> Result<Option<Vec<String>>>;

    /// IDs of the containers, in any state, created from exactly this image.
    async fn containers_using_image(&self, id: &str) -> Result<Vec<String>>;

    /// Removes a container without force and without its volumes.
    async fn remove_container(&self, id: &str) -> Result<Removal>;

    /// IDs of the containers, in any state, that mount this volume.
    async fn containers_using_volume(&self, name: &str) -> Result<Vec<String>>;

    /// Removes a volume without force.
    async fn remove_volume(&self, name: &str) -> Result<Removal>;

    /// IDs of the containers, in any state, attached to this network or
    /// configured to attach to it when they start; `None` when it is gone.
    async fn containers_using_network(&self, id: &str, name: &str) -> Result<Option<Vec<String>>>;

    /// Removes a network.
    async fn remove_network(&self, id: &str) -> Result<Removal>;

    /// Prunes exactly these build cache records (a prune restricted to their IDs:
    /// the API has no other delete for build cache) and returns the IDs the
    /// engine reports deleted. Records in use are never pruned by the engine;
    /// without `even_shared`, neither are records it finds shared with an image
    /// then (nor its internal and frontend records), as `docker system prune`.
    async fn prune_build_cache(&self, ids: &[&str], even_shared: bool) -> Result<Vec<String>>;

    /// The ID of the image a tag names now; `None` when no image has it.
    async fn tag_target(&self, reference: &str) -> Result<Option<String>>;

    /// Removes one tag by its name. Meant to leave the image (it has other
    /// tags), but the engine resolves the name when the call arrives: the IDs
    /// of every image it says it deleted come back (none when the tag is gone
    /// already), so that a tag moved to another image meanwhile is found out.
    async fn untag_image(&self, reference: &str) -> Result<Vec<String>>;

    /// The container `create` and `start` events the engine still holds from
    /// `since` (Unix seconds) to this very moment: `/events` with both, which
    /// replays its in-memory log and ends (moby v20.10.24 and v26.1.5
    /// `daemon/events/events.go`: the last 256 events; both bounds
    /// inclusive, to the nanosecond, so `until` is given to the nanosecond:
    /// a whole second would leave out what happened within it).
    async fn use_events(&self, since: i64) -> Result<Vec<UseEvent>>;

    /// Removes an image by ID without force. The engine also removes the image's
    /// untagged parents that nothing else uses, as `docker rmi` does.
    async fn remove_image(&self, id: &str) -> Result<Removal>;
}

/// Container details that only an inspect call gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContainerDetails {
    pub(crate) finished_at: Option<i64>,
    /// `LogPath`: the json-file log the engine writes (empty for other drivers).
    pub(crate) log_path: String,
    /// `HostConfig.LogConfig.Type`.
    pub(crate) log_driver: String,
}

/// An image's layer chain and the sizes its history gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageLayers {
    /// RootFS diff IDs, oldest first.
    pub(crate) diff_ids: Vec<String>,
    /// History entry sizes, oldest first (the API gives newest first).
    pub(crate) history_sizes: Vec<u64>,
    /// Whether each history entry (same order) was made by BuildKit.
    pub(crate) history_buildkit: Vec<bool>,
    /// Each history entry's command (same order).
    pub(crate) history_created_by: Vec<String>,
    /// `Metadata.LastTagTime`: when it was last pulled or tagged here.
    pub(crate) last_tagged: Option<i64>,
}

/// A container event the engine still holds: a use of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UseEvent {
    /// Unix seconds.
    pub(crate) time: i64,
    /// The container's ID.
    pub(crate) container: String,
    /// The image as the container was created from it: a reference or an ID
    /// (the event's `image` attribute).
    pub(crate) image: String,
}

/// What `/system/df` reports, in either of its response shapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiskUsage {
    /// Bytes of all image layers, each counted once.
    pub(crate) layers_size: u64,
    pub(crate) containers: Vec<Container>,
    pub(crate) images: Vec<Image>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) build_cache: Vec<BuildCacheRecord>,
    /// The containers are the engine's records read from its data root
    /// (with their finish times), not its list.
    pub(crate) containers_from_records: bool,
}

/// What a delete call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Removal {
    Removed,
    /// Someone else removed it first.
    AlreadyGone,
}

/// The engine answered a request with an error status and message (a 409 for
/// a container that started, an image that gained a child, …): the one error
/// type for "the engine said no", whichever client sent the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// `GET /path` when the message should say which request; else empty.
    pub(crate) request: String,
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.request.is_empty() {
            write!(f, "the engine refused ({}): {}", self.status, self.message)
        } else {
            write!(
                f,
                "{}: the engine answered {}: {}",
                self.request, self.status, self.message
            )
        }
    }
}

impl std::error::Error for Refused {}

/// The engine took longer than `--timeout` to answer.
pub(crate) fn timed_out(host: &Host, timeout: std::time::Duration) -> anyhow::Error {
    crate::exit::EngineUnreachable(format!(
        "the Docker engine at {host} did not answer within {} (--timeout); is dockerd stopped or overloaded?",
        humantime::format_duration(timeout)
    ))
    .into()
}

/// Whether an error is the engine's answer to a request (it refused it) rather
/// than the engine not answering at all.
pub(crate) fn is_refusal(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<Refused>().is_some())
}

/// Parses an API version string like `1.41`.
pub(crate) fn parse_api_version(raw: &str) -> Option<(u32, u32)> {
    let (major, minor) = raw.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The version we speak to an engine that offers `server`: the newest both know.
/// `None` when the engine is older than [`MIN_API`].
pub(crate) fn negotiate(server: (u32, u32)) -> Option<(u32, u32)> {
    if server < MIN_API {
        None
    } else {
        Some(server.min(MAX_API))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_down_to_the_engine_and_refuses_old_ones() {
        assert_eq!(negotiate((1, 41)), Some((1, 41)));
        assert_eq!(negotiate((1, 47)), Some((1, 47)));
        assert_eq!(negotiate((1, 99)), Some(MAX_API));
        assert_eq!(negotiate((1, 40)), None);
        assert_eq!(parse_api_version("1.41"), Some((1, 41)));
        assert_eq!(parse_api_version("garbage"), None);
    }
}
