#!/usr/bin/env bash
# Linters the tests run for real: actionlint (GitHub workflows) and shellcheck, which
# actionlint uses for `run:` scripts when it is on PATH. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools/bin
if [ ! -x .tools/bin/actionlint ]; then
  GOBIN="$PWD/.tools/bin" GOFLAGS=-mod=mod go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null) || echo "shellcheck not installed; actionlint runs without it"
  fi
fi
