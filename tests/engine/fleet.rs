//! A fleet run on real engines: two Docker 20.10 (one reached through a
//! private sshd), one 26.1 with the containerd image store (named by a
//! context), and one stopped. It needs both engines of the matrix at once,
//! so it runs in the pass that has the unpacked 26.1 with the containerd
//! image store (`DOCKER_RECLAIM_TEST_ENGINE` and
//! `DOCKER_RECLAIM_TEST_STORE=containerd`); the system's dockerd is the 20.10.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::reach::Sshd;
use crate::support::{Daemon, Flavour, Pty, Result, add_context, reclaim_command};

pub(crate) fn trials() -> Vec<Trial> {
    let flavour = Flavour::from_env();
    if flavour.root.is_some() && flavour.containerd {
        crate::trials![a_fleet_plans_together_asks_once_and_applies_each_engine_alone]
    } else {
        Vec::new()
    }
}

/// What a host of the fleet holds: a running container (stays), a stopped
/// one, a rebuilt tag (the old image dangles).
struct Host {
    daemon: Daemon,
    running: String,
    stopped: String,
    dangling: String,
    kept_image: String,
}

fn host(flavour: &Flavour) -> Result<Host> {
    let daemon = Daemon::start_flavour(flavour, &[], &[])?;
    daemon.build_base("base:latest")?;
    let dangling = daemon.build_on("base", "app:latest", 64, "v1")?;
    let kept_image = daemon.build_on("base", "app:latest", 64, "v2")?;
    let running = daemon.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "app:latest",
        "sleep",
        "1000",
    ])?;
    let stopped = daemon.docker(&["create", "--network", "none", "base", "true"])?;
    Ok(Host {
        daemon,
        running,
        stopped,
        dangling,
        kept_image,
    })
}

/// The docker CLI's context store with one context per (name, host).
fn contexts(dir: &Path, named: &[(&str, &str)]) -> Result<()> {
    for (name, host) in named {
        add_context(dir, name, host)?;
    }
    std::fs::write(dir.join("config.json"), "{}").map_err(|e| e.to_string())
}

/// The planned item IDs of a plan document.
fn planned(plan: &Value) -> BTreeSet<String> {
    plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn a_fleet_plans_together_asks_once_and_applies_each_engine_alone() -> Result<()> {
    let old = Flavour {
        root: None,
        containerd: false,
    };
    let a = host(&old)?;
    let b = host(&old)?;
    let c = host(&Flavour::from_env())?;
    let mut gone = Daemon::start_flavour(&old, &[], &[])?;
    let gone_host = gone.host();
    gone.stop();
    let sshd = Sshd::start()?;
    let b_host = format!(
        "ssh://root@127.0.0.1:{}{}",
        sshd.port,
        b.daemon.host().trim_start_matches("unix://")
    );
    let store = tempfile::tempdir().map_err(|e| e.to_string())?;
    contexts(
        store.path(),
        &[("ctx-a", &a.daemon.host()), ("ctx-c", &c.daemon.host())],
    )?;
    let reclaim = |args: &[&str]| {
        reclaim_command()
            .env("PATH", sshd.path())
            .env("DOCKER_CONFIG", store.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .output()
            .map_err(|e| e.to_string())
    };
    let a_host = a.daemon.host();
    // Engines named by -H come first, then those named by a context.
    let fleet = [
        "-H",
        a_host.as_str(),
        "-H",
        b_host.as_str(),
        "-H",
        gone_host.as_str(),
        "--context",
        "ctx-c",
    ];
    // Where each host is in the fleet's answer.
    let at = [0, 1, 3];

    // Each engine alone first: what the fleet must plan there.
    let mut alone = Vec::new();
    for args in [
        vec!["-H", a_host.as_str()],
        vec!["-H", b_host.as_str()],
        vec!["--context", "ctx-c"],
    ] {
        let mut all = vec!["--dry-run", "--format", "json"];
        all.extend(args);
        let output = reclaim(&all)?;
        check!(output.status.success(), "alone: {:?}", text(&output));
        let plan: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
        alone.push(planned(&plan));
    }
    for (host, plan) in [&a, &b, &c].iter().zip(&alone) {
        check!(
            plan.contains(&host.stopped) && plan.contains(&host.dangling),
            "alone {plan:?}"
        );
    }

    // The fleet's dry run as JSON: one object per engine, the stopped one
    // not reached, exit 3 (the most severe of 0, 0, 0, 3).
    let mut args = vec!["--dry-run", "--format", "json"];
    args.extend(fleet);
    let output = reclaim(&args)?;
    check!(
        output.status.code() == Some(3),
        "fleet dry run: {:?}",
        text(&output)
    );
    let document: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let engines = document["engines"].as_array().cloned().unwrap_or_default();
    check!(engines.len() == 4, "{document}");
    for (index, plan) in at.iter().zip(&alone) {
        check!(
            engines[*index]["state"] == "planned" && &planned(&engines[*index]["plan"]) == plan,
            "engine {index} planned otherwise than alone: {}",
            engines[*index]
        );
    }
    check!(engines[3]["name"] == "ctx-c", "{}", engines[3]);
    check!(
        engines[3]["plan"]["engine"]["image_store"] == "containerd",
        "{}",
        engines[3]["plan"]["engine"]
    );
    check!(
        engines[2]["state"] == "not_reached" && engines[2]["exit_code"] == 3,
        "{}",
        engines[2]
    );
    check!(
        document["totals"]["items"].as_u64()
            == Some(alone.iter().map(|plan| plan.len() as u64).sum()),
        "{}",
        document["totals"]
    );

    // For people: a section per engine, the stopped one said once.
    let mut args = vec!["--dry-run"];
    args.extend(fleet);
    let output = reclaim(&args)?;
    let (stdout, stderr) = text(&output);
    check!(output.status.code() == Some(3), "{stdout}{stderr}");
    check!(stdout.matches("=== ").count() == 4, "{stdout}");
    check!(
        stdout.matches("not reached (exit 3): ").count() == 1 && !stderr.contains(&gone_host),
        "{stdout}\n{stderr}"
    );
    check!(
        stdout.contains("Fleet: 4 engines, 3 planned, 1 not reached"),
        "{stdout}"
    );

    // Without a terminal and without --yes: refused before anything.
    let output = reclaim(&fleet)?;
    check!(output.status.code() == Some(5), "{:?}", text(&output));
    // What belongs to one engine is refused in one line.
    let mut args = vec!["df"];
    args.extend(fleet);
    let output = reclaim(&args)?;
    let (_, stderr) = text(&output);
    check!(
        output.status.code() == Some(2) && stderr.lines().count() == 1,
        "{stderr}"
    );

    // On a terminal: one question for the three engines; no removes nothing
    // anywhere (exit 4).
    let mut command = reclaim_command();
    command
        .env("PATH", sshd.path())
        .env("DOCKER_CONFIG", store.path())
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(fleet);
    let mut pty = Pty::spawn(command)?;
    let question = format!(
        "Remove these {} items on 3 engines",
        alone.iter().map(BTreeSet::len).sum::<usize>()
    );
    pty.expect(&question, Duration::from_secs(120))?;
    pty.answer(b"n\r")?;
    let status = pty.wait(Duration::from_secs(60))?;
    check!(
        // (Not a question per engine: that one reads "N items, freeing".)
        status.code() == Some(4) && !pty.output().contains("items, freeing"),
        "exit {status}:\n{}",
        pty.output()
    );
    for host in [&a, &b, &c] {
        check!(
            host.daemon.all_containers()?.contains(&host.stopped),
            "declined, yet removed"
        );
    }

    // Applied: each reachable engine loses exactly what it planned alone.
    // (Removing a dangling image also removes the untagged parents the
    // classic builder left under it, which `docker images` does not list:
    // the engine does so for a single run too.)
    let listed = |daemon: &Daemon| -> Result<BTreeSet<String>> {
        Ok(daemon
            .docker(&["images", "-q", "--no-trunc"])?
            .lines()
            .map(str::to_string)
            .collect())
    };
    let before: Vec<(BTreeSet<String>, BTreeSet<String>)> = [&a, &b, &c]
        .iter()
        .map(|host| {
            Ok((
                host.daemon.all_containers()?.into_iter().collect(),
                listed(&host.daemon)?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut args = vec!["--yes", "--format", "json"];
    args.extend(fleet);
    let output = reclaim(&args)?;
    check!(
        output.status.code() == Some(3),
        "fleet apply: {:?}",
        text(&output)
    );
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    for (index, ((host, plan), (containers, images))) in
        at.iter().zip([&a, &b, &c].iter().zip(&alone).zip(&before))
    {
        let engine = &report["engines"][*index];
        check!(
            engine["state"] == "applied" && engine["failed"] == 0,
            "{engine}"
        );
        check!(
            engine["items"].as_u64() == Some(plan.len() as u64),
            "{engine}"
        );
        let containers_now: BTreeSet<String> = host.daemon.all_containers()?.into_iter().collect();
        let images_now = listed(&host.daemon)?;
        let removed: BTreeSet<String> = containers
            .difference(&containers_now)
            .chain(images.difference(&images_now))
            .cloned()
            .collect();
        check!(
            &removed == plan,
            "engine {index} removed {removed:?}, planned {plan:?}"
        );
        check!(
            containers_now.contains(&host.running) && images_now.contains(&host.kept_image),
            "engine {index} lost what a container uses"
        );
    }
    check!(
        report["engines"][2]["state"] == "not_reached",
        "{}",
        report["engines"][2]
    );

    // --all-contexts: every context of the store, by name.
    let output = reclaim(&["--dry-run", "--all-contexts", "--format", "json"])?;
    check!(output.status.success(), "{:?}", text(&output));
    let document: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let names: Vec<&str> = document["engines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|engine| engine["name"].as_str())
        .collect();
    check!(names == ["ctx-a", "ctx-c"], "{names:?}");
    Ok(())
}
