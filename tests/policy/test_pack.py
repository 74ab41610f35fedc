"""The CrossGuard pack registers each rule once, at its severity, and reports through the
same functions; PolicyPack itself (a blocking gRPC server) is never constructed here."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from policy.pack import policies
from policy.rules import RULES
from tests.conftest import _committed_plan

ROOT = Path(__file__).resolve().parents[2]


def test_each_rule_becomes_exactly_one_policy_at_its_level():
    built = policies()
    assert [p.name for p in built] == [r.id for r in RULES]
    for policy, rule in zip(built, RULES):
        expected = EnforcementLevel.MANDATORY if rule.severity == "mandatory" else EnforcementLevel.ADVISORY
        assert policy.enforcement_level == expected
        assert isinstance(policy, StackValidationPolicy if rule.check_stack else ResourceValidationPolicy)


def test_entry_file_builds_the_pack_from_policies():
    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"]
    assert len(calls) == 1
    assert any(kw.arg == "policies" and ast.unparse(kw.value) == "policies()" for kw in calls[0].keywords)


def test_stack_policy_reports_through_crossguard_callback():
    resources = [SimpleNamespace(resource_type=r["type"], name=r["name"], props=r["inputs"], urn=f"urn:{r['name']}")
                 for r in _committed_plan("prod").resources]
    for r in resources:
        if r.resource_type == "kubernetes:apps/v1:Deployment":
            r.props["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    policy = next(p for p in policies() if p.name == "agent-grace-covers-drain")
    reported = []
    args = SimpleNamespace(resources=resources, get_config=lambda: {})
    policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
    assert reported and reported[0][1] == "urn:agent-deployment"
    assert "terminationGracePeriodSeconds 30 < preStop 0 + drain timeout 2700" in reported[0][0]


def test_resource_policy_reads_its_config():
    cluster = next(r for r in _committed_plan("dev").resources if r["type"] == "gcp:container/cluster:Cluster")
    policy = next(p for p in policies() if p.name == "gke-deletion-protection")
    reported = []
    for config in ({}, {"protected": True}):
        args = SimpleNamespace(resource_type=cluster["type"], props=cluster["inputs"], name=cluster["name"], get_config=lambda c=config: c)
        policy.validate(args, lambda message, urn=None: reported.append(message))
    assert len(reported) == 1 and "deletionProtection is off" in reported[0]
