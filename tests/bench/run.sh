#!/usr/bin/env bash
# Measures Gatehouse side by side with the peers of ../shared/bench (Dovecot direct, nginx's mail
# proxy, optionally Perdition) in ONE run, so the ratios are comparable on this noisy machine.
#   tests/bench/run.sh [--directory static|ldap] [--targets "direct-a ours nginx"] [--keep]
# Env knobs are the rig's (BENCH_DURATION, BENCH_MODES, BENCH_IDLE, ...), see its README.
# Output: the rig's results/ tables in /tmp/bench/results and a side-by-side summary on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rig_src="$repo/../shared/bench"
rig=/tmp/bench
directory=static
targets="direct-a ours nginx"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --directory) directory="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--directory static|ldap] [--targets LIST] [--keep]" >&2; exit 2 ;;
  esac
done

# The shared rig is read-only: work on a copy (results stay in the copy).
if [ ! -d "$rig" ]; then cp -r "$rig_src" "$rig"; chmod -R u+w "$rig"; fi
"$rig/setup.sh"
"$rig/build.sh" >/dev/null
"$rig/env-up.sh"

cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release -DGATEHOUSE_WERROR=OFF >/dev/null
cmake --build "$repo/build-bench" -j2 --target gatehouse >/dev/null

state=/tmp/bench-ours
mkdir -p "$state"
pop3_flag=()
case "${BENCH_MODES:-pop3}" in *pop3*) ;; *) pop3_flag=(--no-pop3) ;; esac
python3 "$here/make_config.py" --directory "$directory" --out "$state" --users "${BENCH_USERS:-1000}" \
  "${pop3_flag[@]}"
"$repo/build-bench/gatehouse" --check-config "$state/gatehouse.json"
ulimit -n 20000 2>/dev/null || true
"$repo/build-bench/gatehouse" --config "$state/gatehouse.json" 2>"$state/gatehouse.log" &
gh_pid=$!
echo "$gh_pid" > "$state/proxy.pid"
cleanup() {
  kill -TERM "$gh_pid" 2>/dev/null || true
  wait "$gh_pid" 2>/dev/null || true
  [ "$keep" = 1 ] || "$rig/env-down.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q '"listener":"imaps"' "$state/gatehouse.log" 2>/dev/null && break
  kill -0 "$gh_pid" || { cat "$state/gatehouse.log"; exit 1; }
  sleep 0.1
done

# Gatehouse logs one line per session; at benchmark rates that is the proxy's own cost too, so
# it stays on, like nginx's access log.
stamp_before=$(ls "$rig/results" | wc -l)
for t in $targets; do
  if [ "$t" = ours ]; then
    pop3_arg=(--pop3 127.0.0.1:20410)
    [ ${#pop3_flag[@]} -eq 0 ] || pop3_arg=()
    BENCH_TAG="gatehouse-$directory" "$rig/run.sh" ours 127.0.0.1:20443 "${pop3_arg[@]}" \
      --imaps 127.0.0.1:20493 --pidfile "$state/proxy.pid"
  else
    BENCH_TAG="gatehouse-$directory" "$rig/run.sh" "$t"
  fi
done
python3 "$rig/tools/summarize.py" --targets "$(echo "$targets" | tr ' ' ',')" || true
