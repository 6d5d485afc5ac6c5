//! [`Engine`] over bollard, pinned to one negotiated API version.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bollard::errors::Error as BollardError;
use bollard::models::{SystemInfo, SystemVersion};
use bollard::query_parameters::{
    ListContainersOptions, RemoveContainerOptions, RemoveImageOptions,
};
use bollard::{BollardRequest, ClientVersion, Docker};
use hyper_util::rt::TokioExecutor;

use super::api::{ContainerDetails, DiskUsage, ImageLayers, UseEvent};
use super::api::{Engine, MIN_API, Refused, Removal, negotiate, parse_api_version, timed_out};
use super::host::Host;
use super::raw::RawClient;
use super::system_df::{parse_containers, parse_disk_usage, parse_listing, parse_state_counts};
use super::transport::{self, Connector, Tls};
use crate::exit::EngineUnreachable;
use crate::model::{
    Container, ContainerState, EngineInfo, Image, ImageStore, Network, Product, StateCounts,
    unix_seconds,
};

/// How long to wait for someone else's `/system/df` to finish, and how often to ask.
const DF_BUSY_PATIENCE: Duration = Duration::from_secs(300);
const DF_BUSY_RETRY: Duration = Duration::from_millis(250);

fn is_df_busy(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Refused>().is_some_and(|answer| {
        answer
            .message
            .contains("a disk usage operation is already running")
    })
}

/// How often a `/system/df` that failed inside the engine (500) is asked again.
const DF_FAILED_TRIES: u32 = 3;

/// A 500 from `/system/df`: the engine's own walk tripped over something that
/// changed under it (a container or snapshot removed while it measured, seen
/// under create/remove churn on the containerd image store). Asked again.
fn is_df_failure(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Refused>()
        .is_some_and(|answer| answer.status == 500)
}

pub(crate) struct DockerEngine {
    docker: Docker,
    host: Host,
    /// How long one request may take (`--timeout`).
    timeout: Duration,
    raw: RawClient,
    /// `/v1.41`, say: put in front of every request path.
    prefix: String,
    info: EngineInfo,
    /// The `/system/df` sent while connecting, until the inventory takes it.
    early_df: std::sync::Mutex<Option<EarlyDf>>,
}

/// `/system/df` with the item lists (`verbose=1` asks a 1.52+ engine for them;
/// older ones ignore it).
const DF_PATH: &str = "/system/df?verbose=1";

/// A request under way that is given up when nobody waits for it any more.
struct EarlyDf(tokio::task::JoinHandle<Result<bytes::Bytes>>);

impl Drop for EarlyDf {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DockerEngine {
    /// Connects, negotiates the API version with `/version`, and reads `/info`.
    /// Failing to reach the engine, being denied, or an engine older than API
    /// 1.41 is an [`EngineUnreachable`] error naming the host.
    ///
    /// With `prefetch_df`, `/system/df` is sent at the same time, for the
    /// inventory that follows (see [`Engine::disk_usage`]); not for a run that
    /// may stop before it needs one (an apply checks its terminal, plan file
    /// and lock first), so that the engine does not size everything for nothing.
    pub(crate) async fn connect(
        host: &Host,
        tls: Option<&Tls>,
        timeout: Duration,
        prefetch_df: bool,
    ) -> Result<DockerEngine> {
        let floor = ClientVersion {
            major_version: MIN_API.0 as usize,
            minor_version: MIN_API.1 as usize,
        };
        // bollard counts whole seconds; a limit under one second is one second.
        let seconds = timeout.as_secs().max(1);
        // Bad TLS material is the user's to fix: a usage error, before any dial.
        let connector = Connector::new(host, tls)?;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(connector.clone());
        let base = Docker::connect_with_custom_transport(
            move |request: BollardRequest| {
                let client = client.clone();
                async move { client.request(request).await.map_err(BollardError::from) }
            },
            Some(transport::AUTHORITY),
            seconds,
            &floor,
        )
        .map_err(|err| unreachable(host, timeout, &err, &connector))?;

        // bollard 0.21 drops the `/v1.xx` part of every path (its URL join replaces
        // it), so negotiate_version() would change nothing on the wire. Ask the
        // engine ourselves and pin the prefix with a request modifier.
        // /info goes unversioned, at the same time as /version (which takes the
        // engine a few milliseconds: it asks containerd and runs runc for their
        // versions): an unversioned request is answered at the engine's own API
        // version, which every engine serves. A fixed old version would not be:
        // Docker 29 refuses requests below API 1.44 by default (moby
        // docker-v29.0.0 `daemon/config/config.go` `defaultMinAPIVersion`).
        // /system/df, the engine's longest answer, starts now too, unversioned
        // for the same reason; `disk_usage` takes it (see there).
        let raw = RawClient::new(connector.clone(), host, timeout);
        let early_df = prefetch_df.then(|| {
            let early = raw.clone();
            EarlyDf(tokio::spawn(async move { early.get(DF_PATH).await }))
        });
        let (version, info) = tokio::join!(base.version(), base.info());
        let version = version.map_err(|err| unreachable(host, timeout, &err, &connector))?;
        let (major, minor) = api_version(host, &version)?;
        let prefix = format!("/v{major}.{minor}");
        let pinned = prefix.clone();
        let docker = base.with_request_modifier(move |request| pin_version(request, &pinned));
        let info = info
            .map_err(|err| unreachable(host, timeout, &err, &connector))
            .context("reading engine info (/info)")?;
        Ok(DockerEngine {
            docker,
            host: host.clone(),
            timeout,
            raw,
            early_df: std::sync::Mutex::new(early_df),
            prefix,
            info: engine_info(host, &version, info, (major, minor)),
        })
    }
}

/// The API version both sides speak, from what the engine offers.
fn api_version(host: &Host, version: &SystemVersion) -> Result<(u32, u32)> {
    let offered = version.api_version.as_deref().unwrap_or("");
    let server = parse_api_version(offered).ok_or_else(|| {
        EngineUnreachable(format!(
            "the engine at {host} reports an API version docker-reclaim cannot read: {offered:?}"
        ))
    })?;
    Ok(negotiate(server).ok_or_else(|| {
        EngineUnreachable(format!(
            "the engine at {host} speaks Docker API {offered}; docker-reclaim needs {}.{} or newer (Docker 20.10+): upgrade the engine",
            MIN_API.0, MIN_API.1
        ))
    })?)
}

/// What the engine is, from `/version` and `/info`.
fn engine_info(
    host: &Host,
    version: &SystemVersion,
    info: SystemInfo,
    (major, minor): (u32, u32),
) -> EngineInfo {
    // Podman's compatible API names itself among the components; its
    // top-level version is the Docker API's it mimics.
    let podman = version
        .components
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|component| component.name == "Podman Engine");
    let (product, product_version) = match podman {
        Some(component) => (Product::Podman, Some(component.version.clone())),
        None => (Product::Docker, version.version.clone()),
    };
    let status = info.driver_status.unwrap_or_default();
    let status_of = |key: &str| {
        status
            .iter()
            .find(|pair| pair.first().is_some_and(|first| first == key))
            .and_then(|pair| pair.get(1).cloned())
    };
    // The containerd image store reports its snapshotter as the driver, with
    // this driver type (seen on 26.1; moby `daemon/containerd` `GetDriverStatus`).
    let image_store = if status_of("driver-type").as_deref() == Some("io.containerd.snapshotter.v1")
    {
        ImageStore::Containerd
    } else {
        ImageStore::Graphdriver
    };
    EngineInfo {
        product,
        image_store,
        id: info.id.unwrap_or_default(),
        version: product_version.unwrap_or_default(),
        api_version: format!("{major}.{minor}"),
        data_root: info.docker_root_dir.unwrap_or_default(),
        storage_driver: info.driver.unwrap_or_default(),
        backing_filesystem: status_of("Backing Filesystem").unwrap_or_default(),
        host: host.to_string(),
        context: None,
    }
}

impl DockerEngine {
    /// Sends `/system/df` now, for the inventory that follows to take (see
    /// [`Engine::disk_usage`]): for a run that will ask for it anyway.
    pub(crate) fn prefetch_disk_usage(&self) {
        if let Ok(mut slot) = self.early_df.lock()
            && slot.is_none()
        {
            let early = self.raw.clone();
            *slot = Some(EarlyDf(tokio::spawn(
                async move { early.get(DF_PATH).await },
            )));
        }
    }

    /// Records the docker CLI context that named this engine.
    pub(crate) fn named_by(mut self, context: Option<String>) -> DockerEngine {
        self.info.context = context;
        self
    }

    /// Containers in any state that match one list filter.
    async fn list_all_containers(
        &self,
        filter: &str,
        values: Vec<String>,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(filter.to_string(), values)])),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|err| self.error(err))
    }
}

/// Puts `prefix` in front of the request's path unless it already has a version.
fn pin_version(mut request: bollard::BollardRequest, prefix: &str) -> bollard::BollardRequest {
    let uri = request.uri().clone();
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string());
    if path_and_query.starts_with("/v1.") {
        return request;
    }
    let mut parts = uri.into_parts();
    if let Ok(pinned) = format!("{prefix}{path_and_query}").parse() {
        parts.path_and_query = Some(pinned);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Says in one line why the engine cannot be used, and what to do. Over ssh,
/// what went wrong is what ssh said, when it said anything.
fn unreachable(
    host: &Host,
    timeout: Duration,
    err: &BollardError,
    connector: &Connector,
) -> anyhow::Error {
    if matches!(err, BollardError::RequestTimeoutError) {
        return timed_out(host, timeout);
    }
    if let (Host::Ssh(_), Some(line)) = (host, connector.ssh_said()) {
        return EngineUnreachable(format!("cannot reach the Docker engine at {host}: {line}"))
            .into();
    }
    let io_kind = io_error_kind(err);
    let message = match (host, io_kind) {
        (Host::Unix(path), Some(std::io::ErrorKind::NotFound)) => format!(
            "cannot reach the Docker engine: no socket at {}; is dockerd running? (set -H or DOCKER_HOST to use another engine)",
            path.display()
        ),
        (Host::Unix(path), Some(std::io::ErrorKind::PermissionDenied)) => format!(
            "cannot reach the Docker engine: permission denied on {}; run as root or as a member of the docker group",
            path.display()
        ),
        (_, Some(std::io::ErrorKind::ConnectionRefused)) => format!(
            "cannot reach the Docker engine at {host}: connection refused; is dockerd running and listening there?"
        ),
        _ => match tls_failure(err) {
            Some(why) => format!("TLS with the Docker engine at {host} failed: {why}"),
            None => format!(
                "cannot reach the Docker engine at {host}: {}",
                innermost(err)
            ),
        },
    };
    EngineUnreachable(message).into()
}

/// The TLS error under `err`, if the handshake is what failed (a certificate
/// that does not verify, a protocol mismatch, a plain-HTTP port).
fn tls_failure(err: &BollardError) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(explain_tls(tls));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(explain_tls(tls));
        }
        source = current.source();
    }
    None
}

/// rustls's words, with what the engine meant when it refused our client
/// certificate (or its absence): Go's TLS server answers a missing or untrusted
/// client certificate with a `bad_certificate` alert.
fn explain_tls(err: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    match err {
        rustls::Error::AlertReceived(
            Alert::BadCertificate | Alert::CertificateRequired | Alert::UnknownCA,
        ) => format!(
            "the engine refused the client certificate ({err}): it wants one it trusts; give --tlscert and --tlskey, or cert.pem and key.pem in DOCKER_CERT_PATH"
        ),
        _ => err.to_string(),
    }
}

/// The deepest cause's message: what actually went wrong, in one line.
fn innermost(err: &BollardError) -> String {
    let mut last: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn io_error_kind(err: &BollardError) -> Option<std::io::ErrorKind> {
    if let BollardError::SocketNotFoundError(path) = err {
        // bollard looked and found nothing; the reason may be a directory we may not enter.
        return Some(
            std::fs::metadata(path)
                .err()
                .map_or(std::io::ErrorKind::NotFound, |io| io.kind()),
        );
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = current.source();
    }
    None
}

fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl Engine for DockerEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    async fn disk_usage(&self) -> Result<DiskUsage> {
        // The first call takes the answer to the request sent while connecting
        // (unversioned: answered at the engine's own API version, in either of
        // the shapes `parse_disk_usage` reads). Later calls, a busy engine, or
        // an answer that does not parse ask again at the negotiated version.
        let early = self.early_df.lock().ok().and_then(|mut slot| slot.take());
        if let Some(mut early) = early {
            match (&mut early.0).await {
                Ok(Ok(body)) => {
                    if let Ok(usage) = parse_disk_usage(&body) {
                        return Ok(usage);
                    }
                }
                Ok(Err(err)) if !is_df_busy(&err) && !is_df_failure(&err) => return Err(err),
                _ => {}
            }
        }
        let path = format!("{}{DF_PATH}", self.prefix);
        let started = Instant::now();
        let mut failed = 0;
        loop {
            match self.raw.get(&path).await {
                Ok(body) => return parse_disk_usage(&body),
                // The engine runs one disk usage walk at a time and refuses a second
                // (another `docker system df`, a monitoring agent): wait for it.
                Err(err) if is_df_busy(&err) && started.elapsed() < DF_BUSY_PATIENCE => {
                    tokio::time::sleep(DF_BUSY_RETRY).await;
                }
                Err(err) if is_df_busy(&err) => {
                    return Err(err.context(format!(
                        "another disk usage walk kept the engine busy for {DF_BUSY_PATIENCE:?}; try again when it is done"
                    )));
                }
                Err(err) if is_df_failure(&err) && failed + 1 < DF_FAILED_TRIES => {
                    failed += 1;
                    tokio::time::sleep(DF_BUSY_RETRY * failed).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn listing(&self, with_containers: bool) -> Result<DiskUsage> {
        let prefix = &self.prefix;
        let containers = async {
            if with_containers {
                self.raw
                    .get(&format!("{prefix}/containers/json?all=1"))
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        };
        let images = format!("{prefix}/images/json");
        let volumes = format!("{prefix}/volumes");
        // `type` filters /system/df from API 1.42 (moby v23
        // `api/server/router/system/system_routes.go` `getDiskUsage`): the
        // records alone cost the engine no walk, and the image accounting reads
        // them. Before, only the whole walk has them: a run that needs them
        // there takes `/system/df` instead of the lists.
        let typed = parse_api_version(&self.info.api_version).is_some_and(|v| v >= (1, 42));
        let records = async {
            if typed {
                let body = self
                    .raw
                    .get(&format!("{prefix}/system/df?type=build-cache&verbose=1"))
                    .await?;
                Ok::<_, anyhow::Error>(parse_disk_usage(&body)?.build_cache)
            } else {
                Ok(Vec::new())
            }
        };
        let (containers, images, volumes, records) = tokio::join!(
            containers,
            self.raw.get(&images),
            self.raw.get(&volumes),
            records
        );
        let mut usage = parse_listing(containers?.as_deref(), &images?, &volumes?)?;
        usage.build_cache = records?;
        Ok(usage)
    }

    async fn containers(&self) -> Result<Vec<Container>> {
        let body = self
            .raw
            .get(&format!("{}/containers/json?all=1", self.prefix))
            .await?;
        parse_containers(&body)
    }

    async fn state_counts(&self) -> Result<StateCounts> {
        parse_state_counts(&self.raw.get(&format!("{}/info", self.prefix)).await?)
    }

    async fn container_details(&self, id: &str) -> Result<Option<ContainerDetails>> {
        match self.docker.inspect_container(id, None).await {
            Ok(found) => Ok(Some(ContainerDetails {
                log_path: found.log_path.clone().unwrap_or_default(),
                log_driver: found
                    .host_config
                    .as_ref()
                    .and_then(|host| host.log_config.as_ref())
                    .and_then(|config| config.typ.clone())
                    .unwrap_or_default(),
                finished_at: found
                    .state
                    .and_then(|state| state.finished_at)
                    .as_deref()
                    .and_then(unix_seconds),
            })),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(self.error(err)),
        }
    }

    async fn image_layers(&self, id: &str) -> Result<Option<ImageLayers>> {
        // Both at once: each is a round trip to the engine.
        let (inspect, history) =
            tokio::join!(self.docker.inspect_image(id), self.docker.image_history(id));
        let inspect = match inspect {
            Ok(found) => found,
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => return Err(self.error(err)),
        };
        let history = match history {
            Ok(found) => found,
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => return Err(self.error(err)),
        };
        let last_tagged = inspect
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.last_tag_time.as_deref())
            .and_then(unix_seconds);
        Ok(Some(ImageLayers {
            last_tagged,
            diff_ids: inspect
                .root_fs
                .and_then(|root_fs| root_fs.layers)
                .unwrap_or_default(),
            history_sizes: history
                .iter()
                .rev()
                .map(|entry| u64::try_from(entry.size).unwrap_or(0))
                .collect(),
            // BuildKit marks the history entries it writes with this comment.
            history_buildkit: history
                .iter()
                .rev()
                .map(|entry| entry.comment.starts_with("buildkit."))
                .collect(),
            history_created_by: history
                .iter()
                .rev()
                .map(|entry| entry.created_by.clone())
                .collect(),
        }))
    }

    async fn listed_images(&self, all: bool) -> Result<Vec<Image>> {
        let options = bollard::query_parameters::ListImagesOptions {
            all,
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|err| self.error(err))?;
        Ok(images
            .into_iter()
            .map(|image| Image {
                id: super::system_df::image_id(&image.id),
                parent_id: Some(image.parent_id)
                    .filter(|parent| !parent.is_empty())
                    .map(|parent| super::system_df::image_id(&parent)),
                tags: image
                    .repo_tags
                    .into_iter()
                    .filter(|tag| super::system_df::is_tag(tag))
                    .collect(),
                digests: image
                    .repo_digests
                    .into_iter()
                    .filter(|digest| digest != "<none>@<none>")
                    .collect(),
                created: image.created,
                size: u64::try_from(image.size).unwrap_or(0),
                labels: image.labels.into_iter().collect(),
                layers: Vec::new(),
                layer_sizes_exact: false,
                listed: true,
                last_tagged: None,
                last_use: None,
            })
            .collect())
    }

    async fn networks(&self) -> Result<Vec<Network>> {
        let networks = self
            .docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .map_err(|err| self.error(err))?;
        Ok(networks
            .into_iter()
            .map(|network| Network {
                id: network.id.unwrap_or_default(),
                name: network.name.unwrap_or_default(),
                driver: network.driver.unwrap_or_default(),
                scope: network.scope.unwrap_or_default(),
                labels: network.labels.unwrap_or_default().into_iter().collect(),
                created: network.created.as_deref().and_then(unix_seconds),
                ingress: network.ingress.unwrap_or(false),
            })
            .collect())
    }

    async fn container_states(&self, ids: &[&str]) -> Result<HashMap<String, ContainerState>> {
        let values = ids.iter().map(std::string::ToString::to_string).collect();
        let found = self.list_all_containers("id", values).await?;
        // The `id` filter matches prefixes too; keep exact IDs only.
        Ok(found
            .into_iter()
            .filter_map(|container| {
                let id = container.id?;
                let state = container.state.map_or(ContainerState::Unknown, |state| {
                    ContainerState::parse(state.as_ref())
                });
                ids.contains(&id.as_str()).then_some((id, state))
            })
            .collect())
    }

    async fn image_tags(&self, id: &str) -> Result<Option<Vec<String>>> {
        match self.docker.inspect_image(id).await {
            Ok(found) => Ok(Some(
                found
                    .repo_tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|tag| tag != crate::model::UNTAGGED)
                    .collect(),
            )),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(self.error(err)),
        }
    }

    async fn containers_using_image(&self, id: &str) -> Result<Vec<String>> {
        let found = self
            .list_all_containers("ancestor", vec![id.to_string()])
            .await?;
        // `ancestor` also matches containers of child images; keep exact matches.
        Ok(found
            .into_iter()
            .filter(|container| container.image_id.as_deref() == Some(id))
            .filter_map(|container| container.id)
            .collect())
    }

    async fn remove_container(&self, id: &str) -> Result<Removal> {
        let options = RemoveContainerOptions {
            force: false,
            v: false,
            link: false,
        };
        self.removal(self.docker.remove_container(id, Some(options)).await)
    }

    async fn containers_using_volume(&self, name: &str) -> Result<Vec<String>> {
        let found = self
            .list_all_containers("volume", vec![name.to_string()])
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|container| container.id)
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<Removal> {
        let options = bollard::query_parameters::RemoveVolumeOptions { force: false };
        self.removal(self.docker.remove_volume(name, Some(options)).await)
    }

    async fn containers_using_network(&self, id: &str, name: &str) -> Result<Option<Vec<String>>> {
        let attached = match self
            .docker
            .inspect_network(id, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
        {
            Ok(found) => found.containers.unwrap_or_default(),
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => return Err(self.error(err)),
        };
        // The `network` filter matches a container's configured networks by name
        // (a created container has no endpoint yet) and by ID.
        let found = self
            .list_all_containers("network", vec![name.to_string(), id.to_string()])
            .await?;
        let mut users: Vec<String> = attached.into_keys().collect();
        for container in found {
            if let Some(container_id) = container.id
                && !users.contains(&container_id)
            {
                users.push(container_id);
            }
        }
        Ok(Some(users))
    }

    async fn remove_network(&self, id: &str) -> Result<Removal> {
        self.removal(self.docker.remove_network(id).await)
    }

    async fn prune_build_cache(&self, ids: &[&str], even_shared: bool) -> Result<Vec<String>> {
        // `all`: without it the engine skips records shared with an image even
        // when asked for them by ID (BuildKit's `pruneOnce`); the ID filter is
        // what bounds the prune.
        let options = bollard::query_parameters::PruneBuildOptions {
            all: Some(even_shared),
            filters: Some(HashMap::from([(
                "id".to_string(),
                ids.iter().map(std::string::ToString::to_string).collect(),
            )])),
            ..Default::default()
        };
        let answer = self
            .docker
            .prune_build(Some(options))
            .await
            .map_err(|err| self.error(err))?;
        Ok(answer.caches_deleted.unwrap_or_default())
    }

    async fn tag_target(&self, reference: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(reference).await {
            Ok(found) => Ok(found.id),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(self.error(err)),
        }
    }

    async fn use_events(&self, since: i64) -> Result<Vec<UseEvent>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let until = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        // filters={"type":["container"],"event":["create","start"]}, encoded.
        let filters = "%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22create%22%2C%22start%22%5D%7D";
        let body = self
            .raw
            .get(&format!(
                "{}/events?since={since}&until={until}&filters={filters}",
                self.prefix
            ))
            .await?;
        Ok(parse_use_events(&body))
    }

    async fn untag_image(&self, reference: &str) -> Result<Vec<String>> {
        let options = RemoveImageOptions {
            force: false,
            noprune: true,
            ..Default::default()
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(answer) => Ok(answer.into_iter().filter_map(|item| item.deleted).collect()),
            Err(err) if is_not_found(&err) => Ok(Vec::new()),
            Err(err) => Err(self.error(err)),
        }
    }

    async fn remove_image(&self, id: &str) -> Result<Removal> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        self.removal(self.docker.remove_image(id, Some(options), None).await)
    }
}

impl DockerEngine {
    /// What a delete call did: removed, gone already (404), or the error.
    fn removal<T>(&self, answer: std::result::Result<T, BollardError>) -> Result<Removal> {
        match answer {
            Ok(_) => Ok(Removal::Removed),
            Err(err) if is_not_found(&err) => Ok(Removal::AlreadyGone),
            Err(err) => Err(self.error(err)),
        }
    }

    /// An error from a request: the engine's refusal ([`Refused`]), or the
    /// engine not answering in time ([`EngineUnreachable`]), or the transport's own.
    fn error(&self, err: BollardError) -> anyhow::Error {
        match err {
            BollardError::RequestTimeoutError => timed_out(&self.host, self.timeout),
            other => refused(other),
        }
    }
}

fn refused(err: BollardError) -> anyhow::Error {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Refused {
            request: String::new(),
            status: status_code,
            message,
        }
        .into(),
        other => other.into(),
    }
}

/// The container events in an `/events` answer: one JSON object per line.
/// Lines that are not such an event are skipped (the log is a hint, not a
/// record the plan depends on).
fn parse_use_events(body: &[u8]) -> Vec<UseEvent> {
    #[derive(serde::Deserialize)]
    struct Actor {
        #[serde(rename = "ID", default)]
        id: String,
        #[serde(rename = "Attributes", default)]
        attributes: HashMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        #[serde(rename = "Type", default)]
        kind: String,
        #[serde(rename = "Actor")]
        actor: Option<Actor>,
        #[serde(default)]
        from: String,
        #[serde(default)]
        time: i64,
    }
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Message>()
        .map_while(Result::ok)
        .filter(|message| message.kind == "container")
        .filter_map(|message| {
            let actor = message.actor?;
            let image = actor
                .attributes
                .get("image")
                .cloned()
                .filter(|image| !image.is_empty())
                .unwrap_or(message.from);
            (!image.is_empty()).then_some(UseEvent {
                time: message.time,
                container: actor.id,
                image,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::api::MAX_API;

    #[test]
    fn pins_the_api_version_once() {
        let request = http::Request::builder()
            .uri("http://localhost:2375/containers/json?all=true")
            .body(bollard::body_full(bytes::Bytes::new()))
            .unwrap();
        let pinned = pin_version(request, "/v1.41");
        assert_eq!(
            pinned.uri().to_string(),
            "http://localhost:2375/v1.41/containers/json?all=true"
        );
        let again = pin_version(pinned, "/v1.41");
        assert_eq!(again.uri().path(), "/v1.41/containers/json");
    }

    #[test]
    fn zero_time_is_none() {
        assert_eq!(unix_seconds("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            unix_seconds("2026-11-27T23:52:04.890610517Z"),
            Some(1_795_823_524)
        );
    }

    /// The newest version both know: the engine's own between the two
    /// bounds, ours above them, none below.
    #[test]
    fn negotiates_within_the_bounds() {
        assert!(MAX_API >= MIN_API);
        assert_eq!(negotiate(MIN_API), Some(MIN_API));
        assert_eq!(negotiate((MIN_API.0, MIN_API.1 - 1)), None);
        assert_eq!(negotiate((1, 999)), Some(MAX_API));
        assert_eq!(negotiate((2, 0)), Some(MAX_API));
    }
}
