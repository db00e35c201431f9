#!/usr/bin/env bash
# crpc next to its peers on the benchmark workload contract.
#
#   tests/bench/run.sh [--reps N] [PEER...]      PEERs: raw grpc oncrpc (the default: all three)
#
# 1. Builds crpc-bench in a Release build (no sanitizers) in $CRPC_BENCH_BUILD (default
#    build-bench/ at the top of the repository).
# 2. Runs the shared runner, ../../../shared/bench/run.sh (override with $CRPC_BENCH_RUNNER), on
#    the peers and crpc: it installs what the peers need with apt, builds them, and prints its
#    table (medians of N repetitions, default 3), which is shown here unchanged.
# 3. Prints crpc's ratio to every peer for each column, and the issue's targets, met or not.
#
# The machine should be otherwise idle: the runner pins the server to CPU 1 and the client to
# CPU 0, and anything else running there shows up in the figures.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${CRPC_BENCH_BUILD:-$repo/build-bench}
runner=${CRPC_BENCH_RUNNER:-$(cd "$repo/.." && pwd)/shared/bench/run.sh}
reps=3
peers=()
while (($#)); do
  case $1 in
    --reps) reps=${2:?--reps wants a number}; shift 2 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    raw|grpc|oncrpc) peers+=("$1"); shift ;;
    *) echo "run.sh: unknown argument $1 (peers: raw grpc oncrpc)" >&2; exit 2 ;;
  esac
done
((${#peers[@]})) || peers=(raw grpc oncrpc)
[[ -x $runner ]] || { echo "run.sh: no runner at $runner (set CRPC_BENCH_RUNNER)" >&2; exit 1; }

echo "==> building crpc-bench (Release) in $build" >&2
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCRPC_SANITIZE=OFF \
  -DCRPC_BUILD_TESTS=ON -DCRPC_BUILD_BENCH=ON -DCRPC_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target crpc-bench -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=$build/tests/bench/crpc-bench
[[ -x $bin ]] || { echo "run.sh: the build produced no $bin" >&2; exit 1; }

echo "==> $runner ${peers[*]} crpc=$bin --reps $reps" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$runner" "${peers[@]}" "crpc=$bin" --reps "$reps" | tee "$out"  # each peer's line as it comes
table=$(cat "$out")
echo

# Ratios and targets, from the runner's table: a header line, then a line per peer, in fixed-width
# right-aligned columns (a cell may be blank, e.g. oncrpc has no W2), so cells are cut at the
# column ends that the header's names mark.
awk '
  NR == 1 {
    ncol = 0; pos = 1; rest = $0
    while (match(rest, /[^ ]+/)) {
      ncol++; col[ncol] = substr(rest, RSTART, RLENGTH); end[ncol] = pos + RSTART + RLENGTH - 2
      pos += RSTART + RLENGTH - 1; rest = substr(rest, RSTART + RLENGTH)
    }
    next
  }
  NF {
    p = $1; name[NR] = p; if (p == "crpc") have = 1
    for (i = 2; i <= ncol; i++) {
      from = i == 2 ? length(p) + 1 : end[i - 1] + 1  # the name column is left-aligned
      cell = substr($0, from, end[i] - from + 1); gsub(/ /, "", cell); v[p, i] = cell
    }
  }
  function ratio(a, b) { return (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf(a / b < 0.1 ? "%.3f" : "%.2f", a / b) }
  function idx(c,   i) { for (i = 2; i <= ncol; i++) if (col[i] == c) return i; return 0 }
  function verdict(ok) { return ok ? "met" : "NOT met" }
  END {
    if (!have) { print "run.sh: no crpc line in the table" > "/dev/stderr"; exit 1 }
    printf "%-12s", "ratio"; for (i = 2; i <= ncol; i++) printf " %12s", col[i]; printf "\n"
    for (r = 2; r <= NR; r++) {
      p = name[r]; if (p == "" || p == "crpc") continue
      printf "%-12s", "crpc/" p; for (i = 2; i <= ncol; i++) printf " %12s", ratio(v["crpc", i], v[p, i]); printf "\n"
    }
    printf "(time, CPU and KiB columns: lower is better; calls/s and MB/s: higher is better)\n\n"
    p50 = idx("W1_p50_us"); c1 = idx("W1_cpu_us"); w2 = idx("W2_calls/s"); c2 = idx("W2_cpu_us")
    w3 = idx("W3_MB/s"); w4 = idx("W4_KiB/conn")
    print "targets (from the issue)"
    if (("raw", p50) in v) {
      x = ratio(v["crpc", p50], v["raw", p50]); printf "  W1 p50 <= 1.1x raw          %6s x   %s\n", x, verdict(x != "-" && x <= 1.1)
      x = ratio(v["crpc", c1], v["raw", c1]);   printf "  W1 CPU/call <= 1.2x raw     %6s x   %s\n", x, verdict(x != "-" && x <= 1.2)
      x = ratio(v["crpc", w2], v["raw", w2]);   printf "  W2 calls/s >= 0.5x raw      %6s x   %s\n", x, verdict(x != "-" && x >= 0.5)
      x = ratio(v["crpc", w3], v["raw", w3]);   printf "  W3 MB/s >= 0.8x raw         %6s x   %s\n", x, verdict(x != "-" && x >= 0.8)
    } else print "  (raw not measured: the ratio targets are skipped)"
    x = v["crpc", c2]; printf "  W2 CPU/call <= 2 us         %6s us  %s\n", x, verdict(x != "-" && x <= 2)
    x = v["crpc", w4]; printf "  W4 <= 4 KiB/conn            %6s KiB %s\n", x, verdict(x != "-" && x <= 4)
  }' <<<"$table"
