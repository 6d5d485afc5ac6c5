//! Every output format, pinned by snapshot (insta): the plan for people and as
//! JSON, the apply report both ways, the audit log line, `df` and `layers` both
//! ways. Built from one hand-made inventory at a fixed time, so the snapshots
//! need no redactions; a change to any output shows up as a snapshot diff in
//! review (`cargo insta review`). No engine and no root needed.

use std::collections::{BTreeMap, HashMap};

use crate::apply::report::{BeforeAfter, ItemResult, Outcome, Report};
use crate::inventory::{Inventory, chain_ids};
use crate::model::{
    BuildCacheRecord, Bytes, Container, ContainerState, Image, ImageStore, Layer, Measured, Mount,
    Network, Volume,
};
use crate::plan::rules::{CacheScope, Rules, VolumeScope};
use crate::plan::{self, Kind, Plan};
use crate::render::{self, Show};
use crate::testing::hex;
use crate::views::df as usage;
use crate::views::layers;

/// 2026-11-28T07:00:00Z: every age is relative to this.
const NOW: i64 = 1_795_849_200;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

fn layers(diffs: &[&str], sizes: &[u64], commands: &[&str]) -> Vec<Layer> {
    let diff_ids: Vec<String> = diffs.iter().map(|d| format!("sha256:{}", hex(d))).collect();
    chain_ids(&diff_ids)
        .into_iter()
        .zip(&diff_ids)
        .zip(sizes)
        .zip(commands)
        .map(|(((chain_id, diff_id), size), command)| Layer {
            chain_id,
            diff_id: diff_id.clone(),
            size: *size,
            buildkit: false,
            created_by: command.to_string(),
        })
        .collect()
}

fn image(name: &str, tags: &[&str], created: i64, layers: Vec<Layer>) -> Image {
    Image {
        id: format!("sha256:{}", hex(name)),
        parent_id: None,
        tags: tags.iter().map(std::string::ToString::to_string).collect(),
        digests: Vec::new(),
        created,
        size: layers.iter().map(|l| l.size).sum(),
        labels: BTreeMap::new(),
        layers,
        layer_sizes_exact: true,
        listed: true,
        last_tagged: None,
        last_use: None,
    }
}

fn last_used(image: Image, at: i64) -> Image {
    Image {
        last_use: Some(crate::model::LastUse {
            at,
            source: crate::model::UseSource::Event,
        }),
        ..image
    }
}

fn container(name: &str, state: ContainerState, image: &Image, size_rw: u64) -> Container {
    Container {
        id: hex(name),
        command: String::new(),
        names: vec![name.to_string()],
        image_id: image.id.clone(),
        image: image.label(),
        state,
        created: NOW - 3 * DAY,
        finished_at: (state == ContainerState::Exited).then_some(NOW - 5 * HOUR),
        size_rw,
        mounts: Vec::new(),
        labels: BTreeMap::new(),
        networks: vec!["none".into()],
    }
}

fn network(name: &str, created: i64) -> Network {
    Network {
        id: hex(name),
        name: name.into(),
        driver: "bridge".into(),
        scope: "local".into(),
        labels: BTreeMap::new(),
        created: Some(created),
        ingress: false,
    }
}

/// A small host: a running web server on `app:1`, two stopped containers, a
/// rebuilt (dangling) `app`, an unused tool image, volumes, a network, a build
/// cache record, and a container kept by `--keep`.
fn inventory() -> Inventory {
    let base = ["busybox", "app-v1"];
    let app = image(
        "app:1",
        &["registry.example.com:5000/team/app:1"],
        NOW - 2 * DAY,
        layers(
            &base,
            &[2_170_000, 40_960],
            &[
                "COPY busybox /bin/busybox # buildkit",
                "RUN echo v1 > /version",
            ],
        ),
    );
    let dangling = image(
        "app:old",
        &["<none>:<none>"],
        NOW - 9 * DAY,
        layers(
            &["busybox", "app-v0"],
            &[2_170_000, 1_572_864],
            &[
                "COPY busybox /bin/busybox",
                "RUN dd if=/dev/zero of=/blob bs=1M count=1",
            ],
        ),
    );
    // Last run by a `docker run --rm` job the engine's events told of.
    let tool = last_used(
        image(
            "tool:2",
            &["tool:2", "tool:latest"],
            NOW - 30 * DAY,
            layers(&["tool"], &[5_242_880], &["COPY tool /usr/bin/tool"]),
        ),
        NOW - 2 * DAY,
    );
    let mut db = container("prod-db", ContainerState::Exited, &app, 8192);
    db.mounts.push(Mount {
        kind: "volume".into(),
        name: Some("pgdata".into()),
        destination: "/data".into(),
    });
    let containers = vec![
        container("web", ContainerState::Running, &app, 4096),
        container(
            "nightly-build-with-a-very-long-name-for-a-container",
            ContainerState::Exited,
            &app,
            1_048_576,
        ),
        container("never-ran", ContainerState::Created, &app, 0),
        db,
    ];
    Inventory {
        engine: crate::testing::engine(),
        containers,
        images: vec![app, dangling, tool],
        volumes: vec![
            Volume {
                created: Some(NOW - 6 * DAY),
                name: hex("anonymous"),
                driver: "local".into(),
                labels: BTreeMap::new(),
                size: Some(65_536),
                ref_count: Some(0),
            },
            Volume {
                created: Some(NOW - 40 * DAY),
                name: "pgdata".into(),
                driver: "local".into(),
                labels: BTreeMap::new(),
                size: Some(10_485_760),
                ref_count: Some(1),
            },
        ],
        networks: vec![network("ci-net", NOW - 12 * DAY)],
        build_cache: vec![BuildCacheRecord {
            id: "k3p9x2m1q8r7w6e5t4y3u2i1o".into(),
            kind: "regular".into(),
            description: "[2/2] RUN make".into(),
            in_use: false,
            shared: false,
            size: 3_145_728,
            parents: Vec::new(),
            created: Some(NOW - 4 * DAY),
            last_used: None,
            usage_count: 0,
        }],
        layers_size: 2_170_000 + 40_960 + 1_572_864 + 5_242_880,
        sizes_measured: false,
        build_cache_unlisted: None,
        logs: Vec::new(),
    }
}

fn rules() -> Rules {
    let mut rules = Rules::parse(&[], None, &["prod-*".to_string()], &[], NOW).unwrap();
    rules.all_images = true;
    rules.volumes = Some(VolumeScope::All);
    rules.networks = true;
    rules.build_cache = Some(CacheScope::Unshared);
    rules
}

/// What a walk of this host's data root would have found: each container's
/// writable layer (its engine figure), an 8 kB directory and a log; each
/// layer as the engine says; image records, volumes, engine metadata, one
/// orphan and 300 kB of other, filed in one part each.
fn measured_on_disk(inventory: &Inventory, orphans: Vec<crate::measure::Orphan>) -> usage::OnDisk {
    use crate::measure::breakdown::{Breakdown, Part};
    let allocated = |n: u64| Bytes {
        allocated: n,
        apparent: n,
    };
    let mut on_disk = usage::OnDisk::default();
    let mut parts: HashMap<Part, Bytes> = HashMap::new();
    let mut add = |part, n: u64| *parts.entry(part).or_default() += allocated(n);
    for (n, container) in inventory.containers.iter().enumerate() {
        let log = 4096 * 25 * n as u64;
        let dir = 8192 + log;
        on_disk
            .containers
            .insert(container.id.clone(), container.size_rw + dir);
        on_disk.container_dirs.insert(container.id.clone(), dir);
        on_disk.logs.insert(container.id.clone(), log);
        add(Part::ContainerLayers, container.size_rw);
        add(Part::ContainerLogs, log);
        add(Part::ContainerMetadata, 8192);
    }
    for image in &inventory.images {
        for layer in &image.layers {
            if on_disk
                .layers
                .insert(layer.chain_id.clone(), layer.size)
                .is_none()
            {
                add(Part::ImageLayers, layer.size);
            }
        }
        add(Part::ImageRecords, 8192);
    }
    add(
        Part::Volumes,
        inventory.volumes.iter().filter_map(|v| v.size).sum(),
    );
    add(Part::EngineMetadata, 196_608);
    add(
        Part::Orphans,
        orphans.iter().map(|o| o.bytes.allocated).sum(),
    );
    // BuildKit's snapshots (the build cache's figure) and other files.
    add(
        Part::Unclaimed,
        inventory.build_cache.iter().map(|r| r.size).sum::<u64>() + 300_000,
    );
    let total = parts.values().fold(Bytes::default(), |mut sum, bytes| {
        sum += *bytes;
        sum
    });
    on_disk.breakdown = Breakdown { parts, total };
    on_disk.data_root = Measured {
        bytes: total,
        incomplete: false,
    };
    on_disk.orphans = orphans;
    on_disk
}

/// The plan as the dry run shows it, with sizes measured on disk.
fn measured_plan(inventory: &Inventory) -> Plan {
    let plan = plan::plan(inventory, &rules(), NOW);
    let items: Vec<Option<Measured>> = plan
        .items
        .iter()
        .map(|item| {
            // A network keeps nothing in the data root.
            let records = u64::from(item.kind != Kind::Network);
            (item.kind != Kind::Volume && item.kind != Kind::BuildCache).then(|| Measured {
                bytes: crate::model::Bytes {
                    allocated: item.predicted_bytes + 12_288 * records,
                    apparent: item.predicted_bytes + 1_024 * records,
                },
                incomplete: false,
            })
        })
        .collect();
    let root = Measured {
        bytes: crate::model::Bytes {
            allocated: 48_000_000,
            apparent: 41_000_000,
        },
        incomplete: false,
    };
    let mut plan = plan.with_measurements(&items, &HashMap::new(), Some(root));
    // Measured CURRENT counts the same records the items' measurements do:
    // as a walk gives them, never below what the plan reclaims.
    for (kind, figures) in &mut plan.by_kind {
        if matches!(kind, Kind::Container | Kind::Image) {
            let records = 12_288 * plan.items.iter().filter(|i| i.kind == *kind).count() as u64;
            figures.current_bytes += records;
        }
    }
    plan
}

fn show(verbose: bool) -> Show {
    Show {
        dry_run: true,
        verbose,
        now: NOW,
        width: None,
        color: false,
    }
}

fn text(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn plan_human() {
    let inventory = inventory();
    let plan = measured_plan(&inventory);
    insta::assert_snapshot!(text(|out| render::plan_human(
        out,
        &crate::testing::engine(),
        &plan,
        &show(false)
    )));
}

#[test]
fn plan_human_verbose() {
    let inventory = inventory();
    let plan = measured_plan(&inventory);
    insta::assert_snapshot!(text(|out| render::plan_human(
        out,
        &crate::testing::engine(),
        &plan,
        &show(true)
    )));
}

#[test]
fn plan_human_estimated() {
    let inventory = inventory();
    let plan = plan::plan(&inventory, &Rules::default(), NOW);
    insta::assert_snapshot!(text(|out| render::plan_human(
        out,
        &crate::testing::engine(),
        &plan,
        &show(false)
    )));
}

#[test]
fn plan_json() {
    let inventory = inventory();
    let plan = measured_plan(&inventory);
    insta::assert_snapshot!(text(|out| render::plan_json(
        out,
        &crate::testing::engine(),
        &plan,
        &show(true)
    )));
}

fn report(inventory: &Inventory) -> Report {
    let plan = measured_plan(inventory);
    let outcomes = [
        Outcome::Removed,
        Outcome::Skipped("it is running now".into()),
        Outcome::AlreadyGone,
        Outcome::Failed("the engine refused (409): image is being used".into()),
    ];
    let results = plan
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| ItemResult {
            item: item.clone(),
            outcome: if index < outcomes.len() {
                outcomes[index].clone()
            } else {
                Outcome::Removed
            },
        })
        .collect();
    Report {
        results,
        interrupted: false,
        engine_gone: false,
        engine_usage: Some(BeforeAfter {
            before: 30_000_000,
            after: 21_000_000,
        }),
        free_space: Some(BeforeAfter {
            before: 1_000_000_000,
            after: 1_009_000_000,
        }),
        data_root: Some(BeforeAfter {
            before: 48_000_000,
            after: 39_000_000,
        }),
    }
}

#[test]
fn report_human() {
    let inventory = inventory();
    let report = report(&inventory);
    insta::assert_snapshot!(text(|out| render::report_human(out, &report)));
}

#[test]
fn report_json() {
    let inventory = inventory();
    let report = report(&inventory);
    insta::assert_snapshot!(text(|out| render::report_json(
        out,
        &crate::testing::engine(),
        &report,
        NOW
    )));
}

#[test]
fn audit_line() {
    let inventory = inventory();
    let report = report(&inventory);
    let lines: Vec<String> = report
        .results
        .iter()
        .map(|result| render::audit_line(&crate::testing::engine(), result, NOW))
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

fn df_usage(inventory: &Inventory) -> usage::Usage {
    let plan = plan::plan(inventory, &Rules::default(), NOW);
    usage::usage(inventory, &plan, None)
}

#[test]
fn df_human() {
    let inventory = inventory();
    let usage = df_usage(&inventory);
    insta::assert_snapshot!(text(|out| render::df_human(
        out,
        &crate::testing::engine(),
        &usage,
        Some(1_000_000_000),
        true,
        None,
        NOW
    )));
}

#[test]
fn df_json() {
    let inventory = inventory();
    let usage = df_usage(&inventory);
    insta::assert_snapshot!(text(|out| render::df_json(
        out,
        &crate::testing::engine(),
        &usage,
        Some(1_000_000_000),
        None,
        NOW
    )));
}

/// `df --why`: twenty stopped copies of one image and command, an uncapped
/// 50 MB log of a running container, an image rebuilt under its tag, build
/// cache and a volume nothing mounts; at 80 columns.
#[test]
fn df_why_at_80_columns() {
    use crate::views::sources::{LogFacts, sources};
    let mut inventory = inventory();
    let app = inventory.images[0].clone();
    for n in 0..20 {
        let mut copy = container(&format!("job-{n}"), ContainerState::Exited, &app, 4096);
        copy.command = "sh -c 'make test'".into();
        inventory.containers.push(copy);
    }
    let plan = crate::plan::plan(&inventory, &crate::plan::rules::Rules::default(), NOW);
    let web = inventory.containers[0].id.clone();
    let bytes = HashMap::from([(web.clone(), 50_000_000)]);
    let configs: HashMap<String, crate::model::LogConfig> = inventory
        .containers
        .iter()
        .map(|c| {
            let mut options = BTreeMap::new();
            if c.id != web {
                options.insert("max-size".to_string(), "10m".to_string());
            }
            (
                c.id.clone(),
                crate::model::LogConfig {
                    driver: "json-file".into(),
                    options,
                },
            )
        })
        .collect();
    let facts = LogFacts {
        bytes: &bytes,
        configs: &configs,
    };
    let why = sources(&inventory, &plan, &facts, NOW);
    insta::assert_snapshot!(text(|out| render::wrapped(out, Some(80), |out| {
        render::sources_human(out, &why, Some(80), NOW)
    })));
}

fn layer_reports(inventory: &Inventory) -> Vec<layers::ImageReport> {
    ["registry.example.com:5000/team/app:1", "tool"]
        .iter()
        .map(|reference| {
            let image = layers::resolve(inventory, reference).unwrap();
            layers::describe(inventory, image, None, &HashMap::new())
        })
        .collect()
}

#[test]
fn layers_human() {
    let inventory = inventory();
    let reports = layer_reports(&inventory);
    insta::assert_snapshot!(text(|out| render::layers_human(out, &reports, None)));
}

#[test]
fn layers_json() {
    let inventory = inventory();
    let reports = layer_reports(&inventory);
    insta::assert_snapshot!(text(|out| render::layers_json(out, &reports, NOW)));
}

#[test]
fn plan_human_at_80_columns() {
    let inventory = inventory();
    let plan = measured_plan(&inventory);
    let show = Show {
        width: Some(80),
        ..show(true)
    };
    let text = text(|out| render::plan_human(out, &crate::testing::engine(), &plan, &show));
    // Every line fits: table rows and items are fitted, notes wrapped (#21).
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wraps at 80 columns: {line:?}");
    }
    assert!(text.contains("nightly-bui…a-container"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn plan_quiet_lists_ids_only() {
    let inventory = inventory();
    let plan = measured_plan(&inventory);
    let text = text(|out| render::quiet_ids(out, &plan));
    assert_eq!(text.lines().count(), plan.items.len());
    assert!(text.lines().all(|line| !line.contains(' ')), "{text}");
}

#[test]
fn report_summary_line() {
    let inventory = inventory();
    let report = report(&inventory);
    insta::assert_snapshot!(text(|out| render::report_summary(out, &report)));
}

#[test]
fn target_already_met_is_said_first() {
    let inventory = inventory();
    let mut rules = Rules::default();
    rules.target = crate::plan::rules::Target::parse(Some("20G"), None, (None, None)).unwrap();
    let plan = plan::plan_to_target(&inventory, &rules, NOW, 0);
    let text = text(|out| render::plan_human(out, &crate::testing::engine(), &plan, &show(false)));
    let met = text.find("already met").expect("no 'already met'");
    assert!(
        text.find("Nothing to reclaim")
            .is_none_or(|nothing| met < nothing),
        "{text}"
    );
}

/// The containerd image store, measured: its orphans are snapshot
/// directories and blobs, named under `containerd/daemon/`.
#[test]
fn df_human_containerd_store() {
    let mut inventory = inventory();
    inventory.engine.image_store = ImageStore::Containerd;
    inventory.engine.storage_driver = "overlayfs".into();
    let orphan = crate::measure::Orphan {
        name: "io.containerd.snapshotter.v1.overlayfs/snapshots/999".into(),
        bytes: Bytes {
            allocated: 307_200,
            apparent: 300_000,
        },
        modified: Some(NOW - 86_400),
    };
    let usage = measured_usage(&mut inventory, vec![orphan]);
    insta::assert_snapshot!(text(|out| render::df_human(
        out,
        &inventory.engine,
        &usage,
        Some(1_000_000_000),
        true,
        None,
        NOW
    )));
}

/// `df` on a measured host, as the dry run's plan measured it: its rows.
fn measured_usage(inventory: &mut Inventory, orphans: Vec<crate::measure::Orphan>) -> usage::Usage {
    // Measured: the sizes are the walk's, as a measured run adopts them.
    inventory.sizes_measured = true;
    let on_disk = measured_on_disk(inventory, orphans);
    let plan = plan::plan(inventory, &Rules::default(), NOW);
    let items: Vec<Option<Measured>> = plan
        .items
        .iter()
        .map(|item| {
            let bytes = match item.kind {
                Kind::Container => on_disk.containers.get(&item.id).copied(),
                Kind::Image => Some(item.predicted_bytes + 8192),
                _ => None,
            }?;
            Some(Measured {
                bytes: Bytes {
                    allocated: bytes,
                    apparent: bytes,
                },
                incomplete: false,
            })
        })
        .collect();
    let plan = plan.with_measurements(&items, &HashMap::new(), Some(on_disk.data_root));
    usage::usage(inventory, &plan, Some(&on_disk))
}

/// A measured `df`: its top-level rows add up to the data root, each part
/// row to its parent, and the table fits 80 and 200 columns and a pipe
/// (#21).
#[test]
fn df_measured_adds_up_and_fits() {
    let mut inventory = inventory();
    let orphan = crate::measure::Orphan {
        name: hex("stray"),
        bytes: Bytes {
            allocated: 1_310_720,
            apparent: 1_300_000,
        },
        modified: Some(NOW - 3 * DAY),
    };
    let usage = measured_usage(&mut inventory, vec![orphan]);
    let top: u64 = usage
        .rows
        .iter()
        .filter(|row| row.part_of.is_none())
        .filter_map(|row| row.size_bytes)
        .sum();
    assert_eq!(top, usage.data_root.unwrap().bytes.allocated);
    for parent in usage.rows.iter().filter(|row| row.part_of.is_none()) {
        let parts: Vec<_> = usage
            .rows
            .iter()
            .filter(|row| row.part_of == Some(parent.kind))
            .collect();
        if !parts.is_empty() {
            let sum: u64 = parts.iter().filter_map(|row| row.size_bytes).sum();
            assert_eq!(Some(sum), parent.size_bytes, "{:?}", parent.kind);
        }
    }
    for (name, width) in [("80", Some(80)), ("200", Some(200)), ("piped", None)] {
        let output = text(|out| {
            render::wrapped(out, width, |out| {
                render::df_human(
                    out,
                    &crate::testing::engine(),
                    &usage,
                    Some(1_000_000_000),
                    true,
                    width,
                    NOW,
                )
            })
        });
        if let Some(width) = width {
            for line in output.lines() {
                assert!(line.chars().count() <= width, "{line}");
            }
        } else {
            assert!(output.contains(&hex("stray")), "nothing cut in a pipe");
        }
        insta::assert_snapshot!(format!("df_measured_{name}"), output);
    }
}

/// On the containerd image store an image's blobs are listed under its layers,
/// with what shares them.
#[test]
fn layers_human_containerd_store() {
    let inventory = inventory();
    let image = layers::resolve(&inventory, "tool").unwrap();
    let other = layers::resolve(&inventory, "registry.example.com:5000/team/app:1").unwrap();
    let shared = "sha256:5c1f0a8b6e2d4c3b9a7f8e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c4b3a291";
    let blobs: HashMap<String, Vec<(String, u64)>> = [
        (
            image.id.clone(),
            vec![
                (
                    "sha256:0a339630e0d176428687b9a6f9bd48280fdb3ed59d93f2726c6e2945f56a73aa"
                        .to_string(),
                    4096,
                ),
                (shared.to_string(), 1_064_960),
            ],
        ),
        (other.id.clone(), vec![(shared.to_string(), 1_064_960)]),
    ]
    .into();
    let report = layers::describe(&inventory, image, None, &blobs);
    insta::assert_snapshot!(text(|out| render::layers_human(out, &[report], None)));
}

/// Safety round 2, finding 4: names from the engine (a network, a build
/// cache record's `RUN echo`, a container, a tag) that hold terminal escapes
/// and newlines reach no terminal raw: no escape character and no forged line
/// in any human output, with or without colour.
#[test]
fn escapes_and_newlines_from_the_engine_are_shown_escaped() {
    const HOSTILE: &str = "net\u{1b}[2J\nforged line\r\u{9b}31m\u{202e}";
    let mut inventory = inventory();
    inventory.networks[0].name = HOSTILE.into();
    inventory.build_cache[0].description = format!("RUN echo {HOSTILE}");
    inventory.containers[1].names = vec![HOSTILE.into()];
    inventory.containers[3].names = vec![format!("prod-{HOSTILE}")];
    inventory.images[2].tags = vec![format!("tool{HOSTILE}:2"), "tool:latest".into()];
    let plan = measured_plan(&inventory);
    let mut report = report(&inventory);
    report.results[1].outcome = Outcome::Skipped(format!("the engine said {HOSTILE}"));
    let usage = df_usage(&inventory);
    let mut outputs = Vec::new();
    for color in [false, true] {
        let show = Show {
            color,
            verbose: true,
            ..show(true)
        };
        outputs.push(text(|out| {
            render::plan_human(out, &crate::testing::engine(), &plan, &show)
        }));
    }
    outputs.push(text(|out| render::report_human(out, &report)));
    outputs.push(text(|out| {
        render::df_human(
            out,
            &crate::testing::engine(),
            &usage,
            None,
            true,
            None,
            NOW,
        )
    }));
    outputs.push(text(|out| {
        render::layers_human(out, &layer_reports(&inventory), Some(80))
    }));
    for output in &outputs {
        for line in output.lines() {
            let raw: String = line
                .split("\u{1b}[")
                .enumerate()
                .map(|(index, part)| {
                    // Our own colours (SGR, ending in m) are all colour adds.
                    if index == 0 {
                        part.to_string()
                    } else {
                        part.split_once('m')
                            .map_or(part, |(_, rest)| rest)
                            .to_string()
                    }
                })
                .collect();
            assert!(
                !raw.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "raw control character in {line:?} of:\n{output}"
            );
            assert!(!line.starts_with("forged line"), "forged line: {output}");
        }
    }
    assert!(
        outputs[0].contains(r"net\x1b[2J\nforged line\r\x9b31m\u{202e}"),
        "{}",
        outputs[0]
    );
}

/// `layers` at 80 columns: every line fits (#21: 273-character lines, SHARED
/// WITH unaligned); piped, nothing is cut (CREATED BY was cut at 60 even there).
#[test]
fn layers_human_at_80_columns() {
    let mut inventory = inventory();
    let long = "RUN apt-get update && apt-get install -y --no-install-recommends build-essential ca-certificates curl git";
    for image in &mut inventory.images {
        for layer in &mut image.layers {
            layer.created_by = long.to_string();
        }
    }
    let reports = layer_reports(&inventory);
    let fitted = text(|out| render::layers_human(out, &reports, Some(80)));
    for line in fitted.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} chars: {line}",
            line.chars().count()
        );
    }
    insta::assert_snapshot!(fitted);
    let piped = text(|out| render::layers_human(out, &reports, None));
    assert!(piped.contains(long), "{piped}");
}

/// The report and `df` at 80 columns: their notes wrap, every line fits (#21).
#[test]
fn report_and_df_notes_wrap_at_80_columns() {
    let inventory = inventory();
    let report = report(&inventory);
    let usage = df_usage(&inventory);
    let report_text =
        text(|out| render::wrapped(out, Some(80), |out| render::report_human(out, &report)));
    let df_text = text(|out| {
        render::wrapped(out, Some(80), |out| {
            render::df_human(
                out,
                &crate::testing::engine(),
                &usage,
                Some(1_000_000_000),
                true,
                Some(80),
                NOW,
            )
        })
    });
    for text in [&report_text, &df_text] {
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} chars: {line}",
                line.chars().count()
            );
        }
    }
    insta::assert_snapshot!("report_human_at_80_columns", report_text);
    insta::assert_snapshot!("df_human_at_80_columns", df_text);
}

/// The plan, the report and `layers` on a 200-column terminal: every line
/// fits, and nothing is cut that fits (#21).
#[test]
fn plan_report_and_layers_at_200_columns() {
    let mut inventory = inventory();
    let long = "RUN apt-get update && apt-get install -y --no-install-recommends build-essential ca-certificates curl git";
    for image in &mut inventory.images {
        for layer in &mut image.layers {
            layer.created_by = long.to_string();
        }
    }
    let plan = measured_plan(&inventory);
    let show = Show {
        width: Some(200),
        ..show(true)
    };
    let report = report(&inventory);
    let reports = layer_reports(&inventory);
    let outputs = [
        (
            "plan_human_at_200_columns",
            text(|out| render::plan_human(out, &crate::testing::engine(), &plan, &show)),
        ),
        (
            "report_human_at_200_columns",
            text(|out| render::wrapped(out, Some(200), |out| render::report_human(out, &report))),
        ),
        (
            "layers_human_at_200_columns",
            text(|out| render::layers_human(out, &reports, Some(200))),
        ),
    ];
    for (name, output) in outputs {
        for line in output.lines() {
            assert!(line.chars().count() <= 200, "{name}: {line}");
        }
        assert!(
            !output.contains('…') || name == "layers_human_at_200_columns",
            "{name}: {output}"
        );
        insta::assert_snapshot!(name, output);
    }
}

/// A fleet run's totals: an engine by context, one by a long ssh host (cut
/// in the middle on a terminal, whole in a pipe), one not reached.
#[test]
fn fleet_summary_at_80_columns_and_piped() {
    use crate::views::fleet::{EngineRow, State};
    let row = |name: &str, state, items, bytes, exit_code| EngineRow {
        name: name.into(),
        host: name.into(),
        engine: None,
        state,
        items,
        failed: 0,
        bytes,
        exit_code,
        error: (exit_code == 3).then(|| "cannot reach the Docker engine".into()),
    };
    let rows = [
        row("ci-runner-01", State::Planned, 12, 1_250_000_000, 0),
        row(
            "ssh://deploy@build-farm-node-17.internal.example.com:2222/var/run/docker.sock",
            State::Planned,
            3,
            52_000_000,
            0,
        ),
        row(
            "unix:///run/user/1000/docker.sock",
            State::NotReached,
            0,
            0,
            3,
        ),
    ];
    let fitted = text(|out| render::fleet_human(out, &rows, false, Some(80)));
    for line in fitted.lines() {
        assert!(line.chars().count() <= 80, "{line}");
    }
    insta::assert_snapshot!("fleet_summary_at_80_columns", fitted);
    let piped = text(|out| render::fleet_human(out, &rows, false, None));
    assert!(piped.contains("build-farm-node-17.internal.example.com:2222"));
    insta::assert_snapshot!("fleet_summary_piped", piped);
}
