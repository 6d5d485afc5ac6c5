#!/usr/bin/env bash
# Benchmarks for docker-reclaim on a private dockerd (never the system one).
#
#   bash bench/bench.sh apply [N]    wall time of `docker-reclaim --yes` against
#                                    `docker system prune -f` on the same fixture of
#                                    N stopped containers (default 1000), a fresh
#                                    fixture for each, and the sets each removed.
#
# Needs root, Debian's docker.io and busybox-static (scripts/test.sh installs them).
# Prints one line per measurement; numbers, not impressions.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-apply}
count=${2:-1000}
docker=/usr/bin/docker
[ -x "$docker" ] || docker=docker

cargo build --release --locked -q
reclaim=$PWD/target/release/docker-reclaim

work=$(mktemp -d /tmp/dr-bench-XXXXXX)
pid=
stop_daemon() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  pid=
}
cleanup() {
  stop_daemon
  rm -rf "$work"
}
trap cleanup EXIT

start_daemon() {
  local dir=$1
  mkdir -p "$dir"
  dockerd --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    --host "unix://$dir/docker.sock" --bridge=none --iptables=false --ip-masq=false \
    --ip6tables=false --storage-driver=overlay2 >"$dir/dockerd.log" 2>&1 &
  pid=$!
  export DOCKER_HOST="unix://$dir/docker.sock" DOCKER_BUILDKIT=0 DOCKER_CONFIG="$dir/cli"
  for _ in $(seq 1 300); do
    "$docker" version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "dockerd did not start; see $dir/dockerd.log" >&2
  return 1
}

build_base() {
  local ctx=$work/ctx-base
  mkdir -p "$ctx"
  cp /bin/busybox "$ctx/"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$ctx/Dockerfile"
  "$docker" build -q -t bench/base "$ctx" >/dev/null
}

# N stopped containers: one in ten ran and wrote 64 KiB, the rest were created
# and never started; plus three dangling images and one running container.
make_fixture() {
  local n=$1
  build_base
  for v in 1 2 3 4; do
    local ctx=$work/ctx-app-$v
    mkdir -p "$ctx"
    printf 'FROM bench/base\nRUN dd if=/dev/zero of=/blob bs=1024 count=%d 2>/dev/null\n' $((v * 100)) >"$ctx/Dockerfile"
    "$docker" build -q --network none -t bench/app "$ctx" >/dev/null
  done
  "$docker" run -d --network none --name bench-running bench/base sleep 100000 >/dev/null
  seq 1 "$n" | xargs -P 8 -I{} sh -c '
    if [ $(({} % 10)) -eq 0 ]; then
      '"$docker"' run --network none --name bench-{} bench/base sh -c "dd if=/dev/zero of=/w bs=1024 count=64 2>/dev/null" >/dev/null
    else
      '"$docker"' create --network none --name bench-{} bench/base true >/dev/null
    fi'
}

ids() { { "$docker" ps -aq --no-trunc; "$docker" images -aq --no-trunc; } | sort -u; }

now() { date +%s.%N; }

# One timed run of `$1` (reclaim or prune) on a fresh daemon and fixture; prints
# "seconds removed left".
timed_run() {
  local tool=$1 dir=$work/$1-$2
  start_daemon "$dir"
  make_fixture "$count"
  ids >"$dir.before"
  sync
  local t0 t1
  t0=$(now)
  if [ "$tool" = reclaim ]; then
    "$reclaim" --yes --format json >"$dir.report" 2>"$dir.stderr"
  else
    "$docker" system prune -f >"$dir.out"
  fi
  t1=$(now)
  ids >"$dir.after"
  stop_daemon
  echo "$(echo "$t1 - $t0" | bc) $(comm -23 "$dir.before" "$dir.after" | wc -l) $(wc -l <"$dir.after")"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bench_apply() {
  local rounds=${ROUNDS:-3}
  echo "fixture: $count stopped containers (1 in 10 exited after writing 64 KiB), 3 dangling images, 1 running container; $rounds rounds, alternating"
  : >"$work/reclaim.times"
  : >"$work/prune.times"
  for round in $(seq 1 "$rounds"); do
    for tool in reclaim prune; do
      read -r secs removed left < <(timed_run "$tool" "$round")
      echo "round $round $tool: ${secs}s, removed $removed objects, $left left"
      echo "$secs" >>"$work/$tool.times"
    done
  done
  local r p
  r=$(median <"$work/reclaim.times")
  p=$(median <"$work/prune.times")
  echo "median docker-reclaim --yes: ${r}s; median docker system prune -f: ${p}s; ratio $(echo "scale=3; $r / $p" | bc)"
}

case "$mode" in
  apply) bench_apply ;;
  *) echo "usage: bash bench/bench.sh apply [N]" >&2; exit 2 ;;
esac
