//! Integration tests against a real, private dockerd (see `support`). One daemon
//! is shared by the tests that only read it; the fixture on it is built once.
//!
//! Needs root, Debian's docker.io and busybox-static: `scripts/test.sh` installs them.

// A scenario reads top to bottom: set up, run, check what the engine has left.
#![allow(clippy::too_many_lines)]

mod apply;
mod fleet;
mod hostile;
mod logs;
mod measure;
mod metrics;
mod package;
mod policy;
mod reach;
mod rules;
mod space;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::{ExitCode, Output};
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Trial};
use serde_json::Value;

use support::{Daemon, Result, context_store, reclaim_command};

/// The shared daemon and its fixture, built on first use.
struct Shared {
    daemon: std::result::Result<Daemon, String>,
    fixture: OnceLock<std::result::Result<Fixture, String>>,
}

impl Shared {
    fn daemon(&self) -> Result<&Daemon> {
        self.daemon
            .as_ref()
            .map_err(|e| format!("shared dockerd: {e}"))
    }

    fn fixture(&self) -> Result<(&Daemon, &Fixture)> {
        let daemon = self.daemon()?;
        let fixture = self
            .fixture
            .get_or_init(|| Fixture::build(daemon))
            .as_ref()
            .map_err(|e| format!("building the fixture: {e}"))?;
        Ok((daemon, fixture))
    }
}

/// Containers and images in every state the default plan must tell apart.
struct Fixture {
    /// What the dry run must plan, and nothing else.
    planned_containers: BTreeSet<String>,
    planned_images: BTreeSet<String>,
    /// Some of what must stay, for sharper failure messages.
    kept: Vec<(&'static str, String)>,
    dangling_free: String,
    exited: String,
}

impl Fixture {
    fn build(d: &Daemon) -> Result<Fixture> {
        let base = d.build_base("fixture/base:latest")?;
        let app = d.build_on("fixture/base", "fixture/app:1", 256, "app1")?;
        let stopped_only_image = d.build_on("fixture/base", "fixture/stopped-only:1", 256, "so")?;

        // Rebuilding a tag leaves the old image dangling.
        let dangling_free = d.build_on("fixture/base", "fixture/rebuilt:latest", 512, "r1")?;
        let rebuilt = d.build_on("fixture/base", "fixture/rebuilt:latest", 512, "r2")?;

        let dangling_running = d.build_on("fixture/base", "fixture/keep:latest", 128, "k1")?;
        let running_on_dangling = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "running-on-dangling",
            "fixture/keep:latest",
            "sleep",
            "1000",
        ])?;
        d.build_on("fixture/base", "fixture/keep:latest", 128, "k2")?;

        let dangling_stopped = d.build_on("fixture/base", "fixture/gone:latest", 128, "g1")?;
        let stopped_on_dangling = d.docker(&[
            "run",
            "--network",
            "none",
            "--name",
            "stopped-on-dangling",
            "-d",
            "fixture/gone:latest",
            "true",
        ])?;
        d.docker(&["wait", &stopped_on_dangling])?;
        d.build_on("fixture/base", "fixture/gone:latest", 128, "g2")?;

        let running = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "running",
            "fixture/base",
            "sleep",
            "1000",
        ])?;
        let paused = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "paused",
            "fixture/base",
            "sleep",
            "1000",
        ])?;
        d.docker(&["pause", "paused"])?;
        let exited = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "exited",
            "fixture/base",
            "sh",
            "-c",
            "dd if=/dev/zero of=/written bs=1024 count=100 2>/dev/null",
        ])?;
        d.docker(&["wait", &exited])?;
        let created = d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            "created",
            "fixture/base",
            "true",
        ])?;
        let stopped_only = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "stopped-only",
            "fixture/stopped-only:1",
            "true",
        ])?;
        d.docker(&["wait", &stopped_only])?;

        Ok(Fixture {
            planned_containers: [&exited, &created, &stopped_only, &stopped_on_dangling]
                .into_iter()
                .cloned()
                .collect(),
            planned_images: [&dangling_free, &dangling_stopped]
                .into_iter()
                .cloned()
                .collect(),
            kept: vec![
                ("running container", running),
                ("paused container", paused),
                ("running container on a dangling image", running_on_dangling),
                ("base image", base),
                ("tagged unused image", app),
                ("tagged image of a stopped container", stopped_only_image),
                ("dangling image of a running container", dangling_running),
                ("current tag of a rebuilt image", rebuilt),
            ],
            dangling_free,
            exited,
        })
    }
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // A private dockerd needs root. Without it these tests are ignored (a plain
    // `cargo test` as a user still runs the unit, CLI and snapshot tests);
    // scripts/test.sh runs as root, and DOCKER_RECLAIM_ENGINE_TESTS=1 makes a
    // missing root a failure instead.
    let root = rustix::process::geteuid().is_root();
    let skip = !root && std::env::var_os("DOCKER_RECLAIM_ENGINE_TESTS").is_none();
    if skip && !args.list {
        eprintln!("engine tests ignored: they start a private dockerd, which needs root");
    }
    let shared = Arc::new(Shared {
        daemon: if args.list || skip {
            Err("not started for --list".into())
        } else {
            Daemon::start()
        },
        fixture: OnceLock::new(),
    });

    let trials: Vec<Trial> = trials!(shared =>
        dry_run_json_plans_exactly_the_expected_ids,
        dry_run_predicts_bytes_from_layers,
        dry_run_changes_nothing,
        human_dry_run_reads_well,
        docker_host_env_selects_the_engine,
        without_dry_run_it_refuses_and_changes_nothing,
        empty_engine_has_nothing_to_reclaim,
        contexts_select_the_engine_as_docker_does,
        docker_reclaim_runs_as_a_docker_cli_plugin,
        an_engine_refusing_api_versions_below_1_44_is_planned,
    );
    let trials = trials
        .into_iter()
        .chain(apply::trials())
        .chain(hostile::trials())
        .chain(measure::trials())
        .chain(space::trials())
        .chain(rules::trials())
        .chain(policy::trials())
        .chain(fleet::trials())
        .chain(logs::trials())
        .chain(metrics::trials())
        .chain(package::trials())
        .chain(reach::trials())
        .map(|trial| trial.with_ignored_flag(skip))
        .collect();
    let locks_before = support::lock_files();
    let conclusion = libtest_mimic::run(&args, trials);
    // The trials held the other references; this stops the shared daemon by its pid.
    drop(shared);
    // Engines that are not a `Daemon` (Podman, the fake ones) leave their
    // lock files: what this run made and nobody holds goes with it.
    support::remove_new_lock_files(&locks_before);
    conclusion.exit_code()
}

fn stdout_json(output: &Output) -> Result<Value> {
    check!(
        output.status.success(),
        "docker-reclaim failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn planned(plan: &Value, kind: &str) -> BTreeSet<String> {
    plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["kind"] == kind)
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect()
}

fn dry_run_json_plans_exactly_the_expected_ids(shared: &Shared) -> Result<()> {
    let (d, fixture) = shared.fixture()?;
    let plan = stdout_json(&d.reclaim(&["--dry-run", "--format", "json"]))?;
    let containers = planned(&plan, "container");
    let images = planned(&plan, "image");
    for (what, id) in &fixture.kept {
        check!(
            !containers.contains(id) && !images.contains(id),
            "the {what} {id} is in the plan"
        );
    }
    check!(
        containers == fixture.planned_containers,
        "planned containers {containers:?}, expected {:?}",
        fixture.planned_containers
    );
    check!(
        images == fixture.planned_images,
        "planned images {images:?}, expected {:?}",
        fixture.planned_images
    );
    check!(
        plan["schema_version"] == 1,
        "schema_version: {}",
        plan["schema_version"]
    );
    // What the engine says of itself, not constants: the matrix has several.
    let api = d.docker(&["version", "--format", "{{.Server.APIVersion}}"])?;
    let driver = d.docker(&["info", "--format", "{{.Driver}}"])?;
    check!(
        plan["engine"]["api_version"] == api.as_str(),
        "api_version: {}, the engine offers {api}",
        plan["engine"]["api_version"]
    );
    check!(
        plan["engine"]["storage_driver"] == driver.as_str(),
        "driver: {}, the engine says {driver}",
        plan["engine"]
    );
    check!(
        plan["engine"]["data_root"] == d.data_root.to_string_lossy().as_ref(),
        "data_root: {}",
        plan["engine"]["data_root"]
    );
    check!(
        plan["engine"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "engine id"
    );
    for item in plan["items"].as_array().into_iter().flatten() {
        check!(
            item["reason"].is_string() && item["name"].is_string(),
            "item fields: {item}"
        );
        check!(item["predicted_bytes"].is_u64(), "predicted_bytes: {item}");
    }
    Ok(())
}

fn dry_run_predicts_bytes_from_layers(shared: &Shared) -> Result<()> {
    let (d, fixture) = shared.fixture()?;
    let plan = stdout_json(&d.reclaim(&["--dry-run", "--format", "json"]))?;
    let items = plan["items"].as_array().cloned().unwrap_or_default();
    let bytes_of = |id: &str| {
        items
            .iter()
            .find(|item| item["id"] == id)
            .and_then(|item| item["predicted_bytes"].as_u64())
    };
    // Measured on disk (the tests run as root): the dangling image frees its own
    // 512 KiB layer plus the layer's and the image's records, not its shared base
    // (about 2 MB).
    check!(
        plan["totals"]["measured"] == true,
        "not measured: {}",
        plan["totals"]
    );
    let image = bytes_of(&fixture.dangling_free).ok_or("dangling image not planned")?;
    check!(
        (512 * 1024..=512 * 1024 + 160 * 1024).contains(&image),
        "dangling image predicted {image} bytes, expected its 512 KiB layer and records only"
    );
    // The exited container wrote 100 KiB into its writable layer; on disk it also
    // has its config, its init layer and directories.
    let container = bytes_of(&fixture.exited).ok_or("exited container not planned")?;
    check!(
        (100 * 1024..=100 * 1024 + 200 * 1024).contains(&container),
        "exited container predicted {container} bytes, expected 100 KiB and its records"
    );
    let sum: u64 = items
        .iter()
        .filter_map(|item| item["predicted_bytes"].as_u64())
        .sum();
    check!(
        plan["totals"]["predicted_bytes"] == sum,
        "totals.predicted_bytes {} is not the sum of the items {sum}",
        plan["totals"]["predicted_bytes"]
    );
    Ok(())
}

fn dry_run_changes_nothing(shared: &Shared) -> Result<()> {
    let (d, _) = shared.fixture()?;
    let containers = d.all_containers()?;
    let images = d.all_images()?;
    for args in [&["--dry-run"][..], &["--dry-run", "--format", "json"]] {
        let output = d.reclaim(args);
        check!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    check!(
        d.all_containers()? == containers,
        "a dry run changed the containers"
    );
    check!(d.all_images()? == images, "a dry run changed the images");
    Ok(())
}

fn human_dry_run_reads_well(shared: &Shared) -> Result<()> {
    let (d, _) = shared.fixture()?;
    let output = d.reclaim(&["--dry-run"]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "Containers: 4 to remove",
        "Images: 2 to remove",
        "exited",
        "stopped-only",
        "created, never started",
        "dangling: untagged",
        "CURRENT",
        "RECLAIM",
        "AFTER",
        "Data root",
        "Dry run: nothing was removed.",
    ] {
        check!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    for kept in ["running-on-dangling", "paused"] {
        check!(!text.contains(kept), "{kept} appears in the plan:\n{text}");
    }
    check!(
        output.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn docker_host_env_selects_the_engine(shared: &Shared) -> Result<()> {
    let d = shared.daemon()?;
    let output = reclaim_command()
        .env("DOCKER_HOST", d.host())
        .args(["--dry-run", "--format", "json"])
        .output()
        .map_err(|e| e.to_string())?;
    let plan = stdout_json(&output)?;
    check!(
        plan["engine"]["host"] == d.host(),
        "host: {}",
        plan["engine"]["host"]
    );
    Ok(())
}

fn without_dry_run_it_refuses_and_changes_nothing(shared: &Shared) -> Result<()> {
    let (d, _) = shared.fixture()?;
    let containers = d.all_containers()?;
    // No terminal (stdin is /dev/null) and no --yes.
    let output = d.reclaim(&[]);
    check!(
        output.status.code() == Some(5),
        "exit {:?}",
        output.status.code()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        stderr.contains("--dry-run") && stderr.lines().count() == 1,
        "stderr: {stderr}"
    );
    check!(d.all_containers()? == containers, "containers changed");
    Ok(())
}

fn empty_engine_has_nothing_to_reclaim(_shared: &Shared) -> Result<()> {
    let d = Daemon::start()?;
    let output = d.reclaim(&["--dry-run"]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    check!(text.contains("Nothing to reclaim"), "{text}");
    let plan = stdout_json(&d.reclaim(&["--dry-run", "--format", "json"]))?;
    check!(
        plan["items"].as_array().is_some_and(Vec::is_empty),
        "{plan}"
    );
    check!(plan["totals"]["predicted_bytes"] == 0, "{plan}");
    Ok(())
}

/// Docker 29 refuses API versions below 1.44 by default (moby docker-v29.0.0
/// `daemon/config/config.go` `defaultMinAPIVersion`). An engine of API 1.44 or
/// newer started the same way (`DOCKER_MIN_API_VERSION=1.44`) is connected to
/// and planned; an older engine cannot be told so, and that is said.
fn an_engine_refusing_api_versions_below_1_44_is_planned(shared: &Shared) -> Result<()> {
    let api = shared
        .daemon()?
        .docker(&["version", "--format", "{{.Server.APIVersion}}"])?;
    let minor: u32 = api
        .trim()
        .strip_prefix("1.")
        .and_then(|minor| minor.parse().ok())
        .ok_or_else(|| format!("API version {api:?}"))?;
    if minor < 44 {
        eprintln!("(an engine of API {api} cannot refuse API 1.41: nothing to check)");
        return Ok(());
    }
    let d = Daemon::start_with_env(&[], &[("DOCKER_MIN_API_VERSION", "1.44")])?;
    let old = crate::support::raw_get(&d.socket, "/v1.41/info")?;
    check!(
        old.contains("too old"),
        "the engine still serves API 1.41: {old}"
    );
    let plan = stdout_json(&d.reclaim(&["--dry-run", "--format", "json"]))?;
    check!(
        plan["engine"]["data_root"] == d.data_root.to_string_lossy().as_ref(),
        "{}",
        plan["engine"]
    );
    check!(
        plan["engine"]["api_version"] == api.trim(),
        "negotiated {} with an engine of {api}",
        plan["engine"]["api_version"]
    );
    Ok(())
}

/// `--context`, `DOCKER_CONTEXT` and `currentContext` each select the engine,
/// with no `DOCKER_HOST`; the plan names the context; `--host` with
/// `--context` is an error, as with docker.
fn contexts_select_the_engine_as_docker_does(shared: &Shared) -> Result<()> {
    let d = shared.daemon()?;
    let data_root = d.data_root.to_string_lossy().into_owned();
    let plain = context_store("private", &d.host(), None, None)?;
    let current = context_store("private", &d.host(), Some("private"), None)?;
    let cases: [(&str, &std::path::Path, &[&str], Option<&str>); 3] = [
        ("--context", plain.path(), &["--context", "private"], None),
        ("DOCKER_CONTEXT", plain.path(), &[], Some("private")),
        ("currentContext", current.path(), &[], None),
    ];
    for (what, config, args, env_context) in cases {
        let mut command = reclaim_command();
        command
            .env("DOCKER_CONFIG", config)
            .args(["--dry-run", "--format", "json"])
            .args(args);
        if let Some(name) = env_context {
            command.env("DOCKER_CONTEXT", name);
        }
        let output = command.output().map_err(|e| e.to_string())?;
        let plan = stdout_json(&output).map_err(|e| format!("{what}: {e}"))?;
        check!(
            plan["engine"]["data_root"] == data_root.as_str(),
            "{what}: engine {}",
            plan["engine"]
        );
        check!(
            plan["engine"]["context"] == "private",
            "{what}: context {}",
            plan["engine"]["context"]
        );
    }
    let both = reclaim_command()
        .env("DOCKER_CONFIG", plain.path())
        .args(["--dry-run", "--context", "private", "-H", &d.host()])
        .output()
        .map_err(|e| e.to_string())?;
    check!(
        both.status.code() == Some(2),
        "--host with --context: {both:?}"
    );
    let missing = reclaim_command()
        .env("DOCKER_CONFIG", plain.path())
        .args(["--dry-run", "--context", "nope"])
        .output()
        .map_err(|e| e.to_string())?;
    check!(
        missing.status.code() == Some(2)
            && String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "unknown context: {missing:?}"
    );
    Ok(())
}

/// Through the docker CLI 28 at /usr/local/bin/docker, with the binary linked
/// into a temporary `DOCKER_CONFIG`'s cli-plugins: `docker reclaim`, with
/// docker's own `--context` and `-H`, and no invalid-plugin warning.
fn docker_reclaim_runs_as_a_docker_cli_plugin(shared: &Shared) -> Result<()> {
    let docker = std::path::Path::new("/usr/local/bin/docker");
    if !docker.exists() {
        return Err("no docker CLI at /usr/local/bin/docker to run the plugin through".into());
    }
    let d = shared.daemon()?;
    let store = context_store("private", &d.host(), None, None)?;
    let plugins = store.path().join("cli-plugins");
    std::fs::create_dir_all(&plugins).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_docker-reclaim"),
        plugins.join("docker-reclaim"),
    )
    .map_err(|e| e.to_string())?;
    let data_root = d.data_root.to_string_lossy().into_owned();
    let run = |args: &[&str], host_env: bool| -> Result<Output> {
        let mut command = std::process::Command::new(docker);
        command
            .args(args)
            .env("DOCKER_CONFIG", store.path())
            .env("XDG_CONFIG_HOME", "/nonexistent/docker-reclaim-tests")
            .env("DOCKER_RECLAIM_CACHE_DIR", "")
            .env("DOCKER_RECLAIM_STATE_DIR", "")
            .env("NO_COLOR", "1")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(std::process::Stdio::null());
        if host_env {
            command.env("DOCKER_HOST", d.host());
        }
        command.output().map_err(|e| e.to_string())
    };
    let host_inline = format!("-H={}", d.host());
    for (what, args, host_env) in [
        (
            "DOCKER_HOST",
            vec!["reclaim", "--dry-run", "--format", "json"],
            true,
        ),
        (
            "docker --context",
            vec![
                "--context",
                "private",
                "reclaim",
                "--dry-run",
                "--format",
                "json",
            ],
            false,
        ),
        (
            "docker -H",
            vec!["-H", &d.host(), "reclaim", "--dry-run", "--format", "json"],
            false,
        ),
        (
            "docker -H=… -lerror --tls=false",
            vec![
                host_inline.as_str(),
                "-lerror",
                "--tls=false",
                "reclaim",
                "--dry-run",
                "--format",
                "json",
            ],
            false,
        ),
    ] {
        let output = run(&args, host_env)?;
        let plan = stdout_json(&output).map_err(|e| format!("{what}: {e}"))?;
        check!(
            plan["engine"]["data_root"] == data_root.as_str(),
            "{what}: engine {}",
            plan["engine"]
        );
    }
    let help = run(&["help", "reclaim"], true)?;
    check!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--dry-run"),
        "docker help reclaim: {help:?}"
    );
    let info = run(&["info"], true)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&info.stdout),
        String::from_utf8_lossy(&info.stderr)
    );
    check!(
        text.contains("reclaim"),
        "docker info does not list the plugin:\n{text}"
    );
    check!(
        !text.to_lowercase().contains("invalid plugin"),
        "docker info warns about the plugin:\n{text}"
    );
    Ok(())
}
