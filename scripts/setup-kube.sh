#!/usr/bin/env bash
# The Kubernetes control plane of tests/k8s/test_apiserver_*.py and the TERM harness: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl and etcd, built from the Go module proxy into
# .tools/kube/<version>/bin. The version is tests/k8s/kube/VERSION (why that one: see
# docs/term-test.md, "The control plane").
#
# How: a wrapper module that requires k8s.io/kubernetes at that version. Kubernetes' own go.mod
# points each staging module (k8s.io/api, k8s.io/client-go, ...) at ./staging/src, which a module
# download does not carry, so the wrapper replaces each with the copy published as
# v0.<minor>.<patch>. etcd is etcdmain at the version kubernetes' module graph selects.
# Cold: 6-10 min of 2 cores and ~2.5 GB of memory (kube-apiserver is most of it). Idempotent: a
# binary that reports the wanted version is kept, so a warm run builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(tr -d ' \n' < tests/k8s/kube/VERSION)
case "$version" in
  v1.[0-9]*.[0-9]*) ;;
  *) echo "setup-kube: tests/k8s/kube/VERSION is '$version', expected a release such as v1.36.3" >&2; exit 1 ;;
esac
minor_patch=${version#v1.}
dir=.tools/kube/$version
bin=$dir/bin
components=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

# The version each binary reports, or nothing when it is missing or reports another.
reports() {
  case "$1" in
    kubectl) "$bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
    etcd) "$bin/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: /v/p' ;;
    *) "$bin/$1" --version 2>/dev/null | sed -n 's/^Kubernetes //p' ;;
  esac
}
# In the order the tests need them: etcd and the API server first (tests/k8s), the controllers
# next (the TERM harness), kubectl last (for people).
missing=()
etcd_version=$(cat "$bin/etcd.version" 2>/dev/null || true)
[ -x "$bin/etcd" ] && [ -n "$etcd_version" ] && [ "$(reports etcd)" = "$etcd_version" ] || missing+=(etcd)
for c in "${components[@]}"; do
  [ -x "$bin/$c" ] && [ "$(reports "$c")" = "$version" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "setup-kube: Go is required to build the Kubernetes control plane (https://go.dev/dl/)" >&2; exit 1; }

src=$dir/src
mkdir -p "$src/etcd" "$bin"
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
kube_mod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
[ -f "$kube_mod" ] || { echo "setup-kube: could not download k8s.io/kubernetes@$version" >&2; exit 1; }
{
  echo "module kubebuild"
  echo
  # kubernetes' own go directive and godebug defaults, so the binaries behave as released.
  grep -E '^(go|godebug) ' "$kube_mod"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$kube_mod" | sed -n "s#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.$minor_patch#p"
  echo ")"
} > "$src/go.mod"
cat > "$src/etcd/main.go" <<'GO'
// etcd's own entry point (go.etcd.io/etcd/server/v3/etcdmain), at the version kubernetes selects.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO

# What `kube-apiserver --version` and the /version endpoint report (hack/lib/version.sh).
minor=${minor_patch%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
started=$(date +%s)
for c in "${missing[@]}"; do
  case "$c" in
    etcd)
      (cd "$src" && go build -ldflags "-s -w" -o "../bin/etcd.new" ./etcd)
      etcd_version=v$(cd "$src" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3 | sed 's/^v//')
      echo "$etcd_version" > "$bin/etcd.version"
      ;;
    *) (cd "$src" && go build -ldflags "$ldflags" -o "../bin/$c.new" "k8s.io/kubernetes/cmd/$c") ;;
  esac
  mv "$bin/$c.new" "$bin/$c"
  echo "setup-kube: built $bin/$c ($(( $(date +%s) - started )) s so far)"
done
for c in "${components[@]}"; do
  [ "$(reports "$c")" = "$version" ] || { echo "setup-kube: $bin/$c reports '$(reports "$c")', not $version" >&2; exit 1; }
done
[ "$(reports etcd)" = "$etcd_version" ] || { echo "setup-kube: $bin/etcd reports '$(reports etcd)', not $etcd_version" >&2; exit 1; }
