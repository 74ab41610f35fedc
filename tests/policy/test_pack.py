"""The CrossGuard pack: each rule registered once, at its level, with only the config it reads,
and reporting exactly what the offline engine reports.

PolicyPack itself (a blocking gRPC server) is never constructed here; policy/pack.py, which the
entry file imports, builds the policy list. The CrossGuard side is exercised the way the
analyzer feeds it: props go through a protobuf Struct (numbers become floats), pulumi-policy's
own deserializer, and its unknown-checking proxies (read-only Mapping/Sequence wrappers).
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy.engine import load_policy_config
from policy.pack import policies
from policy.rules import CONFIG_PROPERTIES, RULES, Context
from tests.conftest import _fixture_plan
from tests.policy.test_seed_000 import seed_resources

ROOT = Path(__file__).resolve().parents[2]


def test_pack_registers_every_rule_id_exactly_once_at_its_level():
    built = policies()
    names = [p.name for p in built]
    assert len(names) == len(set(names)), "a policy name is registered twice"
    assert names == [r.id for r in RULES]
    for policy, rule in zip(built, RULES):
        expected = EnforcementLevel.MANDATORY if rule.severity == "mandatory" else EnforcementLevel.ADVISORY
        assert policy.enforcement_level == expected, rule.id
        assert isinstance(policy, StackValidationPolicy if rule.check_stack else ResourceValidationPolicy), rule.id
        assert policy.description == rule.description


def test_each_policy_schema_lists_only_the_settings_its_rule_reads():
    for policy, rule in zip(policies(), RULES):
        properties = policy.config_schema.properties if policy.config_schema else {}
        assert set(properties) == set(rule.config), rule.id


def test_schema_defaults_are_the_context_defaults():
    """An unconfigured rule in CrossGuard and in the offline engine reads the same strict values."""
    assert {key: spec["default"] for key, spec in CONFIG_PROPERTIES.items()} == vars(Context())


def test_entry_file_builds_the_pack_from_the_same_policy_list():
    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "policy.pack"]
    assert [alias.name for n in imports for alias in n.names] == ["policies"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"]
    assert len(calls) == 1
    assert any(kw.arg == "policies" and ast.unparse(kw.value) == "policies()" for kw in calls[0].keywords)


def test_pulumi_policy_yaml_runs_python_in_the_infra_venv():
    text = (ROOT / "policy" / "PulumiPolicy.yaml").read_text()
    assert "name: python" in text and "virtualenv: ../.venv" in text


# --------------------------------------------------------------------------------------------
# CrossGuard's view of the same resources.


def as_analyzer_props(inputs: dict) -> object:
    struct = struct_pb2.Struct()
    struct.update(inputs)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def policy_resources(plan_resources: list[dict]) -> list[PolicyResource]:
    return [PolicyResource(r["type"], as_analyzer_props(r["inputs"]), f"urn:pulumi:test::gke-voice-agents::{r['type']}::{r['name']}",
                           r["name"], None, None, None, [], {}) for r in plan_resources]


def crossguard_report(plan_resources: list[dict], config: dict) -> list[tuple[str, str, str | None]]:
    """(policy, message, urn) for every violation CrossGuard would report."""
    resources = policy_resources(plan_resources)
    reported: list[tuple[str, str, str | None]] = []
    for policy in policies():
        entry = {k: v for k, v in config.get(policy.name, {}).items() if k != "enforcementLevel"}

        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(resources, entry),
                            lambda message, urn=None, name=policy.name: reported.append((name, message, urn)))
            continue
        for r in resources:
            # A resource violation belongs to the resource being validated (CrossGuard fills the URN).
            args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, None, None, entry)
            policy.validate(args, lambda message, urn=None, name=policy.name, own=r.urn: reported.append((name, message, own)))
    return reported


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_crossguard_reports_nothing_on_the_committed_stacks(stack):
    assert crossguard_report(_fixture_plan(stack).resources, load_policy_config(stack)) == []


def test_crossguard_and_the_offline_engine_agree_on_the_seed():
    """Same rule ids, same messages (numbers printed alike though CrossGuard's are floats),
    each pointed at the resource's URN."""
    from tests.policy.test_seed_000 import seed_violations

    config = {**load_policy_config("prod"), "agent-autopilot-resources": {"bursting": False},
              "agent-hpa-below-load-threshold": {"bursting": False}}
    reported = crossguard_report(seed_resources(), config)
    expected = seed_violations(bursting=False)
    assert sorted((name, message) for name, message, _ in reported) == sorted((v["rule"], v["message"]) for v in expected)
    urns = {name: urn for name, _, urn in reported}
    assert urns["agent-hpa-below-load-threshold"].endswith("HorizontalPodAutoscaler::backend-agent-hpa")
    assert urns["agent-grace-covers-drain"].endswith("Deployment::backend-agent-deployment")


def test_crossguard_resource_policy_reads_its_config():
    dev = _fixture_plan("dev").resources
    assert crossguard_report(dev, {}) != []  # strict defaults: protection required, no bursting
    unprotected = {"protected": False}
    names = {name for name, _, _ in crossguard_report(dev, {"gke-deletion-protection": unprotected,
                                                           "gke-secrets-encryption": unprotected,
                                                           "gke-binary-authorization": unprotected,
                                                           "database-backups-in-prod": unprotected})}
    assert names == {"agent-autopilot-resources"}


def test_unknown_values_during_preview_stop_the_rule_instead_of_faking_a_verdict():
    """A new node service account's email is unknown during `pulumi preview`. The rules that
    compare it must raise pulumi-policy's UnknownValueError (which the analyzer turns into an
    advisory "can't run during preview" note and retries at `up`), not report a violation."""
    plan = copy.deepcopy(_fixture_plan("prod").resources)
    cluster = next(r for r in plan if r["type"] == "gcp:container/cluster:Cluster")
    cluster["inputs"]["clusterAutoscaling"]["autoProvisioningDefaults"]["serviceAccount"] = UNKNOWN_STRING_VALUE
    resources = policy_resources(plan)
    by_name = {p.name: p for p in policies()}
    reported = []
    # UnknownValueError carries the path, not a str() message.
    with pytest.raises(UnknownValueError) as caught:
        by_name["registry-node-reader"].validate(StackValidationArgs(resources, {}), lambda *a: reported.append(a))
    assert caught.value.props == ["clusterAutoscaling", "autoProvisioningDefaults", "serviceAccount"]
    cluster_props = next(r for r in resources if r.resource_type == "gcp:container/cluster:Cluster")
    with pytest.raises(UnknownValueError):
        by_name["gke-no-default-compute-sa"].validate(
            ResourceValidationArgs(cluster_props.resource_type, cluster_props.props, cluster_props.urn, "gke-cluster", None, None, {}),
            lambda *a: reported.append(a))
    assert reported == []


def test_crossguard_finds_spot_in_a_node_affinity():
    """Affinity is nested several levels deep; the rule must see through CrossGuard's proxies."""
    plan = copy.deepcopy(_fixture_plan("prod").resources)
    deployment = next(r for r in plan if r["type"] == "kubernetes:apps/v1:Deployment")
    deployment["inputs"]["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "cloud.google.com/gke-spot", "operator": "In", "values": ["true"]}]}]}}}
    reported = crossguard_report(plan, load_policy_config("prod"))
    assert [(name, message.split(":")[0]) for name, message, _ in reported] == [
        ("agent-no-spot", "Spot Pods get 25 s to stop whatever the grace period says")]
