#!/usr/bin/env bash
# crpc next to raw TCP on one workload, interleaved round by round, pinned like the shared runner
# (servers on CPU 1, clients on CPU 0): quicker than run.sh, and both peers see the same moment
# of a noisy machine. Prints each round's result lines and crpc/raw.
#
#   tests/bench/interleave.sh [-n ROUNDS] WORKLOAD [client args...]
#   tests/bench/interleave.sh W3                      # 5 rounds of W3
#   tests/bench/interleave.sh -n 8 W2 --inflight 64
#
# Needs crpc-bench built (tests/bench/run.sh builds it in build-bench/; override with $CRPC_BENCH)
# and the raw peer built by the shared runner ($RAW_PEER, default /tmp/crpc-bench-peers/raw).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
crpc=${CRPC_BENCH:-$here/../../build-bench/tests/bench/crpc-bench}
raw=${RAW_PEER:-/tmp/crpc-bench-peers/raw}
rounds=5
if [[ ${1:-} == -n ]]; then rounds=${2:?-n wants a number}; shift 2; fi
w=${1:?usage: interleave.sh [-n ROUNDS] WORKLOAD [client args...]}; shift
[[ -x $crpc && -x $raw ]] || { echo "interleave.sh: need $crpc and $raw (run tests/bench/run.sh once)" >&2; exit 1; }
port=${BENCH_PORT:-8400}
taskset -c 1 "$raw" server --port "$port" >/dev/null 2>&1 & p1=$!
taskset -c 1 "$crpc" server --port $((port + 1)) >/dev/null 2>&1 & p2=$!
trap 'kill $p1 $p2 2>/dev/null' EXIT
sleep 0.5
value() { sed -E 's/.*(calls_per_s|mb_per_s)=([0-9.]+).*/\2/'; }
for ((i = 1; i <= rounds; i++)); do
  r=$(taskset -c 0 "$raw" --port "$port" --workload "$w" "$@")
  c=$(taskset -c 0 "$crpc" --port $((port + 1)) --workload "$w" "$@")
  if [[ $w == W1 ]]; then
    ratio=$(awk -v a="$(sed -E 's/.*p50_us=([0-9.]+).*/\1/' <<<"$c")" \
                -v b="$(sed -E 's/.*p50_us=([0-9.]+).*/\1/' <<<"$r")" 'BEGIN { printf "%.2f (p50)", a / b }')
  else
    ratio=$(awk -v a="$(value <<<"$c")" -v b="$(value <<<"$r")" 'BEGIN { printf "%.2f", a / b }')
  fi
  echo "raw: $r | crpc: $c | crpc/raw $ratio"
done
