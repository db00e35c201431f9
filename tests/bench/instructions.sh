#!/usr/bin/env bash
# Instructions per call under callgrind: the figure to compare commits with, free of timing noise.
#
#   tests/bench/instructions.sh [W1|W2 ...]      (default: both)
#
# Builds crpc-bench as run.sh does (Release, in $CRPC_BENCH_BUILD, default build-bench/), then for
# each workload and side runs that side under `valgrind --tool=callgrind` against a native peer,
# twice, with a short and a long run; instructions per call are the difference of the two
# processes' totals divided by the difference in calls, so start-up, connection set-up and
# teardown drop out. The client's figure includes the harness's per-call work (the W1 timing and
# sort of latencies, the W2 completion callback). Counts move by about 1 % between runs (how
# reads happen to split); compare commits with this script, on the same machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${CRPC_BENCH_BUILD:-$repo/build-bench}
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
workloads=("$@")
((${#workloads[@]})) || workloads=(W1 W2)
for w in "${workloads[@]}"; do
  [[ $w == W1 || $w == W2 ]] || { echo "instructions.sh: unknown workload $w (W1 or W2)" >&2; exit 2; }
done

echo "==> building crpc-bench (Release) in $build" >&2
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCRPC_SANITIZE=OFF \
  -DCRPC_BUILD_TESTS=ON -DCRPC_BUILD_BENCH=ON -DCRPC_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target crpc-bench -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=$build/tests/bench/crpc-bench

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts a server (optionally under callgrind, writing $2) and sets $port to the port it serves.
start_server() {
  local log=$tmp/server.$RANDOM
  if [[ -n ${1:-} ]]; then
    valgrind --tool=callgrind --callgrind-out-file="$1" "$bin" server --port 0 >"$log" 2>/dev/null &
  else
    "$bin" server --port 0 >"$log" 2>/dev/null &
  fi
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 300); do
    port=$(sed -n 's/.*serving on tcp:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [[ -n $port ]] && return 0
    sleep 0.1
  done
  echo "instructions.sh: the server did not start" >&2
  exit 1
}

stop_server() {
  kill -INT "$server_pid"
  wait "$server_pid" || true
}

total() { sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$1"; }

# Client arguments for a short and a long run, and the calls each makes in all (warm-up included).
args_for() {
  case $1 in
    W1) short=(--workload W1 --calls 1000); long=(--workload W1 --calls 6000); dcalls=5000 ;;
    W2) short=(--workload W2 --inflight 64 --calls 20000); long=(--workload W2 --inflight 64 --calls 100000)
        dcalls=80000 ;;
  esac
}

printf '%-4s %14s %14s\n' "" client server
for w in "${workloads[@]}"; do
  args_for "$w"
  # Client side: a native server, the client under callgrind.
  start_server ""
  valgrind --tool=callgrind --callgrind-out-file="$tmp/c.short" "$bin" --port "$port" "${short[@]}" >/dev/null 2>&1
  valgrind --tool=callgrind --callgrind-out-file="$tmp/c.long" "$bin" --port "$port" "${long[@]}" >/dev/null 2>&1
  stop_server
  # Server side: the server under callgrind, one native client per run.
  start_server "$tmp/s.short"
  "$bin" --port "$port" "${short[@]}" >/dev/null
  stop_server
  start_server "$tmp/s.long"
  "$bin" --port "$port" "${long[@]}" >/dev/null
  stop_server
  c=$(( ($(total "$tmp/c.long") - $(total "$tmp/c.short")) / dcalls ))
  s=$(( ($(total "$tmp/s.long") - $(total "$tmp/s.short")) / dcalls ))
  printf '%-4s %14s %14s\n' "$w" "$c" "$s"
done
