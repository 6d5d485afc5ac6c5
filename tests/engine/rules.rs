//! Filters and keep rules on a real dockerd: each narrows or protects what it
//! says, the dry run says which rule kept what, and applying with the same
//! rules removes exactly the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::support::{Daemon, Result, ids_of};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        filters_and_keep_rules_protect_and_say_why,
        metadata_only_rebuild_leaves_a_planned_dangling_image,
        all_images_and_keep_last,
        volumes_anonymous_named_and_protected,
        config_file_defaults_and_flags_override,
        networks_unused_user_defined_only,
        build_cache_unshared_and_all,
        target_free_stops_at_the_first_cut_off,
    ]
}

fn ids(value: &Value, field: &str) -> BTreeSet<String> {
    ids_of(value, field, None)
}

fn filters_and_keep_rules_protect_and_say_why() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec!["create", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["base", "true"]);
        d.docker(&args)
    };
    let old = create("old", &[])?;
    let keep_named = create("web-1", &[])?;
    let pinned = create("pinned", &["--label", "pin=yes"])?;
    let labelled_out = create("other-team", &["--label", "team=other"])?;
    // A pinned dangling image.
    let pinned_image = d.build("app:latest", "FROM base\nLABEL pin=yes\nRUN echo 1 > /v\n")?;
    d.build("app:latest", "FROM base\nRUN echo 2 > /v\n")?;
    // Created before the cut-off, stopped after it: old by `until`'s measure
    // (creation time), recent by --stopped-for's (finish time).
    let just_stopped = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "just-stopped",
        "base",
        "sleep",
        "3",
    ])?;
    std::thread::sleep(Duration::from_millis(1500));
    let cutoff = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    std::thread::sleep(Duration::from_millis(1500));
    let young = create("young", &[])?;
    d.docker(&["wait", &just_stopped])?;

    let until = format!("until={cutoff}");
    let rules = [
        "--keep",
        "web-*",
        "--keep-label",
        "pin",
        "--filter",
        &until,
        "--filter",
        "label!=team=other",
        "--stopped-for",
        "1h",
    ];
    let mut args = vec!["--dry-run", "--format", "json"];
    args.extend_from_slice(&rules);
    let output = d.reclaim(&args);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let planned = ids(&plan, "items");
    // `old` was created before the cut-off, has no label, and never started:
    // --stopped-for measures it from creation, and that is seconds ago, so it
    // stays too. Nothing is left to remove.
    check!(planned.is_empty(), "planned {planned:?}");
    let kept: Vec<(String, String)> = plan["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            (
                k["id"].as_str().unwrap_or("").to_string(),
                k["rule"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let rule_of = |id: &str| {
        kept.iter()
            .find(|(kept_id, _)| kept_id == id)
            .map_or_else(|| "not kept".into(), |(_, rule)| rule.clone())
    };
    for (what, id, rule) in [
        ("the named container", &keep_named, "--keep web-*"),
        ("the pinned container", &pinned, "--keep-label pin"),
        (
            "the pinned dangling image",
            &pinned_image,
            "--keep-label pin",
        ),
        (
            "the other team's container",
            &labelled_out,
            "--filter label!=team=other (on it)",
        ),
        (
            "the young container",
            &young,
            "--filter until (created after the cut-off)",
        ),
        (
            "the just-stopped container",
            &just_stopped,
            "--stopped-for (stopped more recently)",
        ),
        (
            "the old container",
            &old,
            "--stopped-for (stopped more recently)",
        ),
    ] {
        let got = rule_of(id);
        check!(got == rule, "{what}: kept by {got:?}, expected {rule:?}");
    }

    // Without --stopped-for, `old` and the just-stopped container go, nothing
    // else; the rest survives an apply.
    let rules = [
        "--keep",
        "web-*",
        "--keep-label",
        "pin",
        "--filter",
        &until,
        "--filter",
        "label!=team=other",
    ];
    let mut args = vec!["--yes", "--format", "json"];
    args.extend_from_slice(&rules);
    let output = d.reclaim(&args);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let removed = ids(&report, "items");
    check!(
        removed == BTreeSet::from([old.clone(), just_stopped.clone()]),
        "removed {removed:?}"
    );
    let containers = d.all_containers()?;
    for id in [&keep_named, &pinned, &labelled_out, &young] {
        check!(containers.contains(id), "{id} was removed");
    }
    check!(!containers.contains(&old), "old survived");
    check!(
        d.all_images()?.contains(&pinned_image),
        "the pinned image was removed"
    );
    Ok(())
}

/// `--all` with `--keep-last`: unused tagged images go (one with two tags
/// included), the image a running container uses and the newest of a
/// repository stay, and an apply removes exactly the plan.
fn all_images_and_keep_last() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let web = d.build_on("base", "web:1", 64, "web")?;
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "web",
        "web:1",
        "sleep",
        "1000",
    ])?;
    let tool = d.build_on("base", "tool:1", 64, "tool")?;
    d.docker(&["tag", "tool:1", "tool:latest"])?;
    let job = d.build_on("base", "job:1", 64, "job")?;
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "job-run",
        "job:1",
        "true",
    ])?;
    let mut apps = Vec::new();
    for n in 1..=4 {
        apps.push(d.build_on("base", &format!("app:{n}"), 32, &format!("app{n}"))?);
        // Creation times one second apart, so that "newest" is well defined.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let dry_run = |extra: &[&str]| -> Result<Value> {
        let mut args = vec!["--all"];
        args.extend_from_slice(extra);
        d.dry_run_json(&args)
    };
    let base = d.image_id("base:latest")?;

    // --all: every unused image, the two-tag one and the one only a stopped
    // container uses included; not the running container's, not the base.
    let planned = ids(&dry_run(&[])?, "items");
    for (what, id, expected) in [
        ("the image of the running container", &web, false),
        ("the base the others are built on", &base, false),
        ("the unused two-tag image", &tool, true),
        ("the image only a stopped container uses", &job, true),
        ("app:1", &apps[0], true),
        ("app:4", &apps[3], true),
    ] {
        check!(
            planned.contains(id) == expected,
            "--all: {what}: planned={}, expected {expected}",
            planned.contains(id)
        );
    }

    // --keep-last 2: the two newest of each repository stay (so do single images).
    let plan = dry_run(&["--keep-last", "2"])?;
    let planned = ids(&plan, "items");
    let expected: BTreeSet<String> = [apps[0].clone(), apps[1].clone()].into();
    let planned_images: BTreeSet<String> = planned
        .into_iter()
        .filter(|id| id.starts_with("sha256:"))
        .collect();
    check!(
        planned_images == expected,
        "--keep-last 2 planned {planned_images:?}"
    );
    let kept = ids(&plan, "kept");
    for id in [&apps[2], &apps[3], &tool, &job] {
        check!(kept.contains(id), "{id} not listed as kept: {kept:?}");
    }

    let apply = |extra: &[&str]| -> Result<()> {
        let mut args = vec!["--yes", "--all"];
        args.extend_from_slice(extra);
        let output = d.reclaim(&args);
        check!(
            output.status.code() == Some(0),
            "{extra:?}: exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    };
    apply(&["--keep-last", "2"])?;
    let images = d.all_images()?;
    for id in [&apps[0], &apps[1]] {
        check!(!images.contains(id), "{id} survived --keep-last 2");
    }
    for id in [&web, &apps[2], &apps[3], &tool, &job, &base] {
        check!(images.contains(id), "{id} was removed by --keep-last 2");
    }
    // Now the two-tag image and the job image go; the apps are protected by name.
    apply(&["--keep", "app:*"])?;
    let images = d.all_images()?;
    for id in [&tool, &job] {
        check!(!images.contains(id), "{id} survived");
    }
    for id in [&web, &apps[2], &apps[3], &base] {
        check!(images.contains(id), "{id} was removed");
    }
    Ok(())
}

/// `--volumes`: anonymous volumes no remaining container mounts go (also one
/// whose only container is in the plan); named ones only with `--volumes=all`;
/// one a running container mounts, and a protected one, never.
fn volumes_anonymous_named_and_protected() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let volume_of = |container: &str| {
        d.docker(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Name}}{{end}}",
            container,
        ])
    };
    d.docker(&["volume", "create", "data"])?;
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "db",
        "-v",
        "data:/data",
        "base",
        "sleep",
        "1000",
    ])?;
    d.docker(&["volume", "create", "old-data"])?;
    d.docker(&["volume", "create", "--label", "pin=yes", "pinned-data"])?;
    // An anonymous volume left by a removed container, and one whose container
    // is stopped (and so in the plan).
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "gone",
        "-v",
        "/scratch",
        "base",
        "true",
    ])?;
    let orphaned = volume_of("gone")?;
    d.docker(&["rm", "gone"])?;
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "stopped",
        "-v",
        "/scratch",
        "base",
        "true",
    ])?;
    let with_stopped = volume_of("stopped")?;
    check!(
        orphaned.len() == 64 && with_stopped.len() == 64,
        "anonymous names: {orphaned} {with_stopped}"
    );

    let planned_volumes = |extra: &[&str]| -> Result<BTreeSet<String>> {
        Ok(ids_of(&d.dry_run_json(extra)?, "items", Some("volume")))
    };
    check!(
        planned_volumes(&[])?.is_empty(),
        "volumes planned without --volumes"
    );
    let anonymous = planned_volumes(&["--volumes"])?;
    check!(
        anonymous == BTreeSet::from([orphaned.clone(), with_stopped.clone()]),
        "--volumes planned {anonymous:?}"
    );
    let all = planned_volumes(&["--volumes=all", "--keep-label", "pin"])?;
    check!(
        all == BTreeSet::from([
            orphaned.clone(),
            with_stopped.clone(),
            "old-data".to_string()
        ]),
        "--volumes=all planned {all:?}"
    );

    let output = d.reclaim(&["--yes", "--volumes=all", "--keep-label", "pin"]);
    check!(
        output.status.code() == Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let left: BTreeSet<String> = d
        .docker(&["volume", "ls", "-q"])?
        .lines()
        .map(str::to_string)
        .collect();
    check!(
        left == BTreeSet::from(["data".to_string(), "pinned-data".to_string()]),
        "volumes left: {left:?}"
    );
    Ok(())
}

/// Defaults from `--config FILE`; a flag overrides, except keep rules, which
/// add up; an unknown key is a one-line error and nothing happens.
fn config_file_defaults_and_flags_override() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let web = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "web-1",
        "base",
        "true",
    ])?;
    let job = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "job-1",
        "base",
        "true",
    ])?;
    let config = d.dir().join("config.toml");
    std::fs::write(&config, "keep = [\"web-*\"]\njobs = 2\n").map_err(|e| e.to_string())?;
    let config_arg = config.to_string_lossy().into_owned();
    let plan = |extra: &[&str]| -> Result<BTreeSet<String>> {
        let mut args = vec!["--config", config_arg.as_str()];
        args.extend_from_slice(extra);
        Ok(ids(&d.dry_run_json(&args)?, "items"))
    };
    check!(
        plan(&[])? == BTreeSet::from([job.clone()]),
        "the config's keep rule is ignored"
    );
    // Keep rules add up: a --keep flag never drops the config's (safety
    // round 2, finding 5).
    let both = plan(&["--keep", "job-*"])?;
    check!(
        !both.contains(&web) && !both.contains(&job),
        "a --keep flag dropped the config's keep rule: {both:?}"
    );

    std::fs::write(&config, "keep_lats = 3\n").map_err(|e| e.to_string())?;
    let output = d.reclaim(&["--yes", "--config", &config_arg]);
    check!(
        output.status.code() == Some(2),
        "exit {:?}",
        output.status.code()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        stderr.lines().count() == 1 && stderr.contains("keep_lats") && stderr.contains(&config_arg),
        "{stderr}"
    );
    check!(d.all_containers()?.len() == 2, "something was removed");
    Ok(())
}

/// `--networks`: user-defined networks with no remaining container go (also one
/// whose only container is in the plan); one a running container uses, one a
/// kept container uses, and the engine's own never.
fn networks_unused_user_defined_only() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let net = |name: &str| d.docker(&["network", "create", "--internal", name]);
    let idle = net("idle")?;
    let jobs = net("jobs")?;
    let front = net("front")?;
    let pinned = net("pinned")?;
    d.docker(&[
        "run",
        "-d",
        "--network",
        "front",
        "--name",
        "web",
        "base",
        "sleep",
        "1000",
    ])?;
    d.docker(&[
        "create",
        "--network",
        "jobs",
        "--name",
        "job",
        "base",
        "true",
    ])?;
    d.docker(&[
        "create",
        "--network",
        "pinned",
        "--name",
        "keeper",
        "--label",
        "pin=yes",
        "base",
        "true",
    ])?;
    let builtin: BTreeSet<String> = d
        .docker(&[
            "network",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            "type=builtin",
        ])?
        .lines()
        .map(str::to_string)
        .collect();

    let output = d.reclaim(&[
        "--dry-run",
        "--networks",
        "--keep-label",
        "pin",
        "--format",
        "json",
    ]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let planned: BTreeSet<String> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["kind"] == "network")
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect();
    check!(
        planned == BTreeSet::from([idle.clone(), jobs.clone()]),
        "planned networks {planned:?}"
    );

    let output = d.reclaim(&["--yes", "--networks", "--keep-label", "pin"]);
    check!(
        output.status.code() == Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let left: BTreeSet<String> = d
        .docker(&["network", "ls", "-q", "--no-trunc"])?
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected = builtin;
    expected.insert(front);
    expected.insert(pinned);
    check!(
        left == expected,
        "networks left {left:?}, expected {expected:?}"
    );
    Ok(())
}

/// `--build-cache`: records not in use and not shared with an image;
/// `--build-cache=all`: every record not in use. Applying removes exactly the
/// planned records with a prune restricted to their IDs, and the image that
/// stays still runs.
fn build_cache_unshared_and_all() -> Result<()> {
    let d = Daemon::start()?;
    let dockerfile = |kib: u32| {
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"dd\", \"if=/dev/zero\", \"of=/blob\", \"bs=1024\", \"count={kib}\"]\n"
        )
    };
    let old = d.buildkit_build("bk:latest", &dockerfile(300))?;
    d.buildkit_build("bk:latest", &dockerfile(600))?;
    // The containerd image store keeps no dangling image after a BuildKit
    // rebuild through the API (seen on 26.1); elsewhere the old one dangles.
    let dangling = d.all_images()?.contains(&old);
    let records = |d: &Daemon| -> Result<Vec<(String, bool)>> {
        let out = d.docker(&["system", "df", "-v", "--format", "{{json .BuildCache}}"])?;
        let value: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        Ok(value
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["ID"].as_str().unwrap_or("").to_string(),
                    r["Shared"] == "true",
                )
            })
            .collect())
    };
    let before = records(&d)?;
    check!(before.len() >= 3, "too few build cache records: {before:?}");
    let planned = |extra: &[&str]| -> Result<BTreeSet<String>> {
        Ok(ids_of(
            &d.dry_run_json(extra)?,
            "items",
            Some("build_cache"),
        ))
    };
    // `docker system df --format` may cut IDs: compare on its length.
    let width = before.iter().map(|(id, _)| id.len()).min().unwrap_or(12);
    let short = |ids: &BTreeSet<String>| -> BTreeSet<String> {
        ids.iter()
            .map(|id| id.chars().take(width).collect())
            .collect()
    };
    let unshared: BTreeSet<String> = before
        .iter()
        .filter(|(_, shared)| !shared)
        .map(|(id, _)| id.clone())
        .collect();
    let all: BTreeSet<String> = before.iter().map(|(id, _)| id.clone()).collect();
    check!(
        planned(&[])?.is_empty(),
        "build cache planned without --build-cache"
    );
    // With the dangling BuildKit image planned, the shared records go with it
    // too, each pruned only if BuildKit finds it unshared once the image is
    // gone (as `docker system prune` finds them).
    let expected = if dangling { &all } else { &unshared };
    let got = short(&planned(&["--build-cache"])?);
    check!(
        got == *expected,
        "--build-cache: planned {got:?}, expected {expected:?} of {before:?} (dangling BuildKit image: {dangling})"
    );
    if dangling {
        let plan = d.dry_run_json(&["--build-cache"])?;
        let conditional: BTreeSet<String> = plan["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item["reason"] == "cache_of_removed_images")
            .filter_map(|item| item["id"].as_str().map(str::to_string))
            .collect();
        let shared: BTreeSet<String> = all.difference(&unshared).cloned().collect();
        check!(
            short(&conditional) == shared,
            "the shared records' reason: {conditional:?}, expected {shared:?}"
        );
    }
    check!(
        short(&planned(&["--build-cache=all"])?) == all,
        "--build-cache=all: expected every record {all:?}"
    );
    // The engine lists records in no fixed order; the plan lists them the same
    // way every time.
    let order = || -> Result<Vec<String>> {
        let plan = d.dry_run_json(&["--build-cache=all"])?;
        Ok(plan["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item["kind"] == "build_cache")
            .filter_map(|item| item["id"].as_str().map(str::to_string))
            .collect())
    };
    let first = order()?;
    for _ in 0..4 {
        let again = order()?;
        check!(
            again == first,
            "plan order changed: {first:?} then {again:?}"
        );
    }

    // A keep rule protects a record (by ID or description), and the dry run
    // says so.
    let protected = planned(&["--build-cache=all"])?
        .into_iter()
        .next()
        .ok_or("no record planned")?;
    let output = d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "--build-cache=all",
        "--keep",
        &protected,
    ]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    check!(
        !ids(&plan, "items").contains(&protected),
        "a kept record is planned"
    );
    let rule = plan["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["id"] == protected.as_str())
        .and_then(|k| k["rule"].as_str().map(str::to_string))
        .unwrap_or_default();
    check!(rule == format!("--keep {protected}"), "kept by {rule:?}");

    // Only the unshared records go: the prune, restricted to the planned IDs,
    // takes nothing else.
    let output = d.reclaim(&["--yes", "--build-cache"]);
    check!(
        output.status.code() == Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = records(&d)?;
    let left: BTreeSet<String> = after.iter().map(|(id, _)| id.clone()).collect();
    let shared: BTreeSet<String> = all.difference(&unshared).cloned().collect();
    if dangling {
        // What stays is what is still shared with the image that stays.
        check!(
            left.is_subset(&shared) && after.iter().all(|(_, shared)| *shared),
            "after --build-cache: {after:?}, expected only records still shared, of {shared:?}"
        );
        check!(!left.is_empty(), "the records of bk:latest went too");
    } else {
        check!(
            left == shared,
            "after --build-cache: {left:?}, expected the shared {shared:?}"
        );
    }

    let output = d.reclaim(&["--yes", "--build-cache=all"]);
    check!(
        output.status.code() == Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check!(records(&d)?.is_empty(), "records left: {:?}", records(&d)?);
    d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bk:latest",
        "/bin/busybox",
        "true",
    ])?;
    Ok(())
}

/// `--target-free`: the oldest-finished stopped containers first, only until
/// the target is met; the rest are listed as kept by the target.
fn target_free_stops_at_the_first_cut_off() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let mut made = Vec::new();
    for name in ["first", "second", "third"] {
        let id = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "base",
            "sh",
            "-c",
            "dd if=/dev/zero of=/w bs=1024 count=20480 2>/dev/null",
        ])?;
        d.docker(&["wait", &id])?;
        made.push(id);
        // Distinct finish times, one second apart.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let output = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(&d.data_root)
        .output()
        .map_err(|e| format!("df: {e}"))?;
    let available: u64 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .ok_or("df gave no number")?;
    // 30 MiB more than is free now: two 20 MiB containers, not three. The
    // margins (10 MiB either way) absorb what other tests write meanwhile.
    let target = format!("{}", available + 30 * 1024 * 1024);
    let output = d.reclaim(&["--dry-run", "--format", "json", "--target-free", &target]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    // Other tests write to the same filesystem meanwhile: what the plan had
    // to free is the `needed_bytes` it saw, not what `df` said a moment ago.
    // The plan is the shortest oldest-first prefix whose prediction covers it.
    let needed = plan["target"]["needed_bytes"]
        .as_u64()
        .ok_or("no needed_bytes")?;
    let predicted: BTreeMap<String, u64> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            Some((
                item["id"].as_str()?.to_string(),
                item["predicted_bytes"].as_u64()?,
            ))
        })
        .collect();
    let planned = ids(&plan, "items");
    let taken = planned.len();
    let expected: BTreeSet<String> = made[..taken.min(3)].iter().cloned().collect();
    let covered: u64 = predicted.values().sum();
    let without_last = covered
        - made[..taken.min(3)]
            .last()
            .and_then(|id| predicted.get(id))
            .copied()
            .unwrap_or(0);
    check!(
        (1..=3).contains(&taken)
            && planned == expected
            && covered >= needed
            && without_last < needed,
        "planned {planned:?} ({covered} bytes) for {needed} needed: not the shortest oldest-first prefix of {made:?}"
    );
    check!(plan["target"]["met"] == true, "{}", plan["target"]);
    if taken < 3 {
        let kept = plan["kept"].as_array().into_iter().flatten().any(|k| {
            k["id"] == made[2].as_str()
                && k["rule"]
                    .as_str()
                    .is_some_and(|r| r.contains("--target-free"))
        });
        check!(
            kept,
            "the newest is not listed as kept by the target: {}",
            plan["kept"]
        );
    }

    let output = d.reclaim(&["--dry-run", "--max-usage", "120%"]);
    check!(
        output.status.code() == Some(2),
        "exit {:?}",
        output.status.code()
    );
    Ok(())
}

/// The classic builder rebuilding a tag with only a LABEL changed: the old
/// image has the same layers as the new one, but is dangling, and goes.
fn metadata_only_rebuild_leaves_a_planned_dangling_image() -> Result<()> {
    let d = Daemon::start()?;
    let old = d.build(
        "meta:latest",
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL v=1\n",
    )?;
    let new = d.build(
        "meta:latest",
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL v=2\n",
    )?;
    check!(old != new, "the rebuild made the same image");
    let plan = d.dry_run_json(&[])?;
    let planned = ids(&plan, "items");
    check!(
        planned.contains(&old),
        "the old image is not planned: {plan}"
    );
    check!(!planned.contains(&new), "the tagged image is planned");
    // The same with BuildKit, which records no parent (safety round 2,
    // finding 11: kept as "an image that stays is built on it").
    let old = d.buildkit_build(
        "meta-bk:latest",
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL v=1\n",
    )?;
    let new = d.buildkit_build(
        "meta-bk:latest",
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL v=2\n",
    )?;
    check!(old != new, "the BuildKit rebuild made the same image");
    if !d.all_images()?.contains(&old) {
        // The containerd image store keeps no dangling record of a BuildKit
        // image whose tag moved: nothing is left to plan.
        return Ok(());
    }
    let plan = d.dry_run_json(&[])?;
    let planned = ids(&plan, "items");
    check!(
        planned.contains(&old),
        "the old BuildKit image is not planned: {plan}"
    );
    check!(
        !planned.contains(&new),
        "the tagged BuildKit image is planned"
    );
    let applied = d.reclaim(&["--yes"]);
    check!(applied.status.success(), "apply: {applied:?}");
    check!(
        d.all_images()?.contains(&new) && !d.all_images()?.contains(&old),
        "after the apply: {:?}",
        d.all_images()?
    );
    Ok(())
}
