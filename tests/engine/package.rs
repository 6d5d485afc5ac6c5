//! The Debian package built by scripts/package.sh (`DOCKER_RECLAIM_DEB`):
//! installed with `dpkg -i`, its binary runs `--version` and a dry run
//! against a private engine, `systemd-analyze verify` passes on the installed
//! units (their man page included), and `dpkg --purge` leaves nothing of it.

use std::process::Command;

use libtest_mimic::Trial;

use crate::check;
use crate::support::{Daemon, Result};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![the_package_installs_runs_verifies_and_purges]
}

const FILES: [&str; 9] = [
    "/usr/bin/docker-reclaim",
    "/usr/share/man/man1/docker-reclaim.1.gz",
    "/usr/share/bash-completion/completions/docker-reclaim",
    "/usr/share/zsh/vendor-completions/_docker-reclaim",
    "/usr/share/fish/vendor_completions.d/docker-reclaim.fish",
    "/etc/docker-reclaim/config.toml",
    "/lib/systemd/system/docker-reclaim.service",
    "/lib/systemd/system/docker-reclaim.timer",
    "/lib/systemd/system/docker-reclaim-watch.service",
];

fn run(program: &str, args: &[&str]) -> Result<std::process::Output> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))
}

fn the_package_installs_runs_verifies_and_purges() -> Result<()> {
    let Some(deb) = std::env::var_os("DOCKER_RECLAIM_DEB") else {
        check!(
            std::env::var_os("CI").is_none(),
            "DOCKER_RECLAIM_DEB is not set: scripts/test.sh builds the package"
        );
        eprintln!("package not built (DOCKER_RECLAIM_DEB unset): not tested");
        return Ok(());
    };
    let deb = deb.to_string_lossy().into_owned();
    if run("dpkg", &["-s", "docker-reclaim"])?.status.success() {
        eprintln!(
            "docker-reclaim is installed on this machine already: the package is not tested over it"
        );
        return Ok(());
    }
    let d = Daemon::start()?;
    let installed = run("dpkg", &["-i", &deb])?;
    let result = (|| -> Result<()> {
        check!(
            installed.status.success(),
            "dpkg -i: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
        for file in FILES {
            check!(std::path::Path::new(file).exists(), "{file} not installed");
        }
        let version = run("/usr/bin/docker-reclaim", &["--version"])?;
        check!(
            String::from_utf8_lossy(&version.stdout).starts_with("docker-reclaim "),
            "--version: {}",
            String::from_utf8_lossy(&version.stdout)
        );
        let dry = Command::new("/usr/bin/docker-reclaim")
            .args(["-H", &d.host(), "--dry-run"])
            .env("DOCKER_RECLAIM_CACHE_DIR", "")
            .env("DOCKER_RECLAIM_STATE_DIR", "")
            .output()
            .map_err(|e| e.to_string())?;
        check!(
            dry.status.success(),
            "dry run: {}",
            String::from_utf8_lossy(&dry.stderr)
        );
        let verify = run("systemd-analyze", &["verify", FILES[6], FILES[7], FILES[8]])?;
        check!(
            verify.status.success() && verify.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        Ok(())
    })();
    let purged = run("dpkg", &["--purge", "docker-reclaim"])?;
    result?;
    check!(
        purged.status.success(),
        "dpkg --purge: {}",
        String::from_utf8_lossy(&purged.stderr)
    );
    for file in FILES {
        check!(
            !std::path::Path::new(file).exists(),
            "{file} left after purge"
        );
    }
    check!(
        !std::path::Path::new("/etc/docker-reclaim").exists(),
        "/etc/docker-reclaim left"
    );
    Ok(())
}
