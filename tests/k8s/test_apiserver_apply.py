"""Both stacks' objects applied to a real kube-apiserver (tests/k8s/controlplane.py, the version
in tests/k8s/kube/VERSION), server-side with strict field validation, after the CRDs GKE
installs (vendored, tests/schemas/SOURCES.md).

What the schema tests (test_manifests.py) cannot see and this does: the server's own
validation beyond the OpenAPI schema (selectors, cross-field rules, names), CRD CEL rules, the
type check of the admission policy's CEL, and what the server stores of what we sent (a value
it rewrites, such as a quantity in another spelling, is a diff on every `pulumi up`).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Iterator

import pytest

from policy.quantities import cpu_millicores, memory_mib
from tests.k8s.apiserver import CRDS, SCHEMAS, AppliedStack, describe
from tests.k8s.controlplane import ApiError

pytestmark = [pytest.mark.integration, pytest.mark.controlplane]  # starts etcd and kube-apiserver


def test_the_vendored_crds_are_the_files_sources_names():
    """Each CRD the server installs is the file SOURCES.md hashes (re-vendoring is deliberate)."""
    sources = (SCHEMAS / "SOURCES.md").read_text()
    for filename in CRDS:
        row = next(line for line in sources.splitlines() if line.startswith(f"| `{filename}`"))
        digest = hashlib.sha256((SCHEMAS / filename).read_bytes()).hexdigest()
        assert f"`{digest}`" in row, f"tests/schemas/{filename} differs from the vendored file SOURCES.md hashes"


def test_the_server_accepts_every_object_of_the_plan(applied: AppliedStack):
    """Guards against an object the API server refuses at `pulumi up` (the first refusal stops
    the update): every refusal is listed with the server's message."""
    assert applied.objects, "the plan rendered no Kubernetes object"
    assert applied.failures == [], f"{applied.stack}: the API server refused:\n" + "\n".join(applied.failures)
    assert len(applied.answers) == len(applied.objects)


Path = tuple[str | int, ...]
ABSENT = "<absent>"


def _leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _at(value: Any, path: Path) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return ABSENT
        elif not isinstance(value, dict) or step not in value:
            return ABSENT
        value = value[step]
    return value


def _same(path: Path, sent: Any, stored: Any) -> bool:
    """Equal, a zero value omitted, or the same resource quantity: the server stores every
    quantity in its canonical spelling ('1000m' as '1', '2048Mi' as '2Gi': apimachinery
    resource.Quantity), which is the same amount and no diff for a server-side apply."""
    if sent == stored:
        return True
    if stored == ABSENT and sent in (False, 0, ""):
        return True  # a zero value the API's JSON omits (omitempty), e.g. PriorityClass globalDefault
    if len(path) >= 2 and path[-2] in ("requests", "limits") and isinstance(stored, str):
        if path[-1] == "cpu":
            return cpu_millicores(sent) == cpu_millicores(stored)
        return memory_mib(sent) == memory_mib(stored)
    return False


def rewritten(sent: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Every value we sent that the server stored otherwise (or dropped)."""
    return ["".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path)
            + f": sent {value!r}, stored {_at(stored, path)!r}"
            for path, value in _leaves(sent) if not _same(path, value, _at(stored, path))]


def test_the_server_stores_what_the_plan_sends(applied: AppliedStack):
    """A value the server rewrites (a quantity in its canonical spelling, a dropped field) shows
    as a change on every `pulumi up` and hides what will really run."""
    changed = {describe(obj): rewritten(obj, applied.answers[describe(obj)])
               for obj in applied.objects if describe(obj) in applied.answers}
    changed = {name: diffs for name, diffs in changed.items() if diffs}
    assert changed == {}


def test_the_admission_policy_cel_type_checks(applied: AppliedStack):
    """The server type-checks a ValidatingAdmissionPolicy's CEL against the Pod schema and
    reports what does not (status.typeChecking); a policy with a type error fails closed
    (failurePolicy Fail) on every pod update it matches."""
    cluster = applied.cluster
    for obj in (o for o in applied.objects if o["kind"] == "ValidatingAdmissionPolicy"):
        path = cluster.object_path(obj)

        def checked() -> dict[str, Any] | None:
            current = cluster.call("GET", path)
            status = current.get("status", {})
            return status if status.get("observedGeneration") == current["metadata"]["generation"] else None

        # kube-controller-manager's validatingadmissionpolicy-status-controller writes it
        status = cluster.wait_for(f"type check of {describe(obj)}", checked, timeout=60)
        assert status.get("typeChecking", {}).get("expressionWarnings", []) == [], describe(obj)


def _dry_run_refusal(applied: AppliedStack, obj: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as refused:
        applied.cluster.apply(obj, dry_run=True)
    return refused.value


def test_an_unknown_field_is_refused_with_its_name(applied: AppliedStack):
    """Negative control for strict validation: a misspelt field in the agent's container. The
    server answers 500 for an apply patch it cannot type, whatever the validation level, so the
    message is what tells (kube-apiserver, fieldmanager: 'field not declared in schema')."""
    deployment = copy.deepcopy(applied.first("Deployment", "voice-agent"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5
    error = _dry_run_refusal(applied, deployment)
    assert "periodSecond" in error.message and "not declared in schema" in error.message, error


def test_a_custom_resource_field_is_checked_against_the_vendored_crd(applied: AppliedStack):
    podmonitoring = copy.deepcopy(applied.first("PodMonitoring"))
    podmonitoring["spec"]["endpoints"][0]["intervall"] = "30s"
    error = _dry_run_refusal(applied, podmonitoring)
    assert "intervall" in error.message, error


def test_the_crd_cel_rules_run(applied: AppliedStack):
    """Negative control for the CRDs' own CEL (x-kubernetes-validations): PodMonitoring refuses
    relabeling onto the labels Managed Service for Prometheus reserves."""
    podmonitoring = copy.deepcopy(applied.first("PodMonitoring"))
    podmonitoring["spec"]["endpoints"][0]["metricRelabeling"] = [
        {"action": "replace", "sourceLabels": ["__name__"], "targetLabel": "project_id"}]
    error = _dry_run_refusal(applied, podmonitoring)
    assert error.status == 422 and 'cannot relabel onto protected label "project_id"' in error.message, error


def test_the_deployment_selector_cannot_change_in_place(applied: AppliedStack):
    """What a release that changes the agent's selector labels meets: the server refuses it
    (Deployment spec.selector is immutable in apps/v1), so such a change needs a new object."""
    deployment = copy.deepcopy(applied.first("Deployment", "voice-agent"))
    labels = {"gke-voice-agents/test-extra": "x"}
    deployment["spec"]["selector"]["matchLabels"].update(labels)
    deployment["spec"]["template"]["metadata"]["labels"].update(labels)
    error = _dry_run_refusal(applied, deployment)
    assert error.status == 422 and "field is immutable" in error.message, error
