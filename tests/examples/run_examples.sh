#!/bin/sh
# Runs each example server and its client against each other, on a free loopback TCP port (the
# server picks it: port 0, and prints it) and on a Unix socket in a temp directory.
#
#   run_examples.sh GREETER_SERVER GREETER_CLIENT KVSTORE_SERVER KVSTORE_CLIENT
#
# Every wait is bounded; servers are stopped with SIGTERM and must exit 0.
set -u
greeter_server=$1 greeter_client=$2 kvstore_server=$3 kvstore_client=$4

dir=$(mktemp -d "${TMPDIR:-/tmp}/crpc-examples.XXXXXX") || exit 1
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# start_server NAME BINARY LISTEN: starts it, waits (10 s at most) for its "listening on" line
# and sets $endpoint to what clients connect to.
start_server() {
  name=$1 bin=$2 listen=$3
  out="$dir/$name.out"
  : > "$out"
  "$bin" "$listen" > "$out" 2>&1 &
  server_pid=$!
  endpoint=
  i=0
  while [ $i -lt 100 ]; do
    line=$(sed -n 's/^listening on //p' "$out" | head -n 1)
    if [ -n "$line" ]; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
    i=$((i + 1))
  done
  case "$line" in
    "") fail "$name did not start on $listen:"; cat "$out"; return 1 ;;
    "port "*) endpoint="tcp://127.0.0.1:${line#port }" ;;  # greeter: "listening on port N"
    *) endpoint=$line ;;
  esac
  echo "$name listening on $endpoint"
}

# stop_server NAME: SIGTERM, then wait (10 s at most) for exit status 0.
stop_server() {
  kill -TERM "$server_pid"
  i=0
  while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$server_pid" 2>/dev/null; then
    fail "$1 did not stop on SIGTERM"
    kill -KILL "$server_pid"
  fi
  wait "$server_pid"
  status=$?
  server_pid=
  [ $status -eq 0 ] || fail "$1 exited with status $status"
}

for transport in tcp unix; do
  case $transport in
    tcp) g_listen="tcp://127.0.0.1:0" k_listen="tcp://127.0.0.1:0" ;;
    unix) g_listen="unix:$dir/greeter.sock" k_listen="unix:$dir/kvstore.sock" ;;
  esac

  if start_server greeter_server "$greeter_server" "$g_listen"; then
    reply=$(timeout 30 "$greeter_client" world "$endpoint" 2>&1)
    [ "$reply" = "Hello, world" ] || fail "greeter_client over $transport printed: $reply"
    stop_server greeter_server
  fi

  if start_server kvstore_server "$kvstore_server" "$k_listen"; then
    timeout 60 "$kvstore_client" "$endpoint"
    status=$?
    [ $status -eq 0 ] || fail "kvstore_client over $transport exited with status $status"
    stop_server kvstore_server
  fi
done

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "examples: all passed"
