//! `--metrics-file` on a real dockerd: the file passes `promtool check
//! metrics` and is read back through a real prometheus-node-exporter's
//! textfile collector on 127.0.0.1, with the run's figures; an engine that
//! cannot be reached is a file with `engine_up 0` and exit code 3.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::check;
use crate::support::{Daemon, Result};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![metrics_pass_promtool_and_are_scraped_through_node_exporter]
}

fn tool(name: &str) -> Result<String> {
    let path = format!("/usr/bin/{name}");
    check!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: scripts/test.sh installs prometheus and prometheus-node-exporter"
    );
    Ok(path)
}

fn promtool_check(file: &std::path::Path) -> Result<()> {
    let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut child = Command::new(tool("promtool")?)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(&body)
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    check!(
        output.status.success(),
        "promtool check metrics: {}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// GET /metrics from `node_exporter` on 127.0.0.1:`port`, retried while it starts.
pub(crate) fn scrape(port: u16) -> Result<String> {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut answer = String::new();
            stream
                .read_to_string(&mut answer)
                .map_err(|e| e.to_string())?;
            return Ok(answer);
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("node_exporter never answered on 127.0.0.1".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metrics_pass_promtool_and_are_scraped_through_node_exporter() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    for n in 0..3 {
        d.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            &format!("m{n}"),
            "base",
            "true",
        ])?;
    }
    let textfiles = d.dir().join("textfiles");
    std::fs::create_dir_all(&textfiles).map_err(|e| e.to_string())?;
    let file = textfiles.join("docker_reclaim.prom");
    let applied = d.reclaim(&["--yes", "--metrics-file", file.to_str().ok_or("path")?]);
    check!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    promtool_check(&file)?;

    let port = crate::support::free_port()?;
    let mut exporter = Command::new(tool("prometheus-node-exporter")?)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.display()
        ))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("prometheus-node-exporter: {e}"))?;
    let scraped = scrape(port);
    let _ = exporter.kill();
    let _ = exporter.wait();
    let scraped = scraped?;
    for line in [
        "docker_reclaim_last_run_items{kind=\"container\",outcome=\"removed\"} 3",
        "docker_reclaim_last_run_items{kind=\"container\",outcome=\"planned\"} 3",
        "docker_reclaim_last_run_exit_code 0",
        "docker_reclaim_engine_up 1",
    ] {
        check!(
            scraped.lines().any(|have| have == line),
            "{line} not scraped:\n{scraped}"
        );
    }
    check!(
        scraped.contains("docker_reclaim_filesystem_free_bytes ")
            && scraped.contains("docker_reclaim_last_run_freed_bytes "),
        "no filesystem or freed figures:\n{scraped}"
    );

    // An engine that is not there: the file says so, with exit code 3.
    let gone = crate::support::reclaim_command()
        .args([
            "-H",
            "unix:///nonexistent/docker.sock",
            "--yes",
            "--metrics-file",
        ])
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    check!(
        gone.status.code() == Some(3),
        "exit {:?}",
        gone.status.code()
    );
    promtool_check(&file)?;
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    check!(
        text.lines().any(|l| l == "docker_reclaim_engine_up 0.0")
            && text
                .lines()
                .any(|l| l == "docker_reclaim_last_run_exit_code 3.0"),
        "{text}"
    );
    Ok(())
}
