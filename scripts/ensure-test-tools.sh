#!/usr/bin/env bash
# What the test suite needs besides Node and npm, installed the same way for every test that needs it:
# the vitest globalSetup (test/support/globalSetup.ts) runs this once before any test file.
#   - Chromium (the Debian `chromium` package; dashboard and API browser tests drive it through playwright-core,
#     whose own browser download does not work here). CHROMIUM_PATH points at another binary.
#   - Prometheus (the Debian `prometheus` package; test/prometheus.test.ts scrapes the service with a real server).
# As root it installs what is missing with apt-get; as anyone else it names the missing packages and the
# command that installs them, and exits 1. Idempotent, and quiet when everything is there.
set -euo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
missing=()
[ -x "$chromium" ] || missing+=(chromium)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

install="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need ${missing[*]} (not installed). Install with: sudo apt-get update && sudo $install" >&2
  [ -x "$chromium" ] || echo "(or set CHROMIUM_PATH to a Chromium binary)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need ${missing[*]} (not installed) and this machine has no apt-get: install them with its package manager" >&2
  exit 1
fi
echo "Installing what the tests need: ${missing[*]} (apt-get, once per machine)" >&2
export DEBIAN_FRONTEND=noninteractive
# Lock::Timeout: another install on the machine (a second test run) holds dpkg's lock; wait for it, not fail.
apt-get -o DPkg::Lock::Timeout=600 update -qq
# --no-install-recommends: only the binaries, not Prometheus's exporters or Chromium's extras. The prometheus
# package would start a system service where systemd runs; the test starts its own server on its own port.
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -x "$chromium" ] || { echo "$chromium is still missing after installing chromium: unset CHROMIUM_PATH or point it at a Chromium binary" >&2; exit 1; }
command -v prometheus >/dev/null
