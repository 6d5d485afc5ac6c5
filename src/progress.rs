//! The [`Progress`] implementations: an indicatif bar on a terminal, one log line
//! per item otherwise. Both write to stderr; the report goes to stdout.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{ItemResult, Outcome, Progress};
use crate::render::bytes;

/// The right progress for where stderr goes.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::new())
    } else {
        Box::new(Lines {
            out: Mutex::new(Box::new(std::io::stderr())),
        })
    }
}

/// Items and bytes on a bar; skipped and failed items printed above it.
pub struct Bar {
    bar: ProgressBar,
    freed: AtomicU64,
    planned: AtomicU64,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{bar:30} {pos}/{len} items  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar {
            bar,
            freed: AtomicU64::new(0),
            planned: AtomicU64::new(0),
        }
    }
}

impl Progress for Bar {
    fn start(&self, items: usize, bytes_planned: u64) {
        self.bar.set_length(items as u64);
        self.planned.store(bytes_planned, Ordering::SeqCst);
        self.bar
            .set_message(format!("0 B of {}", bytes(bytes_planned)));
    }

    fn item(&self, result: &ItemResult) {
        if result.outcome == Outcome::Removed {
            self.freed
                .fetch_add(result.item.predicted_bytes, Ordering::SeqCst);
        }
        if let Some(line) = line_for(result).filter(|_| !result.outcome.is_done()) {
            self.bar.println(line);
        }
        self.bar.inc(1);
        self.bar.set_message(format!(
            "{} of {}",
            bytes(self.freed.load(Ordering::SeqCst)),
            bytes(self.planned.load(Ordering::SeqCst))
        ));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// One line per item, for log files and journals.
pub struct Lines {
    pub out: Mutex<Box<dyn Write + Send>>,
}

impl Progress for Lines {
    fn start(&self, _items: usize, _bytes: u64) {}

    fn item(&self, result: &ItemResult) {
        if let (Some(line), Ok(mut out)) = (line_for(result), self.out.lock()) {
            // Progress is best effort: a closed stderr must not stop the run.
            let _ = writeln!(out, "{line}");
        }
    }

    fn finish(&self) {}
}

fn line_for(result: &ItemResult) -> Option<String> {
    let label = result.item.label();
    match &result.outcome {
        Outcome::Removed => Some(format!(
            "removed {label}, {}",
            bytes(result.item.predicted_bytes)
        )),
        Outcome::AlreadyGone => Some(format!("already gone: {label}")),
        Outcome::Skipped(why) => Some(format!("skipped {label}: {why}")),
        Outcome::Failed(why) => Some(format!("failed {label}: {why}")),
        Outcome::NotStarted => None,
    }
}
