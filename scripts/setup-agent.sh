#!/usr/bin/env bash
# Agent venv (agent/.venv): the voice agent's pinned runtime (agent/requirements.txt) plus its
# test tools (agent/requirements-test.txt: pytest, hadolint). Separate from the infra venv on
# purpose: livekit-plugins-google needs protobuf >= 6.33, pulumi-policy pins ~=5.29.
# Idempotent: pip runs only when one of the two requirement files changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
# The image runs Python 3.11 (agent/Dockerfile): prefer it here too when it is installed.
python=${AGENT_PYTHON:-$(command -v python3.11 || command -v python3)}
"$python" -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
[ -x agent/.venv/bin/python ] || "$python" -m venv agent/.venv
stamp=agent/.venv/.requirements.sha256
want=$(cat agent/requirements.txt agent/requirements-test.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  agent/.venv/bin/python -m pip install -q -r agent/requirements.txt -r agent/requirements-test.txt
  echo "$want" > "$stamp"
fi
