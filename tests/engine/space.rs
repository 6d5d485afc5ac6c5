//! `df` and `layers` on a real dockerd: layer sharing, the engine's layout,
//! orphaned overlay2 directories, container logs, and agreement with the dry run.

use libtest_mimic::Trial;
use serde_json::Value;

use crate::check;
use crate::support::{Daemon, Result};

pub(crate) fn trials() -> Vec<Trial> {
    crate::trials![
        layers_shows_the_shared_base,
        df_reports_layout_logs_orphans_and_agrees_with_the_plan,
    ]
}

fn json(output: std::process::Output) -> Result<Value> {
    check!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
}

fn layers_shows_the_shared_base() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    let web = d.build_on("base", "web:1", 300, "web")?;
    d.build_on("base", "api:1", 200, "api")?;
    let short = web.trim_start_matches("sha256:")[..12].to_string();
    let report = json(d.reclaim(&["layers", "web:1", "api:1", "--format", "json"]))?;
    let images = report["images"].as_array().ok_or("no images")?;
    check!(images.len() == 2, "{report}");
    for image in images {
        let layers = image["layers"].as_array().ok_or("no layers")?;
        check!(layers.len() == 3, "three layers expected: {image}");
        for base_layer in &layers[..2] {
            let shared: Vec<&str> = base_layer["shared_with"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            check!(
                shared.contains(&"base:latest"),
                "base layer not shared: {base_layer}"
            );
        }
        check!(
            layers[2]["shared_with"]
                .as_array()
                .is_some_and(Vec::is_empty),
            "top layer shared: {}",
            layers[2]
        );
        // On the containerd image store an image is also its blobs (manifest,
        // config, compressed layers): the base's layer blobs are shared.
        let blobs = image["blobs"].as_array().cloned().unwrap_or_default();
        let blob_bytes = |shared: bool| -> u64 {
            blobs
                .iter()
                .filter(|b| {
                    b["shared_with"]
                        .as_array()
                        .is_some_and(std::vec::Vec::is_empty)
                        != shared
                })
                .filter_map(|b| b["size_bytes"].as_u64())
                .sum()
        };
        if crate::support::containerd_store() {
            check!(
                blobs.iter().any(|b| b["shared_with"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|n| n == "base:latest"))),
                "no blob shared with the base: {image}"
            );
            check!(blob_bytes(false) > 0, "no blob of its own: {image}");
        } else {
            check!(blobs.is_empty(), "blobs on overlay2: {image}");
        }
        let top = layers[2]["size_bytes"].as_u64().unwrap_or(0);
        check!(
            image["unique_bytes"] == top + blob_bytes(false),
            "unique bytes {} vs top layer {top} and own blobs",
            image["unique_bytes"]
        );
        let base: u64 = layers[..2]
            .iter()
            .filter_map(|l| l["size_bytes"].as_u64())
            .sum();
        check!(
            image["shared_bytes"] == base + blob_bytes(true),
            "shared bytes {} vs base {base} and shared blobs",
            image["shared_bytes"]
        );
        check!(
            layers[2]["created_by"]
                .as_str()
                .is_some_and(|c| c.contains("dd if=/dev/zero")),
            "history command: {}",
            layers[2]
        );
    }
    // By short ID, human output.
    let output = d.reclaim(&["layers", &short]);
    check!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    check!(text.contains("web:1") && text.contains("unique"), "{text}");
    // An unknown image: one line, exit 2.
    let output = d.reclaim(&["layers", "nope:1"]);
    check!(
        output.status.code() == Some(2),
        "exit {:?}",
        output.status.code()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        stderr.lines().count() == 1 && stderr.contains("nope:1"),
        "{stderr}"
    );
    Ok(())
}

fn df_reports_layout_logs_orphans_and_agrees_with_the_plan() -> Result<()> {
    let d = Daemon::start()?;
    d.build_base("base:latest")?;
    d.build_on("base", "app:latest", 100, "v1")?;
    d.build_on("base", "app:latest", 100, "v2")?;
    // BuildKit's cache, rebuilt once (the first image dangles), and a volume
    // with data: the shapes a real host has besides classic builds.
    for n in 0..2 {
        d.buildkit_build(
            "bk:latest",
            &format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox dd if=/dev/zero of=/blob{n} bs=1k count=300\"]\n"
            ),
        )?;
    }
    d.docker(&["volume", "create", "data"])?;
    d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/data",
        "base",
        "sh",
        "-c",
        "dd if=/dev/zero of=/data/blob bs=1k count=500",
    ])?;
    // A container that logs about 2 MB.
    let noisy = d.docker(&[
        "run", "-d", "--network", "none", "--name", "noisy", "base", "sh", "-c",
        "i=0; while [ $i -lt 20000 ]; do echo 'a line of about a hundred bytes of log output, repeated to fill the json-file log'; i=$((i+1)); done",
    ])?;
    d.docker(&["wait", &noisy])?;
    d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "web",
        "base",
        "sleep",
        "1000",
    ])?;

    // A planted orphan, and a directory planted inside a real layer (not an
    // orphan): in overlay2/, or on the containerd image store a snapshot
    // directory its snapshotter has no record of.
    let containerd = crate::support::containerd_store();
    let (driver, orphan) = if containerd {
        let snapshots = d
            .data_root
            .join("containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots");
        let planted = snapshots.join("999999");
        std::fs::create_dir_all(planted.join("fs")).map_err(|e| e.to_string())?;
        std::fs::write(planted.join("fs/junk"), vec![0u8; 300_000]).map_err(|e| e.to_string())?;
        let real = std::fs::read_dir(&snapshots)
            .map_err(|e| e.to_string())?
            .filter_map(std::result::Result::ok)
            .find(|entry| entry.file_name() != "999999")
            .ok_or("no snapshot")?
            .path();
        std::fs::create_dir_all(real.join("planted-inside")).map_err(|e| e.to_string())?;
        (
            "overlayfs",
            "io.containerd.snapshotter.v1.overlayfs/snapshots/999999",
        )
    } else {
        let overlay = d.data_root.join("overlay2");
        let planted = overlay.join("0123456789planted-orphan");
        std::fs::create_dir_all(planted.join("diff")).map_err(|e| e.to_string())?;
        std::fs::write(planted.join("diff/junk"), vec![0u8; 300_000]).map_err(|e| e.to_string())?;
        let base_chain = std::fs::read_dir(d.data_root.join("image/overlay2/layerdb/sha256"))
            .map_err(|e| e.to_string())?
            .find_map(std::result::Result::ok)
            .ok_or("no layer")?
            .path();
        let cache_id =
            std::fs::read_to_string(base_chain.join("cache-id")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(overlay.join(cache_id.trim()).join("planted-inside"))
            .map_err(|e| e.to_string())?;
        ("overlay2", "0123456789planted-orphan")
    };

    let report = json(d.reclaim(&["df", "--format", "json"]))?;
    check!(
        report["engine"]["storage_driver"] == driver,
        "{}",
        report["engine"]
    );
    check!(
        report["engine"]["data_root"] == d.data_root.to_string_lossy().as_ref(),
        "{}",
        report["engine"]
    );
    let info = d.docker(&["info", "--format", "{{.DockerRootDir}} {{.Driver}}"])?;
    check!(
        info == format!("{} {driver}", d.data_root.display()),
        "docker info says {info}"
    );
    let orphans: Vec<&str> = report["usage"]["orphans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["name"].as_str())
        .collect();
    check!(orphans == vec![orphan], "orphans: {orphans:?}");
    let row = |kind: &str| {
        report["usage"]["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["kind"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let logs = row("container_logs");
    check!(
        logs["part_of"] == "containers",
        "logs are part of the containers row: {logs}"
    );
    check!(
        logs["size_bytes"].as_u64().is_some_and(|b| b > 1_500_000),
        "logs: {logs}"
    );
    check!(
        logs["reclaimable_bytes"]
            .as_u64()
            .is_some_and(|b| b > 1_500_000),
        "the stopped noisy container's logs are reclaimable: {logs}"
    );

    // Each byte in one row: the top-level rows add up to the data root
    // (within 1%: the build cache row is the engine's figure), each part row
    // to its parent, and the data root is what du says.
    let rows = report["usage"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let root = report["usage"]["data_root"]["allocated"]
        .as_u64()
        .ok_or("no data root")?;
    let top: u64 = rows
        .iter()
        .filter(|row| row["part_of"].is_null())
        .filter_map(|row| row["size_bytes"].as_u64())
        .sum();
    check!(
        top.abs_diff(root) * 100 <= root,
        "rows add up to {top}, data root {root}: {rows:?}"
    );
    for parent in ["containers", "images"] {
        let parts: u64 = rows
            .iter()
            .filter(|row| row["part_of"] == parent)
            .filter_map(|row| row["size_bytes"].as_u64())
            .sum();
        check!(
            Some(parts) == row(parent)["size_bytes"].as_u64(),
            "{parent}: parts {parts} vs {}",
            row(parent)
        );
    }
    let du = crate::support::du(&d.data_root, false)?;
    check!(du.abs_diff(root) * 100 <= du, "data root {root} vs du {du}");

    // df's reclaimable is the dry run's predicted total, its build cache the
    // dry run's CURRENT; before API 1.42 a dry run without the build cache
    // in scope does not list it (only /system/df would), and says so.
    let plan = json(d.reclaim(&["--dry-run", "--format", "json"]))?;
    let unlisted = plan["totals"]["build_cache_unlisted"] == true;
    check!(
        unlisted == (d.api_version()? < (1, 42)),
        "build cache unlisted {unlisted} on API {:?}",
        d.api_version()
    );
    let listed = plan["totals"]["by_kind"]["build_cache"]["current_bytes"].clone();
    check!(
        if unlisted {
            listed == 0
        } else {
            row("build_cache")["size_bytes"] == listed
        },
        "df build cache {} vs dry run {}",
        row("build_cache"),
        plan["totals"]["by_kind"]["build_cache"]
    );
    check!(
        report["usage"]["reclaimable_bytes"] == plan["totals"]["predicted_bytes"],
        "df {} vs dry run {}",
        report["usage"]["reclaimable_bytes"],
        plan["totals"]["predicted_bytes"]
    );
    check!(
        plan["totals"]["orphaned_overlay2"]["count"] == 1,
        "the dry run does not mention the orphan: {}",
        plan["totals"]
    );
    let text = d.reclaim(&["df", "-v"]);
    let text = String::from_utf8_lossy(&text.stdout);
    check!(
        text.contains(orphan) && text.contains("not by the engine"),
        "{text}"
    );
    Ok(())
}
