//! The CLI definition: clap's own consistency checks, the committed man page,
//! and what `--help` promises.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

/// What the binary's hidden `man` subcommand prints.
fn generated_man_page() -> Vec<u8> {
    let output = reclaim_command()
        .arg("man")
        .output()
        .expect("running docker-reclaim man");
    assert!(output.status.success(), "docker-reclaim man failed");
    output.stdout
}

/// Fails when man/docker-reclaim.1 does not match the clap definition.
/// Regenerate with `cargo run -- man > man/docker-reclaim.1`.
#[test]
fn man_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/docker-reclaim.1");
    let generated = generated_man_page();
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "man/docker-reclaim.1 is stale: run `cargo run -- man > man/docker-reclaim.1` and commit it"
    );
}

#[test]
fn help_documents_exit_codes_and_flags() {
    let output = reclaim_command().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
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

/// The binary with no engine, config or colour from the environment.
fn reclaim_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docker-reclaim"));
    command
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_RECLAIM_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent/docker-reclaim-tests")
        .env("DOCKER_CONFIG", "/nonexistent/docker-reclaim-tests")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

#[test]
fn missing_socket_is_unreachable() {
    let output = reclaim_command()
        .args(["--dry-run", "-H", "unix:///nonexistent/docker.sock"])
        .output()
        .unwrap();
    assert!(
        output.status.code() == Some(3),
        "exit {:?}",
        output.status.code()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().count() == 1 && stderr.contains("/nonexistent/docker.sock"),
        "stderr: {stderr}",
    );
    assert!(output.stdout.is_empty(), "stdout not empty");
}

#[test]
fn bad_host_is_a_usage_error() {
    for host in [
        "ssh://user@box:x",
        "tcp://host:99999",
        "unix://relative",
        "npipe://x",
    ] {
        let output = reclaim_command()
            .args(["--dry-run", "-H", host])
            .output()
            .unwrap();
        assert!(
            output.status.code() == Some(2),
            "{host}: exit {:?}",
            output.status.code()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.lines().count() == 1 && stderr.contains(host),
            "{host}: {stderr}",
        );
    }
}

/// A fake engine on loopback that answers `/version` with API 1.40 and refuses
/// versioned requests as an engine that old does.
/// A fake engine on loopback that answers `/version` with API 1.40 and refuses
/// versioned requests as an engine that old does.
#[test]
fn old_api_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // The client asks /version and /info at the same time, then gives up.
        for _ in 0..2 {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let (status, body) = if request.starts_with("GET /version") {
                (
                    "200 OK",
                    r#"{"Version":"19.03.15","ApiVersion":"1.40","MinAPIVersion":"1.12"}"#,
                )
            } else {
                (
                    "400 Bad Request",
                    r#"{"message":"client version 1.41 is too new. Maximum supported API version is 1.40"}"#,
                )
            };
            let _ = write!(
                &stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let host = format!("tcp://127.0.0.1:{port}");
    let output = reclaim_command()
        .args(["--dry-run", "-H", &host])
        .output()
        .unwrap();
    // Unblocks the fake if the client made fewer requests than it waits for.
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let _ = server.join();
    assert!(
        output.status.code() == Some(3),
        "exit {:?}",
        output.status.code()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().count() == 1 && stderr.contains("1.40") && stderr.contains(&host),
        "stderr: {stderr}",
    );
}

#[test]
fn completions_for_each_shell_name_the_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let output = reclaim_command()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{shell}: exit {:?}",
            output.status.code()
        );
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(
            script.contains("dry-run") && script.contains("build-cache"),
            "{shell}"
        );
    }
    let output = reclaim_command()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// The units shipped in systemd/ pass `systemd-analyze verify` (with the
/// binary built here standing in for /usr/bin/docker-reclaim; the man page
/// they point to is checked once installed, by the package test).
#[test]
fn systemd_units_verify() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing: scripts/test.sh installs systemd"
        );
        eprintln!("systemd-analyze not installed: units not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let units = [
        "docker-reclaim.service",
        "docker-reclaim.timer",
        "docker-reclaim-watch.service",
    ];
    for unit in units {
        let text = std::fs::read_to_string(format!("systemd/{unit}")).unwrap();
        let text = text.replace(
            "/usr/bin/docker-reclaim",
            env!("CARGO_BIN_EXE_docker-reclaim"),
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let output = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(units.iter().map(|unit| dir.path().join(unit)))
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Each ExecStart parses as a docker-reclaim command line.
    for unit in ["docker-reclaim.service", "docker-reclaim-watch.service"] {
        let text = std::fs::read_to_string(format!("systemd/{unit}")).unwrap();
        let exec = text
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart=/usr/bin/docker-reclaim "))
            .unwrap();
        let mut args: Vec<&str> = exec.split_whitespace().collect();
        args.push("--help");
        let output = reclaim_command().args(&args).output().unwrap();
        assert!(
            output.status.success(),
            "{unit}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// docker's habits (#21): `--keep-last` without
/// `--all` and a second `until` are one-line usage errors, not silently
/// nothing; as a plugin, help says `docker reclaim`.
#[test]
fn docker_habits_work_or_are_refused_in_one_line() {
    for (args, needle) in [
        (&["--dry-run", "--keep-last", "2"][..], "--all"),
        (
            &["--dry-run", "--filter", "until=10m", "--filter", "until=1h"][..],
            "only one until",
        ),
    ] {
        let output = reclaim_command()
            .args(args)
            .args(["-H", "unix:///nonexistent/docker.sock"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.trim().lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
    let output = reclaim_command()
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "/usr/bin/docker")
        .args(["reclaim", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(help.contains("Usage: docker reclaim"), "{help}");
}

/// A fleet run (several -H/--context, --all-contexts) refuses what works on
/// one engine in one line, before reaching any engine; `--all-contexts`
/// without a context store says so.
#[test]
fn a_fleet_run_refuses_one_engine_modes_in_one_line() {
    let fleet = [
        "-H",
        "unix:///nonexistent/a.sock",
        "-H",
        "unix:///nonexistent/b.sock",
    ];
    for (args, needle) in [
        (&["df"][..], "df works on one engine"),
        (&["layers", "app"], "layers works on one engine"),
        (&["--dry-run", "--plan-out", "/tmp/x.json"], "--plan-out"),
        (&["--yes", "-q"], "--quiet"),
    ] {
        let output = reclaim_command().args(args).args(fleet).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.trim().lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
    let output = reclaim_command()
        .args(["--dry-run", "--all-contexts"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--all-contexts"), "{stderr}");
    // Two engines that are not there: each said once, exit 3.
    let output = reclaim_command()
        .arg("--dry-run")
        .args(fleet)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert_eq!(
        stdout.matches("not reached (exit 3): ").count(),
        2,
        "{stdout}"
    );
}

/// What bash offers for `words` (the last one being completed), through the
/// generated script run in a real bash.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = reclaim_command()
        .args(["completions", "bash"])
        .output()
        .unwrap()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-reclaim.bash");
    std::fs::write(&path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _docker__reclaim docker-reclaim '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .current_dir(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// bash completion of a subcommand's flags and a flag's values, in a real
/// bash (#21: `df --<TAB>` and `apply --<TAB>` completed nothing,
/// `completions <TAB>` listed files).
#[test]
fn bash_completes_subcommands_flags_and_values() {
    let df = bash_completes(&["docker-reclaim", "df", "--"]);
    assert!(df.iter().any(|word| word == "--all"), "df --: {df:?}");
    let apply = bash_completes(&["docker-reclaim", "apply", "--"]);
    assert!(
        apply.iter().any(|word| word == "--max-age"),
        "apply --: {apply:?}"
    );
    let shells = bash_completes(&["docker-reclaim", "completions", ""]);
    assert!(
        shells.iter().any(|word| word == "bash") && shells.iter().any(|word| word == "fish"),
        "completions: {shells:?}"
    );
    let top = bash_completes(&["docker-reclaim", "--dry"]);
    assert_eq!(top, ["--dry-run"]);
}

/// The fish script, in a real fish when there is one (scripts/test.sh
/// installs it): a subcommand's flags and a flag's values complete.
#[test]
fn fish_completes_subcommands_flags_and_values() {
    if Command::new("fish").arg("--version").output().is_err() {
        eprintln!("fish is not installed: skipped");
        return;
    }
    let script = reclaim_command()
        .args(["completions", "fish"])
        .output()
        .unwrap()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-reclaim.fish");
    std::fs::write(&path, script).unwrap();
    let complete = |line: &str| -> String {
        let output = Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!("source '{}'; complete -C '{line}'", path.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(complete("docker-reclaim df --al").contains("--all"));
    assert!(complete("docker-reclaim apply plan.json --max").contains("--max-age"));
    assert!(complete("docker-reclaim --volumes=").contains("--volumes=anonymous"));
}

/// What an interactive zsh shows after typing each of `lines` followed by a
/// tab (a line ending in `\t\t` gets two), with the generated script on its
/// `fpath` and compinit loaded: driven through zsh's own pseudo-terminal
/// module, as a person would type.
fn zsh_completes(lines: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = reclaim_command()
        .args(["completions", "zsh"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(dir.path().join("_docker-reclaim"), script).unwrap();
    let mut driver = format!(
        "zmodload zsh/zpty\n\
         zpty z zsh -f -i\n\
         zpty -w z \"PS1='>'; fpath=('{}' \\$fpath); autoload -U compinit; compinit -u -D\"\n\
         drain() {{ local chunk all=''; local end=$((SECONDS+2)); \
         while (( SECONDS < end )); do if zpty -r -t z chunk; then all+=$chunk; else sleep 0.1; fi; done; REPLY=$all }}\n\
         drain\n",
        dir.path().display()
    );
    for line in lines {
        let typed = line.replace('\t', "\\t");
        driver.push_str(&format!(
            "zpty -w -n z $'{typed}\\t'\ndrain\nprint -r -- \"@@${{REPLY}}\"\nzpty -w -n z $'\\C-u'\ndrain\n"
        ));
    }
    driver.push_str("zpty -d z\n");
    let output = Command::new("zsh")
        .args(["-f", "-c", &driver])
        .current_dir(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split("@@")
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The zsh script, in a real interactive zsh when there is one
/// (scripts/test.sh installs it): a subcommand's flags and a flag's values
/// complete.
#[test]
fn zsh_completes_subcommands_flags_and_values() {
    if Command::new("zsh").arg("--version").output().is_err() {
        eprintln!("zsh is not installed: skipped");
        return;
    }
    let shown = zsh_completes(&[
        "docker-reclaim df --al",
        "docker-reclaim completions ",
        "docker-reclaim --volumes=\t",
    ]);
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown[0].contains("--all"), "df --al: {:?}", shown[0]);
    assert!(
        ["bash", "fish", "zsh"]
            .iter()
            .all(|shell| shown[1].contains(shell)),
        "completions: {:?}",
        shown[1]
    );
    assert!(shown[2].contains("anonymous"), "--volumes=: {:?}", shown[2]);
}
