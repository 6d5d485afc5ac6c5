//! Where the engine is: the host strings the docker CLI accepts, parsed into
//! something we can dial.

use std::path::PathBuf;

use crate::exit::UsageError;

/// Where the engine is, as the user named it and as we will dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` for plain HTTP over TCP.
    Tcp(String),
}

impl Host {
    pub const DEFAULT: &'static str = "unix:///var/run/docker.sock";

    /// Parses a Docker host string in the forms the docker CLI accepts for local and
    /// plain-TCP engines. An empty string is an error: an empty `DOCKER_HOST` is
    /// treated as unset before it gets here, so an empty host was given on purpose.
    pub fn parse(raw: &str) -> Result<Host, UsageError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(UsageError(
                "invalid host \"\": give unix:///path/to/docker.sock or tcp://HOST:PORT, or leave -H out for the default".into(),
            ));
        }
        if let Some((scheme @ ("tcp" | "http"), rest)) = raw.split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
            && !userinfo.contains('/')
        {
            return Err(UsageError(format!(
                "invalid host {:?}: credentials in the host are not supported, and are not repeated here",
                format!("{scheme}://***@{}", &rest[userinfo.len() + 1..])
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
                // No port: the docker CLI's default for plain TCP.
                _ => format!("{authority}:2375"),
            };
            return Ok(Host::Tcp(with_port));
        }
        let scheme = raw.split("://").next().unwrap_or(raw);
        Err(UsageError(format!(
            "unsupported host {raw:?}: docker-reclaim speaks to unix:// sockets and tcp:// (plain HTTP) engines, not {scheme:?}"
        )))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}
