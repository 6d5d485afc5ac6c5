//! Which engine the operator means, resolved as the docker CLI resolves it
//! (docker/cli v28 `cli/command/cli.go` `resolveContextName`): `--context`,
//! then `-H/--host`, then `DOCKER_HOST`, then `DOCKER_CONTEXT`, then our config
//! file's `host`, then `currentContext` in `$DOCKER_CONFIG/config.json`, then
//! the default socket. `--host` with `--context` is an error, as with docker.
//!
//! A context lives in `$DOCKER_CONFIG/contexts/meta/<sha256 of its name>/meta.json`
//! (`Endpoints.docker.Host`); TLS material, when it has any, under
//! `contexts/tls/<sha256 of its name>/docker/`, used as docker uses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::host::Host;
use super::transport::Tls;
use crate::exit::UsageError;
use crate::files;

/// The engine to reach, and the context that named it (if one did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: Host,
    pub(crate) context: Option<String>,
    /// TLS, for a `tcp://` engine that is reached with it.
    pub(crate) tls: Option<Tls>,
}

impl Endpoint {
    /// The endpoint `raw` names, reached with `tls` when it is a `tcp://`
    /// engine (a unix socket or ssh takes no TLS, as with docker).
    fn parse(raw: &str, tls: Option<Tls>, context: Option<String>) -> Result<Endpoint, UsageError> {
        let host = Host::parse_for(raw, tls.is_some())?;
        Ok(Endpoint {
            tls: tls.filter(|_| matches!(host, Host::Tcp(_))),
            host,
            context,
        })
    }
}

/// The docker CLI's TLS options: `--tls`, `--tlsverify` (or `DOCKER_TLS`,
/// `DOCKER_TLS_VERIFY`), the files, and `DOCKER_CERT_PATH` where they are by
/// default (`ca.pem`, `cert.pem`, `key.pem`; else the docker config directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub(crate) tls: bool,
    pub(crate) verify: bool,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) cert_path: Option<PathBuf>,
}

/// What was asked for, before any file is read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    /// `-H/--host`.
    pub(crate) host: Option<String>,
    /// `-c/--context`.
    pub(crate) context: Option<String>,
    /// `DOCKER_HOST`, when set and not empty.
    pub(crate) env_host: Option<String>,
    /// `DOCKER_CONTEXT`, when set and not empty.
    pub(crate) env_context: Option<String>,
    /// `host` in docker-reclaim's config file.
    pub(crate) config_host: Option<String>,
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub(crate) docker_config: Option<PathBuf>,
    /// For an engine named by host (not by a context).
    pub(crate) tls: TlsOptions,
}

impl Request {
    /// With the docker CLI's `--config DIR`, when docker runs us as a plugin.
    pub(crate) fn with_docker_config(mut self, dir: Option<PathBuf>) -> Request {
        if dir.is_some() {
            self.docker_config = dir;
        }
        self
    }

    /// The request from the flags, the config file and this process's
    /// environment. `tls` holds the flags; the environment adds to them as
    /// docker's does (a non-empty `DOCKER_TLS_VERIFY` or `DOCKER_TLS` turns
    /// them on).
    pub(crate) fn from_env(
        host: Option<String>,
        context: Option<String>,
        config_host: Option<String>,
        mut tls: TlsOptions,
    ) -> Request {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        tls.verify |= var("DOCKER_TLS_VERIFY").is_some();
        tls.tls |= var("DOCKER_TLS").is_some();
        tls.cert_path = tls
            .cert_path
            .or_else(|| var("DOCKER_CERT_PATH").map(PathBuf::from));
        Request {
            host,
            context,
            env_host: var("DOCKER_HOST"),
            env_context: var("DOCKER_CONTEXT"),
            config_host,
            docker_config: var("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".docker"))),
            tls,
        }
    }

    /// TLS for an engine named by host, as the docker CLI sets it up
    /// (docker/cli v28.2.2 `cli/flags/options.go` `SetDefaultOptions`): on
    /// with `--tls` or `--tlsverify`; each file is the flag's, else the
    /// default one in the cert path when it exists there. Only `tcp://`
    /// engines use it.
    fn tls_for_host(&self) -> Option<Tls> {
        let options = &self.tls;
        if !(options.tls || options.verify) {
            return None;
        }
        let dir = options
            .cert_path
            .clone()
            .or_else(|| self.docker_config.clone());
        let file = |given: &Option<PathBuf>, name: &str| {
            given.clone().or_else(|| {
                dir.as_ref()
                    .map(|dir| dir.join(name))
                    .filter(|path| present(path))
            })
        };
        Some(Tls {
            verify: options.verify,
            ca: file(&options.ca, "ca.pem"),
            cert: file(&options.cert, "cert.pem"),
            key: file(&options.key, "key.pem"),
        })
    }
}

/// The context name that means "no context": the host from flags or the
/// environment, else the default socket.
pub(crate) const DEFAULT_CONTEXT: &str = "default";

/// Resolves the engine, reading the docker CLI's config and context store.
pub(crate) fn resolve(request: &Request) -> Result<Endpoint, UsageError> {
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
    let host = |raw: &str| Endpoint::parse(raw, request.tls_for_host(), None);
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
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
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
pub(crate) fn context_id(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// The names of every context in the docker CLI's store, sorted (what
/// `docker context ls` lists but the implicit `default`). A context whose
/// metadata cannot be read is named by the error, not skipped.
pub(crate) fn all_names(request: &Request) -> Result<Vec<String>, UsageError> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(rename = "Name")]
        name: String,
    }
    let Some(dir) = &request.docker_config else {
        return Err(UsageError(
            "--all-contexts: no docker config directory (set DOCKER_CONFIG or HOME)".into(),
        ));
    };
    let meta = dir.join("contexts/meta");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&meta).into_iter().flatten().flatten() {
        let path = entry.path().join("meta.json");
        let body = files::read_limited(&path, "context file")?;
        let named: Named = serde_json::from_slice(&body)
            .map_err(|err| UsageError(format!("cannot read context {}: {err}", path.display())))?;
        names.push(named.name);
    }
    if names.is_empty() {
        return Err(UsageError(format!(
            "--all-contexts: the docker CLI has no context in {}",
            meta.display()
        )));
    }
    names.sort();
    Ok(names)
}

/// The endpoint a named context holds.
fn context(request: &Request, name: &str) -> Result<Endpoint, UsageError> {
    if name == DEFAULT_CONTEXT {
        let raw = request
            .env_host
            .as_deref()
            .or(request.config_host.as_deref())
            .unwrap_or(Host::DEFAULT);
        return Endpoint::parse(raw, request.tls_for_host(), Some(DEFAULT_CONTEXT.into()));
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
    let endpoint = meta
        .endpoints
        .get("docker")
        .filter(|endpoint| endpoint.host.is_some())
        .ok_or_else(|| UsageError(format!("context {name:?} has no docker endpoint")))?;
    let raw = endpoint.host.clone().unwrap_or_default();
    let tls = context_tls(dir, &id, endpoint.skip_tls_verify);
    Endpoint::parse(&raw, tls, Some(name.to_string()))
        .map_err(|err| UsageError(format!("context {name:?}: {}", err.0)))
}

/// A context's TLS, as the docker CLI reads it (docker/cli v28.2.2
/// `cli/context/docker/load.go` `tlsConfig`): on when the store holds TLS
/// material for its engine (`contexts/tls/<id>/docker/{ca,cert,key}.pem`) or
/// it says `SkipTLSVerify`; verified unless it says that.
fn context_tls(dir: &Path, id: &str, skip_verify: bool) -> Option<Tls> {
    let tls = dir.join("contexts/tls").join(id).join("docker");
    let file = |name: &str| Some(tls.join(name)).filter(|path| present(path));
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    (ca.is_some() || cert.is_some() || key.is_some() || skip_verify).then_some(Tls {
        verify: !skip_verify,
        ca,
        cert,
        key,
    })
}

/// A TLS file is there when its name is, even as a dangling link: reading it
/// then fails with its name, rather than falling back to the system's roots
/// or to no client certificate in silence.
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
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
    fn ssh_and_tls_contexts_are_reached_as_docker_reaches_them() {
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
        let remote = ask("remote").unwrap();
        assert_eq!(remote.host.to_string(), "ssh://me@box");
        assert_eq!(remote.tls, None);
        // Without TLS material, a tcp:// context is plain HTTP.
        assert_eq!(ask("tls").unwrap().tls, None);
        let tls = dir
            .path()
            .join("contexts/tls")
            .join(context_id("tls"))
            .join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "x").unwrap();
        assert_eq!(
            ask("tls").unwrap().tls,
            Some(Tls {
                verify: true,
                ca: Some(tls.join("ca.pem")),
                cert: None,
                key: None,
            })
        );
        // A dangling ca.pem is still named, so that reading it fails with
        // its name instead of falling back to the system's roots (safety
        // round 2, finding 11).
        std::fs::remove_file(tls.join("ca.pem")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/ca.pem", tls.join("ca.pem")).unwrap();
        let endpoint = ask("tls").unwrap();
        assert_eq!(
            endpoint.tls.as_ref().and_then(|tls| tls.ca.clone()),
            Some(tls.join("ca.pem"))
        );
        let err = endpoint.tls.unwrap().client_config().unwrap_err();
        assert!(err.0.contains("ca.pem"), "{}", err.0);
    }

    #[test]
    fn tls_options_follow_the_docker_cli() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let ask = |host: &str, tls: TlsOptions| {
            resolve(&Request {
                host: Some(host.into()),
                tls,
                ..request(&dir)
            })
        };
        // Off unless asked for: never TLS by guess, never plain once asked.
        assert_eq!(ask("tcp://box", TlsOptions::default()).unwrap().tls, None);
        assert_eq!(
            ask("tcp://box", TlsOptions::default())
                .unwrap()
                .host
                .to_string(),
            "tcp://box:2375"
        );
        let verify = TlsOptions {
            verify: true,
            ..TlsOptions::default()
        };
        let endpoint = ask("tcp://box", verify.clone()).unwrap();
        assert_eq!(endpoint.host.to_string(), "tcp://box:2376");
        // The default files are those in the cert path (here the docker
        // config directory) that exist.
        assert_eq!(
            endpoint.tls,
            Some(Tls {
                verify: true,
                ca: Some(dir.path().join("ca.pem")),
                cert: None,
                key: None,
            })
        );
        let insecure = TlsOptions {
            tls: true,
            cert_path: Some("/elsewhere".into()),
            ..TlsOptions::default()
        };
        assert_eq!(
            ask("tcp://box:9999", insecure).unwrap().tls,
            Some(Tls {
                verify: false,
                ca: None,
                cert: None,
                key: None,
            })
        );
        // A unix socket takes no TLS, as with docker.
        assert_eq!(ask("unix:///run/docker.sock", verify).unwrap().tls, None);
    }
}
