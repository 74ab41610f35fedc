"""Every rule passes on the committed stacks and fails, for its stated reason, when the real
evaluated program is changed in exactly the way the rule guards against.

Failing cases start from the real dev/prod plan (evaluate() under mocks) and mutate the
recorded inputs, because config validation rightly refuses most of these states before any
resource exists (that refusal is tested in tests/k8s and tests/infra).
"""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from policy.engine import as_resources, evaluate_plan, violations
from policy.rules import MANDATORY, RULES, RULES_BY_ID, Context
from tests.conftest import _committed_plan

DEV_CTX = Context(bursting=True, protected=False)


def _first(resources, typ):
    return next(r for r in resources if r["type"] == typ)["inputs"]


def _container(resources):
    return _first(resources, "kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]["containers"][0]


def _pod(resources):
    return _first(resources, "kubernetes:apps/v1:Deployment")["spec"]["template"]


def _hpa(resources):
    return _first(resources, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")["spec"]


def _set_env(resources, name, value):
    env = _container(resources)["env"]
    env[:] = [e for e in env if e["name"] != name] + [{"name": name, "value": value}]


Mutation = Callable[[list], None]

FAILING: dict[str, tuple[Mutation, str]] = {
    "gke-private-nodes": (lambda rs: _first(rs, "gcp:container/cluster:Cluster")["privateClusterConfig"].update(enablePrivateNodes=False),
                          "nodes get public IPs"),
    "gke-no-open-control-plane": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(
        masterAuthorizedNetworksConfig={"cidrBlocks": [{"cidrBlock": "0.0.0.0/0", "displayName": "all"}]}),
        "all = 0.0.0.0/0 opens the control plane to the internet"),
    "gke-release-channel": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(releaseChannel={"channel": "UNSPECIFIED"}),
                            "release channel is 'UNSPECIFIED'"),
    "gke-deletion-protection": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(deletionProtection=False),
                                "deletionProtection is off in a protected stack"),
    "gke-no-default-compute-sa": (lambda rs: _first(rs, "gcp:container/cluster:Cluster")["clusterAutoscaling"]["autoProvisioningDefaults"].update(
        serviceAccount="123456789012-compute@developer.gserviceaccount.com"), "nodes run as 123456789012-compute@"),
    "gke-autopilot-no-node-config": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(nodeConfig={"machineType": "e2-medium"}),
                                     "nodeConfig is set on an Autopilot cluster"),
    "subnet-private-google-access": (lambda rs: _first(rs, "gcp:compute/subnetwork:Subnetwork").update(privateIpGoogleAccess=False),
                                     "has no Private Google Access"),
    "nat-all-subnet-ranges": (lambda rs: _first(rs, "gcp:compute/routerNat:RouterNat").update(sourceSubnetworkIpRangesToNat="ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES"),
                              "NAT covers ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES: pods use a secondary range"),
    "nat-error-logging": (lambda rs: _first(rs, "gcp:compute/routerNat:RouterNat").update(logConfig={"enable": False}),
                          "NAT does not log errors"),
    "no-node-external-ip": (lambda rs: rs.append({"type": "gcp:compute/instance:Instance", "name": "bastion", "parent": None,
                                                  "inputs": {"networkInterfaces": [{"accessConfigs": [{}]}]}}),
                            "instance interface 0 has an external IP"),
    "registry-immutable-tags": (lambda rs: _first(rs, "gcp:artifactregistry/repository:Repository").update(dockerConfig={"immutableTags": False}),
                                "tags are mutable"),
    "registry-cleanup-policies": (lambda rs: _first(rs, "gcp:artifactregistry/repository:Repository").update(cleanupPolicies=[]),
                                  "no cleanup policies"),
    "registry-node-reader": (lambda rs: rs.remove(next(r for r in rs if r["type"] == "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")),
                             "cannot pull from this repository"),
    "no-service-account-keys": (lambda rs: rs.append({"type": "gcp:serviceaccount/key:Key", "name": "ci-key", "parent": None, "inputs": {}}),
                                "a service-account key is a long-lived credential"),
    "vertex-via-workload-identity": (lambda rs: next(r for r in rs if r["inputs"].get("role") == "roles/aiplatform.user")["inputs"].update(
        member="serviceAccount:agent@p.iam.gserviceaccount.com"), "Vertex AI is granted to serviceAccount:agent@"),
    "agent-grace-covers-drain": (lambda rs: _pod(rs)["spec"].update(terminationGracePeriodSeconds=150),
                                 "terminationGracePeriodSeconds 150 < preStop 0 + drain timeout 900 + shutdown 80 = 980 s"),
    "agent-no-sleep-prestop": (lambda rs: _container(rs).update(lifecycle={"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 120"]}}}),
                               "preStop only sleeps 120 s"),
    "agent-exec-form-start": (lambda rs: _container(rs).update(command=["/bin/sh", "-c", "python -m voice_agent start"], args=[]),
                              "the shell receives SIGTERM and the worker never drains"),
    "agent-cpu-limit": (lambda rs: _container(rs)["resources"]["limits"].pop("cpu"), "no CPU limit"),
    "agent-hpa-below-load-threshold": (lambda rs: _hpa(rs)["metrics"][0]["resource"]["target"].update(averageUtilization=95) or _set_env(rs, "AGENT_LOAD_THRESHOLD", "0.5"),
                                       "HPA target 95% of a 1000m request with a 2000m effective limit puts each worker at load 0.52"),
    "agent-scale-down-slower": (lambda rs: _hpa(rs)["behavior"]["scaleDown"].update(stabilizationWindowSeconds=30),
                                "scale-down window 30 s is not longer than scale-up window 30 s"),
    "agent-extended-duration": (lambda rs: _pod(rs)["metadata"].update(annotations={}),
                                "grace 980 s exceeds the 600 s the cluster autoscaler honours"),
    "agent-no-spot": (lambda rs: _pod(rs)["spec"].update(nodeSelector={"cloud.google.com/gke-spot": "true"}),
                      "Spot Pods get 25 s to stop"),
    "agent-autopilot-resources": (lambda rs: _container(rs)["resources"]["requests"].update(cpu="30m"),
                                  "CPU request 30m is below the Autopilot minimum 50m"),
    "agent-probes": (lambda rs: _container(rs).pop("startupProbe"), "missing startupProbe"),
    "agent-security-context": (lambda rs: _container(rs)["securityContext"].update(readOnlyRootFilesystem=False),
                               "container is not hardened: root filesystem is writable"),
    "agent-pdb": (lambda rs: rs.remove(next(r for r in rs if r["type"] == "kubernetes:policy/v1:PodDisruptionBudget")),
                  "no PodDisruptionBudget selects the agent"),
}


def test_every_rule_has_a_failing_case():
    assert set(FAILING) == set(RULES_BY_ID)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_pass_every_rule(stack):
    assert evaluate_plan(_committed_plan(stack).resources, stack) == []


@pytest.mark.parametrize("rule_id", sorted(FAILING))
def test_rule_fails_for_its_stated_reason(rule_id):
    mutate, reason = FAILING[rule_id]
    # Deletion protection is only required of prod; every other case starts from dev.
    stack = "prod" if rule_id == "gke-deletion-protection" else "dev"
    resources = _committed_plan(stack).resources
    rule = RULES_BY_ID[rule_id]
    ctx = Context(bursting=stack == "dev", protected=True)
    assert rule.findings(as_resources(resources), ctx) == [], "passing case first: the real plan must be clean"
    mutate(resources)
    messages = [message for _, message in rule.findings(as_resources(resources), ctx)]
    assert messages and any(reason in m for m in messages), messages


def test_deletion_protection_is_only_required_of_protected_stacks():
    resources = copy.deepcopy(_committed_plan("dev").resources)
    assert _first(resources, "gcp:container/cluster:Cluster")["deletionProtection"] is False
    assert violations(as_resources(resources), Context(bursting=True, protected=False)) == []
    found = violations(as_resources(resources), Context(bursting=True, protected=True))
    assert [(v["rule"], v["severity"]) for v in found] == [("gke-deletion-protection", MANDATORY)]


def test_exec_wrapper_is_accepted():
    resources = copy.deepcopy(_committed_plan("dev").resources)
    _container(resources).update(command=["/bin/sh", "-c", "echo preflight; exec python -m voice_agent start"], args=[])
    assert RULES_BY_ID["agent-exec-form-start"].findings(as_resources(resources), DEV_CTX) == []


def test_dev_mode_is_refused():
    resources = copy.deepcopy(_committed_plan("dev").resources)
    _container(resources).update(args=["dev"])
    [(_, message)] = RULES_BY_ID["agent-exec-form-start"].findings(as_resources(resources), DEV_CTX)
    assert "runs development mode, which skips the drain" in message


def test_every_rule_has_an_id_severity_and_description():
    assert len({r.id for r in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.severity in ("mandatory", "advisory") and rule.description.endswith(".")
        assert (rule.check_stack is None) != (rule.check_resource is None)
