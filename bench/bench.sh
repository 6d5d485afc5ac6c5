#!/usr/bin/env bash
# Benchmarks for docker-reclaim on a private dockerd (never the system one).
#
#   bash bench/bench.sh apply [N]    wall time of `docker-reclaim --yes` against
#                                    `docker system prune -f` on the same fixture of
#                                    N stopped containers (default 1000), a fresh
#                                    fixture for each, and the sets each removed;
#                                    next to the engine's floor: the same objects
#                                    deleted with bare API calls (bench/api_floor.py).
#   bash bench/bench.sh predict [N…]  predicted reclaim against the measured drop of
#                                    the data root (du -s -B1 and du -sb) when exactly
#                                    the planned items are removed with the docker CLI,
#                                    next to `docker system df`'s RECLAIMABLE, on a
#                                    mixed fixture per N (default: 20 200).
#                                    APPLY_ARGS="--networks --build-cache" plans
#                                    with those flags and applies with
#                                    `docker-reclaim --yes` instead.
#   bash bench/bench.sh plantime [N] planning time (`--dry-run`, sizes measured on
#                                    disk) against `docker system df -v` on the
#                                    predict fixture with N containers (default 1000),
#                                    in three conditions: warm (page cache as left by
#                                    the previous run), cold (echo 3 >
#                                    /proc/sys/vm/drop_caches before each run) and busy
#                                    (one busy loop per core at normal priority,
#                                    bounded by `timeout`). CONDITIONS="warm cold busy"
#                                    picks some; "uncached" and "uncached-cold" run
#                                    without the layer sizes kept between runs (the
#                                    first run on a host). Each condition also
#                                    prints docker-reclaim's peak RSS
#                                    (/usr/bin/time %M). FIXTURE=stopped uses the
#                                    apply fixture instead (one in ten containers
#                                    ran, the rest created: 11000 gives the
#                                    10,000 created and 1,000 exited of #20).
#   bash bench/bench.sh floor [N]    why deleting cannot go faster: the engine's
#                                    floor (bare DELETE by ID, bench/api_floor.py) at
#                                    1 and 16 connections, with the data root on this
#                                    machine's disk and on a tmpfs (no journal, no
#                                    discard), N stopped containers that each wrote
#                                    64 KiB (default 300); and, during a 16-connection
#                                    run on disk, goroutine dumps of dockerd (SIGUSR1)
#                                    summarised by where container removals wait
#                                    (bench/stacks.py).
#   bash bench/bench.sh fleet [N]    a fleet dry run (-H three times) against the
#                                    slowest of the three single-host dry runs,
#                                    three private engines each with the mixed
#                                    fixture of N containers (default 1000), warm,
#                                    medians of alternating runs. RTT_MS=K puts
#                                    each engine behind bench/delay_proxy.py: a
#                                    round trip of K ms before each request, as
#                                    for engines on other hosts.
#
# Which engine: the system's dockerd (Docker 20.10, overlay2); with
# BENCH_ENGINE=DIR the one scripts/engines.sh unpacked there (Docker 26.1), and
# BENCH_STORE=containerd for its containerd image store.
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
# Sizes kept between runs go with the bench's own files, never into
# /var/cache/docker-reclaim (plantime sets its own per condition).
export DOCKER_RECLAIM_CACHE_DIR=$work/size-cache
pid=
stop_daemon() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  pid=
}
fleet_pids=()
cleanup() {
  stop_daemon
  for pid in "${fleet_pids[@]}"; do stop_daemon; done
  rm -rf "$work"
}
trap cleanup EXIT

start_daemon() {
  local dir=$1
  mkdir -p "$dir"
  local path=$PATH driver=(--storage-driver=overlay2)
  if [ -n "${BENCH_ENGINE:-}" ]; then
    path="$BENCH_ENGINE/usr/bin:$BENCH_ENGINE/usr/sbin:$PATH"
  fi
  if [ "${BENCH_STORE:-}" = containerd ]; then
    echo '{"features":{"containerd-snapshotter":true}}' >"$dir/daemon.json"
    driver=()
  else
    echo '{}' >"$dir/daemon.json"
  fi
  PATH=$path dockerd --config-file "$dir/daemon.json" --data-root "$dir/root" \
    --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    --host "unix://$dir/docker.sock" --bridge=none --iptables=false --ip-masq=false \
    --ip6tables=false "${driver[@]}" >"$dir/dockerd.log" 2>&1 &
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

# One timed run of `$1` (reclaim, prune or floor) on a fresh daemon and fixture; prints
# "seconds removed left".
timed_run() {
  local tool=$1 dir=$work/$1-$2
  start_daemon "$dir"
  make_fixture "$count"
  ids >"$dir.before"
  {
    "$docker" ps -aq --no-trunc --filter status=exited --filter status=created
    echo
    "$docker" images -q --no-trunc --filter dangling=true
  } >"$dir.targets"
  sync
  # COLD=1: the page cache dropped before the timed run, as for a nightly job.
  [ -n "${COLD:-}" ] && echo 3 >/proc/sys/vm/drop_caches
  local t0 t1
  t0=$(now)
  case "$tool" in
    # shellcheck disable=SC2086 # RECLAIM_ARGS is a list of flags, split on purpose.
    reclaim) "$reclaim" --yes --format json ${RECLAIM_ARGS:-} >"$dir.report" 2>"$dir.stderr" ;;
    prune) "$docker" system prune -f >"$dir.out" ;;
    # The same objects deleted by ID with bare API calls, 16 at a time: what
    # any tool that deletes by ID through the engine's API cannot go below.
    floor) python3 bench/api_floor.py "$dir/docker.sock" 16 <"$dir.targets" >"$dir.out" ;;
  esac
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
  : >"$work/floor.times"
  for round in $(seq 1 "$rounds"); do
    for tool in reclaim prune floor; do
      read -r secs removed left < <(timed_run "$tool" "$round")
      echo "round $round $tool: ${secs}s, removed $removed objects, $left left"
      echo "$secs" >>"$work/$tool.times"
    done
  done
  local r p f
  r=$(median <"$work/reclaim.times")
  p=$(median <"$work/prune.times")
  f=$(median <"$work/floor.times")
  echo "median docker-reclaim --yes: ${r}s; median docker system prune -f: ${p}s; ratio $(echo "scale=3; $r / $p" | bc)"
  echo "median engine floor (bare DELETE by ID, 16 connections, no plan, no checks): ${f}s; ratio to prune $(echo "scale=3; $f / $p" | bc)"
}

# Shared base layers; a legacy-built chain rebuilt three times (dangling images
# with intermediate parents); a BuildKit-built image rebuilt (dangling, its layers
# held by the build cache); N containers: 1 in 4 ran, wrote 32-256 KiB and
# logged 200 lines, the rest were created; 3 running containers; a named volume.
make_mixed_fixture() {
  local n=$1
  build_base
  local ctx=$work/ctx-shared
  mkdir -p "$ctx"
  printf 'FROM bench/base\nRUN dd if=/dev/zero of=/shared bs=1024 count=2048 2>/dev/null\n' >"$ctx/Dockerfile"
  "$docker" build -q --network none -t bench/shared "$ctx" >/dev/null
  for v in 1 2 3; do
    ctx=$work/ctx-chain-$v
    mkdir -p "$ctx"
    printf 'FROM bench/shared\nLABEL v=%d\nRUN dd if=/dev/zero of=/app bs=1024 count=%d 2>/dev/null\nRUN echo %d >/version\n' "$v" $((v * 500)) "$v" >"$ctx/Dockerfile"
    "$docker" build -q --network none -t bench/chain "$ctx" >/dev/null
  done
  for v in 1 2; do
    ctx=$work/ctx-bk-$v
    mkdir -p "$ctx"
    cp /bin/busybox "$ctx/"
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","dd","if=/dev/zero","of=/blob","bs=1024","count=%d"]\n' $((v * 600)) >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=1 "$docker" build -q --network none -t bench/bk "$ctx" >/dev/null
  done
  "$docker" volume create bench-data >/dev/null
  for r in 1 2 3; do
    "$docker" run -d --network none --name "bench-running-$r" -v bench-data:/data bench/shared sleep 100000 >/dev/null
  done
  seq 1 "$n" | xargs -P 8 -I{} sh -c '
    if [ $(({} % 4)) -eq 0 ]; then
      '"$docker"' run --network none --name bench-{} bench/base sh -c "dd if=/dev/zero of=/w bs=1024 count=$(( ({} % 8 + 1) * 32 )) 2>/dev/null; seq 1 200" >/dev/null
    else
      '"$docker"' create --network none --name bench-{} bench/chain true >/dev/null
    fi'
}

du_alloc() { du -s -B1 "$1" | cut -f1; }
du_apparent() { du -sb "$1" | cut -f1; }

pct() { echo "scale=2; ($1 - $2) * 100 / $2" | bc; }

bench_predict() {
  local sizes=("$@")
  [ ${#sizes[@]} -gt 0 ] || sizes=(20 200)
  for n in "${sizes[@]}"; do
    start_daemon "$work/predict-$n"
    make_mixed_fixture "$n"
    local root=$work/predict-$n/root
    # APPLY_ARGS="--networks --build-cache": plan with those flags and apply
    # with docker-reclaim --yes instead of removing by ID with the CLI.
    # shellcheck disable=SC2086
    "$reclaim" --dry-run --format json ${APPLY_ARGS:-} >"$work/plan-$n.json"
    local reclaimable
    reclaimable=$("$docker" system df --format '{{.Type}}={{.Reclaimable}}' | tr '\n' ' ')
    local predicted predicted_apparent
    predicted=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["predicted_bytes"])' "$work/plan-$n.json")
    predicted_apparent=$(python3 -c 'import json,sys; print(sum(i.get("predicted_apparent_bytes") or 0 for i in json.load(open(sys.argv[1]))["items"]))' "$work/plan-$n.json")
    local before before_apparent
    before=$(du_alloc "$root")
    before_apparent=$(du_apparent "$root")
    if [ -n "${APPLY_ARGS:-}" ]; then
      # shellcheck disable=SC2086
      "$reclaim" --yes -q $APPLY_ARGS >/dev/null
    else
      # Exactly the planned items, by ID: containers, then images newest first.
      python3 -c 'import json,sys; [print(i["id"]) for i in json.load(open(sys.argv[1]))["items"] if i["kind"]=="container"]' "$work/plan-$n.json" | xargs -r "$docker" rm >/dev/null
      python3 -c 'import json,sys; [print(i["id"]) for i in reversed(json.load(open(sys.argv[1]))["items"]) if i["kind"]=="image"]' "$work/plan-$n.json" | xargs -r "$docker" rmi >/dev/null
    fi
    local after after_apparent
    after=$(du_alloc "$root")
    after_apparent=$(du_apparent "$root")
    local drop=$((before - after)) drop_apparent=$((before_apparent - after_apparent))
    local items
    items=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$work/plan-$n.json")
    echo "N=$n: $items planned items"
    echo "  allocated: predicted $predicted B, du -s -B1 drop $drop B, error $(pct "$predicted" "$drop")%"
    echo "  apparent:  predicted $predicted_apparent B, du -sb drop $drop_apparent B, error $(pct "$predicted_apparent" "$drop_apparent")%"
    echo "  docker system df RECLAIMABLE (same engine, before): $reclaimable"
    echo "  untagged images left (docker images -a): $("$docker" images -a --format '{{.Repository}}' | grep -c '<none>' || true)${APPLY_ARGS:+, applied with docker-reclaim --yes $APPLY_ARGS}"
    stop_daemon
  done
}

# Runs "$@" with one bounded busy loop per core at normal priority.
with_busy_cores() {
  local loops=() n
  for n in $(seq 1 "$(nproc)"); do
    timeout 900 sh -c 'while :; do :; done' &
    loops+=($!)
  done
  "$@"
  local status=$?
  kill "${loops[@]}" 2>/dev/null || true
  wait "${loops[@]}" 2>/dev/null || true
  return $status
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# Alternating timed runs of the dry run and of `docker system df -v` in one
# condition; prints the medians and their ratio.
plantime_in() {
  local condition=$1 rounds=${ROUNDS:-5} t0 t1 cache=$work/size-cache
  # uncached*: without the sizes kept between runs (as on a first run).
  case "$condition" in uncached*) cache= ;; esac
  : >"$work/plan-$condition.times"
  : >"$work/df-$condition.times"
  : >"$work/rss-$condition.kb"
  for _ in $(seq 1 "$rounds"); do
    case "$condition" in *cold) drop_caches ;; esac
    t0=$(now)
    DOCKER_RECLAIM_CACHE_DIR=$cache /usr/bin/time -f %M -o "$work/rss.one" "$reclaim" --dry-run --format json >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc >>"$work/plan-$condition.times"
    cat "$work/rss.one" >>"$work/rss-$condition.kb"
    case "$condition" in *cold) drop_caches ;; esac
    t0=$(now); "$docker" system df -v >/dev/null; t1=$(now)
    echo "$t1 - $t0" | bc >>"$work/df-$condition.times"
  done
  local p d
  p=$(median <"$work/plan-$condition.times")
  d=$(median <"$work/df-$condition.times")
  echo "$condition: docker-reclaim --dry-run $(sort -n "$work/plan-$condition.times" | tr '\n' ' ')"
  echo "$condition: docker system df -v      $(sort -n "$work/df-$condition.times" | tr '\n' ' ')"
  echo "$condition, N=$count, $rounds alternating runs: median docker-reclaim --dry-run ${p}s, median docker system df -v ${d}s, ratio $(echo "scale=3; $p / $d" | bc)"
  echo "$condition, N=$count: docker-reclaim --dry-run peak RSS (kB): $(sort -n "$work/rss-$condition.kb" | tr '\n' ' ')median $(median <"$work/rss-$condition.kb")"
}

bench_plantime() {
  start_daemon "$work/plantime"
  case "${FIXTURE:-mixed}" in
    mixed) make_mixed_fixture "$count" ;;
    stopped) make_fixture "$count" ;;
    *) echo "FIXTURE is mixed or stopped" >&2; exit 2 ;;
  esac
  local condition
  for condition in ${CONDITIONS:-warm cold busy uncached uncached-cold}; do
    case "$condition" in
      busy) with_busy_cores plantime_in busy ;;
      *) plantime_in "$condition" ;;
    esac
  done
  stop_daemon
}

# N stopped containers that ran and wrote 64 KiB each: every removal deletes
# a real writable layer.
make_written_fixture() {
  local n=$1
  build_base
  seq 1 "$n" | xargs -P 8 -I{} sh -c \
    "$docker"' run --network none --name bench-{} bench/base sh -c "dd if=/dev/zero of=/w bs=1024 count=64 2>/dev/null" >/dev/null'
}

floor_run() {
  local where=$1 jobs=$2 dir=$work/floor-$1-$2
  mkdir -p "$dir"
  if [ "$where" = tmpfs ]; then
    mount -t tmpfs -o size=4g tmpfs "$dir"
  fi
  start_daemon "$dir"
  make_written_fixture "$count"
  "$docker" ps -aq --no-trunc --filter status=exited >"$dir.targets"
  sync
  local t0 t1
  t0=$(now)
  python3 bench/api_floor.py "$dir/docker.sock" "$jobs" <"$dir.targets" >"$dir.out" &
  local floor=$!
  if [ "$where" = disk ] && [ "$jobs" -gt 1 ]; then
    # Three goroutine dumps while the removals run.
    for _ in 1 2 3; do
      sleep 0.3
      kill -USR1 "$pid" 2>/dev/null || true
    done
  fi
  wait "$floor"
  t1=$(now)
  echo "floor, data root on $where, $jobs connection(s), $count containers: $(echo "$t1 - $t0" | bc)s"
  if [ "$where" = disk ] && [ "$jobs" -gt 1 ]; then
    sleep 1
    python3 bench/stacks.py "$dir"/exec/goroutine-stacks-*.log
  fi
  stop_daemon
  if [ "$where" = tmpfs ]; then
    umount "$dir"
  fi
}

bench_floor() {
  local where jobs
  for where in disk tmpfs; do
    for jobs in 1 16; do
      floor_run "$where" "$jobs"
    done
  done
}

# Three engines, each planned alone and then all three as one fleet run.
bench_fleet() {
  local hosts=() n rounds=${ROUNDS:-5} t0 t1
  for n in 1 2 3; do
    start_daemon "$work/fleet-$n"
    make_mixed_fixture "$count"
    if [ -n "${RTT_MS:-}" ]; then
      python3 bench/delay_proxy.py "$work/fleet-$n/far.sock" "$work/fleet-$n/docker.sock" "$RTT_MS" &
      fleet_pids+=("$!")
      for _ in $(seq 1 50); do [ -S "$work/fleet-$n/far.sock" ] && break; sleep 0.1; done
      hosts+=("unix://$work/fleet-$n/far.sock")
    else
      hosts+=("$DOCKER_HOST")
    fi
    fleet_pids+=("$pid")
    pid=
  done
  local fleet_args=()
  for h in "${hosts[@]}"; do fleet_args+=(-H "$h"); done
  # Warm: a first run of each fills the size cache and the page cache.
  "$reclaim" --dry-run --format json "${fleet_args[@]}" >/dev/null
  for n in 0 1 2; do : >"$work/single-$n.times"; done
  : >"$work/fleet.times"
  for _ in $(seq 1 "$rounds"); do
    for n in 0 1 2; do
      t0=$(now); "$reclaim" --dry-run --format json -H "${hosts[$n]}" >/dev/null; t1=$(now)
      echo "$t1 - $t0" | bc >>"$work/single-$n.times"
    done
    t0=$(now); "$reclaim" --dry-run --format json "${fleet_args[@]}" >/dev/null; t1=$(now)
    echo "$t1 - $t0" | bc >>"$work/fleet.times"
  done
  local slowest=0 m f
  for n in 0 1 2; do
    m=$(median <"$work/single-$n.times")
    echo "single host $((n + 1)), N=$count: median ${m}s ($(sort -n "$work/single-$n.times" | tr '\n' ' '))"
    if [ "$(echo "$m > $slowest" | bc)" = 1 ]; then slowest=$m; fi
  done
  f=$(median <"$work/fleet.times")
  echo "fleet of 3, N=$count each: median ${f}s ($(sort -n "$work/fleet.times" | tr '\n' ' '))"
  echo "fleet / slowest single host: $(echo "scale=3; $f / $slowest" | bc) on $(nproc) cores${RTT_MS:+, ${RTT_MS} ms round trip}"
  for pid in "${fleet_pids[@]}"; do stop_daemon; done
  fleet_pids=()
}

case "$mode" in
  fleet) bench_fleet ;;
  apply) bench_apply ;;
  predict) shift; bench_predict "$@" ;;
  plantime) bench_plantime ;;
  floor) count=${2:-300}; bench_floor ;;
  *) echo "usage: bash bench/bench.sh apply [N] | predict [N…] | plantime [N] | floor [N] | fleet [N]" >&2; exit 2 ;;
esac
