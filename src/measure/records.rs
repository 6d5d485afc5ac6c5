//! The engine's own container records, read from its data root: the
//! container list without asking the engine to make one.
//!
//! Docker keeps each container's state in `containers/<id>/config.v2.json`
//! and writes it whenever that state changes (moby v20.10.24 and v26.1.5
//! `container/container.go` `CheckpointTo`, through `toDisk`), and it builds
//! its in-memory list from these files when it starts (`daemon/daemon.go`
//! `restore`, `load`). Its `/containers/json` answers from that list, but on
//! the containerd image store it first asks containerd, for every container,
//! whether the reference it was created from still names its image (v26.1.5
//! `daemon/list.go` `refreshImage`): 2.3–2.6 s for 1,000 containers, where
//! these files read in tens of milliseconds (README, Benchmarks).
//!
//! The files are only read, never followed through a link. What they say is
//! used only when it agrees with the engine: the number of containers per
//! state must equal the counts `/info` gives at the same time (see
//! [`StateCounts`]); otherwise the plan asks the engine for its list, as it
//! always did. Either way apply asks the engine again about each item just
//! before touching it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::{Container, ContainerState, Mount, StateCounts, unix_seconds};

/// How large one record may be: a container with thousands of labels and
/// environment variables is still far below.
const MAX_RECORD: u64 = 4 * 1024 * 1024;

/// The containers recorded under `root` (a Docker data root) and their counts
/// per state; `None` when any record cannot be read or parsed (the engine
/// itself would skip such a container; the engine's own list decides then).
pub(crate) fn read_containers(root: &Path) -> Option<(Vec<Container>, StateCounts)> {
    let dir = root.join("containers");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).ok()? {
        let name = entry.ok()?.file_name();
        let name = name.to_str()?;
        // Only the engine's own directories: 64 hex digits each.
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            names.push(name.to_string());
        }
    }
    // Read by several threads: with the page cache dropped each record waits
    // on the disk.
    let read = super::readers::in_chunks(&names, |names| read_some(&dir, names));
    let mut containers = Vec::with_capacity(names.len());
    for (_, some) in read {
        containers.extend(some.flatten()?);
    }
    let mut counts = StateCounts::default();
    for container in &containers {
        counts.count(container.state);
    }
    Some((containers, counts))
}

/// The records of the containers `names` under `dir`; `None` if any fails.
fn read_some(dir: &Path, names: &[String]) -> Option<Vec<Container>> {
    names
        .iter()
        .map(|name| {
            let body = crate::files::read_bounded_no_follow(
                &dir.join(name).join("config.v2.json"),
                MAX_RECORD,
            )
            .ok()?;
            let container = parse(&body).ok()?;
            (container.id == *name).then_some(container)
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Record {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    created: String,
    path: String,
    args: Vec<String>,
    image: String,
    state: RecordState,
    config: RecordConfig,
    mount_points: BTreeMap<String, RecordMount>,
    network_settings: RecordNetworks,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RecordState {
    running: bool,
    paused: bool,
    restarting: bool,
    removal_in_progress: bool,
    dead: bool,
    started_at: String,
    finished_at: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RecordConfig {
    image: String,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RecordMount {
    #[serde(rename = "Type")]
    kind: String,
    name: String,
    destination: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RecordNetworks {
    networks: Option<BTreeMap<String, RecordEndpoint>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RecordEndpoint {
    #[serde(rename = "NetworkID")]
    network_id: Option<String>,
}

/// One record as the engine's list would show it (moby v26.1.5
/// `container/view.go` `transform` and `daemon/list.go`).
fn parse(body: &[u8]) -> serde_json::Result<Container> {
    let record: Record = serde_json::from_slice(body)?;
    let state = &record.state;
    // `StateString` (container/state.go).
    let state_now = if state.running {
        if state.paused {
            ContainerState::Paused
        } else if state.restarting {
            ContainerState::Restarting
        } else {
            ContainerState::Running
        }
    } else if state.removal_in_progress {
        ContainerState::Removing
    } else if state.dead {
        ContainerState::Dead
    } else if unix_seconds(&state.started_at).is_none() {
        ContainerState::Created
    } else {
        ContainerState::Exited
    };
    let finished_at = if state_now == ContainerState::Created {
        None
    } else {
        unix_seconds(&state.finished_at)
    };
    // The list's `Command`: the path, then the arguments, those with a space
    // in single quotes (`transform`).
    let command = std::iter::once(record.path.clone())
        .chain(record.args.iter().map(|arg| {
            if arg.contains(' ') {
                format!("'{arg}'")
            } else {
                arg.clone()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Container {
        names: vec![record.name.trim_start_matches('/').to_string()],
        image_id: record.image,
        // The reference it was created from; the engine shows the image ID
        // instead when that reference names another image now, which only
        // the name shown for a container whose image is gone depends on.
        image: record.config.image,
        command,
        state: state_now,
        created: unix_seconds(&record.created).unwrap_or(0),
        finished_at,
        size_rw: 0,
        mounts: record
            .mount_points
            .into_values()
            .map(|mount| {
                // Records from before mount types were kept (Docker 1.13):
                // a named mount is a volume.
                let kind = if !mount.kind.is_empty() {
                    mount.kind
                } else if mount.name.is_empty() {
                    "bind".to_string()
                } else {
                    "volume".to_string()
                };
                Mount {
                    kind,
                    name: Some(mount.name).filter(|name| !name.is_empty()),
                    destination: mount.destination,
                }
            })
            .collect(),
        labels: record.config.labels.unwrap_or_default(),
        networks: record
            .network_settings
            .networks
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(name, endpoint)| {
                std::iter::once(name).chain(endpoint.network_id.filter(|id| !id.is_empty()))
            })
            .collect::<Vec<_>>()
            // Room for four names otherwise: 0.5 MB at 11,000 containers.
            .into_boxed_slice()
            .into_vec(),
        id: record.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn record(id: &str, state: &str) -> String {
        format!(
            r#"{{"State":{state},"ID":"{id}","Created":"2026-12-01T10:00:00.5Z","Path":"sh","Args":["-c","sleep 1"],
            "Config":{{"Image":"app:1","Labels":{{"v":"3"}}}},"Image":"sha256:{ID_B}",
            "NetworkSettings":{{"Networks":{{"none":{{"NetworkID":""}},"br":{{"NetworkID":"n1"}}}}}},
            "Name":"/web","MountPoints":{{"/data":{{"Type":"volume","Name":"data","Destination":"/data"}},
            "/old":{{"Name":"","Destination":"/old"}}}}}}"#
        )
    }

    #[test]
    fn a_record_reads_as_the_engines_list_shows_it() {
        let exited = parse(
            record(
                ID_A,
                r#"{"Running":false,"StartedAt":"2026-12-01T10:00:01Z","FinishedAt":"2026-12-01T11:00:00Z"}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(exited.id, ID_A);
        assert_eq!(exited.names, vec!["web"]);
        assert_eq!(exited.image_id, format!("sha256:{ID_B}"));
        assert_eq!(exited.image, "app:1");
        assert_eq!(exited.command, "sh -c 'sleep 1'");
        assert_eq!(exited.state, ContainerState::Exited);
        assert_eq!(exited.created, 1_796_119_200);
        assert_eq!(exited.finished_at, Some(1_796_122_800));
        assert_eq!(exited.labels.get("v").map(String::as_str), Some("3"));
        assert_eq!(exited.networks, vec!["br", "n1", "none"]);
        assert_eq!(
            exited.mounts,
            vec![
                Mount {
                    kind: "volume".into(),
                    name: Some("data".into()),
                    destination: "/data".into()
                },
                Mount {
                    kind: "bind".into(),
                    name: None,
                    destination: "/old".into()
                },
            ]
        );
        let state = |raw: &str| parse(record(ID_A, raw).as_bytes()).unwrap().state;
        let started = r#""StartedAt":"2026-12-01T10:00:01Z""#;
        assert_eq!(
            state(r#"{"StartedAt":"0001-01-01T00:00:00Z"}"#),
            ContainerState::Created
        );
        assert_eq!(
            state(&format!(r#"{{"Running":true,{started}}}"#)),
            ContainerState::Running
        );
        assert_eq!(
            state(&format!(r#"{{"Running":true,"Paused":true,{started}}}"#)),
            ContainerState::Paused
        );
        assert_eq!(
            state(&format!(
                r#"{{"Running":true,"Restarting":true,{started}}}"#
            )),
            ContainerState::Restarting
        );
        assert_eq!(
            state(&format!(r#"{{"RemovalInProgress":true,{started}}}"#)),
            ContainerState::Removing
        );
        assert_eq!(
            state(&format!(r#"{{"Dead":true,{started}}}"#)),
            ContainerState::Dead
        );
    }

    #[test]
    fn the_records_are_counted_as_info_counts_them_and_a_bad_one_spoils_all() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("containers");
        let write = |id: &str, body: &str| {
            std::fs::create_dir_all(dir.join(id)).unwrap();
            std::fs::write(dir.join(id).join("config.v2.json"), body).unwrap();
        };
        let started = r#""StartedAt":"2026-12-01T10:00:01Z""#;
        write(
            ID_A,
            &record(
                ID_A,
                &format!(r#"{{"Running":true,"Restarting":true,{started}}}"#),
            ),
        );
        write(
            ID_B,
            &record(ID_B, &format!(r#"{{"Running":true,{started}}}"#)),
        );
        // Not the engine's: ignored.
        std::fs::create_dir_all(dir.join("lost+found")).unwrap();
        let (containers, counts) = read_containers(root.path()).unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(
            counts,
            StateCounts {
                running: 1,
                paused: 0,
                stopped: 1
            }
        );
        // A record that names another container, a broken one, a link, a
        // missing one: the engine's list decides.
        let c = "c".repeat(64);
        write(&c, &record(ID_A, "{}"));
        assert!(read_containers(root.path()).is_none());
        write(&c, "{not json");
        assert!(read_containers(root.path()).is_none());
        std::fs::remove_file(dir.join(&c).join("config.v2.json")).unwrap();
        std::os::unix::fs::symlink(
            dir.join(ID_A).join("config.v2.json"),
            dir.join(&c).join("config.v2.json"),
        )
        .unwrap();
        assert!(read_containers(root.path()).is_none());
        std::fs::remove_file(dir.join(&c).join("config.v2.json")).unwrap();
        assert!(read_containers(root.path()).is_none());
    }
}
