//! A private dockerd for the integration tests: its own data root, exec root,
//! pidfile and unix socket under a temp dir, no bridge, no iptables. It is
//! stopped by its pid when dropped, and killed by the kernel if the test process
//! dies first. Never the default daemon at /var/run/docker.sock.
//!
//! Which engine: the system's dockerd, or with `DOCKER_RECLAIM_TEST_ENGINE` the
//! one unpacked under that directory by `scripts/engines.sh` (its `usr/bin` and
//! `usr/sbin` go first on dockerd's PATH, for its containerd);
//! `DOCKER_RECLAIM_TEST_STORE=containerd` starts it with the containerd image
//! store instead of overlay2. Its own config file always, never /etc/docker's.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

pub(crate) type Result<T> = std::result::Result<T, String>;

/// How long dockerd may take to answer `/_ping` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long it may take to stop on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
    pub(crate) socket: PathBuf,
    pub(crate) data_root: PathBuf,
    /// The name of docker-reclaim's lock file for this engine (its ID and
    /// data root), removed with the daemon so that runs leave nothing in
    /// /run/docker-reclaim.
    lock_name: Option<String>,
    flavour: Flavour,
}

/// Which engine a private dockerd runs: the system's or one unpacked under
/// `root`, with overlay2 or the containerd image store.
#[derive(Debug, Clone)]
pub(crate) struct Flavour {
    pub(crate) root: Option<PathBuf>,
    pub(crate) containerd: bool,
}

impl Flavour {
    /// The one the environment names (see the module's documentation).
    pub(crate) fn from_env() -> Flavour {
        Flavour {
            root: engine_root(),
            containerd: containerd_store(),
        }
    }
}

/// The private dockerd's command line: everything under `dir`.
fn dockerd_command(
    dockerd: &Path,
    flavour: &Flavour,
    dir: &Path,
    socket: &Path,
    data_root: &Path,
) -> Result<Command> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .map_err(|e| format!("dockerd log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let config = dir.join("daemon.json");
    let containerd_store = flavour.containerd;
    let features = if containerd_store {
        r#"{"features":{"containerd-snapshotter":true}}"#
    } else {
        "{}"
    };
    std::fs::write(&config, features).map_err(|e| format!("daemon.json: {e}"))?;
    let mut command = Command::new(dockerd);
    if let Some(root) = &flavour.root {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![root.join("usr/bin"), root.join("usr/sbin")];
        dirs.extend(std::env::split_paths(&path));
        command.env(
            "PATH",
            std::env::join_paths(dirs).map_err(|e| e.to_string())?,
        );
    }
    command.arg("--config-file").arg(&config);
    if !containerd_store {
        command.arg("--storage-driver=overlay2");
    }
    command
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip6tables=false",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // If this process dies without dropping us, the kernel stops the daemon.
    // SAFETY: one prctl between fork and exec, async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
            Ok(())
        });
    }
    Ok(command)
}

impl Daemon {
    /// Starts a private dockerd and waits until it answers.
    pub(crate) fn start() -> Result<Daemon> {
        Daemon::start_with(&[])
    }

    /// Starts a private dockerd with `extra` arguments (`--group nogroup`, say).
    pub(crate) fn start_with(extra: &[&str]) -> Result<Daemon> {
        Daemon::start_with_env(extra, &[])
    }

    /// [`Daemon::start_with`], with `env` set for dockerd
    /// (`DOCKER_MIN_API_VERSION`, say).
    pub(crate) fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Result<Daemon> {
        Daemon::start_flavour(&Flavour::from_env(), extra, env)
    }

    /// A private dockerd of `flavour`, whatever the environment names.
    pub(crate) fn start_flavour(
        flavour: &Flavour,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon> {
        let dockerd = dockerd_binary(flavour.root.as_deref()).ok_or(
            "dockerd is not installed: run scripts/test.sh, which installs docker.io, or apt-get install docker.io",
        )?;
        // Short paths: a unix socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("dr-test-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let socket = dir.path().join("docker.sock");
        let data_root = dir.path().join("root");
        let mut command = dockerd_command(&dockerd, flavour, dir.path(), &socket, &data_root)?;
        command.args(extra);
        command.envs(env.iter().copied());
        let child = command
            .spawn()
            .map_err(|e| format!("starting dockerd: {e}"))?;
        let mut daemon = Daemon {
            dir,
            child,
            socket,
            data_root,
            lock_name: None,
            flavour: flavour.clone(),
        };
        daemon.wait_ready()?;
        daemon.lock_name = daemon
            .docker(&["info", "--format", "{{.ID}}"])
            .ok()
            .map(|id| {
                use sha2::Digest;
                let key = format!("{}\n{}", id.trim(), daemon.data_root.display());
                let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
                format!("{}.lock", &digest[..16])
            });
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "dockerd exited with {status} before answering:\n{}",
                    self.log_tail()
                ));
            }
            if ping(&self.socket) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "dockerd did not answer /_ping within {START_TIMEOUT:?}:\n{}",
            self.log_tail()
        ))
    }

    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's own API version, as (major, minor).
    pub(crate) fn api_version(&self) -> Result<(u32, u32)> {
        let text = self.docker(&["version", "--format", "{{.Server.APIVersion}}"])?;
        let (major, minor) = text
            .trim()
            .split_once('.')
            .ok_or_else(|| format!("API version {text:?}"))?;
        Ok((
            major
                .parse()
                .map_err(|e| format!("API version {text:?}: {e}"))?,
            minor
                .parse()
                .map_err(|e| format!("API version {text:?}: {e}"))?,
        ))
    }

    /// Where docker-reclaim keeps sizes between runs against this daemon.
    pub(crate) fn size_cache(&self) -> PathBuf {
        self.dir.path().join("size-cache")
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where docker-reclaim keeps last uses between runs against this daemon.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// docker-reclaim against this daemon with `-H`, its size cache and
    /// state directory, as a command to run or spawn.
    pub(crate) fn reclaim_cmd(&self, args: &[&str]) -> Command {
        let mut command = reclaim_command();
        command
            .env("DOCKER_RECLAIM_CACHE_DIR", self.size_cache())
            .env("DOCKER_RECLAIM_STATE_DIR", self.state_dir())
            .arg("-H")
            .arg(self.host())
            .args(args);
        command
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Runs the docker CLI against this daemon; fails on a non-zero exit.
    pub(crate) fn docker(&self, args: &[&str]) -> Result<String> {
        let output = self.docker_output(args)?;
        if !output.status.success() {
            return Err(format!(
                "docker {}: {}\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    pub(crate) fn docker_output(&self, args: &[&str]) -> Result<Output> {
        self.docker_output_with(args, "0")
    }

    /// Builds `dockerfile` (with busybox in its context) with BuildKit.
    pub(crate) fn buildkit_build(&self, tag: &str, dockerfile: &str) -> Result<String> {
        let context = self
            .dir
            .path()
            .join(format!("bk-{}", tag.replace([':', '/'], "-")));
        std::fs::create_dir_all(&context).map_err(|e| e.to_string())?;
        std::fs::write(context.join("Dockerfile"), dockerfile).map_err(|e| e.to_string())?;
        std::fs::copy("/bin/busybox", context.join("busybox")).map_err(|e| e.to_string())?;
        let context = context.to_string_lossy().into_owned();
        let mut output = self.docker_output_with(
            &["build", "-q", "--network", "none", "-t", tag, &context],
            "1",
        )?;
        // An engine bug, intermittent on the containerd image store: BuildKit
        // unpacks a cached layer whose parent snapshot containerd has just
        // collected (moby/buildkit#6521, containerd/containerd#10835; seen here
        // on 26.1 under a loaded CI machine). A rebuild works; our tool is not
        // involved yet.
        for _ in 0..3 {
            if output.status.success()
                || !String::from_utf8_lossy(&output.stderr)
                    .contains("failed to prepare extraction snapshot")
            {
                break;
            }
            output = self.docker_output_with(
                &["build", "-q", "--network", "none", "-t", tag, &context],
                "1",
            )?;
        }
        if !output.status.success() {
            return Err(format!(
                "BuildKit build of {tag}: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        self.image_id(tag)
    }

    fn docker_output_with(&self, args: &[&str], buildkit: &str) -> Result<Output> {
        Command::new(docker_cli())
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_BUILDKIT", buildkit)
            .env("DOCKER_CONFIG", self.dir.path().join("cli-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running docker: {e}"))
    }

    /// Runs docker-reclaim against this daemon with `-H`.
    pub(crate) fn reclaim(&self, args: &[&str]) -> Output {
        self.reclaim_cmd(args)
            .output()
            .expect("running docker-reclaim")
    }

    /// `docker-reclaim --dry-run --format json ARGS…` against this daemon, parsed;
    /// a non-zero exit is an error with the tool's stderr.
    pub(crate) fn dry_run_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["--dry-run", "--format", "json"];
        all.extend_from_slice(args);
        let output = self.reclaim(&all);
        if !output.status.success() {
            return Err(format!(
                "docker-reclaim {all:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
    }

    /// Builds a context directory with `files` and the Dockerfile, and tags the result.
    pub(crate) fn build(&self, tag: &str, dockerfile: &str) -> Result<String> {
        static CONTEXTS: AtomicUsize = AtomicUsize::new(0);
        let context = self
            .dir
            .path()
            .join(format!("ctx-{}", CONTEXTS.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&context).map_err(|e| e.to_string())?;
        std::fs::write(context.join("Dockerfile"), dockerfile).map_err(|e| e.to_string())?;
        if dockerfile.contains("COPY busybox") {
            std::fs::copy("/bin/busybox", context.join("busybox"))
                .map_err(|e| format!("copying /bin/busybox (install busybox-static): {e}"))?;
        }
        let context = context.to_string_lossy().into_owned();
        self.docker(&["build", "-q", "--network", "none", "-t", tag, &context])?;
        self.image_id(tag)
    }

    /// The base fixture: busybox on scratch, a few MB.
    pub(crate) fn build_base(&self, tag: &str) -> Result<String> {
        self.build(
            tag,
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n",
        )
    }

    /// An image on `base` that adds `kib` KiB of zeros and a distinguishing label.
    pub(crate) fn build_on(&self, base: &str, tag: &str, kib: u32, label: &str) -> Result<String> {
        self.build(
            tag,
            &format!(
                "FROM {base}\nLABEL fixture={label}\nRUN dd if=/dev/zero of=/blob-{label} bs=1024 count={kib} 2>/dev/null\n"
            ),
        )
    }

    pub(crate) fn image_id(&self, reference: &str) -> Result<String> {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", reference])
    }

    /// Every container ID, running or not.
    pub(crate) fn all_containers(&self) -> Result<Vec<String>> {
        let out = self.docker(&["ps", "-a", "-q", "--no-trunc"])?;
        let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
        ids.sort();
        Ok(ids)
    }

    /// Every image ID, intermediate ones included.
    pub(crate) fn all_images(&self) -> Result<Vec<String>> {
        let out = self.docker(&["images", "-a", "-q", "--no-trunc"])?;
        let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The daemon's process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon with SIGKILL, as a crash would, and the containerd it
    /// started, which would otherwise outlive it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|pid| pid.trim().parse::<i32>().ok())
        {
            if let Some(process) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(process, Signal::KILL);
            }
            let started = Instant::now();
            while started.elapsed() < STOP_TIMEOUT
                && std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts the daemon again on the same data root after [`Daemon::kill`],
    /// and waits until it answers.
    pub(crate) fn restart(&mut self) -> Result<()> {
        let dockerd =
            dockerd_binary(self.flavour.root.as_deref()).ok_or("dockerd is not installed")?;
        let _ = std::fs::remove_file(&self.socket);
        let mut command = dockerd_command(
            &dockerd,
            &self.flavour,
            self.dir.path(),
            &self.socket,
            &self.data_root,
        )?;
        self.child = command
            .spawn()
            .map_err(|e| format!("restarting dockerd: {e}"))?;
        self.wait_ready()
    }

    /// Stops the daemon by its pid: SIGTERM, then SIGKILL after a grace period.
    pub(crate) fn stop(&mut self) {
        self.remove_networks();
        if let Some(pid) = Pid::from_raw(self.child.id().cast_signed()) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// A user-defined network has a bridge on the host that outlives the daemon
    /// (and its deleted data root); after a few runs they take every default
    /// address pool and `docker network create` fails. Tear them down, with the
    /// containers on them, while this private daemon still runs.
    fn remove_networks(&self) {
        let Ok(networks) = self.docker(&["network", "ls", "-q", "--filter", "type=custom"]) else {
            return;
        };
        let networks: Vec<&str> = networks.split_whitespace().collect();
        if networks.is_empty() {
            return;
        }
        if let Ok(containers) = self.docker(&["ps", "-aq"]) {
            let mut args = vec!["rm", "-f"];
            args.extend(containers.split_whitespace());
            if args.len() > 2 {
                let _ = self.docker(&args);
            }
        }
        let mut args = vec!["network", "rm"];
        args.extend(networks);
        let _ = self.docker(&args);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        self.unmount_data_root();
        self.remove_lock_files();
    }
}

impl Daemon {
    /// docker-reclaim's lock files for this engine: root's, and the private
    /// ones of the users the tests run as.
    fn remove_lock_files(&self) {
        let Some(name) = &self.lock_name else {
            return;
        };
        for dir in [
            "/run/docker-reclaim",
            "/tmp/docker-reclaim-65534",
            "/tmp/docker-reclaim-0",
        ] {
            let path = Path::new(dir).join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_file()) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// dockerd bind-mounts its data root onto itself and undoes that when it
    /// shuts down; one that was killed (the hostile tests do) leaves the mount
    /// behind, and with it a directory the temp dir cannot remove. Detach it.
    fn unmount_data_root(&self) {
        let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let root = self.data_root.to_string_lossy();
        // mountinfo's fifth field is the mount point (spaces escaped; ours has none).
        let mounted = mounts
            .lines()
            .any(|line| line.split(' ').nth(4) == Some(root.as_ref()));
        if !mounted {
            return;
        }
        let _ = rustix::mount::unmount(root.as_ref(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// Adds context `name` for `host` to the docker CLI's store in `dir`;
/// returns the context's directory name there (the SHA-256 of its name).
pub(crate) fn add_context(dir: &Path, name: &str, host: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = dir.join("contexts/meta").join(&id);
    std::fs::create_dir_all(&meta).map_err(|e| e.to_string())?;
    let body = serde_json::json!({
        "Name": name,
        "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}
    });
    std::fs::write(meta.join("meta.json"), body.to_string()).map_err(|e| e.to_string())?;
    Ok(id)
}

/// A docker CLI config directory with one context, `name`, reaching `host`
/// (with the TLS material `ca.pem`, `cert.pem`, `key.pem` from `tls`, when
/// given), and `current` as its `currentContext`, when given.
pub(crate) fn context_store(
    name: &str,
    host: &str,
    current: Option<&str>,
    tls: Option<&Path>,
) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let id = add_context(dir.path(), name, host)?;
    if let Some(certs) = tls {
        let store = dir.path().join("contexts/tls").join(&id).join("docker");
        std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::copy(certs.join(file), store.join(file)).map_err(|e| e.to_string())?;
        }
    }
    let config = match current {
        Some(name) => serde_json::json!({"currentContext": name}),
        None => serde_json::json!({}),
    };
    std::fs::write(dir.path().join("config.json"), config.to_string())
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A port on 127.0.0.1 nothing listens on right now.
pub(crate) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}

/// The docker-reclaim binary under test, with no `DOCKER_HOST` from outside.
pub(crate) fn reclaim_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docker-reclaim"));
    command
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND")
        // No docker CLI config or contexts from this machine.
        .env("DOCKER_CONFIG", "/nonexistent/docker-reclaim-tests")
        .env_remove("DOCKER_RECLAIM_CONFIG")
        // No user config file: only what a test passes with --config counts.
        .env("XDG_CONFIG_HOME", "/nonexistent/docker-reclaim-tests")
        .env("NO_COLOR", "1")
        // No sizes kept between runs, unless a test asks (see Daemon::reclaim).
        .env("DOCKER_RECLAIM_CACHE_DIR", "")
        // Nor last uses (see Daemon::reclaim): nothing in /var/lib.
        .env("DOCKER_RECLAIM_STATE_DIR", "")
        .stdin(Stdio::null());
    command
}

/// Debian's docker.io CLI when present (it matches the daemon), else any on PATH.
fn docker_cli() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/docker");
    if debian.exists() {
        debian
    } else {
        which("docker").unwrap_or_else(|| PathBuf::from("docker"))
    }
}

/// The unpacked engine to test, when not the system's.
pub(crate) fn engine_root() -> Option<PathBuf> {
    std::env::var_os("DOCKER_RECLAIM_TEST_ENGINE")
        .filter(|root| !root.is_empty())
        .map(PathBuf::from)
}

/// Whether the engine runs with the containerd image store.
pub(crate) fn containerd_store() -> bool {
    std::env::var("DOCKER_RECLAIM_TEST_STORE").is_ok_and(|store| store == "containerd")
}

/// The dockerd binary of the engine under test.
fn dockerd_binary(root: Option<&Path>) -> Option<PathBuf> {
    match root {
        Some(root) => Some(root.join("usr/sbin/dockerd")).filter(|path| path.is_file()),
        None => which("dockerd"),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `du -s -x -B1` (allocated) or `du -s -x -b` (apparent) of a directory:
/// one filesystem, as docker-reclaim measures (a running container's root
/// mounted under the data root is not counted).
pub(crate) fn du(path: &Path, apparent: bool) -> Result<u64> {
    let flag = if apparent { "-b" } else { "-B1" };
    let output = Command::new("du")
        .args(["-s", "-x", flag])
        .arg(path)
        .output()
        .map_err(|e| format!("du: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("du gave {:?}", String::from_utf8_lossy(&output.stdout)))
}

/// A plain HTTP/1.0 GET of `path` on the daemon's socket: the raw answer.
pub(crate) fn raw_get(socket: &Path, path: &str) -> Result<String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    Ok(answer)
}

fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.ends_with("OK")
}

/// The `id`s of the objects in `value[field]` (a plan's `items` or `kept`), of
/// `kind` only when given.
pub(crate) fn ids_of(
    value: &serde_json::Value,
    field: &str,
    kind: Option<&str>,
) -> std::collections::BTreeSet<String> {
    value[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| kind.is_none_or(|kind| item["kind"] == kind))
        .filter_map(|item| item["id"].as_str().map(str::to_string))
        .collect()
}

/// Asserts a condition inside a test that returns `Result`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($msg)+));
        }
    };
}

/// The engine tests of a module, each named after its function the way `cargo
/// test` names tests (`apply::prompt_yes_removes_the_plan`), so that a name
/// cannot drift from the code it runs. `trials!(shared => a, b)` hands each
/// the shared daemon.
#[macro_export]
macro_rules! trials {
    ($shared:expr => $($test:ident),* $(,)?) => {
        vec![$({
            let shared = std::sync::Arc::clone(&$shared);
            libtest_mimic::Trial::test(
                $crate::support::trial_name(module_path!(), stringify!($test)),
                move || $test(&shared).map_err(libtest_mimic::Failed::from),
            )
        }),*]
    };
    ($($test:ident),* $(,)?) => {
        vec![$(
            libtest_mimic::Trial::test(
                $crate::support::trial_name(module_path!(), stringify!($test)),
                || $test().map_err(libtest_mimic::Failed::from),
            )
        ),*]
    };
}

/// `engine::apply` and `prompt_yes` → `apply::prompt_yes`: the test binary's
/// own name is left out, as `cargo test` does.
pub(crate) fn trial_name(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    }
}

/// A child process on a pseudo-terminal, for driving the prompt as a person would.
/// The pty is not made the child's controlling terminal, so closing our side is an
/// end of input for the child rather than a SIGHUP.
pub(crate) struct Pty {
    master: Option<std::fs::File>,
    child: Child,
    seen: Vec<u8>,
}

impl Pty {
    /// The child's process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn spawn(command: Command) -> Result<Pty> {
        Pty::spawn_with_stdout(command, None)
    }

    /// Spawns on a pty for stdin and stderr, with stdout to `stdout` when
    /// given (`docker-reclaim | tee plan.txt`, say).
    pub(crate) fn spawn_with_stdout(
        mut command: Command,
        stdout: Option<std::fs::File>,
    ) -> Result<Pty> {
        use rustix::fs::{Mode, OFlags};
        use rustix::pty::OpenptFlags;
        use std::os::fd::OwnedFd;
        let pty_error = |what: &str, err: rustix::io::Errno| format!("{what}: {err}");
        // Close-on-exec on both sides: the child gets the slave only as its
        // stdio, so it sees the hang-up when the master goes.
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .map_err(|e| pty_error("openpt", e))?;
        rustix::pty::grantpt(&master).map_err(|e| pty_error("grantpt", e))?;
        rustix::pty::unlockpt(&master).map_err(|e| pty_error("unlockpt", e))?;
        let name =
            rustix::pty::ptsname(&master, Vec::new()).map_err(|e| pty_error("ptsname", e))?;
        let slave: OwnedFd = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| pty_error("opening the pty", e))?;
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: 50,
                ws_col: 160,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .map_err(|e| pty_error("setting the pty's size", e))?;
        let clone = |fd: &OwnedFd| fd.try_clone().map_err(|e| e.to_string());
        let out = match stdout {
            Some(file) => Stdio::from(file),
            None => Stdio::from(clone(&slave)?),
        };
        command
            .stdin(Stdio::from(clone(&slave)?))
            .stdout(out)
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm");
        let child = command
            .spawn()
            .map_err(|e| format!("spawning on a pty: {e}"))?;
        // Our copies of the slave side go with the command.
        drop(command);
        Ok(Pty {
            master: Some(std::fs::File::from(master)),
            child,
            seen: Vec::new(),
        })
    }

    /// Reads what the child wrote for up to `wait`; false once the pty is closed.
    fn pump(&mut self, wait: Duration) -> bool {
        let Some(master) = self.master.as_mut() else {
            return false;
        };
        let timeout = rustix::time::Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let mut fds = [rustix::event::PollFd::new(
            &*master,
            rustix::event::PollFlags::IN,
        )];
        if !matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(1..)) {
            return true;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Waits until the child has written `needle`.
    pub(crate) fn expect(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.output().contains(needle) {
                return Ok(());
            }
            if !self.pump(Duration::from_millis(100)) {
                break;
            }
        }
        if self.output().contains(needle) {
            return Ok(());
        }
        Err(format!(
            "{needle:?} never appeared; the terminal shows:\n{}",
            self.output()
        ))
    }

    /// Types `bytes` at a prompt that is on screen. The pause lets the child put
    /// the terminal in raw mode first: typed earlier, a Ctrl-C would be taken by
    /// the line discipline instead of reaching the prompt.
    pub(crate) fn answer(&mut self, bytes: &[u8]) -> Result<()> {
        self.pump(Duration::from_millis(400));
        self.send(bytes)
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let master = self.master.as_mut().ok_or("the pty is closed")?;
        master.write_all(bytes).map_err(|e| e.to_string())?;
        master.flush().map_err(|e| e.to_string())
    }

    /// Closes our side: the child's next read is an end of input.
    pub(crate) fn hang_up(&mut self) {
        self.master = None;
    }

    /// Waits for the child to exit, reading its output meanwhile.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                for _ in 0..100 {
                    if !self.pump(Duration::from_millis(10)) {
                        break;
                    }
                }
                return Ok(status);
            }
            if !self.pump(Duration::from_millis(50)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        Err(format!(
            "still running after {timeout:?}:\n{}",
            self.output()
        ))
    }

    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A unix socket in front of a dockerd's that passes everything through and
/// remembers each request line (`GET /v1.41/containers/json?all=1`): how a
/// test sees which calls docker-reclaim makes. Stops with the test process.
pub(crate) struct CountingProxy {
    pub(crate) socket: PathBuf,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl CountingProxy {
    pub(crate) fn start(target: &Path) -> Result<CountingProxy> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("proxy.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).map_err(|e| e.to_string())?;
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&requests);
        let target = target.to_path_buf();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = UnixStream::connect(&target) else {
                    continue;
                };
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || pass_through(client, server, &seen));
            }
        });
        Ok(CountingProxy {
            socket,
            requests,
            _dir: dir,
        })
    }

    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The request lines seen so far, in order.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

/// Copies both ways; on the way in, each line that starts a request is kept.
fn pass_through(
    mut client: UnixStream,
    mut server: UnixStream,
    seen: &std::sync::Mutex<Vec<String>>,
) {
    let (Ok(mut back_from), Ok(mut back_to)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let answers = std::thread::spawn(move || {
        let _ = std::io::copy(&mut back_from, &mut back_to);
        let _ = back_to.shutdown(std::net::Shutdown::Write);
    });
    let mut buffer = vec![0u8; 65536];
    let mut line = Vec::new();
    loop {
        let n = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buffer[..n] {
            if byte == b'\n' {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                let method = ["GET ", "POST ", "DELETE ", "HEAD ", "PUT "]
                    .iter()
                    .any(|method| text.starts_with(method));
                if method
                    && text.ends_with(" HTTP/1.1")
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.push(text.trim_end_matches(" HTTP/1.1").to_string());
                }
                line.clear();
            } else if line.len() < 4096 {
                line.push(byte);
            }
        }
        if server.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
    let _ = answers.join();
}

/// Where root's docker-reclaim keeps its lock files.
const LOCK_DIR: &str = "/run/docker-reclaim";

/// The lock files there now.
pub(crate) fn lock_files() -> std::collections::BTreeSet<PathBuf> {
    std::fs::read_dir(LOCK_DIR)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "lock"))
        .collect()
}

/// Removes the lock files made since `before` that no process holds now (a
/// lock taken meanwhile stays).
pub(crate) fn remove_new_lock_files(before: &std::collections::BTreeSet<PathBuf>) {
    for path in lock_files().difference(before) {
        let Ok(file) = std::fs::File::open(path) else {
            continue;
        };
        if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file())
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(path);
        }
    }
}
