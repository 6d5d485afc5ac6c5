//! Reaching the engine the way docker does: TLS (flags, environment, a
//! context) and `ssh://` through a private sshd. Each test has a daemon of its
//! own, listening where the test says.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::support::{Daemon, Result, context_store, free_port, reclaim_command};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        tls_by_flags_environment_and_context,
        ssh_through_a_private_sshd,
        podman_compatible_api,
    ]
}

fn run(command: &mut Command, what: &str) -> Result<Output> {
    command.output().map_err(|e| format!("{what}: {e}"))
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let output = run(
        Command::new("openssl").current_dir(dir).args(args),
        "openssl",
    )?;
    check!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate signed
/// by it (as `ca.pem`, `server-cert.pem`/`server-key.pem`, `cert.pem`/`key.pem`),
/// and another CA (`other-ca.pem`) that signed nothing here.
fn certificates(dir: &Path) -> Result<()> {
    for (key, cert, name) in [
        ("ca-key.pem", "ca.pem", "/CN=docker-reclaim test CA"),
        ("other-ca-key.pem", "other-ca.pem", "/CN=another CA"),
    ] {
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                "-days", "2", "-subj", name,
            ],
        )?;
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .map_err(|e| e.to_string())?;
    for (key, csr, cert, name, ext) in [
        (
            "server-key.pem",
            "server.csr",
            "server-cert.pem",
            "/CN=127.0.0.1",
            "server.ext",
        ),
        (
            "key.pem",
            "client.csr",
            "cert.pem",
            "/CN=client",
            "client.ext",
        ),
    ] {
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", name,
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                cert,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        )?;
    }
    Ok(())
}

fn plan_of(output: &Output, what: &str) -> Result<Value> {
    check!(
        output.status.success(),
        "{what}: exit {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).map_err(|e| format!("{what}: not JSON: {e}"))
}

/// A dockerd that speaks only TLS on 127.0.0.1 and wants a client certificate
/// from its CA (`--tlsverify`), reached with `--tlsverify` and the files as
/// flags, with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`, and through a
/// context holding the TLS material; a CA that did not sign the server's
/// certificate is refused in one line, and so is plain HTTP to the TLS port.
fn tls_by_flags_environment_and_context() -> Result<()> {
    let certs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = certs.path();
    certificates(dir)?;
    let port = free_port()?;
    let address = format!("tcp://127.0.0.1:{port}");
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let d = Daemon::start_with(&[
        "--tlsverify",
        "--tlscacert",
        &file("ca.pem"),
        "--tlscert",
        &file("server-cert.pem"),
        "--tlskey",
        &file("server-key.pem"),
        "--host",
        &address,
    ])?;
    let data_root = d.data_root.to_string_lossy().into_owned();
    let engine_is = |plan: &Value, what: &str| -> Result<()> {
        check!(
            plan["engine"]["data_root"] == data_root.as_str(),
            "{what}: another engine: {}",
            plan["engine"]
        );
        // Over TCP, the disk is the engine's to report, not ours to walk.
        check!(
            plan["totals"]["unmeasured"]["reason"] == "remote",
            "{what}: {}",
            plan["totals"]
        );
        Ok(())
    };

    let flags = run(
        reclaim_command().args([
            "--dry-run",
            "--format",
            "json",
            "-H",
            &address,
            "--tlsverify",
            "--tlscacert",
            &file("ca.pem"),
            "--tlscert",
            &file("cert.pem"),
            "--tlskey",
            &file("key.pem"),
        ]),
        "flags",
    )?;
    engine_is(&plan_of(&flags, "flags")?, "flags")?;

    let env = run(
        reclaim_command()
            .args(["--dry-run", "--format", "json"])
            .env("DOCKER_HOST", &address)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", dir),
        "environment",
    )?;
    engine_is(&plan_of(&env, "environment")?, "environment")?;

    let store = context_store("secure", &address, None, Some(dir))?;
    let context = run(
        reclaim_command().env("DOCKER_CONFIG", store.path()).args([
            "--dry-run",
            "--format",
            "json",
            "--context",
            "secure",
        ]),
        "context",
    )?;
    let plan = plan_of(&context, "context")?;
    engine_is(&plan, "context")?;
    check!(plan["engine"]["context"] == "secure", "{}", plan["engine"]);

    // A certificate from another CA: one line naming the host and the reason.
    let other = run(
        reclaim_command().args([
            "--dry-run",
            "-H",
            &address,
            "--tlsverify",
            "--tlscacert",
            &file("other-ca.pem"),
            "--tlscert",
            &file("cert.pem"),
            "--tlskey",
            &file("key.pem"),
        ]),
        "another CA",
    )?;
    let stderr = String::from_utf8_lossy(&other.stderr);
    check!(
        other.status.code() == Some(3)
            && stderr.trim().lines().count() == 1
            && stderr.contains(&address)
            && stderr.contains("certificate"),
        "another CA: exit {}: {stderr}",
        other.status
    );
    // Without TLS, the TLS port does not answer the API: refused, never a
    // plan made some other way.
    let plain = run(
        reclaim_command().args(["--dry-run", "-H", &address]),
        "plain",
    )?;
    check!(
        !plain.status.success() && plain.stdout.is_empty(),
        "plain HTTP to the TLS port: exit {}: {}",
        plain.status,
        String::from_utf8_lossy(&plain.stderr)
    );
    // No client certificate: the engine's bad_certificate alert, explained.
    let anonymous = run(
        reclaim_command().args([
            "--dry-run",
            "-H",
            &address,
            "--tlsverify",
            "--tlscacert",
            &file("ca.pem"),
        ]),
        "no client certificate",
    )?;
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    check!(
        anonymous.status.code() == Some(3) && stderr.contains("--tlscert and --tlskey"),
        "no client certificate: exit {}: {stderr}",
        anonymous.status
    );
    // Half a key pair is refused, not dropped (safety round 2, finding 11).
    let half = run(
        reclaim_command().args([
            "--dry-run",
            "-H",
            &address,
            "--tlsverify",
            "--tlscacert",
            &file("ca.pem"),
            "--tlscert",
            &file("cert.pem"),
        ]),
        "a certificate without its key",
    )?;
    let stderr = String::from_utf8_lossy(&half.stderr);
    check!(
        half.status.code() == Some(2) && stderr.contains("has no key"),
        "a certificate without its key: exit {}: {stderr}",
        half.status
    );
    // Endless or blocking files as TLS material: refused at once (finding 2).
    let fifo = dir.join("fifo.pem");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map_err(|e| e.to_string())?;
    check!(made.success(), "mkfifo failed");
    for (flag, path) in [
        ("--tlscacert", "/dev/zero".to_string()),
        ("--tlscacert", fifo.to_string_lossy().into_owned()),
        ("--tlskey", "/dev/urandom".to_string()),
    ] {
        let started = std::time::Instant::now();
        let mut args: Vec<String> = ["--dry-run", "-H", &address, "--tlsverify"]
            .map(String::from)
            .to_vec();
        for (name, given) in [
            ("--tlscacert", "ca.pem"),
            ("--tlscert", "cert.pem"),
            ("--tlskey", "key.pem"),
        ] {
            args.push(name.to_string());
            args.push(if name == flag {
                path.clone()
            } else {
                file(given)
            });
        }
        let output = run(reclaim_command().args(&args), flag)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        check!(
            output.status.code() == Some(2)
                && stderr.contains("not a regular file")
                && started.elapsed() < std::time::Duration::from_secs(10),
            "{flag} {path}: exit {} after {:?}: {stderr}",
            output.status,
            started.elapsed()
        );
    }
    Ok(())
}

/// A private sshd on 127.0.0.1 with its own host key and one authorized key,
/// stopped (by its pid) when dropped; and an `ssh` on a PATH of its own that
/// uses that key and knows that host key, as an operator's ssh config would.
pub(crate) struct Sshd {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
    pid: Option<u32>,
}

impl Sshd {
    pub(crate) fn start() -> Result<Sshd> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path();
        for key in ["host_key", "id"] {
            let output = run(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(path.join(key)),
                "ssh-keygen",
            )?;
            check!(output.status.success(), "ssh-keygen: {output:?}");
        }
        let read = |name: &str| std::fs::read_to_string(path.join(name)).map_err(|e| e.to_string());
        std::fs::write(path.join("authorized_keys"), read("id.pub")?).map_err(|e| e.to_string())?;
        let port = free_port()?;
        std::fs::write(
            path.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}", read("host_key.pub")?),
        )
        .map_err(|e| e.to_string())?;
        let p = |name: &str| path.join(name).to_string_lossy().into_owned();
        std::fs::write(
            path.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\n",
                p("host_key"),
                p("authorized_keys"),
                p("sshd.pid")
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            path.join("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                p("id"),
                p("known_hosts")
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(path.join("bin")).map_err(|e| e.to_string())?;
        let wrapper = path.join("bin/ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                p("ssh_config")
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        // sshd wants its privilege separation directory, which its package's
        // service makes; nothing else of the system's sshd is used.
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(path.join("sshd_config"))
            .arg("-E")
            .arg(path.join("sshd.log"))
            .spawn()
            .map_err(|e| format!("starting sshd: {e}"))?;
        let mut sshd = Sshd {
            dir,
            port,
            pid: Some(child.id()),
        };
        // Ready when it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(sshd);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        sshd.stop();
        Err(format!("sshd did not start: {}", sshd.log()))
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// PATH with our `ssh` first.
    pub(crate) fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ssh://root@127.0.0.1:PORT/<the daemon's socket>`: the system's ssh runs
/// `docker --host unix://… system dial-stdio` on the far side and the plan
/// and the apply go through it; the far host's disk is not walked from here.
fn ssh_through_a_private_sshd() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let stopped = d.docker(&["create", "--network", "none", "base", "true"])?;
    let sshd = Sshd::start()?;
    let socket = d.host().trim_start_matches("unix://").to_string();
    let host = format!("ssh://root@127.0.0.1:{}{socket}", sshd.port);
    let output = run(
        reclaim_command().env("PATH", sshd.path()).args([
            "--dry-run",
            "--format",
            "json",
            "-H",
            &host,
        ]),
        "dry run over ssh",
    )?;
    let plan = plan_of(&output, "dry run over ssh")
        .map_err(|e| format!("{e}\nsshd log:\n{}", sshd.log()))?;
    check!(
        plan["engine"]["data_root"] == d.data_root.to_string_lossy().as_ref(),
        "another engine: {}",
        plan["engine"]
    );
    check!(
        plan["engine"]["host"] == host.as_str(),
        "host: {}",
        plan["engine"]["host"]
    );
    check!(
        plan["totals"]["unmeasured"]["reason"] == "remote",
        "the far host's disk was measured from here: {}",
        plan["totals"]
    );
    let planned: Vec<&str> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str())
        .collect();
    check!(planned == [stopped.as_str()], "planned {planned:?}");
    let apply = run(
        reclaim_command()
            .env("PATH", sshd.path())
            .args(["--yes", "-H", &host]),
        "apply over ssh",
    )?;
    check!(
        apply.status.success(),
        "apply over ssh: {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    check!(
        !d.all_containers()?.contains(&stopped),
        "the stopped container survived an apply over ssh"
    );
    // A socket path that a shell would run (safety round 2, finding 3).
    let marker = sshd.dir.path().join("PWNED");
    for injected in [
        format!("{socket}$(touch {})", marker.display()),
        format!("{socket};touch {}", marker.display()),
    ] {
        let host = format!("ssh://root@127.0.0.1:{}{injected}", sshd.port);
        let output = run(
            reclaim_command()
                .env("PATH", sshd.path())
                .args(["--dry-run", "-H", &host]),
            "injection over ssh",
        )?;
        check!(
            !marker.exists() && !output.status.success() && output.stdout.is_empty(),
            "{injected}: exit {}, marker made: {}: {}",
            output.status,
            marker.exists(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Podman on a private `--root`/`--runroot`, serving its Docker-compatible API
/// on a private socket (`podman system service`); stopped by its pid.
struct Podman {
    dir: tempfile::TempDir,
    service: Option<std::process::Child>,
}

impl Podman {
    fn start() -> Result<Podman> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut podman = Podman { dir, service: None };
        let socket = podman.socket();
        let child = podman
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting podman system service: {e}"))?;
        podman.service = Some(child);
        for _ in 0..100 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(podman);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err("podman system service did not listen".into())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `podman` on this instance's storage, with nothing from the system's.
    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            // Its lock and events files, and runc's state, with the rest: by
            // default they go to /run/libpod and /run/runc, and stay there.
            .arg("--tmpdir")
            .arg(self.dir.path().join("tmp"))
            .arg("--runtime-flag")
            .arg(format!("root={}", self.dir.path().join("runc").display()))
            .args([
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .env("CONTAINERS_CONF", "/dev/null")
            .env("CONTAINERS_REGISTRIES_CONF", "/dev/null");
        command
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let output = run(self.command().args(args), "podman")?;
        check!(
            output.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Imports a busybox root filesystem (plus `extra`, to make it differ) as `tag`.
    fn import(&self, tag: &str, extra: &str) -> Result<String> {
        let rootfs = self.dir.path().join(format!("rootfs-{extra}"));
        std::fs::create_dir_all(rootfs.join("bin")).map_err(|e| e.to_string())?;
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).map_err(|e| e.to_string())?;
        std::fs::write(rootfs.join("version"), extra).map_err(|e| e.to_string())?;
        let tar = self.dir.path().join(format!("rootfs-{extra}.tar"));
        let output = run(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
            "tar",
        )?;
        check!(output.status.success(), "tar: {output:?}");
        let id = self.run(&["import", &tar.to_string_lossy(), tag])?;
        Ok(id.lines().last().unwrap_or_default().to_string())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Podman's Docker-compatible API: the header names Podman and its version;
/// a created container and a dangling image are planned, with the image's
/// real reference; applying removes them; `--all` then removes the tagged
/// image by its tags and ID; what Podman does not list (build cache) is a
/// note, not a wrong plan.
fn podman_compatible_api() -> Result<()> {
    let podman = Podman::start()?;
    let old = podman.import("localhost/pbase:1", "one")?;
    let current = podman.import("localhost/pbase:1", "two")?;
    check!(old != current, "the two imports are one image");
    let created = podman.run(&[
        "create",
        "--network",
        "none",
        "localhost/pbase:1",
        "/bin/busybox",
        "true",
    ])?;
    let host = podman.host();

    let dry = run(
        reclaim_command().args(["--dry-run", "--format", "json", "-H", &host]),
        "dry run",
    )?;
    let plan = plan_of(&dry, "dry run")?;
    check!(plan["engine"]["product"] == "podman", "{}", plan["engine"]);
    let planned: Vec<(String, String, String)> = plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            (
                item["kind"].as_str().unwrap_or_default().to_string(),
                item["id"].as_str().unwrap_or_default().to_string(),
                item["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want = |kind: &str, id: &str, reason: &str| {
        planned.iter().any(|(k, i, r)| {
            k == kind && i.ends_with(id.trim_start_matches("sha256:")) && r == reason
        })
    };
    check!(
        planned.len() == 2
            && want("container", &created, "never_started")
            && want("image", &old, "dangling"),
        "planned {planned:?}; expected container {created} and dangling image {old}"
    );
    let human = run(
        reclaim_command().args(["--dry-run", "--all", "--build-cache", "-H", &host]),
        "human dry run",
    )?;
    let text = String::from_utf8_lossy(&human.stdout);
    check!(
        text.starts_with("Podman 4") && text.contains("localhost/pbase:1"),
        "header or names:\n{text}"
    );
    check!(
        text.contains("lists no build cache (so --build-cache plans nothing)"),
        "no note on the build cache:\n{text}"
    );

    let apply = run(reclaim_command().args(["--yes", "-H", &host]), "apply")?;
    check!(
        apply.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let images = podman.run(&["images", "-a", "-q", "--no-trunc"])?;
    check!(
        !images.contains(old.trim_start_matches("sha256:"))
            && images.contains(current.trim_start_matches("sha256:")),
        "images after the apply: {images}"
    );
    check!(
        podman.run(&["ps", "-a", "-q"])?.is_empty(),
        "the created container survived"
    );
    // A second tag, then --all: the image goes, tag by tag, then by ID.
    podman.run(&["tag", "localhost/pbase:1", "localhost/other:2"])?;
    let all = run(
        reclaim_command().args(["--yes", "--all", "-H", &host]),
        "apply --all",
    )?;
    check!(
        all.status.success(),
        "apply --all: {}",
        String::from_utf8_lossy(&all.stderr)
    );
    check!(
        podman.run(&["images", "-a", "-q"])?.is_empty(),
        "images left after --all: {}\n{}",
        podman.run(&["images", "-a"])?,
        String::from_utf8_lossy(&all.stdout)
    );
    Ok(())
}
