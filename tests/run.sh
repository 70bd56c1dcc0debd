#!/usr/bin/env bash
# The whole test suite in one command, for a fresh Debian 12 as root with no stdin (CI: .ci/run):
# installs what is missing, then
#   build/       Release build; ctest: unit + in-process + integration tests (real Dovecot via the harness)
#   build-asan/  ASan + UBSan build; ctest: unit, in-process and integration tests
#   build-fuzz/  clang libFuzzer build; ctest: each fuzz target for a short time
# Exits non-zero on the first failure. Idempotent: rerunning reuses the build directories.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=2
PACKAGES=(cmake g++ pkg-config libuv1-dev android-libboringssl-dev libldap-dev nlohmann-json3-dev catch2
          dovecot-imapd dovecot-pop3d slapd ldap-utils postfix swaks libnet-ssleay-perl openssl
          curl python3
          clang libclang-rt-14-dev iproute2 haproxy)
# Services a Debian package starts on installation; the tests start their own instances on ephemeral ports.
SERVICES=(dovecot slapd postfix nginx haproxy)

export DEBIAN_FRONTEND=noninteractive
step() { printf '\n==== %s\n' "$*"; }

step "packages"
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    # Stop what apt may just have started (nothing is stopped that was running before this script).
    for s in "${SERVICES[@]}"; do
      if [ -d /run/systemd/system ]; then
        systemctl is-active --quiet "$s" 2>/dev/null && systemctl stop "$s" || true
      elif [ -x "/etc/init.d/$s" ]; then
        service "$s" status >/dev/null 2>&1 && service "$s" stop >/dev/null 2>&1 || true
      fi
    done
  else
    echo "all present"
  fi
else
  echo "not root: skipping package installation" >&2
fi

step "build/ (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$JOBS"

step "tests: unit + integration"
ctest --test-dir build --output-on-failure -j"$JOBS"

step "build-asan/ (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGATEHOUSE_SANITIZE=ON
cmake --build build-asan -j"$JOBS"

step "tests: unit + integration under ASan + UBSan"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS"

step "build-fuzz/ (clang, libFuzzer)"
# -Werror is the gate of the g++ builds above; clang's different warning set does not fail the fuzz build.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATEHOUSE_FUZZ=ON \
  -DGATEHOUSE_WERROR=OFF
fuzz_targets=()
for f in tests/fuzz/*_fuzz.cpp; do
  [ -e "$f" ] && fuzz_targets+=(--target "$(basename "$f" .cpp)")
done
if [ ${#fuzz_targets[@]} -gt 0 ]; then
  cmake --build build-fuzz -j"$JOBS" "${fuzz_targets[@]}"
  step "fuzz targets"
  ctest --test-dir build-fuzz --output-on-failure -R '^fuzz: '
else
  echo "no fuzz targets in tests/fuzz/"
fi

step "all tests passed"
