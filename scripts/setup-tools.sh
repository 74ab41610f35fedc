#!/usr/bin/env bash
# Linters the CI tests run for real, installed into .tools/bin. Idempotent: does nothing when the
# pinned versions are already there.
#   actionlint  GitHub workflow linter, built from the Go module proxy (needs Go).
#   shellcheck  optional; actionlint checks every `run:` script with it when it is on PATH.
#               Installed from Debian's packages only when running as root with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

actionlint_version=v1.7.12
bin=.tools/bin

mkdir -p "$bin"
if [ -x "$bin/actionlint" ] && "$bin/actionlint" -version 2>/dev/null | head -n 1 | grep -qx "${actionlint_version}"; then
  :
else
  command -v go >/dev/null 2>&1 || { echo "setup-tools: Go is required to build actionlint (https://go.dev/dl/)" >&2; exit 1; }
  GOBIN="$PWD/$bin" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@${actionlint_version}"
  "$bin/actionlint" -version | head -n 1
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # A fresh Debian machine has no package lists yet.
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }; then
      echo "setup-tools: shellcheck not installed; actionlint runs without it" >&2
    fi
  else
    echo "setup-tools: shellcheck not on PATH (needs root for apt-get); actionlint runs without it" >&2
  fi
fi
