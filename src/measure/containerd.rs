//! The containerd image store's layout under the data root, and the references
//! that decide what its garbage collector frees.
//!
//! With `features.containerd-snapshotter` an image is a containerd image record
//! (Docker's image ID is the record's target, a manifest digest), its bytes are
//! content blobs (manifests, configs, compressed layers) under
//! `containerd/daemon/io.containerd.content.v1.content/blobs/sha256/` and
//! unpacked snapshots of the overlayfs snapshotter under
//! `containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/`;
//! a container's writable and init layers are snapshots held by a lease named
//! by the container's ID (moby v26.1.5 `daemon/containerd/image_snapshot.go`).
//! Removing an image record or a lease frees nothing by itself: containerd's
//! collector then removes every blob and snapshot that no remaining root
//! reaches. This module reads those references from containerd's own metadata
//! (`io.containerd.metadata.v1.bolt/meta.db`) and the snapshotter's
//! (`metadata.db`, which names each snapshot's directory), and follows them as
//! the collector does (containerd `metadata/gc.go`: roots are leases, images,
//! containers and objects labelled `containerd.io/gc.root`; edges are an
//! image's target, a snapshot's parent, the `containerd.io/gc.ref.*` labels and
//! a lease's resources, flat leases holding only what they name).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::bolt::{self, Db, Entries};

/// Docker's containerd namespace.
pub(crate) const NAMESPACE: &str = "moby";
/// The snapshotter whose directories are measured (the one Docker uses).
pub(crate) const SNAPSHOTTER: &str = "overlayfs";
pub(crate) const META_DB: &str = "containerd/daemon/io.containerd.metadata.v1.bolt/meta.db";
pub(crate) const SNAPSHOTS: &str = "containerd/daemon/io.containerd.snapshotter.v1.overlayfs";
pub(crate) const BLOBS: &str = "containerd/daemon/io.containerd.content.v1.content/blobs/sha256";
const DANGLING: &str = "moby-dangling@";

/// A thing containerd's collector knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Node {
    Content(String, String),
    /// Namespace, snapshotter, key.
    Snapshot(String, String, String),
    Image(String, String),
    Lease(String, String),
    Container(String, String),
}

/// What kind of thing a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Content,
    Snapshot,
    Image,
    Lease,
    Container,
}

impl Node {
    /// Kind, namespace, snapshotter (empty but for a snapshot), key.
    fn parts(&self) -> (Kind, &str, &str, &str) {
        match self {
            Node::Content(ns, key) => (Kind::Content, ns, "", key),
            Node::Snapshot(ns, snapshotter, key) => (Kind::Snapshot, ns, snapshotter, key),
            Node::Image(ns, key) => (Kind::Image, ns, "", key),
            Node::Lease(ns, key) => (Kind::Lease, ns, "", key),
            Node::Container(ns, key) => (Kind::Container, ns, "", key),
        }
    }

    pub(crate) fn lease(id: &str) -> Node {
        Node::Lease(NAMESPACE.into(), id.into())
    }
    pub(crate) fn container(id: &str) -> Node {
        Node::Container(NAMESPACE.into(), id.into())
    }
    pub(crate) fn image(name: &str) -> Node {
        Node::Image(NAMESPACE.into(), name.into())
    }
    pub(crate) fn snapshot(key: &str) -> Node {
        Node::Snapshot(NAMESPACE.into(), SNAPSHOTTER.into(), key.into())
    }
}

/// A node's number as the graph keeps it: a 512 MB file holds far fewer
/// than 2^32 keys.
fn number(id: usize) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

/// A node's own links: its one `next` edge, and whether it is a root; its
/// other edges are kept apart (see [`Edges`]).
#[derive(Debug, Default, Clone, Copy)]
struct Links {
    /// A snapshot's parent or an image's target: followed by flat leases too.
    next: Option<u32>,
    root: bool,
    /// A lease that holds only what it names (`containerd.io/gc.flat`).
    flat: bool,
}

impl Links {
    fn next(&self) -> Option<usize> {
        self.next.map(|to| to as usize)
    }
}

/// Edges of one kind, as (from, to) pairs: gathered in the order read, then
/// sorted by where they start ([`Edges::seal`]). Eight bytes an edge, where a
/// list on each node cost 48 bytes a node (70,000 nodes at 11,000 containers,
/// most without such edges).
#[derive(Debug, Default, Clone)]
struct Edges(Vec<(u32, u32)>);

impl Edges {
    fn push(&mut self, from: usize, to: usize) {
        self.0.push((number(from), number(to)));
    }

    fn seal(&mut self) {
        self.0.sort_by_key(|(from, _)| *from);
        self.0.shrink_to_fit();
    }

    /// Where the edges from `from` lead, in the order read.
    fn of(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        let from = number(from);
        let start = self.0.partition_point(|(at, _)| *at < from);
        self.0[start..]
            .iter()
            .take_while(move |(at, _)| *at == from)
            .map(|(_, to)| *to as usize)
    }
}

/// One of Docker's image records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRecord {
    pub(crate) name: String,
    /// The manifest (or index) digest: Docker's image ID.
    pub(crate) target: String,
    /// The image it was built on by the classic builder
    /// (`org.mobyproject.image.parent`).
    pub(crate) parent: Option<String>,
}

impl ImageRecord {
    pub(crate) fn dangling(&self) -> bool {
        self.name.starts_with(DANGLING)
    }
}

/// A node as the graph keeps it: namespace and snapshotter by number.
#[derive(Debug, Clone)]
struct Stored {
    kind: Kind,
    ns: u32,
    snapshotter: u32,
    key: Box<str>,
}

/// A stored node's kind, namespace, snapshotter and key, as [`Node::parts`].
fn parts_of<'n>(node: &'n Stored, names: &'n [Box<str>]) -> (Kind, &'n str, &'n str, &'n str) {
    let name = |n: u32| names.get(n as usize).map_or("", |name| &**name);
    (node.kind, name(node.ns), name(node.snapshotter), &node.key)
}

/// The graph's nodes, each kept once, numbered in the order met, and an
/// index from a node to its number that holds only the numbers.
#[derive(Debug, Default, Clone)]
struct Nodes {
    stored: Vec<Stored>,
    /// Namespaces and snapshotter names, by number (a handful).
    names: Vec<Box<str>>,
    name_ids: HashMap<Box<str>, u32>,
    index: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

impl Nodes {
    fn len(&self) -> usize {
        self.stored.len()
    }

    fn parts(&self, id: usize) -> (Kind, &str, &str, &str) {
        parts_of(&self.stored[id], &self.names)
    }

    fn kind(&self, id: usize) -> Kind {
        self.stored[id].kind
    }

    fn hash(&self, parts: (Kind, &str, &str, &str)) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, parts)
    }

    fn get(&self, node: &Node) -> Option<usize> {
        let parts = node.parts();
        self.index
            .find(self.hash(parts), |id| self.parts(*id as usize) == parts)
            .map(|id| *id as usize)
    }

    fn name(&mut self, name: &str) -> u32 {
        if let Some(id) = self.name_ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.into());
        self.name_ids.insert(name.into(), id);
        id
    }

    /// The node's number, and whether it is new.
    fn insert(&mut self, node: &Node) -> (usize, bool) {
        if let Some(id) = self.get(node) {
            return (id, false);
        }
        let (kind, ns, snapshotter, key) = node.parts();
        let id = self.stored.len();
        let stored = Stored {
            kind,
            ns: self.name(ns),
            snapshotter: self.name(snapshotter),
            key: key.into(),
        };
        self.stored.push(stored);
        let hash = self.hash(node.parts());
        let Nodes {
            index,
            stored,
            names,
            hasher,
            ..
        } = self;
        // The table grows by hashing again the nodes it holds.
        index.insert_unique(hash, number(id), |other| {
            std::hash::BuildHasher::hash_one(&*hasher, parts_of(&stored[*other as usize], names))
        });
        (id, true)
    }
}

/// The collector's graph, read once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Graph {
    nodes: Nodes,
    links: Vec<Links>,
    /// Label references, and a container's snapshot.
    refs: Edges,
    /// What a lease holds.
    leased: Edges,
    /// overlayfs snapshot node → its directory number under `snapshots/`.
    dirs: HashMap<usize, u64>,
    /// Every directory number the snapshotter knows.
    known_dirs: HashSet<u64>,
    /// Every digest some namespace's content bucket has.
    known_blobs: HashSet<String>,
    /// Content nodes by digest, over all namespaces (a blob file is shared).
    by_digest: HashMap<String, Vec<usize>>,
    /// Directory numbers of committed snapshots.
    committed: HashSet<u64>,
    /// Snapshot nodes and their keys in the snapshotter, until linked.
    backend_names: Vec<(usize, String)>,
    pub(crate) images: Vec<ImageRecord>,
}

/// A label's reference, as containerd's collector reads it: the key may name
/// the reference after a `.` or `/`.
fn label_ref(ns: &str, key: &str, value: &str) -> Option<Node> {
    let named = |rest: &str| rest.is_empty() || rest.starts_with('.') || rest.starts_with('/');
    if let Some(rest) = key.strip_prefix("containerd.io/gc.ref.content") {
        return named(rest).then(|| Node::Content(ns.into(), value.into()));
    }
    if let Some(rest) = key.strip_prefix("containerd.io/gc.ref.snapshot.") {
        let snapshotter = rest.split('/').next().unwrap_or(rest);
        return Some(Node::Snapshot(ns.into(), snapshotter.into(), value.into()));
    }
    if let Some(rest) = key.strip_prefix("containerd.io/gc.ref.image") {
        return named(rest).then(|| Node::Image(ns.into(), value.into()));
    }
    None
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether an RFC 3339 expiry label has passed (an unreadable one has not,
/// as in containerd).
fn expired(labels: &[(String, String)], now: std::time::SystemTime) -> bool {
    labels
        .iter()
        .find(|(key, _)| key == "containerd.io/gc.expire")
        .and_then(|(_, value)| humantime::parse_rfc3339_weak(value).ok())
        .is_some_and(|at| at < now)
}

/// The labels of a record whose entries are read.
fn labels_of(record: &Entries<'_>) -> Result<Vec<(String, String)>, bolt::Error> {
    Ok(match record.bucket(b"labels") {
        Some(labels) => labels
            .entries()?
            .values()
            .map(|(k, v)| (text(k), text(v)))
            .collect(),
        None => Vec::new(),
    })
}

fn value_of(record: &Entries<'_>, key: &[u8]) -> Option<String> {
    record.value(key).map(text)
}

/// The overlayfs snapshotter's records (see [`Graph::read_snapshotter`]).
#[derive(Default)]
struct Snapshotter {
    /// Its key for each snapshot → the number of its directory.
    ids: HashMap<String, u64>,
    known: HashSet<u64>,
    committed: HashSet<u64>,
}

impl Graph {
    fn id(&mut self, node: Node) -> usize {
        let (id, new) = self.nodes.insert(&node);
        if new {
            if let Node::Content(_, digest) = node {
                self.by_digest.entry(digest).or_default().push(id);
            }
            self.links.push(Links::default());
        }
        id
    }

    fn add_labels(&mut self, id: usize, ns: &str, labels: &[(String, String)]) {
        for (key, value) in labels {
            if key == "containerd.io/gc.root" {
                self.links[id].root = true;
            } else if let Some(node) = label_ref(ns, key, value) {
                let to = self.id(node);
                self.refs.push(id, to);
            }
        }
    }

    /// Reads containerd's metadata and the overlayfs snapshotter's under the
    /// data root.
    pub(crate) fn read(data_root: &Path) -> Result<Graph, String> {
        let now = std::time::SystemTime::now();
        let mut graph = Db::read(&data_root.join(META_DB), |db| {
            let mut graph = Graph::default();
            graph.read_meta(db, now)?;
            graph.refs.seal();
            graph.leased.seal();
            graph.nodes.stored.shrink_to_fit();
            graph.links.shrink_to_fit();
            Ok(graph)
        })
        .map_err(|err| format!("reading containerd's metadata ({META_DB}): {err}"))?;
        // The snapshotter makes its file with the first snapshot: a fresh
        // engine has none, and no snapshots.
        let snapshotter = match Db::read(
            &data_root.join(SNAPSHOTS).join("metadata.db"),
            Graph::read_snapshotter,
        ) {
            Err(bolt::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                Snapshotter::default()
            }
            read => read.map_err(|err| {
                format!(
                    "reading the overlayfs snapshotter's metadata ({SNAPSHOTS}/metadata.db): {err}"
                )
            })?,
        };
        for (node, name) in std::mem::take(&mut graph.backend_names) {
            if let Some(id) = snapshotter.ids.get(&name) {
                graph.dirs.insert(node, *id);
            }
        }
        graph.known_dirs = snapshotter.known;
        graph.committed = snapshotter.committed;
        Ok(graph)
    }

    fn read_meta(&mut self, db: &Db, now: std::time::SystemTime) -> Result<(), bolt::Error> {
        let Some(v1) = db.root().bucket(b"v1")? else {
            return Ok(());
        };
        for (ns, space) in v1.buckets()? {
            let ns = text(&ns);
            let space = space.entries()?;
            self.read_leases(&ns, &space, now)?;
            self.read_images(&ns, &space, now)?;
            self.read_blobs(&ns, &space)?;
            self.read_containers(&ns, &space)?;
            self.read_snapshots(&ns, &space)?;
        }
        Ok(())
    }

    /// Leases: roots until they expire, holding content, snapshots and images.
    fn read_leases(
        &mut self,
        ns: &str,
        space: &Entries<'_>,
        now: std::time::SystemTime,
    ) -> Result<(), bolt::Error> {
        let Some(leases) = space.bucket(b"leases") else {
            return Ok(());
        };
        leases.each_bucket(|id, lease| {
            let lease = lease.entries()?;
            let labels = labels_of(&lease)?;
            let node = self.id(Node::Lease(ns.to_string(), text(id)));
            self.links[node].root = !expired(&labels, now);
            self.links[node].flat = labels.iter().any(|(k, _)| k == "containerd.io/gc.flat");
            let mut held = Vec::new();
            if let Some(content) = lease.bucket(b"content") {
                for digest in content.entries()?.keys() {
                    held.push(Node::Content(ns.to_string(), text(digest)));
                }
            }
            if let Some(snapshots) = lease.bucket(b"snapshots") {
                for (snapshotter, keys) in snapshots.buckets()? {
                    for key in keys.entries()?.keys() {
                        held.push(Node::Snapshot(
                            ns.to_string(),
                            text(&snapshotter),
                            text(key),
                        ));
                    }
                }
            }
            if let Some(images) = lease.bucket(b"images") {
                for name in images.entries()?.keys() {
                    held.push(Node::Image(ns.to_string(), text(name)));
                }
            }
            for item in held {
                let to = self.id(item);
                self.leased.push(node, to);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Images: roots until they expire, pointing at their target content.
    fn read_images(
        &mut self,
        ns: &str,
        space: &Entries<'_>,
        now: std::time::SystemTime,
    ) -> Result<(), bolt::Error> {
        let Some(images) = space.bucket(b"images") else {
            return Ok(());
        };
        for (name, image) in images.buckets()? {
            let image = image.entries()?;
            let labels = labels_of(&image)?;
            let name = text(&name);
            let node = self.id(Node::Image(ns.to_string(), name.clone()));
            self.links[node].root = !expired(&labels, now);
            self.add_labels(node, ns, &labels);
            if let Some(target) = image.bucket(b"target")
                && let Some(digest) = value_of(&target.entries()?, b"digest")
            {
                let to = self.id(Node::Content(ns.to_string(), digest.clone()));
                self.links[node].next = Some(number(to));
                if ns == NAMESPACE {
                    let parent = labels
                        .iter()
                        .find(|(key, value)| {
                            key == "org.mobyproject.image.parent" && !value.is_empty()
                        })
                        .map(|(_, value)| value.clone());
                    self.images.push(ImageRecord {
                        name,
                        target: digest,
                        parent,
                    });
                }
            }
        }
        Ok(())
    }

    /// Content blobs, with the labels that reference other content and snapshots.
    fn read_blobs(&mut self, ns: &str, space: &Entries<'_>) -> Result<(), bolt::Error> {
        let Some(content) = space.bucket(b"content") else {
            return Ok(());
        };
        let Some(blobs) = content.bucket(b"blob")? else {
            return Ok(());
        };
        blobs.each_bucket(|digest, blob| {
            let digest = text(digest);
            self.known_blobs.insert(digest.clone());
            let node = self.id(Node::Content(ns.to_string(), digest));
            let labels = labels_of(&blob.entries()?)?;
            self.add_labels(node, ns, &labels);
            Ok(())
        })?;
        Ok(())
    }

    /// Containers: always roots, holding their snapshot.
    fn read_containers(&mut self, ns: &str, space: &Entries<'_>) -> Result<(), bolt::Error> {
        let Some(containers) = space.bucket(b"containers") else {
            return Ok(());
        };
        containers.each_bucket(|id, container| {
            let container = container.entries()?;
            let node = self.id(Node::Container(ns.to_string(), text(id)));
            self.links[node].root = true;
            if let (Some(snapshotter), Some(key)) = (
                value_of(&container, b"snapshotter"),
                value_of(&container, b"snapshotKey"),
            ) && !snapshotter.is_empty()
            {
                let to = self.id(Node::Snapshot(ns.to_string(), snapshotter, key));
                self.refs.push(node, to);
            }
            let labels = labels_of(&container)?;
            self.add_labels(node, ns, &labels);
            Ok(())
        })?;
        Ok(())
    }

    /// Snapshots, each pointing at its parent, and the overlayfs snapshotter's key for each.
    fn read_snapshots(&mut self, ns: &str, space: &Entries<'_>) -> Result<(), bolt::Error> {
        let Some(snapshotters) = space.bucket(b"snapshots") else {
            return Ok(());
        };
        for (snapshotter, keys) in snapshotters.buckets()? {
            let snapshotter = text(&snapshotter);
            keys.each_bucket(|key, snapshot| {
                let snapshot = snapshot.entries()?;
                let node = self.id(Node::Snapshot(
                    ns.to_string(),
                    snapshotter.clone(),
                    text(key),
                ));
                if let Some(parent) = value_of(&snapshot, b"parent")
                    && !parent.is_empty()
                {
                    let to = self.id(Node::Snapshot(ns.to_string(), snapshotter.clone(), parent));
                    self.links[node].next = Some(number(to));
                }
                // Its key in the snapshotter (`<ns>/<n>/<key>`), which
                // names its directory there.
                if snapshotter == SNAPSHOTTER
                    && let Some(name) = value_of(&snapshot, b"name")
                {
                    self.backend_names.push((node, name));
                }
                let labels = labels_of(&snapshot)?;
                self.add_labels(node, ns, &labels);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The snapshotter's own records: its key for each snapshot and the number
    /// of the directory it keeps it in (containerd `snapshots/storage`; kind 3
    /// is a committed snapshot).
    fn read_snapshotter(db: &Db) -> Result<Snapshotter, bolt::Error> {
        let mut read = Snapshotter::default();
        if let Some(snapshots) = db.root().path(&["v1", "snapshots"])? {
            snapshots.each_bucket(|key, snapshot| {
                let values = snapshot.entries()?;
                if let Some(id) = values.value(b"id").and_then(bolt::uvarint) {
                    read.known.insert(id);
                    if values.value(b"kind") == Some(&[3][..]) {
                        read.committed.insert(id);
                    }
                    read.ids.insert(text(key), id);
                }
                Ok(())
            })?;
        }
        Ok(read)
    }

    /// Which nodes the roots reach, with `removed` taken away: each node's
    /// mark is 0 (not reached), 1 (held flat: nothing it refers to is held
    /// through it) or 2.
    /// `unleased`: content whose snapshot references are dropped.
    fn reach(&self, removed: &HashSet<usize>, unleased: &HashSet<usize>) -> Vec<u8> {
        let mut mark = vec![0u8; self.nodes.len()];
        let mut queue: Vec<(usize, bool)> = (0..self.nodes.len())
            .filter(|id| self.links[*id].root && !removed.contains(id))
            .map(|id| (id, false))
            .collect();
        while let Some((id, flat)) = queue.pop() {
            let want = if flat { 1 } else { 2 };
            if mark[id] >= want {
                continue;
            }
            mark[id] = want;
            let links = self.links[id];
            if let Some(next) = links.next() {
                queue.push((next, flat));
            }
            if !flat {
                let unleased = unleased.contains(&id);
                queue.extend(
                    self.refs
                        .of(id)
                        .filter(|to| !(unleased && self.nodes.kind(*to) == Kind::Snapshot))
                        .map(|to| (to, false)),
                );
            }
            queue.extend(self.leased.of(id).map(|to| (to, links.flat)));
        }
        mark
    }

    /// The content of removed images that no remaining image reaches: after
    /// a removal the engine drops the snapshot reference of such an image
    /// config, whatever else holds the config (moby v26.1.5
    /// `daemon/containerd/image_prune.go` `unleaseSnapshotsFromDeletedConfigs`,
    /// for BuildKit's history records).
    fn unleased_configs(&self, removed: &HashSet<usize>) -> HashSet<usize> {
        let content_of = |images: &mut dyn Iterator<Item = usize>| {
            let mut seen = HashSet::new();
            let mut stack: Vec<usize> = images.filter_map(|id| self.links[id].next()).collect();
            while let Some(id) = stack.pop() {
                if self.nodes.kind(id) == Kind::Content && seen.insert(id) {
                    stack.extend(self.refs.of(id));
                }
            }
            seen
        };
        let images = |keep: bool| {
            (0..self.nodes.len()).filter(move |id| {
                matches!(self.nodes.parts(*id), (Kind::Image, NAMESPACE, ..))
                    && removed.contains(id) != keep
            })
        };
        let kept = content_of(&mut images(true));
        content_of(&mut images(false))
            .into_iter()
            .filter(|id| !kept.contains(id))
            .collect()
    }

    /// The number of a node the graph has.
    pub(crate) fn node(&self, node: &Node) -> Option<usize> {
        self.nodes.get(node)
    }

    /// What removing each group of roots (node numbers, from [`Graph::node`])
    /// frees (in order, a node two groups hold counted for the first), when
    /// all the groups go: the nodes that the remaining roots no longer reach.
    /// Each group's come back as the nodes among them that free a blob file
    /// or a snapshot directory (see [`Graph::owner_key`]); a blob another
    /// namespace still holds is not freed.
    pub(crate) fn freed(&self, groups: &[Vec<usize>]) -> Vec<Vec<usize>> {
        let removed: HashSet<usize> = groups.iter().flatten().copied().collect();
        let before = self.reach(&HashSet::new(), &HashSet::new());
        let after = self.reach(&removed, &self.unleased_configs(&removed));
        let mut claimed = vec![false; self.nodes.len()];
        // Images claim first: a container's lease reaches its image's layers
        // through its snapshots' parents, and those are the image's to free.
        let images_first = {
            let mut order: Vec<usize> = (0..groups.len()).collect();
            order.sort_by_key(|n| {
                !groups[*n]
                    .iter()
                    .any(|node| self.nodes.kind(*node) == Kind::Image)
            });
            order
        };
        let mut freed = vec![Vec::new(); groups.len()];
        for n in images_first {
            let group = &groups[n];
            freed[n] = {
                let mut owners = Vec::new();
                let mut stack = group.clone();
                // Through what stays too: a snapshot can be freed behind a
                // config that stays (see `unleased_configs`).
                let mut seen = HashSet::new();
                while let Some(id) = stack.pop() {
                    if before[id] == 0 || !seen.insert(id) {
                        continue;
                    }
                    if after[id] == 0 && !claimed[id] {
                        claimed[id] = true;
                        if self.frees_owner(id, &after) {
                            owners.push(id);
                        }
                    }
                    stack.extend(self.links[id].next());
                    stack.extend(self.refs.of(id));
                    stack.extend(self.leased.of(id));
                }
                owners
            };
        }
        freed
    }

    /// Whether freeing the node frees the file or directory it keeps on
    /// disk: it has one, and (a blob) no node that stays shares it.
    fn frees_owner(&self, id: usize, after: &[u8]) -> bool {
        match self.nodes.parts(id) {
            (Kind::Content, _, _, digest) => {
                let shared = self
                    .by_digest
                    .get(digest)
                    .is_some_and(|ids| ids.iter().any(|other| after[*other] != 0));
                !shared && self.owner_key(id).is_some()
            }
            _ => self.owner_key(id).is_some(),
        }
    }

    /// The file or directory node `id` keeps on disk, if any: its owner key,
    /// relative to the data root.
    pub(crate) fn owner_key(&self, id: usize) -> Option<String> {
        match self.nodes.parts(id) {
            (Kind::Content, _, _, digest) => {
                let hex = digest.strip_prefix("sha256:")?;
                self.known_blobs
                    .contains(digest)
                    .then(|| format!("{BLOBS}/{hex}"))
            }
            (Kind::Snapshot, ..) => self
                .dirs
                .get(&id)
                .map(|dir| format!("{SNAPSHOTS}/snapshots/{dir}")),
            _ => None,
        }
    }

    /// The owner key of Docker's snapshot with this key (an image layer's chain
    /// ID, a container's ID), if it has a directory.
    pub(crate) fn snapshot_key(&self, key: &str) -> Option<String> {
        self.owner_key(self.nodes.get(&Node::snapshot(key))?)
    }

    /// The content blobs Docker's image `id` is made of (its manifest or index,
    /// configs, compressed layers: what its records reach through content
    /// references), each with its owner key under the data root, by digest.
    pub(crate) fn image_blobs(&self, id: &str) -> Vec<(String, String)> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self
            .nodes
            .get(&Node::Content(NAMESPACE.into(), id.into()))
            .into_iter()
            .collect();
        let mut blobs = Vec::new();
        while let Some(node) = stack.pop() {
            let (Kind::Content, _, _, digest) = self.nodes.parts(node) else {
                continue;
            };
            if !seen.insert(node) || !self.known_blobs.contains(digest) {
                continue;
            }
            if let Some(hex) = digest.strip_prefix("sha256:") {
                blobs.push((digest.to_string(), format!("{BLOBS}/{hex}")));
            }
            stack.extend(self.refs.of(node));
        }
        blobs.sort();
        blobs
    }

    /// Whether Docker's namespace holds this content (an image ID).
    pub(crate) fn has_content(&self, digest: &str) -> bool {
        self.nodes
            .get(&Node::Content(NAMESPACE.into(), digest.into()))
            .is_some()
            && self.known_blobs.contains(digest)
    }

    /// Whether the snapshotter keeps a directory of this number.
    pub(crate) fn knows_dir(&self, dir: u64) -> bool {
        self.known_dirs.contains(&dir)
    }

    /// Whether some namespace has this blob.
    pub(crate) fn knows_blob(&self, digest: &str) -> bool {
        self.known_blobs.contains(digest)
    }

    /// Owner keys of what stays unchanged once written, for the size cache:
    /// the directories of committed snapshots (an image layer, a container's
    /// init layer), which the snapshotter never writes again. Blob files never
    /// change either, but the cache keeps only directories' sizes; a blob is
    /// one stat in the walk.
    pub(crate) fn unchanging(&self, key: &str) -> bool {
        key.strip_prefix(SNAPSHOTS)
            .and_then(|rest| rest.strip_prefix("/snapshots/"))
            // As the snapshotter names them: decimal, no sign, no leading zero.
            .filter(|dir| !dir.starts_with(['0', '+']) || *dir == "0")
            .and_then(|dir| dir.parse::<u64>().ok())
            .is_some_and(|dir| self.committed.contains(&dir))
    }

    /// The records removing image `id` takes, as `DELETE /images/{id}` does on
    /// this store (moby v26.1.5 `daemon/containerd/image_delete.go`
    /// `deleteAll`, `image_children.go` `parents`): every record targeting it,
    /// then the images it was built on, following `org.mobyproject.image.parent`,
    /// while each is dangling and no container that stays uses it. A tagged
    /// image that other images are still built on is only renamed to a
    /// dangling record (`imageDeleteHelper`): it frees nothing. `gone` holds
    /// the records already taken, and gains these.
    pub(crate) fn image_removal(
        &self,
        id: &str,
        used: &HashSet<&str>,
        gone: &mut HashSet<String>,
    ) -> Vec<Node> {
        let own: Vec<&ImageRecord> = self.images.iter().filter(|r| r.target == id).collect();
        let children = self
            .images
            .iter()
            .any(|record| record.parent.as_deref() == Some(id) && !gone.contains(&record.name));
        if children && own.iter().any(|record| !record.dangling()) {
            return Vec::new();
        }
        let mut nodes = Vec::new();
        for record in &own {
            if gone.insert(record.name.clone()) {
                nodes.push(Node::image(&record.name));
            }
        }
        let mut next = own.iter().find_map(|record| record.parent.clone());
        while let Some(parent) = next {
            // The engine resolves the digest to the first record that targets
            // it, in name order (`resolveImage`).
            let Some(record) = self
                .images
                .iter()
                .filter(|r| r.target == parent && !gone.contains(&r.name))
                .min_by(|a, b| a.name.cmp(&b.name))
            else {
                break;
            };
            if !record.dangling() || used.contains(record.target.as_str()) {
                break;
            }
            gone.insert(record.name.clone());
            nodes.push(Node::image(&record.name));
            next = record.parent.clone();
        }
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::super::bolt::tests::{Builder, Node as B, bucket, value};
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> (&'static str, B) {
        (
            "labels",
            bucket(pairs.iter().map(|(k, v)| (*k, value(v))).collect()),
        )
    }

    fn blob(refs: &[(&str, &str)]) -> B {
        bucket(vec![labels(refs)])
    }

    fn image(target: &str, parent: Option<&str>) -> B {
        let mut label = Vec::new();
        if let Some(parent) = parent {
            label.push(("org.mobyproject.image.parent", parent));
        }
        bucket(vec![
            ("target", bucket(vec![("digest", value(target))])),
            labels(&label),
        ])
    }

    fn snapshot(name: &str, parent: Option<&str>) -> B {
        let mut fields = vec![("name", value(name))];
        if let Some(parent) = parent {
            fields.push(("parent", value(parent)));
        }
        bucket(fields)
    }

    /// A tagged image `a:1` (manifest mA: config cA, layer lA, snapshot sA); a
    /// dangling rebuild mD built on it (config cD, the same layer lA, its own
    /// snapshot sD on sA) whose config a BuildKit history lease also holds; a
    /// container X of the rebuild (lease X: snapshots X and X-init, on sD); a flat lease that
    /// holds only the blob cF, whose snapshot sF it does not keep.
    #[allow(clippy::too_many_lines)] // the whole store, one bucket after another
    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let snap = "containerd.io/gc.ref.snapshot.overlayfs";
        let meta = Builder::new().build(vec![(
            "v1",
            bucket(vec![(
                "moby",
                bucket(vec![
                    (
                        "images",
                        bucket(vec![
                            ("docker.io/library/a:1", image("sha256:mA", None)),
                            (
                                "moby-dangling@sha256:mD",
                                image("sha256:mD", Some("sha256:mA")),
                            ),
                        ]),
                    ),
                    (
                        "content",
                        bucket(vec![(
                            "blob",
                            bucket(vec![
                                (
                                    "sha256:mA",
                                    blob(&[
                                        ("containerd.io/gc.ref.content.0", "sha256:cA"),
                                        ("containerd.io/gc.ref.content.1", "sha256:lA"),
                                    ]),
                                ),
                                ("sha256:cA", blob(&[(snap, "sha256:sA")])),
                                ("sha256:lA", blob(&[])),
                                (
                                    "sha256:mD",
                                    blob(&[
                                        ("containerd.io/gc.ref.content.0", "sha256:cD"),
                                        ("containerd.io/gc.ref.content.l", "sha256:lA"),
                                    ]),
                                ),
                                ("sha256:cD", blob(&[(snap, "sha256:sD")])),
                                ("sha256:cF", blob(&[(snap, "sha256:sF")])),
                            ]),
                        )]),
                    ),
                    (
                        "snapshots",
                        bucket(vec![(
                            "overlayfs",
                            bucket(vec![
                                ("sha256:sA", snapshot("moby/1/sha256:sA", None)),
                                ("sha256:sD", snapshot("moby/2/sha256:sD", Some("sha256:sA"))),
                                ("X-init", snapshot("moby/3/X-init", Some("sha256:sD"))),
                                ("X", snapshot("moby/4/X", Some("X-init"))),
                                ("sha256:sF", snapshot("moby/5/sha256:sF", None)),
                            ]),
                        )]),
                    ),
                    (
                        "leases",
                        bucket(vec![
                            (
                                "X",
                                bucket(vec![(
                                    "snapshots",
                                    bucket(vec![(
                                        "overlayfs",
                                        bucket(vec![("X", value("")), ("X-init", value(""))]),
                                    )]),
                                )]),
                            ),
                            (
                                "buildkit-history",
                                bucket(vec![("content", bucket(vec![("sha256:cD", value(""))]))]),
                            ),
                            (
                                "flat",
                                bucket(vec![
                                    labels(&[("containerd.io/gc.flat", "")]),
                                    ("content", bucket(vec![("sha256:cF", value(""))])),
                                ]),
                            ),
                        ]),
                    ),
                ]),
            )]),
        )]);
        let committed = |id: u8| {
            bucket(vec![
                ("id", B::Value(vec![id])),
                ("kind", B::Value(vec![3])),
            ])
        };
        let active = |id: u8| {
            bucket(vec![
                ("id", B::Value(vec![id])),
                ("kind", B::Value(vec![2])),
            ])
        };
        let snapshots = Builder::new().build(vec![(
            "v1",
            bucket(vec![(
                "snapshots",
                bucket(vec![
                    ("moby/1/sha256:sA", committed(11)),
                    ("moby/2/sha256:sD", committed(12)),
                    ("moby/3/X-init", committed(13)),
                    ("moby/4/X", active(14)),
                    ("moby/5/sha256:sF", committed(15)),
                ]),
            )]),
        )]);
        let write = |rel: &str, data: &[u8]| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        };
        write(META_DB, &meta);
        write(&format!("{SNAPSHOTS}/metadata.db"), &snapshots);
        dir
    }

    fn dir(n: u64) -> String {
        format!("{SNAPSHOTS}/snapshots/{n}")
    }

    fn blob_key(hex: &str) -> String {
        format!("{BLOBS}/{hex}")
    }

    #[test]
    fn nodes_are_kept_once_and_edges_by_where_they_start() {
        let mut nodes = Nodes::default();
        let a = Node::snapshot("a");
        let (first, new) = nodes.insert(&a);
        assert!(new);
        assert_eq!(nodes.insert(&a), (first, false));
        // The same key in another kind, namespace or snapshotter is another node.
        let others = [
            Node::Content(NAMESPACE.into(), "a".into()),
            Node::Snapshot("other".into(), SNAPSHOTTER.into(), "a".into()),
            Node::Snapshot(NAMESPACE.into(), "native".into(), "a".into()),
        ];
        for other in &others {
            assert!(nodes.insert(other).1, "{other:?}");
        }
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes.get(&a), Some(first));
        assert_eq!(nodes.get(&others[1]), Some(2));
        assert_eq!(nodes.get(&Node::snapshot("b")), None);
        assert_eq!(nodes.parts(2), (Kind::Snapshot, "other", SNAPSHOTTER, "a"));

        let mut edges = Edges::default();
        for (from, to) in [(3, 1), (1, 7), (3, 0), (1, 2), (3, 5)] {
            edges.push(from, to);
        }
        edges.seal();
        assert_eq!(
            edges.of(3).collect::<Vec<_>>(),
            [1, 0, 5],
            "in the order read"
        );
        assert_eq!(edges.of(1).collect::<Vec<_>>(), [7, 2]);
        assert_eq!(
            edges.of(0).count() + edges.of(2).count() + edges.of(9).count(),
            0
        );
    }

    #[test]
    fn a_plan_frees_what_only_its_items_reach() {
        let root = store();
        let graph = Graph::read(root.path()).unwrap();
        assert!(graph.has_content("sha256:mA"));
        let blobs: Vec<String> = graph
            .image_blobs("sha256:mD")
            .into_iter()
            .map(|(digest, _)| digest)
            .collect();
        assert_eq!(blobs, ["sha256:cD", "sha256:lA", "sha256:mD"]);
        assert_eq!(graph.snapshot_key("X").as_deref(), Some(dir(14).as_str()));
        let mut gone = HashSet::new();
        let image = graph.image_removal("sha256:mD", &HashSet::new(), &mut gone);
        // Its parent is tagged: the engine stops there.
        assert_eq!(image, vec![Node::image("moby-dangling@sha256:mD")]);
        let numbers = |nodes: &[Node]| -> Vec<usize> {
            nodes.iter().filter_map(|node| graph.node(node)).collect()
        };
        let keys = |owners: &[usize]| -> Vec<String> {
            let mut keys: Vec<String> = owners
                .iter()
                .map(|id| graph.owner_key(*id).unwrap())
                .collect();
            keys.sort();
            keys
        };
        let freed = graph.freed(&[
            numbers(&[Node::lease("X"), Node::container("X")]),
            numbers(&image),
        ]);
        let container = keys(&freed[0]);
        assert_eq!(container, vec![dir(13), dir(14)]);
        // The rebuild frees its manifest and its snapshot: the history lease
        // keeps the config, but the engine drops its snapshot reference. The
        // layer blob and the base snapshot stay with a:1. The flat lease keeps
        // cF, not sF, which is garbage already and no item's.
        assert_eq!(keys(&freed[1]), vec![blob_key("mD"), dir(12)]);
        // Nothing planned, nothing freed.
        assert_eq!(graph.freed(&[]), Vec::<Vec<usize>>::new());
        assert!(graph.unchanging(&dir(11)) && !graph.unchanging(&dir(14)));
        assert!(!graph.unchanging(&dir(11).replace("/11", "/011")));
    }

    #[test]
    fn dangling_parents_go_with_their_child_until_a_tagged_or_used_one() {
        let record = |name: &str, target: &str, parent: Option<&str>| ImageRecord {
            name: name.into(),
            target: target.into(),
            parent: parent.map(Into::into),
        };
        let graph = Graph {
            images: vec![
                record("docker.io/library/base:1", "sha256:b", None),
                record("moby-dangling@sha256:p2", "sha256:p2", Some("sha256:b")),
                record("moby-dangling@sha256:p1", "sha256:p1", Some("sha256:p2")),
                record("moby-dangling@sha256:c", "sha256:c", Some("sha256:p1")),
                record("docker.io/library/mid:1", "sha256:m", None),
                record("moby-dangling@sha256:k", "sha256:k", Some("sha256:m")),
            ],
            ..Graph::default()
        };
        let names = |nodes: Vec<Node>| -> Vec<String> {
            nodes
                .into_iter()
                .map(|node| match node {
                    Node::Image(_, name) => name,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let mut gone = HashSet::new();
        assert_eq!(
            names(graph.image_removal("sha256:c", &HashSet::new(), &mut gone)),
            [
                "moby-dangling@sha256:c",
                "moby-dangling@sha256:p1",
                "moby-dangling@sha256:p2"
            ]
        );
        // A parent a staying container uses stops the chain.
        let used: HashSet<&str> = ["sha256:p1"].into_iter().collect();
        assert_eq!(
            names(graph.image_removal("sha256:c", &used, &mut HashSet::new())),
            ["moby-dangling@sha256:c"]
        );
        // A tagged image another image is still built on is renamed, not freed.
        assert!(
            graph
                .image_removal("sha256:m", &HashSet::new(), &mut HashSet::new())
                .is_empty()
        );
        let mut gone: HashSet<String> = ["moby-dangling@sha256:k".to_string()].into();
        assert_eq!(
            names(graph.image_removal("sha256:m", &HashSet::new(), &mut gone)),
            ["docker.io/library/mid:1"]
        );
    }
}
