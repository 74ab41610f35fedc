#!/usr/bin/env bash
# Offline plan of one stack (default dev) under Pulumi mocks: resource tree, rendered
# Kubernetes manifests and policy verdicts in out/<stack>/. No cloud, no Pulumi CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${1:-dev}"
bash scripts/setup-infra.sh
exec .venv/bin/python -m tooling.plan --stack "$stack" --out "out/$stack"
