#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 30).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# TARGET: frame_decoder server_conn client_conn plugin (default: all, one after the other).
# Environment:
#   CRPC_FUZZ_BUILD   build directory (default: <repo>/build-fuzz)
#   CRPC_FUZZ_JOBS    build parallelism (default: nproc)
#   CRPC_FUZZ_ARGS    extra libFuzzer flags, e.g. "-jobs=4 -workers=4" or "-only_ascii=1"
#   CC                the compiler (default clang; it must support -fsanitize=fuzzer)
#
# Each fuzzer reads the checked-in corpus (tests/fuzz/corpus/TARGET, never written to) and keeps
# what it finds in BUILD/fuzz-corpus/TARGET, which later runs start from. Crashes, leaks and
# timeouts go to BUILD/fuzz-artifacts/TARGET/ and make the script fail; copy a reproducer into
# tests/fuzz/corpus/TARGET/ so that the ctest replay keeps it. Limits: -timeout=1 (a unit running
# over 1 s is a hang), -rss_limit_mb=2048, -report_slow_units=1; afterwards the grown corpus is
# replayed and every unit above 100 ms of CPU is reported (SLOW) and fails the script.
# Before fuzzing, the exhaustive frame test runs once under clang's integer sanitizers.
set -eu
secs=${1:-30}
[ $# -gt 0 ] && shift
targets=${*:-frame_decoder server_conn client_conn plugin}
fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$fuzz/../.." && pwd)
build=${CRPC_FUZZ_BUILD:-$root/build-fuzz}
jobs=${CRPC_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="${CC:-clang}" -DCRPC_SANITIZE=ON -DCRPC_FUZZ=ON \
  -DCRPC_BUILD_EXAMPLES=OFF -DCRPC_BUILD_BENCH=OFF >/dev/null
build_targets="unit_frame_exhaustive_intsan"
for t in $targets; do
  build_targets="$build_targets fuzz_$t fuzz_replay_$t"
done
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $build_targets

echo "== unit_frame_exhaustive_intsan (unsigned-integer-overflow, implicit-conversion)"
"$build/tests/fuzz/unit_frame_exhaustive_intsan" >/dev/null

max_len() {
  case $1 in
    plugin) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
dict() {
  case $1 in
    plugin) echo "$fuzz/dict/plugin.dict" ;;
    *) echo "$fuzz/dict/frames.dict" ;;
  esac
}

failed=""
for t in $targets; do
  work="$build/fuzz-corpus/$t"
  art="$build/fuzz-artifacts/$t"
  mkdir -p "$work" "$art"
  echo "== fuzz_$t for ${secs}s"
  # shellcheck disable=SC2086
  if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 \
      -report_slow_units=1 -max_len="$(max_len "$t")" -dict="$(dict "$t")" \
      -artifact_prefix="$art/" -print_final_stats=1 ${CRPC_FUZZ_ARGS:-} \
      "$work" "$fuzz/corpus/$t" 2>"$build/fuzz-$t.log"; then
    failed="$failed $t"
    grep -E "ERROR|SUMMARY|Test unit written|fuzz invariant" "$build/fuzz-$t.log" | head -20 || true
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|Done [0-9]+ runs" \
    "$build/fuzz-$t.log" || true
  echo "== replay of the grown corpus of $t (SLOW above 100 ms of CPU)"
  if ! CRPC_FUZZ_SLOW_MS=100 CRPC_FUZZ_SLOW_FAIL=1 "$build/tests/fuzz/fuzz_replay_$t" "$work" \
      "$fuzz/corpus/$t" 2>"$build/replay-$t.log"; then
    failed="$failed $t(slow-or-crash)"
    grep -E "SLOW|ERROR|SUMMARY" "$build/replay-$t.log" | head -20 || true
  fi
  tail -n 1 "$build/replay-$t.log"
done
if [ -n "$failed" ]; then
  echo "FAILED:$failed (logs: $build/fuzz-*.log, artifacts: $build/fuzz-artifacts/)"
  exit 1
fi
echo "all fuzzers ran ${secs}s without findings"
