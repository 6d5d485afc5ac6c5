#!/usr/bin/env bash
# Fetches the engines of the test matrix that the system does not have, into a
# cache, without touching the system's apt state: Debian trixie's docker.io
# (Docker 26.1) and containerd, unpacked with dpkg -x. Prints the directory
# that holds usr/bin and usr/sbin.
#
# How: a private sources list naming the machine's own Debian mirror with suite
# trixie, private Dir::State::Lists and Dir::Cache, `apt-get update` and
# `apt-get download` with those options. trixie is never added to the system's
# sources and its packages are never installed. bookworm's runc is used (trixie's
# needs glibc 2.38).
#
# Usage: bash scripts/engines.sh [CACHE_DIR]   (default /var/cache/docker-reclaim-engines)
set -euo pipefail

cache=${1:-${DOCKER_RECLAIM_ENGINE_CACHE:-/var/cache/docker-reclaim-engines}}
root="$cache/trixie"
if [ -x "$root/usr/sbin/dockerd" ] && [ -x "$root/usr/bin/containerd" ]; then
  echo "$root"
  exit 0
fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
  echo "scripts/engines.sh: cannot find this machine's Debian mirror in /etc/apt" >&2
  exit 1
fi

apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs" "$root"
cat > "$apt_dir/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main
EOF
opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir"
  -o "Dir::Cache::archives=$apt_dir/archives"
  -o "APT::Get::List-Cleanup=0"
)
apt-get "${opts[@]}" update -qq >&2
(cd "$apt_dir/debs" && apt-get "${opts[@]}" download docker.io containerd >&2)
for deb in "$apt_dir"/debs/*.deb; do
  dpkg -x "$deb" "$root"
done
if [ ! -x "$root/usr/sbin/dockerd" ]; then
  echo "scripts/engines.sh: no dockerd in the trixie docker.io package" >&2
  exit 1
fi
echo "$root"
