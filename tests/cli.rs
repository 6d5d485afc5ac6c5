//! The CLI definition: clap's own consistency checks, the committed man page,
//! and what `--help` promises.

use std::path::Path;

use clap::CommandFactory;
use docker_reclaim::cli::Cli;

fn generated_man_page() -> Vec<u8> {
    let mut page = Vec::new();
    docker_reclaim::man::render(&mut page).expect("rendering the man page");
    page
}

/// Fails when man/docker-reclaim.1 does not match the clap definition.
/// Regenerate with `UPDATE_MAN=1 cargo test --test cli`.
#[test]
fn man_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/docker-reclaim.1");
    let generated = generated_man_page();
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &generated).expect("writing the man page");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "man/docker-reclaim.1 is stale: run `UPDATE_MAN=1 cargo test --test cli` and commit it"
    );
}

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn help_documents_exit_codes_and_flags() {
    let help = Cli::command().render_long_help().to_string();
    for needle in [
        "Exit codes:",
        "--dry-run",
        "--host",
        "DOCKER_HOST",
        "--format",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
    let page = String::from_utf8(generated_man_page()).unwrap();
    for needle in ["EXIT STATUS", "ENVIRONMENT", "DOCKER_HOST", "dry\\-run"] {
        assert!(page.contains(needle), "{needle} missing from the man page");
    }
}
