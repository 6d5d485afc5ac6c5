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

use super::bolt::{self, Bucket, Db};

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

impl Node {
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

#[derive(Debug, Default, Clone)]
struct Links {
    /// Label references, and a container's snapshot.
    refs: Vec<usize>,
    /// A snapshot's parent or an image's target: followed by flat leases too.
    next: Option<usize>,
    /// What a lease holds.
    leased: Vec<usize>,
    root: bool,
    /// A lease that holds only what it names (`containerd.io/gc.flat`).
    flat: bool,
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

/// The collector's graph, read once.
#[derive(Debug, Default, Clone)]
pub(crate) struct Graph {
    nodes: Vec<Node>,
    index: HashMap<Node, usize>,
    links: Vec<Links>,
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

fn labels_of(bucket: &Bucket<'_>) -> Result<Vec<(String, String)>, bolt::Error> {
    Ok(match bucket.bucket(b"labels")? {
        Some(labels) => labels
            .values()?
            .into_iter()
            .map(|(k, v)| (text(k), text(v)))
            .collect(),
        None => Vec::new(),
    })
}

fn value_of(bucket: &Bucket<'_>, key: &[u8]) -> Result<Option<String>, bolt::Error> {
    Ok(bucket
        .values()?
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| text(v)))
}

impl Graph {
    fn id(&mut self, node: Node) -> usize {
        if let Some(id) = self.index.get(&node) {
            return *id;
        }
        let id = self.nodes.len();
        if let Node::Content(_, digest) = &node {
            self.by_digest.entry(digest.clone()).or_default().push(id);
        }
        self.index.insert(node.clone(), id);
        self.nodes.push(node);
        self.links.push(Links::default());
        id
    }

    fn add_labels(&mut self, id: usize, ns: &str, labels: &[(String, String)]) {
        for (key, value) in labels {
            if key == "containerd.io/gc.root" {
                self.links[id].root = true;
            } else if let Some(node) = label_ref(ns, key, value) {
                let to = self.id(node);
                self.links[id].refs.push(to);
            }
        }
    }

    /// Reads containerd's metadata and the overlayfs snapshotter's under the
    /// data root.
    pub(crate) fn read(data_root: &Path) -> Result<Graph, String> {
        let meta = Db::open(&data_root.join(META_DB))
            .map_err(|err| format!("reading containerd's metadata ({META_DB}): {err}"))?;
        let snapshots_db = data_root.join(SNAPSHOTS).join("metadata.db");
        let snapshotter_failed = |err: bolt::Error| {
            format!("reading the overlayfs snapshotter's metadata ({SNAPSHOTS}/metadata.db): {err}")
        };
        // The snapshotter makes its file with the first snapshot: a fresh
        // engine has none, and no snapshots.
        let snapshotter = match Db::open(&snapshots_db) {
            Err(bolt::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => None,
            opened => Some(opened.map_err(snapshotter_failed)?),
        };
        let mut graph = Graph::default();
        graph
            .read_meta(&meta, std::time::SystemTime::now())
            .map_err(|err| format!("reading containerd's metadata ({META_DB}): {err}"))?;
        let ids = match &snapshotter {
            Some(snapshotter) => graph
                .read_snapshotter(snapshotter)
                .map_err(snapshotter_failed)?,
            None => HashMap::new(),
        };
        for (node, name) in std::mem::take(&mut graph.backend_names) {
            if let Some(id) = ids.get(&name) {
                graph.dirs.insert(node, *id);
            }
        }
        Ok(graph)
    }

    fn read_meta(&mut self, db: &Db, now: std::time::SystemTime) -> Result<(), bolt::Error> {
        let Some(v1) = db.root().bucket(b"v1")? else {
            return Ok(());
        };
        for (ns, space) in v1.buckets()? {
            let ns = text(ns);
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
        space: &Bucket<'_>,
        now: std::time::SystemTime,
    ) -> Result<(), bolt::Error> {
        let Some(leases) = space.bucket(b"leases")? else {
            return Ok(());
        };
        for (id, lease) in leases.buckets()? {
            let labels = labels_of(&lease)?;
            let node = self.id(Node::Lease(ns.to_string(), text(id)));
            self.links[node].root = !expired(&labels, now);
            self.links[node].flat = labels.iter().any(|(k, _)| k == "containerd.io/gc.flat");
            let mut held = Vec::new();
            if let Some(content) = lease.bucket(b"content")? {
                for (digest, _) in content.entries()? {
                    held.push(Node::Content(ns.to_string(), text(digest)));
                }
            }
            if let Some(snapshots) = lease.bucket(b"snapshots")? {
                for (snapshotter, keys) in snapshots.buckets()? {
                    for (key, _) in keys.entries()? {
                        held.push(Node::Snapshot(ns.to_string(), text(snapshotter), text(key)));
                    }
                }
            }
            if let Some(images) = lease.bucket(b"images")? {
                for (name, _) in images.entries()? {
                    held.push(Node::Image(ns.to_string(), text(name)));
                }
            }
            for item in held {
                let to = self.id(item);
                self.links[node].leased.push(to);
            }
        }
        Ok(())
    }

    /// Images: roots until they expire, pointing at their target content.
    fn read_images(
        &mut self,
        ns: &str,
        space: &Bucket<'_>,
        now: std::time::SystemTime,
    ) -> Result<(), bolt::Error> {
        let Some(images) = space.bucket(b"images")? else {
            return Ok(());
        };
        for (name, image) in images.buckets()? {
            let labels = labels_of(&image)?;
            let name = text(name);
            let node = self.id(Node::Image(ns.to_string(), name.clone()));
            self.links[node].root = !expired(&labels, now);
            self.add_labels(node, ns, &labels);
            if let Some(target) = image.bucket(b"target")?
                && let Some(digest) = value_of(&target, b"digest")?
            {
                let to = self.id(Node::Content(ns.to_string(), digest.clone()));
                self.links[node].next = Some(to);
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
    fn read_blobs(&mut self, ns: &str, space: &Bucket<'_>) -> Result<(), bolt::Error> {
        let Some(blobs) = space.path(&["content", "blob"])? else {
            return Ok(());
        };
        for (digest, blob) in blobs.buckets()? {
            let digest = text(digest);
            self.known_blobs.insert(digest.clone());
            let node = self.id(Node::Content(ns.to_string(), digest));
            let labels = labels_of(&blob)?;
            self.add_labels(node, ns, &labels);
        }
        Ok(())
    }

    /// Containers: always roots, holding their snapshot.
    fn read_containers(&mut self, ns: &str, space: &Bucket<'_>) -> Result<(), bolt::Error> {
        let Some(containers) = space.bucket(b"containers")? else {
            return Ok(());
        };
        for (id, container) in containers.buckets()? {
            let node = self.id(Node::Container(ns.to_string(), text(id)));
            self.links[node].root = true;
            if let (Some(snapshotter), Some(key)) = (
                value_of(&container, b"snapshotter")?,
                value_of(&container, b"snapshotKey")?,
            ) && !snapshotter.is_empty()
            {
                let to = self.id(Node::Snapshot(ns.to_string(), snapshotter, key));
                self.links[node].refs.push(to);
            }
            let labels = labels_of(&container)?;
            self.add_labels(node, ns, &labels);
        }
        Ok(())
    }

    /// Snapshots, each pointing at its parent, and the overlayfs snapshotter's key for each.
    fn read_snapshots(&mut self, ns: &str, space: &Bucket<'_>) -> Result<(), bolt::Error> {
        let Some(snapshotters) = space.bucket(b"snapshots")? else {
            return Ok(());
        };
        for (snapshotter, keys) in snapshotters.buckets()? {
            let snapshotter = text(snapshotter);
            for (key, snapshot) in keys.buckets()? {
                let node = self.id(Node::Snapshot(
                    ns.to_string(),
                    snapshotter.clone(),
                    text(key),
                ));
                if let Some(parent) = value_of(&snapshot, b"parent")?
                    && !parent.is_empty()
                {
                    let to = self.id(Node::Snapshot(ns.to_string(), snapshotter.clone(), parent));
                    self.links[node].next = Some(to);
                }
                // Its key in the snapshotter (`<ns>/<n>/<key>`), which
                // names its directory there.
                if snapshotter == SNAPSHOTTER
                    && let Some(name) = value_of(&snapshot, b"name")?
                {
                    self.backend_names.push((node, name));
                }
                let labels = labels_of(&snapshot)?;
                self.add_labels(node, ns, &labels);
            }
        }
        Ok(())
    }

    /// The snapshotter's own records: its key for each snapshot and the number
    /// of the directory it keeps it in (containerd `snapshots/storage`; kind 3
    /// is a committed snapshot).
    fn read_snapshotter(&mut self, db: &Db) -> Result<HashMap<String, u64>, bolt::Error> {
        let mut ids = HashMap::new();
        if let Some(snapshots) = db.root().path(&["v1", "snapshots"])? {
            for (key, snapshot) in snapshots.buckets()? {
                let values = snapshot.values()?;
                let get = |name: &[u8]| values.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
                if let Some(id) = get(b"id").and_then(bolt::uvarint) {
                    self.known_dirs.insert(id);
                    if get(b"kind") == Some(&[3][..]) {
                        self.committed.insert(id);
                    }
                    ids.insert(text(key), id);
                }
            }
        }
        Ok(ids)
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
            let links = &self.links[id];
            if let Some(next) = links.next {
                queue.push((next, flat));
            }
            if !flat {
                let unleased = unleased.contains(&id);
                queue.extend(
                    links
                        .refs
                        .iter()
                        .filter(|to| !(unleased && matches!(self.nodes[**to], Node::Snapshot(..))))
                        .map(|to| (*to, false)),
                );
            }
            queue.extend(links.leased.iter().map(|to| (*to, links.flat)));
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
            let mut stack: Vec<usize> = images.filter_map(|id| self.links[id].next).collect();
            while let Some(id) = stack.pop() {
                if matches!(self.nodes[id], Node::Content(..)) && seen.insert(id) {
                    stack.extend(&self.links[id].refs);
                }
            }
            seen
        };
        let images = |keep: bool| {
            (0..self.nodes.len()).filter(move |id| {
                matches!(&self.nodes[*id], Node::Image(ns, _) if ns == NAMESPACE)
                    && removed.contains(id) != keep
            })
        };
        let kept = content_of(&mut images(true));
        content_of(&mut images(false))
            .into_iter()
            .filter(|id| !kept.contains(id))
            .collect()
    }

    /// What removing each group of roots frees (in order, a node two groups
    /// hold counted for the first), when all the groups go: the nodes that the
    /// remaining roots no longer reach. Each group's nodes come back as the
    /// owner keys (relative to the data root) of the blob files and snapshot
    /// directories they free; a blob another namespace still holds is not freed.
    pub(crate) fn freed(&self, groups: &[Vec<Node>]) -> Vec<Vec<String>> {
        let removed: HashSet<usize> = groups
            .iter()
            .flatten()
            .filter_map(|node| self.index.get(node).copied())
            .collect();
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
                    .any(|node| matches!(node, Node::Image(..)))
            });
            order
        };
        let mut freed = vec![Vec::new(); groups.len()];
        for n in images_first {
            let group = &groups[n];
            freed[n] = {
                let mut keys = Vec::new();
                let mut stack: Vec<usize> = group
                    .iter()
                    .filter_map(|node| self.index.get(node).copied())
                    .collect();
                // Through what stays too: a snapshot can be freed behind a
                // config that stays (see `unleased_configs`).
                let mut seen = HashSet::new();
                while let Some(id) = stack.pop() {
                    if before[id] == 0 || !seen.insert(id) {
                        continue;
                    }
                    if after[id] == 0 && !claimed[id] {
                        claimed[id] = true;
                        if let Some(key) = self.owner_key(id, &after) {
                            keys.push(key);
                        }
                    }
                    let links = &self.links[id];
                    stack.extend(links.next);
                    stack.extend(&links.refs);
                    stack.extend(&links.leased);
                }
                keys
            };
        }
        freed
    }

    /// The file or directory a node keeps on disk, if any and if freeing the
    /// node frees it.
    fn owner_key(&self, id: usize, after: &[u8]) -> Option<String> {
        match &self.nodes[id] {
            Node::Content(_, digest) => {
                let hex = digest.strip_prefix("sha256:")?;
                let shared = self
                    .by_digest
                    .get(digest)
                    .is_some_and(|ids| ids.iter().any(|other| after[*other] != 0));
                (!shared && self.known_blobs.contains(digest)).then(|| format!("{BLOBS}/{hex}"))
            }
            Node::Snapshot(..) => self
                .dirs
                .get(&id)
                .map(|dir| format!("{SNAPSHOTS}/snapshots/{dir}")),
            _ => None,
        }
    }

    /// The owner key of Docker's snapshot with this key (an image layer's chain
    /// ID, a container's ID), if it has a directory.
    pub(crate) fn snapshot_key(&self, key: &str) -> Option<String> {
        let id = *self.index.get(&Node::snapshot(key))?;
        self.dirs
            .get(&id)
            .map(|dir| format!("{SNAPSHOTS}/snapshots/{dir}"))
    }

    /// The content blobs Docker's image `id` is made of (its manifest or index,
    /// configs, compressed layers: what its records reach through content
    /// references), each with its owner key under the data root, by digest.
    pub(crate) fn image_blobs(&self, id: &str) -> Vec<(String, String)> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self
            .index
            .get(&Node::Content(NAMESPACE.into(), id.into()))
            .copied()
            .into_iter()
            .collect();
        let mut blobs = Vec::new();
        while let Some(node) = stack.pop() {
            let Node::Content(_, digest) = &self.nodes[node] else {
                continue;
            };
            if !seen.insert(node) || !self.known_blobs.contains(digest) {
                continue;
            }
            if let Some(hex) = digest.strip_prefix("sha256:") {
                blobs.push((digest.clone(), format!("{BLOBS}/{hex}")));
            }
            stack.extend(&self.links[node].refs);
        }
        blobs.sort();
        blobs
    }

    /// Whether Docker's namespace holds this content (an image ID).
    pub(crate) fn has_content(&self, digest: &str) -> bool {
        self.index
            .contains_key(&Node::Content(NAMESPACE.into(), digest.into()))
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
        let freed = graph.freed(&[vec![Node::lease("X"), Node::container("X")], image]);
        let mut container = freed[0].clone();
        container.sort();
        assert_eq!(container, vec![dir(13), dir(14)]);
        // The rebuild frees its manifest and its snapshot: the history lease
        // keeps the config, but the engine drops its snapshot reference. The
        // layer blob and the base snapshot stay with a:1. The flat lease keeps
        // cF, not sF, which is garbage already and no item's.
        let mut image = freed[1].clone();
        image.sort();
        assert_eq!(image, vec![blob_key("mD"), dir(12)]);
        // Nothing planned, nothing freed.
        assert_eq!(graph.freed(&[]), Vec::<Vec<String>>::new());
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
