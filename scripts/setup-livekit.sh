#!/usr/bin/env bash
# Installs the LiveKit server the agent's integration tests run against, as
# .tools/bin/livekit-server. Idempotent: skips when that binary already reports the pinned
# version. Needs Go (the module comes from the Go module proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.13.5
bin=.tools/bin/livekit-server
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "livekit-server version ${version#v}"; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "setup-livekit: Go is required (https://go.dev/dl/)" >&2; exit 1; }
mkdir -p .tools/bin
# `go install` names the binary after its package directory (cmd/server), hence the rename.
GOBIN="$PWD/.tools/bin" go install "github.com/livekit/livekit-server/cmd/server@${version}"
mv -f .tools/bin/server "$bin"
"$bin" --version
