#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb from a release build: the binary,
# the man page, bash/zsh/fish completions, the commented config file (a
# conffile) and the systemd units. Prints the .deb's path.
#   bash scripts/package.sh            # target/debian/docker-reclaim_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
cargo build --release --locked --quiet
bin=target/release/docker-reclaim
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/docker-reclaim_${version}_${arch}"

install -D -m 0755 "$bin" "$root/usr/bin/docker-reclaim"
strip --strip-unneeded "$root/usr/bin/docker-reclaim"
install -d "$root/usr/share/man/man1"
"$bin" man | gzip -9n > "$root/usr/share/man/man1/docker-reclaim.1.gz"
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
"$bin" completions bash > "$root/usr/share/bash-completion/completions/docker-reclaim"
"$bin" completions zsh > "$root/usr/share/zsh/vendor-completions/_docker-reclaim"
"$bin" completions fish > "$root/usr/share/fish/vendor_completions.d/docker-reclaim.fish"
install -D -m 0644 packaging/config.toml "$root/etc/docker-reclaim/config.toml"
for unit in docker-reclaim.service docker-reclaim.timer docker-reclaim-watch.service; do
  install -D -m 0644 "systemd/$unit" "$root/lib/systemd/system/$unit"
done
install -d "$root/usr/share/doc/docker-reclaim"
gzip -9n < CHANGELOG.md > "$root/usr/share/doc/docker-reclaim/changelog.gz"
cat > "$root/usr/share/doc/docker-reclaim/copyright" <<'TEXT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: docker-reclaim
Files: *
Copyright: the docker-reclaim authors
License: see the project's repository
TEXT

install -d "$root/DEBIAN"
echo "/etc/docker-reclaim/config.toml" > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<TEXT
Package: docker-reclaim
Version: $version
Architecture: $arch
Maintainer: docker-reclaim developers <docker-reclaim@localhost>
Installed-Size: $size
Depends: libc6
Recommends: docker.io | docker-ce
Section: admin
Priority: optional
Description: safely reclaim disk space on Docker hosts
 Plans what goes (stopped containers, dangling or unused images, build cache,
 volumes, networks, rotated logs) with a reason and a predicted reclaim
 measured on disk, shows the plan, and removes exactly the plan, each item
 re-checked first. A maintenance policy (least recently used first, high and
 low marks, grace, build cache budget), a watch mode, systemd units and
 Prometheus metrics for fleets.
TEXT
# Units are installed, not enabled: `systemctl enable --now docker-reclaim.timer`
# (or docker-reclaim-watch.service) is the operator's choice.
cat > "$root/DEBIAN/postinst" <<'TEXT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
TEXT
cat > "$root/DEBIAN/postrm" <<'TEXT'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  # What docker-reclaim made for itself: last uses, size cache, audit logs.
  rm -rf /var/lib/docker-reclaim /var/cache/docker-reclaim /var/log/docker-reclaim
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
TEXT
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

mkdir -p target/debian
out="target/debian/docker-reclaim_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "$out"
