//! Pure: decides what goes, why, and how many bytes each removal frees.
//! No I/O; tested on hand-built inventories.
//!
//! The default scope is stopped containers and dangling images. An image's
//! predicted bytes come from layer reference counts: a layer frees its bytes only
//! when nothing that remains after the plan (an image, or a container through its
//! image) uses it, and a layer freed by several planned images counts once.

mod build;
mod candidates;
mod context;
pub(crate) mod file;
mod images;
mod items;
mod logs;
pub(crate) mod rules;
mod saved;
mod target;

pub(crate) use crate::model::Kind;
pub(crate) use build::{plan, summarize};
pub(crate) use context::images_used_by_remaining;
pub(crate) use items::{
    Figures, FreedLayer, Item, KeptLayer, LeftOut, Plan, Reason, SavedPlanNote, TargetNote,
};
pub(crate) use logs::truncation_is_safe;
pub(crate) use saved::plan_saved;
pub(crate) use target::plan_to_target;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::items::BUILD_CACHE_HOLDER;
    use super::*;
    use crate::inventory::{Inventory, chain_ids};
    use crate::model::{Container, ContainerState, Image, Layer, Volume};
    use crate::plan::rules::Rules;
    use crate::plan::rules::{CacheScope, VolumeScope};
    use crate::testing;

    fn layer_chain(diffs: &[u8], sizes: &[u64]) -> Vec<Layer> {
        let diff_ids: Vec<String> = diffs
            .iter()
            .map(|n| format!("sha256:{}", hex::encode([*n; 32])))
            .collect();
        chain_ids(&diff_ids)
            .into_iter()
            .zip(diff_ids)
            .zip(sizes)
            .map(|((chain_id, diff_id), size)| Layer {
                chain_id,
                diff_id,
                size: *size,
                buildkit: false,
                created_by: String::new(),
            })
            .collect()
    }

    fn image(id: &str, tags: &[&str], diffs: &[u8], sizes: &[u64]) -> Image {
        Image {
            created: 1000,
            ..testing::image(&format!("sha256:{id}"), tags, layer_chain(diffs, sizes))
        }
    }

    fn container(id: &str, state: ContainerState, image: &str, size_rw: u64) -> Container {
        Container {
            image: image.to_string(),
            created: 500,
            size_rw,
            ..testing::container(id, state, &format!("sha256:{image}"))
        }
    }

    fn inventory(containers: Vec<Container>, images: Vec<Image>) -> Inventory {
        Inventory {
            engine: testing::engine(),
            containers,
            images,
            volumes: Vec::new(),
            networks: Vec::new(),
            build_cache: Vec::new(),
            layers_size: 0,
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
        }
    }

    fn ids(plan: &Plan, kind: Kind) -> Vec<String> {
        plan.items_of(kind).map(|item| item.id.clone()).collect()
    }

    #[test]
    fn hidden_intermediates_go_on_the_containerd_store_with_prune_scope_only() {
        // A classic build's untagged intermediate, hidden from the image list,
        // under a tagged image that stays.
        let mut mid = image("mid", &[], &[1], &[10]);
        mid.listed = false;
        let app = image("app", &["app:1"], &[1, 2], &[10, 20]);
        let mut used = image("used", &[], &[3], &[5]);
        used.listed = false;
        let inv = inventory(
            vec![container("web", ContainerState::Running, "used", 0)],
            vec![mid, app, used],
        );
        // The graph driver's store: the engine refuses a parent of an image
        // that stays, and prune leaves it.
        assert!(ids(&plan(&inv, &Rules::default(), 0), Kind::Image).is_empty());
        // The containerd store: by default the same as on overlay2; with
        // --prune-scope a record the engine removes, as its prune does; its
        // layer stays with the child, so it frees nothing; the one a container
        // uses stays.
        let mut store = inv.clone();
        store.engine.image_store = crate::model::ImageStore::Containerd;
        assert!(ids(&plan(&store, &Rules::default(), 0), Kind::Image).is_empty());
        let mut prune = Rules::default();
        prune.prune_scope = true;
        let planned = plan(&store, &prune, 0);
        assert_eq!(ids(&planned, Kind::Image), vec!["sha256:mid"]);
        assert_eq!(planned.total.predicted_bytes, 0);
    }

    #[test]
    fn only_stopped_containers_go() {
        let inv = inventory(
            vec![
                container("exited", ContainerState::Exited, "base", 10),
                container("created", ContainerState::Created, "base", 0),
                container("dead", ContainerState::Dead, "base", 5),
                container("running", ContainerState::Running, "base", 7),
                container("paused", ContainerState::Paused, "base", 7),
                container("restarting", ContainerState::Restarting, "base", 7),
                container("removing", ContainerState::Removing, "base", 7),
                container("odd", ContainerState::Unknown, "base", 7),
            ],
            vec![image("base", &["base:latest"], &[1], &[100])],
        );
        let plan = plan(&inv, &Rules::default(), 0);
        assert_eq!(
            ids(&plan, Kind::Container),
            vec!["exited", "created", "dead"]
        );
        assert_eq!(plan.items[0].reason, Reason::Exited);
        assert_eq!(plan.items[1].reason, Reason::NeverStarted);
        assert_eq!(plan.items[2].reason, Reason::Dead);
        assert_eq!(plan.total.predicted_bytes, 15);
        assert!(ids(&plan, Kind::Image).is_empty(), "tagged images stay");
    }

    #[test]
    fn a_dangling_image_used_by_a_remaining_container_stays() {
        let inv = inventory(
            vec![
                container("runs", ContainerState::Running, "old", 0),
                container("stopped", ContainerState::Exited, "older", 0),
            ],
            vec![
                image("old", &[], &[1, 2], &[100, 10]),
                image("older", &[], &[1, 3], &[100, 20]),
                image("loose", &[], &[4], &[40]),
            ],
        );
        let plan = plan(&inv, &Rules::default(), 0);
        // `older` is used only by a container that goes, so it goes too.
        assert_eq!(
            ids(&plan, Kind::Image),
            vec!["sha256:older", "sha256:loose"]
        );
        // `older` shares its base with `old`, which stays: only its top layer frees.
        let older = plan.items_of(Kind::Image).next().unwrap();
        assert_eq!(older.predicted_bytes, 20);
        assert_eq!(older.frees_layers.len(), 1);
    }

    #[test]
    fn a_shared_base_kept_by_a_tagged_image_is_not_counted() {
        let inv = inventory(
            vec![],
            vec![
                image("tagged", &["app:1"], &[1], &[1000]),
                image("dangling", &[], &[1, 2], &[1000, 30]),
            ],
        );
        let plan = plan(&inv, &Rules::default(), 0);
        assert_eq!(plan.total.predicted_bytes, 30);
    }

    #[test]
    fn a_layer_shared_only_by_planned_images_counts_once() {
        let inv = inventory(
            vec![],
            vec![
                image("a", &[], &[1, 2], &[500, 10]),
                image("b", &[], &[1, 3], &[500, 20]),
            ],
        );
        let plan = plan(&inv, &Rules::default(), 0);
        assert_eq!(plan.total.predicted_bytes, 530);
        let by_image: Vec<u64> = plan
            .items_of(Kind::Image)
            .map(|item| item.predicted_bytes)
            .collect();
        assert_eq!(by_image, vec![510, 20]);
    }

    #[test]
    fn a_hidden_parent_image_used_by_a_container_keeps_its_layers() {
        let mut parent = image("parent", &[], &[1], &[800]);
        parent.listed = false;
        let inv = inventory(
            vec![container("runs", ContainerState::Running, "parent", 0)],
            vec![parent, image("child", &[], &[1, 2], &[800, 5])],
        );
        let plan = plan(&inv, &Rules::default(), 0);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:child"]);
        assert_eq!(plan.total.predicted_bytes, 5);
    }

    fn cache_record(kind: &str) -> crate::model::BuildCacheRecord {
        crate::model::BuildCacheRecord {
            id: "rec".into(),
            kind: kind.into(),
            description: String::new(),
            in_use: false,
            shared: true,
            size: 100,
            parents: vec![],
            created: None,
            last_used: None,
            usage_count: 0,
        }
    }

    #[test]
    fn a_buildkit_layer_held_by_the_build_cache_is_not_counted() {
        let mut built = image("built", &[], &[1, 2], &[800, 60]);
        built.layers[1].buildkit = true;
        let mut inv = inventory(vec![], vec![built]);
        inv.build_cache = vec![cache_record("regular")];
        let held = plan(&inv, &Rules::default(), 0);
        let item = held.items_of(Kind::Image).next().unwrap();
        assert_eq!(
            item.predicted_bytes, 800,
            "only the legacy-built layer frees"
        );
        assert_eq!(item.keeps_layers.len(), 1);
        assert_eq!(item.keeps_layers[0].held_by, BUILD_CACHE_HOLDER);

        // Without build step cache (pruned, or only context sources) it frees.
        inv.build_cache = vec![cache_record("source.local")];
        assert_eq!(plan(&inv, &Rules::default(), 0).total.predicted_bytes, 860);

        // Not listed (API 1.41 without /system/df): as read from BuildKit's file.
        inv.build_cache = vec![];
        inv.build_cache_unlisted = Some(crate::inventory::UnlistedBuildCache {
            holds_build_steps: true,
            ids: vec!["k3p9x2m1q8r7".into()],
        });
        assert_eq!(plan(&inv, &Rules::default(), 0).total.predicted_bytes, 800);
        inv.build_cache_unlisted = Some(crate::inventory::UnlistedBuildCache {
            holds_build_steps: false,
            ids: vec![],
        });
        assert_eq!(plan(&inv, &Rules::default(), 0).total.predicted_bytes, 860);
    }

    #[test]
    fn kept_layers_name_what_holds_them() {
        let inv = inventory(
            vec![container("runs", ContainerState::Running, "in-use", 0)],
            vec![
                image("in-use", &[], &[1, 2], &[100, 10]),
                image("tagged", &["app:1"], &[1, 3], &[100, 20]),
                image("old", &[], &[1, 2, 4], &[100, 10, 5]),
            ],
        );
        let plan = plan(&inv, &Rules::default(), 0);
        let old = plan.items_of(Kind::Image).next().unwrap();
        assert_eq!(old.id, "sha256:old");
        let holders: Vec<&str> = old
            .keeps_layers
            .iter()
            .map(|k| k.held_by.as_str())
            .collect();
        // The base is held by the tagged image first; layer 2 only by the image a
        // running container uses.
        assert_eq!(holders, vec!["image app:1", "image in-use"]);
        assert_eq!(old.frees_layers.len(), 1);
        assert_eq!(old.predicted_bytes, 5);
    }

    fn labelled(mut c: Container, key: &str) -> Container {
        c.labels.insert(key.into(), "yes".into());
        c
    }

    #[test]
    fn keep_rules_and_filters_keep_candidates_out_and_say_why() {
        let mut old = container("old", ContainerState::Exited, "base", 1);
        old.created = 100;
        old.finished_at = Some(200);
        let mut recent = container("recent", ContainerState::Exited, "base", 1);
        recent.created = 100;
        recent.finished_at = Some(9_950);
        let mut web = container("web", ContainerState::Exited, "base", 1);
        web.names = vec!["web-1".into()];
        let pinned = labelled(container("pinned", ContainerState::Dead, "base", 1), "pin");
        let mut young = container("young", ContainerState::Created, "base", 1);
        young.created = 9_990;
        let mut dangling = image("dangling", &[], &[1], &[10]);
        dangling.labels.insert("pin".into(), "yes".into());
        let inv = inventory(
            vec![old, recent, web, pinned, young],
            vec![image("base", &["base:1"], &[2], &[10]), dangling],
        );
        let rules = Rules::parse(
            &["until=1000".into()],
            Some("1h"),
            &["web-*".into()],
            &["pin".into()],
            10_000,
        )
        .unwrap();
        let plan = plan(&inv, &rules, 10_000);
        assert_eq!(ids(&plan, Kind::Container), vec!["old"]);
        assert!(ids(&plan, Kind::Image).is_empty());
        let why: Vec<(&str, &str)> = plan
            .kept
            .iter()
            .map(|k| (k.id.as_str(), k.rule.as_str()))
            .collect();
        assert_eq!(
            why,
            vec![
                ("recent", "--stopped-for (stopped more recently)"),
                ("web", "--keep web-*"),
                ("pinned", "--keep-label pin"),
                ("young", "--filter until (created after the cut-off)"),
                ("sha256:dangling", "--keep-label pin"),
            ]
        );
    }

    #[test]
    fn a_dangling_image_of_a_kept_container_stays_too() {
        let kept = labelled(container("c", ContainerState::Exited, "old", 0), "pin");
        let inv = inventory(vec![kept], vec![image("old", &[], &[1], &[10])]);
        let rules = Rules::parse(&[], None, &[], &["pin".into()], 0).unwrap();
        let plan = plan(&inv, &rules, 0);
        assert!(plan.items.is_empty());
        assert_eq!(plan.kept.len(), 1);
    }

    fn all() -> Rules {
        let mut rules = Rules::default();
        rules.all_images = true;
        rules
    }

    #[test]
    fn all_takes_unused_tagged_images_and_keeps_used_ones() {
        let inv = inventory(
            vec![
                container("runs", ContainerState::Running, "used", 0),
                container("stopped", ContainerState::Exited, "only-stopped", 0),
            ],
            vec![
                image("used", &["web:1"], &[1], &[100]),
                image("unused", &["tool:1", "tool:latest"], &[2], &[50]),
                image("only-stopped", &["job:1"], &[3], &[30]),
            ],
        );
        let plan = plan(&inv, &all(), 0);
        assert_eq!(
            ids(&plan, Kind::Image),
            vec!["sha256:unused", "sha256:only-stopped"]
        );
        let unused = plan.items_of(Kind::Image).next().unwrap();
        assert_eq!(unused.reason, Reason::Unused);
        assert_eq!(unused.tags, vec!["tool:1", "tool:latest"]);
        assert_eq!(plan.total.predicted_bytes, 80);
    }

    #[test]
    fn keep_last_keeps_the_newest_of_each_repository() {
        let mut images = Vec::new();
        for (n, created) in [(1, 10), (2, 20), (3, 30), (4, 40)] {
            let mut image = image(&format!("app{n}"), &[&format!("app:{n}")], &[n], &[10]);
            image.created = created;
            images.push(image);
        }
        let inv = inventory(vec![], images);
        let mut rules = all();
        rules.keep_last = Some(2);
        let plan = plan(&inv, &rules, 0);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:app1", "sha256:app2"]);
        let kept: Vec<&str> = plan.kept.iter().map(|k| k.rule.as_str()).collect();
        assert_eq!(kept, vec!["--keep-last 2 (app)", "--keep-last 2 (app)"]);
    }

    #[test]
    fn an_image_another_remaining_image_is_built_on_stays() {
        let inv = inventory(
            vec![container("runs", ContainerState::Running, "child", 0)],
            vec![
                image("base", &["base:1"], &[1], &[100]),
                image("child", &["child:1"], &[1, 2], &[100, 5]),
                image("other", &["other:1"], &[7], &[9]),
            ],
        );
        let plan = plan(&inv, &all(), 0);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:other"]);
        assert_eq!(plan.kept[0].id, "sha256:base");
        assert_eq!(plan.kept[0].rule, "an image that stays is built on it");
    }

    /// A LABEL-only rebuild (BuildKit: no parent recorded) leaves an image
    /// with the same layers as the new one: it goes, and the new one keeps
    /// the layers.
    #[test]
    fn a_metadata_only_rebuild_is_planned() {
        let mut old = image("old", &["<none>:<none>"], &[1, 2], &[100, 5]);
        old.created = 10;
        let mut new = image("new", &["app:1"], &[1, 2], &[100, 5]);
        new.created = 20;
        let inv = inventory(vec![], vec![old, new]);
        let plan = plan(&inv, &Rules::default(), 30);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:old"]);
        assert!(
            plan.kept.iter().all(|kept| kept.id != "sha256:old"),
            "{:?}",
            plan.kept
        );
    }

    #[test]
    fn a_saved_plan_takes_nothing_a_fresh_plan_would_not() {
        use crate::plan::rules::Scope;
        let inv = inventory(
            vec![
                container("gone-running", ContainerState::Running, "base", 1),
                container("old", ContainerState::Exited, "base", 1),
            ],
            vec![
                image("base", &["base:1"], &[1], &[100]),
                image("retagged", &["app:1", "app:2"], &[2], &[10]),
                image("dangling", &["<none>:<none>"], &[3], &[10]),
            ],
        );
        let saved = vec![
            Item::new(Kind::Container, "old", "old", Reason::Exited),
            Item::new(Kind::Container, "gone-running", "x", Reason::Exited),
            Item::new(Kind::Container, "no-such", "ghost", Reason::Exited),
            Item {
                tags: vec!["app:1".into()],
                ..Item::new(Kind::Image, "sha256:retagged", "app:1", Reason::Unused)
            },
            Item::new(Kind::Image, "sha256:dangling", "<none>", Reason::Dangling),
        ];
        let scope = Scope {
            all_images: true,
            ..Scope::default()
        };
        let plan = plan_saved(&inv, &Rules::default(), 0, &saved, scope);
        assert_eq!(ids(&plan, Kind::Container), vec!["old"]);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:dangling"]);
        let note = plan.saved.unwrap();
        assert_eq!(note.gone.len(), 1);
        let reasons: Vec<&str> = note.not_taken.iter().map(|k| k.rule.as_str()).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("tags changed since the plan was saved")),
            "{reasons:?}"
        );
        assert_eq!(note.not_taken.len(), 2, "{reasons:?}");
    }

    #[test]
    fn a_metadata_only_rebuild_leaves_the_old_image_dangling_and_planned() {
        // The classic builder: COPY made `step`; LABEL v=1 made `old`, then a
        // rebuild with LABEL v=2 made `new` on the same step. Same layers, but
        // `new`'s parent is `step`, not `old`.
        let mut step = image("step", &["<none>:<none>"], &[1], &[100]);
        step.listed = false;
        let mut old = image("old", &["<none>:<none>"], &[1], &[100]);
        old.parent_id = Some("sha256:step".into());
        let mut new = image("new", &["app:1"], &[1], &[100]);
        new.parent_id = Some("sha256:step".into());
        new.created = old.created + 1;
        let inv = inventory(vec![], vec![step, old, new]);
        let plan = plan(&inv, &Rules::default(), 0);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:old"]);
        assert!(plan.kept.is_empty(), "{:?}", plan.kept);
    }

    #[test]
    fn volumes_no_remaining_container_mounts_go_anonymous_first() {
        use crate::model::{Mount, Volume};
        let volume = |name: &str| Volume {
            created: None,
            name: name.into(),
            driver: "local".into(),
            labels: BTreeMap::new(),
            size: Some(10),
            ref_count: None,
        };
        let anon_a = "a".repeat(64);
        let anon_b = "b".repeat(64);
        let mut running = container("runs", ContainerState::Running, "base", 0);
        running.mounts = vec![Mount {
            kind: "volume".into(),
            name: Some("data".into()),
            destination: "/data".into(),
        }];
        let mut stopped = container("stopped", ContainerState::Exited, "base", 0);
        stopped.mounts = vec![Mount {
            kind: "volume".into(),
            name: Some(anon_b.clone()),
            destination: "/scratch".into(),
        }];
        let mut inv = inventory(
            vec![running, stopped],
            vec![image("base", &["b:1"], &[1], &[1])],
        );
        inv.volumes = vec![
            volume("data"),
            volume("old"),
            volume(&anon_a),
            volume(&anon_b),
        ];
        let mut rules = Rules::default();
        rules.volumes = Some(VolumeScope::Anonymous);
        let anonymous = plan(&inv, &rules, 0);
        assert_eq!(
            ids(&anonymous, Kind::Volume),
            vec![anon_a.clone(), anon_b.clone()]
        );
        assert_eq!(
            anonymous.items_of(Kind::Volume).next().unwrap().reason,
            Reason::AnonymousVolume
        );
        // --prune-scope --volumes is that engine's prune: named volumes too
        // before API 1.42, anonymous ones only from 1.42 (#21).
        rules.prune_scope = true;
        let prune_141 = plan(&inv, &rules, 0);
        assert_eq!(
            ids(&prune_141, Kind::Volume),
            vec!["old".to_string(), anon_a.clone(), anon_b.clone()]
        );
        let mut newer = inv.clone();
        newer.engine.api_version = "1.45".into();
        assert_eq!(
            ids(&plan(&newer, &rules, 0), Kind::Volume),
            vec![anon_a.clone(), anon_b.clone()]
        );
        rules.prune_scope = false;
        rules.volumes = Some(VolumeScope::All);
        let all = plan(&inv, &rules, 0);
        assert_eq!(
            ids(&all, Kind::Volume),
            vec!["old".to_string(), anon_a, anon_b]
        );
        assert!(
            plan(&inv, &Rules::default(), 0)
                .items_of(Kind::Volume)
                .next()
                .is_none()
        );
    }

    #[test]
    fn networks_without_remaining_containers_go_never_predefined_ones() {
        use crate::model::Network;
        let network = |id: &str, name: &str, scope: &str| Network {
            id: id.into(),
            name: name.into(),
            driver: "bridge".into(),
            scope: scope.into(),
            labels: BTreeMap::new(),
            created: Some(1),
            ingress: false,
        };
        let mut runs = container("runs", ContainerState::Running, "base", 0);
        runs.networks = vec!["front".into()];
        let mut stopped = container("stopped", ContainerState::Exited, "base", 0);
        stopped.networks = vec!["jobs".into()];
        let mut inv = inventory(
            vec![runs, stopped],
            vec![image("base", &["b:1"], &[1], &[1])],
        );
        inv.networks = vec![
            network("n1", "bridge", "local"),
            network("n2", "none", "local"),
            network("n3", "front", "local"),
            network("n4", "jobs", "local"),
            network("n5", "idle", "local"),
            network("n6", "overlay", "swarm"),
        ];
        let mut rules = Rules::default();
        assert!(
            plan(&inv, &rules, 0)
                .items_of(Kind::Network)
                .next()
                .is_none()
        );
        rules.networks = true;
        assert_eq!(ids(&plan(&inv, &rules, 0), Kind::Network), vec!["n4", "n5"]);
    }

    #[test]
    fn build_cache_unshared_by_default_all_with_all_and_frees_cache_held_layers() {
        let record = |id: &str, shared: bool, in_use: bool| crate::model::BuildCacheRecord {
            id: id.into(),
            kind: "regular".into(),
            description: format!("step {id}"),
            in_use,
            shared,
            size: 100,
            parents: vec![],
            created: Some(1),
            last_used: None,
            usage_count: 0,
        };
        let mut built = image("built", &[], &[1], &[70]);
        built.layers[0].buildkit = true;
        let mut inv = inventory(vec![], vec![built]);
        inv.build_cache = vec![
            record("loose", false, false),
            record("shared", true, false),
            crate::model::BuildCacheRecord {
                kind: "source.local".into(),
                ..record("busy", false, true)
            },
        ];
        let mut rules = Rules::default();
        rules.build_cache = Some(CacheScope::Unshared);
        let unshared = plan(&inv, &rules, 0);
        // The dangling image goes, and its BuildKit layer with it: the record
        // shared with it goes too, as `docker system prune` finds it after the
        // image, pruned only if BuildKit finds it unshared then.
        assert_eq!(ids(&unshared, Kind::BuildCache), vec!["loose", "shared"]);
        let shared = unshared.items.iter().find(|item| item.id == "shared");
        assert_eq!(
            shared.map(|item| item.reason),
            Some(Reason::CacheOfRemovedImages)
        );
        assert_eq!(unshared.total.predicted_bytes, 170);
        // An image that stays has the same BuildKit layer: the shared record is
        // shared with it and stays, holding nothing the plan frees.
        let mut stays = image("stays", &["app:1"], &[1], &[70]);
        stays.layers[0].buildkit = true;
        let mut with_tagged = inv.clone();
        with_tagged.images.push(stays);
        let kept = plan(&with_tagged, &rules, 0);
        assert_eq!(ids(&kept, Kind::BuildCache), vec!["loose"]);
        assert_eq!(kept.total.predicted_bytes, 100);
        // Without --build-cache nothing of the cache goes, and it holds the layer.
        let mut images_only = rules.clone();
        images_only.build_cache = None;
        assert_eq!(plan(&inv, &images_only, 0).total.predicted_bytes, 0);
        rules.build_cache = Some(CacheScope::All);
        let all = plan(&inv, &rules, 0);
        assert_eq!(ids(&all, Kind::BuildCache), vec!["loose", "shared"]);
        // Every step record goes: the image's layer frees with the image.
        // The unshared record, the shared one (nothing while shared), the layer.
        assert_eq!(all.total.predicted_bytes, 170);
    }

    #[test]
    fn a_target_takes_candidates_in_order_until_met() {
        let mut containers = Vec::new();
        for (id, finished) in [("newest", 300), ("oldest", 100), ("middle", 200)] {
            let mut c = container(id, ContainerState::Exited, "base", 10);
            c.finished_at = Some(finished);
            containers.push(c);
        }
        let inv = inventory(
            containers,
            vec![
                image("base", &["b:1"], &[1], &[1]),
                image("dangling", &[], &[2], &[50]),
            ],
        );
        let mut rules = Rules::default();
        rules.target = Some(crate::plan::rules::Target::Free(0));
        // Two oldest containers are enough for 15 bytes.
        let plan15 = plan_to_target(&inv, &rules, 1000, 15);
        assert_eq!(ids(&plan15, Kind::Container), vec!["oldest", "middle"]);
        assert!(ids(&plan15, Kind::Image).is_empty());
        let note = plan15.target.clone().unwrap();
        assert!(note.met);
        assert_eq!((note.taken, note.candidates), (2, 4));
        assert!(
            plan15
                .kept
                .iter()
                .any(|k| k.id == "newest" && k.rule.contains("met before it"))
        );
        // All containers and then the dangling image for 60.
        assert_eq!(plan_to_target(&inv, &rules, 1000, 60).items.len(), 4);
        // More than everything: all of it, marked unmet.
        let too_much = plan_to_target(&inv, &rules, 1000, 10_000);
        assert_eq!(too_much.items.len(), 4);
        assert!(!too_much.target.unwrap().met);
        // Nothing needed: nothing planned.
        assert!(plan_to_target(&inv, &rules, 1000, 0).items.is_empty());
    }

    fn used(mut image: Image, at: i64) -> Image {
        image.last_use = Some(crate::model::LastUse {
            at,
            source: crate::model::UseSource::Event,
        });
        image
    }

    #[test]
    fn a_target_takes_the_least_recently_used_images_first_and_spares_fresh_ones() {
        // Built in order a (oldest) … e; a and b were run since, by jobs
        // that left no container; e was pulled a minute ago.
        let inv = inventory(
            vec![],
            vec![
                used(image("a", &["a:1"], &[1], &[10]), 5000),
                used(image("b", &["b:1"], &[2], &[10]), 4900),
                used(image("c", &["c:1"], &[3], &[10]), 1100),
                used(image("d", &["d:1"], &[4], &[10]), 1200),
                used(image("e", &["e:1"], &[5], &[10]), 5950),
            ],
        );
        let mut rules = Rules::default();
        rules.all_images = true;
        rules.target = Some(crate::plan::rules::Target::Free(0));
        rules.min_idle = Some(std::time::Duration::from_secs(3600));
        let plan = plan_to_target(&inv, &rules, 6000, 20);
        assert_eq!(ids(&plan, Kind::Image), vec!["sha256:c", "sha256:d"]);
        // More than the idle ones hold: b and a (used 18 and 16 minutes ago)
        // are idle for less than an hour, e too: all three stay.
        let all = plan_to_target(&inv, &rules, 6000, 1000);
        assert_eq!(ids(&all, Kind::Image), vec!["sha256:c", "sha256:d"]);
        let kept: Vec<&str> = all
            .kept
            .iter()
            .filter(|k| k.rule.starts_with("--min-idle 1h"))
            .map(|k| k.id.as_str())
            .collect();
        assert_eq!(kept, vec!["sha256:a", "sha256:b", "sha256:e"]);
        // Without the grace period, same-age images go largest first.
        rules.min_idle = None;
        let mut big = inv.clone();
        big.images[1] = used(image("b", &["b:1"], &[2], &[30]), 5000);
        let plan = plan_to_target(&big, &rules, 6000, 45);
        assert_eq!(
            ids(&plan, Kind::Image),
            vec!["sha256:b", "sha256:c", "sha256:d"]
        );
    }

    #[test]
    fn kubelets_containers_stay_unless_asked_and_so_do_their_images() {
        let mut pod = container("pod", ContainerState::Exited, "pause", 10);
        pod.labels
            .insert("io.kubernetes.pod.name".into(), "web-0".into());
        let inv = inventory(vec![pod], vec![image("pause", &["pause:3"], &[1], &[5])]);
        let mut rules = Rules::default();
        rules.all_images = true;
        let kept = plan(&inv, &rules, 1000);
        assert!(kept.items.is_empty());
        assert!(kept.kept[0].rule.starts_with("kubelet's to collect"));
        rules.kubernetes = true;
        assert_eq!(plan(&inv, &rules, 1000).items.len(), 2);
    }

    #[test]
    fn a_build_cache_budget_keeps_the_most_recently_used_within_it() {
        let record =
            |id: &str, size: u64, last_used: i64, in_use: bool| crate::model::BuildCacheRecord {
                id: id.into(),
                size,
                in_use,
                shared: false,
                last_used: Some(last_used),
                ..cache_record("regular")
            };
        let mut inv = inventory(vec![], vec![]);
        inv.build_cache = vec![
            record("busy", 40, 10, true),
            record("old", 30, 100, false),
            record("recent", 30, 300, false),
            record("middle", 30, 200, false),
        ];
        let mut rules = Rules::default();
        rules.build_cache = Some(CacheScope::All);
        rules.build_cache_keep = Some(100);
        let plan = plan(&inv, &rules, 1000);
        // In use (40) + recent (30) + middle (30) = 100 stay; old goes.
        assert_eq!(ids(&plan, Kind::BuildCache), vec!["old"]);
        rules.build_cache_keep = Some(69);
        let plan = plan_within_budget(&inv, &rules);
        assert_eq!(plan, vec!["middle", "old", "recent"]);
    }

    fn plan_within_budget(inv: &Inventory, rules: &Rules) -> Vec<String> {
        let mut ids: Vec<String> = plan(inv, rules, 1000)
            .items
            .iter()
            .map(|item| item.id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn log(container: &str, name: &str, active: bool, allocated: u64) -> crate::model::LogFile {
        crate::model::LogFile {
            container_id: container.into(),
            dir: format!("/var/lib/docker/containers/{container}"),
            name: name.into(),
            driver: "json-file".into(),
            active,
            allocated,
            apparent: allocated,
            dev: 1,
            ino: allocated,
            modified: 0,
            append_only: Some(true),
            compressed_rotation: false,
        }
    }

    #[test]
    fn logs_of_containers_that_stay_are_planned_where_it_is_safe() {
        let mut inv = inventory(
            vec![
                container("web", ContainerState::Running, "base", 0),
                container("old", ContainerState::Exited, "base", 0),
            ],
            vec![image("base", &["b:1"], &[1], &[1])],
        );
        inv.logs = vec![
            log("web", "web-json.log", true, 500),
            log("web", "web-json.log.1", false, 300),
            log("old", "old-json.log", true, 900),
        ];
        let mut rules = Rules::default();
        rules.logs = Some(crate::plan::rules::LogScope { over: Some(400) });
        let ids = |plan: &Plan| -> Vec<String> {
            plan.items_of(Kind::Log)
                .map(|item| item.id.clone())
                .collect()
        };
        // Docker 20.10: the rotated file and the oversized active log; the
        // stopped container's log goes with it.
        let plan = plan(&inv, &rules, 1000);
        assert_eq!(ids(&plan), vec!["web/web-json.log", "web/web-json.log.1"]);
        assert_eq!(
            plan.items_of(Kind::Log)
                .map(|i| i.predicted_bytes)
                .sum::<u64>(),
            800
        );
        // Written without O_APPEND (after a rotation): left, with the reason.
        inv.logs[0].append_only = Some(false);
        let plan = super::plan(&inv, &rules, 1000);
        assert_eq!(ids(&plan), vec!["web/web-json.log.1"]);
        assert!(plan.kept.iter().any(|k| k.rule.contains("O_APPEND")));
        // Docker 23 and later: never truncated.
        inv.logs[0].append_only = Some(true);
        inv.engine.api_version = "1.45".into();
        let plan = super::plan(&inv, &rules, 1000);
        assert_eq!(ids(&plan), vec!["web/web-json.log.1"]);
        assert!(
            plan.kept
                .iter()
                .any(|k| k.rule.contains("not truncated on Docker"))
        );
    }

    #[test]
    fn usage_after_is_current_minus_predicted() {
        let mut inv = inventory(
            vec![container("c", ContainerState::Exited, "base", 300)],
            vec![image("base", &["base:1"], &[1], &[100])],
        );
        inv.layers_size = 100;
        let plan = plan(&inv, &Rules::default(), 0);
        assert_eq!(plan.total.current_bytes, 400);
        assert_eq!(plan.total.predicted_bytes, 300);
        assert_eq!(plan.total.after_bytes(), 100);
    }

    proptest::proptest! {
        /// Each kind's CURRENT is never below its RECLAIM (#21): CURRENT counts
        /// what RECLAIM counts, from the same figures, and more. On generated
        /// hosts: images sharing layers, containers in every state on them,
        /// volumes, build cache records shared or not, every scope.
        #[test]
        fn current_is_never_below_reclaim(
            images in proptest::collection::vec(
                (proptest::collection::vec(0u8..6, 1..4), proptest::bool::ANY, 0u8..1),
                1..8,
            ),
            containers in proptest::collection::vec((0usize..8, 0u8..4, 0u64..3_000), 0..8),
            volumes in proptest::collection::vec((proptest::bool::ANY, 0u64..4_000), 0..4),
            records in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY, 0u64..2_000), 0..4),
            all in proptest::bool::ANY,
            every_volume in proptest::bool::ANY,
            all_cache in proptest::bool::ANY,
        ) {
            let images: Vec<Image> = images
                .iter()
                .enumerate()
                .map(|(n, (diffs, tagged, _))| {
                    let tag = format!("repo{n}:1");
                    let tags: Vec<&str> = if *tagged { vec![tag.as_str()] } else { vec![] };
                    // The chain is the prefix of a shared sequence, so layers are shared.
                    let mut chain = diffs.clone();
                    chain.sort_unstable();
                    chain.dedup();
                    // One layer has one size, whichever image it is in.
                    let sizes: Vec<u64> = chain.iter().map(|d| u64::from(*d) * 100 + 7).collect();
                    Image {
                        created: 1000 + i64::try_from(n).unwrap_or(0),
                        ..image(&format!("{n:064x}"), &tags, &chain, &sizes)
                    }
                })
                .collect();
            let states = [ContainerState::Running, ContainerState::Exited, ContainerState::Created, ContainerState::Paused];
            let containers: Vec<Container> = containers
                .iter()
                .enumerate()
                .map(|(n, (image, state, size))| {
                    let image = &images[image % images.len()].id;
                    container(&format!("c{n}"), states[usize::from(*state)], image.trim_start_matches("sha256:"), *size)
                })
                .collect();
            let mut host = inventory(containers, images);
            host.volumes = volumes
                .iter()
                .enumerate()
                .map(|(n, (named, size))| Volume {
                    name: if *named { format!("data{n}") } else { format!("{n:064x}") },
                    driver: "local".into(),
                    created: Some(0),
                    labels: BTreeMap::new(),
                    size: Some(*size),
                    ref_count: Some(0),
                })
                .collect();
            host.build_cache = records
                .iter()
                .enumerate()
                .map(|(n, (shared, in_use, size))| crate::model::BuildCacheRecord {
                    id: format!("cache{n}"),
                    kind: "regular".into(),
                    description: String::new(),
                    in_use: *in_use,
                    shared: *shared,
                    size: *size,
                    parents: Vec::new(),
                    created: Some(0),
                    last_used: None,
                    usage_count: 0,
                })
                .collect();
            let mut rules = Rules::default();
            rules.all_images = all;
            rules.volumes = Some(if every_volume { VolumeScope::All } else { VolumeScope::Anonymous });
            rules.networks = true;
            rules.build_cache = Some(if all_cache { CacheScope::All } else { CacheScope::Unshared });
            let plan = plan(&host, &rules, 10_000);
            for (kind, figures) in &plan.by_kind {
                proptest::prop_assert!(
                    figures.current_bytes >= figures.predicted_bytes,
                    "{kind:?}: CURRENT {} below RECLAIM {}",
                    figures.current_bytes,
                    figures.predicted_bytes
                );
            }
        }
    }
}
