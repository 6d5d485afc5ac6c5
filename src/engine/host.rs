//! Where the engine is: the host strings the docker CLI accepts, parsed into
//! something we can dial.

use std::path::PathBuf;

use crate::exit::UsageError;

/// Where the engine is, as the user named it and as we will dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP: plain HTTP, or TLS when the endpoint says so.
    Tcp(String),
    /// `ssh://[user@]host[:port][/socket]`: the API through `ssh … docker
    /// system dial-stdio` on that host.
    Ssh(SshTarget),
}

/// Where `ssh` goes, and which socket `docker system dial-stdio` uses there
/// (its default when none is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshTarget {
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) socket: Option<String>,
}

impl SshTarget {
    /// The command line, as the docker CLI builds it (docker/cli v28.2.2
    /// `cli/connhelper`: `-o ConnectTimeout=30`, `-T`, `-l USER`, `-p PORT`,
    /// `--`, the host, then `docker [--host unix://PATH] system dial-stdio`).
    /// `ssh` is the system's client, with its config and agent.
    pub(crate) fn command(&self) -> Vec<String> {
        let mut command: Vec<String> = ["ssh", "-o", "ConnectTimeout=30", "-T"]
            .map(String::from)
            .to_vec();
        if let Some(user) = &self.user {
            command.extend(["-l".into(), user.clone()]);
        }
        if let Some(port) = self.port {
            command.extend(["-p".into(), port.to_string()]);
        }
        command.extend(["--".into(), self.host.clone()]);
        // ssh joins what follows the host with spaces and hands it to the
        // remote user's shell: every word is quoted for that shell, as the
        // docker CLI does since v28.3.2 (docker/cli 88d1133224), so that a
        // socket path is a path there and never a command.
        let mut remote = vec!["docker".to_string()];
        if let Some(socket) = &self.socket {
            remote.extend(["--host".into(), format!("unix://{socket}")]);
        }
        remote.extend(["system".into(), "dial-stdio".into()]);
        command.push(
            remote
                .iter()
                .map(|word| shell_quote(word))
                .collect::<Vec<_>>()
                .join(" "),
        );
        command
    }

    fn parse(raw: &str, rest: &str) -> Result<SshTarget, UsageError> {
        let invalid = |why: &str| UsageError(format!("invalid host {raw:?}: {why}"));
        if rest.contains(['?', '#']) {
            return Err(invalid("an ssh host takes no query or fragment"));
        }
        let (authority, socket) = match rest.split_once('/') {
            Some((authority, path)) if !path.is_empty() => (authority, Some(format!("/{path}"))),
            Some((authority, _)) => (authority, None),
            None => (rest, None),
        };
        let (user, host_port) = match authority.rsplit_once('@') {
            // Not repeated in the message: it is a secret.
            Some((user, _)) if user.contains(':') => {
                return Err(UsageError(
                    "invalid ssh host: a password in the host is not supported (and is not repeated here); use ssh keys or an agent".into(),
                ));
            }
            Some((user, host)) => (Some(user.to_string()).filter(|u| !u.is_empty()), host),
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                let port = port.parse::<u16>().map_err(|_| {
                    invalid(&format!("port {port:?} is not a number from 0 to 65535"))
                })?;
                (host, Some(port))
            }
            _ => (host_port, None),
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(invalid("expected ssh://[USER@]HOST[:PORT]"));
        }
        if let Some(socket) = &socket
            && socket.chars().any(char::is_control)
        {
            return Err(invalid("the socket path has a control character"));
        }
        let misread = |part: &str| part.chars().any(|c| c.is_control() || c.is_whitespace());
        if user
            .as_deref()
            .is_some_and(|user| user.starts_with('-') || misread(user))
            || misread(host)
        {
            return Err(invalid(
                "the user or host has a character ssh would misread",
            ));
        }
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port,
            socket,
        })
    }
}

/// `word` quoted for a POSIX shell: as it is when it holds only characters no
/// shell treats specially, else in single quotes (a quote inside as `'\''`).
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ssh://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(socket) = &self.socket {
            write!(f, "{socket}")?;
        }
        Ok(())
    }
}

impl Host {
    pub(crate) const DEFAULT: &'static str = "unix:///var/run/docker.sock";

    /// Parses a Docker host string in the forms the docker CLI accepts for local and
    /// plain-TCP engines. An empty string is an error: an empty `DOCKER_HOST` is
    /// treated as unset before it gets here, so an empty host was given on purpose.
    pub(crate) fn parse(raw: &str) -> Result<Host, UsageError> {
        Host::parse_for(raw, false)
    }

    /// [`Host::parse`], for an engine reached with TLS when `tls`: a `tcp://`
    /// host without a port gets the docker CLI's TLS port, 2376.
    pub(crate) fn parse_for(raw: &str, tls: bool) -> Result<Host, UsageError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(UsageError(
                "invalid host \"\": give unix:///path/to/docker.sock or tcp://HOST:PORT, or leave -H out for the default".into(),
            ));
        }
        if let Some(rest) = raw.strip_prefix("ssh://") {
            return SshTarget::parse(raw, rest).map(Host::Ssh);
        }
        // Whatever the scheme (or none), a user and password are a secret:
        // refused, and never repeated in a message or a log.
        let shown = redact(raw);
        if shown != raw {
            return Err(UsageError(format!(
                "invalid host {shown:?}: credentials in the host are not supported, and are not repeated here"
            )));
        }
        if let Some(path) = raw.strip_prefix("unix://") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(UsageError(format!(
                    "invalid host {raw:?}: a unix socket needs an absolute path, like unix:///var/run/docker.sock"
                )));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = raw
            .strip_prefix("tcp://")
            .or_else(|| raw.strip_prefix("http://"))
        {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(UsageError(format!(
                    "invalid host {raw:?}: expected tcp://HOST:PORT"
                )));
            }
            let with_port = match authority.rsplit_once(':') {
                Some((name, port)) if !name.is_empty() && !name.ends_with(':') => {
                    if port.parse::<u16>().is_err() {
                        return Err(UsageError(format!(
                            "invalid host {raw:?}: port {port:?} is not a number from 0 to 65535"
                        )));
                    }
                    authority.to_string()
                }
                // No port: the docker CLI's default, for plain TCP or TLS.
                _ if tls => format!("{authority}:2376"),
                _ => format!("{authority}:2375"),
            };
            return Ok(Host::Tcp(with_port));
        }
        let scheme = raw.split("://").next().unwrap_or(raw);
        Err(UsageError(format!(
            "unsupported host {raw:?}: docker-reclaim speaks to unix://, tcp:// and ssh:// engines, not {scheme:?}"
        )))
    }
}

/// `raw` with any user information before an `@` in its authority (after a
/// scheme's `://`, or from the start where there is none) replaced by `***`.
pub(crate) fn redact(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |at| at + 3);
    let authority = &raw[start..];
    let end = authority.find('/').unwrap_or(authority.len());
    match authority[..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &authority[at..]),
        None => raw.to_string(),
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp(addr) => write!(f, "tcp://{addr}"),
            Host::Ssh(target) => write!(f, "{target}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_hosts_parse_as_the_docker_cli_reads_them() {
        let Host::Ssh(target) = Host::parse("ssh://me@box.example:2222/run/docker.sock").unwrap()
        else {
            panic!("not ssh");
        };
        assert_eq!(target.user.as_deref(), Some("me"));
        assert_eq!(target.port, Some(2222));
        assert_eq!(
            target.command(),
            [
                "ssh",
                "-o",
                "ConnectTimeout=30",
                "-T",
                "-l",
                "me",
                "-p",
                "2222",
                "--",
                "box.example",
                "docker --host unix:///run/docker.sock system dial-stdio"
            ]
        );
        assert_eq!(
            target.to_string(),
            "ssh://me@box.example:2222/run/docker.sock"
        );
        let Host::Ssh(plain) = Host::parse("ssh://box").unwrap() else {
            panic!("not ssh");
        };
        assert_eq!(
            plain.command(),
            [
                "ssh",
                "-o",
                "ConnectTimeout=30",
                "-T",
                "--",
                "box",
                "docker system dial-stdio"
            ]
        );
        for (raw, needle) in [
            ("ssh://me:secret@box", "password"),
            ("ssh://me:secret@box", "not repeated"),
            ("ssh://box:port", "port"),
            ("ssh://", "expected"),
            ("ssh://-oProxyCommand=x", "expected"),
        ] {
            let err = Host::parse(raw).unwrap_err().0;
            assert!(err.contains(needle), "{raw}: {err}");
        }
    }

    /// Safety round 2, finding 3: `ssh://root@host/run/docker.sock$(touch
    /// PWNED)` ran `touch` on the remote host.
    #[test]
    fn the_remote_command_is_quoted_for_the_remote_shell() {
        let Host::Ssh(target) =
            Host::parse("ssh://root@host/run/docker.sock$(touch PWNED);id 'x'").unwrap()
        else {
            panic!("not ssh");
        };
        let command = target.command();
        let remote = command.last().unwrap();
        assert_eq!(
            remote,
            r"docker --host 'unix:///run/docker.sock$(touch PWNED);id '\''x'\''' system dial-stdio"
        );
        // What a POSIX shell makes of it: the path, whole, as one word.
        let words = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {remote}")])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&words.stdout),
            "docker\n--host\nunix:///run/docker.sock$(touch PWNED);id 'x'\nsystem\ndial-stdio\n"
        );
        for raw in [
            "ssh://host/run/docker.sock\nid",
            "ssh://-l@host",
            "ssh://me@ho st",
        ] {
            assert!(Host::parse(raw).is_err(), "{raw}");
        }
    }

    /// Safety round 2, finding 7: credentials were echoed for schemes other
    /// than plain `tcp://`.
    #[test]
    fn credentials_are_never_repeated_whatever_the_scheme() {
        for raw in [
            "https://alice:pw@box:2376",
            "TCP://alice:pw@box:2375",
            "unix://alice:pw@/run/docker.sock",
            "alice:pw@box:1",
            "tcp://alice:pw@box",
            "SSH://alice:pw@box",
            "ssh://alice:pw@box",
        ] {
            let err = Host::parse(raw).unwrap_err().0;
            assert!(!err.contains("pw"), "{raw}: {err}");
            assert!(!err.contains("alice"), "{raw}: {err}");
        }
        assert_eq!(redact("unix:///run/a@b.sock"), "unix:///run/a@b.sock");
        assert!(Host::parse("unix:///run/a@b.sock").is_ok());
    }
}
