"""Rendered manifests: written by the offline plan, valid against the Kubernetes JSON schema of
every version the cluster may run (strict: no unknown fields), and free of secret material."""

from __future__ import annotations

import copy
import functools
import hashlib

import jsonschema
import kubernetes_validate
import pytest
from pathlib import Path
import yaml

from tooling.plan import write_manifests
from k8s.manifests import MASKED, manifest_from_inputs
from tests.k8s.rendered import plan_with

# The stacks pin a release channel, not a version: RAPID (dev) and REGULAR (prod) serve roughly
# 1.34-1.36 in late 2026, and GKE moves clusters forward on its own. So every manifest must be
# valid on each minor a channel may serve, up to the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36", "1.37")

# PodMonitoring (Google Cloud Managed Service for Prometheus, monitoring.googleapis.com/v1) is a
# CRD, absent from the upstream schemas. Written from the CRD's openAPIV3Schema for the fields an
# object of ours could use, equally strict: unknown fields are errors, as the API server's
# structural-schema pruning plus `kubectl --validate=strict` would make them.
_DURATION = r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
_LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "required": ["key", "operator"], "additionalProperties": False,
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
POD_MONITORING_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.googleapis.com/v1"},
        "kind": {"const": "PodMonitoring"},
        "metadata": {"type": "object", "required": ["name", "namespace"], "additionalProperties": False,
                     "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                                    "namespace": {"type": "string"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "filterRunning": {"type": "boolean"},
                "endpoints": {"type": "array", "minItems": 1, "maxItems": 10, "items": {
                    "type": "object", "required": ["interval", "port"], "additionalProperties": False,
                    "properties": {
                        "port": {"anyOf": [{"type": "integer", "minimum": 1},
                                           {"type": "string", "minLength": 1, "maxLength": 253}]},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": {"type": "string", "pattern": _DURATION, "minLength": 2},
                        "timeout": {"type": "string", "pattern": _DURATION, "minLength": 2},
                        "params": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                    }}},
                "targetLabels": {"type": "object", "additionalProperties": False, "properties": {
                    "fromPod": {"type": "array", "items": {"type": "object", "required": ["from"]}},
                    "metadata": {"type": "array", "items": {
                        "enum": ["container", "node", "pod", "top_level_controller_name", "top_level_controller_type"]}}}},
                "limits": {"type": "object", "additionalProperties": False, "properties": {
                    k: {"type": "integer"} for k in ("samples", "labels", "labelNameLength", "labelValueLength")}},
            },
        },
    },
}


def capacity_buffer_schema() -> dict:
    """The served version's openAPIV3Schema of the vendored CRD (tests/schemas/SOURCES.md)."""
    crd = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "capacitybuffer-crd.yaml").read_text())
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1beta1")


def strict(schema: dict) -> dict:
    """A CRD's structural schema as strict field validation applies it: a field an object's
    `properties` do not name is an error (the API server with fieldValidation=Strict, and
    `kubectl --validate=strict`), unless the object keeps unknown fields or is a map."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        schema["items"] = strict(schema["items"])
    return schema


@functools.cache
def secret_provider_class_schema() -> dict:
    """secrets-store.csi.x-k8s.io/v1 of the vendored CRD (tests/schemas/SOURCES.md), strict."""
    crd = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "secretproviderclass-crd.yaml").read_text())
    return strict(next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1"))


def validate(manifest: dict, version: str) -> None:
    if manifest["kind"] == "PodMonitoring":
        jsonschema.validate(manifest, POD_MONITORING_SCHEMA)
    elif manifest["kind"] == "CapacityBuffer":
        jsonschema.validate(manifest, capacity_buffer_schema())
    elif manifest["kind"] == "SecretProviderClass":
        assert manifest["apiVersion"] == "secrets-store.csi.x-k8s.io/v1", manifest["apiVersion"]
        jsonschema.validate(manifest, secret_provider_class_schema())
    else:
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.fixture
def manifests(plan, tmp_path) -> dict[str, dict]:
    """What `python -m tooling.plan` writes to DIR/manifests, read back from disk."""
    paths = write_manifests(plan.resources, tmp_path)
    return {p.name: yaml.safe_load(p.read_text()) for p in paths}


def test_every_kubernetes_object_is_written(plan, manifests):
    kinds = sorted(m["kind"] for m in manifests.values())
    spare = ["Deployment", "PriorityClass"] if plan.stack == "prod" else ["PodTemplate", "CapacityBuffer"]
    # the Custom Metrics Stackdriver Adapter (k8s/metrics_adapter.py), for the HPA's calls metric
    adapter = ["Namespace", "ServiceAccount", "ClusterRoleBinding", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
               "Deployment", "Service", "NetworkPolicy", "APIService", "APIService"]
    # podDeletionCost (k8s/deletion_cost_access.py): patch-pods Role, its binding, the admission policy
    deletion_cost = ["Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    # placesToolEnabled (k8s/tool_server.py): the Places MCP server's own objects
    tool_server = ["ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
                   "ClusterRole", "ClusterRoleBinding"]  # TokenReview only (tools/places token_review.py)
    # livekitCredentials=secretManager (both stacks): no Secret, the files' SecretProviderClass
    assert kinds == sorted(["Namespace", "ServiceAccount", "SecretProviderClass", "Deployment", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "PodMonitoring", "NetworkPolicy", *spare, *adapter, *deletion_cost,
                            *tool_server])
    objects = [r for r in plan.resources if r["type"].startswith("kubernetes:")]
    assert len(objects) == len(manifests)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_in_strict_mode(manifests, version):
    for name, manifest in manifests.items():
        try:
            validate(manifest, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
            pytest.fail(f"{name} is invalid on Kubernetes {version}: {err}")


@pytest.mark.parametrize("kind, path, field", [
    ("Deployment", ("spec", "template", "spec"), "terminationGracePeriod"),  # misspelt
    ("HorizontalPodAutoscaler", ("spec", "behavior", "scaleUp"), "stabilisationWindowSeconds"),
    ("NetworkPolicy", ("spec",), "egres"),
    ("PodMonitoring", ("spec", "endpoints", 0), "intervall"),
    ("SecretProviderClass", ("spec",), "providor"),
])
def test_strict_validation_rejects_an_unknown_field(manifests, kind, path, field):
    """Negative control: if these passed, the validation above would prove nothing."""
    broken = copy.deepcopy(next(m for m in manifests.values() if m["kind"] == kind))
    node = broken
    for step in path:
        node = node[step]
    node[field] = 30
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(broken, KUBERNETES_VERSIONS[-1])


def test_pod_monitoring_schema_requires_selector_and_interval(manifests):
    monitoring = next(m for m in manifests.values() if m["kind"] == "PodMonitoring")
    for drop in (("spec", "selector"), ("spec", "endpoints", 0, "interval")):
        broken = copy.deepcopy(monitoring)
        node = broken
        for step in drop[:-1]:
            node = node[step]
        del node[drop[-1]]
        with pytest.raises(jsonschema.ValidationError):
            validate(broken, KUBERNETES_VERSIONS[-1])


def test_secret_provider_class_parameters_must_be_strings(manifests):
    """The CRD types `parameters` as a map of strings: the secrets list must arrive as YAML text."""
    spc = copy.deepcopy(next(m for m in manifests.values() if m["kind"] == "SecretProviderClass"))
    spc["spec"]["parameters"]["secrets"] = yaml.safe_load(spc["spec"]["parameters"]["secrets"])
    with pytest.raises(jsonschema.ValidationError):
        validate(spc, KUBERNETES_VERSIONS[-1])


def test_no_manifest_holds_a_credential(manifests):
    """Secret Manager holds the values; the manifests name the secrets only."""
    assert not [m for m in manifests.values() if m["kind"] == "Secret"]
    text = yaml.safe_dump(list(manifests.values()))
    assert "offline-placeholder-secret" not in text


def test_secret_manifest_holds_placeholders_only(tmp_path):
    """livekitCredentials=kubernetesSecret: the Secret is written with masked values only."""
    paths = write_manifests(plan_with("dev", livekitCredentials="kubernetesSecret").resources, tmp_path)
    [secret] = [m for m in (yaml.safe_load(p.read_text()) for p in paths) if m["kind"] == "Secret"]
    assert secret["stringData"] == {"url": MASKED, "api-key": MASKED, "api-secret": MASKED}
    assert "offline-placeholder-secret" not in "".join(p.read_text() for p in paths)


def test_manifests_are_written_in_declaration_order(plan, tmp_path):
    names = [p.name for p in write_manifests(plan.resources, tmp_path)]
    assert names[0] == "00-namespace-voice-agents.yaml" and names == sorted(names)


# ---------------------------------------------------------------------------------------------
# manifest_from_inputs on its own

SECRET_ENVELOPE = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}


def test_non_objects_are_not_manifests():
    assert manifest_from_inputs("pulumi:providers:kubernetes", {"kubeconfig": "{}"}) is None
    assert manifest_from_inputs("kubernetes:helm.sh/v3:Release", {"chart": "x"}) is None
    assert manifest_from_inputs("gcp:container/cluster:Cluster", {"apiVersion": "v1", "kind": "X"}) is None


def test_unset_values_go_meaningful_empty_ones_stay():
    inputs = {"spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [], "ingress": None},
              "kind": "NetworkPolicy", "metadata": {"name": "x", "annotations": None, "__internal": 1},
              "apiVersion": "networking.k8s.io/v1"}
    manifest = manifest_from_inputs("kubernetes:networking.k8s.io/v1:NetworkPolicy", inputs)
    assert list(manifest) == ["apiVersion", "kind", "metadata", "spec"]
    assert manifest["metadata"] == {"name": "x"}
    assert manifest["spec"] == {"podSelector": {}, "policyTypes": ["Egress"], "egress": []}


def test_secret_values_never_reach_a_manifest():
    """Whatever form a secret arrives in: plain data, the wire envelope, or the recorder's mask."""
    plain = manifest_from_inputs("kubernetes:core/v1:Secret", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"}, "data": {"token": "aHVudGVyMg=="}})
    assert plain["data"] == {"token": MASKED}
    enveloped = manifest_from_inputs("kubernetes:core/v1:Secret", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "livekit"}, "stringData": SECRET_ENVELOPE})
    assert enveloped["stringData"] == {"url": MASKED, "api-key": MASKED, "api-secret": MASKED}
    elsewhere = manifest_from_inputs("kubernetes:core/v1:ConfigMap", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": SECRET_ENVELOPE, "m": "[secret]"}})
    assert elsewhere["data"] == {"k": MASKED, "m": MASKED}
    assert "hunter2" not in repr([plain, enveloped, elsewhere])


def test_the_vendored_secret_provider_class_crd_is_the_one_sources_names():
    crd = Path(__file__).resolve().parents[1] / "schemas" / "secretproviderclass-crd.yaml"
    digest = hashlib.sha256(crd.read_bytes()).hexdigest()
    assert f"`{digest}`" in (crd.parent / "SOURCES.md").read_text()
