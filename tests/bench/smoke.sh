#!/bin/sh
# bench_smoke: starts `crpc-bench server` on a free port, runs every workload with tiny counts
# and checks each result line's format; then the same for floor-bench's W1 when given. No timing
# assertions.
#   smoke.sh /path/to/crpc-bench [/path/to/floor-bench]
set -u
bin=${1:?usage: smoke.sh /path/to/crpc-bench [/path/to/floor-bench]}
floor=${2:-}
tmp=$(mktemp -d) || exit 1
spid= fpid=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  [ -n "$fpid" ] && kill "$fpid" 2>/dev/null && wait "$fpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "bench_smoke: $*" >&2; exit 1; }

"$bin" server --port 0 --loops 2 >"$tmp/server.out" 2>"$tmp/server.err" &
spid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/^crpc-bench: serving on tcp:\/\/127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/server.out")
  [ -n "$port" ] && break
  kill -0 "$spid" 2>/dev/null || fail "server exited: $(cat "$tmp/server.err")"
  sleep 0.1
done
[ -n "$port" ] || fail "server did not report its port"

num='[0-9][0-9]*'
dec='[0-9][0-9]*\.[0-9]'
check() {  # check NAME REGEX ARGS...: one line of output, matching REGEX exactly
  name=$1 re=$2; shift 2
  out=$("$bin" --port "$port" "$@" 2>"$tmp/client.err") || fail "$name exited with $?: $(cat "$tmp/client.err")"
  lines=$(printf '%s\n' "$out" | wc -l)
  [ "$lines" -eq 1 ] || fail "$name printed $lines lines: $out"
  printf '%s\n' "$out" | grep -Eqx "$re" || fail "$name: unexpected result line: $out"
  echo "$name: $out"
}
check W1 "W1 calls_per_s=$num p50_us=$dec p99_us=$dec" --workload W1 --calls 50
check W1-size "W1 calls_per_s=$num p50_us=$dec p99_us=$dec" --workload W1 --calls 50 --size 0
check W2 "W2 calls_per_s=$num" --workload W2 --calls 50
check W2-inflight "W2 calls_per_s=$num" --workload W2 --calls 50 --inflight 7
check W2-conns "W2 calls_per_s=$num" --workload W2 --calls 60 --inflight 8 --conns 3
check W3 "W3 mb_per_s=$dec" --workload W3 --calls 50
check W4 "W4 conns=20" --workload W4 --conns 20
kill -0 "$spid" 2>/dev/null || fail "server died: $(cat "$tmp/server.err")"
"$bin" --port "$port" --workload W9 >/dev/null 2>&1 && fail "an unknown workload was accepted"

[ -n "$floor" ] || exit 0
"$floor" server --port 0 >"$tmp/floor.out" 2>"$tmp/floor.err" &
fpid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/^floor-bench: serving on tcp:\/\/127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/floor.out")
  [ -n "$port" ] && break
  kill -0 "$fpid" 2>/dev/null || fail "floor-bench server exited: $(cat "$tmp/floor.err")"
  sleep 0.1
done
[ -n "$port" ] || fail "floor-bench server did not report its port"
bin=$floor
check floor-W1 "W1 calls_per_s=$num p50_us=$dec p99_us=$dec" --workload W1 --calls 50
check floor-W1-size "W1 calls_per_s=$num p50_us=$dec p99_us=$dec" --calls 50 --size 100000
kill -INT "$fpid"
wait "$fpid" || fail "floor-bench server did not stop cleanly on SIGINT"
fpid=
exit 0
