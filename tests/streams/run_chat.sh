#!/bin/sh
# examples/chat end to end, non-interactively: a server on a free loopback port, "bob" reading
# stdin from a FIFO the script holds open, and "alice" fed one line from a pipe. Checks that
# alice's line reaches bob, that bob hears alice join, and that everyone exits 0.
#
#   run_chat.sh CHAT_SERVER CHAT_CLIENT
#
# Every wait is bounded (10 s).
set -u
server=$1 client=$2

dir=$(mktemp -d "${TMPDIR:-/tmp}/crpc-chat.XXXXXX") || exit 1
server_pid= bob_pid=
cleanup() {
  exec 3>&- 2>/dev/null
  for pid in $bob_pid $server_pid; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT

# wait_for FILE PATTERN: 10 s at most for a line matching PATTERN (fixed string) in FILE.
wait_for() {
  i=0
  while [ $i -lt 100 ]; do
    if grep -qF -- "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "FAIL: no '$2' in $1 after 10 s; it has:"
  cat "$1"
  return 1
}

"$server" tcp://127.0.0.1:0 > "$dir/server.out" 2>&1 &
server_pid=$!
wait_for "$dir/server.out" "listening on port" || exit 1
port=$(sed -n 's/^listening on port //p' "$dir/server.out" | head -n 1)
endpoint="tcp://127.0.0.1:$port"

mkfifo "$dir/bob.in" || exit 1
"$client" bob "$endpoint" < "$dir/bob.in" > "$dir/bob.out" 2>&1 &
bob_pid=$!
exec 3> "$dir/bob.in" # bob's stdin stays open until we close fd 3
wait_for "$dir/bob.out" "* welcome, bob" || exit 1

printf 'hello from alice\n' | "$client" alice "$endpoint" > "$dir/alice.out" 2>&1
alice_rc=$?
wait_for "$dir/bob.out" "* alice joined" || exit 1
wait_for "$dir/bob.out" "[alice] hello from alice" || exit 1
if [ $alice_rc -ne 0 ]; then
  echo "FAIL: alice exited $alice_rc:"
  cat "$dir/alice.out"
  exit 1
fi
grep -qF "* welcome, alice; here:" "$dir/alice.out" || { echo "FAIL: alice not welcomed:"; cat "$dir/alice.out"; exit 1; }

echo "bye" >&3
exec 3>&- # bob's end of input: bob leaves
i=0
while kill -0 "$bob_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait "$bob_pid"
bob_rc=$?
bob_pid=
if [ $bob_rc -ne 0 ]; then
  echo "FAIL: bob exited $bob_rc:"
  cat "$dir/bob.out"
  exit 1
fi
wait_for "$dir/server.out" "bob left" || exit 1

kill -TERM "$server_pid"
i=0
while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait "$server_pid"
server_rc=$?
server_pid=
if [ $server_rc -ne 0 ]; then
  echo "FAIL: chat_server exited $server_rc:"
  cat "$dir/server.out"
  exit 1
fi
echo "chat: bob heard alice; all exited 0"
