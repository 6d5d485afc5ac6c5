//! The maintenance policy on a real dockerd: least recently used first (with
//! uses the engine no longer shows, from its events and the state file), the
//! `--min-idle` grace, the build cache budget, and `watch` through an engine
//! restart, a SIGTERM while deleting and a corrupted state file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::support::{Daemon, Result};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        targets_take_the_least_recently_used_images_and_spare_fresh_ones,
        watch_records_jobs_and_reclaims_the_least_recently_used,
        build_cache_beyond_the_budget_goes_least_recently_used_first,
        watch_survives_an_engine_restart_and_a_corrupt_state_file,
        watch_stops_cleanly_on_sigterm_while_deleting,
        kubelets_containers_and_their_images_stay_unless_asked,
        watch_serves_its_metrics_on_loopback,
    ]
}

const MIB: u64 = 1024 * 1024;

/// Bytes free on the data root's filesystem now.
fn available(d: &Daemon) -> Result<u64> {
    let output = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(&d.data_root)
        .output()
        .map_err(|e| format!("df: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| "df gave no number".to_string())
}

fn json(output: &std::process::Output) -> Result<Value> {
    check!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
}

fn planned(plan: &Value, kind: &str) -> Vec<String> {
    plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["kind"] == kind)
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect()
}

/// Eight 8 MiB images built in order, one second apart; then the two
/// oldest are run by `docker run --rm` jobs, which leave no container.
/// Returns the image IDs, oldest first.
fn eight_images_two_oldest_used(d: &Daemon) -> Result<Vec<String>> {
    let images = eight_images(d, "i")?;
    run_jobs(d)?;
    Ok(images)
}

/// Eight 8 MiB images `img:0`…`img:7` on `base`, built one second apart
/// (labelled `LABELn`); their IDs, oldest first.
fn eight_images(d: &Daemon, label: &str) -> Result<Vec<String>> {
    d.build_base("base:latest")?;
    let mut images = Vec::new();
    for n in 0..8 {
        images.push(d.build_on(
            "base",
            &format!("img:{n}"),
            8 * 1024,
            &format!("{label}{n}"),
        )?);
        std::thread::sleep(Duration::from_millis(1100));
    }
    Ok(images)
}

/// The two `docker run --rm` jobs on `img:0` and `img:1`: they leave no container.
fn run_jobs(d: &Daemon) -> Result<()> {
    for n in 0..2 {
        d.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &format!("img:{n}"),
            "true",
        ])?;
    }
    Ok(())
}

/// The plan under `--target-free` takes the shortest least-recently-used
/// prefix of the images that covers what it needs: never the two images the
/// jobs ran, and never, with the default grace, an image made within the hour.
fn targets_take_the_least_recently_used_images_and_spare_fresh_ones() -> Result<()> {
    let d = Daemon::start()?;
    let images = eight_images_two_oldest_used(&d)?;
    let target = format!("{}", available(&d)? + 20 * MIB);
    // The default grace keeps every image: all were made a minute ago.
    let fresh = json(&d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "--all",
        "--target-free",
        &target,
    ]))?;
    check!(
        planned(&fresh, "image").is_empty(),
        "fresh images planned: {fresh}"
    );
    let graced = fresh["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|kept| {
            kept["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("--min-idle 1h"))
        })
        .count();
    check!(graced >= 8, "not every image kept by --min-idle: {fresh}");

    // Saved, so that what is applied is this plan: other tests write to the
    // same filesystem meanwhile, and a fresh --target-free would need more.
    let saved = d.dir().join("lru-plan.json");
    let saved = saved.to_str().ok_or("path")?;
    let plan = json(&d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "-v",
        "--all",
        "--min-idle",
        "0",
        "--target-free",
        &target,
        "--plan-out",
        saved,
    ]))?;
    let taken = planned(&plan, "image");
    check!(
        !taken.contains(&images[0]) && !taken.contains(&images[1]),
        "an image a job just ran is planned (images {images:?}, state {:?}): {plan}",
        state_text(&d)
    );
    // Least recently used first: img:2, img:3, … in build order.
    let expected: Vec<String> = images[2..2 + taken.len()].to_vec();
    let taken_set: BTreeSet<&String> = taken.iter().collect();
    check!(
        taken_set == expected.iter().collect(),
        "not the least recently used: {taken:?}, expected {expected:?}"
    );
    // About three images' worth; one or two more when other tests (or
    // anything else on the machine) filled the disk meanwhile. Short of all
    // six candidates: the plan stopped at the target.
    check!(
        taken.len() >= 2 && taken.len() <= 5,
        "about three images' worth: {taken:?}"
    );
    let sources: BTreeMap<&str, &str> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| Some((item["id"].as_str()?, item["last_use"]["source"].as_str()?)))
        .collect();
    check!(
        // Built (tagged) and never run since.
        taken
            .iter()
            .all(|id| matches!(sources.get(id.as_str()), Some(&("created" | "tagged")))),
        "last use not shown: {sources:?}"
    );
    // Applied (the saved plan): exactly those go, the jobs' images stay.
    let applied = d.reclaim(&["apply", saved, "--yes"]);
    check!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    for (n, id) in images.iter().enumerate() {
        let exists = d.image_id(id).is_ok();
        let should = !taken.contains(id);
        check!(
            exists == should,
            "img:{n}: exists {exists}, should {should}"
        );
    }
    Ok(())
}

/// A `watch` running while the jobs run records them in the state file;
/// after an engine restart (its events gone, the jobs' containers gone) only
/// the state file knows, and `watch --once` still spares those images.
fn watch_records_jobs_and_reclaims_the_least_recently_used() -> Result<()> {
    let mut d = Daemon::start()?;
    let images = eight_images(&d, "w")?;
    // Far from any mark: the watch only records.
    let mut watch = spawn_watch(
        &d,
        &["--when-above", "99.9%", "--poll", "1s", "--interval", "1h"],
    )?;
    wait_for(&mut watch, "watching", Duration::from_secs(60))?;
    run_jobs(&d)?;
    let recorded = || {
        state_text(&d).is_some_and(|text| images[..2].iter().all(|id| text.contains(id.as_str())))
    };
    let started = Instant::now();
    while !recorded() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    check!(
        recorded(),
        "the jobs' images are not in the state file: {:?}",
        state_text(&d)
    );
    let (status, stderr) = terminate(watch)?;
    check!(
        status.success(),
        "watch exited {status} on SIGTERM: {stderr}"
    );

    d.kill();
    d.restart()?;
    let target = format!("{}", available(&d)? + 20 * MIB);
    let output = d.reclaim(&[
        "watch",
        "--once",
        "--all",
        "--min-idle",
        "0",
        "--target-free",
        &target,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(output.status.success(), "watch --once: {stderr}");
    check!(stderr.contains("reclaiming"), "no reclaim: {stderr}");
    check!(
        d.image_id(&images[0]).is_ok() && d.image_id(&images[1]).is_ok(),
        "a job's image went: {stderr}"
    );
    check!(
        d.image_id(&images[2]).is_err(),
        "the least recently used stayed: {stderr}"
    );
    // Least recently used first: what went is img:2, img:3, … with no gap
    // (how many depends on what other tests wrote to the disk meanwhile).
    let gone: Vec<bool> = images[2..]
        .iter()
        .map(|id| d.image_id(id).is_err())
        .collect();
    check!(
        gone.windows(2).all(|pair| pair[0] || !pair[1]),
        "not a least-recently-used prefix (img:2.. gone: {gone:?}): {stderr}"
    );
    check!(
        stderr.contains("removed image"),
        "no line per action: {stderr}"
    );
    Ok(())
}

/// Build cache records not in use: those beyond `--build-cache-keep` go,
/// least recently used first; what stays fits in the budget.
fn build_cache_beyond_the_budget_goes_least_recently_used_first() -> Result<()> {
    let d = Daemon::start()?;
    for n in 0..4 {
        d.buildkit_build(
            &format!("cache:{n}"),
            &format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"dd\", \"if=/dev/zero\", \"of=/b{n}\", \"bs=1024\", \"count={}\"]\n",
                1024 * (n + 1)
            ),
        )?;
        std::thread::sleep(Duration::from_millis(1100));
    }
    // Untag the images: their records become plain cache.
    for n in 0..4 {
        d.docker(&["rmi", &format!("cache:{n}")])?;
    }
    let records = records(&d)?;
    check!(
        records.len() >= 4,
        "too few build cache records: {records:?}"
    );
    let total: u64 = records.iter().map(|r| r.size).sum();
    let budget = total / 2;
    let plan = json(&d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "--build-cache=all",
        "--build-cache-keep",
        &budget.to_string(),
    ]))?;
    let going: BTreeSet<String> = planned(&plan, "build_cache").into_iter().collect();
    check!(
        !going.is_empty(),
        "nothing beyond the budget planned: {plan}"
    );
    let staying: Vec<&Record> = records.iter().filter(|r| !going.contains(&r.id)).collect();
    let kept_bytes: u64 = staying.iter().map(|r| r.size).sum();
    check!(
        kept_bytes <= budget,
        "{kept_bytes} stay, over the budget {budget}: {plan}"
    );
    let newest_going = records
        .iter()
        .filter(|r| going.contains(&r.id))
        .map(|r| r.last_used)
        .max()
        .unwrap_or(0);
    let oldest_staying = staying
        .iter()
        .filter(|r| !r.in_use)
        .map(|r| r.last_used)
        .min()
        .unwrap_or(i64::MAX);
    check!(
        newest_going <= oldest_staying,
        "a more recently used record goes: {plan}"
    );
    let applied = d.reclaim(&[
        "--yes",
        "--build-cache=all",
        "--build-cache-keep",
        &budget.to_string(),
    ]);
    check!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let after: u64 = self::records(&d)?.iter().map(|r| r.size).sum();
    check!(
        after <= budget,
        "{after} bytes of build cache stay, over {budget}"
    );
    Ok(())
}

#[derive(Debug)]
struct Record {
    id: String,
    size: u64,
    last_used: i64,
    in_use: bool,
}

/// The engine's build cache records, from `/system/df`.
fn records(d: &Daemon) -> Result<Vec<Record>> {
    let answer = crate::support::raw_get(&d.socket, "/system/df")?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let df: Value = serde_json::from_str(body).map_err(|e| format!("/system/df: {e}"))?;
    Ok(df["BuildCache"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let last = r["LastUsedAt"].as_str().or(r["CreatedAt"].as_str())?;
            Some(Record {
                id: r["ID"].as_str()?.to_string(),
                size: r["Size"].as_u64()?,
                last_used: humantime::parse_rfc3339_weak(
                    last.split('.').next()?.trim_end_matches('Z'),
                )
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
                in_use: r["InUse"].as_bool().unwrap_or(false),
            })
        })
        .collect())
}

/// `watch` through an engine that is killed and restarted: it says so once,
/// reconnects, and goes on recording; a corrupt state file gives one
/// warning and is rebuilt.
fn watch_survives_an_engine_restart_and_a_corrupt_state_file() -> Result<()> {
    let mut d = Daemon::start()?;
    d.build_base("base:latest")?;
    let app = d.build_on("base", "app:1", 64, "app")?;
    std::fs::create_dir_all(d.state_dir()).map_err(|e| e.to_string())?;
    // A state file, as the first run leaves it, then broken.
    let first = d.reclaim(&["--dry-run"]);
    check!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let state = state_file(&d).ok_or("no state file after a run")?;
    std::fs::write(&state, b"{\"version\":1,\"engine\":\"torn").map_err(|e| e.to_string())?;

    let mut watch = spawn_watch(
        &d,
        &["--when-above", "99.9%", "--poll", "1s", "--interval", "2s"],
    )?;
    wait_for(&mut watch, "within --when-above", Duration::from_secs(60))?;
    d.kill();
    std::thread::sleep(Duration::from_secs(3));
    d.restart()?;
    d.docker(&["run", "--rm", "--network", "none", "app:1", "true"])?;
    let started = Instant::now();
    while !state_text(&d).is_some_and(|text| text.contains(app.as_str()))
        && started.elapsed() < Duration::from_secs(90)
    {
        std::thread::sleep(Duration::from_millis(300));
    }
    let recorded = state_text(&d).is_some_and(|text| text.contains(app.as_str()));
    let (status, stderr) = terminate(watch)?;
    check!(recorded, "no use recorded after the restart: {stderr}");
    check!(status.success(), "exit {status}: {stderr}");
    check!(
        stderr.matches("the state file").count() == 1,
        "not one warning about the state file: {stderr}"
    );
    check!(
        stderr.matches("went away").count() == 1,
        "not said once: {stderr}"
    );
    check!(
        stderr.matches("watching").count() == 2,
        "no reconnect: {stderr}"
    );
    let text = state_text(&d).ok_or("no state file")?;
    serde_json::from_str::<Value>(&text).map_err(|e| format!("state not rebuilt: {e}: {text}"))?;
    Ok(())
}

/// A SIGTERM while `watch` deletes: the deletions under way finish, nothing
/// more starts, and it exits 0; every container is either gone or intact.
fn watch_stops_cleanly_on_sigterm_while_deleting() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let mut made = Vec::new();
    for n in 0..40 {
        made.push(d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            &format!("c{n}"),
            "base",
            "true",
        ])?);
    }
    let target = format!("{}", available(&d)? + 100 * 1024 * MIB);
    let mut watch = spawn_watch(
        &d,
        &["--target-free", &target, "--jobs", "1", "--poll", "1s"],
    )?;
    wait_for(&mut watch, "removed container", Duration::from_secs(120))?;
    let (status, stderr) = terminate(watch)?;
    check!(status.success(), "exit {status}: {stderr}");
    let left = d.all_containers()?;
    check!(
        !left.is_empty(),
        "every container went before the signal: {stderr}"
    );
    for id in &left {
        d.docker(&["inspect", "--format", "{{.State.Status}}", id])?;
    }
    Ok(())
}

/// Containers kubelet made (io.kubernetes.* labels, as through cri-dockerd)
/// are kubelet's to collect: kept with the reason, their image with them;
/// `--include-kubernetes` takes both.
fn kubelets_containers_and_their_images_stay_unless_asked() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let pause = d.build_on("base", "pause:3", 64, "pause")?;
    let pod = d.docker(&[
        "create",
        "--network",
        "none",
        "--label",
        "io.kubernetes.pod.name=web-0",
        "--label",
        "io.kubernetes.pod.namespace=default",
        "pause:3",
        "true",
    ])?;
    let plan = json(&d.reclaim(&["--dry-run", "--format", "json", "--all"]))?;
    check!(
        !planned(&plan, "container").contains(&pod),
        "kubelet's container planned: {plan}"
    );
    check!(
        !planned(&plan, "image").contains(&pause),
        "its image planned: {plan}"
    );
    let reason = plan["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|kept| kept["id"] == pod.as_str())
        .and_then(|kept| kept["rule"].as_str())
        .unwrap_or_default()
        .to_string();
    check!(
        reason.starts_with("kubelet's to collect"),
        "no reason: {plan}"
    );
    let taken = json(&d.reclaim(&[
        "--dry-run",
        "--format",
        "json",
        "--all",
        "--include-kubernetes",
    ]))?;
    check!(
        planned(&taken, "container").contains(&pod),
        "not taken when asked: {taken}"
    );
    check!(
        planned(&taken, "image").contains(&pause),
        "its image not taken when asked: {taken}"
    );
    Ok(())
}

/// `watch --metrics-listen 127.0.0.1:PORT` serves the last check's metrics.
fn watch_serves_its_metrics_on_loopback() -> Result<()> {
    let d = Daemon::start()?;
    let port = crate::support::free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut watch = spawn_watch(
        &d,
        &[
            "--when-above",
            "99.9%",
            "--poll",
            "1s",
            "--interval",
            "1h",
            "--metrics-listen",
            &listen,
        ],
    )?;
    wait_for(&mut watch, "within --when-above", Duration::from_secs(60))?;
    let scraped = crate::metrics::scrape(port)?;
    let (status, stderr) = terminate(watch)?;
    check!(scraped.starts_with("HTTP/1.0 200"), "{scraped}");
    for needle in [
        "docker_reclaim_engine_up 1",
        "docker_reclaim_last_run_exit_code 0",
        "docker_reclaim_filesystem_free_bytes ",
    ] {
        check!(scraped.contains(needle), "{needle} not served:\n{scraped}");
    }
    check!(status.success(), "exit {status}: {stderr}");
    Ok(())
}

/// The text of the state file, if there is one.
fn state_text(d: &Daemon) -> Option<String> {
    std::fs::read_to_string(state_file(d)?).ok()
}

fn state_file(d: &Daemon) -> Option<std::path::PathBuf> {
    std::fs::read_dir(d.state_dir())
        .ok()?
        .filter_map(std::result::Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with("state-")
                        && std::path::Path::new(name)
                            .extension()
                            .is_some_and(|ext| ext == "json")
                })
        })
}

/// A running `watch` and the file its stderr goes to.
struct Watch {
    child: Child,
    log: std::path::PathBuf,
}

fn spawn_watch(d: &Daemon, args: &[&str]) -> Result<Watch> {
    let log = d.dir().join(format!("watch-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut all = vec!["watch"];
    all.extend_from_slice(args);
    let child = d
        .reclaim_cmd(&all)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("spawning watch: {e}"))?;
    Ok(Watch { child, log })
}

fn log_of(watch: &Watch) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(&watch.log) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// Waits until the watch's stderr says `needle`.
fn wait_for(watch: &mut Watch, needle: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if log_of(watch).contains(needle) {
            return Ok(());
        }
        if let Ok(Some(status)) = watch.child.try_wait() {
            return Err(format!("watch exited {status}: {}", log_of(watch)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = watch.child.kill();
    let _ = watch.child.wait();
    Err(format!("watch never said {needle:?}: {}", log_of(watch)))
}

/// SIGTERM, then its exit status and stderr (killed after 60 s).
fn terminate(mut watch: Watch) -> Result<(std::process::ExitStatus, String)> {
    if let Some(pid) = rustix::process::Pid::from_raw(watch.child.id().cast_signed()) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = watch.child.try_wait() {
            return Ok((status, log_of(&watch)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = watch.child.kill();
    let _ = watch.child.wait();
    Err(format!("watch did not stop on SIGTERM: {}", log_of(&watch)))
}
