//! Hand-built engine records shared by the unit and snapshot tests: one engine,
//! and builders for layers, images and containers with every other field at a
//! plain default. Tests set what they are about with struct update syntax.

use std::collections::BTreeMap;

use crate::model::{Container, ContainerState, EngineInfo, Image, Layer};

/// A Docker 20.10 engine with the overlay2 driver at the default data root.
pub(crate) fn engine() -> EngineInfo {
    EngineInfo {
        id: "ENGINE-ID".into(),
        version: "20.10.24".into(),
        api_version: "1.41".into(),
        data_root: "/var/lib/docker".into(),
        storage_driver: "overlay2".into(),
        backing_filesystem: "extfs".into(),
        host: "unix:///var/run/docker.sock".into(),
        ..EngineInfo::default()
    }
}

/// 64 hex digits derived from `seed`: stable IDs that look like the engine's.
pub(crate) fn hex(seed: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut state: u64 = seed.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    while out.len() < 64 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let _ = write!(out, "{state:016x}");
    }
    out.truncate(64);
    out
}

/// A classic-builder layer whose chain and diff IDs are both `id`.
pub(crate) fn layer(id: &str, size: u64) -> Layer {
    Layer {
        chain_id: id.to_string(),
        diff_id: id.to_string(),
        size,
        buildkit: false,
        created_by: String::new(),
    }
}

/// A listed image with exact layer sizes, created at time 0.
pub(crate) fn image(id: &str, tags: &[&str], layers: Vec<Layer>) -> Image {
    Image {
        id: id.to_string(),
        parent_id: None,
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        digests: Vec::new(),
        created: 0,
        size: layers.iter().map(|l| l.size).sum(),
        labels: BTreeMap::new(),
        layers,
        layer_sizes_exact: true,
        listed: true,
        last_tagged: None,
        last_use: None,
    }
}

/// A container of `image_id` named `name-<id>`, created at time 0.
pub(crate) fn container(id: &str, state: ContainerState, image_id: &str) -> Container {
    Container {
        id: id.to_string(),
        command: String::new(),
        names: vec![format!("name-{id}")],
        image_id: image_id.to_string(),
        image: image_id.to_string(),
        state,
        created: 0,
        finished_at: None,
        size_rw: 0,
        mounts: Vec::new(),
        labels: BTreeMap::new(),
        networks: Vec::new(),
    }
}
