#!/usr/bin/env bash
# Measures Gatehouse side by side with the peers of ../shared/bench (Dovecot direct, nginx's mail
# proxy, Perdition) in ONE run, so that the ratios are comparable on this noisy, shared machine.
#   tests/bench/run.sh [TARGET...]      default: direct-a ours:static nginx
# A TARGET is a rig target (direct-a, nginx, perdition) or a Gatehouse variant:
#   ours:static            static users file ({SSHA}), the rig's 1000 users
#   ours:ldap-cold         LDAP, cache off: every login is a search and a bind
#   ours:ldap-warm         LDAP, cache on (TTL 1 h)
#   ours:ldap-warm-stopped LDAP, cache on, slapd SIGSTOPped after a warm-up pass over all users
# Env knobs are the rig's (BENCH_DURATION, BENCH_MODES, BENCH_IDLE, ...), see its README; with
# KEEP=1 the rig's servers stay up afterwards. Results: /tmp/bench/results, summary on stdout.
# GATEHOUSE_BENCH_BIN=path measures that binary instead of building build-bench/ (an A/B of two
# builds in one rig: run the script once per binary, alternating).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rig=/tmp/bench
state=/tmp/bench-ours
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(direct-a ours:static nginx)

# The shared rig is read-only: work on a copy (its results stay in the copy).
if [ ! -d "$rig" ]; then cp -r "$repo/../shared/bench" "$rig"; chmod -R u+w "$rig"; fi
"$rig/setup.sh"
"$rig/build.sh" >/dev/null
# The rig's servers may still be up from a run with KEEP=1: env-up.sh refuses to start twice.
rig_up=1
for f in /tmp/bench-ldap/slapd.pid /tmp/bench-dovA/run/master.pid /tmp/bench-nginx/nginx.pid; do
  [ -s "$f" ] && kill -0 "$(head -1 "$f")" 2>/dev/null || rig_up=0
done
[ "$rig_up" = 1 ] || "$rig/env-up.sh"

gatehouse_bin=${GATEHOUSE_BENCH_BIN:-$repo/build-bench/gatehouse}
if [ -z "${GATEHOUSE_BENCH_BIN:-}" ]; then
  cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$repo/build-bench" -j2 --target gatehouse >/dev/null
fi
mkdir -p "$state"
ulimit -n 20000 2>/dev/null || true

gh_pid=
slapd_stopped=0
stop_gatehouse() {
  if [ "$slapd_stopped" = 1 ]; then kill -CONT "$(cat /tmp/bench-ldap/slapd.pid)"; slapd_stopped=0; fi
  [ -n "$gh_pid" ] || return 0
  kill -TERM "$gh_pid" 2>/dev/null || true
  wait "$gh_pid" 2>/dev/null || true
  gh_pid=
}
cleanup() {
  stop_gatehouse
  [ "${KEEP:-0}" = 1 ] || "$rig/env-down.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT

start_gatehouse() { # start_gatehouse make_config-args...
  python3 "$here/make_config.py" --out "$state" --users "${BENCH_USERS:-1000}" "$@"
  "$gatehouse_bin" --check-config "$state/gatehouse.json" >/dev/null
  "$gatehouse_bin" --config "$state/gatehouse.json" 2>"$state/gatehouse.log" &
  gh_pid=$!
  echo "$gh_pid" > "$state/proxy.pid"
  for _ in $(seq 100); do
    if grep -q '"listener":"imaps"' "$state/gatehouse.log" 2>/dev/null; then
      # A Gatehouse left running on these ports would take half the load, and its CPU would go
      # uncounted: no measurement then.
      if grep -q 'port shared with another process' "$state/gatehouse.log"; then
        echo "another process listens on Gatehouse's bench ports; stop it first" >&2
        exit 1
      fi
      return 0
    fi
    kill -0 "$gh_pid" 2>/dev/null || { cat "$state/gatehouse.log"; exit 1; }
    sleep 0.1
  done
  echo "gatehouse did not start" >&2; exit 1
}

# Logins with random users, twelve per user on average, so that every user is cached (a user
# missed has a chance of e^-12): with slapd stopped, a miss would wait for the LDAP timeout.
warm_up() {
  "$rig/mailload" -m login -c 16 -h 127.0.0.1 -p 20443 --users "${BENCH_USERS:-1000}" \
    --max-cycles "$((12 * ${BENCH_USERS:-1000}))" -d 60 >/dev/null 2>&1 || true
}

pop3_args() {
  case "${BENCH_MODES:-pop3}" in *pop3*) echo "--pop3 127.0.0.1:20410" ;; esac
}

labels=()
for t in "${targets[@]}"; do
  case "$t" in
    ours:*)
      variant=${t#ours:}
      extra=()
      case "${BENCH_MODES:-pop3}" in *pop3*) ;; *) extra+=(--no-pop3) ;; esac
      case "$variant" in
        static) start_gatehouse --directory static "${extra[@]}" ;;
        ldap-cold) start_gatehouse --directory ldap --cache off "${extra[@]}" ;;
        ldap-warm) start_gatehouse --directory ldap --cache on "${extra[@]}"; warm_up ;;
        ldap-warm-stopped)
          start_gatehouse --directory ldap --cache on "${extra[@]}"; warm_up
          kill -STOP "$(cat /tmp/bench-ldap/slapd.pid)"; slapd_stopped=1 ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
      esac
      # shellcheck disable=SC2046
      BENCH_TAG="gatehouse-$variant" "$rig/run.sh" ours 127.0.0.1:20443 $(pop3_args) \
        --imaps 127.0.0.1:20493 --pidfile "$state/proxy.pid"
      stop_gatehouse
      labels+=(ours) ;;
    *)
      BENCH_TAG="gatehouse-run" "$rig/run.sh" "$t"
      labels+=("$t") ;;
  esac
done
python3 "$rig/tools/summarize.py" --targets "$(printf '%s\n' "${labels[@]}" | sort -u | paste -sd,)" || true
