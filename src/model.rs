//! Plain records shared by every stage: what the engine has (containers,
//! images and their layers, volumes, networks, build cache records), as data
//! with no behaviour beyond describing itself. The engine builds them, the
//! inventory collects them, the planner and the renderers read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct EngineInfo {
    /// Which engine answers the Docker API: Docker, or Podman's compatible API.
    pub(crate) product: Product,
    /// Where the engine keeps images: its graph driver's layer store, or
    /// containerd's image store (Docker 29's default for new installs).
    pub(crate) image_store: ImageStore,
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) api_version: String,
    pub(crate) data_root: String,
    pub(crate) storage_driver: String,
    /// The filesystem under the storage driver (`extfs`, `xfs`, …), when reported.
    pub(crate) backing_filesystem: String,
    /// The host we connected to, as `unix://…` or `tcp://…`.
    pub(crate) host: String,
    /// The docker CLI context that named the engine, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) context: Option<String>,
}

/// How the engine names an untagged image in a tag list.
pub(crate) const UNTAGGED: &str = "<none>:<none>";

/// Where the engine keeps images.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ImageStore {
    /// The graph driver's layer store (`overlay2`, …).
    #[default]
    Graphdriver,
    /// containerd's image store (`features.containerd-snapshotter`): content
    /// blobs and snapshots, images as containerd image records.
    Containerd,
}

/// Which engine answers the Docker API.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Product {
    #[default]
    Docker,
    /// Podman's Docker-compatible API (`podman system service`).
    Podman,
}

impl Product {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Product::Docker => "Docker",
            Product::Podman => "Podman",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl ContainerState {
    pub(crate) fn parse(raw: &str) -> ContainerState {
        match raw {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Unknown,
        }
    }

    /// Stopped states: the container holds no process and may be removed without force.
    pub(crate) fn is_stopped(self) -> bool {
        matches!(
            self,
            ContainerState::Created | ContainerState::Exited | ContainerState::Dead
        )
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Mount {
    /// `volume`, `bind`, `tmpfs`, …
    pub(crate) kind: String,
    /// The volume name, for volume mounts.
    pub(crate) name: Option<String>,
    pub(crate) destination: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Container {
    /// Full 64-hex ID.
    pub(crate) id: String,
    /// Names without the leading slash.
    pub(crate) names: Vec<String>,
    /// Full image ID (`sha256:…`).
    pub(crate) image_id: String,
    /// The image as the container was created from it (a reference or an ID).
    pub(crate) image: String,
    /// Its command as the engine lists it (`Command`: entrypoint and arguments).
    pub(crate) command: String,
    pub(crate) state: ContainerState,
    /// Unix seconds.
    pub(crate) created: i64,
    /// Unix seconds; `None` for a container that never ran to an end.
    pub(crate) finished_at: Option<i64>,
    /// Bytes in the writable layer, as the engine reports them.
    pub(crate) size_rw: u64,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) labels: BTreeMap<String, String>,
    /// Networks it is attached to, by name (and by ID where the engine gives it).
    pub(crate) networks: Vec<String>,
}

impl Container {
    pub(crate) fn display_name(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| short_id(&self.id).to_string())
    }
}

/// Containers per state as the engine counts them for `/info`: running,
/// paused, and everything else (moby v26.1.5 `daemon/monitor.go`
/// `setStateCounter`, by `container/state.go` `StateString`: a restarting
/// container counts as stopped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StateCounts {
    pub(crate) running: u64,
    pub(crate) paused: u64,
    pub(crate) stopped: u64,
}

impl StateCounts {
    pub(crate) fn count(&mut self, state: ContainerState) {
        match state {
            ContainerState::Running => self.running += 1,
            ContainerState::Paused => self.paused += 1,
            _ => self.stopped += 1,
        }
    }
}

/// One layer of an image, keyed by its chain ID so that layers shared between
/// images compare equal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Layer {
    pub(crate) chain_id: String,
    pub(crate) diff_id: String,
    pub(crate) size: u64,
    /// Made by BuildKit: its build cache may hold the layer after the image goes.
    pub(crate) buildkit: bool,
    /// The history command that created it (`RUN …`, `COPY …`), when known.
    pub(crate) created_by: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Image {
    /// Full image ID (`sha256:…`).
    pub(crate) id: String,
    pub(crate) parent_id: Option<String>,
    /// `repo:tag` references; empty for an untagged image.
    pub(crate) tags: Vec<String>,
    pub(crate) digests: Vec<String>,
    /// Unix seconds.
    pub(crate) created: i64,
    /// All of the image's layers, as the engine reports it.
    pub(crate) size: u64,
    pub(crate) labels: BTreeMap<String, String>,
    /// Oldest first.
    pub(crate) layers: Vec<Layer>,
    /// False when the per-layer sizes could not be matched to history exactly and
    /// were estimated (see [`layers_from`]).
    pub(crate) layer_sizes_exact: bool,
    /// False for an image that the engine's image list hides (an untagged parent
    /// of other images) and that we only know of because a container uses it.
    pub(crate) listed: bool,
    /// When the image was last pulled or tagged here (`Metadata.LastTagTime`),
    /// Unix seconds; `None` when the engine does not say.
    pub(crate) last_tagged: Option<i64>,
    /// When it was last used, and how that is known: filled in by the policy
    /// (`crate::policy`) from every source there is; `None` until then.
    pub(crate) last_use: Option<LastUse>,
}

/// When an image was last used, and which source says so.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct LastUse {
    /// Unix seconds.
    pub(crate) at: i64,
    pub(crate) source: UseSource,
}

/// Where an image's last use comes from, most direct first. The latest time
/// of all the sources wins; see the README's "Maintenance policy".
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UseSource {
    /// A running, paused or restarting container uses it (or an image built on it): now.
    Running,
    /// A container present uses it (or an image built on it): its start,
    /// finish or creation time.
    Container,
    /// The engine's events: a container was created or started from it.
    Event,
    /// Our state file: an earlier run saw it in use then.
    State,
    /// Pulled or tagged then (`Metadata.LastTagTime`).
    Tagged,
    /// Its creation time: the floor.
    Created,
    /// A build cache record: BuildKit's own `LastUsedAt`.
    Buildkit,
}

impl UseSource {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            UseSource::Running => "in use",
            UseSource::Container => "container",
            UseSource::Event => "event",
            UseSource::State => "state file",
            UseSource::Tagged => "pulled/tagged",
            UseSource::Created => "created",
            UseSource::Buildkit => "BuildKit",
        }
    }
}

impl Image {
    /// Untagged: what `docker image prune` calls dangling.
    pub(crate) fn is_dangling(&self) -> bool {
        self.tags.iter().all(|tag| tag == UNTAGGED)
    }

    /// Whether this image is built on `parent`: the engine names it as the
    /// parent, or this image's layer chain starts with all of the parent's and
    /// is longer (the engine often lists only the top of a chain of classic
    /// builds, not the intermediate images between). An image with the same
    /// layers is built on it only when the engine names it as the parent (a
    /// classic `FROM parent` + `LABEL`): a rebuild that changed only metadata
    /// has the same layers as the image it replaced, and BuildKit records no
    /// parent at all, so the engine removes the old image without conflict
    /// while the new one keeps the layers (safety round 2, finding 11: LABEL-
    /// only rebuilds were never planned, "an image that stays is built on it").
    pub(crate) fn is_built_on(&self, parent: &Image) -> bool {
        if self.parent_id.as_deref() == Some(parent.id.as_str()) {
            return true;
        }
        if parent.layers.is_empty() || self.layers.len() < parent.layers.len() {
            return false;
        }
        let prefix = self
            .layers
            .iter()
            .zip(&parent.layers)
            .all(|(a, b)| a.chain_id == b.chain_id);
        if !prefix {
            return false;
        }
        self.layers.len() > parent.layers.len()
    }

    /// By its first tag, else its short ID: how messages name an image.
    pub(crate) fn label(&self) -> String {
        self.tags.first().map_or_else(
            || short_id(&self.id).to_string(),
            |tag| printable(tag).into_owned(),
        )
    }

    /// Every tag it has, joined (`app:1, app:latest`): an image is named by
    /// all its tags wherever it is named (#21: `layers app:latest` was
    /// headed `app:1`); `<none>` when it has none.
    pub(crate) fn display_name(&self) -> String {
        let tags: Vec<&str> = self
            .tags
            .iter()
            .map(String::as_str)
            .filter(|tag| *tag != UNTAGGED)
            .collect();
        if tags.is_empty() {
            "<none>".to_string()
        } else {
            tags.join(", ")
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Volume {
    pub(crate) name: String,
    pub(crate) driver: String,
    /// Unix seconds, when the engine says.
    pub(crate) created: Option<i64>,
    pub(crate) labels: BTreeMap<String, String>,
    /// Bytes, when the engine measured them (local driver only).
    pub(crate) size: Option<u64>,
    /// Containers referencing the volume, when the engine counted them.
    pub(crate) ref_count: Option<u64>,
}

impl Volume {
    /// An anonymous volume: the engine's label says so, or its name is the
    /// 64-hex ID the engine gives volumes nobody named.
    pub(crate) fn is_anonymous(&self) -> bool {
        self.labels.contains_key("com.docker.volume.anonymous")
            || (self.name.len() == 64 && self.name.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Network {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) driver: String,
    pub(crate) scope: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub(crate) created: Option<i64>,
    /// Swarm's ingress network.
    pub(crate) ingress: bool,
}

impl Network {
    /// The networks the engine makes itself and that no prune may touch.
    pub(crate) fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
            || self.ingress
            || self.scope == "swarm"
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct BuildCacheRecord {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) description: String,
    pub(crate) in_use: bool,
    pub(crate) shared: bool,
    pub(crate) size: u64,
    pub(crate) parents: Vec<String>,
    /// Unix seconds.
    pub(crate) created: Option<i64>,
    /// When BuildKit last used it (`LastUsedAt`), Unix seconds.
    pub(crate) last_used: Option<i64>,
    /// How many times BuildKit used it (`UsageCount`).
    pub(crate) usage_count: u64,
}

/// A container's log file on disk, as found under its directory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct LogFile {
    pub(crate) container_id: String,
    /// The container's directory (`DATA-ROOT/containers/ID`).
    pub(crate) dir: String,
    /// The file's path under `dir`: `ID-json.log`, `ID-json.log.1`,
    /// `local-logs/container.log.2.gz`.
    pub(crate) name: String,
    /// `json-file` or `local`.
    pub(crate) driver: String,
    /// The file the daemon writes to now (else a rotated one).
    pub(crate) active: bool,
    /// Allocated bytes (`st_blocks` × 512).
    pub(crate) allocated: u64,
    /// Apparent bytes (`st_size`).
    pub(crate) apparent: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Unix seconds.
    pub(crate) modified: i64,
    /// Whether every process that holds it open writes in append mode;
    /// `None` when none holds it (see `crate::measure::logs`).
    pub(crate) append_only: Option<bool>,
    /// The engine compresses rotated files (json-file `compress=true`; the
    /// local driver unless `compress=false`): an uncompressed rotated file
    /// may be one it is compressing.
    pub(crate) compressed_rotation: bool,
}

/// The ID a log item has in a plan: the container's ID, then the file's path
/// under the container's directory.
pub(crate) fn log_item_id(log: &LogFile) -> String {
    format!("{}/{}", log.container_id, log.name)
}

/// The names the engine gives a container's log files under its directory:
/// json-file's `ID-json.log` and its rotations (`.1`, `.2.gz`), the local
/// driver's `local-logs/container.log` and its rotations.
pub(crate) fn valid_log_name(container: &str, name: &str) -> bool {
    let json = format!("{container}-json.log");
    let local = "local-logs/container.log";
    name == json
        || name == local
        || rotation(name, &json).is_some()
        || rotation(name, local).is_some()
}

/// The rotation number of `name`, a rotated file of `base` (`base.3`, `base.3.gz`).
pub(crate) fn rotation(name: &str, base: &str) -> Option<u32> {
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let number = rest.strip_suffix(".gz").unwrap_or(rest);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok().filter(|n| *n > 0)
}

/// A container's log settings (`HostConfig.LogConfig` as saved by the engine,
/// the daemon's `log-opts` merged in at creation).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct LogConfig {
    pub(crate) driver: String,
    pub(crate) options: BTreeMap<String, String>,
}

/// Docker's RFC 3339 times as Unix seconds; the zero time (`0001-01-01…`) is `None`.
pub(crate) fn unix_seconds(raw: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(raw).ok()?;
    let seconds = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(seconds).ok().filter(|seconds| *seconds > 0)
}

/// `text` safe to put before a person: every control character (C0, DEL, C1,
/// newline included) and every bidirectional override shown escaped (`\x1b`,
/// `\n`, `\u{202e}`), so that a name from the engine or a file cannot clear
/// the screen, move the cursor, or forge a line above the prompt. Names,
/// tags and messages from the engine go through this before any terminal;
/// JSON escapes them itself.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x100 => {
                shown.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => shown.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => shown.push(c),
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// [`printable`] for text of our own that may hold line breaks (error chains,
/// notes): newlines kept, every other control character escaped.
pub(crate) fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| printable(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first 12 hex digits of an ID, without any `sha256:` prefix, as docker shows it.
pub(crate) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// Bytes as `du -s -B1` (allocated) and `du -sb` (apparent) count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Bytes {
    pub(crate) allocated: u64,
    pub(crate) apparent: u64,
}

impl std::ops::Add for Bytes {
    type Output = Bytes;
    fn add(mut self, other: Bytes) -> Bytes {
        self += other;
        self
    }
}

impl std::ops::AddAssign for Bytes {
    fn add_assign(&mut self, other: Bytes) {
        self.allocated += other.allocated;
        self.apparent += other.apparent;
    }
}

/// A measurement on disk: bytes, and whether everything could be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Measured {
    #[serde(flatten)]
    pub(crate) bytes: Bytes,
    /// Something could not be read: the figures are lower bounds.
    pub(crate) incomplete: bool,
}

/// What kind of thing an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Container,
    Image,
    Volume,
    Network,
    BuildCache,
    /// A log file of a container that stays (`--logs`): a rotated file
    /// removed, or the active file truncated.
    Log,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Container,
        Kind::Image,
        Kind::Volume,
        Kind::Network,
        Kind::BuildCache,
        Kind::Log,
    ];

    /// Plural heading for people.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::BuildCache => "build cache record",
            Kind::Log => "log",
        }
    }

    pub(crate) fn heading(self) -> &'static str {
        match self {
            Kind::Container => "Containers",
            Kind::Image => "Images",
            Kind::Volume => "Volumes",
            Kind::Network => "Networks",
            Kind::BuildCache => "Build cache",
            Kind::Log => "Logs",
        }
    }
}

/// Why sizes are the engine's figures and not measured on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub(crate) enum Unmeasured {
    /// The engine is reached over the network (or a forwarded socket): its
    /// disk is not this machine's.
    Remote(String),
    /// A storage driver whose layout is not measured here.
    Driver(String),
    /// The data root cannot be read as this user.
    NotReadable(String),
    /// A directory with the data root's path exists here, but the engine's
    /// containers and layers are not in it.
    NotTheEngines(String),
    /// The containerd image store's metadata could not be read (damaged, or
    /// changing faster than it could be read).
    Metadata(String),
}

impl std::fmt::Display for Unmeasured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmeasured::Remote(host) => {
                write!(
                    f,
                    "the engine at {host} is not local: its disk is not measured from here"
                )
            }
            Unmeasured::Driver(driver) => write!(
                f,
                "the storage driver {driver} is not measured on disk (overlay2 and the containerd image store with overlayfs are)"
            ),
            Unmeasured::NotReadable(root) => {
                write!(f, "the data root {root} is not readable as this user")
            }
            Unmeasured::NotTheEngines(root) => write!(
                f,
                "{root} here is not this engine's data root (its containers and layers are not in it)"
            ),
            Unmeasured::Metadata(why) => write!(f, "{why}"),
        }
    }
}
