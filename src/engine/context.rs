//! Which engine the operator means, resolved as the docker CLI resolves it
//! (docker/cli v28 `cli/command/cli.go` `resolveContextName`): `--context`,
//! then `-H/--host`, then `DOCKER_HOST`, then `DOCKER_CONTEXT`, then our config
//! file's `host`, then `currentContext` in `$DOCKER_CONFIG/config.json`, then
//! the default socket. `--host` with `--context` is an error, as with docker.
//!
//! A context lives in `$DOCKER_CONFIG/contexts/meta/<sha256 of its name>/meta.json`
//! (`Endpoints.docker.Host`); TLS material, when it has any, under
//! `contexts/tls/<sha256 of its name>/docker/`. A context whose engine needs TLS
//! or ssh is refused with a reason, never reached another way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Host;
use crate::exit::UsageError;
use crate::files;

/// The engine to reach, and the context that named it (if one did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub context: Option<String>,
}

/// What was asked for, before any file is read.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `-H/--host`.
    pub host: Option<String>,
    /// `-c/--context`.
    pub context: Option<String>,
    /// `DOCKER_HOST`, when set and not empty.
    pub env_host: Option<String>,
    /// `DOCKER_CONTEXT`, when set and not empty.
    pub env_context: Option<String>,
    /// `host` in docker-reclaim's config file.
    pub config_host: Option<String>,
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config: Option<PathBuf>,
}

impl Request {
    /// With the docker CLI's `--config DIR`, when docker runs us as a plugin.
    pub fn with_docker_config(mut self, dir: Option<PathBuf>) -> Request {
        if dir.is_some() {
            self.docker_config = dir;
        }
        self
    }

    /// The request from the flags, the config file and this process's environment.
    pub fn from_env(
        host: Option<String>,
        context: Option<String>,
        config_host: Option<String>,
    ) -> Request {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Request {
            host,
            context,
            env_host: var("DOCKER_HOST"),
            env_context: var("DOCKER_CONTEXT"),
            config_host,
            docker_config: var("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".docker"))),
        }
    }
}

/// The context name that means "no context": the host from flags or the
/// environment, else the default socket.
pub const DEFAULT_CONTEXT: &str = "default";

/// Resolves the engine, reading the docker CLI's config and context store.
pub fn resolve(request: &Request) -> Result<Endpoint, UsageError> {
    if request.host.is_some() && request.context.is_some() {
        return Err(UsageError(
            "conflicting options: either specify --host or --context, not both".into(),
        ));
    }
    // The config file's host is checked even when something else wins, so that
    // a broken config is found before the day it is used.
    if let Some(configured) = &request.config_host {
        Host::parse(configured)
            .map_err(|err| UsageError(format!("in the config file: {}", err.0)))?;
    }
    let host = |raw: &str| {
        Ok(Endpoint {
            host: Host::parse(raw)?,
            context: None,
        })
    };
    if let Some(name) = &request.context {
        return context(request, name);
    }
    if let Some(raw) = &request.host {
        return host(raw);
    }
    if let Some(raw) = &request.env_host {
        return host(raw);
    }
    if let Some(name) = &request.env_context {
        return context(request, name);
    }
    if let Some(raw) = &request.config_host {
        return host(raw);
    }
    if let Some(name) = current_context(request)? {
        return context(request, &name);
    }
    host(Host::DEFAULT)
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Endpoints", default)]
    endpoints: BTreeMap<String, MetaEndpoint>,
}

#[derive(Deserialize)]
struct MetaEndpoint {
    #[serde(rename = "Host", default)]
    host: Option<String>,
}

/// `currentContext` from the docker CLI's config.json, when it names one.
fn current_context(request: &Request) -> Result<Option<String>, UsageError> {
    let Some(dir) = &request.docker_config else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    if !path.exists() {
        return Ok(None);
    }
    let body = files::read_limited(&path, "docker config file")?;
    let config: ConfigFile = serde_json::from_slice(&body).map_err(|err| {
        UsageError(format!(
            "cannot read docker config file {}: {err}",
            path.display()
        ))
    })?;
    Ok(config
        .current_context
        .filter(|name| !name.is_empty() && name != DEFAULT_CONTEXT))
}

/// The directory name of a context in the store.
pub fn context_id(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// The endpoint a named context holds.
fn context(request: &Request, name: &str) -> Result<Endpoint, UsageError> {
    if name == DEFAULT_CONTEXT {
        let raw = request
            .env_host
            .as_deref()
            .or(request.config_host.as_deref())
            .unwrap_or(Host::DEFAULT);
        return Ok(Endpoint {
            host: Host::parse(raw)?,
            context: Some(DEFAULT_CONTEXT.into()),
        });
    }
    let Some(dir) = &request.docker_config else {
        return Err(UsageError(format!(
            "context {name:?} not found: no docker config directory (set DOCKER_CONFIG or HOME)"
        )));
    };
    let id = context_id(name);
    let meta_path = dir.join("contexts/meta").join(&id).join("meta.json");
    if !meta_path.exists() {
        return Err(UsageError(format!(
            "context {name:?} not found (looked in {}); `docker context ls` lists them",
            dir.join("contexts").display()
        )));
    }
    let body = files::read_limited(&meta_path, "context file")?;
    let meta: Meta = serde_json::from_slice(&body).map_err(|err| {
        UsageError(format!(
            "cannot read context {name:?} ({}): {err}",
            meta_path.display()
        ))
    })?;
    let raw = meta
        .endpoints
        .get("docker")
        .and_then(|endpoint| endpoint.host.clone())
        .ok_or_else(|| UsageError(format!("context {name:?} has no docker endpoint")))?;
    if has_tls(dir, &id) {
        return Err(UsageError(format!(
            "context {name:?} reaches {raw} with TLS, which docker-reclaim does not speak yet; it will not connect without it"
        )));
    }
    let host =
        Host::parse(&raw).map_err(|err| UsageError(format!("context {name:?}: {}", err.0)))?;
    Ok(Endpoint {
        host,
        context: Some(name.to_string()),
    })
}

/// Whether the context store holds TLS material for this context's engine.
fn has_tls(dir: &Path, id: &str) -> bool {
    let tls = dir.join("contexts/tls").join(id).join("docker");
    ["ca.pem", "cert.pem", "key.pem"]
        .iter()
        .any(|file| tls.join(file).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(contexts: &[(&str, &str)], current: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, host) in contexts {
            let meta = dir.path().join("contexts/meta").join(context_id(name));
            std::fs::create_dir_all(&meta).unwrap();
            std::fs::write(
                meta.join("meta.json"),
                format!(
                    r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
                ),
            )
            .unwrap();
        }
        if let Some(current) = current {
            std::fs::write(
                dir.path().join("config.json"),
                format!(r#"{{"auths":{{}},"currentContext":"{current}"}}"#),
            )
            .unwrap();
        }
        dir
    }

    fn request(dir: &tempfile::TempDir) -> Request {
        Request {
            docker_config: Some(dir.path().to_path_buf()),
            ..Request::default()
        }
    }

    #[test]
    fn the_docker_cli_order() {
        let dir = store(
            &[("a", "unix:///run/a.sock"), ("b", "unix:///run/b.sock")],
            Some("a"),
        );
        let at = |path: &str| Host::Unix(PathBuf::from(path));
        // currentContext, when nothing else is given.
        assert_eq!(resolve(&request(&dir)).unwrap().host, at("/run/a.sock"));
        // DOCKER_CONTEXT over currentContext.
        let env_context = Request {
            env_context: Some("b".into()),
            ..request(&dir)
        };
        assert_eq!(resolve(&env_context).unwrap().host, at("/run/b.sock"));
        // DOCKER_HOST over DOCKER_CONTEXT.
        let env_host = Request {
            env_host: Some("unix:///run/env.sock".into()),
            ..env_context.clone()
        };
        assert_eq!(resolve(&env_host).unwrap().host, at("/run/env.sock"));
        // --context over DOCKER_HOST.
        let flag = Request {
            context: Some("a".into()),
            ..env_host.clone()
        };
        let endpoint = resolve(&flag).unwrap();
        assert_eq!(endpoint.host, at("/run/a.sock"));
        assert_eq!(endpoint.context.as_deref(), Some("a"));
        // --host and --context together: an error, as with docker.
        let both = Request {
            host: Some("unix:///x.sock".into()),
            ..flag
        };
        assert!(resolve(&both).unwrap_err().0.contains("conflicting"));
        // The default context is the environment's host.
        let default = Request {
            context: Some("default".into()),
            ..env_host
        };
        assert_eq!(resolve(&default).unwrap().host, at("/run/env.sock"));
    }

    #[test]
    fn the_config_files_host_is_checked_even_when_the_environment_wins() {
        let dir = store(&[], None);
        let request = Request {
            env_host: Some("unix:///run/env.sock".into()),
            config_host: Some("unix://relative".into()),
            ..request(&dir)
        };
        let err = resolve(&request).unwrap_err();
        assert!(err.0.starts_with("in the config file"), "{}", err.0);
    }

    #[test]
    fn missing_tls_and_ssh_contexts_are_refused_with_a_reason() {
        let dir = store(
            &[("remote", "ssh://me@box"), ("tls", "tcp://box:2376")],
            None,
        );
        let ask = |name: &str| {
            resolve(&Request {
                context: Some(name.into()),
                ..request(&dir)
            })
        };
        assert!(ask("nope").unwrap_err().0.contains("not found"));
        assert!(ask("remote").unwrap_err().0.contains("ssh"));
        let tls = dir
            .path()
            .join("contexts/tls")
            .join(context_id("tls"))
            .join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "x").unwrap();
        assert!(ask("tls").unwrap_err().0.contains("TLS"));
    }
}
