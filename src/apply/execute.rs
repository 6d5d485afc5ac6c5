//! Carries out a plan item by item: re-checks each item just before removing it,
//! removes only by the plan's IDs, never with force, a few at a time, and stops
//! starting new deletions once asked to.
//!
//! Order: all containers first (they hold images), then images children before
//! parents, in waves; the items of one wave run with bounded concurrency.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use std::collections::HashMap;

use crate::apply::progress::Progress;
use crate::apply::report::{ItemResult, Outcome};
use crate::engine::{Engine, Refused, Removal};
use crate::inventory::Inventory;
use crate::model::{ContainerState, short_id};
use crate::plan::{Item, Kind, Plan, Reason};

/// What stops new deletions: a signal (`stop`), or the engine going away
/// (`gone`, set here on the first failure to reach it).
#[derive(Clone, Copy)]
pub(crate) struct StopSignals<'a> {
    pub(crate) stop: &'a AtomicBool,
    pub(crate) gone: &'a AtomicBool,
}

impl StopSignals<'_> {
    fn halted(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.gone.load(Ordering::SeqCst)
    }

    /// The outcome for an error from the engine: a refusal is this item's
    /// failure; anything else means the engine is not answering, and no new
    /// deletion starts after it.
    fn failed(&self, doing: &str, err: &anyhow::Error) -> Outcome {
        if crate::engine::is_refusal(err) {
            Outcome::Failed(format!("{doing}{err:#}"))
        } else {
            self.gone.store(true, Ordering::SeqCst);
            Outcome::Failed(format!("{doing}the engine stopped answering ({err:#})"))
        }
    }
}

/// Applies `plan`, telling `progress` as each item finishes. `inventory` is the
/// snapshot the plan was checked against; it orders images. Once `stop` is set,
/// no new deletion starts; those already under way finish.
pub(crate) async fn apply(
    engine: &impl Engine,
    plan: &Plan,
    inventory: &Inventory,
    jobs: usize,
    flags: StopSignals<'_>,
    progress: &mut dyn Progress,
) -> Vec<ItemResult> {
    let jobs = jobs.max(1);
    let mut results = Vec::with_capacity(plan.items.len());
    for phase in phases(plan, inventory) {
        // Containers are re-checked a batch at a time with one list call; images
        // one by one.
        let batch = if phase
            .first()
            .is_some_and(|item| item.kind == Kind::Container)
        {
            jobs * CONTAINER_BATCH_PER_JOB
        } else {
            phase.len().max(1)
        };
        if phase.first().is_some_and(|item| item.kind == Kind::Log) {
            let over = plan.scope.logs.and_then(|scope| scope.over);
            for item in phase {
                let outcome = if flags.halted() {
                    Outcome::NotStarted
                } else {
                    crate::apply::logs::carry_out(engine, item, inventory, over)
                        .await
                        .unwrap_or_else(|err| flags.failed("inspecting its container: ", &err))
                };
                let result = ItemResult {
                    item: item.clone(),
                    outcome,
                };
                progress.item(&result);
                results.push(result);
            }
            continue;
        }
        if phase
            .first()
            .is_some_and(|item| item.kind == Kind::BuildCache)
        {
            for result in prune_build_cache(engine, &phase, flags).await {
                progress.item(&result);
                results.push(result);
            }
            continue;
        }
        let chunks: Vec<&[&Item]> = phase.chunks(batch).collect();
        // The states of the next batch are listed while this one is removed, so
        // that the engine never waits for a list between batches; they are at most
        // one batch (a few dozen milliseconds) old when their containers go, and
        // the engine itself refuses to remove a running container without force.
        let mut next = batch_states(engine, chunks.first().copied(), flags).await;
        for (index, chunk) in chunks.iter().enumerate() {
            let states = next.take();
            let states = states.as_ref();
            let run = async {
                let mut running = futures_util::stream::iter(chunk.iter())
                    .map(|item| async move {
                        let outcome = if flags.halted() {
                            Outcome::NotStarted
                        } else {
                            carry_out(engine, item, states, flags).await
                        };
                        ItemResult {
                            item: (*item).clone(),
                            outcome,
                        }
                    })
                    .buffer_unordered(jobs);
                while let Some(result) = running.next().await {
                    progress.item(&result);
                    results.push(result);
                }
            };
            let following = batch_states(engine, chunks.get(index + 1).copied(), flags);
            let ((), following) = futures_util::join!(run, following);
            next = following;
        }
    }
    results
}

/// The current state of a batch of containers, with one list call; `None` for
/// a batch of other kinds, or once the run is stopping.
async fn batch_states(
    engine: &impl Engine,
    chunk: Option<&[&Item]>,
    flags: StopSignals<'_>,
) -> Option<States> {
    let chunk = chunk.filter(|chunk| {
        chunk
            .first()
            .is_some_and(|item| item.kind == Kind::Container)
            && !flags.halted()
    })?;
    let ids: Vec<&str> = chunk.iter().map(|item| item.id.as_str()).collect();
    Some(engine.container_states(&ids).await)
}

/// Containers re-checked per list call, per concurrent job: small enough that the
/// listing is milliseconds old when each container goes.
const CONTAINER_BATCH_PER_JOB: usize = 4;

/// The order items go in: one phase of containers, then image waves (an image
/// only after every planned image built on it), then the other kinds.
pub(crate) fn phases<'a>(plan: &'a Plan, inventory: &Inventory) -> Vec<Vec<&'a Item>> {
    let mut phases = Vec::new();
    let containers: Vec<&Item> = plan.items_of(Kind::Container).collect();
    if !containers.is_empty() {
        phases.push(containers);
    }
    phases.extend(image_waves(plan.items_of(Kind::Image).collect(), inventory));
    for kind in [Kind::Volume, Kind::Network, Kind::BuildCache, Kind::Log] {
        let items: Vec<&Item> = plan.items_of(kind).collect();
        if !items.is_empty() {
            phases.push(items);
        }
    }
    phases
}

/// Planned images in waves: each wave holds the images that no other remaining
/// planned image is built on, so children go before their parents.
fn image_waves<'a>(mut pending: Vec<&'a Item>, inventory: &Inventory) -> Vec<Vec<&'a Item>> {
    let by_id = inventory.images_by_id();
    let mut waves = Vec::new();
    while !pending.is_empty() {
        let (wave, rest): (Vec<&Item>, Vec<&Item>) = pending.iter().partition(|candidate| {
            let Some(image) = by_id.get(candidate.id.as_str()) else {
                return true;
            };
            !pending.iter().any(|other| {
                other.id != candidate.id
                    && by_id
                        .get(other.id.as_str())
                        .is_some_and(|child| child.is_built_on(image))
            })
        });
        if wave.is_empty() {
            // Cannot happen with a strict order; never loop forever.
            waves.push(rest);
            break;
        }
        waves.push(wave);
        pending = rest;
    }
    waves
}

/// Container states listed just before a batch, or the error listing them.
type States = anyhow::Result<HashMap<String, ContainerState>>;

/// Re-checks one item against the engine as it is now, then removes it.
async fn carry_out(
    engine: &impl Engine,
    item: &Item,
    states: Option<&States>,
    flags: StopSignals<'_>,
) -> Outcome {
    let checked = match item.kind {
        Kind::Container => recheck_container(item, states, flags),
        Kind::Image => recheck_image(engine, item, flags).await,
        Kind::Volume => recheck_volume(engine, item, flags).await,
        Kind::Network => recheck_network(engine, item, flags).await,
        other @ (Kind::BuildCache | Kind::Log) => Err(Outcome::Skipped(format!(
            "this version does not remove {}s",
            other.word()
        ))),
    };
    if let Err(outcome) = checked {
        return outcome;
    }
    let removal = match item.kind {
        Kind::Container => engine.remove_container(&item.id).await,
        Kind::Volume => engine.remove_volume(&item.id).await,
        Kind::Network => engine.remove_network(&item.id).await,
        _ => match remove_image(engine, item).await {
            Ok(Ok(removal)) => Ok(removal),
            Ok(Err(outcome)) => return outcome,
            Err(err) => Err(err),
        },
    };
    match removal {
        Ok(Removal::Removed) => Outcome::Removed,
        Ok(Removal::AlreadyGone) => Outcome::AlreadyGone,
        // The engine itself refuses to remove a running, paused or restarting
        // container, or a volume in use, without force: it changed since the
        // re-check, so it stays.
        Err(err)
            if matches!(item.kind, Kind::Container | Kind::Volume | Kind::Network)
                && err
                    .downcast_ref::<Refused>()
                    .is_some_and(|refused| refused.status == 409) =>
        {
            Outcome::Skipped(format!("changed since the plan: {err:#}"))
        }
        Err(err) => flags.failed("", &err),
    }
}

/// Build cache goes by prunes restricted to one planned ID each (the engine
/// takes one value per filter); each record's outcome is what the engine says it
/// deleted. A record still needed by another is kept by the engine, so those
/// left are tried again after each round that deleted something.
async fn prune_build_cache(
    engine: &impl Engine,
    items: &[&Item],
    flags: StopSignals<'_>,
) -> Vec<ItemResult> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    loop {
        let mut progress = false;
        for (index, item) in items.iter().enumerate() {
            if outcomes[index]
                .as_ref()
                .is_some_and(|o| *o != Outcome::NotStarted)
            {
                continue;
            }
            if flags.halted() {
                outcomes[index] = Some(Outcome::NotStarted);
                continue;
            }
            let even_shared = item.reason != Reason::CacheOfRemovedImages;
            match engine
                .prune_build_cache(&[item.id.as_str()], even_shared)
                .await
            {
                Ok(deleted) if deleted.contains(&item.id) => {
                    outcomes[index] = Some(Outcome::Removed);
                    progress = true;
                }
                Ok(_) => {}
                Err(err) => outcomes[index] = Some(flags.failed("", &err)),
            }
        }
        if !progress || flags.halted() {
            break;
        }
    }
    items
        .iter()
        .zip(outcomes)
        .map(|(item, outcome)| ItemResult {
            item: (*item).clone(),
            outcome: outcome.unwrap_or_else(|| {
                Outcome::Skipped(if item.reason == Reason::CacheOfRemovedImages {
                    "still shared with an image that stays (or in use since the plan)".into()
                } else {
                    "the engine kept it (in use since the plan, or needed by a record that stays)"
                        .into()
                })
            }),
        })
        .collect()
}

/// An image with several tags cannot be removed by ID without force: its tags
/// but one go first, then the image by ID (which takes the last tag with it).
/// The engine only removes a tag by its name, so just before each one goes,
/// the tag is looked up: one that now names another image is left alone and
/// the image is skipped. The image itself is only ever removed by its ID.
///
/// The engine offers no way to remove a tag by the ID it names (moby
/// `daemon/images/image_delete.go` resolves the name when the DELETE arrives,
/// and deletes the image it names when that was its last reference), so a tag
/// moved to another image between the look-up and the DELETE, a window of
/// one round trip, takes that image with it. That cannot be prevented from
/// outside; it is found out from the engine's answer, which lists what it
/// deleted: the run stops touching this image, and the report names the
/// image that went as a failure (exit 6), with a warning on stderr.
async fn remove_image(
    engine: &impl Engine,
    item: &Item,
) -> anyhow::Result<Result<Removal, Outcome>> {
    for tag in item.tags.iter().skip(1) {
        match engine.tag_target(tag).await? {
            Some(target) if target == item.id => {}
            Some(other) => {
                return Ok(Err(Outcome::Skipped(format!(
                    "tag {tag} now names image {}, not this one: left alone",
                    short_id(&other)
                ))));
            }
            None => {
                return Ok(Err(Outcome::Skipped(format!(
                    "tag {tag} was removed since the plan"
                ))));
            }
        }
        let deleted = engine.untag_image(tag).await?;
        let unplanned: Vec<&String> = deleted.iter().filter(|id| **id != item.id).collect();
        if !unplanned.is_empty() {
            let named: Vec<&str> = unplanned.iter().map(|id| short_id(id)).collect();
            let why = format!(
                "removing tag {tag}, the engine also deleted image {}, which was not planned: the tag was moved to it after it was checked; this image was left",
                named.join(", ")
            );
            crate::note(&format!("docker-reclaim: warning: {why}"));
            return Ok(Err(Outcome::Failed(why)));
        }
    }
    Ok(Ok(engine.remove_image(&item.id).await?))
}

/// `Ok` when the container may go; otherwise the outcome to report instead.
/// The engine enforces the same rule again when it removes the container: a
/// removal without force fails for a running, paused or restarting one.
fn recheck_container(
    item: &Item,
    states: Option<&States>,
    flags: StopSignals<'_>,
) -> Result<(), Outcome> {
    match states {
        None => Err(Outcome::Failed("re-checking it: no listing".into())),
        Some(Err(err)) => Err(flags.failed("re-checking it: ", err)),
        Some(Ok(states)) => match states.get(&item.id) {
            None => Err(Outcome::AlreadyGone),
            Some(state) if state.is_stopped() => Ok(()),
            Some(state) => Err(Outcome::Skipped(format!(
                "{} since the plan",
                state_word(*state)
            ))),
        },
    }
}

async fn recheck_image(
    engine: &impl Engine,
    item: &Item,
    flags: StopSignals<'_>,
) -> Result<(), Outcome> {
    let tags = match engine.image_tags(&item.id).await {
        Err(err) => return Err(flags.failed("re-checking it: ", &err)),
        Ok(None) => return Err(Outcome::AlreadyGone),
        Ok(Some(tags)) => tags,
    };
    let mut now_tagged = tags.clone();
    now_tagged.sort();
    let mut planned = item.tags.clone();
    planned.sort();
    if now_tagged != planned {
        return Err(Outcome::Skipped(if item.reason == Reason::Dangling {
            format!("tagged {} since the plan", tags.join(", "))
        } else {
            format!(
                "tags changed since the plan: now {}",
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            )
        }));
    }
    match engine.containers_using_image(&item.id).await {
        Err(err) => Err(flags.failed("re-checking it: ", &err)),
        Ok(users) if users.is_empty() => Ok(()),
        Ok(users) => Err(Outcome::Skipped(format!(
            "used by container {} since the plan",
            users
                .iter()
                .map(|id| short_id(id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn recheck_volume(
    engine: &impl Engine,
    item: &Item,
    flags: StopSignals<'_>,
) -> Result<(), Outcome> {
    match engine.containers_using_volume(&item.id).await {
        Err(err) => Err(flags.failed("re-checking it: ", &err)),
        Ok(users) if users.is_empty() => Ok(()),
        Ok(users) => Err(Outcome::Skipped(format!(
            "mounted by container {} since the plan",
            users
                .iter()
                .map(|id| short_id(id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A network goes only if no container, in any state, is attached to it or
/// configured to attach to it (a created container that has not started yet).
async fn recheck_network(
    engine: &impl Engine,
    item: &Item,
    flags: StopSignals<'_>,
) -> Result<(), Outcome> {
    match engine.containers_using_network(&item.id, &item.name).await {
        Err(err) => Err(flags.failed("re-checking it: ", &err)),
        Ok(None) => Err(Outcome::AlreadyGone),
        Ok(Some(users)) if users.is_empty() => Ok(()),
        Ok(Some(users)) => Err(Outcome::Skipped(format!(
            "container {} uses it since the plan",
            users
                .iter()
                .map(|id| short_id(id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn state_word(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Removing => "being removed",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
        ContainerState::Unknown => "in an unknown state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EngineInfo, Image};
    use crate::plan::summarize;
    use crate::testing;

    fn image(id: &str, chain: &[&str], created: i64) -> Image {
        let layers = chain.iter().map(|c| testing::layer(c, 1)).collect();
        Image {
            created,
            ..testing::image(id, &[], layers)
        }
    }

    fn item(kind: Kind, id: &str) -> Item {
        Item {
            predicted_bytes: 1,
            ..Item::new(
                kind,
                id,
                id,
                if kind == Kind::Image {
                    Reason::Dangling
                } else {
                    Reason::Exited
                },
            )
        }
    }

    fn inventory(images: Vec<Image>) -> Inventory {
        Inventory {
            engine: EngineInfo {
                id: "e".into(),
                version: "v".into(),
                api_version: "1.41".into(),
                data_root: "/".into(),
                storage_driver: "overlay2".into(),
                host: "unix:///x".into(),
                ..EngineInfo::default()
            },
            containers: vec![],
            images,
            volumes: vec![],
            networks: vec![],
            build_cache: vec![],
            layers_size: 0,
            sizes_measured: false,
            build_cache_unlisted: None,
            logs: Vec::new(),
        }
    }

    fn ids(phase: &[&Item]) -> Vec<String> {
        let mut ids: Vec<String> = phase.iter().map(|i| i.id.clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn containers_go_first_then_children_before_parents() {
        let inv = inventory(vec![
            image("base", &["a"], 1),
            image("mid", &["a", "b"], 2),
            image("label-only", &["a", "b"], 3),
            image("other", &["x"], 1),
        ]);
        let plan = summarize(
            vec![
                item(Kind::Image, "base"),
                item(Kind::Image, "mid"),
                item(Kind::Image, "label-only"),
                item(Kind::Image, "other"),
                item(Kind::Container, "c1"),
                item(Kind::Image, "unknown"),
            ],
            &inv,
        );
        let phases = phases(&plan, &inv);
        let phases: Vec<Vec<String>> = phases.iter().map(|p| ids(p)).collect();
        assert_eq!(
            phases,
            vec![
                vec!["c1".to_string()],
                // A metadata-only image with no parent recorded (BuildKit) is
                // not a child of the image with the same layers.
                vec![
                    "label-only".into(),
                    "mid".into(),
                    "other".into(),
                    "unknown".into()
                ],
                vec!["base".into()],
            ]
        );
    }
}
