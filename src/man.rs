//! The man page, generated from the clap definition plus the sections clap does
//! not know (exit status, environment, files). A test keeps man/docker-reclaim.1
//! equal to what this renders.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::Cli;
use crate::exit::ExitStatus;

/// One line each, the same table as `--help` and the README.
const EXIT_STATUSES: [(ExitStatus, &str); 4] = [
    (ExitStatus::Success, "Success: a dry run printed its plan."),
    (ExitStatus::Failure, "A failure not covered below."),
    (
        ExitStatus::Usage,
        "Bad usage or input: an invalid flag, filter, host or file. Nothing was changed.",
    ),
    (
        ExitStatus::EngineUnreachable,
        "The Docker engine could not be reached, denied access, or speaks an API older than 1.41.",
    ),
];

pub fn render(out: &mut impl Write) -> io::Result<()> {
    let man = Man::new(Cli::command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;

    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (status, text) in EXIT_STATUSES {
        extra.control("TP", []);
        extra.text([bold(status.code().to_string())]);
        extra.text([roman(text)]);
    }
    extra.control("SH", ["ENVIRONMENT"]);
    extra.control("TP", []);
    extra.text([bold("DOCKER_HOST")]);
    extra.text([roman(
        "The engine to talk to, as unix:///path or tcp://host:port, when -H is not given. Default: unix:///var/run/docker.sock.",
    )]);
    extra.control("SH", ["SEE ALSO"]);
    extra.text([roman(
        "docker-system-prune(1), docker-system-df(1), and the README for the JSON plan contract.",
    )]);
    extra.to_writer(out)?;

    man.render_version_section(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_status_is_documented() {
        for status in [
            ExitStatus::Success,
            ExitStatus::Failure,
            ExitStatus::Usage,
            ExitStatus::EngineUnreachable,
        ] {
            assert!(EXIT_STATUSES.iter().any(|(s, _)| *s == status));
        }
    }
}
