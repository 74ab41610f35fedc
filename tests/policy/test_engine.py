"""The offline engine reads each stack's policy config the way CrossGuard does, and the config
files agree with the stacks they describe."""

from __future__ import annotations

import json

import pytest

from domain.stackfiles import StackFileError, load_stack_values
from policy.engine import PolicyConfigError, check_policy_config, evaluate_plan, load_policy_config
from policy.rules import RULES_BY_ID
from tests.conftest import _fixture_plan

BURSTING_RULES = [rule.id for rule in RULES_BY_ID.values() if "bursting" in rule.config]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_policy_config_declares_the_bursting_the_stack_renders(stack):
    """Whether limits may exceed requests is the stack's cpuBursting setting; the policy config
    must say the same, or the pack would judge the pods against the wrong cluster."""
    declared = load_stack_values(stack).config["gke-voice-agents:cpuBursting"] == "true"
    config = load_policy_config(stack)
    assert BURSTING_RULES == ["agent-hpa-below-load-threshold", "agent-autopilot-resources"]
    assert [config[rule]["bursting"] for rule in BURSTING_RULES] == [declared, declared]


def test_prod_policy_config_requires_deletion_protection():
    assert load_policy_config("prod")["gke-deletion-protection"]["protected"] is True
    assert load_policy_config("dev")["gke-deletion-protection"]["protected"] is False


def test_result_shape_is_what_violations_json_holds():
    resources = _fixture_plan("prod").resources
    next(r for r in resources if r["type"] == "kubernetes:policy/v1:PodDisruptionBudget")["inputs"]["spec"]["selector"] = {}
    [violation] = evaluate_plan(resources, "prod")
    assert violation == {"rule": "agent-pdb", "severity": "advisory", "resource": "agent-deployment",
                         "message": "no PodDisruptionBudget selects the agent: a node drain may evict every pod at once"}


def _without_pdb() -> list[dict]:
    return [r for r in _fixture_plan("prod").resources if r["type"] != "kubernetes:policy/v1:PodDisruptionBudget"]


@pytest.mark.parametrize(("config", "expected"), [
    ({}, [("agent-pdb", "advisory")]),
    ({"agent-pdb": {"enforcementLevel": "mandatory"}}, [("agent-pdb", "mandatory")]),
    ({"agent-pdb": "mandatory"}, [("agent-pdb", "mandatory")]),
    ({"all": "mandatory"}, [("agent-pdb", "mandatory")]),
    ({"all": "mandatory", "agent-pdb": "advisory"}, [("agent-pdb", "advisory")]),
    ({"agent-pdb": {"enforcementLevel": "disabled"}}, []),
])
def test_enforcement_level_overrides_follow_crossguard(config, expected):
    found = evaluate_plan(_without_pdb(), "prod", config=config)
    assert [(v["rule"], v["severity"]) for v in found] == expected


@pytest.mark.parametrize(("config", "problem"), [
    ({"agent-pbd": {}}, "agent-pbd: no such rule"),
    ({"agent-pdb": {"enforcementLevel": "warn"}}, "agent-pdb.enforcementLevel = 'warn': must be one of advisory, mandatory, disabled"),
    ({"agent-pdb": {"bursting": True}}, "agent-pdb: unknown setting(s) bursting; this rule reads only enforcementLevel"),
    ({"gke-deletion-protection": {"protect": True}}, "gke-deletion-protection: unknown setting(s) protect; this rule reads protected"),
])
def test_policy_config_mistakes_are_refused_with_the_fix(config, problem):
    with pytest.raises(PolicyConfigError) as caught:
        check_policy_config(config)
    assert problem in str(caught.value)


def test_broken_policy_config_file_is_a_stack_file_error(tmp_path):
    """A StackFileError, so tooling/plan.py can report it as a broken stack (exit 2, no traceback)
    once it loads the policy config inside its config-error handling (requested of its owner)."""
    (tmp_path / "dev.json").write_text(json.dumps({"agent-autopilot-resources": {"bursting": "yes", "burst": True}}))
    with pytest.raises(StackFileError) as caught:
        load_policy_config("dev", tmp_path)
    assert "agent-autopilot-resources: unknown setting(s) burst" in str(caught.value)
    # A string is not a boolean: "yes" must not silently read as bursting on.
    assert "agent-autopilot-resources.bursting = 'yes': must be true or false" in str(caught.value)
    (tmp_path / "dev.json").write_text("{not json")
    with pytest.raises(StackFileError, match="dev.json: not valid JSON"):
        load_policy_config("dev", tmp_path)


def test_stack_without_policy_config_gets_strict_defaults(tmp_path):
    assert load_policy_config("staging", tmp_path) == {}
