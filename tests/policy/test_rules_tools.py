"""Tool governance rules: pass on both committed stacks, fail for their stated reason when the
real evaluated plan is changed the way each rule guards against."""

from __future__ import annotations

import copy
import functools

import pytest

from k8s.runtime import ROLE_LABEL
from k8s.tool_server import TOOL_SERVER_ROLE
from policy.engine import evaluate_plan
from tooling.plan import evaluate


@functools.lru_cache(maxsize=None)
def _evaluated(stack: str):
    # placesToolEnabled defaults to false; these rules are about a stack that runs it
    return evaluate(stack, {"gke-voice-agents:placesToolEnabled": "true"})


def _fixture_plan(stack: str):
    return copy.deepcopy(_evaluated(stack))

RULE_IDS = ("agent-mounts-no-tool-credential", "agent-identity-holds-no-tool-role", "tool-server-admits-only-agents")


def _named(resources, name):
    return next(r for r in resources if r["name"] == name)["inputs"]


def _agent_pod(resources):
    return _named(resources, "agent-deployment")["spec"]["template"]["spec"]


def _violations(resources, stack="dev"):
    return [v for v in evaluate_plan(resources, stack) if v["rule"] in RULE_IDS]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_pass(stack):
    plan = _fixture_plan(stack)
    assert any(r["name"] == "places-network" for r in plan.resources), "the tool server must be in the plan"
    assert _violations(plan.resources, stack) == []


def _secret_volume(resources):
    _agent_pod(resources)["volumes"].append({"name": "places-key", "secret": {"secretName": "places-api-key"}})


def _secret_env(resources):
    _agent_pod(resources)["containers"][0]["env"].append(
        {"name": "PLACES_API_KEY", "valueFrom": {"secretKeyRef": {"name": "places", "key": "key"}}})


def _csi_volume(resources):
    _agent_pod(resources)["volumes"].append({"name": "keys", "csi": {"driver": "secrets-store-gke.csi.k8s.io"}})


def _api_server_token(resources):
    """An API-server token while the agent's service account is not held to patching pods: the
    stacks' own deletion-cost token passes only under its admission policy (tests below)."""
    pod = _agent_pod(resources)
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "kube-api-token"]
    pod["volumes"].append({"name": "kube", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}})
    resources[:] = [r for r in resources
                    if r["type"] != "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"]


def _tool_role_for_agent(resources):
    vertex = next(r for r in resources if r["type"] == "gcp:projects/iAMMember:IAMMember"
                  and r["inputs"]["role"] == "roles/aiplatform.user")
    extra = copy.deepcopy(vertex)
    extra["name"] = "agent-places-quota"
    extra["inputs"]["role"] = "roles/serviceusage.serviceUsageConsumer"
    resources.append(extra)


def _secret_access_for_agent(resources):
    vertex = next(r for r in resources if r["type"] == "gcp:projects/iAMMember:IAMMember"
                  and r["inputs"]["role"] == "roles/aiplatform.user")
    resources.append({"type": "gcp:secretmanager/secretIamMember:SecretIamMember", "name": "agent-reads-key",
                      "parent": None, "inputs": {"secretId": "places-key", "role": "roles/secretmanager.secretAccessor",
                                                 "member": vertex["inputs"]["member"]}})


def _no_network_policy(resources):
    resources[:] = [r for r in resources if r["name"] != "places-network"]


def _ingress_from_anywhere(resources):
    _named(resources, "places-network")["spec"]["ingress"] = [{"ports": [{"protocol": "TCP", "port": 8080}]}]


def _ingress_from_a_namespace(resources):
    _named(resources, "places-network")["spec"]["ingress"][0]["from"].append(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}})


def _ingress_from_other_pods(resources):
    """A podSelector alone, but for another role: the source's shape is right, its label is not."""
    _named(resources, "places-network")["spec"]["ingress"][0]["from"] = [
        {"podSelector": {"matchLabels": {ROLE_LABEL: TOOL_SERVER_ROLE}}}]


def _ingress_from_agents_of_every_namespace(resources):
    """The agent's label, but with a namespaceSelector in the same source: agent-labelled pods of
    every namespace (NetworkPolicy peer semantics: both selectors in one peer are ANDed)."""
    _named(resources, "places-network")["spec"]["ingress"][0]["from"][0]["namespaceSelector"] = {}


def _egress_only_policy(resources):
    spec = _named(resources, "places-network")["spec"]
    spec["policyTypes"] = ["Egress"]
    del spec["ingress"]


@pytest.mark.parametrize(("mutate", "rule", "says"), [
    (_secret_volume, "agent-mounts-no-tool-credential", "volume places-key mounts Secret places-api-key"),
    (_secret_env, "agent-mounts-no-tool-credential", "env PLACES_API_KEY reads Secret places"),
    (_csi_volume, "agent-mounts-no-tool-credential", "CSI volume (secrets-store-gke.csi.k8s.io)"),
    (_api_server_token, "agent-mounts-no-tool-credential", "API-server token (no audience)"),
    (_tool_role_for_agent, "agent-identity-holds-no-tool-role", "is granted roles/serviceusage.serviceUsageConsumer"),
    (_secret_access_for_agent, "agent-identity-holds-no-tool-role", "may read a Secret Manager secret"),
    (_no_network_policy, "tool-server-admits-only-agents", "no NetworkPolicy with policyTypes Ingress"),
    (_egress_only_policy, "tool-server-admits-only-agents", "no NetworkPolicy with policyTypes Ingress"),
    (_ingress_from_anywhere, "tool-server-admits-only-agents", "admits more than agent pods"),
    (_ingress_from_a_namespace, "tool-server-admits-only-agents", "admits more than agent pods"),
    (_ingress_from_other_pods, "tool-server-admits-only-agents", "admits more than agent pods"),
    (_ingress_from_agents_of_every_namespace, "tool-server-admits-only-agents", "admits more than agent pods"),
])
def test_each_rule_fails_for_its_reason(mutate, rule, says):
    resources = copy.deepcopy(_fixture_plan("dev").resources)
    mutate(resources)
    found = _violations(resources)
    assert [v["rule"] for v in found] == [rule], found
    assert says in found[0]["message"] and found[0]["severity"] == "mandatory"


def test_names_spelled_in_the_rules_match_their_homes():
    from k8s.pod import LIVEKIT_SECRET
    from k8s.tool_server import TOOL_SERVER_ROLE
    from policy.rules import tools

    assert (tools.LIVEKIT_SECRET, tools.TOOL_SERVER_ROLE) == (LIVEKIT_SECRET, TOOL_SERVER_ROLE)


def _unguarded_tool_server(resources):
    """A tool server Deployment with no NetworkPolicy at all (the committed dev plan runs none)."""
    agent = next(r for r in resources if r["name"] == "agent-deployment")
    server = copy.deepcopy(agent)
    server["name"] = "stray-tool"
    server["inputs"]["spec"]["template"]["metadata"]["labels"] = {"app.kubernetes.io/name": "stray-tool",
                                                                  "gke-voice-agents/role": "tool-server"}
    resources.append(server)


# For tests/policy/test_rules.py's FAILING table (every rule has a failing case on the committed
# dev plan): (mutation, reason).
FAILING_CASES = {
    "agent-mounts-no-tool-credential": (_secret_env, "env PLACES_API_KEY reads Secret places"),
    "agent-identity-holds-no-tool-role": (_tool_role_for_agent, "is granted roles/serviceusage.serviceUsageConsumer"),
    "tool-server-admits-only-agents": (_unguarded_tool_server, "no NetworkPolicy with policyTypes Ingress"),
}


# --- the one API-server token an agent pod may carry -------------------------------------------

def _with_deletion_cost() -> list[dict]:
    from tooling.plan import evaluate

    return evaluate("dev", {"gke-voice-agents:podDeletionCost": "true"}).resources


def _tool_rule(resources: list[dict]) -> list[str]:
    from policy.engine import evaluate_plan

    return [v["message"] for v in evaluate_plan(resources, "dev") if v["rule"] == "agent-mounts-no-tool-credential"]


def test_the_deletion_cost_token_passes_while_it_can_only_patch_pods():
    """The worker's pod-deletion-cost token (k8s/deletion_cost.py): RBAC patch-pods only, and an
    admission policy narrows that to one annotation of its own pod. Not a tool credential."""
    resources = _with_deletion_cost()
    assert any(v.get("projected") for r in resources if r["type"] == "kubernetes:apps/v1:Deployment"
               for v in r["inputs"]["spec"]["template"]["spec"].get("volumes", []))
    assert _tool_rule(resources) == []


def test_the_token_is_a_credential_once_its_role_can_read_more():
    resources = _with_deletion_cost()
    role = next(r for r in resources if r["type"] == "kubernetes:rbac.authorization.k8s.io/v1:Role"
                and r["inputs"]["rules"][0]["resources"] == ["pods"])
    role["inputs"]["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    [message] = _tool_rule(resources)
    assert "projects an API-server token (no audience) while the agent's service account may do more" in message


def test_the_token_is_a_credential_without_the_admission_policy():
    resources = [r for r in _with_deletion_cost()
                 if r["type"] != "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"]
    assert len(_tool_rule(resources)) == 1


def test_the_token_is_a_credential_when_a_binding_names_an_undeclared_role():
    resources = _with_deletion_cost()
    binding = next(r for r in resources if r["type"] == "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
                   and any(s.get("name") == "voice-agent" for s in r["inputs"]["subjects"]))
    binding["inputs"]["roleRef"]["name"] = "edit"
    assert len(_tool_rule(resources)) == 1
