#!/usr/bin/env bash
# What one login costs Gatehouse itself, in numbers that do not depend on the machine's noise:
# system calls per login (strace -c) and user-space instructions per login in the worker threads
# (valgrind's callgrind). Useful to compare two builds, e.g. before and after a change:
#   tests/bench/login_profile.sh build-bench/gatehouse /tmp/old/gatehouse
# Each binary runs with one worker and the static directory in front of the rig's back-ends
# (KEEP=1 tests/bench/run.sh direct-a leaves them up); the rig's mailload does LOGIN, SELECT,
# LOGOUT on new connections, one at a time (c=1) and 16 at a time for the system calls.
# Env: LOGINS (300), MODE (login | tls).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rig=/tmp/bench
state=/tmp/bench-login-profile
logins=${LOGINS:-300}
mode=${MODE:-login}
[ $# -gt 0 ] || set -- "$repo/build-bench/gatehouse"
[ -x "$rig/mailload" ] || { echo "rig not built: run tests/bench/run.sh first" >&2; exit 1; }
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
command -v strace >/dev/null || apt-get install -y strace >/dev/null

mkdir -p "$state"
python3 "$here/make_config.py" --out "$state" --directory static --users "${BENCH_USERS:-1000}" >/dev/null
# One worker, ports of its own (the rig's Gatehouse ports may be in use).
python3 - "$state/gatehouse.json" <<'EOF'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["workers"] = 1
for listener in config["listeners"]:
    listener["port"] += 200
json.dump(config, open(path, "w"), indent=1)
EOF
port=20643
load_args=(-m login -h 127.0.0.1 -p "$port")
if [ "$mode" = tls ]; then port=20693; load_args=(-m login --tls -h 127.0.0.1 -p "$port"); fi

pid=
stop() { [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }; }
trap stop EXIT
wait_listening() {
  for _ in $(seq 120); do
    grep -q '"listener":"imaps"' "$state/gatehouse.log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$state/gatehouse.log" >&2; exit 1; }
    sleep 0.25
  done
  echo "gatehouse did not start" >&2; exit 1
}
ok_count() { grep -o 'ok=[0-9]*' | cut -d= -f2; }

for bin in "$@"; do
  for conc in 1 16; do
    "$bin" --config "$state/gatehouse.json" 2>"$state/gatehouse.log" &
    pid=$!
    wait_listening
    strace -f -c -o "$state/strace.txt" -p "$pid" 2>/dev/null &
    tracer=$!
    sleep 0.5  # strace attaches asynchronously; logins before that would be missed, not miscounted
    ok=$("$rig/mailload" "${load_args[@]}" -c "$conc" -d 60 --max-cycles "$logins" 2>&1 | ok_count)
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    stop
    calls=$(awk '$NF == "total" {print $4}' "$state/strace.txt")
    echo "$bin $mode c=$conc: $(awk -v c="$calls" -v n="$ok" 'BEGIN {printf "%.1f", c / n}') system calls per login"
  done
  valgrind --tool=callgrind --callgrind-out-file="$state/callgrind.out" \
    "$bin" --config "$state/gatehouse.json" 2>"$state/gatehouse.log" &
  pid=$!
  wait_listening
  ok=$("$rig/mailload" "${load_args[@]}" -c 1 -d 120 --max-cycles "$logins" 2>&1 | ok_count)
  stop
  worker=$(callgrind_annotate --inclusive=yes "$state/callgrind.out" 2>/dev/null |
    awk '/Worker::startThread/ && !found {gsub(",", "", $1); print $1; found = 1}')
  echo "$bin $mode c=1: $((worker / ok)) user-space instructions per login (worker threads)"
done
