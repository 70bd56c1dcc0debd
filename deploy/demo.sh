#!/usr/bin/env bash
# One command for a local Gatehouse site on a fresh Debian 12 (as root): installs what it needs (apt),
# builds, then runs in the foreground two Dovecot back-ends with sample mail (A on 127.0.0.11, B on
# 127.0.0.12) and Gatehouse on 127.0.0.1:10143 (IMAP, STARTTLS) and 127.0.0.1:10993 (IMAPS).
# Users alice/alice-pass (home A) and bob/bob-pass (home B). Ctrl-C or SIGTERM stops everything it started.
# Idempotent: state is rebuilt in $GATEHOUSE_DEMO_STATE (default /tmp/gatehouse-demo) at every run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${GATEHOUSE_DEMO_STATE:-/tmp/gatehouse-demo}
PACKAGES=(cmake g++ pkg-config libuv1-dev android-libboringssl-dev libldap-dev nlohmann-json3-dev catch2
          dovecot-imapd dovecot-pop3d slapd ldap-utils postfix swaks libnet-ssleay-perl openssl
          curl python3)

[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it installs packages and runs Dovecot)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo.sh: installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # A Dovecot that apt has just started listens on *:143 and *:110, which the demo's back-ends need.
  if [[ " ${missing[*]} " == *" dovecot-"* ]]; then
    if [ -d /run/systemd/system ]; then systemctl stop dovecot 2>/dev/null || true
    else service dovecot stop >/dev/null 2>&1 || true; fi
  fi
fi

cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$ROOT/build" -j2 --target gatehouse

python3 "$ROOT/tests/integration/demo_site.py" --bin "$ROOT/build/gatehouse" --state "$STATE" &
site=$!
stop_site() {
  trap - INT TERM
  kill -TERM "$site" 2>/dev/null || true
  wait "$site" || true
  exit 0
}
trap stop_site INT TERM
rc=0
wait "$site" || rc=$?
exit "$rc"
