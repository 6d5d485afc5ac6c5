//! `watch`: a long-running mode. Reads the engine's events every `poll` and
//! records the images containers are created and started from (in the state
//! file); checks the data root's filesystem every `interval`, and shortly
//! after a burst of events; when the mark is crossed, runs the same path as
//! `--yes` (lock, inventory, last uses, plan to the target, re-checks,
//! deletions, report). One line per action on stderr. Reconnects with
//! backoff; a signal ends it between steps, or after the deletions under way.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use crate::cli::settings::{Mode, Settings};
use crate::engine::{DockerEngine, Engine};
use crate::exit::ExitStatus;
use crate::policy::state;
use crate::signals::Signals;
use crate::{measure, note, unix_now};

/// How often `watch` does what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Every {
    /// Checks without any event.
    pub(crate) interval: Duration,
    /// Reads the engine's events.
    pub(crate) poll: Duration,
    /// Serves the metrics over HTTP here.
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
}

/// The metrics of the last check, as served by `--metrics-listen`.
type Served = std::sync::Arc<std::sync::Mutex<String>>;

/// Serves `served` at `/metrics` on `listener`: one short request per
/// connection (read for at most 5 s, 8 KiB), answered and closed.
async fn serve(listener: tokio::net::TcpListener, served: Served) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let served = std::sync::Arc::clone(&served);
        tokio::spawn(async move {
            let mut head = vec![0u8; 8192];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
            let Ok(Ok(length)) = read else {
                return;
            };
            let request = String::from_utf8_lossy(&head[..length]);
            let answer = if request.starts_with("GET /metrics ")
                || request.starts_with("GET /metrics?")
            {
                let body = served.lock().map(|text| text.clone()).unwrap_or_default();
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.write_all(answer.as_bytes()))
                    .await;
        });
    }
}

/// After a burst of container events, check once this long has passed
/// without another: a CI job's containers come and go in bursts.
const SETTLE: Duration = Duration::from_secs(30);
/// Reconnecting waits this long at first, doubling up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

fn say(line: &str) {
    note(&format!("docker-reclaim watch: {line}"));
}

/// Runs until a signal (exit 0), or with `once` for one check.
pub(crate) async fn run(
    settings: &Settings,
    signals: &Signals,
    once: bool,
    every: Every,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let mut cycle = settings.clone();
    cycle.mode = Mode::Apply;
    cycle.yes = true;
    cycle.quiet = true;
    cycle.item_lines = true;
    let target = settings
        .rules
        .target
        .map(crate::plan::rules::Target::describe)
        .unwrap_or_default();
    let served: Served = Served::default();
    if let Some(addr) = every.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
            crate::exit::UsageError(format!("cannot listen on --metrics-listen {addr}: {err}"))
        })?;
        say(&format!("serving metrics at http://{addr}/metrics"));
        tokio::spawn(serve(listener, std::sync::Arc::clone(&served)));
    }
    let mut backoff = BACKOFF_MIN;
    let mut said_away = false;
    // Where the events were read up to: kept across reconnects, so that what
    // happened while the engine came back is read too.
    let mut since = unix_now();
    loop {
        if signals.stop().load(std::sync::atomic::Ordering::SeqCst) {
            say("stopped");
            return Ok(ExitStatus::Success);
        }
        let connected = tokio::select! {
            connected = DockerEngine::connect(&settings.host, settings.tls.as_ref(), settings.timeout, false) => connected,
            () = signals.stopped() => continue,
        };
        let engine = match connected {
            Ok(engine) => engine.named_by(settings.context.clone()),
            Err(err) if once => return Err(err),
            Err(err) => {
                if let Ok(mut text) = served.lock() {
                    let status = crate::exit::status_of(&err);
                    *text = crate::metrics::encode(&crate::run_figures(
                        i32::from(status.code()),
                        std::time::Instant::now(),
                    ));
                }
                if !said_away {
                    say(&format!(
                        "{err:#}; trying again with backoff (up to every {})",
                        humantime::format_duration(BACKOFF_MAX)
                    ));
                    said_away = true;
                }
                pause(signals, backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        let info = engine.info();
        say(&format!(
            "watching {} ({} {}, data root {}) to keep {target}",
            info.host,
            info.product.name(),
            info.version,
            info.data_root
        ));
        match follow(
            &engine,
            &cycle,
            signals,
            (once, every, &served),
            &mut since,
            out,
        )
        .await
        {
            Ok(status) => return Ok(status),
            Err(err) if once => return Err(err),
            Err(err) => {
                say(&format!(
                    "the engine went away ({err:#}); reconnecting with backoff"
                ));
                said_away = true;
                pause(signals, backoff).await;
            }
        }
    }
}

/// Sleeps `how_long`, or less when a signal comes.
async fn pause(signals: &Signals, how_long: Duration) {
    tokio::select! {
        () = tokio::time::sleep(how_long) => {}
        () = signals.stopped() => {}
    }
}

/// Follows one connected engine until a signal (`Ok`), the one check of
/// `once` (`Ok` with its status), or the engine failing (`Err`).
async fn follow(
    engine: &DockerEngine,
    cycle: &Settings,
    signals: &Signals,
    (once, every, served): (bool, Every, &Served),
    since: &mut i64,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let stopped = || signals.stop().load(std::sync::atomic::Ordering::SeqCst);
    let mut next_check = unix_now();
    let mut burst: Option<std::time::Instant> = None;
    // The events of the last read: the next overlaps it.
    let mut seen: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
    let interval = i64::try_from(every.interval.as_secs()).unwrap_or(i64::MAX);
    loop {
        if stopped() {
            say("stopped");
            return Ok(ExitStatus::Success);
        }
        let now = unix_now();
        let events = tokio::select! {
            events = engine.use_events(*since) => events,
            () = signals.stopped() => continue,
        };
        // An engine that refuses the events (an API without them) still
        // answers: the checks go on, with the other sources of last use.
        let events = match events {
            Ok(events) => events,
            Err(err) if crate::engine::is_refusal(&err) => Vec::new(),
            Err(err) => return Err(err),
        };
        // The next read overlaps this one by a second (see `use_events`).
        *since = now - 1;
        let events: Vec<crate::engine::UseEvent> = events
            .into_iter()
            .filter(|event| !seen.contains(&(event.container.clone(), event.time)))
            .collect();
        seen.extend(
            events
                .iter()
                .map(|event| (event.container.clone(), event.time)),
        );
        seen.retain(|(_, time)| *time >= *since);
        if !events.is_empty() {
            record(engine, cycle, &events).await;
            burst = Some(std::time::Instant::now());
        }
        let settled = burst.is_some_and(|last| last.elapsed() >= SETTLE);
        if once || now >= next_check || settled {
            burst = None;
            next_check = now.saturating_add(interval);
            let round = std::time::Instant::now();
            crate::metrics::note_engine(
                matches!(cycle.host, crate::engine::Host::Unix(_))
                    .then(|| std::path::PathBuf::from(&engine.info().data_root)),
            );
            let status = check(engine, cycle, signals, out).await?;
            let run = crate::run_figures(i32::from(status.code()), round);
            if let Ok(mut text) = served.lock() {
                *text = crate::metrics::encode(&run);
            }
            if let Some(path) = cycle.metrics_file.as_deref() {
                crate::metrics::write(path, &run).await;
            }
            if once {
                return Ok(status);
            }
        }
        pause(signals, every.poll).await;
    }
}

/// Remembers the images of these events in the state file, as they happen.
async fn record(engine: &DockerEngine, cycle: &Settings, events: &[crate::engine::UseEvent]) {
    let Some(dir) = cycle.state_dir.as_deref() else {
        return;
    };
    let (mut kept, warning) = state::load(dir, engine.info());
    if let Some(warning) = warning {
        note(&warning);
    }
    let mut resolved: std::collections::HashMap<&str, Option<String>> =
        std::collections::HashMap::new();
    for event in events {
        if !resolved.contains_key(event.image.as_str()) {
            let id = engine.tag_target(&event.image).await.ok().flatten();
            resolved.insert(&event.image, id);
        }
        if let Some(Some(id)) = resolved.get(event.image.as_str()) {
            kept.saw(id, event.time);
        }
    }
    if let Err(err) = state::save(dir, engine.info(), &kept) {
        say(&format!(
            "cannot write the state file in {}: {err}",
            dir.display()
        ));
    }
}

/// One check: reads the data root's filesystem and, above the mark,
/// reclaims as `--yes` does. An engine that stops answering is an `Err`.
async fn check(
    engine: &DockerEngine,
    cycle: &Settings,
    signals: &Signals,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let Some(target) = cycle.rules.target else {
        return Ok(ExitStatus::Success);
    };
    let root = std::path::PathBuf::from(&engine.info().data_root);
    let local = matches!(cycle.host, crate::engine::Host::Unix(_));
    let Some((total, available)) = local
        .then(|| measure::fs::filesystem_space(&root))
        .flatten()
    else {
        return Err(crate::exit::UsageError(format!(
            "watch needs the data root's filesystem ({}), which is not readable from here (a local engine only)",
            root.display()
        ))
        .into());
    };
    let needed = target.needed(total, available);
    #[allow(clippy::cast_precision_loss)]
    let used = 100.0 * total.saturating_sub(available) as f64 / total.max(1) as f64;
    let free = humansize::format_size(available, humansize::DECIMAL);
    if needed == 0 {
        say(&format!(
            "{used:.1}% used, {free} free: within {}",
            target.describe()
        ));
        return Ok(ExitStatus::Success);
    }
    say(&format!(
        "{used:.1}% used, {free} free: reclaiming about {} for {}",
        humansize::format_size(needed, humansize::DECIMAL),
        target.describe()
    ));
    let run = async { super::apply::run(engine, cycle, signals, out).await };
    let result = tokio::select! {
        biased;
        result = run => result,
        _ = signals.aborted() => Ok(ExitStatus::Success),
    };
    signals.done_applying();
    match result {
        Ok(status) => Ok(status),
        Err(err) if crate::exit::status_of(&err) == ExitStatus::EngineUnreachable => Err(err),
        Err(err) => {
            say(&format!("this round failed: {err:#}"));
            Ok(crate::exit::status_of(&err))
        }
    }
}
