//! Saved plans: written by `--dry-run --plan-out FILE` (the JSON plan), read back
//! by `apply FILE`, which refuses any plan that is not for this engine, too old,
//! or not a well-formed plan. Every refusal is one line and deletes nothing.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use serde::Deserialize;

use crate::exit::UsageError;
use crate::files;
use crate::model::EngineInfo;
use crate::plan::rules::Scope;
use crate::plan::{Item, Kind, Plan, Reason};
use crate::render::{self, SCHEMA_VERSION};

/// How far in the future a plan's time may be (clock skew) before it is refused.
const FUTURE_SLACK_SECS: i64 = 300;

/// Writes the plan as JSON to `path`: a regular file through a temp file and a
/// rename, so that a reader never sees half a plan; a pipe or terminal written
/// into, never replaced; links and other devices refused.
pub(crate) async fn write(path: &Path, engine: &EngineInfo, plan: &Plan, now: i64) -> Result<()> {
    let mut body = Vec::new();
    let show = render::Show {
        dry_run: true,
        verbose: false,
        now,
        width: None,
        color: false,
    };
    render::plan_json(&mut body, engine, plan, &show)?;
    files::write_output(path, &body, "the plan").await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    schema_version: u32,
    generated_at: String,
    engine: SavedEngine,
    items: Vec<SavedItem>,
    #[serde(rename = "dry_run")]
    _dry_run: Option<bool>,
    #[serde(rename = "totals")]
    _totals: Option<serde_json::Value>,
    #[serde(rename = "kept")]
    _kept: Option<serde_json::Value>,
    #[serde(rename = "target")]
    _target: Option<serde_json::Value>,
    /// Missing in plans from before scopes were saved: the default scope.
    #[serde(default)]
    scope: Scope,
    #[serde(rename = "saved_plan")]
    _saved_plan: Option<serde_json::Value>,
}

/// A saved plan, checked: its items and the scope it was made in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedPlan {
    pub(crate) items: Vec<Item>,
    pub(crate) scope: Scope,
}

#[derive(Deserialize)]
struct SavedEngine {
    id: String,
    data_root: String,
}

#[derive(Deserialize)]
struct SavedItem {
    kind: Kind,
    id: String,
    name: String,
    reason: Reason,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    finished_at: Option<i64>,
    predicted_bytes: u64,
}

/// Reads and checks a saved plan for `engine`, made at most `max_age` before `now`.
pub(crate) fn load(
    path: &Path,
    engine: &EngineInfo,
    now: i64,
    max_age: Duration,
) -> Result<SavedPlan, UsageError> {
    let shown = path.display();
    let body = files::read_limited(path, "plan file")?;
    parse(&body, engine, now, max_age)
        .map_err(|why| UsageError(format!("refusing plan file {shown}: {why}")))
}

fn parse(
    body: &[u8],
    engine: &EngineInfo,
    now: i64,
    max_age: Duration,
) -> Result<SavedPlan, String> {
    let saved: Saved =
        serde_json::from_slice(body).map_err(|err| format!("not a docker-reclaim plan ({err})"))?;
    if saved.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "schema_version {} is not the {SCHEMA_VERSION} this version reads",
            saved.schema_version
        ));
    }
    // Daemons on one host can share an ID (from /etc/docker/key.json); the data
    // root tells them apart.
    if saved.engine.id != engine.id || saved.engine.data_root != engine.data_root {
        return Err(format!(
            "it was made on engine {:?} with data root {}, and this is engine {:?} with data root {} at {}",
            saved.engine.id, saved.engine.data_root, engine.id, engine.data_root, engine.host
        ));
    }
    let made = humantime::parse_rfc3339(&saved.generated_at).map_err(|err| {
        format!(
            "generated_at {:?} is not a time ({err})",
            saved.generated_at
        )
    })?;
    let made = made.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    if made > now + FUTURE_SLACK_SECS {
        return Err(format!(
            "it is dated {} in the future",
            render::age(made - now)
        ));
    }
    let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if now - made > max {
        return Err(format!(
            "it is {} old, older than --max-age {}; make a new one",
            render::age(now - made),
            humantime::format_duration(max_age)
        ));
    }

    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(saved.items.len());
    for (index, saved) in saved.items.into_iter().enumerate() {
        if saved.reason.kind() != saved.kind {
            return Err(format!(
                "item {index}: reason {:?} is for {}s, not {}s",
                saved.reason.describe(),
                saved.reason.kind().word(),
                saved.kind.word()
            ));
        }
        if !valid_id(saved.kind, &saved.id) {
            return Err(format!(
                "item {index}: {:?} is not a full {} ID",
                saved.id,
                saved.kind.word()
            ));
        }
        if !seen.insert(saved.id.clone()) {
            return Err(format!("item {index}: {} appears twice", saved.id));
        }
        items.push(Item {
            tags: saved.tags,
            created: saved.created,
            finished_at: saved.finished_at,
            predicted_bytes: saved.predicted_bytes,
            ..Item::new(saved.kind, saved.id, saved.name, saved.reason)
        });
    }
    Ok(SavedPlan {
        items,
        scope: saved.scope,
    })
}

fn is_hex64(raw: &str) -> bool {
    raw.len() == 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Full IDs only: a short or edited ID could name something else.
fn valid_id(kind: Kind, id: &str) -> bool {
    match kind {
        Kind::Container => is_hex64(id),
        Kind::Image => id.strip_prefix("sha256:").is_some_and(is_hex64),
        // Docker's volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]*
        Kind::Volume => {
            id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        }
        Kind::Network => is_hex64(id),
        // A container's ID, then its log file's name under its directory.
        Kind::Log => id.split_once('/').is_some_and(|(container, name)| {
            is_hex64(container) && crate::model::valid_log_name(container, name)
        }),
        // BuildKit record IDs: lowercase letters and digits.
        Kind::BuildCache => {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::summarize;

    const NOW: i64 = 1_795_823_600;

    fn engine(id: &str) -> EngineInfo {
        EngineInfo {
            id: id.into(),
            version: "20.10.24".into(),
            api_version: "1.41".into(),
            data_root: "/var/lib/docker".into(),
            storage_driver: "overlay2".into(),
            host: "unix:///var/run/docker.sock".into(),
            ..EngineInfo::default()
        }
    }

    fn saved_plan(made: i64) -> Vec<u8> {
        let items = vec![
            Item {
                created: 1,
                finished_at: Some(2),
                predicted_bytes: 10,
                ..Item::new(Kind::Container, "a".repeat(64), "stopped", Reason::Exited)
            },
            Item {
                created: 1,
                predicted_bytes: 20,
                ..Item::new(
                    Kind::Image,
                    format!("sha256:{}", "b".repeat(64)),
                    "<none>",
                    Reason::Dangling,
                )
            },
        ];
        let inventory = crate::inventory::Inventory {
            engine: engine("E1"),
            containers: vec![],
            images: vec![],
            volumes: vec![],
            networks: vec![],
            build_cache: vec![],
            layers_size: 0,
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
        };
        let plan = summarize(items, &inventory);
        let mut out = Vec::new();
        let show = render::Show {
            dry_run: true,
            verbose: false,
            now: made,
            width: None,
            color: false,
        };
        render::plan_json(&mut out, &engine("E1"), &plan, &show).unwrap();
        out
    }

    #[test]
    fn round_trips_a_fresh_plan() {
        let items = parse(
            &saved_plan(NOW - 60),
            &engine("E1"),
            NOW,
            Duration::from_secs(3600),
        )
        .unwrap()
        .items;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].kind, Kind::Container);
        assert_eq!(items[1].reason, Reason::Dangling);
        assert_eq!(items[1].predicted_bytes, 20);
    }

    #[test]
    fn refuses_another_engine_a_stale_plan_and_nonsense() {
        let hour = Duration::from_secs(3600);
        let fresh = saved_plan(NOW - 60);
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (fresh.clone(), "E2", "made on engine"),
            (saved_plan(NOW - 7200), "E1", "older than --max-age"),
            (saved_plan(NOW + 7200), "E1", "in the future"),
            (
                fresh[..fresh.len() / 2].to_vec(),
                "E1",
                "not a docker-reclaim plan",
            ),
            (b"[]".to_vec(), "E1", "not a docker-reclaim plan"),
            (
                String::from_utf8(fresh.clone())
                    .unwrap()
                    .replace(&"a".repeat(64), "abc")
                    .into_bytes(),
                "E1",
                "not a full container ID",
            ),
            (
                String::from_utf8(fresh.clone())
                    .unwrap()
                    .replace("\"dangling\"", "\"exited\"")
                    .into_bytes(),
                "E1",
                "is for containers, not images",
            ),
            (
                String::from_utf8(fresh.clone())
                    .unwrap()
                    .replace("\"schema_version\": 1", "\"schema_version\": 9")
                    .into_bytes(),
                "E1",
                "schema_version 9",
            ),
            (
                String::from_utf8(fresh.clone())
                    .unwrap()
                    .replace(&format!("sha256:{}", "b".repeat(64)), &"a".repeat(64))
                    .replace("\"kind\": \"image\"", "\"kind\": \"container\"")
                    .replace("\"dangling\"", "\"exited\"")
                    .into_bytes(),
                "E1",
                "appears twice",
            ),
        ];
        for (body, engine_id, needle) in cases {
            let err = parse(&body, &engine(engine_id), NOW, hour).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2000,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any edit of a saved plan (bytes overwritten, cut short, spliced)
        /// is either read as a plan or refused with a reason: never a panic,
        /// and what is read holds only full IDs of the kinds it names.
        #[test]
        fn edited_plans_never_panic(
            edits in proptest::collection::vec((0usize..4096, proptest::num::u8::ANY), 0..16),
            cut in proptest::option::of(0usize..4096),
        ) {
            let mut body = saved_plan(NOW - 60);
            for (at, byte) in edits {
                let len = body.len();
                body[at % len] = byte;
            }
            if let Some(cut) = cut {
                body.truncate(cut % (body.len() + 1));
            }
            if let Ok(saved) = parse(&body, &engine("E1"), NOW, Duration::from_secs(3600)) {
                for item in saved.items {
                    proptest::prop_assert!(valid_id(item.kind, &item.id));
                    proptest::prop_assert_eq!(item.reason.kind(), item.kind);
                }
            }
        }

        /// Arbitrary bytes are refused with an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            // No run of arbitrary bytes is a plan this engine made.
            proptest::prop_assert!(parse(&body, &engine("E1"), NOW, Duration::from_secs(3600)).is_err());
        }
    }
}
