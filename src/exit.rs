//! The documented exit codes, and how an error maps to one.

use std::process::ExitCode;

/// Every exit code docker-reclaim uses. The numbers are a public contract:
/// they are listed in `--help`, the README and the man page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// The command did what was asked (a dry run printed its plan).
    Success = 0,
    /// Something failed that none of the codes below describes.
    Failure = 1,
    /// The command line, a filter, a host or a file given to it is not valid. Nothing was changed.
    Usage = 2,
    /// The Docker engine could not be reached, refused access, or speaks too old an API.
    EngineUnreachable = 3,
    /// The user declined the prompt or left it (n, Esc, EOF, Ctrl-C). Nothing was changed.
    Aborted = 4,
    /// No terminal to confirm on and no `--yes`. Nothing was changed.
    NoTerminal = 5,
    /// Some deletions failed; the rest of the plan was carried out.
    PartialFailure = 6,
    /// Another docker-reclaim is applying a plan on the same engine.
    Locked = 7,
    /// Interrupted (Ctrl-C or SIGTERM) while applying: in-flight deletions finished,
    /// nothing more was started.
    Interrupted = 130,
}

impl ExitStatus {
    pub(crate) const ALL: [ExitStatus; 9] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::EngineUnreachable,
        ExitStatus::Aborted,
        ExitStatus::NoTerminal,
        ExitStatus::PartialFailure,
        ExitStatus::Locked,
        ExitStatus::Interrupted,
    ];

    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// What the code means: the one description that `--help`, the man page and
    /// the README's table carry (a test checks the README).
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ExitStatus::Success => {
                "success: a dry run printed its plan, a plan was applied (items that changed since the plan were skipped and reported), or there was nothing to do"
            }
            ExitStatus::Failure => "failure not covered below",
            ExitStatus::Usage => {
                "bad usage or input: an invalid flag, filter, host, config or plan file; nothing was changed"
            }
            ExitStatus::EngineUnreachable => {
                "the Docker engine could not be reached, did not answer in time, denied access, or its API is older than 1.41"
            }
            ExitStatus::Aborted => {
                "aborted at the prompt (n, Esc, q, Ctrl-D, Ctrl-C, or the terminal went away); nothing was changed"
            }
            ExitStatus::NoTerminal => "no terminal to confirm on and no --yes; nothing was changed",
            ExitStatus::PartialFailure => {
                "partial failure: some deletions failed or the engine stopped answering; the rest were carried out or not started"
            }
            ExitStatus::Locked => "another docker-reclaim is applying a plan on this engine",
            ExitStatus::Interrupted => {
                "interrupted while applying (SIGINT or SIGTERM): in-flight deletions finished, nothing more started, the partial report was printed"
            }
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

/// The text of `--help`'s exit code section, from [`ExitStatus::describe`].
pub(crate) fn codes_help() -> String {
    let mut text = String::from("Exit codes:");
    for status in ExitStatus::ALL {
        text.push_str(&format!("\n{:>3}  {}", status.code(), status.describe()));
    }
    text
}

/// An error in what the user gave us: exits with [`ExitStatus::Usage`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// The engine cannot be used at all: exits with [`ExitStatus::EngineUnreachable`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct EngineUnreachable(pub(crate) String);

/// Any other error that ends the program with a particular status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Stop {
    pub(crate) status: ExitStatus,
    pub(crate) message: String,
}

impl Stop {
    pub(crate) fn new(status: ExitStatus, message: impl Into<String>) -> Stop {
        Stop {
            status,
            message: message.into(),
        }
    }
}

/// The exit status an error ends the program with: the most specific marker in its chain.
pub(crate) fn status_of(err: &anyhow::Error) -> ExitStatus {
    for cause in err.chain() {
        if let Some(stop) = cause.downcast_ref::<Stop>() {
            return stop.status;
        }
        if cause.is::<UsageError>() {
            return ExitStatus::Usage;
        }
        if cause.is::<EngineUnreachable>() {
            return ExitStatus::EngineUnreachable;
        }
    }
    ExitStatus::Failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn markers_map_through_context() {
        let err = anyhow::Error::new(UsageError("bad".into())).context("while reading flags");
        assert_eq!(status_of(&err), ExitStatus::Usage);
        let err: anyhow::Result<()> = Err(EngineUnreachable("gone".into())).context("connecting");
        assert_eq!(status_of(&err.unwrap_err()), ExitStatus::EngineUnreachable);
        assert_eq!(status_of(&anyhow::anyhow!("other")), ExitStatus::Failure);
    }

    #[test]
    fn help_lists_every_code() {
        let help = codes_help();
        for status in ExitStatus::ALL {
            let code = status.code().to_string();
            assert!(
                help.lines()
                    .any(|line| line.trim_start().starts_with(&format!("{code}  "))),
                "{code} missing"
            );
        }
    }

    #[test]
    fn the_readme_table_carries_the_same_descriptions() {
        let readme = include_str!("../README.md");
        for status in ExitStatus::ALL {
            let row = format!(
                "| {} | {} |",
                status.code(),
                status.describe().replace("--yes", "`--yes`")
            );
            assert!(readme.contains(&row), "README lacks the row: {row}");
        }
    }

    #[test]
    fn stop_carries_its_status() {
        let err = anyhow::Error::new(Stop::new(ExitStatus::Locked, "held")).context("applying");
        assert_eq!(status_of(&err), ExitStatus::Locked);
    }
}
