#!/usr/bin/env bash
# Installs Prometheus (Debian's `prometheus` package) for the runbook tests: every PromQL
# expression of the dashboard, the alerts and the rollout check runs against a real server that
# the tests start themselves (agent/tests/helpers/prometheus.py; the package's own service is
# never used). Idempotent: skips when the binary is already there.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; then
  exit 0
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
# --no-install-recommends: the server binary only, no node exporter or web console extras
$sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
/usr/bin/prometheus --version | head -n 1
