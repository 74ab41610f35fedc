#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs everything it needs, then runs it all.
# Offline apart from the package registries; no cloud credentials, no Pulumi CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p out
# The CSI mount harness compiles Kubernetes' client libraries (2-3 min cold on 2 cores): built in
# the background while the other setups mostly wait on downloads and package installs.
bash scripts/setup-csi-mount.sh > out/setup-csi-mount.log 2>&1 &
csi_mount_build=$!
# The Kubernetes control plane (kube-apiserver, etcd, controller manager, scheduler, kubectl) of
# tests/k8s/test_apiserver_*.py and agent/tests/term/test_term_real_controllers.py: 8-15 min cold
# on 2 cores, nothing warm; built in the background too, at lower priority than the setups.
nice -n 5 bash scripts/setup-kube.sh > out/setup-kube.log 2>&1 &
kube_build=$!
bash scripts/setup-infra.sh
bash scripts/setup-agent.sh
bash scripts/setup-livekit.sh
bash scripts/setup-prometheus.sh
bash scripts/setup-postgres.sh
bash scripts/setup-tools.sh
wait "$csi_mount_build" || { cat out/setup-csi-mount.log; echo "building the CSI mount harness failed"; exit 1; }
cat out/setup-csi-mount.log
wait "$kube_build" || { tail -n 40 out/setup-kube.log; echo "building the Kubernetes control plane failed"; exit 1; }
tail -n 8 out/setup-kube.log
export PATH="$PWD/.tools/bin:$PATH"

# The offline plan of every committed stack must pass: valid config, manifests, no mandatory
# policy violation.
for stack in dev prod; do
  .venv/bin/python -m tooling.plan --stack "$stack" --out "out/$stack" > "out/plan-$stack.log" 2>&1 \
    || { cat "out/plan-$stack.log"; echo "offline plan of $stack failed"; exit 1; }
  tail -n 3 "out/plan-$stack.log"
done

echo "== infra, workload, policy and CI tests (infra venv)"
.venv/bin/python -m pytest tests -q -p no:cacheprovider

# before the agent tests: they start this tool server from its venv
bash scripts/setup-tools-places.sh && echo "== Places tool server (own venv)" && tools/places/.venv/bin/python -m pytest tools/places/tests -q -p no:cacheprovider

echo "== agent tests against a real LiveKit server (agent venv)"
agent/.venv/bin/python -m pytest agent/tests -q -p no:cacheprovider
