"""The in-process plan API and the mocks under it; the source-level spelling of type tokens.

GCP is never called: tooling/mocks.py answers the one invoke the program makes."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pulumi.runtime.mocks import MockCallArgs

from tooling.mocks import FAKE_PROJECT_NUMBER, RecordingMocks
from infra.names import TYPE_PREFIX
from tooling.plan import evaluate

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "gcp:container/cluster:Cluster"
OPEN_OFFICE = {"gke-voice-agents:controlPlaneAuthorizedNetworks": json.dumps({"office": "203.0.113.0/24"})}


def test_an_override_does_not_leak_into_the_next_evaluation():
    """Mocks, config and settings are process-global. Each evaluate() must replace all of them,
    or a test that opens the IP endpoint would make every later plan look open."""
    opened = evaluate("prod", OPEN_OFFICE).one(CLUSTER)["inputs"]
    assert opened["controlPlaneEndpointsConfig"]["ipEndpointsConfig"] == {"enabled": True}
    again = evaluate("prod")
    assert again.one(CLUSTER)["inputs"]["controlPlaneEndpointsConfig"]["ipEndpointsConfig"] == {"enabled": False}
    assert "masterAuthorizedNetworksConfig" not in again.one(CLUSTER)["inputs"]


def test_repeated_evaluations_record_the_same_plan_in_the_same_order():
    """Registrations reach the mocks in whatever order their inputs resolve; before the plan
    sorted them by construction order, about every other run listed them (and numbered the
    manifests) differently, so resources.json diffed between identical runs."""
    first = evaluate("dev")
    assert len(first.resources) > 0
    for _ in range(4):
        again = evaluate("dev")
        assert [r["name"] for r in again.resources] == [r["name"] for r in first.resources]
        assert again.resources == first.resources and again.outputs == first.outputs


def test_resources_are_listed_in_the_order_the_program_declares_them(dev_plan):
    names = [r["name"] for r in dev_plan.resources]
    assert names[:4] == ["network", "network-vpc", "network-nodes", "network-router"]
    assert names.index("gke-suffix") < names.index("gke-nodes-container-defaultnodeserviceaccount") < names.index("gke-cluster")
    assert names.index("agent-namespace") < names.index("agent-ksa") < names.index("agent-deployment")


def test_mocks_answer_get_project_by_token():
    mocks = RecordingMocks()
    answer = mocks.call(MockCallArgs("gcp:organizations/getProject:getProject", {"projectId": "p-123456"}, ""))
    assert answer["number"] == FAKE_PROJECT_NUMBER and answer["projectId"] == "p-123456"
    assert mocks.invokes == ["gcp:organizations/getProject:getProject"]


def test_mocks_refuse_an_invoke_they_have_no_answer_for():
    """A new invoke must get a deliberate fake, not a silent empty answer."""
    with pytest.raises(NotImplementedError, match=r"no mock answer for invoke gcp:compute/getZones:getZones"):
        RecordingMocks().call(MockCallArgs("gcp:compute/getZones:getZones", {}, ""))


def _component_inits(path: Path):
    """(class name, first argument of super().__init__) for each ComponentResource in a file."""
    tree = ast.parse(path.read_text())
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        if not any(ast.unparse(base).endswith("ComponentResource") for base in cls.bases):
            continue
        for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call)):
            if ast.unparse(call.func) == "super().__init__":
                yield cls.name, call.args[0]


def test_every_component_in_the_source_builds_its_token_from_the_prefix():
    """The plan only shows components a committed stack uses; this reads every one, including
    the bootstrap stack's, so no token is ever spelt by hand."""
    found = {}
    for path in sorted([*ROOT.glob("infra/*.py"), *ROOT.glob("k8s/*.py"), *ROOT.glob("bootstrap/*.py")]):
        for name, token in _component_inits(path):
            found[name] = ast.unparse(token)
    assert {"VpcNetwork", "AutopilotCluster", "AgentRegistry", "AgentIdentity", "AgentWorkload"} <= set(found)
    hand_spelt = {name: token for name, token in found.items() if not token.startswith("type_token(")}
    assert hand_spelt == {}


def test_no_type_token_literal_outside_names_py():
    literal = f'"{TYPE_PREFIX}:'
    offenders = [str(p.relative_to(ROOT)) for p in [*ROOT.glob("infra/*.py"), *ROOT.glob("k8s/*.py"), *ROOT.glob("bootstrap/*.py")]
                 if p.name != "names.py" and any(literal + m in p.read_text() for m in ("infra:", "k8s:", "bootstrap:"))]
    assert offenders == []
