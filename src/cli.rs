//! The command line as clap sees it. The `///` comments here are the `--help` text
//! and the man page; nothing outside `settings.rs` reads these types.

use clap::{Parser, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

/// Safely reclaim disk space on a Docker host.
///
/// docker-reclaim takes an inventory of the engine (containers, images and their
/// layers, volumes, networks, build cache), plans what can go with a reason for
/// each item, and predicts the bytes each removal frees from layer reference
/// counts: a layer frees space only when every image and container using it goes.
///
/// The default plan holds stopped containers (exited, created, dead) and dangling
/// (untagged) images that no remaining container uses. A running, paused or
/// restarting container, and any image a remaining container uses, is never planned.
#[derive(Debug, Parser)]
#[command(name = "docker-reclaim", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Only show the plan: what would be removed, why, and how many bytes it frees.
    /// Changes nothing on the engine.
    #[arg(long)]
    pub dry_run: bool,

    /// Docker engine to talk to: unix:///path/to/docker.sock or tcp://host:port.
    /// Defaults to $DOCKER_HOST, then unix:///var/run/docker.sock.
    #[arg(
        short = 'H',
        long,
        value_name = "HOST",
        env = "DOCKER_HOST",
        hide_env_values = true
    )]
    pub host: Option<String>,

    /// Output format: `human` for a terminal or a log file, `json` for the
    /// documented machine-readable plan (see the README for its contract).
    #[arg(long, value_enum, default_value_t = Format::Human, value_name = "FORMAT")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Human,
    /// One JSON object (schema_version 1).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
