//! What BuildKit keeps under the data root, read without the engine: whether
//! it has any cache record at all.
//!
//! BuildKit's records (`cache/metadata/metadata.go`: one bucket per record
//! under `_main` in `metadata_v2.db`, which moby keeps in `DATA-ROOT/buildkit`,
//! `builder/builder-next/controller.go`) are what the image accounting asks
//! about: while a build step record remains, a BuildKit-made layer nothing
//! else holds stays. Before API 1.42 only the whole `/system/df` lists them;
//! this says whether asking for it can matter.

use std::path::Path;

use super::bolt::{self, Db};

/// BuildKit's metadata, relative to the data root.
const METADATA: &str = "buildkit/metadata_v2.db";

/// Whether BuildKit may hold records under `data_root`: false only when its
/// metadata is missing or has none; a file that cannot be read may have some.
/// Read once per run (the connection and the inventory both ask).
pub(crate) fn may_have_records(data_root: &Path) -> bool {
    static READ: std::sync::Mutex<Option<(std::path::PathBuf, bool)>> = std::sync::Mutex::new(None);
    let Ok(mut read) = READ.lock() else {
        return read_records(data_root);
    };
    match read.as_ref() {
        Some((root, found)) if root == data_root => *found,
        _ => {
            let found = read_records(data_root);
            *read = Some((data_root.to_path_buf(), found));
            found
        }
    }
}

fn read_records(data_root: &Path) -> bool {
    let db = match Db::open(&data_root.join(METADATA)) {
        Ok(db) => db,
        Err(bolt::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    match db.root().bucket(b"_main") {
        Ok(Some(main)) => main.buckets().map_or(true, |records| !records.is_empty()),
        Ok(None) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::bolt::tests::{Builder, bucket};

    #[test]
    fn records_are_found_or_their_absence_is_known() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!read_records(dir.path()), "no metadata file");
        std::fs::create_dir(dir.path().join("buildkit")).unwrap();
        let path = dir.path().join(METADATA);
        std::fs::write(&path, b"not bolt").unwrap();
        assert!(
            read_records(dir.path()),
            "an unreadable file may hold records"
        );
        std::fs::write(&path, Builder::new().build(vec![("_main", bucket(vec![]))])).unwrap();
        assert!(!read_records(dir.path()), "an empty _main");
        std::fs::write(
            &path,
            Builder::new().build(vec![("_main", bucket(vec![("abc123", bucket(vec![]))]))]),
        )
        .unwrap();
        assert!(read_records(dir.path()), "one record");
    }
}
