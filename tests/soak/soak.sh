#!/bin/sh
# Soak: builds crpc (Release) with the soak driver and runs it for MINUTES (default 10) against a
# server process on loopback: mixed unary load (async and blocking calls, cancels, deadlines,
# channels closed and reopened). Prints once a minute the server's RSS and open descriptors, the
# calls done and the minute's p99 latency; at the end, whether RSS and descriptors stayed flat
# after the warm-up (the first third of the run, at least 2 minutes: RSS within +10% and 256 kB,
# descriptors within +5). Exit status 0 when flat.
#
#   tests/soak/soak.sh [MINUTES]        SOAK_BUILD_DIR (default /tmp/crpc-soak-build)
set -eu
minutes=${1:-10}
case $minutes in ''|*[!0-9]*|0) echo "usage: $0 [MINUTES]" >&2; exit 2 ;; esac
src=$(cd "$(dirname "$0")" && pwd)
build=${SOAK_BUILD_DIR:-/tmp/crpc-soak-build}
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target soak_driver soak_server >/dev/null
exec "$build/soak_driver" --server "$build/soak_server" --minutes "$minutes"
