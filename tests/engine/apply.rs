//! Applying plans on a real dockerd: the prompt on a pseudo-terminal, refusal
//! without one, races between plan and apply, saved plans, the lock, the audit
//! log and Ctrl-C. Each test has a daemon of its own, since each removes things.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::support::{Daemon, Pty, Result, reclaim_command};

const PROMPT: &str = "[y/N]";
const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        prompt_yes_removes_the_plan,
        select_shows_the_running_total_and_removes_the_chosen,
        prompt_no_or_eof_removes_nothing,
        without_terminal_or_yes_is_refused,
        yes_reports_and_logs,
        prune_scope_leaves_nothing_for_docker_system_prune,
        rechecks_every_item_after_the_prompt,
        saved_plan_is_an_upper_bound,
        refuses_foreign_stale_and_broken_plans,
        plan_is_shown_before_the_prompt_with_stdout_piped,
        quiet_and_colour,
        second_apply_is_locked_out,
        ctrl_c_stops_and_reports,
    ]
}

/// A daemon with a base image, a running container, two stopped ones and a
/// dangling image. Returns the daemon and the IDs of the stopped containers.
fn small_engine() -> Result<(Daemon, Vec<String>, String)> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let dangling = d.build_on("base", "app:latest", 64, "v1")?;
    d.build_on("base", "app:latest", 64, "v2")?;
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "web",
        "base",
        "sleep",
        "1000",
    ])?;
    let mut stopped = Vec::new();
    for name in ["old-1", "old-2"] {
        let id = d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            name,
            "base",
            "true",
        ])?;
        stopped.push(id);
    }
    Ok((d, stopped, dangling))
}

fn exists_container(d: &Daemon, id: &str) -> Result<bool> {
    Ok(d.all_containers()?.iter().any(|c| c == id))
}

fn exists_image(d: &Daemon, id: &str) -> Result<bool> {
    Ok(d.all_images()?.iter().any(|i| i == id))
}

fn on_pty(d: &Daemon, args: &[&str]) -> Result<Pty> {
    let mut command = reclaim_command();
    command.arg("-H").arg(d.host()).args(args);
    Pty::spawn(command)
}

fn prompt_yes_removes_the_plan() -> Result<()> {
    let (d, stopped, dangling) = small_engine()?;
    let mut pty = on_pty(&d, &[])?;
    pty.expect(PROMPT, PATIENCE)?;
    pty.answer(b"y\r")?;
    let status = pty.wait(PATIENCE)?;
    check!(status.code() == Some(0), "exit {status}:\n{}", pty.output());
    for id in &stopped {
        check!(
            !exists_container(&d, id)?,
            "{id} survived a confirmed apply"
        );
    }
    check!(!exists_image(&d, &dangling)?, "the dangling image survived");
    check!(
        exists_container(&d, &d.docker(&["inspect", "-f", "{{.Id}}", "web"])?)?,
        "web is gone"
    );
    check!(
        pty.output().contains("REMOVED"),
        "no report:\n{}",
        pty.output()
    );
    Ok(())
}

/// `--select`: a checklist whose first line counts what is chosen and what it
/// frees, updated as keys toggle items; only the chosen go.
fn select_shows_the_running_total_and_removes_the_chosen() -> Result<()> {
    let (d, stopped, dangling) = small_engine()?;
    let mut pty = on_pty(&d, &["--select"])?;
    pty.expect("3 of 3 chosen, about", PATIENCE)?;
    // Down to the second container, and uncheck it.
    pty.answer(b"\x1b[B")?;
    pty.answer(b" ")?;
    pty.expect("2 of 3 chosen, about", PATIENCE)?;
    pty.answer(b"\r")?;
    let status = pty.wait(PATIENCE)?;
    check!(status.code() == Some(0), "exit {status}:\n{}", pty.output());
    // The unchecked one: the container on the line the cursor left unchecked.
    let output = pty.output();
    let unchecked = output
        .rsplit("> [ ]")
        .next()
        .and_then(|line| line.split('(').nth(1))
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| format!("no unchecked line:\n{output}"))?
        .to_string();
    let [kept, gone] = match unchecked.as_str() {
        "old-1" => [&stopped[0], &stopped[1]],
        "old-2" => [&stopped[1], &stopped[0]],
        other => return Err(format!("unchecked {other:?}:\n{output}")),
    };
    check!(
        exists_container(&d, kept)?,
        "the unchecked container was removed:\n{output}"
    );
    check!(
        !exists_container(&d, gone)?,
        "the chosen container survived:\n{output}"
    );
    check!(!exists_image(&d, &dangling)?, "the dangling image survived");
    Ok(())
}

fn prompt_no_or_eof_removes_nothing() -> Result<()> {
    let (d, _, _) = small_engine()?;
    let containers = d.all_containers()?;
    let images = d.all_images()?;

    let mut pty = on_pty(&d, &[])?;
    pty.expect(PROMPT, PATIENCE)?;
    pty.answer(b"n\r")?;
    let status = pty.wait(PATIENCE).map_err(|e| format!("answered n: {e}"))?;
    check!(
        status.code() == Some(4),
        "answered n: exit {status}:\n{}",
        pty.output()
    );
    // Declining is an answer, not an error (#21).
    check!(
        pty.output().contains("Nothing removed.") && !pty.output().contains("error"),
        "{}",
        pty.output()
    );

    // Just Enter takes the default, which is No.
    let mut pty = on_pty(&d, &[])?;
    pty.expect(PROMPT, PATIENCE)?;
    pty.answer(b"\r")?;
    let status = pty.wait(PATIENCE).map_err(|e| format!("Enter: {e}"))?;
    check!(
        status.code() == Some(4),
        "Enter: exit {status}:\n{}",
        pty.output()
    );

    // The terminal goes away at the prompt.
    let mut pty = on_pty(&d, &[])?;
    pty.expect(PROMPT, PATIENCE)?;
    pty.hang_up();
    let status = pty.wait(PATIENCE).map_err(|e| format!("hang-up: {e}"))?;
    check!(
        status.code() == Some(4),
        "EOF: exit {status}:\n{}",
        pty.output()
    );

    // Ctrl-C at the prompt.
    let mut pty = on_pty(&d, &[])?;
    pty.expect(PROMPT, PATIENCE)?;
    pty.answer(b"\x03")?;
    let status = pty.wait(PATIENCE).map_err(|e| format!("Ctrl-C: {e}"))?;
    check!(
        status.code() == Some(4),
        "Ctrl-C: exit {status}:\n{}",
        pty.output()
    );

    // SIGTERM and SIGINT sent to the process (not typed) while it waits at
    // the prompt, holding the lock: it ends at once, nothing removed (safety
    // round 2, finding 8: the prompt held the runtime and the signal was lost).
    for signal in ["-TERM", "-INT", "-HUP"] {
        let mut pty = on_pty(&d, &[])?;
        pty.expect(PROMPT, PATIENCE)?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let sent = std::process::Command::new("kill")
            .args([signal, &pty.pid().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        check!(sent.success(), "kill {signal}");
        let status = pty
            .wait(std::time::Duration::from_secs(3))
            .map_err(|e| format!("kill {signal} at the prompt: {e}"))?;
        check!(
            status.code() == Some(4),
            "kill {signal}: exit {status}:\n{}",
            pty.output()
        );
    }

    // Esc, q and Ctrl-D give up at once, without Enter.
    for (key, what) in [(&b"\x1b"[..], "Esc"), (b"q", "q"), (b"\x04", "Ctrl-D")] {
        let mut pty = on_pty(&d, &[])?;
        pty.expect(PROMPT, PATIENCE)?;
        pty.answer(key)?;
        let status = pty.wait(PATIENCE).map_err(|e| format!("{what}: {e}"))?;
        check!(
            status.code() == Some(4),
            "{what}: exit {status}:\n{}",
            pty.output()
        );
    }

    check!(d.all_containers()? == containers, "containers changed");
    check!(d.all_images()? == images, "images changed");
    Ok(())
}

fn without_terminal_or_yes_is_refused() -> Result<()> {
    let (d, _, _) = small_engine()?;
    let containers = d.all_containers()?;
    let output = d.reclaim(&[]);
    check!(
        output.status.code() == Some(5),
        "exit {:?}",
        output.status.code()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        stderr.trim()
            == "docker-reclaim: error: no terminal to confirm on; pass --yes to apply or --dry-run to only plan",
        "stderr: {stderr}"
    );
    check!(d.all_containers()? == containers, "containers changed");
    Ok(())
}

fn yes_reports_and_logs() -> Result<()> {
    let (d, stopped, dangling) = small_engine()?;
    let log = d.dir().join("audit.jsonl");
    let log_arg = log.to_string_lossy().into_owned();
    let output = d.reclaim(&["--yes", "--format", "json", "--log-file", &log_arg]);
    check!(
        output.status.code() == Some(0),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "report is not JSON: {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let removed: BTreeSet<String> = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["outcome"] == "removed")
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect();
    let mut expected: BTreeSet<String> = stopped.iter().cloned().collect();
    expected.insert(dangling.clone());
    check!(
        removed == expected,
        "removed {removed:?}, expected {expected:?}"
    );
    check!(report["totals"]["removed"] == 3, "{}", report["totals"]);
    check!(
        report["totals"]["by_kind"]["container"]["removed"] == 2,
        "{}",
        report["totals"]
    );
    // Measured on disk before and after; the engine is not asked to measure
    // a data root measured here (#20).
    check!(
        report["totals"]["data_root"]["after"].is_u64()
            && report["totals"]["engine_usage"].is_null(),
        "{}",
        report["totals"]
    );
    check!(report["interrupted"] == false, "interrupted?");

    // Not on a terminal: one progress line per item on stderr.
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        stderr
            .lines()
            .filter(|line| line.starts_with("removed "))
            .count()
            == 3,
        "stderr: {stderr}"
    );

    let audit = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let lines: Vec<Value> = audit
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("audit log line is not JSON: {e}"))?;
    check!(lines.len() == 3, "audit log: {audit}");
    for line in &lines {
        for field in ["time", "kind", "id", "name", "bytes", "outcome"] {
            check!(!line[field].is_null(), "{field} missing in {line}");
        }
    }

    // What was not in the plan is all still there.
    check!(
        d.image_id("base:latest").is_ok() && d.image_id("app:latest").is_ok(),
        "tagged images went"
    );
    check!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "web"])? == "true",
        "web stopped"
    );

    // A second run has nothing to do.
    let again = d.reclaim(&["--yes"]);
    check!(
        again.status.code() == Some(0),
        "second run exit {:?}",
        again.status.code()
    );
    check!(
        String::from_utf8_lossy(&again.stdout).contains("Nothing to reclaim"),
        "second run"
    );
    Ok(())
}

fn save_plan(d: &Daemon) -> Result<(String, Value)> {
    let path = d.dir().join("plan.json").to_string_lossy().into_owned();
    let output = d.reclaim(&["--dry-run", "--plan-out", &path]);
    check!(
        output.status.success(),
        "saving a plan: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body = std::fs::read(&path).map_err(|e| e.to_string())?;
    let plan = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok((path, plan))
}

fn outcome_of(report: &Value, id: &str) -> String {
    report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["id"] == id)
        .map_or_else(
            || "absent".into(),
            |item| item["outcome"].as_str().unwrap_or("").to_string(),
        )
}

/// The world changes while the prompt waits: every item is re-checked just
/// before it goes, and what changed is skipped with the reason.
fn rechecks_every_item_after_the_prompt() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let mut dangling = Vec::new();
    for version in ["v1", "v2", "v3", "v4"] {
        dangling.push(d.build_on("base", "app:latest", 32, version)?);
    }
    // v1..v3 are dangling now; v4 is app:latest.
    // Fillers created first put the containers that change into a later batch of
    // re-checks (four per batch with --jobs 1), listed while an earlier one goes.
    let mut fillers = Vec::new();
    for n in 0..9 {
        let name = format!("filler-{n}");
        fillers.push(d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            &name,
            "base",
            "true",
        ])?);
    }
    // Creation times are whole seconds: the fillers sort first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (to_tag, to_use, to_remove) = (
        dangling[0].clone(),
        dangling[1].clone(),
        dangling[2].clone(),
    );
    let plain = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "plain",
        "base",
        "true",
    ])?;
    let to_start = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "starts",
        "base",
        "sleep",
        "1000",
    ])?;
    let removed_by_other = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "other",
        "base",
        "true",
    ])?;

    d.docker(&["network", "create", "racenet"])?;
    let racenet = d.docker(&["network", "inspect", "-f", "{{.Id}}", "racenet"])?;
    let plan = d.dry_run_json(&["--networks"])?;
    let planned: BTreeSet<&str> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str())
        .collect();
    for id in [
        &to_tag,
        &to_use,
        &to_remove,
        &plain,
        &to_start,
        &removed_by_other,
        &racenet,
    ] {
        check!(
            planned.contains(id.as_str()),
            "{id} is not in the saved plan"
        );
    }

    let log = d.dir().join("audit.log").to_string_lossy().into_owned();
    let mut pty = on_pty(&d, &["--networks", "--jobs", "1", "--log-file", &log])?;
    pty.expect(PROMPT, PATIENCE)?;
    // The world changes between plan and apply.
    d.docker(&["start", "starts"])?;
    d.docker(&["rm", "other"])?;
    d.docker(&["tag", &to_tag, "app:pinned"])?;
    let user = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "user",
        &to_use,
        "true",
    ])?;
    // Created, never started: configured to attach to the network.
    let net_user = d.docker(&[
        "create",
        "--network",
        "racenet",
        "--name",
        "net-user",
        "base",
        "true",
    ])?;
    let newcomer = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "newcomer",
        "base",
        "true",
    ])?;

    pty.answer(b"y\r")?;
    let status = pty.wait(PATIENCE)?;
    check!(
        status.code() == Some(0),
        "exit {status:?}: {}",
        pty.output()
    );
    // The audit log has a line per item; as a report's items, for outcome_of.
    let lines = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let items: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).map_err(|e| e.to_string()))
        .collect::<Result<_>>()?;
    let report = serde_json::json!({ "items": items });
    let remaining = d.docker(&["ps", "-aq", "--no-trunc"])?;
    for filler in &fillers {
        check!(
            !remaining.contains(filler.as_str()),
            "filler {filler} was not removed"
        );
    }

    for (what, id, outcome, survives) in [
        ("the stopped container", &plain, "removed", false),
        ("the container started since", &to_start, "skipped", true),
        (
            "the container someone else removed",
            &removed_by_other,
            "already_gone",
            false,
        ),
        ("the image tagged since", &to_tag, "skipped", true),
        ("the image a new container uses", &to_use, "skipped", true),
        ("the still-dangling image", &to_remove, "removed", false),
        (
            "the network a new container uses",
            &racenet,
            "skipped",
            true,
        ),
    ] {
        let got = outcome_of(&report, id);
        check!(got == outcome, "{what}: outcome {got}, expected {outcome}");
        let exists = exists_container(&d, id)?
            || exists_image(&d, id)?
            || d.docker(&["network", "ls", "-q", "--no-trunc"])?
                .contains(id.as_str());
        check!(
            exists == survives,
            "{what}: exists={exists}, expected {survives}"
        );
    }
    check!(
        outcome_of(&report, &newcomer) == "absent",
        "a container made after the plan was in it"
    );
    check!(
        exists_container(&d, &newcomer)?,
        "the container made after the plan was removed"
    );
    check!(
        exists_container(&d, &user)?,
        "the new user of a planned image was removed"
    );
    check!(
        d.docker(&["start", &net_user]).is_ok(),
        "the container created on the planned network cannot start"
    );
    let skipped = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["outcome"] == "skipped")
        .all(|item| {
            item["detail"]
                .as_str()
                .is_some_and(|d| d.contains("since the plan"))
        });
    check!(skipped, "skipped items without a reason: {report}");
    Ok(())
}

fn refuses_foreign_stale_and_broken_plans() -> Result<()> {
    let (d, _, _) = small_engine()?;
    let (path, plan) = save_plan(&d)?;
    let containers = d.all_containers()?;
    let images = d.all_images()?;

    let mut foreign = plan.clone();
    foreign["engine"]["id"] = Value::from("SOME:OTHER:ENGINE");
    let foreign_path = d.dir().join("foreign.json");
    std::fs::write(&foreign_path, foreign.to_string()).map_err(|e| e.to_string())?;
    let body = std::fs::read(&path).map_err(|e| e.to_string())?;
    let truncated_path = d.dir().join("truncated.json");
    std::fs::write(&truncated_path, &body[..body.len() / 2]).map_err(|e| e.to_string())?;
    let mut edited = plan.clone();
    edited["items"][0]["id"] = Value::from("web");
    let edited_path = d.dir().join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).map_err(|e| e.to_string())?;

    std::thread::sleep(Duration::from_millis(2100));
    let foreign_arg = foreign_path.to_string_lossy().into_owned();
    let truncated_arg = truncated_path.to_string_lossy().into_owned();
    let edited_arg = edited_path.to_string_lossy().into_owned();
    for (args, needle) in [
        (
            vec!["apply", foreign_arg.as_str(), "--yes"],
            "made on engine",
        ),
        (
            vec!["apply", path.as_str(), "--yes", "--max-age", "1s"],
            "older than --max-age",
        ),
        (
            vec!["apply", truncated_arg.as_str(), "--yes"],
            "not a docker-reclaim plan",
        ),
        (
            vec!["apply", edited_arg.as_str(), "--yes"],
            "not a full container ID",
        ),
        (
            vec!["apply", "/nonexistent/plan.json", "--yes"],
            "cannot read plan file",
        ),
    ] {
        let output = d.reclaim(&args);
        check!(
            output.status.code() == Some(2),
            "{args:?}: exit {:?}",
            output.status.code()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        check!(
            stderr.lines().count() == 1 && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }
    check!(d.all_containers()? == containers, "containers changed");
    check!(d.all_images()? == images, "images changed");

    // The same plan, fresh enough, applies.
    let output = d.reclaim(&["apply", &path, "--yes"]);
    check!(
        output.status.code() == Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn second_apply_is_locked_out() -> Result<()> {
    let (d, _, _) = small_engine()?;
    let containers = d.all_containers()?;
    let mut first = on_pty(&d, &[])?;
    first.expect(PROMPT, PATIENCE)?;
    let second = d.reclaim(&["--yes"]);
    check!(
        second.status.code() == Some(7),
        "exit {:?}",
        second.status.code()
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    check!(
        stderr.contains("another docker-reclaim is applying"),
        "{stderr}"
    );
    first.answer(b"n\r")?;
    first.wait(PATIENCE)?;
    check!(d.all_containers()? == containers, "containers changed");
    // Once the first is done, the lock is free.
    let third = d.reclaim(&["--yes"]);
    check!(
        third.status.code() == Some(0),
        "after: {}",
        String::from_utf8_lossy(&third.stderr)
    );
    Ok(())
}

fn ctrl_c_stops_and_reports() -> Result<()> {
    const MANY: usize = 40;
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    for n in 0..MANY {
        d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            &format!("c{n}"),
            "base",
            "true",
        ])?;
    }
    let mut child = reclaim_command()
        .arg("-H")
        .arg(d.host())
        .args(["--yes", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    // Interrupt as soon as the first deletion is reported.
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("removed ") => break,
            Some(Ok(_)) => {}
            _ => return Err("the apply ended before removing anything".into()),
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id().cast_signed()).ok_or("no pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::INT).map_err(|e| e.to_string())?;
    let rest: Vec<String> = lines.map_while(std::result::Result::ok).collect();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    check!(
        output.status.code() == Some(130),
        "exit {:?}; stderr {rest:?}",
        output.status.code()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    check!(
        stdout.contains("Interrupted:") && stdout.contains("not started"),
        "report:\n{stdout}"
    );
    let left = d.all_containers()?.len();
    check!(left > 0 && left < MANY, "{left} of {MANY} containers left");
    Ok(())
}

/// A saved plan is an upper bound, never a licence: what a plan made now would
/// not take stays, whatever the file says; names and ages shown come from the
/// engine; IDs that no longer exist are reported as gone, never as removed.
fn saved_plan_is_an_upper_bound() -> Result<()> {
    let (d, stopped, dangling) = small_engine()?;
    let prod = d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "prod-db",
        "base",
        "true",
    ])?;
    let tagged = d.build_on("base", "tool:1", 16, "tool")?;
    d.docker(&["volume", "create", "pgdata"])?;
    let (path, mut plan) = save_plan(&d)?;

    // Edited: another name for old-1, a tagged image and a named volume the
    // default scope never plans, and IDs of things that do not exist.
    let items = plan["items"].as_array_mut().ok_or("no items")?;
    for item in items.iter_mut() {
        if item["id"] == stopped[0].as_str() {
            item["name"] = "tmp-scratch-build".into();
        }
    }
    items.push(serde_json::json!({
        "kind": "image", "id": tagged, "name": "<none>", "reason": "dangling",
        "tags": [], "created": 0, "predicted_bytes": 1
    }));
    items.push(serde_json::json!({
        "kind": "volume", "id": "pgdata", "name": "pgdata", "reason": "named_volume",
        "predicted_bytes": 1
    }));
    for n in 0..3 {
        items.push(serde_json::json!({
            "kind": "container", "id": format!("{n:0>64}"), "name": "ghost",
            "reason": "exited", "predicted_bytes": 1000
        }));
    }
    std::fs::write(&path, serde_json::to_vec(&plan).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;

    // The scope is the file's: a scope flag with a saved plan is a usage error.
    let widened = d.reclaim(&["apply", &path, "--yes", "--all"]);
    check!(widened.status.code() == Some(2), "--all: {widened:?}");

    let output = d.reclaim(&[
        "apply", &path, "--yes", "--keep", "prod-*", "--keep", "old-2",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    check!(
        output.status.code() == Some(0),
        "exit {:?}: {stdout}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    check!(
        exists_container(&d, &prod)?,
        "--keep prod-* did not protect prod-db"
    );
    check!(
        exists_container(&d, &stopped[1])?,
        "--keep old-2 did not protect old-2"
    );
    check!(
        exists_image(&d, &tagged)?,
        "a tagged image added to the file was removed"
    );
    check!(
        d.docker(&["volume", "ls", "-q"])?.contains("pgdata"),
        "a named volume added to the file was removed"
    );
    check!(!exists_container(&d, &stopped[0])?, "old-1 was not removed");
    check!(
        !exists_image(&d, &dangling)?,
        "the dangling image was not removed"
    );
    check!(
        !stdout.contains("tmp-scratch-build") && stdout.contains("old-1"),
        "names must come from the engine: {stdout}"
    );
    check!(
        stdout.contains("3 gone already") && stdout.contains("--keep prod-*"),
        "the saved plan's leftovers are not explained: {stdout}"
    );
    // Gone IDs are not counted as removed: one container (old-1) was.
    let removed_line = stdout
        .lines()
        .find(|line| line.starts_with("Containers") && line.contains(" 1 "))
        .unwrap_or("");
    check!(!removed_line.is_empty(), "report: {stdout}");

    // A keep rule in the config file holds for a saved plan too.
    let (path, _) = save_plan(&d)?;
    let config = d.dir().join("config.toml");
    std::fs::write(&config, "keep = [\"prod-*\"]\n").map_err(|e| e.to_string())?;
    let config = config.to_string_lossy().into_owned();
    let output = d.reclaim(&["apply", &path, "--yes", "--config", &config]);
    check!(output.status.success(), "config run: {output:?}");
    check!(
        exists_container(&d, &prod)?,
        "keep in the config file did not protect prod-db"
    );
    check!(!exists_container(&d, &stopped[1])?, "old-2 was not removed");
    Ok(())
}

/// `docker-reclaim > plan.txt`: the person at the terminal still sees the plan
/// before being asked, and the file gets it too.
fn plan_is_shown_before_the_prompt_with_stdout_piped() -> Result<()> {
    let (d, stopped, _) = small_engine()?;
    let path = d.dir().join("plan.txt");
    let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let mut command = reclaim_command();
    command.arg("-H").arg(d.host());
    let mut pty = Pty::spawn_with_stdout(command, Some(file))?;
    pty.expect(PROMPT, PATIENCE)?;
    let screen = pty.output();
    let prompt_at = screen.find(PROMPT).unwrap_or(0);
    check!(
        screen[..prompt_at].contains("old-1") && screen[..prompt_at].contains("RECLAIM"),
        "the plan was not on the terminal before the prompt:\n{screen}"
    );
    pty.answer(b"n\r")?;
    pty.wait(PATIENCE)?;
    let saved = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    check!(
        saved.contains("old-1"),
        "the file did not get the plan: {saved}"
    );
    check!(exists_container(&d, &stopped[0])?, "something was removed");
    Ok(())
}

/// `-q`: a dry run prints the planned IDs and nothing else; an apply prints one
/// summary line and no progress; without --yes it is refused. Colour only when
/// asked for (`NO_COLOR` is set for every test, and stdout is a pipe).
fn quiet_and_colour() -> Result<()> {
    let (d, stopped, dangling) = small_engine()?;
    let output = d.reclaim(&["--dry-run", "-q"]);
    check!(output.status.success(), "{output:?}");
    let ids: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected: BTreeSet<String> = stopped.iter().cloned().collect();
    expected.insert(dangling.clone());
    check!(ids == expected, "-q listed {ids:?}, expected {expected:?}");

    let plain = d.reclaim(&["--dry-run"]);
    check!(
        !String::from_utf8_lossy(&plain.stdout).contains('\x1b'),
        "colour without a terminal"
    );
    let coloured = d.reclaim(&["--dry-run", "--color", "always"]);
    check!(
        String::from_utf8_lossy(&coloured.stdout).contains("\x1b["),
        "no colour with --color always"
    );

    let refused = d.reclaim(&["-q"]);
    check!(
        refused.status.code() == Some(2),
        "-q without --yes: {refused:?}"
    );
    let output = d.reclaim(&["--yes", "-q"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    check!(output.status.success(), "{output:?}");
    check!(
        stdout.lines().count() == 1 && stdout.starts_with("Removed 3 of 3 items"),
        "summary: {stdout}"
    );
    check!(
        output.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `--yes --prune-scope` takes what `docker system prune -f` would: stopped
/// containers, unused networks, dangling images (legacy and BuildKit rebuilds)
/// and the build cache records only those images shared. After it, the prune
/// finds nothing.
fn prune_scope_leaves_nothing_for_docker_system_prune() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    for kib in [100, 200] {
        d.build(
            "legacy:latest",
            &format!("FROM base\nRUN dd if=/dev/zero of=/blob bs=1024 count={kib} 2>/dev/null\n"),
        )?;
    }
    let dockerfile = |kib: u32| {
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"dd\", \"if=/dev/zero\", \"of=/blob\", \"bs=1024\", \"count={kib}\"]\n"
        )
    };
    d.buildkit_build("bk:latest", &dockerfile(300))?;
    d.buildkit_build("bk:latest", &dockerfile(600))?;
    d.docker(&["network", "create", "--internal", "unused-net"])?;
    let id = d.docker(&["run", "-d", "--network", "none", "base", "true"])?;
    d.docker(&["wait", &id])?;
    d.docker(&["create", "--network", "none", "legacy:latest", "true"])?;

    let output = d.reclaim(&["--yes", "--prune-scope"]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let prune = d.docker(&["system", "prune", "-f"])?;
    check!(
        !prune.contains("Deleted") && prune.contains("Total reclaimed space: 0B"),
        "docker system prune still found something after --prune-scope:\n{prune}\n\ndocker-reclaim said:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // What stays is what prune leaves: the tagged images.
    for tag in ["base:latest", "legacy:latest", "bk:latest"] {
        d.image_id(tag)?;
    }
    Ok(())
}
