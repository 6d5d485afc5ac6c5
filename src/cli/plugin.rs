//! `docker reclaim`: docker-reclaim as a Docker CLI plugin. Installed as
//! `~/.docker/cli-plugins/docker-reclaim` (a symlink to the binary), the docker
//! CLI asks it `docker-cli-plugin-metadata` for a JSON description, then runs
//! it with the whole original command line: docker's global options, then
//! `reclaim`, then ours (docker/cli v28 `cli-plugins/manager/manager.go`
//! `PluginRunCommand`, which passes `os.Args[1:]`). Docker's global options
//! that choose the engine are turned into ours here, TLS options included
//! (never a silent downgrade to cleartext).

use std::ffi::{OsStr, OsString};

use crate::exit::UsageError;

/// The argument the docker CLI asks a plugin candidate for its metadata with.
pub(crate) const METADATA: &str = "docker-cli-plugin-metadata";

/// The environment variable the docker CLI sets when it runs a plugin.
const RUN_BY_DOCKER: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";

/// The plugin's metadata, as `cli-plugins/metadata.Metadata` reads it.
pub(crate) fn metadata() -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "docker-reclaim",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": "Reclaim disk space safely: plan, show, then remove exactly the plan",
    })
    .to_string()
}

/// The command line to parse: as given, or, when the docker CLI runs us as
/// its `reclaim` plugin, docker's global options turned into ours.
/// Whether the docker CLI runs us as its `reclaim` plugin.
pub(crate) fn run_by_docker() -> bool {
    std::env::var_os(RUN_BY_DOCKER).is_some()
}

pub(crate) fn command_line(args: Vec<OsString>) -> Result<Vec<OsString>, UsageError> {
    if !run_by_docker() {
        return Ok(args);
    }
    from_docker(args)
}

/// `[exe, docker options…, reclaim, our arguments…]` → `[exe, ours…]`, and
/// `docker help reclaim` (which runs us as `help reclaim`) → `[exe, --help]`.
/// Docker's options are read as its flag parser (spf13/pflag) reads them:
/// `--flag value`, `--flag=value`, `-H value`, `-Hvalue`, `-H=value`, and
/// booleans as `--tls` or `--tls=false`.
pub(crate) fn from_docker(args: Vec<OsString>) -> Result<Vec<OsString>, UsageError> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut translated = Vec::new();
    let mut rest = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "reclaim" {
            rest.extend(args.by_ref());
            break;
        }
        if text == "help" {
            let topic: Vec<OsString> = args.by_ref().collect();
            if topic.first().is_some_and(|first| first == "reclaim") {
                rest.push(OsString::from("--help"));
                break;
            }
            return Err(UsageError(
                "docker help: expected `docker help reclaim`".into(),
            ));
        }
        let (flag, inline) = split_flag(&text);
        let mut value = |name: &str| -> Result<OsString, UsageError> {
            match &inline {
                Some(value) => Ok(OsString::from(value)),
                None => args
                    .next()
                    .ok_or_else(|| UsageError(format!("docker option {name} needs a value"))),
            }
        };
        match flag.as_str() {
            "-H" | "--host" => {
                translated.push(OsString::from("--host"));
                translated.push(value("--host")?);
            }
            "-c" | "--context" => {
                translated.push(OsString::from("--context"));
                translated.push(value("--context")?);
            }
            "--config" => {
                translated.push(OsString::from("--docker-config"));
                translated.push(value("--config")?);
            }
            "-l" | "--log-level" => {
                value("--log-level")?;
            }
            "-D" | "--debug" => {
                boolean(&flag, inline.as_deref())?;
            }
            "--tls" | "--tlsverify" => {
                if boolean(&flag, inline.as_deref())? {
                    translated.push(OsString::from(flag.as_str()));
                }
            }
            "--tlscacert" | "--tlscert" | "--tlskey" => {
                translated.push(OsString::from(flag.as_str()));
                translated.push(value(flag.as_str())?);
            }
            other => {
                return Err(UsageError(format!(
                    "docker option {other} is not understood by docker-reclaim"
                )));
            }
        }
    }
    out.extend(translated);
    out.extend(rest);
    Ok(out)
}

/// A docker option as pflag splits it: the flag, and the value written into
/// the same argument (`--host=x`, `-Hx`, `-H=x`), if any.
fn split_flag(text: &str) -> (String, Option<String>) {
    if text.starts_with("--") {
        return match text.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (text.to_string(), None),
        };
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some('-'), Some(short)) if text.len() > 2 => {
            let value = &text[1 + short.len_utf8()..];
            let value = value.strip_prefix('=').unwrap_or(value);
            (format!("-{short}"), Some(value.to_string()))
        }
        _ => (text.to_string(), None),
    }
}

/// A boolean docker option's value, as Go's `strconv.ParseBool` reads it;
/// given without one, it is true.
fn boolean(flag: &str, value: Option<&str>) -> Result<bool, UsageError> {
    match value {
        None => Ok(true),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(UsageError(format!(
            "docker option {flag}: {other:?} is not true or false"
        ))),
    }
}

/// Whether the command line asks for the plugin metadata.
pub(crate) fn wants_metadata(args: &[OsString]) -> bool {
    args.get(1).map(OsString::as_os_str) == Some(OsStr::new(METADATA))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(raw: &[&str]) -> Vec<OsString> {
        raw.iter().map(OsString::from).collect()
    }

    #[test]
    fn docker_global_options_become_ours() {
        let got = from_docker(args(&[
            "docker-reclaim",
            "--context",
            "rootless",
            "-D",
            "--config=/tmp/cfg",
            "reclaim",
            "--dry-run",
            "-H",
            "x",
        ]))
        .unwrap();
        assert_eq!(
            got,
            args(&[
                "docker-reclaim",
                "--context",
                "rootless",
                "--docker-config",
                "/tmp/cfg",
                "--dry-run",
                "-H",
                "x"
            ])
        );
        let host = from_docker(args(&["p", "-H", "unix:///s.sock", "reclaim", "df"])).unwrap();
        assert_eq!(host, args(&["p", "--host", "unix:///s.sock", "df"]));
        let tls = from_docker(args(&[
            "p",
            "--tlsverify",
            "--tlscacert=/c/ca.pem",
            "-H",
            "tcp://box:2376",
            "reclaim",
            "df",
        ]))
        .unwrap();
        assert_eq!(
            tls,
            args(&[
                "p",
                "--tlsverify",
                "--tlscacert",
                "/c/ca.pem",
                "--host",
                "tcp://box:2376",
                "df"
            ])
        );
    }

    #[test]
    fn metadata_is_what_the_cli_checks() {
        let value: serde_json::Value = serde_json::from_str(&metadata()).unwrap();
        assert_eq!(value["SchemaVersion"], "0.1.0");
        assert!(value["Vendor"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(wants_metadata(&args(&["docker-reclaim", METADATA])));
    }

    /// Safety round 2, finding 11: `-H=unix://…`, `-c=good` and `-lerror`
    /// were refused or misparsed, `--tls=false` turned TLS on, and `docker
    /// help reclaim` failed.
    #[test]
    fn docker_options_are_read_as_pflag_reads_them() {
        let got = from_docker(args(&[
            "docker-reclaim",
            "-H=unix:///run/x.sock",
            "-lerror",
            "--tls=false",
            "--tlsverify=true",
            "-D=false",
            "reclaim",
            "--dry-run",
        ]))
        .unwrap();
        assert_eq!(
            got,
            args(&[
                "docker-reclaim",
                "--host",
                "unix:///run/x.sock",
                "--tlsverify",
                "--dry-run"
            ])
        );
        let got = from_docker(args(&["docker-reclaim", "-c=good", "reclaim"])).unwrap();
        assert_eq!(got, args(&["docker-reclaim", "--context", "good"]));
        let got =
            from_docker(args(&["docker-reclaim", "-cgood", "-l", "info", "reclaim"])).unwrap();
        assert_eq!(got, args(&["docker-reclaim", "--context", "good"]));
        let got = from_docker(args(&["docker-reclaim", "help", "reclaim"])).unwrap();
        assert_eq!(got, args(&["docker-reclaim", "--help"]));
        assert!(from_docker(args(&["docker-reclaim", "--tls=maybe", "reclaim"])).is_err());
    }
}
