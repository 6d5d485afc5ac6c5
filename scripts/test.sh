#!/usr/bin/env bash
# The whole test suite, on a fresh Debian or Ubuntu machine: installs what the
# integration tests need (Debian's docker.io for dockerd, busybox-static for the
# fixture images) when it is missing, then runs rustfmt, clippy and every test.
# The engine tests run once per engine of the matrix: the system's Docker 20.10
# (overlay2), then Debian trixie's Docker 26.1 fetched into a cache by
# scripts/engines.sh, with overlay2 and with the containerd image store.
# The integration tests start their own private dockerd; they never touch
# /var/run/docker.sock. Run as root (dockerd needs it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root: the integration tests start their own dockerd" >&2
  exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
# The fixture images copy /bin/busybox into FROM scratch: it must be the static build.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
# ssh:// is tested through a private sshd (the system one is never used).
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Podman's Docker-compatible API is tested on a private --root and socket.
command -v podman >/dev/null 2>&1 || missing+=(podman)
# The fish and zsh completion scripts are tested in a real fish and zsh (bash
# is always there).
command -v fish >/dev/null 2>&1 || missing+=(fish)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
# The systemd units are checked by `systemd-analyze verify`.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# The metrics file is checked by promtool (Debian's prometheus package) and
# read back through a real node_exporter on 127.0.0.1.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/prometheus-node-exporter ] || missing+=(prometheus-node-exporter)
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Nothing left in /var/cache: the downloaded packages go.
  apt-get clean
fi

# What the engines and tools under test make in /run whatever their own
# directories, and leave: containerd's shims put their sockets in
# /run/containerd/s (a constant, containerd v1.6/v1.7
# runtime/v2/shim/util_unix.go `socketRoot = defaults.DefaultStateDir`;
# containerd#12444), sshd wants /run/sshd (its privilege separation
# directory, compiled in), systemd-analyze marks /run/systemd/systemd-units-load,
# libmount keeps /run/mount; Podman's go to the tests' own directories
# (--tmpdir, runc's --root). Those this run made are removed at the end if
# empty; nothing that was there before is touched.
made_dirs=()
for dir in /run/containerd/s /run/containerd /run/sshd /run/mount /run/runc /run/libpod; do
  [ -e "$dir" ] || made_dirs+=("$dir")
done
made_marker=
[ -e /run/systemd/systemd-units-load ] || made_marker=/run/systemd/systemd-units-load
tidy_run() {
  for dir in "${made_dirs[@]}"; do
    [ -d "$dir" ] && [ ! -L "$dir" ] && rmdir "$dir" 2>/dev/null || true
  done
  if [ -n "$made_marker" ] && [ -f "$made_marker" ] && [ ! -L "$made_marker" ] && [ ! -s "$made_marker" ]; then
    rm -f "$made_marker"
  fi
}
trap tidy_run EXIT

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
export DOCKER_RECLAIM_ENGINE_TESTS=1
# The Debian package, installed and purged by the engine tests (package.rs).
echo "== package"
DOCKER_RECLAIM_DEB="$PWD/$(bash scripts/package.sh)"
export DOCKER_RECLAIM_DEB
echo "== engine: system $(dockerd --version 2>/dev/null || /usr/sbin/dockerd --version), overlay2"
cargo test --all-targets --locked

engine=$(bash scripts/engines.sh)
version=$("$engine/usr/sbin/dockerd" --version)
echo "== engine: $version, overlay2"
DOCKER_RECLAIM_TEST_ENGINE="$engine" cargo test --locked --test engine
echo "== engine: $version, containerd image store"
DOCKER_RECLAIM_TEST_ENGINE="$engine" DOCKER_RECLAIM_TEST_STORE=containerd \
  cargo test --locked --test engine
