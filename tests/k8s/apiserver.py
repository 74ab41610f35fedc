"""The real API server of tests/k8s/test_apiserver_*.py: one per committed stack, started once
per test session (tests/k8s/conftest.py), with the vendored CRDs installed and every object of
that stack's offline plan applied server-side with strict field validation.

No controller manager runs here (the TERM harness in agent/tests/term runs one): the
`default` ServiceAccount and `kube-root-ca.crt` of each namespace are made by
`ensure_namespace_basics`, and no Deployment gets pods unless a test makes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tooling.plan import PlanResult
from k8s.manifests import manifest_from_inputs
from tests.k8s.controlplane import ApiError, ControlPlane

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
# The CRDs a GKE cluster has and the stacks use, as vendored (tests/schemas/SOURCES.md).
CRDS = ("podmonitoring-crd.yaml", "secretproviderclass-crd.yaml", "capacitybuffer-crd.yaml")
FIELD_MANAGER = "gke-voice-agents"


def manifests(plan: PlanResult) -> list[dict[str, Any]]:
    """Every Kubernetes object of the plan in the order the plan declares them (the order
    `python -m tooling.plan` writes out/<stack>/manifests/*.yaml in), as JSON values."""
    found = []
    for resource in plan.resources:
        manifest = manifest_from_inputs(resource["type"], resource["inputs"])
        if manifest is not None:
            found.append(json.loads(json.dumps(manifest, default=str)))
    return found


def describe(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {where}{metadata.get('name')} ({obj.get('apiVersion')})"


def install_crds(cluster: ControlPlane) -> list[str]:
    """Apply each vendored CRD and wait until the server serves it (Established)."""
    names = []
    for filename in CRDS:
        crd = yaml.safe_load((SCHEMAS / filename).read_text())
        cluster.apply(crd, field_manager=FIELD_MANAGER)
        name = crd["metadata"]["name"]
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

        def established(path=path) -> bool:
            conditions = (cluster.call("GET", path).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        cluster.wait_for(f"CRD {name} Established", established, timeout=30)
        names.append(name)
    return names


@dataclass
class AppliedStack:
    stack: str
    cluster: ControlPlane
    objects: list[dict[str, Any]]
    plan: PlanResult
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # describe(obj) -> server's object
    failures: list[str] = field(default_factory=list)

    def first(self, kind: str, name: str | None = None) -> dict[str, Any]:
        return next(o for o in self.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


def apply_stack(stack: str, plan: PlanResult, cluster: ControlPlane) -> AppliedStack:
    """CRDs first, then every object in plan order; a refusal is kept as `<object>: <message>`
    so the test names every object the server refused, not just the first."""
    applied = AppliedStack(stack, cluster, manifests(plan), plan)
    install_crds(cluster)
    for obj in applied.objects:
        try:
            applied.answers[describe(obj)] = cluster.apply(obj, field_manager=FIELD_MANAGER)
        except (ApiError, LookupError) as error:
            applied.failures.append(f"{describe(obj)}: {error}")
            continue
        if obj["kind"] == "Namespace":
            cluster.ensure_namespace_basics(obj["metadata"]["name"])
    return applied
