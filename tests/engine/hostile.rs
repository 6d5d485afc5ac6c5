//! Hostile input and a failing engine: files that are not ours, unbounded or
//! blocking input, an engine that hangs (SIGSTOP) or dies (SIGKILL) mid-apply.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::check;
use crate::support::{Daemon, Result, reclaim_command};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        files_are_refused_or_written_into,
        hung_engine_times_out_and_yields_to_ctrl_c,
        engine_killed_mid_apply_is_said_once,
        tag_moved_before_removal_is_left_alone,
        group_user_applies_after_root_and_shares_the_lock,
        tag_moved_within_the_untag_window_is_reported,
        a_closed_stdout_never_turns_a_failure_into_success,
        plan_out_through_a_planted_link_is_refused,
    ]
}

fn stopped_engine(count: usize) -> Result<Daemon> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    for n in 0..count {
        let name = format!("stopped-{n}");
        d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            &name,
            "base",
            "true",
        ])?;
    }
    Ok(d)
}

fn one_line_error(output: &std::process::Output, code: i32, needle: &str) -> Result<()> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        output.status.code() == Some(code),
        "expected exit {code}, got {:?}: {stderr}",
        output.status.code()
    );
    check!(
        stderr.lines().count() == 1 && stderr.contains(needle),
        "expected one line with {needle:?}: {stderr}"
    );
    Ok(())
}

fn mkfifo(path: &std::path::Path) -> Result<()> {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .map_err(|e| e.to_string())?;
    check!(status.success(), "mkfifo {}", path.display());
    Ok(())
}

fn files_are_refused_or_written_into() -> Result<()> {
    let d = stopped_engine(2)?;
    let before = d.all_containers()?;
    let dir = d.dir();

    // Unbounded and blocking input is refused before it is read.
    one_line_error(
        &d.reclaim(&["apply", "/dev/zero", "--yes"]),
        2,
        "character device",
    )?;
    one_line_error(
        &d.reclaim(&["--dry-run", "--config", "/dev/zero"]),
        2,
        "character device",
    )?;
    let fifo = dir.join("plan.fifo");
    mkfifo(&fifo)?;
    let fifo_arg = fifo.to_string_lossy().into_owned();
    one_line_error(&d.reclaim(&["apply", &fifo_arg, "--yes"]), 2, "FIFO")?;
    one_line_error(&d.reclaim(&["--dry-run", "--config", &fifo_arg]), 2, "FIFO")?;
    one_line_error(&d.reclaim(&["--yes", "--log-file", &fifo_arg]), 2, "FIFO")?;

    // A device given as --plan-out is written into, never replaced.
    let output = d.reclaim(&["--dry-run", "--plan-out", "/dev/null"]);
    check!(output.status.success(), "--plan-out /dev/null: {output:?}");
    let null = std::fs::metadata("/dev/null").map_err(|e| e.to_string())?;
    check!(
        null.file_type().is_char_device(),
        "/dev/null is no longer a device"
    );
    // A FIFO given as --plan-out: its reader gets the plan.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut body = String::new();
            let _ = std::fs::File::open(&fifo).and_then(|mut f| f.read_to_string(&mut body));
            body
        })
    };
    let output = d.reclaim(&["--dry-run", "--plan-out", &fifo_arg]);
    check!(output.status.success(), "--plan-out FIFO: {output:?}");
    let body = reader.join().map_err(|_| "reader panicked")?;
    check!(
        body.contains("\"schema_version\""),
        "the FIFO's reader got: {body}"
    );
    let kind = std::fs::symlink_metadata(&fifo).map_err(|e| e.to_string())?;
    check!(kind.file_type().is_fifo(), "the FIFO was replaced");
    // Into a directory that does not exist: a usage error.
    let missing = dir.join("no/such/dir/plan.json");
    one_line_error(
        &d.reclaim(&["--dry-run", "--plan-out", &missing.to_string_lossy()]),
        2,
        "does not exist",
    )?;
    // A regular plan file is private.
    let plan = dir.join("plan.json");
    let output = d.reclaim(&["--dry-run", "--plan-out", &plan.to_string_lossy()]);
    check!(output.status.success(), "--plan-out: {output:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&plan)
            .map_err(|e| e.to_string())?
            .permissions(),
    );
    check!(mode & 0o777 == 0o600, "plan file mode {mode:o}");

    // A symlink planted at the log path is not followed; /dev/full is refused
    // before anything is removed.
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").map_err(|e| e.to_string())?;
    let link = dir.join("audit.log");
    std::os::unix::fs::symlink(&victim, &link).map_err(|e| e.to_string())?;
    one_line_error(
        &d.reclaim(&["--yes", "--log-file", &link.to_string_lossy()]),
        2,
        "symbolic link",
    )?;
    check!(
        std::fs::read(&victim).map_err(|e| e.to_string())? == b"precious",
        "the symlink's target was written"
    );
    one_line_error(
        &d.reclaim(&["--yes", "--log-file", "/dev/full"]),
        2,
        "character device",
    )?;
    check!(d.all_containers()? == before, "something was removed");
    Ok(())
}

fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    check!(status.success(), "kill -{signal} {pid}");
    Ok(())
}

/// A dockerd stopped with SIGSTOP accepts connections and never answers.
fn hung_engine_times_out_and_yields_to_ctrl_c() -> Result<()> {
    let d = stopped_engine(1)?;
    signal(d.pid(), "STOP")?;
    let result = (|| -> Result<()> {
        let started = Instant::now();
        let output = d.reclaim(&["--dry-run", "--timeout", "2s"]);
        one_line_error(&output, 3, "did not answer within 2s")?;
        check!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );

        // With the default limit, Ctrl-C ends the wait at once.
        let mut child = reclaim_command()
            .args(["-H", &d.host(), "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs(1));
        signal(child.id(), "INT")?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return Err("Ctrl-C did not end the wait on a hung engine".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        check!(status.code() == Some(130), "exit {status:?}: {stderr}");
        check!(stderr.contains("nothing was removed"), "{stderr}");
        Ok(())
    })();
    signal(d.pid(), "CONT")?;
    result?;
    // The lock was released with the process: an apply goes through now.
    let output = d.reclaim(&["--yes"]);
    check!(output.status.success(), "after SIGCONT: {output:?}");
    Ok(())
}

/// SIGKILL to dockerd while an apply runs: deletions stop, one clear line says
/// the engine went away, exit 6; a run after the engine restarts completes.
fn engine_killed_mid_apply_is_said_once() -> Result<()> {
    let mut d = stopped_engine(60)?;
    let mut child = reclaim_command()
        .args(["-H", &d.host(), "--yes", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    // Progress lines go to stderr without a terminal: kill after the first removal.
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        let first = line.starts_with("removed ");
        seen.push(line);
        if first {
            break;
        }
    }
    d.kill();
    seen.extend(lines.map_while(std::result::Result::ok));
    let status = child.wait().map_err(|e| e.to_string())?;
    let text = seen.join("\n");
    check!(status.code() == Some(6), "exit {status:?}:\n{text}");
    let told = seen
        .iter()
        .filter(|line| line.contains("stopped answering during the apply"))
        .count();
    check!(told == 1, "said {told} times:\n{text}");
    check!(seen.len() < 20, "{} lines on stderr:\n{text}", seen.len());

    d.restart()?;
    let output = d.reclaim(&["--yes"]);
    check!(output.status.success(), "after the restart: {output:?}");
    check!(
        d.all_containers()?.is_empty(),
        "containers left after the re-run"
    );
    Ok(())
}

/// A proxy on the engine's socket that, the first time a request matches
/// `trigger`, first moves every tag in `tags` to the image `to`, then lets
/// the request through.
fn tag_moving_proxy(
    d: &Daemon,
    trigger: impl Fn(&str) -> bool + Send + Sync + 'static,
    tags: Vec<String>,
    to: String,
) -> Result<(String, std::thread::JoinHandle<()>)> {
    use std::io::Write;
    use std::os::unix::net::{UnixListener, UnixStream};
    let path = d.dir().join("proxy.sock");
    let listener = UnixListener::bind(&path).map_err(|e| e.to_string())?;
    let upstream = d.socket.clone();
    let host = d.host();
    let trigger = std::sync::Arc::new(trigger);
    let handle = std::thread::spawn(move || {
        let moved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = UnixStream::connect(&upstream) else {
                return;
            };
            let (mut client_read, mut server_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut server_read, mut client_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Write);
            });
            let (trigger, tags, to, host, moved) = (
                trigger.clone(),
                tags.clone(),
                to.clone(),
                host.clone(),
                moved.clone(),
            );
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 65536];
                while let Ok(n) = client_read.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buffer[..n]);
                    if trigger(&text) && !moved.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        for tag in &tags {
                            let _ = std::process::Command::new("/usr/bin/docker")
                                .args(["-H", &host, "tag", &to, tag])
                                .output();
                        }
                    }
                    if server_write.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                let _ = server_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Ok((format!("unix://{}", path.display()), handle))
}

/// A tag that moves to another image between the re-check and its removal is
/// left alone, and its image skipped: the other image keeps every tag.
fn tag_moved_before_removal_is_left_alone() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let planned = d.build_on("base", "multi:a", 16, "planned")?;
    d.docker(&["tag", "multi:a", "multi:b"])?;
    let other = d.build_on("base", "other:1", 16, "other")?;
    // The re-check of whether a container uses the image: the last look
    // before its tags go.
    let watch = planned.trim_start_matches("sha256:").to_string();
    let (proxy, _server) = tag_moving_proxy(
        &d,
        move |text| {
            text.starts_with("GET ") && text.contains("/containers/json") && text.contains(&watch)
        },
        vec!["multi:a".into(), "multi:b".into()],
        other.clone(),
    )?;
    let output = reclaim_command()
        .args([
            "-H", &proxy, "--all", "--keep", "other:*", "--keep", "base:*", "--yes", "--jobs", "1",
            "--format", "json",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("{e}: {output:?}"))?;
    let item = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["id"] == planned.as_str())
        .ok_or_else(|| format!("the multi-tag image was not planned: {report}"))?;
    check!(item["outcome"] == "skipped", "outcome: {item}");
    check!(
        item["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("now names image")),
        "detail: {item}"
    );
    let tags = d.docker(&["image", "inspect", "-f", "{{json .RepoTags}}", &other])?;
    for tag in ["multi:a", "multi:b", "other:1"] {
        check!(tags.contains(tag), "the other image lost {tag}: {tags}");
    }
    check!(d.all_images()?.contains(&planned), "the planned image went");
    Ok(())
}

/// Safety round 2, finding 9: a tag moved to a dangling image that the rules
/// keep out, between the look-up of the tag and its DELETE, takes that image
/// with it (the engine deletes an image whose last tag goes). That window
/// cannot be closed from outside; the engine's answer says what it deleted,
/// and the run reports it as a failure naming that image, loudly, and leaves
/// the planned image.
fn tag_moved_within_the_untag_window_is_reported() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let victim = d.build_on("base", "victim:1", 16, "victim")?;
    d.build_on("base", "victim:1", 16, "victim-2")?;
    let planned = d.build_on("base", "multi:a", 16, "planned")?;
    d.docker(&["tag", "multi:a", "multi:b"])?;
    let (proxy, _server) = tag_moving_proxy(
        &d,
        |text| text.starts_with("DELETE /") && text.contains("/images/multi"),
        vec!["multi:b".into()],
        victim.clone(),
    )?;
    let output = reclaim_command()
        .args([
            "-H",
            &proxy,
            "--all",
            "--keep",
            "base:*",
            "--keep",
            "victim:*",
            "--keep-label",
            "fixture=victim",
            "--yes",
            "--jobs",
            "1",
            "--format",
            "json",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("{e}: {output:?}"))?;
    let short = &victim.trim_start_matches("sha256:")[..12];
    let item = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["id"] == planned.as_str())
        .ok_or_else(|| format!("the multi-tag image was not planned: {report}"))?;
    check!(
        item["outcome"] == "failed"
            && item["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains(short)),
        "the deleted image is not named: {item}"
    );
    check!(
        output.status.code() == Some(6),
        "exit {:?}",
        output.status.code()
    );
    check!(
        stderr.contains("warning") && stderr.contains(short),
        "no warning naming it: {stderr}"
    );
    check!(d.all_images()?.contains(&planned), "the planned image went");
    check!(
        !d.all_images()?.contains(&victim),
        "the scenario did not happen: the moved tag's image is still there"
    );
    Ok(())
}

/// A user in the socket's group (here `nobody`, in `nogroup`) can apply after
/// root did, and shares root's lock: while root holds it, the user is locked out.
fn group_user_applies_after_root_and_shares_the_lock() -> Result<()> {
    let d = Daemon::start_with(&["--group", "nogroup"])?;
    d.build_base("base:latest")?;
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "one",
        "base",
        "true",
    ])?;
    // A user of the group who runs first, before root's lock file exists,
    // locks in a directory of their own; that excludes root too (safety
    // round 2, finding 11).
    let mut first = std::process::Command::new("setpriv");
    first
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_docker-reclaim"))
        .args(["-H", &d.host()])
        .env("XDG_CONFIG_HOME", "/nonexistent/docker-reclaim-tests")
        .env("DOCKER_RECLAIM_CACHE_DIR", "")
        .env("DOCKER_RECLAIM_STATE_DIR", "")
        .env_remove("XDG_RUNTIME_DIR");
    let mut user_first = crate::support::Pty::spawn(first)?;
    user_first.expect("[y/N]", Duration::from_secs(60))?;
    let locked = d.reclaim(&["--yes"]);
    check!(
        locked.status.code() == Some(7),
        "root while the group's user holds the lock: {:?}\n{}",
        locked.status.code(),
        String::from_utf8_lossy(&locked.stderr)
    );
    user_first.answer(b"n\r")?;
    user_first.wait(Duration::from_secs(60))?;
    let root = d.reclaim(&["--yes"]);
    check!(root.status.success(), "root: {root:?}");
    d.docker(&[
        "create",
        "--network",
        "none",
        "--name",
        "two",
        "base",
        "true",
    ])?;
    let as_nobody = |args: &[&str]| -> Result<std::process::Output> {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_docker-reclaim"))
            .args(["-H", &d.host()])
            .args(args)
            .env("XDG_CONFIG_HOME", "/nonexistent/docker-reclaim-tests")
            .env("DOCKER_RECLAIM_CACHE_DIR", "")
            .env("DOCKER_RECLAIM_STATE_DIR", "")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())
    };
    // While root holds the engine's lock (at its prompt), the user is locked out.
    let mut command = reclaim_command();
    command.args(["-H", &d.host()]);
    let mut holder = crate::support::Pty::spawn(command)?;
    holder.expect("[y/N]", Duration::from_secs(60))?;
    let locked = as_nobody(&["--yes"])?;
    check!(
        locked.status.code() == Some(7),
        "the group's user while root holds the lock: {:?}\n{}",
        locked.status.code(),
        String::from_utf8_lossy(&locked.stderr)
    );
    holder.answer(b"n\r")?;
    holder.wait(Duration::from_secs(60))?;
    let user = as_nobody(&["--yes"])?;
    check!(
        user.status.success(),
        "the group's user after root: {:?}\n{}",
        user.status.code(),
        String::from_utf8_lossy(&user.stderr)
    );
    check!(
        d.all_containers()?.is_empty(),
        "the user's apply removed nothing"
    );
    let lock = std::path::Path::new("/run/docker-reclaim");
    let meta = std::fs::metadata(lock).map_err(|e| e.to_string())?;
    check!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o022 == 0,
        "the lock directory is writable by others"
    );
    Ok(())
}

/// Safety round 2, finding 6: with one deletion failing, `--yes` exits 6, but
/// `--yes | head -c1`, `--format json | …` and `>&-` exited 0. A deletion is
/// made to fail by making a file in the container's directory immutable.
fn a_closed_stdout_never_turns_a_failure_into_success() -> Result<()> {
    // Each case on an engine of its own: on the containerd image store a
    // container whose removal failed this way breaks the engine's /system/df
    // (500, "rw layer snapshot not found") for every later run.
    for case in ["json", "human", "closed"] {
        let d = Daemon::start()?;
        d.build_base("base:latest")?;
        let id = d.docker(&["create", "--network", "none", "base", "true"])?;
        let pinned = d
            .data_root
            .join("containers")
            .join(id.trim())
            .join("hostconfig.json");
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&pinned)
            .status()
            .map_err(|e| e.to_string())?;
        check!(status.success(), "chattr +i {}", pinned.display());
        let result = closed_stdout_case(&d, case);
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&pinned)
            .status();
        result?;
    }
    Ok(())
}

/// One run whose one deletion fails: into a pipe whose reader is gone before
/// it starts (every write breaks), or with stdout closed (`>&-`).
fn closed_stdout_case(d: &Daemon, case: &str) -> Result<()> {
    if case == "closed" {
        let closed = std::process::Command::new("sh")
            .args(["-c", "\"$0\" -H \"$1\" --yes >&-; echo $?"])
            .arg(reclaim_command().get_program())
            .arg(d.host())
            .env("DOCKER_RECLAIM_CACHE_DIR", d.size_cache())
            .output()
            .map_err(|e| e.to_string())?;
        let code = String::from_utf8_lossy(&closed.stdout).trim().to_string();
        check!(
            code == "6",
            ">&-: exit {code}: {}",
            String::from_utf8_lossy(&closed.stderr)
        );
        return Ok(());
    }
    let mut child = reclaim_command()
        .env("DOCKER_RECLAIM_CACHE_DIR", d.size_cache())
        .args(["-H", &d.host(), "--yes", "--format", case])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    drop(child.stdout.take());
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        matches!(output.status.code(), Some(1 | 6)),
        "--yes --format {case} into a closed pipe: exit {:?}: {stderr}",
        output.status.code()
    );
    Ok(())
}

/// Safety round 2, finding 1: `ln -s /dev/loop0 D/plan.json` by another user,
/// then `--dry-run --plan-out D/plan.json`: the link is refused, what it
/// points to untouched.
fn plan_out_through_a_planted_link_is_refused() -> Result<()> {
    let d = stopped_engine(1)?;
    let dir = d.dir();
    let victim = dir.join("victim");
    std::fs::write(&victim, "keep").map_err(|e| e.to_string())?;
    let link = dir.join("plan.json");
    std::os::unix::fs::symlink(&victim, &link).map_err(|e| e.to_string())?;
    one_line_error(
        &d.reclaim(&["--dry-run", "--plan-out", &link.to_string_lossy()]),
        2,
        "symbolic link",
    )?;
    let kept = std::fs::read_to_string(&victim).map_err(|e| e.to_string())?;
    check!(kept == "keep", "the link's target was written: {kept}");
    Ok(())
}
