//! Measures bytes on disk under the data root, the way `du` does: allocated
//! blocks (and apparent sizes), each inode once however many hard links it has,
//! symlinks never followed, other filesystems never entered.
//!
//! The storage layout the engine uses there is in [`overlay2`]; the
//! filesystem's own figures (size, free space) in [`fs`]. Nothing here knows
//! about plans: [`crate::measure::sizes`] asks these modules what a plan's items take.
//!
//! Two layouts are known here: the overlay2 storage driver's ([`overlay2`])
//! and the containerd image store's with its overlayfs snapshotter
//! ([`containerd`], whose metadata [`bolt`] reads). With another storage
//! driver, or a data root this process cannot read (a remote engine, not
//! root), there is no [`Layout`] and every figure stays the engine's estimate.

mod bolt;
pub(crate) mod breakdown;
pub(crate) mod buildkit;
pub(crate) mod cache;
pub(crate) mod containerd;
pub(crate) mod fs;
pub(crate) mod logs;
pub(crate) mod overlay2;
mod readers;
pub(crate) mod records;
mod refs;
pub(crate) mod sizes;
mod walk;

pub(crate) use overlay2::{Layout, Orphan};
pub(crate) use walk::Index;
#[cfg(test)]
pub(crate) use walk::Walk;

pub(crate) use crate::model::Bytes;

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::walk::HANDLE_DEPTH;
    use super::*;
    use crate::model::ImageStore;
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    #[test]
    fn counts_hard_links_once_and_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, vec![7u8; 10_000]).unwrap();
        std::fs::hard_link(&file, dir.path().join("again")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let mut walk = Walk::new();
        let bytes = walk.measure(dir.path());
        let dir_size = std::fs::metadata(dir.path()).unwrap().size();
        let link_size = "/etc".len() as u64;
        assert_eq!(bytes.apparent, dir_size + 10_000 + link_size);
        assert!(bytes.allocated >= 10_000);
        // Measuring again in the same walk adds nothing: everything was seen.
        assert_eq!(walk.measure(dir.path()), Bytes::default());
        assert!(!walk.incomplete);
    }

    #[test]
    fn a_missing_path_is_zero_and_complete() {
        let mut walk = Walk::new();
        assert_eq!(walk.measure(Path::new("/no/such/path")), Bytes::default());
        assert!(!walk.incomplete);
    }

    #[test]
    fn the_index_files_bytes_by_owner_and_matches_a_plain_walk() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        std::fs::create_dir_all(base.join("overlay2/abc/diff/etc")).unwrap();
        std::fs::write(base.join("overlay2/abc/diff/etc/big"), vec![1u8; 50_000]).unwrap();
        std::fs::create_dir_all(base.join("overlay2/l")).unwrap();
        std::os::unix::fs::symlink("../abc/diff", base.join("overlay2/l/SHORT")).unwrap();
        std::fs::create_dir_all(base.join("containers/c1")).unwrap();
        std::fs::write(base.join("containers/c1/log"), vec![2u8; 9_000]).unwrap();
        std::fs::create_dir_all(base.join("image/overlay2/layerdb/sha256/chain")).unwrap();
        std::fs::write(
            base.join("image/overlay2/layerdb/sha256/chain/size"),
            "50000",
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", base.join("overlay2/l/ODD")).unwrap();
        let index = Index::build(base);
        assert_eq!(index.total, Walk::new().measure(base));
        let abc = Walk::new().measure(&base.join("overlay2/abc"));
        assert_eq!(
            index.owned(base, &base.join("containers/c1")),
            Walk::new().measure(&base.join("containers/c1"))
        );
        assert_eq!(
            index.owned(base, &base.join("image/overlay2/layerdb/sha256/chain")),
            Walk::new().measure(&base.join("image/overlay2/layerdb/sha256/chain"))
        );
        // The layer's short-name link is filed with the layer; a link that
        // points elsewhere keeps its own owner.
        assert_eq!(
            index.owned(base, &base.join("overlay2/abc")),
            abc + Walk::new().measure(&base.join("overlay2/l/SHORT"))
        );
        assert!(index.owned(base, &base.join("overlay2/l/ODD")).apparent > 0);
        assert!(!index.incomplete);
    }

    #[test]
    fn unchanging_subtrees_are_taken_from_the_cache_only_while_unchanged() {
        use super::cache::Sizes;
        use super::walk::Reuse;
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        for layer in ["img", "rw", "linked"] {
            std::fs::create_dir_all(base.join(format!("overlay2/{layer}/diff"))).unwrap();
            std::fs::write(
                base.join(format!("overlay2/{layer}/diff/f")),
                vec![1u8; 20_000],
            )
            .unwrap();
        }
        std::fs::hard_link(
            base.join("overlay2/rw/diff/f"),
            base.join("overlay2/linked/diff/g"),
        )
        .unwrap();
        let unchanging: HashSet<String> = ["overlay2/img", "overlay2/linked"]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        let walk = |known: &Sizes| {
            let walked = Index::build_reusing(
                base,
                Reuse {
                    unchanging: &|key| unchanging.contains(key),
                    known: known.clone(),
                },
            );
            (walked.index, walked.fresh, walked.changed)
        };
        let (first, kept, changed) = walk(&Sizes::default());
        assert!(changed);
        assert_eq!(first.total, Walk::new().measure(base));
        // Kept: the unchanging layer; not the one that changes, nor one with a
        // hard link (another owner may count that inode).
        assert!(kept.entries.contains_key("overlay2/img"));
        assert!(!kept.entries.contains_key("overlay2/rw"));
        assert!(!kept.entries.contains_key("overlay2/linked"));
        // Reused as kept: a second walk gives the same figures.
        let (second, again, changed) = walk(&kept);
        assert_eq!(second.total, first.total);
        assert_eq!(again, kept);
        assert!(!changed);
        // A kept size is what is used while the directory is unchanged
        // (doctored here to show it is not walked)…
        let mut doctored = kept.clone();
        if let Some(entry) = doctored.entries.get_mut("overlay2/img") {
            entry.allocated += 4096;
        }
        let (reused, _, _) = walk(&doctored);
        assert_eq!(reused.total.allocated, first.total.allocated + 4096);
        // …and not once it changed: the directory made anew under the same name.
        std::fs::remove_dir_all(base.join("overlay2/img")).unwrap();
        std::fs::create_dir_all(base.join("overlay2/img/diff")).unwrap();
        std::fs::write(base.join("overlay2/img/diff/f"), vec![1u8; 90_000]).unwrap();
        let (changed, _, fresh) = walk(&doctored);
        assert_eq!(changed.total, Walk::new().measure(base));
        assert!(fresh);
    }

    #[test]
    fn a_hard_link_shared_by_two_owners_counts_once_in_the_parallel_walk() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        for n in 0..40 {
            let dir = base.join(format!("overlay2/layer{n:02}/diff"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("own"), vec![3u8; 4096 * (n + 1)]).unwrap();
        }
        let shared = base.join("overlay2/layer00/diff/shared");
        std::fs::write(&shared, vec![4u8; 100_000]).unwrap();
        std::fs::hard_link(&shared, base.join("overlay2/layer39/diff/shared")).unwrap();
        let index = Index::build(base);
        assert_eq!(index.total, Walk::new().measure(base));
        let first = index.owned(base, &base.join("overlay2/layer00"));
        let last = index.owned(base, &base.join("overlay2/layer39"));
        // The shared file counts for one of the two layers, not both.
        let with_it = |bytes: Bytes, own: u64| bytes.apparent >= own + 100_000;
        assert!(
            with_it(first, 4096) != with_it(last, 4096 * 40),
            "{first:?} {last:?}"
        );
        assert!(!index.incomplete);
    }

    #[test]
    fn top_level_directories_bigger_than_a_batch_are_looked_at_in_order() {
        // More entries than one batch of the top walk, looked at by several
        // threads: every layer still gets its link, and a file linked twice
        // at the top (in different batches) counts once.
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        std::fs::create_dir_all(base.join("overlay2/l")).unwrap();
        std::fs::create_dir_all(base.join("links")).unwrap();
        for n in 0..2500 {
            let layer = base.join(format!("overlay2/layer{n:04}/diff"));
            std::fs::create_dir_all(&layer).unwrap();
            std::fs::write(layer.join("f"), vec![5u8; 100 + n]).unwrap();
            std::os::unix::fs::symlink(
                format!("../layer{n:04}/diff"),
                base.join(format!("overlay2/l/S{n:04}")),
            )
            .unwrap();
        }
        std::fs::write(base.join("links/first"), vec![6u8; 30_000]).unwrap();
        for n in 0..1500 {
            std::fs::hard_link(
                base.join("links/first"),
                base.join(format!("links/n{n:04}")),
            )
            .unwrap();
        }
        let index = Index::build(base);
        assert!(!index.incomplete);
        assert_eq!(index.total, Walk::new().measure(base));
        for n in [0, 1023, 1024, 2499] {
            let layer = base.join(format!("overlay2/layer{n:04}"));
            let link = base.join(format!("overlay2/l/S{n:04}"));
            assert_eq!(
                index.owned(base, &layer),
                Walk::new().measure(&layer) + Walk::new().measure(&link)
            );
        }
    }

    #[test]
    fn the_index_walks_trees_deeper_than_it_keeps_handles_for() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        // A container can nest its files as deep as it likes.
        let mut deep = base.join("overlay2/abc/diff");
        for level in 0..(HANDLE_DEPTH + 20) {
            deep.push(format!("d{level}"));
            if level % 7 == 0 {
                // Siblings at some levels keep several directories pending.
                std::fs::create_dir_all(deep.with_file_name(format!("s{level}"))).unwrap();
            }
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("bottom"), vec![3u8; 12_345]).unwrap();
        // The same inode under two owners counts once.
        std::fs::create_dir_all(base.join("containers/c1")).unwrap();
        std::fs::hard_link(deep.join("bottom"), base.join("containers/c1/linked")).unwrap();
        let index = Index::build(base);
        assert!(!index.incomplete);
        assert_eq!(index.total, Walk::new().measure(base));
        let abc = index.owned(base, &base.join("overlay2/abc"));
        let c1 = index.owned(base, &base.join("containers/c1"));
        let apart = Walk::new().measure(&base.join("overlay2/abc")).apparent
            + Walk::new().measure(&base.join("containers/c1")).apparent;
        assert_eq!(abc.apparent + c1.apparent, apart - 12_345);
    }

    #[test]
    fn a_containers_finish_time_comes_from_its_saved_state() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        std::fs::create_dir_all(base.join("image/overlay2/layerdb/sha256")).unwrap();
        for (id, state) in [
            (
                "exited",
                r#"{"State":{"Running":false,"FinishedAt":"2026-11-27T10:00:00.123456789Z"},"ID":"exited"}"#,
            ),
            (
                "never",
                r#"{"State":{"FinishedAt":"0001-01-01T00:00:00Z"}}"#,
            ),
            ("broken", "{not json"),
        ] {
            std::fs::create_dir_all(base.join("containers").join(id)).unwrap();
            std::fs::write(
                base.join("containers").join(id).join("config.v2.json"),
                state,
            )
            .unwrap();
        }
        let layout =
            Layout::open(base.to_str().unwrap(), "overlay2", ImageStore::Graphdriver).unwrap();
        assert_eq!(layout.finished_at("exited"), Some(Some(1_795_773_600)));
        assert_eq!(layout.finished_at("never"), Some(None));
        // Unreadable or missing: ask the engine.
        assert_eq!(layout.finished_at("broken"), None);
        assert_eq!(layout.finished_at("missing"), None);
        assert_eq!(layout.finished_at("../exited"), None);
    }

    #[test]
    fn orphans_are_the_overlay2_dirs_nothing_refers_to() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let layerdb = base.join("image/overlay2/layerdb");
        std::fs::create_dir_all(layerdb.join("sha256/chain")).unwrap();
        std::fs::write(layerdb.join("sha256/chain/cache-id"), "layer1").unwrap();
        std::fs::create_dir_all(layerdb.join("mounts/c1")).unwrap();
        std::fs::write(layerdb.join("mounts/c1/mount-id"), "rw1").unwrap();
        std::fs::write(layerdb.join("mounts/c1/init-id"), "rw1-init").unwrap();
        for dir in [
            "layer1/diff",
            "rw1/diff",
            "rw1-init/diff",
            "l",
            "cachesnap/diff",
            "stray/diff",
        ] {
            std::fs::create_dir_all(base.join("overlay2").join(dir)).unwrap();
        }
        std::fs::write(base.join("overlay2/stray/diff/junk"), vec![0u8; 20_000]).unwrap();
        let layout =
            Layout::open(base.to_str().unwrap(), "overlay2", ImageStore::Graphdriver).unwrap();
        let index = layout.index();
        let cache: HashSet<&str> = ["cachesnap"].into_iter().collect();
        let orphans = layout.orphans(&index, &cache);
        assert_eq!(orphans.len(), 1, "{orphans:?}");
        assert_eq!(orphans[0].name, "stray");
        assert!(orphans[0].bytes.apparent >= 20_000);
    }

    #[test]
    fn layout_paths_follow_the_overlay2_layout() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        let layerdb = base.join("image/overlay2/layerdb");
        std::fs::create_dir_all(layerdb.join("sha256/abc")).unwrap();
        std::fs::write(layerdb.join("sha256/abc/cache-id"), "cache1").unwrap();
        std::fs::create_dir_all(base.join("overlay2/cache1")).unwrap();
        std::fs::write(base.join("overlay2/cache1/link"), "SHORT\n").unwrap();
        std::fs::create_dir_all(base.join("overlay2/l")).unwrap();
        std::os::unix::fs::symlink("../cache1/diff", base.join("overlay2/l/SHORT")).unwrap();
        std::fs::create_dir_all(layerdb.join("mounts/c1")).unwrap();
        std::fs::write(layerdb.join("mounts/c1/mount-id"), "m1").unwrap();
        std::fs::write(layerdb.join("mounts/c1/init-id"), "m1-init").unwrap();
        let layout =
            Layout::open(base.to_str().unwrap(), "overlay2", ImageStore::Graphdriver).unwrap();
        assert_eq!(
            Layout::open(base.to_str().unwrap(), "btrfs", ImageStore::Graphdriver).unwrap_err(),
            crate::model::Unmeasured::Driver("btrfs".into())
        );
        // The short-name link is filed under the layer's own key by the walk.
        assert_eq!(
            Layout::layer_keys(&layout.refs(), "sha256:abc"),
            ["overlay2/cache1", "image/overlay2/layerdb/sha256/abc"]
        );
        let index = layout.index();
        assert_eq!(
            index.owned_key("overlay2/cache1"),
            Walk::new().measure(&base.join("overlay2/cache1"))
                + Walk::new().measure(&base.join("overlay2/l/SHORT"))
        );
        assert!(index.owner("overlay2/l/SHORT").is_none());
        assert_eq!(
            Layout::container_keys(&layout.refs(), "c1"),
            [
                "containers/c1",
                "overlay2/m1",
                "overlay2/m1-init",
                "image/overlay2/layerdb/mounts/c1",
            ]
        );
    }
}
