"""Rendered manifests validate against the Kubernetes JSON schema of the cluster's version."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.plan import write_manifests
from k8s.manifests import MASKED

# GKE's REGULAR channel runs 1.34 in late 2026; the schemas ship with kubernetes-validate.
KUBERNETES_VERSION = "1.34"

# The GMP PodMonitoring CRD is not in the upstream schemas: this is the part of its
# openAPIV3Schema (monitoring.googleapis.com/v1) that our object uses, strict like the rest.
POD_MONITORING_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.googleapis.com/v1"},
        "kind": {"const": "PodMonitoring"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}}, "additionalProperties": False},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["port"], "additionalProperties": False,
                    "properties": {"port": {"type": ["string", "integer"]}, "path": {"type": "string"},
                                   "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                   "timeout": {"type": "string"}, "scheme": {"enum": ["http", "https"]}}}},
            },
        },
    },
}


def validate(manifest: dict) -> None:
    if manifest["kind"] == "PodMonitoring":
        jsonschema.validate(manifest, POD_MONITORING_SCHEMA)
    else:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.fixture
def manifests(plan, tmp_path) -> dict[str, dict]:
    paths = write_manifests(plan.resources, tmp_path)
    return {p.name: yaml.safe_load(p.read_text()) for p in paths}


def test_every_object_is_written_and_schema_valid(plan, manifests):
    kinds = sorted(m["kind"] for m in manifests.values())
    spare = ["PriorityClass", "Deployment"] if plan.stack == "prod" else []
    assert kinds == sorted(["Namespace", "ServiceAccount", "Secret", "Deployment", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "PodMonitoring", "NetworkPolicy", *spare])
    for name, manifest in manifests.items():
        validate(manifest)  # raises with the path of the offending field


def test_strict_validation_can_fail(manifests):
    """Negative control: a misspelt field must be rejected, or the test above proves nothing."""
    deployment = copy.deepcopy(next(m for m in manifests.values() if m["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitoring = copy.deepcopy(next(m for m in manifests.values() if m["kind"] == "PodMonitoring"))
    monitoring["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitoring)


def test_secret_manifest_never_holds_secret_material(manifests):
    secret = next(m for m in manifests.values() if m["kind"] == "Secret")
    assert secret["stringData"] == {"url": MASKED, "api-key": MASKED, "api-secret": MASKED}


def test_manifests_are_written_in_apply_order(plan, tmp_path):
    names = [p.name for p in write_manifests(plan.resources, tmp_path)]
    assert names[0].startswith("00-namespace") and names == sorted(names)
