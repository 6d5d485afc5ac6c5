#!/usr/bin/env bash
# The whole test suite, on a fresh Debian or Ubuntu machine: installs what the
# integration tests need (Debian's docker.io for dockerd, busybox-static for the
# fixture images) when it is missing, then runs rustfmt, clippy and every test.
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
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
DOCKER_RECLAIM_ENGINE_TESTS=1 cargo test --all-targets --locked
