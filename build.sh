#!/usr/bin/env bash
# crpc quick start.
#
#   ./build.sh deps    install the build dependencies (Debian/Ubuntu; only what is missing)
#   ./build.sh demo    release build in build/, then the greeter server and client talk on loopback
#   ./build.sh test    ASan+UBSan build with -Werror in build-asan/, then the whole test suite
#   ./build.sh test-release
#                      Release build with link-time optimisation (what packagers ship) in
#                      build-release/, then the whole test suite
#   ./build.sh test-clang
#                      clang build with -Werror in build-clang/, then the whole test suite
#   ./build.sh test-tsan
#                      ThreadSanitizer build in build-tsan/, then the tests that run threads
#   ./build.sh greet SERVER CLIENT
#                      run a greeter SERVER binary on a free loopback port and call it with
#                      CLIENT (what `demo` does; .ci/run uses it on installed-crpc builds)
#
# Environment: JOBS (parallel build jobs, default: number of CPUs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# Everything the build, the examples and the tests need. protoc-gen-crpc compiles
# google/protobuf/descriptor.proto (libprotobuf-dev) and google/protobuf/compiler/plugin.proto
# (libprotoc-dev) with protoc-c; binutils (nm, readelf; in build-essential) serve the ABI tests.
# The sanitizer build uses gcc's ASan/UBSan, so clang is not needed.
packages=(
  build-essential cmake pkg-config
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler
  protobuf-compiler libprotobuf-dev libprotoc-dev
  libcmocka-dev
)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# cmd_deps [EXTRA_PACKAGE...]: the packages above and the extra ones, installing what is missing.
cmd_deps() {
  local want=("${packages[@]}" "$@")
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    say "not a Debian-like system: install these (or your system's equivalents) yourself:"
    say "  ${want[*]}"
    return 0
  fi
  local missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "dependencies: all installed"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  say "installing: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# greet SERVER CLIENT: start SERVER on an ephemeral loopback port, wait until it says it is
# listening, call it twice with CLIENT (a name, and an empty name that the server must refuse),
# stop it with SIGTERM and check that it exits cleanly.
cmd_greet() {
  (($# == 2)) || die "usage: build.sh greet SERVER CLIENT"
  local server=$1 client=$2 log pid port i reply
  [[ -x $server && -x $client ]] || die "greet: $server or $client is not an executable"
  log=$(mktemp)
  "$server" tcp://127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  # shellcheck disable=SC2064 # expand now: the values are local to this function
  trap "kill $pid 2>/dev/null || true; rm -f '$log'" EXIT
  for ((i = 0; i < 100; i++)); do
    grep -q '^listening' "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "greet: the server exited before listening"; }
    sleep 0.1
  done
  grep -q '^listening' "$log" || { cat "$log" >&2; die "greet: the server did not listen within 10 s"; }
  port=$(sed -n 's/^listening on port \([0-9][0-9]*\)$/\1/p' "$log")
  [[ -n $port ]] || { cat "$log" >&2; die "greet: cannot read the port from the server's output"; }
  say "server: $(head -n 1 "$log")"

  reply=$("$client" "crpc" "tcp://127.0.0.1:$port") || die "greet: the call failed"
  say "client: SayHello(\"crpc\") -> \"$reply\""
  [[ $reply == "Hello, crpc" ]] || die "greet: unexpected reply '$reply'"
  if "$client" "" "tcp://127.0.0.1:$port" >/dev/null 2>"$log.err"; then
    rm -f "$log.err"
    die "greet: an empty name was accepted"
  fi
  say "client: SayHello(\"\") -> $(cat "$log.err")  (refused, as it should be)"
  rm -f "$log.err"

  kill -TERM "$pid"
  local rc=0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    die "greet: the server ignored SIGTERM for 5 s"
  fi
  wait "$pid" || rc=$?
  ((rc == 0)) || { cat "$log" >&2; die "greet: the server exited with status $rc"; }
  trap - EXIT
  rm -f "$log"
  say "server stopped cleanly"
}

cmd_demo() {
  cmd_deps
  say "configuring a release build in build/ (library, plugin, examples)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
    -DCRPC_BUILD_TESTS=OFF -DCRPC_BUILD_BENCH=OFF -DCRPC_BUILD_EXAMPLES=ON >/dev/null
  say "building the greeter example"
  cmake --build build -j "$jobs" --target greeter_server greeter_client
  cmd_greet build/examples/greeter/greeter_server build/examples/greeter/greeter_client
}

cmd_test() {
  cmd_deps
  say "configuring an ASan+UBSan build with -Werror in build-asan/"
  cmake -S . -B build-asan -DCRPC_SANITIZE=ON -DCRPC_WERROR=ON >/dev/null
  say "building"
  cmake --build build-asan -j "$jobs"
  say "running the tests"
  (cd build-asan &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j2)
}

# build_and_test DIR CTEST_ARGS -- CMAKE_ARGS...: configure DIR with -Werror and the arguments,
# build everything, run ctest with CTEST_ARGS (a string: extra ctest arguments such as -R REGEX).
build_and_test() {
  local dir=$1 ctest_args=$2
  shift 3
  say "configuring $dir ($*)"
  cmake -S . -B "$dir" -DCRPC_WERROR=ON "$@" >/dev/null
  say "building"
  cmake --build "$dir" -j "$jobs"
  say "running the tests"
  # shellcheck disable=SC2086 # ctest_args is a list of words
  (cd "$dir" && ctest --output-on-failure -j2 $ctest_args)
}

cmd_test_release() {
  cmd_deps
  build_and_test build-release "" -- -DCMAKE_BUILD_TYPE=Release
}

cmd_test_clang() {
  cmd_deps clang libclang-rt-dev # the intsan test (tests/fuzz) links clang's UBSan runtime
  # The libFuzzer programs are .ci/run's own step; the replay of their corpora runs here too.
  CC=clang build_and_test build-clang "" -- -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRPC_FUZZ=OFF
}

# Every test whose process runs more than one thread: the calls, deadlines, limits, streams,
# lifecycle, transports and hostile tests and the codegen loopback test run servers or blocking
# callers on threads of their own (not limits_emfile, which forks). Not the large-message tests:
# they move gigabytes through memcpy, which ThreadSanitizer slows past their 20 s deadlines, and
# their threads do nothing the blocking and batch_and_leader tests do not.
tsan_tests='-R ^(calls_|deadlines_|limits_|streams_|lifecycle_|transports_|hostile_|codegen_loopback|codegen_old_names|examples_) -E ^(calls_large_messages_|limits_emfile)'

cmd_test_tsan() {
  cmd_deps
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    build_and_test build-tsan "$tsan_tests" -- -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCRPC_SANITIZE_THREAD=ON
}

case ${1:-} in
  deps) cmd_deps ;;
  demo) cmd_demo ;;
  test) cmd_test ;;
  test-release) cmd_test_release ;;
  test-clang) cmd_test_clang ;;
  test-tsan) cmd_test_tsan ;;
  greet) shift; cmd_greet "$@" ;;
  -h | --help | help) sed -n '2,19s/^# \{0,1\}//p' "$0" ;;
  *) sed -n '2,19s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
