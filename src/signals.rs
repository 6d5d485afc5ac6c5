//! Ctrl-C, SIGTERM and a lost terminal (SIGHUP), from the start of the run to
//! its end. Before deletions start, any of them ends the run at once, wherever
//! it is waiting (on the engine, on the disk walk), with nothing removed. Once
//! deletions have started, they only stop new deletions: those under way
//! finish and the partial report is printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

/// Which signal came first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// SIGINT (Ctrl-C) or SIGTERM.
    Interrupted,
    /// SIGHUP: the terminal went away.
    HungUp,
}

#[derive(Default)]
struct State {
    /// Set by the first signal: no new deletion starts.
    stop: AtomicBool,
    /// 0 none, 1 interrupted, 2 hung up.
    first: AtomicU8,
    /// Deletions have started: signals no longer abort the run.
    applying: AtomicBool,
    notify: Notify,
}

/// The run's signal handlers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Signals {
    state: Arc<State>,
}

impl Signals {
    /// Installs the handlers; until they are dropped with the runtime, these
    /// signals no longer kill the process.
    pub(crate) fn install() -> Result<Signals> {
        let signals = Signals {
            state: Arc::new(State::default()),
        };
        for (kind, what) in [
            (SignalKind::interrupt(), Interrupt::Interrupted),
            (SignalKind::terminate(), Interrupt::Interrupted),
            (SignalKind::hangup(), Interrupt::HungUp),
        ] {
            let mut stream = signal(kind).context("installing a signal handler")?;
            let state = Arc::clone(&signals.state);
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    let code = match what {
                        Interrupt::Interrupted => 1,
                        Interrupt::HungUp => 2,
                    };
                    let _ =
                        state
                            .first
                            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
                    state.stop.store(true, Ordering::SeqCst);
                    state.notify.notify_waiters();
                }
            });
        }
        Ok(signals)
    }

    /// Set once any of the signals came: no new deletion may start.
    pub(crate) fn stop(&self) -> &AtomicBool {
        &self.state.stop
    }

    /// From now on signals stop new deletions instead of ending the run.
    pub(crate) fn start_applying(&self) {
        self.state.applying.store(true, Ordering::SeqCst);
    }

    /// Deletions are over (`watch`, between its rounds): signals end the
    /// run again wherever it waits.
    pub(crate) fn done_applying(&self) {
        self.state.applying.store(false, Ordering::SeqCst);
    }

    /// Resolves once any of the signals has come, whatever is under way.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.state.notify.notified();
            if self.state.stop.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when a signal comes before deletions have started.
    pub(crate) async fn aborted(&self) -> Interrupt {
        loop {
            let notified = self.state.notify.notified();
            if self.state.stop.load(Ordering::SeqCst) && !self.state.applying.load(Ordering::SeqCst)
            {
                return match self.state.first.load(Ordering::SeqCst) {
                    2 => Interrupt::HungUp,
                    _ => Interrupt::Interrupted,
                };
            }
            notified.await;
        }
    }
}
