#!/usr/bin/env bash
# The CSI mount harness of tests/k8s/test_csi_mount.py: the Secret Manager provider GKE's add-on
# derives from (secrets-store-csi-driver-provider-gcp, pinned at v1.7.0 in
# tests/k8s/csi_mount/go.mod), run against imitations of Google's and Kubernetes' servers, built
# into .tools/bin/csi-mount. Needs Go and the Go module proxy. Idempotent: does nothing when the
# binary was built from the current sources (their digest is kept beside it).
set -euo pipefail
cd "$(dirname "$0")/.."

src=tests/k8s/csi_mount
bin=.tools/bin

mkdir -p "$bin"
# The same digest the test checks: go.mod, go.sum, then the .go files in name order.
digest=$(cd "$src" && export LC_ALL=C && cat go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)
if [ -x "$bin/csi-mount" ] && [ "$(cat "$bin/csi-mount.sources" 2>/dev/null)" = "$digest" ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "setup-csi-mount: Go is required to build the CSI mount harness (https://go.dev/dl/)" >&2; exit 1; }
(cd "$src" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "../../../$bin/csi-mount" .)
echo "$digest" > "$bin/csi-mount.sources"
echo "setup-csi-mount: built $bin/csi-mount"
