//! Asks before anything is removed. Refuses outright when there is no terminal
//! to ask on and no `--yes`, so that a cron job never silently does nothing.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use dialoguer::console::Term;

use super::terminal::read_key;
use crate::exit::{ExitStatus, Stop};
use crate::plan::Plan;
use crate::render::bytes;

/// The user answered no: not an error, but nothing was done (exit 4, with
/// "Nothing removed." and no "error:").
#[derive(Debug, thiserror::Error)]
#[error("Nothing removed.")]
pub(crate) struct Declined;

/// The message when there is nobody to ask.
pub(crate) const NO_TERMINAL: &str =
    "no terminal to confirm on; pass --yes to apply or --dry-run to only plan";

/// Fails with [`ExitStatus::NoTerminal`] when a prompt would be needed and there
/// is no terminal to show it on: checked before any work, so a cron job without
/// `--yes` fails at once and loudly.
pub(crate) fn require_terminal(yes: bool) -> Result<()> {
    if yes || (std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        Ok(())
    } else {
        Err(Stop::new(ExitStatus::NoTerminal, NO_TERMINAL).into())
    }
}

/// Which items of `plan` to apply (indices), once the user agreed. `--yes` agrees
/// to all of them; `--select` lets the user uncheck some.
pub(crate) fn confirm(plan: &Plan, yes: bool, select: bool) -> Result<Vec<usize>> {
    let all: Vec<usize> = (0..plan.items.len()).collect();
    require_terminal(yes)?;
    if yes {
        return Ok(all);
    }
    answered(|term| {
        if select {
            crate::apply::prompt::checklist::run(term, plan)
        } else {
            let prompt = format!(
                "Remove these {} items, freeing about {}?",
                plan.items.len(),
                bytes(plan.total.predicted_bytes)
            );
            ask_yes(term, &prompt).map(|agreed| agreed.then_some(all))
        }
    })
}

/// A fleet run's one question for every engine's plan: `items` on
/// `engines` engines, predicted to free `predicted` bytes.
pub(crate) fn confirm_fleet(items: usize, engines: usize, predicted: u64, yes: bool) -> Result<()> {
    require_terminal(yes)?;
    if yes {
        return Ok(());
    }
    let prompt = format!(
        "Remove these {items} items on {engines} engines, freeing about {}?",
        bytes(predicted)
    );
    answered(|term| ask_yes(term, &prompt).map(|agreed| agreed.then_some(Vec::new()))).map(drop)
}

/// What `ask` got on the terminal: the chosen items, or [`Declined`], or why
/// the prompt ended without an answer.
fn answered(ask: impl FnOnce(&Term) -> std::io::Result<Option<Vec<usize>>>) -> Result<Vec<usize>> {
    let term = Term::stderr();
    let _watch = HangupWatch::start();
    let answer = ask(&term).map_err(dialoguer::Error::IO);
    // A prompt left with Ctrl-C can leave the cursor hidden.
    let _ = term.show_cursor();
    match answer {
        Ok(Some(chosen)) => Ok(chosen),
        Ok(None) => Err(Declined.into()),
        Err(dialoguer::Error::IO(err)) if err.kind() == std::io::ErrorKind::Interrupted => {
            Err(Stop::new(
                ExitStatus::Aborted,
                "interrupted at the prompt: nothing was removed",
            )
            .into())
        }
        Err(err) => Err(Stop::new(
            ExitStatus::Aborted,
            format!("the prompt ended without an answer ({err}): nothing was removed"),
        )
        .into()),
    }
}

/// Asks a yes/no question: `y` then Enter agrees; `n`, or Enter alone, declines;
/// Esc, `q`, Ctrl-D and Ctrl-C give up at once, as does a terminal that goes
/// away (end of input).
fn ask_yes(term: &Term, prompt: &str) -> std::io::Result<bool> {
    use dialoguer::console::Key;
    let draw = |answer: Option<bool>| -> std::io::Result<()> {
        term.clear_line()?;
        let typed = match answer {
            Some(true) => "y",
            Some(false) => "n",
            None => "",
        };
        term.write_str(&format!("{prompt} [y/N] {typed}"))?;
        term.flush()
    };
    draw(None)?;
    let mut answer = None;
    loop {
        let Some(key) = read_key(term)? else {
            let _ = term.write_line("");
            return Ok(false);
        };
        match key {
            Key::Char('y' | 'Y') => answer = Some(true),
            Key::Char('n' | 'N') => answer = Some(false),
            Key::Backspace => answer = None,
            Key::Enter => {
                term.write_line("")?;
                return Ok(answer == Some(true));
            }
            Key::Escape | Key::CtrlC | Key::Char('q' | 'Q' | '\u{4}') => {
                term.write_line("")?;
                return Ok(false);
            }
            _ => continue,
        }
        draw(answer)?;
    }
}

/// Ends the process when the terminal hangs up, or SIGINT, SIGTERM or SIGHUP
/// comes, during the prompt. The prompt's key reader (console 0.16) polls for
/// input only, so a hung-up terminal that is not our controlling terminal (no
/// SIGHUP) would make it spin forever, holding the lock; and the prompt holds
/// the single-threaded runtime, so the run's own signal handlers cannot act
/// until a key comes (a `kill -TERM` at the prompt was lost). This thread
/// listens for the signals itself, on a runtime of its own (tokio hands each
/// signal to every listener). Nothing has been removed at this point, so
/// exiting is safe; the terminal's settings from before the prompt are put
/// back first, since the key reader has it in raw mode.
struct HangupWatch {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HangupWatch {
    fn start() -> HangupWatch {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let saved = rustix::termios::tcgetattr(std::io::stdin()).ok();
        let thread = std::thread::spawn(move || {
            let mut signals = PromptSignals::listen();
            let wait = Duration::from_millis(200);
            while !flag.load(Ordering::SeqCst) {
                let hung_up = match &signals {
                    Some(_) => stdin_hung_up(Duration::ZERO),
                    None => stdin_hung_up(wait),
                };
                if hung_up {
                    leave(
                        saved.as_ref(),
                        ExitStatus::Aborted,
                        "the terminal went away at the prompt: nothing was removed",
                    );
                }
                // Either ends the prompt as Ctrl-C typed there does: aborted.
                if let Some(signal) = signals.as_mut().and_then(|signals| signals.wait(wait)) {
                    let why = match signal {
                        crate::signals::Interrupt::HungUp => {
                            "the terminal went away at the prompt: nothing was removed"
                        }
                        crate::signals::Interrupt::Interrupted => {
                            "interrupted at the prompt: nothing was removed"
                        }
                    };
                    leave(saved.as_ref(), ExitStatus::Aborted, why);
                }
            }
        });
        HangupWatch {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for HangupWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Puts the terminal back as it was before the prompt, says why, and exits.
fn leave(saved: Option<&rustix::termios::Termios>, status: ExitStatus, why: &str) -> ! {
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            saved,
        );
    }
    let _ = Term::stderr().show_cursor();
    let _ = writeln!(std::io::stderr(), "\ndocker-reclaim: error: {why}");
    // No destructor runs after this: the lock file goes now.
    crate::apply::lock::remove_own_files();
    std::process::exit(i32::from(status.code()));
}

/// SIGINT, SIGTERM and SIGHUP, heard on a runtime of the watching thread's own.
struct PromptSignals {
    runtime: tokio::runtime::Runtime,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl PromptSignals {
    fn listen() -> Option<PromptSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let (interrupt, terminate, hangup) = runtime.block_on(async {
            Some((
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::terminate()).ok()?,
                signal(SignalKind::hangup()).ok()?,
            ))
        })?;
        Some(PromptSignals {
            runtime,
            interrupt,
            terminate,
            hangup,
        })
    }

    /// The first of the signals to come within `wait`, if any.
    fn wait(&mut self, wait: Duration) -> Option<crate::signals::Interrupt> {
        use crate::signals::Interrupt;
        let PromptSignals {
            runtime,
            interrupt,
            terminate,
            hangup,
        } = self;
        runtime.block_on(async {
            tokio::select! {
                biased;
                Some(()) = hangup.recv() => Some(Interrupt::HungUp),
                Some(()) = interrupt.recv() => Some(Interrupt::Interrupted),
                Some(()) = terminate.recv() => Some(Interrupt::Interrupted),
                () = tokio::time::sleep(wait) => None,
            }
        })
    }
}

/// Waits up to `wait` for stdin to report a hang-up or an error.
fn stdin_hung_up(wait: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    // No events asked for: POLLHUP and POLLERR are always reported.
    let mut fds = [PollFd::new(&stdin, PollFlags::empty())];
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    });
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) => false,
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
        // An interrupted poll (EINTR): look again after a pause.
        Err(_) => {
            std::thread::sleep(wait);
            false
        }
    }
}
