#!/usr/bin/env bash
# Installs the Debian `prometheus` package when /usr/bin/prometheus is missing, so test/prometheus.test.ts can run
# a real Prometheus server on a fresh machine (CI runs as root). Idempotent; safe to call from many places.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
# --no-install-recommends: only the server binary is needed, not its exporters/UI extras.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system service on :9090 where systemd/invoke-rc.d run; the test runs its own server.
command -v prometheus >/dev/null
