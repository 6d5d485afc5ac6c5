//! The man page, generated from the clap definition plus the sections clap does
//! not know (exit status, environment, files). A test keeps man/docker-reclaim.1
//! equal to what this renders.

use std::io::{self, Write};

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::exit::ExitStatus;

/// The completion script for `shell`, from the clap definition. `clap_complete`
/// 4.6 names a hyphenated program's subcommands two ways in its bash script
/// (`cmd="docker__reclaim__subcmd__df"` is set, but the case that completes
/// it is labelled `docker__subcmd__reclaim__subcmd__df`), so no subcommand's
/// flags or values completed: the labels are made to match.
pub(crate) fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut crate::cli::args::command(),
        "docker-reclaim",
        &mut script,
    );
    if shell == clap_complete::Shell::Bash {
        let text = String::from_utf8_lossy(&script).replace(
            "docker__subcmd__reclaim__subcmd__",
            "docker__reclaim__subcmd__",
        );
        return text.into_bytes();
    }
    script
}

pub(crate) fn render(out: &mut impl Write) -> io::Result<()> {
    let man = Man::new(crate::cli::args::command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut extra = Roff::new();
    commands_section(&mut extra);
    exit_status_section(&mut extra);
    environment_section(&mut extra);
    files_section(&mut extra);
    examples_section(&mut extra);
    extra.control("SH", ["SEE ALSO"]);
    extra.text([roman(
        "docker-system-prune(1), docker-system-df(1), and the README for the JSON plan contract.",
    )]);
    extra.to_writer(out)?;
    man.render_version_section(out)?;
    Ok(())
}

/// A term and its description, as `.TP`.
fn entry(extra: &mut Roff, term: impl Into<String>, text: impl Into<String>) {
    extra.control("TP", []);
    extra.text([bold(term.into())]);
    extra.text([roman(text.into())]);
}

/// The subcommands inline: a page per subcommand would be overkill.
fn commands_section(extra: &mut Roff) {
    let mut command = crate::cli::args::command();
    command.build();
    extra.control("SH", ["COMMANDS"]);
    for sub in command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        let usage = sub
            .clone()
            .render_usage()
            .to_string()
            .replace("Usage: ", "");
        extra.control(
            "SS",
            [format!("docker-reclaim {}", sub.get_name()).as_str()],
        );
        extra.text([bold(usage)]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            extra.control("PP", []);
            extra.text([roman(about.to_string())]);
        }
        for arg in sub
            .get_arguments()
            .filter(|arg| !arg.is_global_set() && arg.get_id() != "help")
        {
            extra.control("TP", []);
            let name = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => arg.get_id().to_string().to_uppercase(),
            };
            extra.text([bold(name)]);
            let mut help = arg
                .get_help()
                .map(std::string::ToString::to_string)
                .unwrap_or_default();
            if let Some(default) = arg.get_default_values().first() {
                help.push_str(&format!(" [default: {}]", default.to_string_lossy()));
            }
            extra.text([roman(help)]);
        }
    }
}

/// Every exit code and what it means.
fn exit_status_section(extra: &mut Roff) {
    extra.control("SH", ["EXIT STATUS"]);
    for status in ExitStatus::ALL {
        extra.control("TP", []);
        extra.text([bold(status.code().to_string())]);
        extra.text([roman(status.describe())]);
    }
}

/// The variables read.
fn environment_section(extra: &mut Roff) {
    extra.control("SH", ["ENVIRONMENT"]);
    entry(
        extra,
        "DOCKER_HOST",
        "The engine to talk to, as unix:///path or tcp://host:port, when -H is not given. Default: unix:///var/run/docker.sock.",
    );
    entry(
        extra,
        "DOCKER_RECLAIM_CONFIG",
        "The config file to read, as with --config.",
    );
    entry(
        extra,
        "DOCKER_RECLAIM_CACHE_DIR",
        "Where the sizes of layers that cannot change are kept between runs (see FILES); empty: nowhere, every run walks the data root in full.",
    );
    entry(
        extra,
        "DOCKER_RECLAIM_STATE_DIR",
        "Where images' last uses are kept between runs (see FILES); empty: nowhere, only what the engine still shows counts.",
    );
    entry(
        extra,
        "MALLOC_ARENA_MAX",
        "glibc's limit on allocator arenas. When it is not set, docker-reclaim uses at most two, which keeps a dry run at 11,000 containers near 59 MB instead of 80 MB.",
    );
}

/// The config files, locks, the size cache and what is read of the engine's.
fn files_section(extra: &mut Roff) {
    extra.control("SH", ["FILES"]);
    extra.control("TP", []);
    extra.text([bold(crate::cli::config::SYSTEM_PATH)]);
    extra.text([roman(
        "Defaults, in TOML, for maintenance jobs; then ~/.config/docker-reclaim/config.toml ($XDG_CONFIG_HOME), whose keys override it; --config FILE replaces both. Flags override the files, except keep and keep_labels, which add up across both files and --keep/--keep-label. Keys: host, all, volumes (\"anonymous\" or \"all\"), networks, build_cache (\"unshared\" or \"all\"), filters, stopped_for, keep, keep_labels, keep_last, jobs, log_file. An unknown key is an error.",
    )]);
    extra.control("TP", []);
    extra.text([bold("/run/docker-reclaim/*.lock")]);
    extra.text([roman(
        "One lock per engine (keyed by its ID and data root) so that only one apply runs at a time. The directory is made by root, setgid and shared with the group of the engine's socket; a user who cannot use it locks in $XDG_RUNTIME_DIR/docker-reclaim or /tmp/docker-reclaim-UID instead. Lock and log files are opened without following symlinks.",
    )]);
    extra.control("TP", []);
    extra.text([bold("/var/cache/docker-reclaim/sizes-*.json")]);
    extra.text([roman(
        "Sizes of committed image layers, containers' init layers and layer records, and the writable layers of containers that are not mounted (on the containerd image store: committed snapshots), one file per data root (for root; other users: $XDG_CACHE_HOME/docker-reclaim or ~/.cache/docker-reclaim). The engine writes the first three once, and a writable layer only while it is mounted (each mount and unmount changes its directory), so a size is reused while the directory keeps its inode and times and, for a writable layer, is not mounted; anything else is walked again. Only a hint: a missing, foreign or damaged file means a full walk. Safe to delete; files not written for 30 days go, and at most 16 are kept, the most recently written.",
    )]);
    extra.control("TP", []);
    extra.text([bold("/var/lib/docker-reclaim/state-*.json")]);
    extra.text([roman(
        "When each image was last seen in use, per engine (for root; other users: $XDG_STATE_HOME/docker-reclaim or ~/.local/state/docker-reclaim), and when the engine's events were last read: a `docker run --rm` job leaves no container, and the engine holds only its last 256 events, so this is how such a use still counts for --target-free, --max-usage, --when-above and watch. Written atomically in a private directory, never through a link, at most 20,000 images; a file that is not what we wrote gives one warning and is started afresh.",
    )]);
    extra.control("TP", []);
    extra.text([bold(
        "DATA-ROOT/containerd/daemon/io.containerd.metadata.v1.bolt/meta.db",
    )]);
    extra.text([roman(
        "On the containerd image store: containerd's metadata (images, content, snapshots, leases), read without a lock, never written, to predict what its garbage collector frees; with the overlayfs snapshotter's metadata.db, which names each snapshot's directory.",
    )]);
}

/// Common commands, each with what it does.
fn examples_section(extra: &mut Roff) {
    extra.control("SH", ["EXAMPLES"]);
    for (command, what) in [
        (
            "docker-reclaim --dry-run",
            "Show what would be removed on the local engine, why, and how many bytes it frees. Changes nothing.",
        ),
        (
            "docker-reclaim",
            "Show the plan, ask, then remove exactly the plan, re-checking each item first.",
        ),
        (
            "docker-reclaim --all --volumes=anonymous --build-cache --dry-run",
            "A wider scope: unused tagged images, anonymous volumes nothing mounts, and build cache.",
        ),
        (
            "docker-reclaim --all --target-free 20G --keep 'db-*' --yes",
            "For a maintenance job: remove, least recently used first, until 20 GB are free on the data root's filesystem, never anything named db-* nor an image used in the last hour, without asking.",
        ),
        (
            "docker-reclaim watch --all --when-above 85% --down-to 75% --build-cache --build-cache-keep 10G",
            "Stay running (as the docker-reclaim-watch service does): record image use as it happens, and whenever more than 85% of the data root's filesystem is used, remove least recently used first until 75% is, keeping the 10 GB of build cache used most recently.",
        ),
        (
            "docker-reclaim --dry-run --plan-out plan.json && docker-reclaim apply plan.json",
            "Save a plan for review, then apply no more than it (what changed since is skipped).",
        ),
        (
            "docker-reclaim df -v",
            "Where the space is: usage per kind, what is reclaimable, the largest items.",
        ),
        (
            "docker reclaim --dry-run",
            "The same as a docker CLI plugin (installed as ~/.docker/cli-plugins/docker-reclaim).",
        ),
    ] {
        extra.control("TP", []);
        extra.text([bold(command)]);
        extra.text([roman(what)]);
    }
}
