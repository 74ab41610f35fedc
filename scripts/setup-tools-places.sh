#!/usr/bin/env bash
# Places tool server venv (tools/places/.venv): its pinned runtime (tools/places/requirements.txt)
# plus its test tools (requirements-test.txt). Its own venv, as it has its own image: the tool
# server shares no dependency set with the agent or the infra side.
# Idempotent: pip runs only when one of the two requirement files changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/../tools/places"
# The image runs Python 3.11 (tools/places/Dockerfile): prefer it here too when it is installed.
python=${TOOLS_PYTHON:-$(command -v python3.11 || command -v python3)}
"$python" -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-test.txt
  echo "$want" > "$stamp"
fi
