//! The reporter that [`crate::apply::execute::apply`] tells about each item as it
//! finishes ([`Progress`]), and its implementations: an indicatif bar on a
//! terminal, one log line per item otherwise, and the JSON-lines audit log.
//! The bar and the lines write to stderr; the report goes to stdout.

use crate::model::printable;
use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::report::{ItemResult, Outcome};
use crate::model::EngineInfo;
use crate::render::{audit_line, bytes};

/// Told about the run as it goes.
pub(crate) trait Progress {
    fn start(&mut self, items: usize, bytes: u64);
    fn item(&mut self, result: &ItemResult);
    fn finish(&mut self);
}

/// The right progress for where stderr goes; with `quiet`, only problems.
pub(crate) fn for_stderr(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(Problems {
            out: Box::new(std::io::stderr()),
        })
    } else if std::io::stderr().is_terminal() {
        Box::new(Bar::new())
    } else {
        Box::new(Lines {
            out: Box::new(std::io::stderr()),
            prefix: None,
        })
    }
}

/// One line per item on stderr, whatever stderr is (`watch`: journald or a
/// log file); in a fleet run each starts with the engine's name.
pub(crate) fn lines(label: Option<&str>) -> Box<dyn Progress> {
    Box::new(Lines {
        out: Box::new(std::io::stderr()),
        prefix: label.map(|label| format!("{}: ", crate::model::printable(label))),
    })
}

/// Tells nobody.
#[cfg(test)]
pub(crate) struct Silent;

#[cfg(test)]
impl Progress for Silent {
    fn start(&mut self, _items: usize, _bytes: u64) {}
    fn item(&mut self, _result: &ItemResult) {}
    fn finish(&mut self) {}
}

/// Items and bytes on a bar with elapsed time and an estimate of what is left;
/// skipped and failed items printed above it. At the end the bar gives way to a
/// one-line summary that stays on the screen.
pub(crate) struct Bar {
    bar: ProgressBar,
    freed: u64,
    planned: u64,
    removed: usize,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{elapsed:>4} {bar:30} {pos}/{len} items  {msg}  (about {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar {
            bar,
            freed: 0,
            planned: 0,
            removed: 0,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, items: usize, bytes_planned: u64) {
        self.bar.set_length(items as u64);
        self.planned = bytes_planned;
        self.bar
            .set_message(format!("0 B of {}", bytes(bytes_planned)));
    }

    fn item(&mut self, result: &ItemResult) {
        if result.outcome == Outcome::Removed {
            self.freed += result.item.predicted_bytes;
            self.removed += 1;
        }
        if let Some(line) = line_for(result).filter(|_| !result.outcome.is_done()) {
            self.bar.println(line);
        }
        self.bar.inc(1);
        self.bar
            .set_message(format!("{} of {}", bytes(self.freed), bytes(self.planned)));
    }

    fn finish(&mut self) {
        let elapsed = self.bar.elapsed();
        let total = self.bar.length().unwrap_or(0);
        self.bar.finish_and_clear();
        // Best effort: a closed stderr must not stop the run.
        let _ = writeln!(
            std::io::stderr(),
            "Removed {} of {} items ({} of {} predicted) in {:.1}s",
            self.removed,
            total,
            bytes(self.freed),
            bytes(self.planned),
            elapsed.as_secs_f64()
        );
    }
}

/// A line for each item skipped or failed, nothing else (`--quiet`).
pub(crate) struct Problems {
    pub(crate) out: Box<dyn Write + Send>,
}

impl Progress for Problems {
    fn start(&mut self, _items: usize, _bytes: u64) {}

    fn item(&mut self, result: &ItemResult) {
        if matches!(result.outcome, Outcome::Skipped(_) | Outcome::Failed(_))
            && let Some(line) = line_for(result)
        {
            let _ = writeln!(self.out, "{line}");
        }
    }

    fn finish(&mut self) {}
}

/// One line per item, for log files and journals.
pub(crate) struct Lines {
    pub(crate) out: Box<dyn Write + Send>,
    /// What starts each line.
    pub(crate) prefix: Option<String>,
}

impl Progress for Lines {
    fn start(&mut self, _items: usize, _bytes: u64) {}

    fn item(&mut self, result: &ItemResult) {
        if let Some(line) = line_for(result) {
            // Progress is best effort: a closed stderr must not stop the run.
            let prefix = self.prefix.as_deref().unwrap_or_default();
            let _ = writeln!(self.out, "{prefix}{line}");
        }
    }

    fn finish(&mut self) {}
}

/// The audit log (`--log-file`): one JSON line per item, with the time it
/// finished. The first write error is kept for the caller to report.
pub(crate) struct AuditLog<W: Write> {
    pub(crate) out: W,
    pub(crate) engine: EngineInfo,
    pub(crate) now: fn() -> i64,
    pub(crate) error: Option<std::io::Error>,
}

impl<W: Write> Progress for AuditLog<W> {
    fn start(&mut self, _items: usize, _bytes: u64) {}

    fn item(&mut self, result: &ItemResult) {
        let line = audit_line(&self.engine, result, (self.now)());
        if let Err(err) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            self.error.get_or_insert(err);
        }
    }

    fn finish(&mut self) {}
}

/// Tells each of its reporters, in order.
pub(crate) struct Fanout<'a>(pub(crate) Vec<&'a mut dyn Progress>);

impl Progress for Fanout<'_> {
    fn start(&mut self, items: usize, bytes: u64) {
        for progress in &mut self.0 {
            progress.start(items, bytes);
        }
    }

    fn item(&mut self, result: &ItemResult) {
        for progress in &mut self.0 {
            progress.item(result);
        }
    }

    fn finish(&mut self) {
        for progress in &mut self.0 {
            progress.finish();
        }
    }
}

fn line_for(result: &ItemResult) -> Option<String> {
    let label = result.item.label();
    match &result.outcome {
        Outcome::Removed => Some(format!(
            "removed {label}, {}",
            bytes(result.item.predicted_bytes)
        )),
        Outcome::AlreadyGone => Some(format!("already gone: {label}")),
        Outcome::Skipped(why) => Some(format!("skipped {label}: {}", printable(why))),
        Outcome::Failed(why) => Some(format!("failed {label}: {}", printable(why))),
        Outcome::NotStarted => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Item, Kind, Reason};

    fn result(outcome: Outcome) -> ItemResult {
        ItemResult {
            item: Item::new(Kind::Container, "c0ffee", "web-1", Reason::Exited),
            outcome,
        }
    }

    /// A writer the test can read back after `Lines` owns a copy of it.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_name_each_item_and_its_outcome() {
        let written = Shared::default();
        let mut lines = Lines {
            out: Box::new(written.clone()),
            prefix: None,
        };
        lines.start(4, 0);
        lines.item(&result(Outcome::Removed));
        lines.item(&result(Outcome::AlreadyGone));
        lines.item(&result(Outcome::Skipped("it is running now".into())));
        lines.item(&result(Outcome::Failed(
            "the engine refused (409): in use".into(),
        )));
        lines.item(&result(Outcome::NotStarted));
        lines.finish();
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "removed container c0ffee (web-1), 0 B\n\
             already gone: container c0ffee (web-1)\n\
             skipped container c0ffee (web-1): it is running now\n\
             failed container c0ffee (web-1): the engine refused (409): in use\n"
        );
        // In a fleet run each line names the engine first.
        let written = Shared::default();
        let mut lines = Lines {
            out: Box::new(written.clone()),
            prefix: Some("ci-01: ".into()),
        };
        lines.item(&result(Outcome::Removed));
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "ci-01: removed container c0ffee (web-1), 0 B\n");
    }

    #[test]
    fn fanout_tells_every_reporter() {
        let engine = crate::testing::engine();
        let mut audit = AuditLog {
            out: Vec::new(),
            engine,
            now: || 0,
            error: None,
        };
        let mut silent = Silent;
        let mut both = Fanout(vec![&mut silent, &mut audit]);
        both.start(1, 0);
        both.item(&result(Outcome::Removed));
        both.finish();
        let text = String::from_utf8(audit.out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("\"outcome\":\"removed\""), "{text}");
    }
}
