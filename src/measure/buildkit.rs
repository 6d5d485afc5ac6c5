//! What BuildKit keeps under the data root, read without the engine: whether
//! it has a build step's cache record.
//!
//! BuildKit's records (`cache/metadata/metadata.go`: one bucket per record
//! under `_main` in `metadata_v2.db`, which moby keeps in `DATA-ROOT/buildkit`,
//! `builder/builder-next/controller.go`) are what the image accounting asks
//! about: while a build step's record remains, a BuildKit-made layer nothing
//! else holds stays. Before API 1.42 only the whole `/system/df` lists them,
//! and it makes the engine measure everything; where the data root is read
//! here, their types are read from that file instead.

use std::path::Path;

use super::bolt::{self, Db};

/// BuildKit's metadata, relative to the data root.
const METADATA: &str = "buildkit/metadata_v2.db";

/// The key of a record's type in its bucket (moby v20.10.24,
/// `vendor/github.com/moby/buildkit/cache/metadata.go`, `keyRecordType`).
const RECORD_TYPE: &[u8] = b"cache.recordType";

/// The key naming a record's mutable twin (`keyEqualMutable`, same file).
const EQUAL_MUTABLE: &[u8] = b"cache.equalMutable";

/// BuildKit's records under a data root, as far as the plan needs them
/// when the engine does not list them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Records {
    /// Every record's ID: on the graphdriver store, BuildKit's snapshots
    /// are `overlay2/<ID>` directories, which no image layer names.
    pub(crate) ids: Vec<String>,
    /// A build step's record (type `regular`) is among them.
    pub(crate) holds_build_steps: bool,
}

/// BuildKit's records under `data_root`: none when its metadata is missing,
/// `None` when the file cannot be read (it may have some). Read once per run
/// (the connection and the inventory both ask).
pub(crate) fn records(data_root: &Path) -> Option<Records> {
    type Read = Option<(std::path::PathBuf, Option<Records>)>;
    static READ: std::sync::Mutex<Read> = std::sync::Mutex::new(None);
    let Ok(mut read) = READ.lock() else {
        return read_records(data_root);
    };
    match read.as_ref() {
        Some((root, found)) if root == data_root => found.clone(),
        _ => {
            let found = read_records(data_root);
            *read = Some((data_root.to_path_buf(), found.clone()));
            found
        }
    }
}

fn read_records(data_root: &Path) -> Option<Records> {
    match Db::read(&data_root.join(METADATA), read_main) {
        Ok(records) => Some(records),
        Err(bolt::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            Some(Records::default())
        }
        Err(_) => None,
    }
}

fn read_main(db: &Db) -> Result<Records, bolt::Error> {
    let mut records = Records::default();
    let Some(main) = db.root().bucket(b"_main")? else {
        return Ok(records);
    };
    main.each_bucket(|id, record| {
        records.ids.push(String::from_utf8_lossy(id).into_owned());
        let values = record.entries()?;
        let value_of = |wanted: &[u8]| values.value(wanted).map(string_value);
        // The committed twin of a mutable record (a local source's) names it
        // and carries no type: the engine lists only the other one
        // (`DiskUsage`, "ignore duplicates that share data"). Once the twin
        // is released the key stays, empty (`clearEqualMutable`).
        if value_of(EQUAL_MUTABLE)
            .flatten()
            .is_some_and(|twin| !twin.is_empty())
        {
            return Ok(());
        }
        // No type, or one that does not read, is `regular`, as the engine
        // lists it (`GetRecordType` gives "", which `DiskUsage` calls regular).
        if value_of(RECORD_TYPE)
            .flatten()
            .is_none_or(|kind| kind.is_empty() || kind == "regular")
        {
            records.holds_build_steps = true;
        }
        Ok(())
    })?;
    Ok(records)
}

/// A string as BuildKit stores one (a record's type, its twin's ID): a
/// `metadata.Value` in JSON whose `value` is the string in JSON.
fn string_value(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Value {
        value: Option<String>,
    }
    serde_json::from_slice::<Value>(value).ok()?.value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::bolt::tests::{Builder, bucket, value};

    fn holds(root: &Path) -> Option<bool> {
        read_records(root).map(|records| records.holds_build_steps)
    }

    #[test]
    fn build_steps_are_found_or_their_absence_is_known() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holds(dir.path()), Some(false), "no metadata file");
        std::fs::create_dir(dir.path().join("buildkit")).unwrap();
        let path = dir.path().join(METADATA);
        std::fs::write(&path, b"not bolt").unwrap();
        assert_eq!(
            holds(dir.path()),
            None,
            "an unreadable file may hold records"
        );
        let write = |records: Vec<(&str, crate::measure::bolt::tests::Node)>| {
            std::fs::write(
                &path,
                Builder::new().build(vec![("_main", bucket(records))]),
            )
            .unwrap();
        };
        write(vec![]);
        assert_eq!(holds(dir.path()), Some(false), "an empty _main");
        let typed = |kind: &str| {
            bucket(vec![
                (
                    "cache.description",
                    value(r#"{"value":"mount / from exec"}"#),
                ),
                (
                    "cache.recordType",
                    value(&format!(r#"{{"value":"{kind}"}}"#)),
                ),
            ])
        };
        // As a context sent twice leaves them: each local source's committed
        // twin names its mutable record and has no type of its own.
        let twin = |of: &str| {
            bucket(vec![
                (
                    "cache.equalMutable",
                    value(&format!(r#"{{"value":"{of}"}}"#)),
                ),
                ("snapshot.size", value(r#"{"value":-1}"#)),
            ])
        };
        write(vec![
            ("a1", typed("source.local")),
            ("a2", twin("a1")),
            ("b2", typed("exec.cachemount")),
            ("c3", typed("frontend")),
        ]);
        assert_eq!(
            holds(dir.path()),
            Some(false),
            "records, none of a build step"
        );
        assert_eq!(
            read_records(dir.path()).map(|records| records.ids),
            Some(vec!["a1".into(), "a2".into(), "b2".into(), "c3".into()]),
            "every record's ID, twins too: each may name a snapshot directory"
        );
        write(vec![
            ("a1", typed("source.local")),
            ("b2", typed("regular")),
        ]);
        assert_eq!(holds(dir.path()), Some(true), "a build step's");
        // A build step's record as BuildKit 0.8 leaves it: no type, its twin
        // key emptied.
        write(vec![
            ("a1", typed("source.local")),
            (
                "b2",
                bucket(vec![
                    (
                        "cache.description",
                        value(r#"{"value":"mount / from exec"}"#),
                    ),
                    ("cache.equalMutable", value("")),
                ]),
            ),
        ]);
        assert_eq!(holds(dir.path()), Some(true), "a build step's, untyped");
        write(vec![("a1", bucket(vec![]))]);
        assert_eq!(
            holds(dir.path()),
            Some(true),
            "no type is a build step's, as the engine lists it"
        );
        write(vec![("a1", bucket(vec![("cache.recordType", value("{"))]))]);
        assert_eq!(holds(dir.path()), Some(true), "nor one that does not read");
    }
}
